"""Notebook 05's recall task with every seed: accuracy per cell and span; and the same task trained
with SGD instead of AdamW, to test whether Adam's rescaling of the steps is what lets the GRU learn
long spans from a vanishing gradient."""

from __future__ import annotations

import dataclasses

import torch

import chapter
from benchmarks.common import seeds

SGD_RATES = (0.1, 0.3, 1.0)
SGD_SPANS = (5, 40)


def _record(config, name: str) -> dict:
    run = chapter.train(config, progress=False)
    accuracy = chapter.recall_accuracy(run.model, config.span, seed=config.seed + 2)  # the task's test batch
    print(f"  {name:20s} {config.optimizer:5s} lr {config.lr:<5g} k={config.span:3d} seed {config.seed}: "
          f"accuracy {accuracy:.2f} after {run.history.steps} updates", flush=True)
    return {"model": name, "span": config.span, "seed": config.seed, "accuracy": accuracy,
            "updates": run.history.steps, "optimizer": config.optimizer, "lr": config.lr}


def run(quick: bool) -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in notebook 05: 32 hidden units run faster on one thread
    try:
        records = []
        spans = (2, 4) if quick else chapter.RECALL_SPANS
        for name, cell in chapter.RECALL_CELLS.items():
            for k in spans:
                for seed in seeds(quick):
                    records.append(_record(dataclasses.replace(chapter.RECALL_CONFIG, cell=cell, span=k, seed=seed),
                                           name))
        for lr in SGD_RATES[:1] if quick else SGD_RATES:
            for k in (2,) if quick else SGD_SPANS:
                config = dataclasses.replace(chapter.RECALL_CONFIG, cell="gru", span=k, optimizer="sgd", lr=lr)
                records.append(_record(config, "GRU"))
        return records
    finally:
        torch.set_num_threads(threads)
