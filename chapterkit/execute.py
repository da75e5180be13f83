"""Execute the chapter's notebooks with a real Jupyter kernel (nbclient).

    python -m chapterkit.execute                 # every notebook, full mode, outputs -> NN-slug.ipynb
    python -m chapterkit.execute 05              # only notebooks whose names start so (make notebooks NB=05)
    python -m chapterkit.execute --force         # re-run notebooks whose outputs are up to date, too
    python -m chapterkit.execute --quick --out build/quick   # CHAPTER_QUICK=1: small budgets, seconds
    python -m chapterkit.execute -v 05           # also echo what the cells print (progress bars always are)

The text form ``NN-slug.md`` is the source; the executed notebook, outputs included, is written to
the paired ``NN-slug.ipynb`` (or under ``--out``) once the whole notebook has run. Its metadata
records a hash of the ``.md`` text, of ``chapter.py``, of the mode and, for a notebook that imports
from ``benchmarks``, of the modules it imports and of ``benchmarks/results.json`` (whose records it
prints); a notebook whose executed copy carries the current hash is skipped (``--force`` runs it
anyway), so after ``make bench`` the notebooks that print its records run again.

Full mode sets no time limit on a cell (a slow machine is slow, not wrong); quick mode allows a
cell 600 s. A line is printed as each cell finishes. The written notebook depends only on what the
cells computed: cell ids derive from the cells' text, a progress bar's ``\\r`` redraws are reduced
to its final state, and consecutive outputs to the same stream are merged. A failing cell stops the
run with its traceback and a non-zero exit status; the notebook's previous ``.ipynb`` is left as it
was and the partly executed one goes to ``build/failed/``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from . import CHAPTER_PY, ROOT, notebook_sources
from .export import _heading, read_notebook

QUICK_TIMEOUT = 600  # seconds per cell in quick mode; full mode has no limit
METADATA_KEY = "chapterkit"
FAILED = ROOT / "build" / "failed"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(RuntimeError):
    """A cell of a notebook raised (or timed out, or killed the kernel)."""


# ---------------------------------------------------------------------------------------------
# What makes an executed notebook reproducible


BENCHMARKS = ROOT / "benchmarks"
EXPERIMENTS = ROOT / "experiments" / "__init__.py"
CHAPTERDATA = ROOT / "chapterdata.py"
FASTRNN = ROOT / "fastrnn.py"
_EXPERIMENTS_IMPORT = re.compile(r"^\s*(?:from\s+experiments\b|import\s+experiments\b)", re.MULTILINE)
_BENCHMARK_IMPORT = re.compile(r"^\s*(?:from\s+benchmarks\.(\w+)|import\s+benchmarks\.(\w+)"
                               r"|from\s+benchmarks\s+import\s+(\w+))", re.MULTILINE)


def inputs(md: Path) -> list[Path]:
    """The files a notebook's outputs depend on besides the mode: its text, chapter.py and the modules
    it imports (chapterdata.py, fastrnn.py); the experiments package if the notebook imports it (its configurations
    and driver train the notebook's models); and for each ``from benchmarks.X import ...`` the
    module X and ``benchmarks/results.json``, whose records the notebook prints."""
    text = md.read_text(encoding="utf-8")
    used = sorted({name for match in _BENCHMARK_IMPORT.findall(text) for name in match if name})
    modules = [BENCHMARKS / f"{name}.py" for name in used]
    experiments = [EXPERIMENTS] if _EXPERIMENTS_IMPORT.search(text) else []
    benchmarks = modules + [BENCHMARKS / "results.json"] if used else []
    return [md, CHAPTER_PY, CHAPTERDATA, FASTRNN] + experiments + benchmarks


def source_hash(md: Path, quick: bool) -> str:
    """What a notebook's outputs depend on: the mode and its ``inputs``."""
    h = hashlib.sha256(b"quick\n" if quick else b"full\n")
    for path in inputs(md):
        data = path.read_bytes() if path.exists() else b""
        h.update(f"{path.name} {len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


def is_up_to_date(md: Path, out: Path, quick: bool) -> bool:
    """True if ``out`` was executed from the present ``inputs(md)`` (text, chapter.py, ...), in this mode."""
    try:
        nb = nbformat.read(out, as_version=4)
    except (OSError, ValueError):
        return False
    return nb.metadata.get(METADATA_KEY, {}).get("source_sha256") == source_hash(md, quick)


def stable_cell_ids(nb) -> None:
    """Give every cell an id derived from its type and text (``-2``, ``-3`` for repeats)."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        base = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[base] = seen.get(base, 0) + 1
        cell["id"] = base if seen[base] == 1 else f"{base}-{seen[base]}"


def terminal_text(text: str) -> str:
    """``text`` as Jupyter shows it: a line redrawn after ``\\r`` keeps only what was drawn last.

    (A terminal shows the same for progress bars, which redraw the whole line; Jupyter, unlike a
    terminal, also drops what a shorter redraw would have left visible at the end of the line.)
    """
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if "\r" in line:
            line = next((part for part in reversed(line.split("\r")) if part), "").rstrip()
        lines.append(line)
    return "\n".join(lines)


def tidy_streams(outputs: list) -> list:
    """Merge consecutive outputs to the same stream and resolve their carriage returns."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream":
            text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
            previous = merged[-1] if merged else None
            if previous is not None and previous.get("output_type") == "stream" and previous["name"] == out["name"]:
                previous["text"] += text
                continue
            out["text"] = text
        merged.append(out)
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = terminal_text(out["text"])
    return [o for o in merged if o.get("output_type") != "stream" or o["text"]]


# ---------------------------------------------------------------------------------------------
# Running one notebook


class _Client(NotebookClient):
    """nbclient with a line of progress per cell, an IPC kernel, the cells' progress bars echoed to
    the terminal as they redraw, and, optionally (-v), everything else the cells print."""

    def __init__(self, nb, name: str, echo: bool = False, ipc_dir: str | None = None, **kw):
        super().__init__(nb, **kw)
        self.name, self.echo, self.ipc_dir = name, echo, ipc_dir
        self.code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        self.sections, section = [], "(top)"
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                section = _heading(cell.source) or section
            self.sections.append(section)
        self.current, self.started, self.mid_line = None, 0.0, False
        self.on_cell_execute, self.on_cell_executed = self._cell_starts, self._cell_done

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if self.ipc_dir:
            # Local IPC sockets instead of TCP: nothing listens on a port, and the kernel does
            # not warn about unencrypted TCP. The socket files live in a private folder.
            km.transport = "ipc"
            km.ip = os.path.join(self.ipc_dir, "kernel")
        return km

    def where(self, cell_index: int) -> str:
        n = self.code_cells.index(cell_index) + 1 if cell_index in self.code_cells else "?"
        return f"cell {n}/{len(self.code_cells)}  [{self.sections[cell_index]}]"

    def _cell_starts(self, cell, cell_index, **_):
        self.current, self.started = cell_index, time.perf_counter()

    def _cell_done(self, cell, cell_index, **_):
        if self.mid_line:
            print(file=sys.stderr, flush=True)
            self.mid_line = False
        print(f"  {self.name}  {self.where(cell_index)}  {time.perf_counter() - self.started:.1f} s", flush=True)

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            text = msg["content"]["text"]
            if self.echo or "\r" in text:  # everything with -v; a progress bar's redraws always, so
                sys.stderr.write(text)     # that a cell that trains is not a minute of silence
                sys.stderr.flush()
                self.mid_line = not text.endswith("\n")
        return super().output(outs, msg, display_id, cell_index)


def _failure(client: _Client, md: Path, error: Exception, out: Path, partial: Path) -> NotebookFailed:
    cell = client.current
    where = client.where(cell) if cell is not None else "before the first cell"
    source = client.nb.cells[cell].source if cell is not None else ""
    first_line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    if isinstance(error, CellExecutionError):
        what = _ANSI.sub("", str(error)).rstrip()
    elif isinstance(error, CellTimeoutError):
        what = f"the cell ran longer than the {client.timeout} s allowed per cell"
    else:
        what = f"the kernel died ({error}); out of memory?"
    prefix = md.name[:2]
    lines = [
        what,
        "",
        f"{md.name}: {where} failed" + (f" (it starts `{first_line[:70]}`)" if first_line else "") + ".",
    ]
    lines.append(f"The partly executed notebook is {_rel(partial)}; {_rel(out)} was not changed.")
    lines.append(f"Fix it, then re-run just this notebook: make notebooks NB={prefix}  "
                 f"(or .venv/bin/python -m chapterkit.execute {prefix})")
    return NotebookFailed("\n".join(lines))


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _write(nb, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(out)


def execute_notebook(md: Path, out: Path, quick: bool, timeout: float | None = None, echo: bool = False,
                     failed_dir: Path = FAILED) -> float:
    """Run ``md`` top to bottom in a fresh kernel (cwd: its folder); write the result to ``out``.

    ``timeout`` is the limit per cell in seconds: by default none in full mode and 600 s in quick
    mode (-1: none). Returns the seconds the notebook took. Raises ``NotebookFailed`` if a cell
    fails; ``out`` is then left as it was and the partly executed notebook goes to ``failed_dir``.
    """
    source = source_hash(md, quick)  # before reading: an edit during the run must make it stale
    nb = read_notebook(md)
    stable_cell_ids(nb)
    if timeout is None:
        timeout = QUICK_TIMEOUT if quick else -1
    saved = {k: os.environ.get(k) for k in ("CHAPTER_QUICK", "MPLBACKEND")}
    os.environ["CHAPTER_QUICK"] = "1" if quick else "0"
    # Plots must land in the outputs as images, whatever backend the caller uses.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    ipc_dir = tempfile.mkdtemp(prefix="chapterkit-") if os.name == "posix" else None
    client = _Client(
        nb,
        name=md.stem,
        echo=echo,
        ipc_dir=ipc_dir,
        kernel_name="python3",
        timeout=None if timeout is not None and timeout < 0 else timeout,
        startup_timeout=300,  # a loaded machine can take a while to start a kernel
        iopub_timeout=120,  # ... and to deliver a cell's last outputs
        resources={"metadata": {"path": str(md.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        partial = Path(failed_dir) / (md.stem + ".ipynb")
        _write(nb, partial)
        raise _failure(client, md, e, out, partial) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if ipc_dir:
            shutil.rmtree(ipc_dir, ignore_errors=True)
    elapsed = time.perf_counter() - start
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = tidy_streams(cell.outputs)
    nb.metadata.pop("widgets", None)
    nb.metadata["jupytext"] = {"formats": "ipynb,md:myst"}
    nb.metadata[METADATA_KEY] = {"mode": "quick" if quick else "full", "source_sha256": source}
    _write(nb, out)
    return elapsed


def execute_all(paths: list[Path], quick: bool, out: Path | None = None, force: bool = False,
                echo: bool = False) -> dict[str, float]:
    """Execute ``paths`` in order (into ``out``, default: next to each); return {name: seconds}.

    A notebook whose executed copy is up to date (``is_up_to_date``) is skipped unless ``force``,
    and is absent from the result. Raises ``NotebookFailed`` at the first failing cell.
    """
    mode = "quick" if quick else "full"
    times = {}
    for md in paths:
        target = Path(out or md.parent) / (md.stem + ".ipynb")
        if not force and is_up_to_date(md, target, quick):
            sources = ", ".join(_rel(p) for p in inputs(md))
            print(f"{md.stem}: up to date ({_rel(target)} was executed from the present {sources}, "
                  f"{mode} mode): skipped; --force re-runs it", flush=True)
            continue
        print(f"{md.stem}: executing ({mode} mode) ...", flush=True)
        times[md.stem] = execute_notebook(md, target, quick=quick, echo=echo)
        print(f"{md.stem}: {times[md.stem]:.1f} s -> {_rel(target)}", flush=True)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("only", nargs="*", help="notebook name prefixes (e.g. 02 05); default: all")
    p.add_argument("--quick", action="store_true", help="small budgets (CHAPTER_QUICK=1)")
    p.add_argument("--out", type=Path, help="write executed notebooks here instead of notebooks/")
    p.add_argument("--force", action="store_true", help="also run notebooks whose outputs are up to date")
    p.add_argument("-v", "--verbose", action="store_true", help="echo what the cells print (to stderr)")
    args = p.parse_args(argv)
    paths = [m for m in notebook_sources() if not args.only or m.name.startswith(tuple(args.only))]
    if not paths:
        p.error(f"no notebook matches {args.only}")
    start = time.perf_counter()
    try:
        times = execute_all(paths, quick=args.quick, out=args.out, force=args.force, echo=args.verbose)
    except NotebookFailed as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    skipped = len(paths) - len(times)
    print(f"executed {len(times)} of {len(paths)} notebooks in {time.perf_counter() - start:.1f} s"
          + (f" ({skipped} up to date)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
