"""How much history the book's recurrent models use (notebooks 03 and 05): the excess loss by offset
after a reset of the state (``measures.loss_by_offset``), for the RNN, the GRU and the LSTM with 256
units, and for the LSTM trained with truncated BPTT over LONG_STEPS characters instead of 32 (with as
many characters per update); every seed. The records hold the excess averaged over
``measures.offset_ranges``, the memory span and the test NLL read as one stream."""

from __future__ import annotations

import dataclasses

import chapter
import experiments
from benchmarks.common import seeds
from experiments import measures

BLOCK = 512  # characters per block read from a zero state
LONG_STEPS = 128  # the truncation length set against the chapter's num_steps = 32


def long_truncation(config: experiments.Config) -> experiments.Config:
    """``config`` with pieces of LONG_STEPS characters and as many fewer rows a batch, so that an update
    sees as many characters and an epoch has as many updates: only the truncation length changes."""
    rows = config.batch_size * config.num_steps // LONG_STEPS
    if rows < 1 or rows * LONG_STEPS != config.batch_size * config.num_steps:
        raise ValueError(f"batch_size * num_steps = {config.batch_size * config.num_steps} is not a multiple of "
                         f"LONG_STEPS = {LONG_STEPS}; choose a batch that splits into pieces of {LONG_STEPS}")
    return dataclasses.replace(config, num_steps=LONG_STEPS, batch_size=rows)


def configs() -> dict:
    """label -> Config: the three cells at 256 units, and the LSTM with the longer truncation."""
    found = {label: config for (dataset, label), config in experiments.GATED_CONFIGS.items()
             if dataset == "time-machine" and "units" not in label}  # RNN, GRU, LSTM with 256 units
    found[f"LSTM, {LONG_STEPS} steps"] = long_truncation(found["LSTM"])
    return found


def run(quick: bool, datasets=experiments.DATASETS) -> list[dict]:
    if "time-machine" not in datasets:  # measured on the book only
        return []
    _, _, _, test_ids = chapter.splits("time-machine")
    records = []
    for label, config in configs().items():
        for seed in seeds(quick):
            run = experiments.train(dataclasses.replace(config, seed=seed), progress=False)
            reset, stream = measures.loss_by_offset(run.model, test_ids, block=BLOCK)
            excess = reset - stream
            records.append({"dataset": "time-machine", "model": label, "seed": seed, "num_steps": config.num_steps,
                            "nll": stream.mean().item(), "span": measures.memory_span(excess),
                            "batch_size": config.batch_size, "excess": measures.offset_ranges(excess),
                            "config": dataclasses.asdict(run.config)})
            print(f"  {label:16s} seed {seed}: span {records[-1]['span']}, stream NLL {stream.mean():.4f}",
                  flush=True)
    return records
