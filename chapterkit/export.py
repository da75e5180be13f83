"""Rebuild ``chapter.py`` from the ``%%save`` cells of the notebooks.

    python -m chapterkit.export          # write chapter.py
    python -m chapterkit.export --check  # exit 1 if chapter.py differs from a fresh export

The output depends only on the notebooks' text (``notebooks/NN-slug.md``), so exporting is
deterministic and idempotent. Each block is marked with the notebook and section it came from
(``# %% notebooks/03-rnn.md · § The recurrent cell``, with `` (2)``, `` (3)`` for a section's
second and third ``%%save`` cell), so adding or removing prose or unsaved cells changes no
marker. Every public top-level function and class gets a last docstring line saying where the
chapter explains it, so ``help(chapter.fit)`` answers "where is this explained?". Top-level
imports are gathered once at the top (deduplicated, then sorted and merged by ruff's isort
rule), and ``__all__`` lists every public top-level name in definition order.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import subprocess
import sys
import tokenize
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
block names the notebook and section that explain it, and so does the last line of each public
function's and class's docstring (``help(chapter.fit)``). Importing this module has no side
effects: it creates no files, downloads nothing and seeds nothing (call ``set_seed``).
"""
'''


@dataclass(frozen=True)
class Block:
    notebook: str  # path relative to the repository root
    section: str  # the closest heading above the cell
    ordinal: int  # 1 for the section's first %%save cell, 2 for its second, ...
    source: str  # the cell's code without the magic line

    @property
    def marker(self) -> str:
        suffix = f" ({self.ordinal})" if self.ordinal > 1 else ""
        return f"# %% {self.notebook} · § {self.section}{suffix}"

    @property
    def reference(self) -> str:
        """The docstring line of the block's public functions and classes."""
        return f"Explained in {self.notebook}, § {self.section}."


def _heading(markdown: str) -> str | None:
    last = None
    for line in markdown.splitlines():
        if line.startswith("#"):
            last = line.lstrip("#").strip()
    return last


def read_notebook(path: Path):
    """The notebook ``path`` (MyST text) as jupytext reads it, refusing code cells read as prose.

    When jupytext misreads a fence (for instance backticks in a directive's title, as in
    ````{admonition} Why `x` ``), the code cells after it silently become part of a markdown
    cell: they would be neither exported nor executed.
    """
    nb = jupytext.read(path)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "```{code-cell}" in cell.source:
            before = cell.source[: cell.source.index("```{code-cell}")].splitlines()
            fence = next((ln for ln in reversed(before) if ln.lstrip().startswith(("```{", ":::{"))), before[-1])
            lines = path.read_text(encoding="utf-8").splitlines()
            where = f"line {lines.index(fence) + 1}" if fence in lines else "a fence"
            raise ValueError(
                f"{path.name}, {where} ({fence.strip()[:70]}): jupytext reads the code cell after this fence "
                "as part of the prose, so it would be neither exported nor executed. Avoid backticks in a "
                "directive's title, or write the directive with a :::{...} fence."
            )
    return nb


def collect(paths: list[Path] | None = None) -> list[Block]:
    """Every ``%%save`` cell of every notebook, in reading order."""
    blocks = []
    for path in paths or notebook_sources():
        nb = read_notebook(path)
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        section, seen = "(top)", {}
        for i, cell in enumerate(nb.cells, 1):
            if cell.cell_type == "markdown":
                section = _heading(cell.source) or section
                continue
            if cell.cell_type != "code":
                continue
            first, _, body = cell.source.partition("\n")
            where = f"{path.name}, § {section} (cell {i})"
            if first.strip() != MAGIC:
                if MAGIC in cell.source:
                    raise ValueError(f"{where}: %%save must be the cell's first line")
                continue
            check_plain_python(body, where)
            seen[section] = seen.get(section, 0) + 1
            blocks.append(Block(rel, section, seen[section], body.strip("\n")))
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


# ---------------------------------------------------------------------------------------------
# Docstring back-references


def _column(line: str, byte_offset: int) -> int:
    """ast counts columns in UTF-8 bytes; strings index characters."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8"))


def _escape(text: str, quote: str, raw: bool) -> str:
    """``text`` written so that, inside a string literal delimited by ``quote``, it reads as ``text``."""
    if raw:  # nothing can be escaped in a raw string; only the closing delimiter must not appear
        return text.replace(quote, " ".join(quote))
    text = text.replace("\\", "\\\\").replace(quote[0], "\\" + quote[0])
    return text if len(quote) == 3 else text.replace("\n", "\\n")


def _literal_quoting(source: str, node: ast.expr) -> tuple[str, str]:
    """(prefix, quote) of a string literal's last token: e.g. ("r", '"""') or ("", "'")."""
    segment = ast.get_source_segment(source, node)
    tokens = tokenize.generate_tokens(io.StringIO(segment).readline)
    last = [t.string for t in tokens if t.type == tokenize.STRING][-1]
    body = last.lstrip("rRuU")
    return last[: len(last) - len(body)], body[:3] if body[:3] in ('"""', "'''") else body[0]


