"""Train and evaluate the chapter's models with full budgets; record quality and speed.

    python -m benchmarks.run                    # every area, full budgets
    python -m benchmarks.run --only context rnn # some areas
    python -m benchmarks.run --only grid rnn gated memory --dataset time-machine  # one dataset's records
    python -m benchmarks.run --quick            # smoke run (CHAPTER_QUICK=1: tiny budgets), into a scratch file
    python -m benchmarks.run --only speed --full-chapter  # also time a full run of every notebook (~25 min on 2 cores)
    python -m benchmarks.run --check            # train nothing: do the records match the chapter's configurations?

Each area is a module ``benchmarks/<area>.py`` with ``run(quick: bool) -> list[dict]``. Every model
is trained with its notebook's configuration and seeds 0, 1 and 2 (seed 0 is the notebooks' run,
shared through the chapter's cache of trained runs). Quality records carry dataset, model, split,
seed and the measured numbers (nll and perplexity for language models; accuracy or F1 for notebook
06's tasks); the learning-rate grid, the memory measurements and the recall task have records of their own. This driver
adds device and commit. Records replace earlier ones with the same key, so running one area keeps
the others. Results: ``benchmarks/results.json`` and ``RESULTS.md``. The areas that train models
also say what they train (``configs()``); ``--check`` (``make bench-check``, benchmarks/consistency.py)
says which records those configurations have outgrown and which command re-measures them, and a
full run ends with the same check, as a warning.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import experiments
from chapterdata import write_atomically
from chapterkit import git_commit

HERE = Path(__file__).resolve().parent
AREAS = ["context", "rnn", "grid", "gated", "memory", "recall", "beyond", "seq2seq", "speed"]  # in chapter order
QUALITY_KEYS = ("dataset", "model", "split", "seed")
# areas with records of their own kind
OWN_LIST = {"grid": "lr_grid", "memory": "memory", "recall": "recall", "speed": "speed"}
BY_DATASET = ("context", "rnn", "grid", "gated", "memory")  # areas whose run() takes datasets=


def device_name() -> str:
    """The device the models train on (``chapter.get_device()``, so ``CHAPTER_DEVICE`` counts), named."""
    import torch

    import chapter

    device = chapter.get_device()
    if device.type == "cuda":
        return "cuda: " + torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"mps: {platform.machine()}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def check_record(r: dict, area: str) -> dict:
    missing = [k for k in QUALITY_KEYS if k not in r]
    if missing:
        raise ValueError(f"benchmarks/{area}.py returned a record without {missing}: {r}")
    if "nll" in r and math.isfinite(r["nll"]) and not math.isclose(r["perplexity"], math.exp(r["nll"]), rel_tol=1e-6):
        raise ValueError(f"perplexity must be exp(nll): {r}")
    return r


def merge(old: list[dict], new: list[dict], key) -> list[dict]:
    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + new


def quality_key(r):
    return (r["dataset"], r["model"], r["split"], r["seed"])


def speed_key(r):
    return (r.get("kind", ""), r.get("model", ""), str(r.get("shape", "")), r.get("device", ""))


def main(argv=None) -> int:
    sys.path.insert(0, str(HERE.parent))

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=AREAS, help="areas to run (default: all that exist)")
    p.add_argument("--quick", action="store_true", help="tiny budgets; writes results-quick.json")
    p.add_argument("--full-chapter", action="store_true",
                   help="speed: also execute every notebook in full mode (into a temporary folder) and time it")
    p.add_argument("--dataset", nargs="+", choices=experiments.DATASETS,
                   help=f"train and replace the records of these datasets only (areas {', '.join(BY_DATASET)})")
    p.add_argument("--check", action="store_true",
                   help="train nothing: check that results.json matches the chapter's configurations (exit 1 if not)")
    args = p.parse_args(argv)
    if args.check:
        if args.only or args.quick or args.full_chapter or args.dataset:
            p.error("--check takes no other option: it checks the whole of results.json")
        return check(HERE / "results.json")
    if args.dataset and not (args.only and set(args.only) <= set(BY_DATASET)):
        p.error(f"--dataset needs --only with areas among {', '.join(BY_DATASET)} (the others have no datasets "
                "of the language models)")
    # the chapter's budgets follow CHAPTER_QUICK: tiny with --quick, and never tiny in results.json
    os.environ["CHAPTER_QUICK"] = "1" if args.quick else "0"
    out = HERE / ("results-quick.json" if args.quick else "results.json")
    results = json.loads(out.read_text()) if out.exists() else {"quality": [], "speed": []}
    stamp = {"device": device_name(), "commit": git_commit()}
    for area in args.only or AREAS:
        if not (HERE / f"{area}.py").exists():
            print(f"[bench] {area}: no benchmarks/{area}.py yet, skipped")
            continue
        module = importlib.import_module(f"benchmarks.{area}")
        print(f"[bench] {area} ...", flush=True)
        start = time.perf_counter()
        options = {"full_chapter": True} if area == "speed" and args.full_chapter else {}
        if args.dataset:
            options["datasets"] = tuple(args.dataset)
        records = module.run(quick=args.quick, **options)
        print(f"[bench] {area}: {len(records)} records in {time.perf_counter() - start:.0f} s", flush=True)
        if area == "speed":
            results["speed"] = merge(results.get("speed", []), [{**stamp, **r} for r in records], speed_key)
        elif area in OWN_LIST:  # the grid, the memory measurements and the recall task: replaced whole (or by dataset)
            kept = [r for r in results.get(OWN_LIST[area], []) if args.dataset and r["dataset"] not in args.dataset]
            results[OWN_LIST[area]] = kept + [{**stamp, **r} for r in records]
        else:
            new = [{**check_record(r, area), **stamp} for r in records]
            results["quality"] = merge(results.get("quality", []), new, quality_key)
        text = json.dumps(results, indent=1, sort_keys=True) + "\n"
        # after each area, so that nothing is lost; whole or not at all (the data layer's atomic write)
        write_atomically(out, lambda tmp, text=text: tmp.write_text(text))
    from benchmarks.report import write_report

    write_report(results, HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md"))
    print(f"[bench] wrote {out.name}")
    if not args.quick:  # quick records are made with tiny budgets: they never match the configurations
        warn_if_inconsistent(results)
    return 0


def check(path: Path) -> int:
    """``--check``: print every way in which the records at ``path`` fall short of the chapter's
    configurations; 1 if there is one, else 0."""
    from benchmarks.consistency import check as problems_of
    from benchmarks.report import load_records

    problems = problems_of(load_records(path))
    for problem in problems:
        print(f"[bench-check] {problem}")
    if problems:
        print(f"[bench-check] {len(problems)} problem(s): {path.name} does not match the chapter's configurations; "
              "do what each says (or run `make bench`), then `make bench-check` again")
        return 1
    print(f"[bench-check] {path.name} matches the chapter's configurations")
    return 0


def warn_if_inconsistent(results: dict) -> None:
    """The end of a full run: the consistency check of ``--check``, as warnings (the records are written)."""
    from benchmarks.consistency import check as problems_of

    try:
        problems = problems_of(results)
    except Exception as error:  # a run of hours must not fail after the fact
        print(f"[bench] WARNING: the consistency check failed ({error!r}); run `make bench-check`")
        return
    for problem in problems:
        print(f"[bench] WARNING: {problem}")
    if problems:
        print(f"[bench] WARNING: {len(problems)} problem(s) above: results.json is not yet consistent with the "
              "chapter's configurations (`make bench-check` lists them again)")


if __name__ == "__main__":
    sys.exit(main())
