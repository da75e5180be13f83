"""Notebook 03's recurrent language model: the RNN on both datasets, and on the book also trained on
random windows from a zero state."""

from __future__ import annotations

import dataclasses

import chapter
from benchmarks.common import train_seeds


def run(quick: bool) -> list[dict]:
    records = []
    for config in chapter.RNN_CONFIGS.values():
        records += train_seeds(config, "RNN", quick)
    windowed = dataclasses.replace(chapter.RNN_CONFIGS["time-machine"], stateful=False)
    records += train_seeds(windowed, "RNN (random windows)", quick)
    return records
