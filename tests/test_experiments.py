"""Notebook 02's experiment layer: the training loop `fit` and its one schedule rule, `History`,
the driver `train` with its registries and its cache of trained runs.

Everything trains tiny models on slices of the data (`Config.limit`), so each test takes well
under a second or two.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import untrained_nll
from torch import nn

import chapter
import experiments
from chapter import History, fit
from experiments import Config, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)


@pytest.fixture(autouse=True)
def cpu_and_private_cache(tmp_path, monkeypatch):
    """Full mode, on the CPU, with a cache of runs of this test's own."""
    monkeypatch.delenv("CHAPTER_QUICK", raising=False)
    monkeypatch.setenv("CHAPTER_DEVICE", "cpu")
    monkeypatch.setenv("CHAPTER_RUNS_DIR", str(tmp_path / "runs"))


# Tiny versions of the chapter's own configurations: the same settings, small data and models.
TINY = {
    ("surnames", "mlp"): dataclasses.replace(experiments.WINDOW_CONFIGS["surnames", "mlp"], hidden_size=16,
                                             embedding_dim=8, limit=300, epochs=2),
    ("time-machine", "cnn"): dataclasses.replace(experiments.WINDOW_CONFIGS["time-machine", "cnn"], hidden_size=16,
                                                 embedding_dim=8, limit=1200, epochs=2),
    ("surnames", "rnn"): dataclasses.replace(experiments.RNN_CONFIGS["surnames"], hidden_size=16, limit=300, epochs=2),
    ("time-machine", "rnn"): dataclasses.replace(experiments.RNN_CONFIGS["time-machine"], hidden_size=16, limit=1200,
                                                 epochs=2),
    ("surnames", "gru, one part"): dataclasses.replace(experiments.RNN_CONFIGS["surnames"], cell="gru", parts=1,
                                                       hidden_size=8, limit=300, epochs=1),
    ("time-machine", "lstm, random pieces"): dataclasses.replace(
        experiments.RNN_CONFIGS["time-machine"], cell="lstm", stateful=False, hidden_size=8, num_steps=8,
        batch_size=8, limit=1200, epochs=1),
}


