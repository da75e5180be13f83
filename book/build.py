"""Build the chapter's static HTML book from the executed notebooks (nothing is re-executed).

    python -m book.build                 # -> _build/book/html/index.html
    python -m book.build --strict        # exit 1 if Sphinx printed any warning
    python -m book.build --out /tmp/bk   # build somewhere else (html/ and warnings.log inside)

The source tree is staged under <out>/src: book/conf.py, book/index.md, book/bibliography.md,
references.bib, every notebooks/NN-*.ipynb (with its committed outputs), img/, and MathJax 3
(from the PyPI package django-static-mathjax) under _static/mathjax. The table of contents
globs notebooks/NN-*, so it follows the notebooks' numbering and picks up new ones by itself.
Sphinx (myst-nb, sphinx-book-theme, sphinxcontrib-bibtex) then builds from scratch into
<out>/html, with its warnings in <out>/warnings.log. The result needs no network to build
or to view: serve <out>/html with any static server, or open index.html.

Dependencies: ``pip install -e '.[book]'`` (``make book`` does it).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from chapterkit import notebook_sources

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
DEFAULT_OUT = ROOT / "_build" / "book"
PAGES = ("conf.py", "index.md", "bibliography.md")
REQUIRED = {  # import name -> distribution in the `book` extra
    "sphinx": "sphinx",
    "myst_nb": "myst-nb",
    "sphinx_book_theme": "sphinx-book-theme",
    "sphinxcontrib.bibtex": "sphinxcontrib-bibtex",
    "mathjax": "django-static-mathjax",
}


def missing_dependencies() -> list[str]:
    """Distributions of the `book` extra that cannot be imported here."""
    missing = []
    for module, dist in REQUIRED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(dist)
    return missing


def mathjax_dir() -> Path:
    """The es5 build of MathJax 3 shipped by django-static-mathjax."""
    import mathjax

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax's tex-chtml.js not found under {es5}")
    return es5


def notebooks(root: Path = ROOT) -> list[Path]:
    """The executed notebooks (``NN-slug.ipynb``) of the chapter's notebooks, in reading order."""
    executed = (md.with_suffix(".ipynb") for md in notebook_sources(root / "notebooks"))
    return [nb for nb in executed if nb.is_file()]


def stage(src: Path, root: Path = ROOT) -> list[Path]:
    """Lay out the Sphinx source tree under ``src`` (emptied first)."""
    nbs = notebooks(root)
    if not nbs:
        raise FileNotFoundError(f"no executed notebooks notebooks/NN-slug.ipynb under {root}: run `make chapter`")
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    for name in PAGES:
        shutil.copy2(BOOK / name, src / name)
    shutil.copytree(BOOK / "_static", src / "_static")
    shutil.copy2(root / "references.bib", src / "references.bib")
    for nb in nbs:
        shutil.copy2(nb, src / "notebooks" / nb.name)
    if (root / "img").is_dir():
        shutil.copytree(root / "img", src / "img")
    # MathJax: the one combined component the pages load, plus what it loads on demand
    # (TeX extensions, CHTML fonts, accessibility and menu code).
    es5 = mathjax_dir()
    dest = src / "_static" / "mathjax"
    dest.mkdir()
    shutil.copy2(es5 / "tex-chtml.js", dest / "tex-chtml.js")
    for sub in ("input", "output", "a11y", "ui", "sre"):
        if (es5 / sub).is_dir():
            shutil.copytree(es5 / sub, dest / sub)
    return nbs


def build(out: Path = DEFAULT_OUT, root: Path = ROOT, quiet: bool = False) -> tuple[Path, list[str]]:
    """Stage and build; returns (html folder, warning lines). Raises if Sphinx fails."""
    missing = missing_dependencies()
    if missing:
        raise ModuleNotFoundError(
            f"the book's dependencies are missing ({', '.join(missing)}): "
            "run `pip install -e '.[book]'` (or `make book`)"
        )
    out = Path(out).resolve()
    src, html, doctrees, log = out / "src", out / "html", out / "doctrees", out / "warnings.log"
    stage(src, root)
    for stale in (html, doctrees):
        shutil.rmtree(stale, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-E",
        "-a",
        "-j",
        "1",
        "--keep-going",
        "-d",
        str(doctrees),
        "-w",
        str(log),
        str(src),
        str(html),
    ]
    if quiet:
        cmd.insert(3, "-q")
    result = subprocess.run(cmd, cwd=out)
    if result.returncode != 0 or not (html / "index.html").is_file():
        raise RuntimeError(f"sphinx-build failed (exit {result.returncode}); see {log}")
    warnings = [
        _readable(line, src)
        for line in log.read_text(encoding="utf-8").splitlines()
        if "WARNING" in line or "ERROR" in line or "CRITICAL" in line
    ]
    return html, warnings


def _readable(line: str, src: Path) -> str:
    """A warning line with repository paths, and myst-nb's cell*10000+line as cell and line."""
    line = line.replace(f"{src}/", "")

    def cell(m: re.Match) -> str:
        n = int(m.group(2))
        return f"{m.group(1)} (cell {n // 10000}, line {n % 10000}):"

    return re.sub(r"(\S+\.ipynb):(\d{5,}):", cell, line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="build folder (default: _build/book); the site goes to OUT/html"
    )
    p.add_argument("--strict", action="store_true", help="fail if Sphinx printed any warning")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # for testing
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        html, warnings = build(args.out, args.root, quiet=args.quiet)
    except (FileNotFoundError, ModuleNotFoundError, RuntimeError) as e:
        print(f"book: {e}", file=sys.stderr)
        return 1
    n = len(notebooks(args.root))
    for md in notebook_sources(args.root / "notebooks"):
        if not md.with_suffix(".ipynb").is_file():
            print(
                f"book: note: {md.name} has no executed .ipynb yet, so it is not in the book "
                "(`make notebooks` executes it)"
            )
    print(
        f"book: {n} notebooks -> {html / 'index.html'} ({time.perf_counter() - start:.0f} s, {len(warnings)} warnings)"
    )
    if warnings:
        print("\n".join(warnings), file=sys.stderr)
        if args.strict:
            print("book: warnings are errors with --strict", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
