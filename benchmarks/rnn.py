"""Notebook 03's recurrent language model: the RNN on both datasets, and on the book also trained on
random windows from a zero state."""

from __future__ import annotations

import dataclasses

import experiments
from benchmarks.common import train_seeds


def configs(datasets=experiments.DATASETS) -> dict:
    """(dataset, label) -> Config of every model this area trains (what its records must have been made with)."""
    found = {(dataset, "RNN"): config for dataset, config in experiments.RNN_CONFIGS.items() if dataset in datasets}
    if "time-machine" in datasets:
        found["time-machine", "RNN (random windows)"] = dataclasses.replace(experiments.RNN_CONFIGS["time-machine"],
                                                                            stateful=False)
    return found


def run(quick: bool, datasets=experiments.DATASETS) -> list[dict]:
    records = []
    for (_, label), config in configs(datasets).items():
        records += train_seeds(config, label, quick)
    return records
