"""Read ``results.json`` and summarise it: seed statistics, tables for the notebooks, RESULTS.md.

The notebooks import ``load_records``, ``seed_summary``, ``lr_grid_table``, ``recall_seed_table``,
``cell_speed_table`` and ``scoreboard`` to show the multi-seed results and the recorded timings next
to their own single run; ``write_report`` writes RESULTS.md and the bar chart. Nothing here trains
anything.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
DATASETS = {"surnames": "Spanish surnames (nats/char)", "time-machine": "The Time Machine (nats/char)"}

# The issues' targets (met or not, RESULTS.md reports what was measured), on the mean over seeds.
TARGETS = {
    ("surnames", "RNN"): ("nll", "<=", 2.08),
    ("time-machine", "RNN"): ("perplexity", "<=", 4.5),
    ("surnames", "best gated"): ("nll", "<=", 2.00),
    ("time-machine", "best gated"): ("perplexity", "<=", 4.0),
    ("first-names", "best"): ("accuracy", ">=", 0.95),
    ("numbers", "seq2seq GRU"): ("exact_beam_1", ">=", 0.95),  # greedy decoding, held-out numbers below 10**6
}


def load_records(path: Path = RESULTS) -> dict:
    """The contents of results.json (empty lists if the benchmark has not been run)."""
    if not path.exists():
        return {"quality": [], "speed": [], "lr_grid": [], "recall": []}
    return json.loads(path.read_text())


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def seed_summary(records: dict, split: str = "test", metric: str = "nll") -> dict:
    """(dataset, model) -> {"mean", "std", "n"} of ``metric`` over the recorded seeds of one split."""
    groups: dict[tuple, list[float]] = {}
    for r in records.get("quality", []):
        if r["split"] == split and metric in r:
            groups.setdefault((r["dataset"], r["model"]), []).append(r[metric])
    return {key: _mean_std(values) for key, values in groups.items()}


def lr_grid_table(records: dict) -> str:
    """The grid: validation NLL of every cell and hidden size at every learning rate (a row each) and
    dropout rate (a column each), seed 0; the lowest of each cell and size is marked *."""
    rows = records.get("lr_grid", [])
    if not rows:
        return "(no grid recorded)"
    rates = sorted({r["dropout"] for r in rows})
    lines = ["validation NLL (nats/char) after training with each learning rate and dropout rate; * = chosen",
             f"{'dataset':13s} {'cell':5s} {'units':>5s} {'lr':>6s}"
             + "".join(f"{f'dropout {d:g}':>13s}" for d in rates)]
    for dataset in DATASETS:
        for cell in ("rnn", "gru", "lstm"):
            for size in sorted({r["hidden_size"] for r in rows if r["dataset"] == dataset and r["cell"] == cell},
                               reverse=True):
                mine = {(r["lr"], r["dropout"]): r["valid_nll"] for r in rows
                        if r["dataset"] == dataset and r["cell"] == cell and r["hidden_size"] == size}
                best = min(mine, key=mine.get)
                for lr in sorted({lr for lr, _ in mine}):
                    cells = "".join(f"{mine[lr, d]:12.3f}{'*' if (lr, d) == best else ' '}" if (lr, d) in mine
                                    else f"{'':13s}" for d in rates)
                    lines.append(f"{dataset:13s} {cell.upper():5s} {size:5d} {lr:6g}{cells}".rstrip())
    return "\n".join(lines)


def recall_seed_table(records: dict, sgd: bool = True) -> str:
    """Accuracy on the recall task per cell and span: mean (min-max) over the recorded seeds; with
    ``sgd``, also the runs trained with SGD."""
    rows = records.get("recall", [])
    if not rows:
        return "(no multi-seed recall runs recorded)"
    spans = sorted({r["span"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows if r.get("optimizer", "adamw") == "adamw"))
    lines = ["test accuracy over seeds: mean (min-max)",
             f"{'model':20s}" + "".join(f"{'k=' + str(k):>17s}" for k in spans)]
    for model in models:
        cells = []
        for k in spans:
            acc = [r["accuracy"] for r in rows if r["model"] == model and r["span"] == k
                   and r.get("optimizer", "adamw") == "adamw"]
            cells.append(f"{statistics.fmean(acc):.2f} ({min(acc):.2f}-{max(acc):.2f})" if acc else "")
        lines.append(f"{model:20s}" + "".join(f"{c:>17s}" for c in cells))
    sgd_rows = [r for r in rows if r.get("optimizer") == "sgd"] if sgd else []
    if sgd_rows:
        lines.append("\nthe same task trained with SGD (momentum 0.9) instead of AdamW:")
        for r in sorted(sgd_rows, key=lambda r: (r["model"], r["span"], r["lr"], r["seed"])):
            lines.append(f"  {r['model']:5s} k={r['span']:3d} lr {r['lr']:<5g} seed {r['seed']}: "
                         f"accuracy {r['accuracy']:.2f}")
    return "\n".join(lines)


def _pyplot():
    """matplotlib's pyplot with a headless backend (only inside the benchmark process) and stable SVG ids."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "chapter-bench"
    return plt


