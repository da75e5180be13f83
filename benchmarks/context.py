"""Notebook 02's fixed-window context models: uniform baseline, n-gram counts, MLP, causal CNN.

Trains with the notebook's own functions and configuration (``select_ngram``,
``train_window_model``, ``CONTEXT_CONFIGS``), so the full-mode numbers equal the notebook's.
"""

from __future__ import annotations

import math
import time

import chapter


def _records(data: chapter.WindowData, model_name: str, model, seconds: float, seed: int,
             limit: int | None) -> list[dict]:
    losses = chapter.split_losses(model, data, limit)
    params = sum(p.numel() for p in model.parameters())
    return [{"dataset": data.name, "model": model_name, "split": split, "nll": nll,
             "perplexity": math.exp(nll), "params": params, "train_seconds": round(seconds, 1), "seed": seed}
            for split, nll in losses.items()]


def run(quick: bool) -> list[dict]:
    limit = 10_000 if quick else None
    records = []
    for data in (chapter.surname_windows(), chapter.time_machine_windows()):
        uniform = math.log(len(data.vocab))
        records += [{"dataset": data.name, "model": "uniform", "split": split, "nll": uniform,
                     "perplexity": float(len(data.vocab)), "params": 0, "train_seconds": 0.0,
                     "seed": 0} for split in ("train", "valid", "test")]
        start = time.perf_counter()
        ngram, _ = chapter.select_ngram(data)
        records += _records(data, "n-gram", ngram, time.perf_counter() - start, 0, limit)
        for kind, name in (("mlp", "MLP"), ("cnn", "causal CNN")):
            config = chapter.CONTEXT_CONFIGS[data.name, kind]
            model, history = chapter.train_window_model(config, data, quick=quick, progress=False)
            records += _records(data, name, model, history.seconds, config.seed, limit)
    return records


if __name__ == "__main__":
    for record in run(quick=True):
        print(record)
