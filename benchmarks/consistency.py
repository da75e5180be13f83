"""Do the records in results.json still describe the chapter? ``make bench-check`` (``python -m
benchmarks.run --check``) answers without training anything, and ``make bench`` asks at its end.

A change of a configuration in a notebook (a learning rate, a schedule, a hidden size) leaves the
records that ``make bench`` made with the old one stale until the areas that train it run again;
``make test`` does not look at the records, so that such a change can be tested before hours of
benchmarks. ``check`` lists, each with the command that re-measures it:

- every model that the areas context, rnn, gated, beyond and seq2seq train (their ``configs()``): records of
  every seed (and split), each made with the configuration the chapter holds now; and no record
  of a trained model that no area trains any more (a run replaces only the records it makes);
- the grid of notebook 05 (``benchmarks.grid.configs()``): every cell and size at every point of
  LR_GRID by DROPOUT_GRID, each made with the chosen configuration at that point, and nothing
  else; and the point with the lowest validation loss of each cell and size is ``experiments.CHOSEN``;
- the memory measurements and the recall task: every model (and span) with every seed, each
  made with the configuration the chapter holds now.

A record made before a field was added to ``Config`` counts with that field at its default. The
older records of the grid, the memory measurements and the recall task carry no ``config``: they
are held to the fields they do carry (the grid's before it recorded its schedule were made with
patience 1 and min_delta 0.01).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import experiments
from benchmarks import beyond, context, gated, grid, memory, recall, rnn, seq2seq
from benchmarks.common import SEEDS
from benchmarks.run import BY_DATASET

LM_SPLITS = ("train", "valid", "test")
QUALITY_AREAS = {context: LM_SPLITS, rnn: LM_SPLITS, gated: LM_SPLITS, beyond: ("test",),  # area -> splits
                 seq2seq: ("test",)}
# record field -> Config field, for the records that carry no "config" (see the docstring)
CARRIED = {
    "grid": {"dataset": "dataset", "cell": "cell", "hidden_size": "hidden_size", "lr": "lr", "dropout": "dropout",
             "seed": "seed", "patience": "patience", "min_delta": "min_delta", "max_epochs": "epochs",
             "decays": "decays"},
    "memory": {"dataset": "dataset", "seed": "seed", "num_steps": "num_steps", "batch_size": "batch_size"},
    "recall": {"span": "span", "seed": "seed", "optimizer": "optimizer", "lr": "lr"},
}
LEGACY = {"grid": {"patience": 1, "min_delta": 0.01}}  # the value of a field that older records lack
SHOWN = 4  # missing or extra records named in a problem; the rest are counted


def rerun(area: str, dataset: str | None = None) -> str:
    """The command that measures ``area`` again (for ``dataset`` only, where the area takes one)."""
    command = f"python -m benchmarks.run --only {area}"
    return command + f" --dataset {dataset}" if area in BY_DATASET and dataset else command


def differences(record: dict, expected: experiments.Config, area: str = "") -> dict:
    """field -> (recorded, expected) for each field of Config in which the configuration of ``record``
    differs from ``expected``: its "config" if it has one, else the fields of CARRIED[area]."""
    defaults = {f.name: f.default for f in dataclasses.fields(experiments.Config)}
    wanted = dataclasses.asdict(expected)
    if isinstance(record.get("config"), dict):
        recorded = {name: record["config"].get(name, default) for name, default in defaults.items()}
    elif area in CARRIED:
        recorded = dict(LEGACY.get(area, {}))
        recorded.update({name: record[field] for field, name in CARRIED[area].items() if field in record})
    else:
        return {"config": ("none recorded", "the configuration")}
    return {name: (value, wanted[name]) for name, value in recorded.items() if value != wanted[name]}


def _listed(keys: list, describe: Callable) -> str:
    names = [describe(k) for k in sorted(keys, key=repr)]
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _fields(stale: dict) -> str:
    return ", ".join(f"{name}={'/'.join(map(repr, sorted(got, key=repr)))} (the chapter: {want!r})"
                     for name, (got, want) in sorted(stale.items()))


def compare(area: str, records: list[dict], key: Callable, expected: dict, group: Callable, describe: Callable,
            extra_fix: str = "") -> list[str]:
    """Problems of ``records`` against ``expected`` (record key -> Config), one per group of keys
    (``group(key)`` -> (name, dataset or None)) and kind: keys without a record, records of keys not
    expected, records made with another configuration. ``extra_fix`` says what to do about the
    records of keys not expected (by default: measure the area again, which replaces them)."""
    found: dict = {}
    for r in records:
        found.setdefault(key(r), []).append(r)
    missing, extra, stale = {}, {}, {}
    for k, config in expected.items():
        if k not in found:
            missing.setdefault(group(k), []).append(k)
        for r in found.get(k, []):
            for name, (got, want) in differences(r, config, area).items():
                stale.setdefault(group(k), {}).setdefault(name, (set(), want))[0].add(got)
    for k in found.keys() - expected.keys():
        extra.setdefault(group(k), []).append(k)
    problems = []
    for (name, dataset), keys in missing.items():
        problems.append(f"{area}: {name}: no records of {_listed(keys, describe)}; re-measure: {rerun(area, dataset)}")
    for (name, dataset), keys in extra.items():
        fix = extra_fix or f"re-measure (which replaces them): {rerun(area, dataset)}"
        problems.append(f"{area}: {name}: records the benchmark no longer makes ({_listed(keys, describe)}); {fix}")
    for (name, dataset), fields in stale.items():
        problems.append(f"{area}: {name}: recorded with {_fields(fields)}; re-measure: {rerun(area, dataset)}")
    return problems


DELETE = "delete them from benchmarks/results.json (a run replaces only the records it makes)"


def check_quality(records: dict) -> list[str]:
    """The records of the trained models of the areas context, rnn, gated and beyond."""
    quality = [r for r in records.get("quality", []) if isinstance(r, dict)]
    key = lambda r: (r.get("dataset"), r.get("model"), r.get("seed"), r.get("split"))
    group = lambda k: (f"{k[0]} {k[1]}", k[0])
    describe = lambda k: f"seed {k[2]} ({k[3]})"
    problems, owned = [], set()
    for module, splits in QUALITY_AREAS.items():
        area = module.__name__.rsplit(".", 1)[-1]
        configs = module.configs()
        owned |= set(configs)
        expected = {(dataset, label, seed, split): dataclasses.replace(config, seed=seed)
                    for (dataset, label), config in configs.items() for seed in SEEDS for split in splits}
        mine = [r for r in quality if (r.get("dataset"), r.get("model")) in configs]
        problems += compare(area, mine, key, expected, group, describe, extra_fix=DELETE)
    orphans: dict = {}
    for r in quality:  # trained (it has a configuration), but by no area now
        if "config" in r and (r.get("dataset"), r.get("model")) not in owned:
            orphans.setdefault((r.get("dataset"), r.get("model")), []).append(key(r))
    for (dataset, model), keys in orphans.items():
        problems.append(f"quality: {dataset} {model}: records of a model that no area trains any more "
                        f"({_listed(keys, describe)}); {DELETE}")
    return problems


def _num(value) -> str:
    return format(value, "g") if isinstance(value, (int, float)) else repr(value)


def _best_point(rows: list[dict], chosen: tuple, name: str) -> list[str]:
    """A problem if the lowest validation loss of a complete grid of one cell and size is not at ``chosen``."""
    points = {(r["lr"], r["dropout"]): r.get("valid_nll", float("inf")) for r in rows}
    best = min(points, key=points.get)
    if best == chosen:
        return []
    return [f"grid: {name}: the recorded grid's best point is lr {_num(best[0])}, dropout {_num(best[1])} "
            f"(validation NLL {points[best]:.4f}), but experiments.CHOSEN holds lr {_num(chosen[0])}, dropout "
            f"{_num(chosen[1])} ({points.get(chosen, float('nan')):.4f}); set CHOSEN in notebooks/05-gated-rnns.md "
            "(for the RNN, also RNN_CONFIGS in notebooks/03-rnn.md) to the grid's choice and `make export`: "
            "this check then names the records to re-measure"]


def check_grid(records: dict) -> list[str]:
    """The grid's records; and for each cell and size whose grid is complete and made with its present
    configuration, that the point with the lowest validation loss is the one experiments.CHOSEN holds."""
    rows = [r for r in records.get("lr_grid", []) if isinstance(r, dict)]
    key = lambda r: (r.get("dataset"), r.get("cell"), r.get("hidden_size"), r.get("lr"), r.get("dropout"))
    group = lambda k: (f"{k[0]} {str(k[1]).upper()} {k[2]} units", k[0])
    describe = lambda k: f"lr {_num(k[3])} dropout {_num(k[4])}"
    expected = grid.configs()
    models = {k[:3]: experiments.CHOSEN.get(k[:3], (c.lr, c.dropout)) for k, c in expected.items()}
    problems = compare("grid", [r for r in rows if key(r)[:3] not in models], key, {}, group, describe)
    for model, chosen in models.items():
        mine = [r for r in rows if key(r)[:3] == model]
        found = compare("grid", mine, key, {k: c for k, c in expected.items() if k[:3] == model}, group, describe)
        # the best point of an incomplete or stale grid chooses nothing
        problems += found or _best_point(mine, chosen, group(model)[0])
    return problems


def check_memory(records: dict) -> list[str]:
    """The memory measurements: every model of benchmarks.memory.configs() with every seed, on the book."""
    rows = [r for r in records.get("memory", []) if isinstance(r, dict)]
    expected = {(label, seed): dataclasses.replace(config, seed=seed)
                for label, config in memory.configs().items() for seed in SEEDS}
    return compare("memory", rows, lambda r: (r.get("model"), r.get("seed")), expected,
                   lambda k: (f"time-machine {k[0]}", "time-machine"), lambda k: f"seed {k[1]}")


def check_recall(records: dict) -> list[str]:
    """The recall task: every cell at every span with every seed, and the GRU's runs with SGD."""
    rows = [r for r in records.get("recall", []) if isinstance(r, dict)]
    group = lambda k: (f"{k[0]}{', SGD' if k[3] == 'sgd' else ''}", None)
    describe = lambda k: f"k={k[1]} seed {k[2]}" + (f" lr {k[4]}" if k[3] == "sgd" else "")
    return compare("recall", rows, recall.record_key, recall.configs(), group, describe)


def check(records: dict) -> list[str]:
    """Every way in which ``records`` (the contents of results.json) fall short of the chapter's present
    configurations, each a sentence that ends with what to do; an empty list when they match."""
    return check_quality(records) + check_grid(records) + check_memory(records) + check_recall(records)
