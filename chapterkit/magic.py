"""The ``%%save`` cell magic.

``%%save`` runs the cell in the notebook's namespace, exactly as if the magic were absent, and
marks it for export: ``make export`` later copies every ``%%save`` cell, in notebook order, into
``chapter.py``. The magic never writes files itself, so running a cell any number of times in a
live kernel cannot duplicate code in ``chapter.py``; the exporter reads the notebooks instead.

Two things make a saved cell behave in the notebook as it will in the module:

* ``__file__`` is set to the path of ``chapter.py`` (code that locates files "next to the module",
  such as the data cache, then finds the same folder in both places);
* IPython syntax (``%magic``, ``!shell``) is refused, because it would not be valid in a module.
"""

from __future__ import annotations

import ast

from IPython.core.magic import Magics, cell_magic, magics_class

from . import CHAPTER_PY


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


@magics_class
class SaveMagics(Magics):
    @cell_magic
    def save(self, line: str, cell: str):
        """Run the cell and mark it for export to chapter.py (``make export``)."""
        if line.strip():
            raise SaveCellError(f"%%save takes no arguments (got {line.strip()!r})")
        check_plain_python(cell)
        self.shell.user_ns["__file__"] = str(CHAPTER_PY)
        # run_cell would swallow exceptions; ex() lets them fail the cell as they should.
        # (cache() registers the source so that tracebacks show the cell's lines.)
        filename = self.shell.compile.cache(cell, self.shell.execution_count)
        self.shell.ex(compile(cell, filename, "exec"))
