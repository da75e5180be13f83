"""The from-scratch RNN language model of notebook 03 on both datasets.

Trains with the notebook's own functions and configuration (``chapter.train_surname_lm``,
``chapter.train_time_machine_lm``, ``chapter.surname_lm_config``, ``chapter.time_machine_lm_config``),
so that ``make bench`` reproduces the numbers printed in notebooks/03-rnn.ipynb.
"""

from __future__ import annotations

import math

import chapter


def _records(dataset: str, model_name: str, run, splits=("train", "valid", "test")) -> list[dict]:
    params = sum(p.numel() for p in run.model.parameters())
    return [dict(dataset=dataset, model=model_name, split=split, nll=run.nll[split],
                 perplexity=math.exp(run.nll[split]), params=params,
                 train_seconds=round(run.history.seconds, 1), seed=run.config["seed"])
            for split in splits]


def run(quick: bool) -> list[dict]:
    records = []
    surnames = chapter.train_surname_lm(quick=quick, progress=False)
    records += _records("surnames", "RNN (from scratch)", surnames)
    stateful = chapter.train_time_machine_lm(stateful=True, quick=quick, progress=False)
    records += _records("time-machine", "RNN (from scratch)", stateful)
    windows = chapter.train_time_machine_lm(stateful=False, quick=quick, progress=False)
    records += _records("time-machine", "RNN (from scratch, random windows)", windows)
    return records


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(r)
