"""The ``%%save`` cell magic.

``%%save`` runs the cell in the notebook's namespace, exactly as if the magic were absent, and
marks it for export: ``make export`` later copies every ``%%save`` cell, in notebook order, into
``chapter.py``. The magic never writes files itself, so running a cell any number of times in a
live kernel cannot duplicate code in ``chapter.py``; the exporter reads the notebooks instead.

Three things make a saved cell behave in the notebook as it will in the module:

* ``__file__`` is set to the path of ``chapter.py`` (code that locates files "next to the module",
  such as the data cache, then finds the same folder in both places);
* IPython syntax (``%magic``, ``!shell``) is refused, because it would not be valid in a module;
* a cell whose code ``chapter.py`` does not hold (the reader changed it, say ``fit`` for an
  exercise) is announced, and the kernel's changes are summed up in the environment variable
  ``CHAPTER_CODE_EDITS`` (a digest; absent when the kernel runs chapter.py's code). The run cache
  (``experiments``) puts it in its key, so a model trained by changed code is never served to
  unchanged code, nor the other way round. The classes and functions of an unchanged cell are
  marked ``__held_by_chapter__``: the run cache keeps runs of a notebook's own classes only when
  they are chapter.py's code.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os

from IPython.core.magic import Magics, cell_magic, magics_class

from . import CHAPTER_PY

EDITS_VARIABLE = "CHAPTER_CODE_EDITS"


class SaveCellError(ValueError):
    pass


def check_plain_python(source: str, where: str = "this %%save cell") -> None:
    """Refuse what cannot go into chapter.py as written: IPython-only syntax (chapter.py is a plain
    Python module), and an import that shares its line with other code (the exporter moves every
    import to the top of chapter.py, which would leave that code behind)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        for lineno, line in enumerate(source.splitlines(), 1):  # the likely cause, named
            stripped = line.lstrip()
            if stripped.startswith(("%", "!")):
                raise SaveCellError(
                    f"{where}, line {lineno}: {stripped[:40]!r} is IPython syntax and cannot go into "
                    "chapter.py. Move it to a cell without %%save."
                ) from None
        raise SaveCellError(f"{where} is not valid Python: {e}") from None
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    import_lines = {i for n in imports for i in range(n.lineno, n.end_lineno + 1)}
    for node in tree.body:
        if node not in imports and import_lines & set(range(node.lineno, node.end_lineno + 1)):
            raise SaveCellError(f"{where}, line {node.lineno}: an import and other code share a line; the "
                                "exporter moves imports to the top of chapter.py, so give the import a line "
                                "of its own")


def _code(node: ast.stmt) -> str:
    """A top-level statement's code, without its docstring, comments or layout: what it does."""
    node = ast.parse(ast.unparse(node)).body[0]  # a copy
    body = getattr(node, "body", None)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body and \
            isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and \
            isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]
    return ast.dump(node)


_held: tuple[float, set[str]] | None = None  # (mtime of chapter.py, the code of its statements)


def held_by_chapter(source: str) -> bool:
    """Whether every statement of a %%save cell other than its imports is in chapter.py, as code
    (docstrings, comments and layout aside: the exporter adds a line to public docstrings)."""
    global _held
    mtime = CHAPTER_PY.stat().st_mtime if CHAPTER_PY.exists() else -1.0
    if _held is None or _held[0] != mtime:
        tree = ast.parse(CHAPTER_PY.read_text(encoding="utf-8")) if mtime >= 0 else ast.Module([], [])
        _held = (mtime, {_code(n) for n in tree.body})
    statements = [n for n in ast.parse(source).body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    return all(_code(n) in _held[1] for n in statements)


def _defined_names(source: str) -> tuple[str, ...]:
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [ast.unparse(t) for t in targets]
    return tuple(names)


@magics_class
class SaveMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self.edits: dict[tuple[str, ...], str] = {}  # names a changed cell defines -> its source

    def _note_edits(self, cell: str, names: tuple[str, ...]) -> bool:
        """Keep CHAPTER_CODE_EDITS equal to a digest of the changed cells this kernel has run; return
        whether this cell is chapter.py's code."""
        held = held_by_chapter(cell)
        if held:
            if self.edits.pop(names, None) is not None:
                print("This cell is chapter.py's code again.")
        else:
            if names not in self.edits:
                print(f"Note: this cell differs from chapter.py ({', '.join(names) or 'no definitions'}). "
                      "Models trained in this kernel are cached apart from those of chapter.py's code; "
                      "`make export` makes your version chapter.py's.")
            self.edits[names] = cell
        if self.edits:
            digest = hashlib.sha256("\0".join(self.edits[k] for k in sorted(self.edits)).encode())
            os.environ[EDITS_VARIABLE] = digest.hexdigest()[:16]
        else:
            os.environ.pop(EDITS_VARIABLE, None)
        return held

    @cell_magic
    def save(self, line: str, cell: str):
        """Run the cell and mark it for export to chapter.py (``make export``)."""
        if line.strip():
            raise SaveCellError(f"%%save takes no arguments (got {line.strip()!r})")
        check_plain_python(cell)
        names = _defined_names(cell)
        held = self._note_edits(cell, names)
        self.shell.user_ns["__file__"] = str(CHAPTER_PY)
        # run_cell would swallow exceptions; ex() lets them fail the cell as they should.
        # (cache() registers the source so that tracebacks show the cell's lines.)
        filename = self.shell.compile.cache(cell, self.shell.execution_count)
        self.shell.ex(compile(cell, filename, "exec"))
        if held:  # chapter.py's code: say so on what the cell defined
            for name in names:
                obj = self.shell.user_ns.get(name)
                if isinstance(obj, type) or inspect.isfunction(obj):
                    obj.__held_by_chapter__ = True
