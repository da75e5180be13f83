"""How far back each recurrent model looks (notebooks 03 and 05): the test NLL on *The Time Machine*
with the state reset to zero every k characters, for every cell at the RNN's hidden size and every
seed, with the window models' test NLL as references."""

from __future__ import annotations

import dataclasses

import chapter
from benchmarks.common import seeds


def run(quick: bool, datasets=chapter.DATASETS) -> list[dict]:
    if "time-machine" not in datasets:  # the curves are measured on the book only
        return []
    _, _, _, test_ids = chapter.splits("time-machine")
    spans = (1, 4, 16) if quick else chapter.CONTEXT_SPANS
    configs = {label: config for (dataset, label), config in chapter.GATED_CONFIGS.items()
               if dataset == "time-machine" and "units" not in label}  # RNN, GRU, LSTM with 256 units
    records = []
    for label, config in configs.items():
        for seed in seeds(quick):
            run = chapter.train(dataclasses.replace(config, seed=seed), progress=False)
            curve = chapter.context_curve(run.model, test_ids, spans=spans)
            for k, nll in curve.items():
                records.append({"dataset": "time-machine", "model": label, "seed": seed,
                                "k": "never" if k is None else k, "nll": nll})
            print(f"  {label:5s} seed {seed}: k=16 {curve[16]:.3f}, never {curve[None]:.3f}", flush=True)
    return records