def _equal_state_dicts(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------
# train: one driver for every language model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(TINY), ids=" ".join)
def test_train_returns_a_run_scored_on_every_split(key):
    config = TINY[key]
    run = train(config, progress=False, cache=False)
    assert isinstance(run, experiments.Run) and run.config == config
    assert isinstance(run.vocab, chapter.Vocab) and isinstance(run.history, History)
    window = config.model in experiments.WINDOW_MODELS
    assert isinstance(run.model, chapter.RNNLanguageModel) != window
    if not window:
        assert type(run.model.cell) is type(experiments.CELLS[config.cell](1, 1))
    assert set(run.nll) == {"train", "valid", "test"}
    untrained = untrained_nll(config)
    for split, nll in run.nll.items():  # a little training lowered the loss on every split
        assert 0 < nll < untrained[split], (split, nll, untrained[split])
    h = run.history
    assert 1 <= len(h.train_loss) == len(h.valid_loss) == len(h.lr) <= config.epochs
    assert h.lr[0] == config.lr and h.steps > 0 and h.seconds > 0
    # the model is the best epoch's, and the held-out validation data is what fit validated on
    assert h.best_valid == min(h.valid_loss) and h.valid_loss[h.best_epoch] == h.best_valid
    if config.model in experiments.WINDOW_MODELS or config.dataset == "surnames" or config.stateful:
        assert run.nll["valid"] == pytest.approx(h.best_valid, rel=1e-6)
    # else the book's pieces were validated at random positions from a zero state, not as one stream


def test_train_gives_the_same_run_twice():
    config = TINY["surnames", "rnn"]
    a, b = (train(config, progress=False, cache=False) for _ in range(2))
    assert a.history.train_loss == b.history.train_loss and a.history.valid_loss == b.history.valid_loss
    assert a.nll == b.nll and _equal_state_dicts(a.model, b.model)
    c = train(dataclasses.replace(config, seed=1), progress=False, cache=False)
    assert c.nll != a.nll  # the seed matters


def test_quick_mode_trains_the_quick_config(monkeypatch):
    monkeypatch.setenv("CHAPTER_QUICK", "1")
    config = dataclasses.replace(experiments.RNN_CONFIGS["time-machine"], hidden_size=8, epochs=5, decays=2)
    run = train(config, progress=False, cache=False)
    assert run.config == config.quick()
    assert len(run.history.train_loss) == 1


@pytest.mark.parametrize("dataset,model", [("nope", "mlp"), ("surnames", "transformer")])
def test_unknown_dataset_or_model_names_the_known_ones(dataset, model):
    with pytest.raises(ValueError) as error:
        train(Config(dataset, model), progress=False, cache=False)
    message = str(error.value)
    assert repr(dataset) in message and repr(model) in message
    assert all(name in message for name in [*experiments.TASKS, *experiments.MODELS])


def test_unknown_cell_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown cell 'xyz'.*'gru'.*'lstm'.*'rnn'"):
        train(Config("surnames", "rnn", cell="xyz", limit=20), progress=False, cache=False)


def test_config_with_a_misspelt_field_is_refused():
    with pytest.raises(TypeError, match="epochz"):
        Config("surnames", "mlp", epochz=1)


def test_registries_hold_the_chapters_tasks_and_models():
    assert set(experiments.DATASETS) <= set(experiments.TASKS)
    assert {"surnames", "time-machine", "recall", "first-names", "spaces"} <= set(experiments.TASKS)
    assert {"mlp", "cnn", "rnn", "classifier", "tagger"} <= set(experiments.MODELS)
    assert set(experiments.WINDOW_MODELS) <= set(experiments.MODELS)
    assert all(callable(f) for f in [*experiments.TASKS.values(), *experiments.MODELS.values()])


def _pieces(batches):
    """The (X, Y) pairs of a pass, with the Parts of a batch taken one by one."""
    return [piece for batch in batches for piece in (batch if isinstance(batch, chapter.Parts) else [batch])]


def test_by_length_cuts_sorted_runs_of_nearly_equal_size():
    words = ["ab", "a", "abcd", "abc", "abcde", "b", "abcdef"]
    runs = chapter._by_length(words, 3)
    assert [len(run) for run in runs] == [2, 2, 3]
    assert sum(runs, []) == sorted(words, key=len)  # stable: "a" before "b"
    assert chapter._by_length(["x"], 4) == [["x"]]  # no empty runs
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="parts"):
            chapter._by_length(words, bad)


def _name_lists(batch, vocab):
    """The names in a batch of names (or in all its parts), sorted."""
    return sorted(vocab.decode(Y[:, b][Y[:, b] != chapter.IGNORE_INDEX][:-1].tolist()).strip()
                  for X, Y in _pieces([batch]) for b in range(X.shape[1]))


def test_name_batches_in_parts_hold_the_same_names_with_less_padding():
    vocab, train_names, _, _ = chapter.splits("surnames")
    names = train_names[:1000]
    plain, cut = (list(chapter.name_batches(names, vocab, 128, generator=torch.Generator().manual_seed(3),
                                            parts=parts)) for parts in (1, 3))
    assert len(plain) == len(cut) and all(isinstance(batch, chapter.Parts) and len(batch) == 3 for batch in cut)
    assert all(_name_lists(p, vocab) == _name_lists(c, vocab) for p, c in zip(plain, cut))
    padded = lambda batches: sum(Y.numel() for _, Y in _pieces(batches))
    assert padded(cut) < 0.8 * padded(plain)  # about 0.42 of the plain batches' positions are real; parts: 0.7


