"""Notebook 03's recurrent language model: the RNN on both datasets, and on the book also trained on
random windows from a zero state."""

from __future__ import annotations

import dataclasses

import chapter
from benchmarks.common import train_seeds


def run(quick: bool, datasets=chapter.DATASETS) -> list[dict]:
    records = []
    for dataset, config in chapter.RNN_CONFIGS.items():
        if dataset in datasets:
            records += train_seeds(config, "RNN", quick)
    if "time-machine" in datasets:
        windowed = dataclasses.replace(chapter.RNN_CONFIGS["time-machine"], stateful=False)
        records += train_seeds(windowed, "RNN (random windows)", quick)
    return records
