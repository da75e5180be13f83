"""Notebook 05's comparison of cells: GRU and LSTM at the RNN's hidden size and at its parameter count
(the RNN rows are notebook 03's, recorded by benchmarks/rnn.py)."""

from __future__ import annotations

import experiments
from benchmarks.common import train_seeds


def configs(datasets=experiments.DATASETS) -> dict:
    """(dataset, label) -> Config of every model this area trains (what its records must have been made with)."""
    return {(dataset, label): config for (dataset, label), config in experiments.GATED_CONFIGS.items()
            if label != "RNN" and dataset in datasets}


def run(quick: bool, datasets=experiments.DATASETS) -> list[dict]:
    records = []
    for (_, label), config in configs(datasets).items():
        records += train_seeds(config, label, quick)
    return records
