"""Write benchmarks/RESULTS.md (tables) and benchmarks/results.svg (bar chart) from results.json."""

from __future__ import annotations

import math
from pathlib import Path

# The issues' targets for the test split (met or not, RESULTS.md reports what was measured).
TARGETS = {
    ("surnames", "n-gram"): "nll <= 2.18",
    ("surnames", "MLP"): "nll <= 2.12",
    ("surnames", "causal CNN"): "nll <= 2.08",
    ("surnames", "RNN (from scratch)"): "nll <= 2.08",
    ("time-machine", "RNN (from scratch)"): "perplexity <= 4.5",
    ("surnames", "GRU (from scratch)"): "nll <= 2.00 (best gated)",
    ("surnames", "LSTM (from scratch)"): "nll <= 2.00 (best gated)",
    ("time-machine", "GRU (from scratch)"): "perplexity <= 4.0 (best gated)",
    ("time-machine", "LSTM (from scratch)"): "perplexity <= 4.0 (best gated)",
}
DATASETS = {"surnames": "Spanish surnames (nats/char)", "time-machine": "The Time Machine (nats/char)"}


def _fmt(x, digits=3):
    return "" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def quality_table(records: list[dict], dataset: str) -> list[str]:
    rows = [r for r in records if r["dataset"] == dataset]
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| model | params | train s | train NLL | valid NLL | test NLL | test perplexity | target | met |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for m in models:
        by_split = {r["split"]: r for r in rows if r["model"] == m}
        test = by_split.get("test", {})
        any_r = next(iter(by_split.values()))
        target = TARGETS.get((dataset, m)) if test else None
        met = "" if target is None else ("yes" if _met(test, target) else "**no**")
        lines.append(
            f"| {m} | {any_r['params']:,} | {any_r['train_seconds']:.0f} | "
            f"{_fmt(by_split.get('train', {}).get('nll'))} | {_fmt(by_split.get('valid', {}).get('nll'))} | "
            f"{_fmt(test.get('nll'))} | {_fmt(test.get('perplexity'), 2)} | {target or ''} | {met} |")
    return lines


def _met(record: dict, target: str) -> bool:
    """``target`` reads like "nll <= 2.08" or "perplexity <= 4.5"."""
    metric, op, value = target.split()[:3]
    assert op == "<=", target
    return record[metric] <= float(value)


def speed_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    keys = [k for k in ("kind", "model", "shape", "device", "ours_ms", "reference_ms", "ratio", "target", "note")
            if any(k in r for r in records)]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for r in records:
        lines.append("| " + " | ".join(_fmt(r.get(k), 2) for k in keys) + " |")
    return lines


def bar_chart(records: list[dict], path: Path) -> bool:
    tests = [r for r in records if r["split"] == "test"]
    if not tests:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)  # only inside the benchmark process
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "chapter-bench"
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in tests)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.6), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        rows = [r for r in tests if r["dataset"] == d]
        ax.barh([r["model"] for r in rows], [r["nll"] for r in rows], color=[f"C{i}" for i in range(len(rows))])
        for i, r in enumerate(rows):
            ax.text(r["nll"], i, f" {r['nll']:.3f}", va="center", fontsize=8)
        ax.set(xlabel="test NLL (nats/char, lower is better)", title=DATASETS[d])
        ax.invert_yaxis()
        ax.set_xlim(0, max(r["nll"] for r in rows) * 1.2)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return True


def write_report(results: dict, path: Path) -> None:
    quality = results.get("quality", [])
    lines = ["# Benchmark results", "",
             "Written by `make bench` (`python -m benchmarks.run`) from `results.json`; do not edit by hand.",
             "NLL is the mean next-character negative log-likelihood in nats; perplexity = exp(NLL).", ""]
    commits = sorted({r.get("commit", "?") for r in quality + results.get("speed", [])})
    devices = sorted({r.get("device", "?") for r in quality + results.get("speed", [])})
    lines += [f"Commits: {', '.join(commits)}. Devices: {'; '.join(devices)}.", ""]
    for d, title in DATASETS.items():
        if any(r["dataset"] == d for r in quality):
            lines += [f"## {title}", ""] + quality_table(quality, d) + [""]
    chart = path.with_name("results.svg" if path.name == "RESULTS.md" else "results-quick.svg")
    if bar_chart(quality, chart):
        lines += [f"![test NLL per model]({chart.name})", ""]
    if results.get("speed"):
        lines += ["## Speed", ""] + speed_table(results["speed"]) + [""]
    path.write_text("\n".join(lines))
    assert all(math.isfinite(r["nll"]) for r in quality), "non-finite NLL in results"
