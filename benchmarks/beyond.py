"""Notebook 06's tasks with every seed: the sex of a first name (accuracy, with the suffix baseline)
and restoring the spaces of the book (precision, recall, F1 of the spaces)."""

from __future__ import annotations

import dataclasses

import chapter
import experiments
from benchmarks.common import run_records, seeds


def name_configs() -> dict:
    """label -> Config of the name classifiers ("left to right, last", ...)."""
    return {f"{direction}, {readout}": config for (direction, readout), config in experiments.NAME_CLASSIFIERS.items()}


def configs() -> dict:
    """(dataset, label) -> Config of every model this area trains (the suffix model is counted, not
    trained): what its records must have been made with."""
    return ({("first-names", label): config for label, config in name_configs().items()}
            | {("spaces", name): config for name, config in experiments.SPACE_TAGGERS.items()})


def _names(quick: bool) -> list[dict]:
    vocab, (train_pairs, valid_pairs, test_pairs) = chapter.name_sex_splits()
    valid = {k: chapter.classification_accuracy(chapter.SuffixClassifier(train_pairs, k).predict, valid_pairs)
             for k in range(1, 7)}
    k = max(valid, key=valid.get)
    suffix = chapter.classification_accuracy(chapter.SuffixClassifier(train_pairs, k).predict, test_pairs)
    records = [{"dataset": "first-names", "model": f"suffix model (k={k})", "split": "test", "nll": float("nan"),
                "perplexity": float("nan"), "accuracy": suffix, "seed": 0, "params": 0, "train_seconds": 0.0}]
    for label, config in name_configs().items():
        for seed in seeds(quick):
            run = experiments.train(dataclasses.replace(config, seed=seed), progress=False)
            task = experiments.TASKS["first-names"](run.config)
            predicted, truth = chapter.predictions(run.model, task.held_out["test"][0])
            accuracy = (predicted == truth).float().mean().item()
            records += [r | {"accuracy": accuracy} for r in run_records(run, label) if r["split"] == "test"]
            print(f"  first names {label} seed {seed}: accuracy {accuracy:.4f}", flush=True)
    return records


def _spaces(quick: bool) -> list[dict]:
    records = []
    for name, config in experiments.SPACE_TAGGERS.items():
        for seed in seeds(quick):
            run = experiments.train(dataclasses.replace(config, seed=seed), progress=False)
            task = experiments.TASKS["spaces"](run.config)
            scores = chapter.precision_recall_f1(*chapter.predictions(run.model, task.held_out["test"][0]))
            records += [r | scores for r in run_records(run, name) if r["split"] == "test"]
            print(f"  spaces {name} seed {seed}: F1 {scores['F1']:.4f}", flush=True)
    return records


def run(quick: bool) -> list[dict]:
    return _names(quick) + _spaces(quick)
