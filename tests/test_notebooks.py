"""Every notebook executes in quick mode with a real Jupyter kernel, without error output."""

import re

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
    seconds = execute_notebook(md, out, quick=True, failed_dir=tmp_path / "failed")
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb), _errors(nb)
    assert CHAPTER_PY.read_bytes() == before, "executing a notebook changed chapter.py"
    print(f"{md.name}: {seconds:.1f} s in quick mode")


def test_a_trained_model_reaches_the_cpu_before_it_becomes_float64():
    """A trained model lives on the model's device, and Apple's MPS has no float64: `.double()` on
    it fails on a Mac before a later `.cpu()` is reached. Every notebook line that takes a
    run's model to float64 must move it to the CPU first."""
    checked, offenders = 0, []
    for md in NOTEBOOKS:
        for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
            for match in re.finditer(r"\.model\b", line):
                tail = line[match.end():]
                cut = [i for i in (tail.find(".double()"), tail.find("float64")) if i >= 0]
                if cut:
                    checked += 1
                    if ".cpu()" not in tail[:min(cut)]:
                        offenders.append(f"{md.name}:{n}: {line.strip()}")
    assert checked, "no notebook line makes a trained model float64: this test checks nothing"
    assert not offenders, "move the model to the CPU before .double() (MPS has no float64):\n" + \
        "\n".join(offenders)


# ---------------------------------------------------------------------------------------------
# The runner itself (chapterkit.execute), on its own small notebooks

TOY = """# Toy

## Part A

```{code-cell} ipython3
import sys
for i in range(3):
    print(f"\\r{i * 50}%|bar", end="")
print("\\r100%|bar done")
```

```{code-cell} ipython3
1 + 1
```

```{code-cell} ipython3
1 + 1
```
"""


def test_terminal_text_and_merged_streams():
    from chapterkit.execute import terminal_text, tidy_streams

    assert terminal_text("0%|  \r50%|#\r100%|##\nnext\n") == "100%|##\nnext\n"
    assert terminal_text("abcdef\rxy\n") == "xy\n"  # the last drawing only, as Jupyter shows it
    assert terminal_text("50%\r100%\r") == "100%"  # a trailing \r erases nothing
    assert terminal_text("plain\r\nlines\n") == "plain\nlines\n"
    stream = nbformat.v4.new_output
    outputs = [stream("stream", name="stdout", text="epoch 1 10%\r"), stream("stream", name="stdout", text="100%\n"),
               stream("stream", name="stderr", text="warning\n"), stream("stream", name="stdout", text="done\n")]
    tidy = tidy_streams(outputs)
    assert [(o.name, o.text) for o in tidy] == [("stdout", "100%\n"), ("stderr", "warning\n"), ("stdout", "done\n")]


def test_cell_ids_derive_from_the_cells():
    import jupytext

    from chapterkit.execute import stable_cell_ids

    ids = []
    for _ in range(2):
        nb = jupytext.reads(TOY, fmt="md:myst")
        stable_cell_ids(nb)
        ids.append([c.id for c in nb.cells])
    assert ids[0] == ids[1] and len(set(ids[0])) == len(ids[0])
    assert ids[0][-1] == ids[0][-2] + "-2"  # two cells with the same text
    nbformat.validate(nb)


@pytest.mark.notebooks
def test_runner_skips_up_to_date_notebooks_and_names_a_failing_cell(tmp_path, capfd):
    from chapterkit.execute import NotebookFailed, execute_all, execute_notebook

    md = tmp_path / "07-toy.md"
    md.write_text(TOY)
    out = tmp_path / "out"
    assert set(execute_all([md], quick=True, out=out)) == {"07-toy"}
    nb = nbformat.read(out / "07-toy.ipynb", as_version=4)
    assert [o.text for o in nb.cells[1].outputs] == ["100%|bar done\n"]  # the bar's last state only
    assert execute_all([md], quick=True, out=out) == {}  # up to date: skipped
    assert "skipped" in capfd.readouterr().out
    assert set(execute_all([md], quick=True, out=out, force=True)) == {"07-toy"}
    assert nbformat.read(out / "07-toy.ipynb", as_version=4) == nb  # same outputs, same ids
    md.write_text(TOY + "\n```{code-cell} ipython3\n1 / 0\n```\n")
    with pytest.raises(NotebookFailed) as failed:
        execute_notebook(md, out / "07-toy.ipynb", quick=True, failed_dir=tmp_path / "failed")
    message = str(failed.value)
    assert "ZeroDivisionError" in message and "07-toy.md: cell 4/4  [Part A] failed" in message
    assert "make notebooks NB=07" in message
    assert (tmp_path / "failed" / "07-toy.ipynb").exists()
    assert nbformat.read(out / "07-toy.ipynb", as_version=4) == nb  # the last good run is kept
    assert "without encryption" not in capfd.readouterr().err  # the kernel talks over IPC, not TCP


