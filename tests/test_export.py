"""The %%save -> chapter.py pipeline: fresh, deterministic, idempotent, with provenance."""

import ast
import inspect
import pydoc
import re
import shutil

import jupytext
import nbformat
import pytest

from chapterkit import CHAPTER_PY, NOTEBOOKS, notebook_sources
from chapterkit.export import add_references, collect, export, render, sort_imports
from chapterkit.magic import SaveCellError, check_plain_python

MARKER = re.compile(r"^# %% (notebooks/\S+) · § (.+?)(?: \((\d+)\))?$", flags=re.M)


def test_chapter_py_is_a_fresh_export():
    assert export(check=True) == 0, "chapter.py is stale: run `make export`"


def test_export_twice_gives_identical_bytes(tmp_path):
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    export(target=first)
    export(target=second)
    export(target=second)  # exporting onto an existing file changes nothing either
    assert first.read_bytes() == second.read_bytes() == CHAPTER_PY.read_bytes()


def test_check_mode_detects_a_stale_module(tmp_path, capsys):
    stale = tmp_path / "chapter.py"
    stale.write_text(CHAPTER_PY.read_text().replace("def set_seed", "def set_seed_old"))
    assert export(check=True, target=stale) == 1
    assert "stale" in capsys.readouterr().err


def test_every_save_cell_is_exported_once_in_notebook_order():
    text = CHAPTER_PY.read_text()
    markers = MARKER.findall(text)
    blocks = collect()
    assert [(b.notebook, b.section, b.ordinal) for b in blocks] == [(m[0], m[1], int(m[2] or 1)) for m in markers]
    assert len(set(markers)) == len(markers), "two blocks with the same marker"
    assert [m[0] for m in markers] == sorted(m[0] for m in markers), "blocks out of notebook order"
    # no top-level function or class is defined twice
    tree = ast.parse(text)
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(defs) == len(set(defs)), [d for d in defs if defs.count(d) > 1]