def test_a_step_on_parts_is_the_step_on_the_whole_batch():
    vocab, train_names, _, _ = chapter.splits("surnames")
    batch = chapter.pad_names(train_names[:64], vocab)
    parts = chapter.Parts(chapter.pad_names(run, vocab) for run in chapter._by_length(train_names[:64], 4))
    steps = []
    for data in ([batch], [parts]):
        torch.manual_seed(0)
        model = chapter.RNNLanguageModel(len(vocab), 8, cell=chapter.GRU).double()
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loss, n = chapter._train_epoch(model, data, opt, 1.0, False, torch.device("cpu"))
        steps.append((loss, [p.detach().clone() for p in model.parameters()]))
    (loss_whole, after_whole), (loss_parts, after_parts) = steps
    assert n == 1 and abs(loss_whole - loss_parts) < 1e-12
    assert all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(after_whole, after_parts))
    assert all(not torch.equal(a, b) for a, b in zip(after_whole, before))  # the step moved every weight


def test_a_stateful_model_refuses_parts():
    vocab, train_names, _, _ = chapter.splits("surnames")
    parts = chapter.Parts(chapter.pad_names(run, vocab) for run in chapter._by_length(train_names[:8], 2))
    model = chapter.RNNLanguageModel(len(vocab), 4)
    with pytest.raises(ValueError, match="Parts"):
        chapter._train_epoch(model, [parts], torch.optim.SGD(model.parameters(), lr=0.1), None, True,
                             torch.device("cpu"))


def test_tasks_cut_to_the_limit():
    config = TINY["surnames", "rnn"]
    task = experiments.TASKS["surnames"](config)
    names_in = lambda batches: sum(int((Y != chapter.IGNORE_INDEX).any(0).sum()) for _, Y in _pieces(batches))
    assert names_in(task.held_out["train"][0]) == 300
    assert names_in(task.held_out["valid"][0]) == names_in(task.held_out["test"][0]) == 300 // 4
    assert names_in(task.train()) == 300  # one epoch: every training name once
    assert task.num_tokens == len(task.vocab) and not task.stateful


# ---------------------------------------------------------------------------------------------
# The cache of trained runs
# ---------------------------------------------------------------------------------------------


def _refuse_to_train(*args, **kwargs):
    raise RuntimeError("fit was called: the run was trained, not loaded")


def test_a_second_train_loads_the_cached_run(tmp_path, monkeypatch):
    config = TINY["surnames", "mlp"]
    assert experiments.runs_dir() == tmp_path / "runs"
    first = train(config, progress=False)
    files = list((tmp_path / "runs").iterdir())
    assert len(files) == 1 and files[0].name.startswith("surnames-mlp-") and files[0].suffix == ".pt"
    monkeypatch.setattr(experiments, "fit", _refuse_to_train)
    second = train(config, progress=False)  # loaded: fit is never called
    assert second.config == config and second.nll == first.nll and second.history == first.history
    assert second.vocab.itos == first.vocab.itos
    assert second.model is not first.model and _equal_state_dicts(second.model, first.model)
    valid = experiments.TASKS[config.dataset](config).valid
    assert chapter.evaluate(second.model, valid) == pytest.approx(first.nll["valid"], rel=1e-6)
    with pytest.raises(RuntimeError, match="fit was called"):
        train(config, progress=False, cache=False)  # cache=False always trains
    with pytest.raises(RuntimeError, match="fit was called"):
        train(dataclasses.replace(config, seed=1), progress=False)  # another config: not in the cache
    assert len(list((tmp_path / "runs").iterdir())) == 1  # and cache=False wrote nothing


def test_load_gets_the_run_an_earlier_notebook_trained_or_says_which_notebook_to_run(monkeypatch):
    config = TINY["surnames", "mlp"]
    with pytest.raises(experiments.NotTrainedYet, match="run notebook 02-context-models first"):
        experiments.load(config, "02-context-models")
    trained = train(config, progress=False)
    monkeypatch.setattr(experiments, "fit", _refuse_to_train)
    loaded = experiments.load(config, "02-context-models")  # from the cache: fit is never called
    assert loaded.nll == trained.nll and _equal_state_dicts(loaded.model, trained.model)
    with pytest.raises(experiments.NotTrainedYet, match="03-rnn"):
        experiments.load(dataclasses.replace(config, seed=1), "03-rnn")


def test_load_in_quick_mode_trains_what_is_missing(monkeypatch):
    monkeypatch.setenv("CHAPTER_QUICK", "1")
    run = experiments.load(TINY["surnames", "mlp"], "02-context-models")
    assert run.config == TINY["surnames", "mlp"].quick() and len(run.history.train_loss) == 1


