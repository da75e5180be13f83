"""The benchmarks' consistency check (benchmarks/consistency.py, ``make bench-check``) on planted
records: nothing is trained and results.json is not read, so that `make test` never fails because
the records are older than a configuration."""

import dataclasses
import json
import types

import pytest
import torch

import experiments
from benchmarks import beyond, consistency, context, gated, grid, memory, recall, rnn, seq2seq
from benchmarks.common import SEEDS
from benchmarks.consistency import check
from experiments import measures

LM_SPLITS = ("train", "valid", "test")


def _as_stored(records: dict) -> dict:
    """``records`` as results.json holds them (JSON: tuples become lists, and so on)."""
    return json.loads(json.dumps(records))


def planted() -> dict:
    """Records of a full `make bench` made with the chapter's present configurations, in which each
    cell and size's lowest validation loss of the grid is at the point CHOSEN holds."""
    quality = [{"dataset": dataset, "model": label, "split": split, "seed": seed, "nll": 1.0,
                "config": dataclasses.asdict(dataclasses.replace(config, seed=seed))}
               for module, splits in ((context, LM_SPLITS), (rnn, LM_SPLITS), (gated, LM_SPLITS), (beyond, ("test",)),
                                      (seq2seq, ("test",)))
               for (dataset, label), config in module.configs().items() for seed in SEEDS for split in splits]
    quality += [{"dataset": "surnames", "model": "uniform", "split": "test", "seed": 0, "nll": 3.3}]  # untrained
    lr_grid = [{"dataset": d, "cell": cell, "hidden_size": size, "lr": lr, "dropout": p, "seed": 0,
                "valid_nll": 1.0 if experiments.CHOSEN[d, cell, size] == (lr, p) else 1.5 + lr + p,
                "patience": c.patience, "min_delta": c.min_delta, "max_epochs": c.epochs, "decays": c.decays,
                "config": dataclasses.asdict(c)} for (d, cell, size, lr, p), c in grid.configs().items()]
    memory_ = [{"dataset": "time-machine", "model": label, "seed": seed, "num_steps": c.num_steps,
                "batch_size": c.batch_size, "config": dataclasses.asdict(dataclasses.replace(c, seed=seed))}
               for label, c in memory.configs().items() for seed in SEEDS]
    recall_ = [{"model": name, "span": c.span, "seed": c.seed, "optimizer": c.optimizer, "lr": c.lr,
                "config": dataclasses.asdict(c)} for name, c in recall.plan(quick=False)]
    return _as_stored({"quality": quality, "lr_grid": lr_grid, "memory": memory_, "recall": recall_, "speed": []})


def _find(records: dict, kind: str, **match) -> list[dict]:
    found = [r for r in records[kind] if all(r.get(k) == v for k, v in match.items())]
    assert found, match
    return found


def test_records_made_with_the_present_configurations_are_consistent():
    assert check(planted()) == []


def test_a_record_made_with_another_configuration_is_a_problem_that_names_its_area_and_command():
    records = planted()
    for r in _find(records, "quality", dataset="time-machine", model="GRU"):
        r["config"]["lr"] *= 2
    lr = experiments.GATED_CONFIGS["time-machine", "GRU"].lr
    assert check(records) == [f"gated: time-machine GRU: recorded with lr={2 * lr!r} (the chapter: {lr!r}); "
                              "re-measure: python -m benchmarks.run --only gated --dataset time-machine"]


@pytest.mark.parametrize("kind,match,field,area", [
    ("quality", {"dataset": "surnames", "model": "RNN", "seed": 1}, "epochs", "rnn"),
    ("quality", {"dataset": "surnames", "model": "MLP"}, "hidden_size", "context"),
    ("quality", {"dataset": "spaces", "model": "both ways"}, "hidden_size", "beyond"),
    ("memory", {"model": "LSTM, 128 steps", "seed": 2}, "num_steps", "memory"),
    ("recall", {"model": "LSTM", "span": experiments.RECALL_SPANS[0]}, "hidden_size", "recall"),
    ("lr_grid", {"dataset": "surnames", "cell": "lstm", "hidden_size": 124}, "batch_size", "grid"),
], ids=lambda v: v if isinstance(v, str) and v.isalpha() else None)
def test_every_area_holds_its_records_to_the_chapters_configuration(kind, match, field, area):
    records = planted()
    for r in _find(records, kind, **match):
        r["config"][field] += 1
    problems = check(records)
    assert len(problems) == 1 and problems[0].startswith(f"{area}: ") and f"recorded with {field}=" in problems[0]
    assert f"re-measure: python -m benchmarks.run --only {area}" in problems[0], problems


