"""Gated recurrent language models of notebook 05: GRU and LSTM (from scratch) on both datasets.

Trains with ``chapter.train_gated_lm`` and ``chapter.gated_lm_config``, the function and the
configuration that notebook 05 uses in full mode, so the records reproduce the notebook's numbers.
"""

from __future__ import annotations

import math

import chapter

DATASETS = ("surnames", "time-machine")  # the book: truncated BPTT with the state carried (stateful)


def run(quick: bool) -> list[dict]:
    records = []
    for dataset in DATASETS:
        for cell in (chapter.GRU, chapter.LSTM):
            result = chapter.train_gated_lm(dataset, cell, quick=quick, progress=False)
            params = sum(p.numel() for p in result.model.parameters())
            for split, nll in result.nll.items():
                records.append(dict(dataset=dataset, model=f"{cell.__name__} (from scratch)", split=split,
                                    nll=nll, perplexity=math.exp(nll), params=params,
                                    train_seconds=result.history.seconds, seed=result.config["seed"]))
            print(f"  {dataset} {cell.__name__}: test NLL {result.nll['test']:.3f}, "
                  f"{result.history.seconds:.0f} s", flush=True)
    return records
