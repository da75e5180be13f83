"""What every quality benchmark shares: the seeds, and records made from a trained ``experiments.Run``."""

from __future__ import annotations

import dataclasses
import math

SEEDS = (0, 1, 2)  # seed 0 is the run the notebooks print


def seeds(quick: bool) -> tuple[int, ...]:
    return SEEDS[:1] if quick else SEEDS


def run_records(run, label: str, **extra) -> list[dict]:
    """One record per split of a trained run: NLL, perplexity, size, time, seed and configuration."""
    import chapter

    return [{"dataset": run.config.dataset, "model": label, "split": split, "nll": nll, "perplexity": math.exp(nll),
             "params": chapter.num_params(run.model), "train_seconds": round(run.history.seconds, 1),
             "epochs": len(run.history.train_loss), "seed": run.config.seed,
             "config": dataclasses.asdict(run.config), **extra} for split, nll in run.nll.items()]


def train_seeds(config, label: str, quick: bool, **extra) -> list[dict]:
    """Train ``config`` with every seed (through the chapter's cache); the records of all runs."""
    import experiments

    records = []
    for seed in seeds(quick):
        run = experiments.train(dataclasses.replace(config, seed=seed), progress=False)
        records += run_records(run, label, **extra)
        print(f"  {config.dataset:13s} {label:22s} seed {seed}: test NLL {run.nll['test']:.4f} "
              f"({len(run.history.train_loss)} epochs, {run.history.seconds:.0f} s)", flush=True)
    return records
