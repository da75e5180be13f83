"""The grid of notebook 05: every cell, at 256 units and (the gated ones) at the size with the RNN's
parameter count, with every learning rate of LR_GRID and every dropout rate of DROPOUT_GRID (both
per dataset), seed 0; the grid point with the lowest validation loss is the one experiments.CHOSEN must
hold (a warning says when it does not; ``python -m benchmarks.run --check`` checks it on the records)."""

from __future__ import annotations

import dataclasses

import experiments


def points(chosen: experiments.Config, quick: bool = False) -> dict:
    """(lr, dropout) -> Config of every point of the grid of one cell and size: its chosen configuration
    with each learning rate (only the first with ``quick``) and each dropout rate of its dataset."""
    rates = experiments.LR_GRID[chosen.dataset]
    return {(lr, dropout): dataclasses.replace(chosen, lr=lr, dropout=dropout)
            for lr in (rates[:1] if quick else rates) for dropout in experiments.DROPOUT_GRID[chosen.dataset]}


def configs(datasets=experiments.DATASETS) -> dict:
    """(dataset, cell, hidden size, lr, dropout) -> Config of every point of the full grid: what its
    records must have been made with."""
    return {(dataset, chosen.cell, chosen.hidden_size, lr, dropout): config
            for (dataset, _), chosen in experiments.GATED_CONFIGS.items() if dataset in datasets
            for (lr, dropout), config in points(chosen).items()}


def run(quick: bool, datasets=experiments.DATASETS) -> list[dict]:
    records = []
    for (dataset, _), chosen in experiments.GATED_CONFIGS.items():  # every cell and size the notebook trains
        if dataset not in datasets:
            continue
        cell, size = chosen.cell, chosen.hidden_size
        for (lr, dropout), config in points(chosen, quick).items():
            run_ = experiments.train(config, progress=False)
            records.append({"dataset": dataset, "cell": cell, "hidden_size": size, "lr": lr, "dropout": dropout,
                            "valid_nll": run_.nll["valid"], "test_nll": run_.nll["test"],
                            "epochs": len(run_.history.train_loss),
                            "train_seconds": round(run_.history.seconds, 1), "seed": 0,
                            "patience": run_.config.patience, "min_delta": run_.config.min_delta,
                            "max_epochs": run_.config.epochs, "decays": run_.config.decays,
                            "config": dataclasses.asdict(run_.config)})
            print(f"  {dataset:13s} {cell:5s} {size:4d} lr {lr:g} dropout {dropout:g}: "
                  f"valid {run_.nll['valid']:.4f} ({len(run_.history.train_loss)} epochs, "
                  f"{run_.history.seconds:.0f} s)", flush=True)
        mine = [r for r in records if r["dataset"] == dataset and r["cell"] == cell and r["hidden_size"] == size]
        best = min(mine, key=lambda r: r["valid_nll"])
        if (best["lr"], best["dropout"]) != (chosen.lr, chosen.dropout) and not quick:
            print(f"  WARNING: {dataset} {cell} {size}: the grid picks lr {best['lr']:g}, dropout "
                  f"{best['dropout']:g}, but experiments.CHOSEN says {(chosen.lr, chosen.dropout)}")
    return records