def _save(plt, fig, path: Path) -> None:
    """Write the figure without a date, so that an unchanged chart gives an unchanged file."""
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def _first_offset(name: str) -> int:
    """The first offset of a range of ``measures.offset_ranges`` ("1", "3-4", ...): results.json stores
    the ranges sorted as text, so "17-32" before "2"."""
    return int(name.split("-")[0])


def memory_summary(records: dict) -> dict:
    """model -> {"excess": {range: mean/std}, "spans": [per seed], "nll": mean/std} over the seeds of the
    recorded memory measurements (benchmarks/memory.py), models in recorded order, ranges by offset."""
    groups: dict[str, list[dict]] = {}
    for r in records.get("memory", []):
        groups.setdefault(r["model"], []).append(r)
    return {model: {"excess": {k: _mean_std([r["excess"][k] for r in rows])
                               for k in sorted(rows[0]["excess"], key=_first_offset)},
                    "spans": sorted(r["span"] for r in rows), "nll": _mean_std([r["nll"] for r in rows])}
            for model, rows in groups.items()}


def memory_table(records: dict) -> str:
    """The excess loss by offset after a reset, by range of offsets: mean ± std over the seeds, with
    each model's memory span (per seed) and test NLL read as one stream."""
    summary = memory_summary(records)
    if not summary:
        return "(no memory measurements recorded)"
    ranges = list(next(iter(summary.values()))["excess"])
    lines = ["excess loss (nats/char) at each offset after a reset of the state, minus the loss with the whole",
             "history; mean ± std over seeds, by range of offsets",
             f"{'offsets':>9s}" + "".join(f"{m:>18s}" for m in summary)]
    for k in ranges:
        lines.append(f"{k:>9s}" + "".join(f"{s['excess'][k]['mean']:+10.4f} ± {s['excess'][k]['std']:.4f}"
                                          for s in summary.values()))
    lines.append(f"{'span':>9s}" + "".join(f"{'/'.join(map(str, s['spans'])):>18s}" for s in summary.values()))
    lines.append(f"{'test NLL':>9s}" + "".join(f"{s['nll']['mean']:11.3f} ± {s['nll']['std']:.3f}"
                                              for s in summary.values()))
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def scoreboard(records: dict, datasets=tuple(DATASETS)) -> str:
    """A Markdown table per dataset: every language model's held-out NLL, mean ± std over seeds."""
    quality = records.get("quality", [])
    valid, test = seed_summary(records, "valid"), seed_summary(records, "test")
    out = []
    for dataset in datasets:
        models = list(dict.fromkeys(r["model"] for r in quality if r["dataset"] == dataset))
        if not models:
            continue
        first = {m: next(r for r in quality if r["dataset"] == dataset and r["model"] == m) for m in models}
        models.sort(key=lambda m: -test[dataset, m]["mean"] if m == "uniform" else test[dataset, m]["mean"])
        out += [f"**{DATASETS[dataset]}**", "",
                "| model | parameters | seeds | valid NLL | test NLL | test perplexity | training (s) |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for m in models:
            v, t = valid[dataset, m], test[dataset, m]
            spread = f" ± {t['std']:.3f}" if t["n"] > 1 else ""
            out.append(f"| {m} | {_fmt(first[m].get('params'), ',d')} | {t['n']} | {v['mean']:.3f} | "
                       f"{t['mean']:.3f}{spread} | {math.exp(t['mean']):.2f} | "
                       f"{_fmt(first[m].get('train_seconds'), '.0f')} |")
        out.append("")
    return "\n".join(out) if out else "*No results recorded yet.*"


def _targets(records: dict) -> list[str]:
    test = seed_summary(records, "test")
    lines = ["| target | model | measured (mean over seeds) | met |", "| --- | --- | ---: | --- |"]
    for (dataset, model), (metric, op, value) in TARGETS.items():
        if metric not in ("nll", "perplexity"):  # an accuracy: of the named model, or the best
            pool = {m: s for (d, m), s in seed_summary(records, "test", metric=metric).items()
                    if d == dataset and model in (m, "best")}
        elif model == "best gated":
            pool = {m: s for (d, m), s in test.items() if d == dataset and m.startswith(("GRU", "LSTM"))}
        else:
            pool = {m: s for (d, m), s in test.items() if d == dataset and m == model}
        if not pool:
            continue
        name, s = (min if metric in ("nll", "perplexity") else max)(pool.items(), key=lambda kv: kv[1]["mean"])
        measured = math.exp(s["mean"]) if metric == "perplexity" else s["mean"]
        met = measured <= value if op == "<=" else measured >= value
        lines.append(f"| {dataset}: {metric} {op} {value} | {name} | {measured:.3f} ± "
                     f"{s['std'] * (measured if metric == 'perplexity' else 1):.3f} | {'yes' if met else '**no**'} |")
    return lines


def speed_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    keys = [k for k in ("kind", "model", "shape", "device", "ours_ms", "reference_ms", "ratio", "target", "note")
            if any(k in r for r in records)]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for r in records:
        lines.append("| " + " | ".join(_fmt(r.get(k), ".2f") if isinstance(r.get(k), float)
                                       else str(r.get(k, "")) for k in keys) + " |")
    return lines


def cell_speed_table(records: dict, device: str) -> str:
    """Each cell's time as a multiple of torch.nn's (forward + backward), a row per shape and cell
    and a column per variant, from the speed records of the device whose name starts with ``device``."""
    rows = [r for r in records.get("speed", []) if r.get("kind") == "cell fwd+bwd" and r["device"].startswith(device)]
    if not rows:
        return f"(no {device} timings recorded)"
    cells = ("RNN", "GRU", "LSTM")
    table: dict[tuple, dict] = {}
    for r in rows:  # model "chapter.GRU (fast, CUDA graph) vs torch.nn.GRU", shape "B=64 T=64 D=32 H=256"
        name, variant = r["model"].removeprefix("chapter.").split(" vs ")[0].removesuffix(")").split(" (", 1)
        shape = tuple(int(part.split("=")[1]) for part in r["shape"].split())
        table.setdefault((shape, cells.index(name)), {})[variant] = r["ratio"]
    variants = list(dict.fromkeys(v for ratios in table.values() for v in ratios))
    lines = [f"time as a multiple of torch.nn's, forward + backward; {rows[0]['device']}",
             f"{'cell':5s} {'(B, T, D, H)':22s}" + "".join(f"{v:>18s}" for v in variants)]
    for (shape, cell), ratios in sorted(table.items()):
        lines.append(f"{cells[cell]:5s} {str(shape):22s}" + "".join(
            f"{ratios[v]:18.2f}" if v in ratios else f"{'':18s}" for v in variants))
    return "\n".join(lines)


def seq2seq_length_table(records: dict) -> str:
    """The encoder–decoder's exact match and character error rate by input length (greedy decoding),
    mean over the recorded seeds, for the held-out numbers below a million and for longer ones."""
    rows = [r for r in records.get("quality", []) if r["dataset"] == "numbers" and "by_length" in r]
    if not rows:
        return "(no encoder–decoder records)"
    lines = [f"greedy decoding, mean over {len(rows)} seeds",
             f"{'numbers':26s} {'characters':>10s} {'count':>6s} {'exact match':>12s} {'CER':>6s}"]
    for group in sorted(rows[0]["by_length"], reverse=True):  # "below a million, ..." first
        for i, row in enumerate(rows[0]["by_length"][group]):
            exact = statistics.mean(r["by_length"][group][i]["exact"] for r in rows)
            cer = statistics.mean(r["by_length"][group][i]["cer"] for r in rows)
            lines.append(f"{group:26s} {row['low']:>4d}-{row['high'] - 1:<5d} {row['count']:6d} "
                         f"{exact:12.3f} {cer:6.3f}")
    return "\n".join(lines)


def _other_tables(records: dict) -> list[str]:
    """Notebooks 06 and 07: accuracy (first names), F1 (spaces), agreement with the requested sex
    (conditional names) and exact match (numbers), mean ± std over seeds."""
    lines = []
    for dataset, metrics in (("first-names", ("accuracy",)), ("spaces", ("precision", "recall", "F1")),
                             ("conditional-names", ("classifier_agreement", "ine_agreement", "real_names", "copied")),
                             ("numbers", ("exact_beam_1", "exact_beam_4"))):
        rows = [r for r in records.get("quality", []) if r["dataset"] == dataset and r["split"] == "test"]
        if not rows:
            continue
        lines += [f"## {dataset} (test split)", "", "| model | seeds | " + " | ".join(metrics) + " |",
                  "| --- | ---: |" + " ---: |" * len(metrics)]
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model]
            stats = [_mean_std([r[m] for r in mine if m in r]) for m in metrics]
            lines.append(f"| {model} | {len(mine)} | " + " | ".join(f"{s['mean']:.4f} ± {s['std']:.4f}"
                                                                   for s in stats) + " |")
        lines.append("")
    return lines


