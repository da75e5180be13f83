"""Build tooling for the chapter: the ``%%save`` magic, the exporter and the notebook runner.

Nothing here is imported by ``chapter.py``; readers load the magic with ``%load_ext chapterkit``.
"""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTER_PY = ROOT / "chapter.py"


def notebook_sources(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """The chapter's notebooks (their MyST text form), in reading order: ``NN-slug.md``.

    The one place that says which notebooks make up the chapter: the exporter, the runner, the
    book and the tests all ask here (the executed form of each is ``path.with_suffix(".ipynb")``).
    """
    paths = sorted(p for p in notebooks.glob("[0-9][0-9]-*.md"))
    if not paths:
        raise FileNotFoundError(f"no notebooks named NN-slug.md under {notebooks}")
    return paths


# what running the chapter and its benchmarks writes: changes there do not make the code "dirty"
OUTPUTS = ("notebooks/*.ipynb", "benchmarks/results.json", "benchmarks/RESULTS.md", "benchmarks/*.svg")


def git_commit(root: Path = ROOT) -> str:
    """The checked-out commit, short form, with ``+dirty`` if tracked files other than the chapter's
    outputs (``OUTPUTS``) have changes; else "unknown"."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude,glob){p}" for p in OUTPUTS)], cwd=root,
                               capture_output=True, text=True).stdout.strip()
    except OSError:  # no git on this machine
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "")


def load_ipython_extension(ipython):
    """``%load_ext chapterkit`` registers the ``%%save`` cell magic."""
    from .magic import SaveMagics

    ipython.register_magics(SaveMagics)
