"""The grid of notebook 05: every cell at 256 units with every learning rate of LR_GRID and every
dropout rate of DROPOUT_GRID, seed 0; the grid point with the lowest validation loss is the one
chapter.CHOSEN must hold (a warning says when it does not)."""

from __future__ import annotations

import dataclasses

import chapter


def run(quick: bool) -> list[dict]:
    records = []
    for dataset, base in chapter.RNN_CONFIGS.items():
        for cell in ("rnn", "gru", "lstm"):
            for lr in chapter.LR_GRID[:1] if quick else chapter.LR_GRID:
                for dropout in chapter.DROPOUT_GRID:
                    run_ = chapter.train(dataclasses.replace(base, cell=cell, lr=lr, dropout=dropout), progress=False)
                    records.append({"dataset": dataset, "cell": cell, "lr": lr, "dropout": dropout,
                                    "valid_nll": run_.nll["valid"], "test_nll": run_.nll["test"],
                                    "epochs": len(run_.history.train_loss),
                                    "train_seconds": round(run_.history.seconds, 1), "seed": 0})
                    print(f"  {dataset:13s} {cell:5s} lr {lr:g} dropout {dropout:g}: valid {run_.nll['valid']:.4f} "
                          f"({len(run_.history.train_loss)} epochs, {run_.history.seconds:.0f} s)", flush=True)
    for dataset in chapter.RNN_CONFIGS:
        for cell in ("rnn", "gru", "lstm"):
            mine = [r for r in records if r["dataset"] == dataset and r["cell"] == cell]
            best = min(mine, key=lambda r: r["valid_nll"])
            if (best["lr"], best["dropout"]) != chapter.CHOSEN[dataset, cell] and not quick:
                print(f"  WARNING: {dataset} {cell}: the grid picks lr {best['lr']:g}, dropout {best['dropout']:g}, "
                      f"but chapter.CHOSEN says {chapter.CHOSEN[dataset, cell]}")
    return records