def bar_chart(records: dict, path: Path) -> bool:
    test = seed_summary(records, "test")
    datasets = [d for d in DATASETS if any(key[0] == d for key in test)]
    if not datasets:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        rows = sorted(((m, s) for (dd, m), s in test.items() if dd == d and m != "uniform"),
                      key=lambda kv: kv[1]["mean"])
        names, means, stds = [m for m, _ in rows], [s["mean"] for _, s in rows], [s["std"] for _, s in rows]
        ax.barh(names, means, xerr=stds, color=[f"C{i % 10}" for i in range(len(rows))], capsize=3)
        for i, mean in enumerate(means):
            ax.text(mean, i, f"  {mean:.3f}", va="center", fontsize=7)
        ax.set(xlabel="test NLL, mean ± std over seeds (nats/char)", title=DATASETS[d])
        ax.invert_yaxis()
        ax.set_xlim(min(means) - 0.15, max(means) + 0.1)
    _save(plt, fig, path)
    return True


def write_report(results: dict, path: Path) -> None:
    quality = results.get("quality", [])
    assert all(math.isfinite(r["nll"]) for r in quality if r["dataset"] in DATASETS), "non-finite NLL in results"
    commits = sorted({r.get("commit", "?") for r in quality + results.get("speed", [])})
    devices = sorted({r.get("device", "?") for r in quality + results.get("speed", [])})
    lines = ["# Benchmark results", "",
             "Written by `make bench` (`python -m benchmarks.run`) from `results.json`; do not edit by hand.",
             "NLL is the mean next-character negative log-likelihood in nats; perplexity = exp(NLL).",
             "Every model is trained with the configuration its notebook uses, with seeds 0, 1 and 2;",
             "seed 0 is the run the notebooks print.", "",
             f"Commits: {', '.join(commits)}. Devices: {'; '.join(devices)}.", "",
             "## Targets", ""] + _targets(results) + ["", "## Language models", "", scoreboard(results)]
    chart = path.with_name(path.stem.replace("RESULTS", "results") + ".svg")
    if bar_chart(results, chart):
        lines += [f"![test NLL per model]({chart.name})", ""]
    memory_devices = sorted({r.get("device", "?") for r in results.get("memory", [])})
    lines += ["## How much history the recurrent models use", "",
              f"Measured on {'; '.join(memory_devices)}: a run cached under another thread count is trained again, "
              "so seed 0 here need not be the notebooks' run.", "",
              "```", memory_table(results), "```", ""]
    lines += ["## Learning-rate grid", "", "```", lr_grid_table(results), "```", "",
              "## Recall task", "", "```", recall_seed_table(results), "```", ""]
    lines += _other_tables(results)
    lines += ["## The encoder–decoder by input length", "", "```", seq2seq_length_table(results), "```", ""]
    if results.get("speed"):
        lines += ["## Speed", ""] + speed_table(results["speed"]) + [""]
    path.write_text("\n".join(lines))
