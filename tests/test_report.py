"""The benchmark report's tables, on made-up records (nothing is trained); the benchmark driver and
the commit stamp of its records."""

import dataclasses
import math
import subprocess
import types

import pytest
import torch

import experiments
from benchmarks.report import cell_speed_table, lr_grid_table, memory_table, recall_seed_table, seed_summary
from chapterkit import git_commit


def _quality(model, nlls, dataset="time-machine"):
    return [{"dataset": dataset, "model": model, "split": "test", "seed": s, "nll": v, "perplexity": math.exp(v)}
            for s, v in enumerate(nlls)]


def test_seed_summary_gives_mean_and_sample_std():
    s = seed_summary({"quality": _quality("RNN", [1.0, 2.0, 3.0])})
    assert s["time-machine", "RNN"]["mean"] == 2.0
    assert math.isclose(s["time-machine", "RNN"]["std"], 1.0)  # sample standard deviation (n - 1)


def test_memory_table_averages_each_range_over_seeds_and_lists_the_spans():
    rows = [{"model": "LSTM", "seed": s, "num_steps": 32, "nll": 1.36 + d, "span": span,
             "excess": {"1": 1.8 + d, "2-2": 0.1, "3-4": 0.004 - d}}
            for s, (d, span) in enumerate(((0.0, 8), (0.02, 16)))]
    table = memory_table({"memory": rows})
    assert "+1.8100 ± 0.0141" in table and "+0.0040 ± 0.0141" not in table and "-0.0060 ± 0.0141" in table
    assert "8/16" in table and "1.370 ± 0.014" in table
    assert memory_table({}) == "(no memory measurements recorded)"


def test_memory_table_lists_the_ranges_by_offset_though_results_json_sorts_them_as_text():
    excess = dict(sorted({"1": 1.5, "2": 0.5, "3-4": 0.3, "9-16": 0.002, "17-32": 0.001}.items()))
    assert list(excess) == ["1", "17-32", "2", "3-4", "9-16"]  # as json.dumps(sort_keys=True) writes them
    table = memory_table({"memory": [{"model": "RNN", "seed": 0, "num_steps": 32, "nll": 1.5, "span": 8,
                                      "excess": excess}]})
    assert [line.split()[0] for line in table.splitlines()[3:8]] == ["1", "2", "3-4", "9-16", "17-32"]


def test_recall_table_reports_mean_and_range():
    rows = [{"model": "RNN", "span": 10, "seed": s, "accuracy": a} for s, a in enumerate((0.25, 0.23, 1.0))]
    assert "0.49 (0.23-1.00)" in recall_seed_table({"recall": rows})


def test_grid_table_has_a_row_per_learning_rate_and_marks_each_cells_best():
    rows = [{"dataset": "surnames", "cell": "gru", "hidden_size": h, "lr": lr, "dropout": d, "valid_nll": v}
            for h, lr, d, v in ((256, 1e-3, 0.0, 2.10), (256, 1e-3, 0.2, 2.05), (256, 1e-2, 0.0, 2.01),
                                (256, 1e-2, 0.2, 2.07), (145, 1e-3, 0.0, 2.04), (145, 1e-3, 0.2, 2.08))]
    lines = lr_grid_table({"lr_grid": rows}).splitlines()
    assert "dropout 0" in lines[1] and "dropout 0.2" in lines[1]
    assert lines[2].split()[2:] == ["256", "0.001", "2.100", "2.050"]
    assert lines[3].split()[2:] == ["256", "0.01", "2.010*", "2.070"]  # each size has its own best point
    assert lines[4].split()[2:] == ["145", "0.001", "2.040*", "2.080"]
    assert lr_grid_table({}) == "(no grid recorded)"


def test_grid_table_leaves_blank_the_points_a_dataset_was_not_tried_with():
    rows = [{"dataset": d, "cell": "rnn", "hidden_size": 256, "lr": 1e-2, "dropout": p, "valid_nll": v}
            for d, p, v in (("surnames", 0.0, 2.1), ("time-machine", 0.0, 1.5), ("time-machine", 0.6, 1.4))]
    header, surnames, book = lr_grid_table({"lr_grid": rows}).splitlines()[1:]
    assert header.endswith("dropout 0.6")
    assert surnames.endswith("2.100*")  # no column for dropout 0.6, and no trailing blanks
    assert book.split()[-2:] == ["1.500", "1.400*"]


def test_cell_speed_table_has_a_row_per_shape_and_cell_and_a_column_per_variant():
    def record(name, variant, shape, ratio, device="cuda: Some GPU (torch 9)"):
        return {"kind": "cell fwd+bwd", "model": f"chapter.{name} ({variant}) vs torch.nn.{name}", "shape": shape,
                "device": device, "ratio": ratio}

    speed = [record("LSTM", "fast", "B=64 T=8 D=4 H=16", 3.0),
             record("GRU", "fast, CUDA graph", "B=64 T=8 D=4 H=16", 0.9),
             record("GRU", "fast", "B=64 T=8 D=4 H=16", 2.5), record("RNN", "fast", "B=8 T=8 D=4 H=16", 4.0),
             record("RNN", "fast", "B=8 T=8 D=4 H=16", 1.1, device="cpu"), {"kind": "export", "device": "cpu"}]
    lines = cell_speed_table({"speed": speed}, "cuda").splitlines()
    assert lines[0].endswith("cuda: Some GPU (torch 9)")
    assert lines[1].split()[-4:] == ["fast", "fast,", "CUDA", "graph"]
    assert [line.split()[0] for line in lines[2:]] == ["RNN", "GRU", "LSTM"]  # smaller shape first, then cell order
    assert lines[2].split()[-1] == "4.00" and lines[3].split()[-2:] == ["2.50", "0.90"]
    assert lines[4].split()[-1] == "3.00"  # no CUDA-graph timing: the column is left empty
    assert cell_speed_table({"speed": speed}, "cpu").splitlines()[2].split()[-1] == "1.10"
    assert cell_speed_table({"speed": speed}, "mps") == "(no mps timings recorded)"


