"""Build tooling for the chapter: the ``%%save`` magic, the exporter and the notebook runner.

Nothing here is imported by ``chapter.py``; readers load the magic with ``%load_ext chapterkit``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTER_PY = ROOT / "chapter.py"


def notebook_sources(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """The chapter's notebooks (their MyST text form), in reading order: ``NN-slug.md``."""
    paths = sorted(p for p in notebooks.glob("[0-9][0-9]-*.md"))
    if not paths:
        raise FileNotFoundError(f"no notebooks named NN-slug.md under {notebooks}")
    return paths


def load_ipython_extension(ipython):
    """``%load_ext chapterkit`` registers the ``%%save`` cell magic."""
    from .magic import SaveMagics

    ipython.register_magics(SaveMagics)
