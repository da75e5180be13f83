"""Every notebook executes in quick mode with a real Jupyter kernel, without error output."""

import os

import nbformat
import pytest

from chapterkit import CHAPTER_PY, notebook_sources
from chapterkit.execute import execute_notebook

NOTEBOOKS = notebook_sources()


def _errors(nb) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {i}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr" and "Traceback" in out.text:
                found.append(f"cell {i}: traceback on stderr")
    return found


@pytest.mark.notebooks
@pytest.mark.parametrize("md", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(md, tmp_path):
    before = CHAPTER_PY.read_bytes()
    out = tmp_path / (md.stem + ".ipynb")
    seconds = execute_notebook(md, out, quick=True, timeout=600)
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb), _errors(nb)
    assert CHAPTER_PY.read_bytes() == before, "executing a notebook changed chapter.py"
    print(f"{md.name}: {seconds:.1f} s in quick mode")


@pytest.mark.notebooks
def test_rerunning_a_notebook_leaves_chapter_py_unchanged(tmp_path):
    before = CHAPTER_PY.read_bytes()
    md = NOTEBOOKS[1] if len(NOTEBOOKS) > 1 else NOTEBOOKS[0]
    for i in range(2):
        execute_notebook(md, tmp_path / f"run{i}.ipynb", quick=True, timeout=600)
    assert CHAPTER_PY.read_bytes() == before
    assert os.environ.get("CHAPTER_QUICK") in (None, "0", "1")
