"""Notebook 05's comparison of cells: GRU and LSTM at the RNN's hidden size and at its parameter count
(the RNN rows are notebook 03's, recorded by benchmarks/rnn.py)."""

from __future__ import annotations

import chapter
from benchmarks.common import train_seeds


def run(quick: bool, datasets=chapter.DATASETS) -> list[dict]:
    records = []
    for (dataset, label), config in chapter.GATED_CONFIGS.items():
        if label != "RNN" and dataset in datasets:
            records += train_seeds(config, label, quick)
    return records
