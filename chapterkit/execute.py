"""Execute the chapter's notebooks with a real Jupyter kernel (nbclient).

    python -m chapterkit.execute                 # every notebook, full mode, outputs -> .ipynb
    python -m chapterkit.execute --quick         # CHAPTER_QUICK=1: small budgets, seconds
    python -m chapterkit.execute 02 03           # only notebooks whose names start so
    python -m chapterkit.execute --quick --out /tmp/x   # write executed copies elsewhere

The text form ``NN-slug.md`` is the source; the executed notebook, outputs included, is written
to the paired ``NN-slug.ipynb`` (or under ``--out``). A cell that raises stops the run with the
cell's traceback; the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from . import NOTEBOOKS, ROOT, notebook_sources


def execute_notebook(md: Path, out: Path, quick: bool, timeout: int = 1800) -> float:
    """Run ``md`` top to bottom in a fresh kernel (cwd: notebooks/); write the result to ``out``."""
    nb = jupytext.read(md)
    saved = {k: os.environ.get(k) for k in ("CHAPTER_QUICK", "MPLBACKEND")}
    os.environ["CHAPTER_QUICK"] = "1" if quick else "0"
    # Plots must land in the outputs as images, whatever backend the caller uses.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    try:
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=timeout,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
            record_timing=False,
        )
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    elapsed = time.perf_counter() - start
    nb.metadata.pop("widgets", None)
    nb.metadata["jupytext"] = {"formats": "ipynb,md:myst"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(out)
    return elapsed


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("only", nargs="*", help="notebook name prefixes (e.g. 02); default: all")
    p.add_argument("--quick", action="store_true", help="small budgets (CHAPTER_QUICK=1)")
    p.add_argument("--out", type=Path, help="write executed notebooks here instead of notebooks/")
    args = p.parse_args(argv)
    paths = [m for m in notebook_sources() if not args.only or m.name.startswith(tuple(args.only))]
    if not paths:
        p.error(f"no notebook matches {args.only}")
    total, times = 0.0, {}
    for md in paths:
        out = (args.out or md.parent) / (md.stem + ".ipynb")
        print(f"executing {md.name} ({'quick' if args.quick else 'full'} mode) ...", flush=True)
        seconds = execute_notebook(md, out, quick=args.quick)
        total += seconds
        times[md.stem] = round(seconds, 1)
        print(f"  {md.name}: {seconds:.1f} s -> {out}", flush=True)
    print(f"all {len(paths)} notebooks: {total:.1f} s")
    if not args.quick and not args.only and args.out is None:
        # A full run of the whole chapter: keep its timings for `make bench` (benchmarks/speed.py).
        record = {"seconds": times, "commit": _commit(), "cpu_threads": os.cpu_count(),
                  "when": time.strftime("%Y-%m-%d")}
        (ROOT / "benchmarks" / "chapter-times.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