@pytest.mark.notebooks
def test_a_notebook_edited_while_it_runs_is_not_up_to_date(tmp_path):
    """The outputs belong to the text the run started from; an edit made meanwhile (say, to the
    prose while a long notebook trains) must leave the notebook stale, to be run again."""
    from chapterkit.execute import execute_notebook, is_up_to_date

    md = tmp_path / "07-toy.md"
    md.write_text(TOY + "\n```{code-cell} ipython3\nopen('07-toy.md', 'a').write('Edited.\\n')\n```\n")
    out = tmp_path / "07-toy.ipynb"
    execute_notebook(md, out, quick=True, failed_dir=tmp_path / "failed")
    assert md.read_text().endswith("Edited.\n")
    assert not is_up_to_date(md, out, quick=True)  # (a notebook that leaves its text alone is: above)


def test_a_notebook_that_prints_benchmark_records_depends_on_them(tmp_path, monkeypatch):
    """After `make bench` rewrites results.json, the notebooks that print its records are stale;
    the others are not."""
    from chapterkit import execute

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "report.py").write_text("def table(records): ...\n")
    (bench / "results.json").write_text("{}\n")
    monkeypatch.setattr(execute, "BENCHMARKS", bench)
    reads = tmp_path / "05-reads.md"
    reads.write_text("# Reads\n\n```{code-cell} ipython3\nfrom benchmarks.report import table\n```\n")
    plain = tmp_path / "04-plain.md"
    plain.write_text("# Plain\n\n```{code-cell} ipython3\nprint(1)\n```\n")
    assert execute.inputs(reads)[4:] == [bench / "report.py", bench / "results.json"]
    before = {md: execute.source_hash(md, quick=False) for md in (reads, plain)}
    (bench / "results.json").write_text('{"quality": []}\n')
    after_bench = {md: execute.source_hash(md, quick=False) for md in (reads, plain)}
    assert after_bench[reads] != before[reads] and after_bench[plain] == before[plain]
    (bench / "report.py").write_text("def table(records): return 1\n")
    assert execute.source_hash(reads, quick=False) != after_bench[reads]


def test_a_notebook_that_trains_through_experiments_depends_on_it(tmp_path, monkeypatch):
    """The configurations and the driver live in the experiments package, not in chapter.py: a
    change there makes the notebooks that import it stale, and only those; the data layer is an
    input of every notebook."""
    from chapterkit import execute

    package = tmp_path / "experiments" / "__init__.py"
    package.parent.mkdir()
    package.write_text("LR = 1e-3\n")
    data = tmp_path / "chapterdata.py"
    data.write_text("URL = 'a'\n")
    monkeypatch.setattr(execute, "EXPERIMENTS", package)
    monkeypatch.setattr(execute, "CHAPTERDATA", data)
    trains = tmp_path / "03-trains.md"
    trains.write_text("# Trains\n\n```{code-cell} ipython3\nfrom experiments import train\n```\n")
    plain = tmp_path / "04-plain.md"
    plain.write_text("# Plain\n\n```{code-cell} ipython3\nprint(1)\n```\n")
    assert package in execute.inputs(trains) and package not in execute.inputs(plain)
    before = {md: execute.source_hash(md, quick=False) for md in (trains, plain)}
    package.write_text("LR = 1e-2\n")
    after = {md: execute.source_hash(md, quick=False) for md in (trains, plain)}
    assert after[trains] != before[trains] and after[plain] == before[plain]
    data.write_text("URL = 'b'\n")
    assert all(execute.source_hash(md, quick=False) != after[md] for md in (trains, plain))


def test_the_terminal_shows_a_cells_progress_bar_while_it_runs(capsys, monkeypatch):
    """A cell that trains redraws its progress bar (a stream with a carriage return): the runner echoes
    those to the terminal as they come, so that a long cell is not minutes of silence; other output
    is echoed only with -v."""
    from nbclient import NotebookClient

    from chapterkit.execute import _Client

    monkeypatch.setattr(NotebookClient, "output", lambda self, outs, msg, display_id, cell_index: outs.append(msg))

    def stream(text):
        return {"msg_type": "stream", "content": {"name": "stdout", "text": text}, "header": {"msg_type": "stream"},
                "parent_header": {}, "metadata": {}}

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fit()")])
    quiet, loud = _Client(nb, "05-test"), _Client(nb, "05-test", echo=True)
    outs = []
    quiet.output(outs, stream("a line the cell prints\n"), None, 0)
    quiet.output(outs, stream("\rtraining:  50%|#####     | 1/2 epochs"), None, 0)
    assert capsys.readouterr().err == "\rtraining:  50%|#####     | 1/2 epochs" and quiet.mid_line
    loud.output([], stream("a line the cell prints\n"), None, 0)
    assert capsys.readouterr().err == "a line the cell prints\n"
    assert len(outs) == 2  # and every output still goes into the notebook
