"""The %%save -> chapter.py pipeline: fresh, deterministic, idempotent, with provenance."""

import ast
import re

import jupytext
import nbformat
import pytest

from chapterkit import CHAPTER_PY, NOTEBOOKS, notebook_sources
from chapterkit.export import collect, export, render
from chapterkit.magic import SaveCellError, check_plain_python, defined_names


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
    markers = re.findall(r"^# %% (notebooks/\S+) · cell (\d+) · (.+)$", text, flags=re.M)
    blocks = collect()
    assert [(b.notebook, int(b.cell)) for b in blocks] == [(m[0], int(m[1])) for m in markers]
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
    assert defined_names("def f(): pass\nclass C: pass\nx = y = 1\n") == ("f", "C", "x", "y")


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
    assert "· Part A\n" in text and "· Part B\n" in text
    assert "__all__ = [\n    'a',\n    'B',\n]" in text
    namespace = {}
    exec(compile(text, "toy", "exec"), namespace)
    assert namespace["a"]() and namespace["_private"] == 1


def test_ipynb_and_md_pairs_are_in_sync():
    for md in notebook_sources():
        ipynb = md.with_suffix(".ipynb")
        assert ipynb.exists(), f"{ipynb.name} missing: run `python -m chapterkit.execute {md.name[:2]}`"
        text_cells = [(c.cell_type, c.source) for c in jupytext.read(md).cells]
        nb_cells = [(c.cell_type, c.source) for c in nbformat.read(ipynb, as_version=4).cells]
        assert text_cells == nb_cells, f"{md.name} and {ipynb.name} differ: re-execute the notebook"
    orphans = {p.stem for p in NOTEBOOKS.glob("*.ipynb")} - {p.stem for p in notebook_sources()}
    assert not orphans, f"notebooks without a .md pair: {orphans}"