def test_a_missing_seed_is_a_problem():
    records = planted()
    records["quality"] = [r for r in records["quality"]
                          if not (r["dataset"] == "surnames" and r["model"] == "causal CNN" and r["seed"] == 2)]
    assert check(records) == ["context: surnames causal CNN: no records of seed 2 (test), seed 2 (train), "
                              "seed 2 (valid); re-measure: python -m benchmarks.run --only context --dataset surnames"]


def test_records_of_a_model_no_area_trains_are_to_be_deleted():
    records = planted()
    old = _find(records, "quality", dataset="surnames", model="GRU")
    records["quality"] += [r | {"model": "GRU, 100 units"} for r in old]
    records["quality"] += [r | {"seed": 3} for r in _find(records, "quality", dataset="spaces", model="both ways")]
    problems = check(records)
    assert len(problems) == 2, problems
    assert problems[0].startswith("beyond: spaces both ways: records the benchmark no longer makes (seed 3 (test))")
    assert problems[1].startswith("quality: surnames GRU, 100 units: records of a model that no area trains")
    assert all(p.endswith("delete them from benchmarks/results.json (a run replaces only the records it makes)")
               for p in problems)


def test_chosen_that_is_not_the_best_point_of_the_recorded_grid_is_a_problem():
    records = planted()
    lr, p = experiments.LR_GRID["surnames"][-1], experiments.DROPOUT_GRID["surnames"][-1]
    assert experiments.CHOSEN["surnames", "gru", 145] != (lr, p)
    _find(records, "lr_grid", dataset="surnames", cell="gru", hidden_size=145, lr=lr, dropout=p)[0]["valid_nll"] = 0.5
    problems = check(records)
    assert len(problems) == 1 and problems[0].startswith(
        f"grid: surnames GRU 145 units: the recorded grid's best point is lr {lr:g}, dropout {p:g} "
        "(validation NLL 0.5000), but experiments.CHOSEN holds"), problems
    assert "set CHOSEN in notebooks/05-gated-rnns.md" in problems[0]


def test_an_incomplete_or_stale_grid_is_re_measured_before_it_chooses_anything():
    records = planted()
    rows = _find(records, "lr_grid", dataset="time-machine", cell="rnn")
    for r in rows:
        r["valid_nll"] = 2.0 - r["lr"]  # the best point moves, but these records are stale anyway
        r["config"]["clip"] = 5.0
    records["lr_grid"].remove(_find(records, "lr_grid", dataset="surnames", cell="lstm", hidden_size=256)[0])
    problems = check(records)
    assert len(problems) == 2, problems
    assert problems[0].startswith("grid: surnames LSTM 256 units: no records of lr ")
    assert problems[1].startswith("grid: time-machine RNN 256 units: recorded with clip=5.0 (the chapter: 1.0)")
    assert problems[1].endswith("re-measure: python -m benchmarks.run --only grid --dataset time-machine")


def test_grid_points_off_the_grid_are_a_problem():
    records = planted()
    extra = dict(_find(records, "lr_grid", dataset="surnames", cell="rnn")[0], lr=0.5)
    records["lr_grid"].append(extra)
    assert check(records) == [f"grid: surnames RNN 256 units: records the benchmark no longer makes (lr 0.5 dropout "
                              f"{extra['dropout']:g}); re-measure (which replaces them): python -m benchmarks.run "
                              "--only grid --dataset surnames"]


def test_older_records_without_a_configuration_are_held_to_the_fields_they_carry():
    records = planted()
    for kind in ("lr_grid", "memory", "recall"):
        for r in records[kind]:
            del r["config"]
    assert check(records) == []
    for r in _find(records, "memory", model="GRU"):
        r["num_steps"] = 16
    assert check(records) == ["memory: time-machine GRU: recorded with num_steps=16 (the chapter: 32); re-measure: "
                              "python -m benchmarks.run --only memory --dataset time-machine"]
    without = planted()  # a trained model's quality record always has its configuration
    del _find(without, "quality", dataset="surnames", model="MLP", seed=0, split="test")[0]["config"]
    assert check(without) == ["context: surnames MLP: recorded with config='none recorded' (the chapter: "
                              "'the configuration'); re-measure: python -m benchmarks.run --only context --dataset "
                              "surnames"]