def test_train_builds_the_classes_it_is_given(tmp_path):
    class MyMLP(chapter.MLPContext):
        pass

    class MyRNN(chapter.RNN):
        pass

    assert type(train(TINY["surnames", "mlp"], progress=False, model=MyMLP).model) is MyMLP
    run = train(TINY["surnames", "rnn"], progress=False, cell=MyRNN)
    assert type(run.model) is chapter.RNNLanguageModel and type(run.model.cell) is MyRNN
    assert not (tmp_path / "runs").exists()  # a reader's own classes: their runs are not kept for others
    train(TINY["surnames", "rnn"], progress=False, cell=chapter.RNN)  # the chapter's own: kept
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_cache_false_neither_reads_nor_writes(tmp_path):
    train(TINY["surnames", "mlp"], progress=False, cache=False)
    assert not (tmp_path / "runs").exists()


def test_runs_dir_defaults_to_the_data_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAPTER_RUNS_DIR")
    monkeypatch.setenv("CHAPTER_DATA_DIR", str(tmp_path / "data"))
    assert experiments.runs_dir() == tmp_path / "data" / "runs"


def test_an_unwritable_cache_warns_and_still_returns_the_run(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CHAPTER_RUNS_DIR", str(blocker / "runs"))
    with pytest.warns(UserWarning, match="CHAPTER_RUNS_DIR"):
        run = train(TINY["surnames", "mlp"], progress=False)
    assert set(run.nll) == {"train", "valid", "test"}


def test_a_save_that_breaks_off_leaves_neither_a_run_nor_a_partial_file(tmp_path, monkeypatch):
    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(chapter.torch, "save", disk_full)
    with pytest.warns(UserWarning, match="could not cache"):
        run = train(TINY["surnames", "mlp"], progress=False)
    assert set(run.nll) == {"train", "valid", "test"}
    assert list((tmp_path / "runs").iterdir()) == []  # no half-written .part, no run


KERNEL_WITH_AN_EDITED_CELL = r"""
import json, os, sys
import torch
from IPython.core.interactiveshell import InteractiveShell
from chapterkit import CHAPTER_PY

torch.set_num_threads(1)
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "chapterkit")
# a notebook kernel that has run every %%save cell: chapter.py's code, in the notebook's namespace
assert shell.run_cell("%%save\n" + CHAPTER_PY.read_text(encoding="utf-8")).success
assert "CHAPTER_CODE_EDITS" not in os.environ
# the reader edits a cell for an exercise (here notebook 03's input check, which now wipes the input)
assert shell.run_cell("%%save\ndef check_sequence(x, input_size, who, ids=False):\n    x.zero_()\n"
                      "    return x.shape[0], x.shape[1]\n").success
import experiments
config = eval(sys.argv[1], vars(experiments))
# and trains the notebook's model and cell, unchanged themselves, but calling the changed check
run = experiments.train(config, progress=False, model=shell.user_ns["RNNLanguageModel"], cell=shell.user_ns["RNN"])
edited_key = experiments._run_path(config).name
os.environ.pop("CHAPTER_CODE_EDITS")
print(json.dumps({"edited": edited_key, "unedited": experiments._run_path(config).name, "test": run.nll["test"]}))
"""


def test_a_model_trained_by_edited_notebook_code_is_never_served_to_chapter_py(tmp_path):
    """The poisoning the run cache once allowed: a kernel whose code was edited (then fit, here an
    input check the model calls) cached its model under chapter.py's key, and a fresh process loaded it."""
    config = TINY["surnames", "rnn"]
    env = {**os.environ, "CHAPTER_RUNS_DIR": str(tmp_path / "runs"), "CHAPTER_DEVICE": "cpu"}
    env.pop("CHAPTER_CODE_EDITS", None)
    done = subprocess.run([sys.executable, "-c", KERNEL_WITH_AN_EDITED_CELL, repr(config)], env=env,
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    kernel = json.loads(done.stdout.strip().splitlines()[-1])
    assert "differs from chapter.py" in done.stdout  # the magic told the reader
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [kernel["edited"]]  # the edited run was cached ...
    # ... under a key of its own: without the edits the kernel's key is chapter.py's, as it should be
    assert kernel["unedited"] == experiments._run_path(config).name != kernel["edited"]
    fresh = train(config, progress=False)  # a fresh process with chapter.py unchanged trains its own
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert fresh.nll["test"] < kernel["test"]  # and it is not the crippled model (its input wiped)


def test_the_save_magic_sees_every_exported_cell_as_chapter_py_code_and_an_edit_as_not():
    from chapterkit.export import collect
    from chapterkit.magic import held_by_chapter

    blocks = collect()
    assert blocks and all(held_by_chapter(b.source) for b in blocks)
    fit_cell = next(b.source for b in blocks if "def fit(" in b.source)
    assert held_by_chapter(fit_cell.replace('"""Train ``model``', '"""Train the ``model``'))  # docstrings aside
    assert not held_by_chapter(fit_cell.replace("lr: float = 1e-3", "lr: float = 1e-2"))


def test_runs_saved_by_processes_side_by_side_do_not_share_a_temporary_file(tmp_path, monkeypatch):
    written = []

    def record(obj, f, *args, **kwargs):
        written.append(Path(f).name)
        Path(f).write_bytes(b"")

    monkeypatch.setattr(chapter.torch, "save", record)
    train(TINY["surnames", "mlp"], progress=False)
    assert len(written) == 1 and f".{os.getpid()}." in written[0] and written[0].endswith(".part")


# ---------------------------------------------------------------------------------------------
# fit: the training loop
# ---------------------------------------------------------------------------------------------


class Lookup(nn.Module):
    """The smallest next-token model: logits = a learned table row per (single) input token."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, X):  # (N, 1) -> (N, V)
        return self.table(X[:, -1])


def _toy(mapping, repeats=16):
    X = torch.tensor([[x] for x in mapping] * repeats)
    Y = torch.tensor(list(mapping.values()) * repeats)
    return X, Y


def test_fit_decreases_the_loss_on_a_tiny_problem():
    torch.manual_seed(0)
    X, Y = _toy({0: 1, 1: 2, 2: 3, 3: 0})
    model = Lookup(4)
    batches = [(X[i:i + 16], Y[i:i + 16]) for i in range(0, len(X), 16)]
    before = chapter.evaluate(model, batches)
    history = fit(model, batches, batches, epochs=20, lr=0.1, progress=False)
    assert len(history.train_loss) == len(history.valid_loss) == len(history.lr) == 20
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    assert chapter.evaluate(model, batches) < 0.05 < before
    assert history.steps == 20 * len(batches) and history.seconds > 0


@pytest.mark.parametrize("optimizer", sorted(experiments.OPTIMIZERS))
def test_fit_without_validation_data(optimizer):
    torch.manual_seed(0)
    X, Y = _toy({0: 1, 1: 0})
    history = fit(Lookup(2), [(X, Y)], epochs=5, lr=0.1, optimizer=experiments.OPTIMIZERS[optimizer],
                  schedule=experiments.Plateau(patience=1), progress=False)
    assert len(history.train_loss) == 5 and history.valid_loss == []  # no validation: no early stopping
    assert history.best_epoch == -1 and history.best_valid == math.inf
    assert history.train_loss[-1] < history.train_loss[0]


def test_fit_calls_a_batch_function_once_per_epoch():
    torch.manual_seed(0)
    X, Y = _toy({0: 1, 1: 0})
    calls = []

    def epoch():
        calls.append(1)
        yield X, Y

    history = fit(Lookup(2), epoch, [(X, Y)], epochs=3, lr=0.1, progress=False)
    assert len(calls) == 3 and history.train_loss[-1] < history.train_loss[0]


def test_fit_and_evaluate_refuse_one_shot_iterators():
    X, Y = _toy({0: 1, 1: 0})
    for train_data, valid_data in [(iter([(X, Y)]), None), ([(X, Y)], ((X, Y) for _ in range(1)))]:
        with pytest.raises(TypeError, match=r"one-shot.*list of \(X, Y\) batches.*function returning fresh"):
            fit(Lookup(2), train_data, valid_data, epochs=2, progress=False)
    with pytest.raises(TypeError, match="one-shot generator"):
        chapter.evaluate(Lookup(2), ((X, Y) for _ in range(1)))


@pytest.mark.parametrize("kwargs,match", [(dict(epochs=0), "epochs must be a positive integer"),
                                          (dict(clip=0.0), "clip must be > 0")])
def test_fit_rejects_bad_arguments(kwargs, match):
    X, Y = _toy({0: 1})
    with pytest.raises(ValueError, match=match):
        fit(Lookup(2), [(X, Y)], [(X, Y)], progress=False, **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(patience=0), "got 0, 0"), (dict(decays=-1), "got None, -1"),
    (dict(lr_decay=1.0), "lr_decay"), (dict(lr_decay=0.0), "lr_decay"),
])
def test_the_schedule_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        experiments.Plateau(**kwargs)


def test_train_names_the_optimizers_when_one_is_unknown():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adam'.*adamw.*sgd"):
        train(dataclasses.replace(TINY["surnames", "mlp"], optimizer="adam"), progress=False, cache=False)


def test_fit_rejects_data_without_batches():
    with pytest.raises(ValueError, match="no batches"):
        fit(Lookup(2), [], progress=False)


# --- the schedule: one rule for early stopping and learning-rate drops ---------------------------


def expected_schedule(valid_loss, lr, patience, decays, lr_decay, min_delta=0.0, stop_below=None):
    """The rule of fit, replayed on a sequence of validation losses: (learning rate per epoch,
    number of epochs run if it stopped early, else None)."""
    lrs, best, waited = [], math.inf, 0
    for epoch, valid in enumerate(valid_loss):
        lrs.append(lr)
        waited = 0 if valid < best - min_delta else waited + 1
        best = min(best, valid)
        if stop_below is not None and valid < stop_below:
            return lrs, epoch + 1
        if patience is not None and waited >= patience:
            if decays == 0:
                return lrs, epoch + 1
            decays, waited, lr = decays - 1, 0, lr * lr_decay
    return lrs, None


def assert_consistent(history: History, epochs, lr, patience, decays, lr_decay, min_delta=0.0, stop_below=None):
    """History agrees with the rule: best epoch, learning-rate drops and stopping point."""
    valid = history.valid_loss
    assert history.best_epoch == min(range(len(valid)), key=valid.__getitem__)
    assert history.best_valid == min(valid)
    lrs, stopped = expected_schedule(valid, lr, patience, decays, lr_decay, min_delta, stop_below)
    assert history.lr == lrs
    assert len(valid) == (stopped or epochs)


class Scripted(nn.Module):
    """A two-class model whose validation loss at the i-th evaluation is scripted: losses[i].

    In training it is an ordinary (learnable) model, so fit can take its steps."""

    def __init__(self, losses):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))
        self.losses, self.calls = list(losses), 0

    def forward(self, X):
        if self.training:
            return self.w.expand(len(X), 2)
        loss = self.losses[min(self.calls, len(self.losses) - 1)]
        self.calls += 1
        a = math.log(math.expm1(loss))  # -log softmax([0, a])[0] = log(1 + e^a) = loss
        return torch.tensor([0.0, a]).expand(len(X), 2)


SCRIPT_DATA = [(torch.zeros(4, 1, dtype=torch.long), torch.zeros(4, dtype=torch.long))]


def _fit(model, train_data, valid_data, epochs, lr, **schedule):
    """fit with the chapter's schedule, ``experiments.Plateau(**schedule)``."""
    return fit(model, train_data, valid_data, epochs=epochs, lr=lr, schedule=experiments.Plateau(**schedule),
               progress=False)


def _fit_scripted(losses, **kwargs):
    return _fit(Scripted(losses), SCRIPT_DATA, SCRIPT_DATA, **kwargs)


def test_lr_drops_after_patience_epochs_without_an_improvement_of_min_delta():
    losses = [1.0, 0.95, 0.949, 0.948, 0.9, 0.95, 0.96, 0.97, 0.98]
    kwargs = dict(epochs=20, lr=0.1, patience=2, decays=1, lr_decay=0.5, min_delta=0.01)
    h = _fit_scripted(losses, **kwargs)
    # 0.949 and 0.948 improve by less than min_delta: a plateau (though each is the new best);
    # the lr halves after epoch 3; 0.9 is a real improvement; two worse epochs then stop training
    assert h.lr == [0.1] * 4 + [0.05] * 3
    assert h.best_epoch == 4 and h.best_valid == pytest.approx(0.9, abs=1e-6)
    assert h.valid_loss == pytest.approx(losses[:7], abs=1e-6)
    assert_consistent(h, **kwargs)


def test_small_improvements_count_without_min_delta():
    losses = [1.0 - 0.001 * i for i in range(8)]
    h = _fit_scripted(losses, epochs=8, lr=0.1, patience=1, decays=0)
    assert len(h.valid_loss) == 8 and h.lr == [0.1] * 8 and h.best_epoch == 7


def test_without_patience_training_runs_every_epoch():
    h = _fit_scripted([1.0, 2.0, 3.0, 4.0], epochs=4, lr=0.1, patience=None, decays=3)
    assert h.lr == [0.1] * 4 and h.best_epoch == 0


def test_stop_below_stops_once_the_validation_loss_is_lower():
    kwargs = dict(epochs=10, lr=0.1, patience=None, decays=0, lr_decay=0.2, stop_below=0.1)
    h = _fit_scripted([1.0, 0.5, 0.05, 0.01], **kwargs)
    assert len(h.valid_loss) == 3 and h.best_epoch == 2
    assert_consistent(h, **kwargs)


def test_decays_restore_the_best_weights_and_training_ends_with_them():
    # Training teaches x -> x; validation wants x -> x + 1, so validation only gets worse after
    # the first epoch. Each drop of the learning rate goes back to the weights of epoch 0.
    torch.manual_seed(0)
    train_data = [_toy({0: 0, 1: 1, 2: 2})]  # one batch: train_loss[e] is the loss at epoch e's start
    valid = [_toy({0: 1, 1: 2, 2: 0})]
    model = Lookup(3)
    kwargs = dict(epochs=50, lr=0.05, patience=2, decays=2, lr_decay=0.5)
    h = _fit(model, train_data, valid, **kwargs)
    assert h.best_epoch == 0
    assert h.lr == [0.05] * 3 + [0.025] * 2 + [0.0125] * 2  # stopped after 1 + 2 * 3 epochs
    assert_consistent(h, **kwargs)
    # epochs 1, 3 and 5 all start from the weights of epoch 0
    assert h.train_loss[3] == h.train_loss[1] and h.train_loss[5] == h.train_loss[1]
    assert h.train_loss[2] != h.train_loss[1]
    assert chapter.evaluate(model, valid) == h.best_valid


def test_a_real_runs_history_follows_the_rule():
    config = dataclasses.replace(TINY["surnames", "rnn"], epochs=8, patience=1, decays=2, lr=0.2)
    h = train(config, progress=False, cache=False).history
    assert h.lr[-1] < config.lr  # too large a rate: the validation loss stalls and the rate drops
    assert_consistent(h, config.epochs, config.lr, config.patience, config.decays, config.lr_decay,
                      config.min_delta, config.stop_below)


# ---------------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------------


def test_get_device_honours_chapter_device(monkeypatch):
    assert chapter.get_device() == torch.device("cpu")
    monkeypatch.setenv("CHAPTER_DEVICE", " CPU ")
    assert chapter.get_device() == torch.device("cpu")
    monkeypatch.setenv("CHAPTER_DEVICE", "tpu")
    with pytest.raises(ValueError, match="cpu, cuda or mps"):
        chapter.get_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("CHAPTER_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="unset CHAPTER_DEVICE"):
            chapter.get_device()
    monkeypatch.delenv("CHAPTER_DEVICE")
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    assert chapter.get_device().type == ("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
