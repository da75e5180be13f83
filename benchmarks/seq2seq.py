"""Notebook 07 with every seed: how often the conditional name generator's samples have the
requested sex, and the encoder–decoder's exact match on held-out numbers (greedy decoding and beam
search), with its exact match and character error rate by the length of the input."""

from __future__ import annotations

import dataclasses

import torch

import chapter
import experiments
from benchmarks.common import run_records, seeds
from experiments.measures import longer_numbers, sample_origins, scores_by_length, sex_agreement, transcribe

GENERATOR_LABEL, SEQ2SEQ_LABEL = "conditional GRU", "seq2seq GRU"
LENGTH_EDGES = (0, 20, 30, 40, 50, 60, 70, 80, 90, 100, 130)  # characters of the input: the notebook's bins
SAMPLES = 1000  # names drawn for each sex


def configs() -> dict:
    """(dataset, label) -> Config of every model this area trains."""
    return {("conditional-names", GENERATOR_LABEL): experiments.CONDITIONAL_GENERATOR,
            ("numbers", SEQ2SEQ_LABEL): experiments.SEQ2SEQ}


def _conditional(quick: bool) -> list[dict]:
    classifier = experiments.train(experiments.NAME_CLASSIFIERS["left to right", "last"], progress=False)
    _, pairs = chapter.name_sex_splits()
    train_names, name_sexes = {name for name, _ in pairs[0]}, chapter.load_name_sexes()
    records = []
    for seed in seeds(quick):
        run = experiments.train(dataclasses.replace(experiments.CONDITIONAL_GENERATOR, seed=seed), progress=False)
        drawn = {sex: [s[1:] for s in chapter.sample(run.model, run.vocab, SAMPLES, prompt=mark,
                                                     generator=torch.Generator().manual_seed(0))]
                 for sex, mark in enumerate(chapter.SEX_MARKS)}
        agreement = sex_agreement(drawn, classifier.model, classifier.vocab, name_sexes)
        scores = {"classifier_agreement": sum(a["classifier"] for a in agreement.values()) / len(agreement),
                  "ine_agreement": sum(a["INE"] for a in agreement.values()) / len(agreement),
                  "real_names": sum(a["real"] for a in agreement.values()) / len(agreement),
                  "copied": sum(sample_origins(d, train_names, name_sexes)["copied"] for d in drawn.values()) / 2,
                  "by_sex": {chapter.SEXES[sex]: a for sex, a in agreement.items()}}
        records += [r | scores for r in run_records(run, GENERATOR_LABEL) if r["split"] == "test"]
        print(f"  conditional generator seed {seed}: classifier agrees {scores['classifier_agreement']:.3f}, "
              f"INE agrees {scores['ine_agreement']:.3f}", flush=True)
    return records


def _seq2seq(quick: bool) -> list[dict]:
    test = chapter.number_splits()[2]  # the notebook's test numbers
    test = test[:200] if quick else test
    groups = {"below a million, held out": test, "a million and more": longer_numbers()}
    records = []
    for seed in seeds(quick):
        run = experiments.train(dataclasses.replace(experiments.SEQ2SEQ, seed=seed), progress=False)
        scores = {f"exact_beam_{width}": sum(w == str(n) for w, n in zip(transcribe(run.model, test, run.vocab, width),
                                                                         test)) / len(test)
                  for width in (1, 4)}
        scores["by_length"] = {name: scores_by_length(run.model, numbers, run.vocab, LENGTH_EDGES)
                               for name, numbers in groups.items()}
        records += [r | scores for r in run_records(run, SEQ2SEQ_LABEL) if r["split"] == "test"]
        print(f"  seq2seq seed {seed}: exact match {scores['exact_beam_1']:.4f} greedy, "
              f"{scores['exact_beam_4']:.4f} beam 4", flush=True)
    return records


def run(quick: bool) -> list[dict]:
    return _conditional(quick) + _seq2seq(quick)
