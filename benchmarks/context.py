"""Notebook 02's fixed-window models on both datasets: uniform baseline, n-gram counts, MLP, causal CNN."""

from __future__ import annotations

import math

import chapter
import experiments
from benchmarks.common import train_seeds
from experiments import measures

LABELS = {"mlp": "MLP", "cnn": "causal CNN"}


def configs(datasets=experiments.DATASETS) -> dict:
    """(dataset, label) -> Config of every model this area trains (the uniform and n-gram rows are not
    trained): what its records must have been made with."""
    return {(dataset, LABELS[model]): config for (dataset, model), config in experiments.WINDOW_CONFIGS.items()
            if dataset in datasets}


def run(quick: bool, datasets=experiments.DATASETS) -> list[dict]:
    records = []
    for dataset in datasets:
        data = chapter.windows(dataset)
        uniform = math.log(len(data.vocab))
        records += [{"dataset": dataset, "model": "uniform", "split": split, "nll": uniform,
                     "perplexity": float(len(data.vocab)), "params": 0, "train_seconds": 0.0, "seed": 0}
                    for split in ("train", "valid", "test")]
        ngram, _ = measures.select_ngram(data, orders=(2, 3) if quick else measures.NGRAM_ORDERS)
        for split in ("train", "valid", "test"):  # counting is deterministic: one record per split
            nll = chapter.evaluate(ngram, getattr(data, split))
            records.append({"dataset": dataset, "model": "n-gram", "split": split, "nll": nll,
                            "perplexity": math.exp(nll), "params": 0, "train_seconds": 0.0, "seed": 0,
                            "order": ngram.order, "k": ngram.k})
        for (_, label), config in configs((dataset,)).items():
            records += train_seeds(config, label, quick)
    return records
