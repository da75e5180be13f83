"""Notebook 05's recall task with every seed: accuracy per cell and span; and the same task trained
with SGD instead of AdamW, to test whether Adam's rescaling of the steps is what lets the GRU learn
long spans from a vanishing gradient."""

from __future__ import annotations

import dataclasses

import torch

import experiments
from benchmarks.common import seeds
from experiments import measures

SGD_RATES = (0.1, 0.3, 1.0)
SGD_SPANS = (5, 40)


def _record(config, name: str) -> dict:
    run = experiments.train(config, progress=False)
    accuracy = measures.recall_accuracy(run.model, config.span, seed=config.seed + 2)  # the task's test batch
    print(f"  {name:20s} {config.optimizer:5s} lr {config.lr:<5g} k={config.span:3d} seed {config.seed}: "
          f"accuracy {accuracy:.2f} after {run.history.steps} updates", flush=True)
    return {"model": name, "span": config.span, "seed": config.seed, "accuracy": accuracy,
            "updates": run.history.steps, "optimizer": config.optimizer, "lr": config.lr,
            "config": dataclasses.asdict(run.config)}


def plan(quick: bool) -> list[tuple[str, experiments.Config]]:
    """(name, Config) of every run, in order: each cell at each span with every seed (AdamW, as in
    notebook 05), then the GRU with SGD at each of SGD_RATES and SGD_SPANS."""
    runs = []
    for name, cell in experiments.RECALL_CELLS.items():
        for k in (2, 4) if quick else experiments.RECALL_SPANS:
            runs += [(name, dataclasses.replace(experiments.RECALL_CONFIG, cell=cell, span=k, seed=seed))
                     for seed in seeds(quick)]
    for lr in SGD_RATES[:1] if quick else SGD_RATES:
        for k in (2,) if quick else SGD_SPANS:
            runs.append(("GRU", dataclasses.replace(experiments.RECALL_CONFIG, cell="gru", span=k, optimizer="sgd",
                                                    lr=lr)))
    return runs


def record_key(r: dict) -> tuple:
    """What tells one record from another: model, span, seed, optimizer and, with SGD (whose learning
    rates are tried one by one), the learning rate."""
    sgd_lr = r.get("lr") if r.get("optimizer") == "sgd" else None
    return r.get("model"), r.get("span"), r.get("seed"), r.get("optimizer"), sgd_lr


def configs() -> dict:
    """record_key -> Config of every run of a full benchmark: what its records must have been made with."""
    return {record_key({"model": name, "span": c.span, "seed": c.seed, "optimizer": c.optimizer, "lr": c.lr}): c
            for name, c in plan(quick=False)}


def run(quick: bool) -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in notebook 05: 32 hidden units run faster on one thread
    try:
        return [_record(config, name) for name, config in plan(quick)]
    finally:
        torch.set_num_threads(threads)