# ---------------------------------------------------------------------------------------------
# The benchmark driver (benchmarks/run.py) and the commit stamp on its records


def test_bench_quick_trains_with_tiny_budgets_and_a_full_bench_never_does(tmp_path, monkeypatch):
    from benchmarks import run as bench

    seen = []
    area = types.SimpleNamespace(run=lambda quick: seen.append((quick, experiments.quick_mode())) or [])
    monkeypatch.setattr(bench, "HERE", tmp_path)  # results and report go to tmp_path
    (tmp_path / "rnn.py").write_text("")
    monkeypatch.setattr("benchmarks.report.write_report", lambda results, path: path.write_text("report\n"))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: area)
    monkeypatch.setenv("CHAPTER_QUICK", "1")  # left over in a shell: must not shrink a full benchmark
    assert bench.main(["--only", "rnn"]) == 0
    assert bench.main(["--only", "rnn", "--quick"]) == 0
    assert seen == [(False, False), (True, True)]
    assert {p.name for p in tmp_path.iterdir()} == {"rnn.py", "results.json", "RESULTS.md", "results-quick.json",
                                                     "RESULTS-quick.md"}


def test_bench_for_one_dataset_replaces_only_that_datasets_records(tmp_path, monkeypatch):
    import json

    import pytest

    from benchmarks import run as bench

    seen = []

    def grid(quick, datasets=experiments.DATASETS):
        seen.append(datasets)
        return [{"dataset": d, "cell": "rnn", "lr": 1.0} for d in datasets]

    monkeypatch.setattr(bench, "HERE", tmp_path)
    (tmp_path / "grid.py").write_text("")
    old = [{"dataset": "surnames", "cell": "rnn", "lr": 0.5}, {"dataset": "time-machine", "cell": "rnn", "lr": 0.5}]
    (tmp_path / "results.json").write_text(json.dumps({"quality": [], "speed": [], "lr_grid": old}))
    monkeypatch.setattr("benchmarks.report.write_report", lambda results, path: path.write_text("report\n"))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: types.SimpleNamespace(run=grid))
    assert bench.main(["--only", "grid", "--dataset", "time-machine"]) == 0
    assert seen == [("time-machine",)]
    kept = json.loads((tmp_path / "results.json").read_text())["lr_grid"]
    assert sorted((r["dataset"], r["lr"]) for r in kept) == [("surnames", 0.5), ("time-machine", 1.0)]
    assert bench.main(["--only", "grid"]) == 0  # without --dataset the area's records are replaced whole
    assert seen[-1] == experiments.DATASETS
    assert len(json.loads((tmp_path / "results.json").read_text())["lr_grid"]) == 2
    with pytest.raises(SystemExit):  # the recall task has no dataset to choose
        bench.main(["--only", "recall", "--dataset", "surnames"])


def test_bench_names_the_device_the_models_train_on(monkeypatch):
    from benchmarks.run import device_name

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine ...
    monkeypatch.setenv("CHAPTER_DEVICE", "cpu")  # ... told to train on the CPU
    assert device_name().startswith("cpu: ")


def test_commit_stamp_is_dirty_only_when_more_than_the_outputs_changed(tmp_path):
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "benchmarks").mkdir()
    files = ["chapter.py", "notebooks/01-x.ipynb", "benchmarks/results.json", "benchmarks/RESULTS.md"]
    for f in files:
        (tmp_path / f).write_text("1\n")
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(git + cmd, cwd=tmp_path, check=True)
    clean = git_commit(tmp_path)
    assert clean != "unknown" and not clean.endswith("+dirty")
    for f in files[1:]:  # outputs of running the chapter and the benchmarks
        (tmp_path / f).write_text("2\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "chapter.py").write_text("2\n")
    assert git_commit(tmp_path) == clean + "+dirty"


def test_the_long_truncation_changes_only_the_piece_length_and_the_rows():
    from benchmarks.memory import LONG_STEPS, configs, long_truncation

    base = experiments.GATED_CONFIGS["time-machine", "LSTM"]
    long = configs()[f"LSTM, {LONG_STEPS} steps"]
    assert long.num_steps == LONG_STEPS and long.batch_size * LONG_STEPS == base.batch_size * base.num_steps
    assert dataclasses.replace(long, num_steps=base.num_steps, batch_size=base.batch_size) == base
    with pytest.raises(ValueError, match="not a multiple of LONG_STEPS"):
        long_truncation(dataclasses.replace(base, batch_size=3))  # 3 * 32 characters: no whole pieces of 128