def test_header_all_and_imports():
    import chapter

    text = CHAPTER_PY.read_text()
    assert text.startswith("# GENERATED FILE - DO NOT EDIT.")
    assert set(chapter.__all__) >= {"set_seed", "get_device", "load_surnames", "load_first_names",
                                    "load_time_machine", "Vocab", "fit"}
    for name in chapter.__all__:
        assert hasattr(chapter, name), f"__all__ names {name!r}, which chapter.py does not define"
    tree = ast.parse(text)
    first_code = [n for n in tree.body if not isinstance(n, ast.Expr)]
    n_imports = next(i for i, n in enumerate(first_code) if not isinstance(n, (ast.Import, ast.ImportFrom)))
    later = [n for n in first_code[n_imports:] if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not later, "top-level imports must be hoisted to the header"


def test_save_cells_refuse_ipython_syntax():
    with pytest.raises(SaveCellError, match="IPython syntax"):
        check_plain_python("x = 1\n!ls\n")
    with pytest.raises(SaveCellError, match="not valid Python"):
        check_plain_python("def f(:\n")
    # valid Python whose lines start with % or ! is plain Python, not IPython syntax
    check_plain_python("ok = (1\n      != 2)\n")
    check_plain_python('def f():\n    """Formats.\n\n    %d and %s are placeholders.\n    """\n')


def test_save_cells_refuse_an_import_sharing_its_line_with_code():
    """The exporter hoists imports to the top of chapter.py; code on the same line would be lost."""
    with pytest.raises(SaveCellError, match="line 2: an import and other code share a line"):
        check_plain_python("x = 1\nimport math; TAU = 2 * math.pi\n")
    check_plain_python("import math\nTAU = 2 * math.pi\n")


def test_render_of_a_toy_notebook(tmp_path):
    nb = jupytext.reads(
        "# Title\n\n## Part A\n\n```{code-cell} ipython3\n%%save\nimport os\n\ndef a():\n    return os.sep\n```\n\n"
        "```{code-cell} ipython3\nprint('not saved')\n```\n\n## Part B\n\n"
        "```{code-cell} ipython3\n%%save\nimport os\nfrom pathlib import Path\n_private = 1\nB = Path('.')\n```\n",
        fmt="md:myst",
    )
    path = tmp_path / "01-toy.md"
    jupytext.write(nb, path, fmt="md:myst")
    text = render(collect([path]))
    assert text.count("import os\n") == 1  # hoisted once
    assert "print('not saved')" not in text
    assert "# %% 01-toy.md · § Part A\n" in text and "# %% 01-toy.md · § Part B\n" in text
    assert "__all__ = [\n    'a', 'B',\n]" in text
    namespace = {}
    exec(compile(text, "toy", "exec"), namespace)
    assert namespace["a"]() and namespace["_private"] == 1


def test_ipynb_and_md_pairs_are_in_sync():
    for md in notebook_sources():
        ipynb = md.with_suffix(".ipynb")
        assert ipynb.exists(), f"{ipynb.name} missing: run `make notebooks NB={md.name[:2]}`"
        text_cells = [(c.cell_type, c.source) for c in jupytext.read(md).cells]
        nb_cells = [(c.cell_type, c.source) for c in nbformat.read(ipynb, as_version=4).cells]
        rerun = f"make notebooks NB={md.name[:2]}"
        assert text_cells == nb_cells, f"{md.name} and {ipynb.name} differ: re-execute it, `{rerun}`"
    orphans = {p.stem for p in NOTEBOOKS.glob("*.ipynb")} - {p.stem for p in notebook_sources()}
    assert not orphans, f"notebooks without a .md pair: {orphans}"


def test_committed_outputs_come_from_the_present_code():
    """Every .ipynb was executed in full mode from the present .md and chapter.py: the printed numbers
    belong to the code beside them (a code change without a re-run would leave stale outputs)."""
    from chapterkit.execute import is_up_to_date

    stale = [md.name for md in notebook_sources() if not is_up_to_date(md, md.with_suffix(".ipynb"), quick=False)]
    assert not stale, f"outputs older than their code: {stale}; re-run them with `make notebooks`"


def _toy_notebook(tmp_path, cells: str):
    nb = jupytext.reads(cells, fmt="md:myst")
    path = tmp_path / "01-toy.md"
    jupytext.write(nb, path, fmt="md:myst")
    return path


def test_markers_name_sections_and_number_repeats(tmp_path):
    path = _toy_notebook(tmp_path, (
        "# Title\n\n## Part A\n\n```{code-cell} ipython3\n%%save\nA = 1\n```\n\n"
        "```{code-cell} ipython3\n%%save\nB = 2\n```\n\n"
        "```{code-cell} ipython3\n%%save\nC = 3\n```\n\n## Part B\n\n```{code-cell} ipython3\n%%save\nD = 4\n```\n"
    ))
    markers = [line for line in render(collect([path])).splitlines() if line.startswith("# %%")]
    assert markers == ["# %% 01-toy.md · § Part A", "# %% 01-toy.md · § Part A (2)",
                       "# %% 01-toy.md · § Part A (3)", "# %% 01-toy.md · § Part B"]


@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_inserting_a_markdown_cell_changes_no_marker(tmp_path, position):
    """Prose edits must not make chapter.py stale: markers name sections, not cell positions."""
    source = next(md for md in notebook_sources() if "%%save" in md.read_text())
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    before = render(collect([copy]))
    nb = jupytext.read(copy)
    saved = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("%%save")]
    at = {"start": 1, "middle": saved[len(saved) // 2], "end": len(nb.cells)}[position]
    nb.cells.insert(at, nbformat.v4.new_markdown_cell("A new paragraph of prose, with $x_t$ and no heading."))
    nb.cells.insert(at, nbformat.v4.new_code_cell("print('an unsaved cell')"))
    jupytext.write(nb, copy, fmt="md:myst")
    assert render(collect([copy])) == before


def test_public_definitions_say_where_they_are_explained():
    import chapter

    defined_here = [getattr(chapter, n) for n in chapter.__all__
                    if (inspect.isfunction(getattr(chapter, n)) or inspect.isclass(getattr(chapter, n)))
                    and getattr(chapter, n).__module__ == "chapter"]
    assert defined_here
    for obj in defined_here:
        doc = inspect.getdoc(obj)
        assert doc and re.search(r"^Explained in notebooks/\d\d-[\w-]+\.md, § .+\.$", doc, flags=re.M), obj
    assert "Explained in notebooks/" in pydoc.render_doc(chapter.fit, renderer=pydoc.plaintext)


def test_docstring_references_keep_each_docstring_style():
    source = (
        'def one():\n    """Return one."""\n    return 1\n\n\n'
        'class Multi:\n    """A class.\n\n    More text: ñ, ç.\n    """\n\n    x = 1\n\n\n'
        'def raw():\n    r"""A \\d+ pattern."""\n\n\n'
        'def ends_on_text():\n    """First.\n\n    Last line."""\n\n\n'
        "def single():\n    'single quoted'\n\n\n"
        'def nodoc(x):\n    # a comment\n    return x\n\n\n'
        '@staticmethod\ndef decorated():\n    @staticmethod\n    def inner():\n        pass\n    return inner\n\n\n'
        'def same_line(): return 2\n\n\n'
        'def _private():\n    return 0\n'
    )
    reference = 'Explained in notebooks/03-rnn.md, § A "quoted" \\ heading with $\\mathbf{h}_t$.'
    text = add_references(source, reference)
    assert add_references(text, reference) == text  # nothing added twice
    namespace = {}
    exec(compile(text, "toy", "exec"), namespace)
    docs = {name: inspect.getdoc(namespace[name]) for name in
            ("one", "Multi", "raw", "ends_on_text", "single", "nodoc", "decorated", "same_line")}
    assert docs["one"] == f"Return one.\n\n{reference}"
    assert docs["Multi"] == f"A class.\n\nMore text: ñ, ç.\n\n{reference}"
    assert docs["raw"] == f"A \\d+ pattern.\n\n{reference}"
    assert docs["ends_on_text"] == f"First.\n\nLast line.\n\n{reference}"
    assert docs["single"] == f"single quoted\n\n{reference}"
    assert docs["nodoc"] == docs["decorated"] == docs["same_line"] == reference
    assert namespace["_private"].__doc__ is None
    assert namespace["nodoc"](5) == 5 and namespace["same_line"]() == 2
    assert '    r"""A \\d+ pattern.\n\n    Explained in' in text  # the raw docstring stays raw, one indent
    assert 'class Multi:\n    """A class.\n\n    More text: ñ, ç.\n\n    Explained in' in text


def test_imports_are_deduplicated_merged_and_future_first():
    block = sort_imports(["from __future__ import annotations", "import torch", "from x import b", "import os",
                          "from x import a", "import os", "from collections import Counter", "import numpy as np"])
    lines = block.splitlines()
    assert lines[0] == "from __future__ import annotations"
    assert block.count("import os") == 1
    assert "from x import a, b" in lines
    assert lines.index("import os") < lines.index("import numpy as np")  # standard library first
    assert sort_imports(lines) == block  # idempotent


def test_a_code_cell_read_as_prose_is_an_error(tmp_path):
    """Backticks in a directive's title make jupytext swallow the next code cell: refuse, don't drop it."""
    path = tmp_path / "01-toy.md"
    path.write_text("# Toy\n\n```{admonition} Why `x`\nText.\n```\n\n```{code-cell} ipython3\n%%save\nA = 1\n```\n")
    with pytest.raises(ValueError, match=r"01-toy.md, line 3 .*neither exported nor executed"):
        collect([path])
    path.write_text("# Toy\n\n:::{admonition} Why `x`\nText.\n:::\n\n```{code-cell} ipython3\n%%save\nA = 1\n```\n")
    assert [b.source for b in collect([path])] == ["A = 1"]
