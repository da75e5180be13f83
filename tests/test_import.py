"""Importing chapter.py, as a later chapter would, has no side effects."""

import json
import subprocess
import sys
import textwrap

from chapterkit import ROOT

PROBE = textwrap.dedent('''
    import json, os, random, socket, sys, urllib.request, warnings
    def refuse(*a, **k):
        raise AssertionError("network access during import")
    urllib.request.urlopen = refuse
    socket.socket.connect = refuse
    def tree():
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(os.environ["HOME"]) for f in fs)
    import numpy as np, torch, matplotlib
    before = dict(py=random.getstate(), np=np.random.get_state()[1].tolist(),
                  torch=torch.get_rng_state().tolist(), warnings=list(map(repr, warnings.filters)),
                  backend=matplotlib.get_backend(), cwd=sorted(os.listdir(".")), home=tree())
    import chapter
    after = dict(py=random.getstate(), np=np.random.get_state()[1].tolist(),
                 torch=torch.get_rng_state().tolist(), warnings=list(map(repr, warnings.filters)),
                 backend=matplotlib.get_backend(), cwd=sorted(os.listdir(".")), home=tree())
    print(json.dumps({k: before[k] == after[k] for k in before} | {"file": chapter.__file__,
          "data_dir_exists": os.path.exists(os.environ["CHAPTER_DATA_DIR"])}))
''')


def test_import_has_no_side_effects(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CHAPTER_DATA_DIR": str(tmp_path / "never-created"),
           "PYTHONPATH": str(ROOT), "MPLBACKEND": "agg", "HOME": str(tmp_path)}
    work = tmp_path / "later-chapter"
    work.mkdir()
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report.pop("file") == str(ROOT / "chapter.py")
    assert report == {"py": True, "np": True, "torch": True, "warnings": True, "backend": True,
                      "cwd": True, "home": True, "data_dir_exists": False}
    assert not (tmp_path / "never-created").exists()
    assert list(work.iterdir()) == []


def test_the_readmes_later_chapter_example_runs(tmp_path):
    """The README's example for a later chapter: load the book, build a vocabulary, train a small GRU
    language model with fit for two epochs, and sample; it uses nothing but ``chapter``."""
    import ast
    import os
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Using `chapter` from a later chapter"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Import) for a in n.names}
    assert imported == {"torch", "chapter"}
    env = {**os.environ, "CHAPTER_DATA_DIR": str(tmp_path / "data"), "CHAPTER_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    losses, samples = ast.literal_eval(done.stdout.strip().splitlines()[-1].replace("] [", "], ["))
    assert len(losses) == 2 and losses[1] < losses[0] < 2.0  # it learns: log|V| is about 3.4
    assert len(samples) == 1 and samples[0].startswith("the time traveller ") and len(samples[0]) > 19
