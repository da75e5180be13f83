"""Rebuild ``chapter.py`` from the ``%%save`` cells of the notebooks.

    python -m chapterkit.export          # write chapter.py
    python -m chapterkit.export --check  # exit 1 if chapter.py differs from a fresh export

The output depends only on the notebooks' text (``notebooks/NN-slug.md``), so exporting is
deterministic and idempotent. Each block records where it came from (notebook, cell number,
section), top-level imports are gathered once at the top, and ``__all__`` lists every public
top-level name in definition order.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext

from . import CHAPTER_PY, ROOT, notebook_sources
from .magic import check_plain_python

MAGIC = "%%save"

HEADER = '''\
# GENERATED FILE - DO NOT EDIT.
# Built by `make export` (python -m chapterkit.export) from the `%%save` cells of
# notebooks/NN-*.md, in notebook order. Edit the notebooks, then re-export;
# `python -m chapterkit.export --check` fails when this file is stale.
"""Sequence Modeling and RNNs: the companion module of the chapter.

Every definition below comes from a notebook cell marked ``%%save``; the comment above each
block names the notebook, cell and section that explain it. Importing this module has no side
effects: it creates no files, downloads nothing and seeds nothing (call ``set_seed``).
"""
'''


@dataclass(frozen=True)
class Block:
    notebook: str  # path relative to the repository root
    cell: int  # 1-based index among the notebook's cells
    section: str  # the closest heading above the cell
    source: str  # the cell's code without the magic line


def _heading(markdown: str) -> str | None:
    last = None
    for line in markdown.splitlines():
        if line.startswith("#"):
            last = line.lstrip("#").strip()
    return last


def collect(paths: list[Path] | None = None) -> list[Block]:
    """Every ``%%save`` cell of every notebook, in reading order."""
    blocks = []
    for path in paths or notebook_sources():
        nb = jupytext.read(path)
        section = "(top)"
        for i, cell in enumerate(nb.cells, 1):
            if cell.cell_type == "markdown":
                section = _heading(cell.source) or section
                continue
            if cell.cell_type != "code":
                continue
            first, _, body = cell.source.partition("\n")
            if first.strip() != MAGIC:
                if MAGIC in cell.source:
                    raise ValueError(f"{path.name} cell {i}: %%save must be the cell's first line")
                continue
            where = f"{path.name} cell {i}"
            check_plain_python(body, where)
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
            blocks.append(Block(rel, i, section, body.strip("\n")))
    return blocks


def _split_imports(source: str) -> tuple[list[ast.stmt], str]:
    """Separate a block's top-level import statements from the rest of its code."""
    tree = ast.parse(source)
    lines = source.splitlines()
    imports, drop = [], set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
            drop.update(range(node.lineno - 1, node.end_lineno))
    body = "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n")
    return imports, body


def public_names(source: str) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


def _merge_imports(nodes: list[ast.stmt]) -> list[str]:
    """One statement per imported module: ``from m import a`` and ``from m import b`` merge."""
    plain, froms = set(), {}
    for node in nodes:
        if isinstance(node, ast.Import):
            plain.update(ast.unparse(ast.Import(names=[alias])) for alias in node.names)
        elif node.module != "__future__":
            key = "." * node.level + (node.module or "")
            froms.setdefault(key, set()).update(
                alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in node.names)
    return sorted(plain) + [f"from {m} import {', '.join(sorted(names))}" for m, names in froms.items()]


def _import_sections(imports: list[str]) -> list[str]:
    """Standard-library imports, then third-party ones; ``import x`` before ``from x``, sorted."""

    def top(stmt: str) -> str:
        return stmt.split()[1].split(".")[0]

    sections = []
    for stdlib in (True, False):
        chosen = [i for i in imports if (top(i) in sys.stdlib_module_names) == stdlib]
        plain = sorted((i for i in chosen if i.startswith("import ")), key=str.lower)
        froms = sorted((i for i in chosen if i.startswith("from ")), key=str.lower)
        sections.append("\n".join(plain + froms))
    return sections


def render(blocks: list[Block]) -> str:
    imports: list[ast.stmt] = []
    bodies: list[str] = []
    names: list[str] = []
    for b in blocks:
        block_imports, body = _split_imports(b.source)
        imports += block_imports
        for n in public_names(body):
            if n not in names:
                names.append(n)
        marker = f"# %% {b.notebook} · cell {b.cell} · {b.section}"
        bodies.append(f"{marker}\n{body}\n" if body else f"{marker}\n")
    imports_text = "\n\n".join(g for g in _import_sections(_merge_imports(imports)) if g)
    all_list = "".join(f"    {n!r},\n" for n in names)
    preamble = f"{HEADER}\nfrom __future__ import annotations\n\n{imports_text}\n\n__all__ = [\n{all_list}]\n"
    return "\n\n".join([preamble, *bodies])


def export(check: bool = False, target: Path = CHAPTER_PY) -> int:
    blocks = collect()
    text = render(blocks)
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    if check:
        if current == text:
            print(f"{target.name} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "chapter.py (committed)", "fresh export",
            lineterm="", n=1,
        )
        print("\n".join(list(diff)[:60]))
        print(f"\n{target.name} is stale: run `make export` and commit the result.", file=sys.stderr)
        return 1
    if current != text:
        tmp = target.with_suffix(".py.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    print(f"wrote {target.name}: {len(blocks)} blocks")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="fail if chapter.py is stale; write nothing")
    args = p.parse_args(argv)
    return export(check=args.check)


if __name__ == "__main__":
    sys.exit(main())