def _extend_docstring(source: str, lines: list[str], doc: ast.expr, reference: str) -> tuple[int, int, str]:
    """An edit (line index, column, text to insert) that makes ``reference`` the docstring's last line."""
    first = lines[doc.lineno - 1]
    start = _column(first, doc.col_offset)
    indent = first[:start] if not first[:start].strip() else " " * 4  # a docstring on the `def` line
    last, end = doc.end_lineno - 1, _column(lines[doc.end_lineno - 1], doc.end_col_offset)
    prefix, quote = _literal_quoting(source, doc)
    if len(quote) == 1:  # "one line": add a second literal; adjacent literals make one docstring
        return last, end, f" {quote}{_escape(chr(10) * 2 + reference, quote, raw=False)}{quote}"
    text = _escape(reference, quote, raw="r" in prefix.lower())
    if last > doc.lineno - 1 and not lines[last][: end - 3].strip():  # closing quotes on a line of their own
        return last, 0, f"\n{indent}{text}\n"
    return last, end - 3, f"\n\n{indent}{text}\n{indent}"


def _new_docstring(lines: list[str], first: ast.stmt, reference: str) -> tuple[int, int, str]:
    """An edit that gives a definition whose body starts with ``first`` the docstring ``reference``."""
    decorators = getattr(first, "decorator_list", [])
    row = min([first.lineno] + [d.lineno for d in decorators]) - 1
    line = lines[row]
    col = _column(line, first.col_offset)
    literal = '"""' + _escape(reference, '"""', raw=False) + '"""'
    if decorators or not line[:col].strip():  # the body starts on a line of its own
        indent = line[: len(line) - len(line.lstrip())]
        return row, 0, f"{indent}{literal}\n"
    return row, col, f"{literal}; "  # `class C: pass` -> `class C: """..."""; pass`


def add_references(source: str, reference: str) -> str:
    """Add the line ``reference`` to the docstring of every public top-level function and class.

    A definition without a docstring gets ``reference`` as its docstring. The source is edited as
    text (its quoting, indentation and everything else stay as written).
    """
    lines = source.split("\n")
    edits = []
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        doc = ast.get_docstring(node, clean=False)
        if doc is None:
            edits.append(_new_docstring(lines, node.body[0], reference))
        elif reference not in doc:
            edits.append(_extend_docstring(source, lines, node.body[0].value, reference))
    for i, col, text in sorted(edits, reverse=True):
        lines[i] = lines[i][:col] + text + lines[i][col:]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Imports


def sort_imports(statements: list[str]) -> str:
    """Import statements as one block, ordered and merged by ruff's isort rule (``ruff check --select I``).

    ``from __future__`` imports come first; ``from m import a`` and ``from m import b`` become
    ``from m import a, b``. Ruff reads the project's configuration (pyproject.toml).
    """
    text = "".join(s + "\n" for s in dict.fromkeys(statements))
    cmd = [sys.executable, "-m", "ruff", "check", "--select", "I", "--fix", "--exit-zero", "--quiet",
           "--stdin-filename", str(CHAPTER_PY), "-"]
    try:
        done = subprocess.run(cmd, input=text, capture_output=True, text=True, cwd=ROOT)
    except OSError as e:
        raise RuntimeError(f"could not run ruff ({e}): install the dev extra, `pip install -e '.[dev]'`") from None
    if done.returncode != 0 or not done.stdout.strip():
        hint = "ruff is missing: `pip install -e '.[dev]'`" if "No module named ruff" in done.stderr else ""
        raise RuntimeError(f"sorting the imports with ruff failed: {done.stderr.strip()} {hint}".strip())
    return done.stdout.strip("\n")


def _wrapped(names: list[str], width: int = 116) -> str:
    """The names as quoted, comma-separated lines of at most ``width`` characters, indented by 4."""
    lines, line = [], ""
    for item in (f"{n!r}," for n in names):
        if line and len(line) + 1 + len(item) > width - 4:
            lines.append(line)
            line = ""
        line = f"{line} {item}" if line else item
    return "".join(f"    {text}\n" for text in lines + [line] if text)


def render(blocks: list[Block]) -> str:
    imports = ["from __future__ import annotations"]
    bodies: list[str] = []
    names: list[str] = []
    for b in blocks:
        block_imports, body = _split_imports(b.source)
        imports += [ast.unparse(node) for node in block_imports]
        for n in public_names(body):
            if n not in names:
                names.append(n)
        body = add_references(body, b.reference) if body else body
        bodies.append(f"{b.marker}\n{body}\n" if body else f"{b.marker}\n")
    preamble = f"{HEADER}\n{sort_imports(imports)}\n\n__all__ = [\n{_wrapped(names)}]\n"
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
    try:
        return export(check=args.check)
    except (ValueError, RuntimeError) as e:  # a notebook that cannot be exported, or no ruff
        print(f"export: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
