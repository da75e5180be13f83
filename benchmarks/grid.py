"""The learning-rate grid of notebook 05: every cell at 256 units with every rate of LR_GRID, seed 0;
the rate with the lowest validation loss is the one chapter.LEARNING_RATES must hold."""

from __future__ import annotations

import dataclasses

import chapter


def run(quick: bool) -> list[dict]:
    records = []
    for dataset, base in chapter.RNN_CONFIGS.items():
        for cell in ("rnn", "gru", "lstm"):
            for lr in chapter.LR_GRID[:1] if quick else chapter.LR_GRID:
                run_ = chapter.train(dataclasses.replace(base, cell=cell, lr=lr), progress=False)
                records.append({"dataset": dataset, "cell": cell, "lr": lr, "valid_nll": run_.nll["valid"],
                                "test_nll": run_.nll["test"], "epochs": len(run_.history.train_loss),
                                "train_seconds": round(run_.history.seconds, 1), "seed": 0})
                print(f"  {dataset:13s} {cell:5s} lr {lr:g}: valid {run_.nll['valid']:.4f}", flush=True)
    for dataset in chapter.RNN_CONFIGS:
        for cell in ("rnn", "gru", "lstm"):
            mine = [r for r in records if r["dataset"] == dataset and r["cell"] == cell]
            best = min(mine, key=lambda r: r["valid_nll"])["lr"]
            chosen = chapter.LEARNING_RATES[dataset, cell]
            if best != chosen and not quick:
                print(f"  WARNING: {dataset} {cell}: the grid picks lr {best:g}, but LEARNING_RATES says {chosen:g}")
    return records