def test_the_grids_oldest_records_were_made_with_patience_1_and_min_delta_0_01():
    oldest = {"dataset": "surnames", "cell": "gru", "hidden_size": 8, "lr": 0.01, "dropout": 0.2, "seed": 0,
              "epochs": 7, "valid_nll": 2.0}  # "epochs" is what the run took, not Config.epochs
    config = experiments.Config("surnames", "rnn", cell="gru", hidden_size=8, lr=0.01, dropout=0.2, epochs=12)
    assert consistency.differences(oldest, dataclasses.replace(config, patience=1, min_delta=0.01), "grid") == {}
    assert consistency.differences(oldest, dataclasses.replace(config, patience=2, min_delta=0.01), "grid") == {
        "patience": (1, 2)}
    assert consistency.differences(oldest | {"max_epochs": 10}, config, "grid") == {"epochs": (10, 12),
                                                                                   "min_delta": (0.01, 0.0)}


def test_a_field_added_to_config_after_a_record_counts_at_its_default():
    config = experiments.Config("surnames", "rnn", parts=3)
    recorded = dataclasses.asdict(config)
    del recorded["parts"], recorded["span"]  # fields the record predates
    assert consistency.differences({"config": recorded}, config) == {"parts": (1, 3)}
    assert consistency.differences({"config": recorded}, dataclasses.replace(config, parts=1)) == {}
    assert consistency.differences({"config": recorded | {"retired": 1}}, dataclasses.replace(config, parts=1)) == {}


def test_consistency_of_nothing_recorded_names_every_area():
    problems = check({})
    assert {p.split(":")[0] for p in problems} == {"context", "rnn", "gated", "beyond", "seq2seq", "grid", "memory",
                                                   "recall"}


# ---------------------------------------------------------------------------------------------
# What the areas train is what the check expects of their records


def _fake_run(config, **_):
    chosen = experiments.CHOSEN.get((config.dataset, config.cell, config.hidden_size))
    nll = 1.0 if chosen == (config.lr, config.dropout) else 2.0
    return types.SimpleNamespace(config=config, model=torch.nn.Linear(1, 1), nll=dict.fromkeys(LM_SPLITS, nll),
                                 history=types.SimpleNamespace(train_loss=[nll], seconds=0.0, steps=3))


def test_the_records_a_full_run_makes_pass_the_check(monkeypatch):
    monkeypatch.setattr(experiments, "train", _fake_run)
    monkeypatch.setattr(measures, "recall_accuracy", lambda model, k, seed=2: 1.0)
    records = _as_stored({"quality": rnn.run(quick=False) + gated.run(quick=False), "lr_grid": grid.run(quick=False),
                          "recall": recall.run(quick=False)})
    assert consistency.check_quality(records) == [p for p in consistency.check_quality({})
                                                  if p.startswith(("context", "beyond", "seq2seq"))]
    assert consistency.check_grid(records) == consistency.check_recall(records) == []


# ---------------------------------------------------------------------------------------------
# python -m benchmarks.run --check, and the check at the end of a full run


def test_bench_check_exits_1_and_prints_each_problem(tmp_path, monkeypatch, capsys):
    from benchmarks import run as bench

    monkeypatch.setattr(bench, "HERE", tmp_path)
    records = planted()
    (tmp_path / "results.json").write_text(json.dumps(records))
    assert bench.main(["--check"]) == 0
    assert "results.json matches the chapter's configurations" in capsys.readouterr().out
    records["memory"] = [r for r in records["memory"] if r["seed"] != 1]
    (tmp_path / "results.json").write_text(json.dumps(records))
    assert bench.main(["--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[bench-check] memory: time-machine RNN: no records of seed 1; re-measure: "
                             "python -m benchmarks.run --only memory --dataset time-machine")
    assert len(out) == len(memory.configs()) + 1 and "4 problem(s)" in out[-1]
    with pytest.raises(SystemExit):  # the check reads the whole of results.json: no areas, no datasets
        bench.main(["--check", "--only", "grid"])


def test_a_full_run_ends_with_the_check_as_a_warning(tmp_path, monkeypatch, capsys):
    from benchmarks import run as bench

    monkeypatch.setenv("CHAPTER_QUICK", "0")  # main sets it for the run; put it back afterwards
    monkeypatch.setattr(bench, "HERE", tmp_path)
    (tmp_path / "recall.py").write_text("")
    monkeypatch.setattr("benchmarks.report.write_report", lambda results, path: path.write_text("report\n"))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: types.SimpleNamespace(run=lambda quick: []))
    assert bench.main(["--only", "recall"]) == 0  # stale records do not fail a run after the fact
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[bench] WARNING")]
    assert any(line.startswith("[bench] WARNING: recall: RNN: no records of") for line in warnings)
    assert bench.main(["--only", "recall", "--quick"]) == 0  # quick records never match: not checked
    assert "WARNING" not in capsys.readouterr().out
