"""The chapter's evidence apparatus: what the notebooks' comparisons and ``make bench`` train.

A later chapter imports models, data and ``fit`` from ``chapter``; this module holds the protocol
around them, which only this chapter's evidence needs:

* ``Config``: every choice of one experiment (data, model, size, batching, optimisation, seed);
* the tasks (``TASKS``) and models (``MODELS``, ``CELLS``) a configuration names, all registered here;
* ``train(config)``: seed, build the task and the model, ``chapter.fit``, score every split, and
  cache the ``Run``; ``load(config, notebook)`` gets a run an earlier notebook trained;
* the configurations the notebooks train (``WINDOW_CONFIGS``, ``RNN_CONFIGS``, ``GATED_CONFIGS``,
  ``RECALL_CONFIG``, ``NAME_CLASSIFIERS``, ``SPACE_TAGGERS``, ``CONDITIONAL_GENERATOR``, ``SEQ2SEQ``)
  and the grid that chose the gated cells' learning and dropout rates (``LR_GRID``, ``DROPOUT_GRID``,
  ``CHOSEN``).

``make bench`` trains these configurations with three seeds (benchmarks/); the notebooks print
the records, and the chapter's appendix says how they were made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

import chapter
from chapter import (
    BOUNDARY,
    GRU,
    LSTM,
    RNN,
    CausalCNN,
    History,
    MLPContext,
    RNNClassifier,
    RNNLanguageModel,
    Seq2Seq,
    Vocab,
    WindowTagger,
    check_positive,
    evaluate,
    fit,
    get_device,
    labelled_batches,
    load_time_machine,
    marked_names,
    name_batches,
    name_sex_splits,
    number_batches,
    number_splits,
    number_vocabs,
    number_words,
    random_batches,
    recall_batch,
    sequential_batches,
    set_seed,
    split_text,
    splits,
    windows,
    without_spaces,
)
from chapterdata import data_dir, write_atomically
from experiments.measures import recall_vocab_size

DATASETS = ("surnames", "time-machine")  # the language-modelling data of the chapter


def quick_mode() -> bool:
    """True when ``CHAPTER_QUICK`` is set to anything but ``""``, ``0``, ``false`` or ``False``
    (``make quick`` and the tests set ``CHAPTER_QUICK=1``): every configuration then trains with a
    tiny budget (``Config.quick``), so that the whole chapter runs in seconds."""
    return os.environ.get("CHAPTER_QUICK", "0") not in ("", "0", "false", "False")

# ---------------------------------------------------------------------------------------------
# Configurations and tasks

QUICK_LIMIT = 2000  # quick mode: training examples (names or characters) kept


@dataclass(frozen=True)
class Config:
    """One experiment: which data, which model, and how to train it (see ``train``)."""

    dataset: str  # a key of TASKS: "surnames", "time-machine", ...
    model: str  # a key of MODELS: "mlp", "cnn" (windows) or "rnn" (recurrent, with `cell`)
    cell: str = "rnn"  # recurrent models: a key of CELLS ("rnn", "gru", "lstm", ...); taggers also "window"
    hidden_size: int = 256  # hidden units (MLP), channels (CNN), state size (recurrent)
    embedding_dim: int | None = 24  # None: one-hot input (recurrent models)
    block_size: int = 8  # window models: characters of context
    dropout: float = 0.0  # recurrent models: on the outputs of the recurrent layer
    bidirectional: bool = False  # classifiers and taggers: read both ways (notebook 06)
    readout: str = "last"  # classifiers: "last" state or "mean" of the outputs, "each" for taggers (notebook 06)
    batch_size: int = 128
    num_steps: int = 32  # the book, recurrent models: characters per piece of truncated BPTT
    stateful: bool = True  # the book, recurrent models: carry the state from piece to piece
    parts: int = 1  # names, recurrent models: compute each batch in this many parts of similar length
    span: int = 10  # the recall task: steps between the symbol and the query (notebook 05)
    optimizer: str = "adamw"  # or "sgd"
    lr: float = 3e-3
    weight_decay: float = 0.0
    clip: float | None = 1.0  # bound on the gradient norm
    epochs: int = 20  # at most
    patience: int | None = 1  # epochs without improvement before the learning rate drops (None: never)
    decays: int = 2  # drops of the learning rate (by lr_decay) before training stops
    lr_decay: float = 0.2
    min_delta: float = 0.0  # a smaller improvement of the validation loss counts as a plateau
    stop_below: float | None = None  # stop once the validation loss is lower (a solved task)
    seed: int = 0
    limit: int | None = None  # train on the first `limit` examples only (names, characters or windows; quick mode)

    def __post_init__(self):
        for name in ("hidden_size", "block_size", "batch_size", "num_steps", "epochs", "patience", "span", "parts"):
            if name == "patience" and self.patience is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1 or not self.lr > 0:
            raise ValueError(f"need 0 <= dropout < 1 and lr > 0, got {self.dropout} and {self.lr}")

    def quick(self) -> "Config":
        """The same experiment on a small slice of the data for one epoch (``CHAPTER_QUICK=1``): at
        most QUICK_LIMIT examples, or one batch of the book's pieces if that is more."""
        limit = min(self.limit or QUICK_LIMIT, QUICK_LIMIT)
        if self.dataset == "time-machine" and self.model == "rnn":
            limit = max(limit, (self.batch_size + 1) * self.num_steps + 1)  # the offset moves by up to num_steps
        return replace(self, epochs=1, decays=0, limit=limit)

    @property
    def label(self) -> str:
        """A short name for tables: "MLP", "causal CNN", "RNN", "GRU", "LSTM"."""
        return {"mlp": "MLP", "cnn": "causal CNN"}.get(self.model, self.cell.upper())


WINDOW_MODELS = ("mlp", "cnn")  # models that read a fixed window; the others are recurrent
OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": partial(torch.optim.SGD, momentum=0.9)}


class Plateau:
    """The schedule every model of the chapter trains with (``fit``'s ``schedule``, one per run).

    Called after each epoch with the validation loss and the learning rate, it returns the next
    rate, or None to stop: after ``patience`` epochs without an improvement of more than
    ``min_delta``, the rate times ``lr_decay`` (``fit`` then continues from the best weights), at
    most ``decays`` times; the next such plateau stops training, and so does a validation loss
    below ``stop_below``. ``patience=None`` never drops the rate.
    """

    def __init__(self, patience: int | None = None, decays: int = 0, lr_decay: float = 0.2, min_delta: float = 0.0,
                 stop_below: float | None = None):
        if (patience is not None and patience < 1) or decays < 0:
            raise ValueError(f"need patience >= 1 (or None) and decays >= 0; got {patience}, {decays}")
        if not 0 < lr_decay < 1:
            raise ValueError(f"lr_decay must lie in (0, 1), got {lr_decay}")
        self.patience, self.decays, self.lr_decay = patience, decays, lr_decay
        self.min_delta, self.stop_below = min_delta, stop_below
        self.best, self.waited = math.inf, 0

    def __call__(self, valid_loss: float, lr: float) -> float | None:
        self.waited = 0 if valid_loss < self.best - self.min_delta else self.waited + 1
        self.best = min(self.best, valid_loss)
        if self.stop_below is not None and valid_loss < self.stop_below:
            return None
        if self.patience is None or self.waited < self.patience:
            return lr
        if self.decays == 0:
            return None
        self.decays, self.waited = self.decays - 1, 0
        return lr * self.lr_decay

    @classmethod
    def of(cls, config: Config) -> "Plateau":
        """The schedule a configuration names."""
        return cls(config.patience, config.decays, config.lr_decay, config.min_delta, config.stop_below)


@dataclass
class Task:
    """The data of an experiment: vocabulary, training batches and held-out data."""

    vocab: Vocab | None  # None for tasks whose tokens are plain ids (see num_tokens)
    train: Callable  # () -> an epoch of training batches, freshly shuffled
    valid: object  # validation batches for `fit` (read the way the training batches are)
    held_out: dict  # split -> (batches, stateful): the data on which `train` reports the NLL
    stateful: bool = False  # training carries the state across batches
    num_classes: int | None = None  # classification tasks; None: predict the next token
    num_tokens: int | None = None  # the number of input token ids; None: len(vocab)

    def __post_init__(self):
        if self.num_tokens is None:
            self.num_tokens = len(self.vocab)


def window_batches(X: torch.Tensor, Y: torch.Tensor, batch_size: int, generator: torch.Generator):
    """A function returning, per call, a fresh shuffled pass over (X, Y) in minibatches."""
    check_positive(batch_size=batch_size)

    def epoch():
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            yield X[idx], Y[idx]
    return epoch


def _limited(parts, limit: int | None):
    """(train, valid, test) with the training split cut to its first ``limit`` examples (names,
    characters or windows), the others to a quarter as many: quick mode's data."""
    if limit is None:
        return parts

    def first(part, n: int):
        return tuple(t[:n] for t in part) if isinstance(part, tuple) else part[:n]  # (X, Y) windows, or a list
    train, *held_out = parts
    return [first(train, limit), *(first(p, max(limit // 4, 1)) for p in held_out)]


def _window_task(config: Config) -> Task:
    data = windows(config.dataset, config.block_size)
    parts = dict(zip(("train", "valid", "test"), _limited([data.train, data.valid, data.test], config.limit)))
    generator = torch.Generator().manual_seed(config.seed)
    held_out = _held_out(parts, lambda xy: xy)  # evaluate cuts an (X, Y) pair into batches
    return Task(data.vocab, window_batches(*parts["train"], config.batch_size, generator), held_out["valid"][0],
                held_out)


def surnames_task(config: Config) -> Task:
    """Surnames: windows for a window model; padded batches of whole names for a recurrent one."""
    if config.model in WINDOW_MODELS:
        return _window_task(config)
    vocab, *parts = splits("surnames")
    return _names_task(vocab, _limited(parts, config.limit), config)


def conditional_names_task(config: Config) -> Task:
    """First names, each led by the mark of its holders' majority sex ("♀lucía"): a recurrent
    language model's data (notebook 07). The vocabulary is the training names', marks included."""
    _, parts = name_sex_splits()
    train, valid, test = _limited([marked_names(part) for part in parts], config.limit)
    return _names_task(Vocab(train, reserved=[BOUNDARY]), (train, valid, test), config)


def _names_task(vocab: Vocab, parts, config: Config) -> Task:
    train, valid, test = parts
    generator = torch.Generator().manual_seed(config.seed)

    def train_batches():
        return name_batches(train, vocab, config.batch_size, generator=generator, parts=config.parts)

    # held-out names sorted by length, in large batches: little time is spent on padding
    held_out = _held_out({"train": train, "valid": valid, "test": test},
                         lambda names: list(name_batches(sorted(names, key=len), vocab, 1024, shuffle=False)))
    return Task(vocab, train_batches, held_out["valid"][0], held_out)


def book_task(config: Config) -> Task:
    """The Time Machine: windows for a window model; for a recurrent one, pieces of ``num_steps``
    characters, in order with the state carried (``stateful``) or at random from a zero state.
    Held-out blocks are read as one stream with the state carried (the training block as 16)."""
    if config.model in WINDOW_MODELS:
        return _window_task(config)
    vocab, *parts = splits("time-machine")
    train, valid, test = _limited(parts, config.limit)
    T, B = config.num_steps, config.batch_size
    generator = torch.Generator().manual_seed(config.seed)

    def train_batches():
        if config.stateful:  # a fresh offset every epoch, so the pieces' borders move
            return sequential_batches(train, T, B, offset=int(torch.randint(T, (1,), generator=generator)))
        return random_batches(train, T, B, generator=generator)

    def stream(ids, streams=1):  # read in pieces of 256: with the state carried, the length does not matter
        return lambda: sequential_batches(ids, min(256, (len(ids) - 1) // streams), streams)

    valid_batches = stream(valid) if config.stateful else lambda: random_batches(valid, T, 8)
    held_out = _held_out({"train": train, "valid": valid, "test": test}, stream, stateful=True)
    held_out["train"] = (stream(train, 16), True)
    return Task(vocab, train_batches, valid_batches, held_out, stateful=config.stateful)


def _held_out(parts: dict, batches: Callable, stateful: bool = False) -> dict:
    """split -> (its batches for ``evaluate``, whether the state is carried): ``Task.held_out``."""
    return {split: (batches(data), stateful) for split, data in parts.items()}


def first_names_task(config: Config) -> Task:
    """Classify first names by the sex of the majority of their holders (0 female, 1 male)."""
    vocab, parts = name_sex_splits()
    train_pairs, valid_pairs, test_pairs = _limited(parts, config.limit)
    generator = torch.Generator().manual_seed(config.seed)
    held_out = _held_out({"train": train_pairs, "valid": valid_pairs, "test": test_pairs},
                         lambda pairs: list(labelled_batches(sorted(pairs, key=lambda p: len(p[0])), vocab, 1024)))
    return Task(vocab, lambda: labelled_batches(train_pairs, vocab, config.batch_size, generator),
                held_out["valid"][0], held_out, num_classes=2)


def numbers_task(config: Config) -> Task:
    """Spanish number words to digits (notebook 07): batches of ((source, decoder input), target).
    ``Task.vocab`` is the pair (source vocabulary, target vocabulary)."""
    train, valid, test = _limited(number_splits(), config.limit)  # 12,000, 1,000, 2,000
    vocabs = number_vocabs(train)
    generator = torch.Generator().manual_seed(config.seed)
    held_out = _held_out({"train": train, "valid": valid, "test": test},  # sorted by length: little padding
                         lambda numbers: list(number_batches(sorted(numbers, key=lambda n: len(number_words(n))),
                                                             vocabs, 1000)))
    return Task(vocabs, lambda: number_batches(train, vocabs, config.batch_size, generator), held_out["valid"][0],
                held_out, num_tokens=len(vocabs[0]))


RECALL_BATCHES = 25  # training batches per epoch of the recall task


def recall_task(config: Config) -> Task:
    """Recall the symbol ``config.span`` steps back: fresh training batches, fixed held-out batches."""
    k, generator = config.span, torch.Generator().manual_seed(config.seed)
    valid = [recall_batch(k, 1000, generator=torch.Generator().manual_seed(config.seed + 1))]
    test = [recall_batch(k, 2000, generator=torch.Generator().manual_seed(config.seed + 2))]
    held_out = _held_out({"valid": valid, "test": test}, lambda batches: batches)
    return Task(None, lambda: (recall_batch(k, config.batch_size, generator=generator) for _ in range(RECALL_BATCHES)),
                valid, held_out, num_tokens=recall_vocab_size())


def _aligned_pieces(ids: torch.Tensor, labels: torch.Tensor, num_steps: int):
    """Non-overlapping pieces of ``num_steps`` positions as (X, Y) columns: (num_steps, n) each."""
    n = len(ids) // num_steps * num_steps
    return ids[:n].view(-1, num_steps).T, labels[:n].view(-1, num_steps).T


def spaces_task(config: Config) -> Task:
    """The Time Machine without spaces: for every letter, does a space follow? Same blocks as the chapter."""
    blocks = [without_spaces(part) for part in _limited(split_text(load_time_machine()), config.limit)]
    vocab = Vocab([blocks[0][0]], reserved=[BOUNDARY])  # the boundary token pads the window model
    (X, Y), (Xv, Yv), (Xt, Yt) = (_aligned_pieces(torch.tensor(vocab.encode(letters)), torch.tensor(follows),
                                                  config.num_steps) for letters, follows in blocks)
    generator = torch.Generator().manual_seed(config.seed)

    def train_batches():  # the pieces in a fresh random order; every epoch a new offset would also do
        order = torch.randperm(X.shape[1], generator=generator)
        for i in range(0, len(order), config.batch_size):
            yield X[:, order[i:i + config.batch_size]], Y[:, order[i:i + config.batch_size]]

    held_out = _held_out({"train": (X, Y), "valid": (Xv, Yv), "test": (Xt, Yt)},
                         lambda AB: [(AB[0][:, i:i + 256], AB[1][:, i:i + 256]) for i in range(0, AB[0].shape[1], 256)])
    return Task(vocab, train_batches, held_out["valid"][0], held_out, num_classes=2)


# ---------------------------------------------------------------------------------------------
# Models: one function per model name, (config, task, cls, cell) -> nn.Module, where cls and cell
# (None: the chapter's) are the model's and the recurrent cell's classes

# The gated cells train on their opt-in fast path (notebook 05's hand-derived backward pass: the
# same gradients; their loops take 1.05 to 1.26 times as long on a CPU at the two smaller shapes of
# benchmarks/RESULTS.md);
# the RNN on the autograd loop that notebook 03 trains (its scan is faster at the smallest shape
# timed, slower at the larger ones), so that these runs are notebook 03's.
CELLS = {"rnn": RNN, "gru": partial(GRU, fast=True), "lstm": partial(LSTM, fast=True),
         "lstm, forget bias 3": partial(LSTM, fast=True, forget_bias=3.0)}


def mlp_model(config: Config, task: Task, cls=None, cell=None) -> nn.Module:
    return (cls or MLPContext)(task.num_tokens, config.block_size, config.embedding_dim, config.hidden_size)


def cnn_model(config: Config, task: Task, cls=None, cell=None) -> nn.Module:
    levels = int(math.log2(config.block_size))
    if 2 ** levels != config.block_size:
        raise ValueError(f"a causal CNN's block_size is its receptive field 2**levels, got {config.block_size}")
    return (cls or CausalCNN)(task.num_tokens, levels, config.embedding_dim, config.hidden_size)


def _cell(config: Config, cell) -> Callable:
    if cell is not None:
        return cell
    if config.cell not in CELLS:
        raise ValueError(f"unknown cell {config.cell!r}: choose one of {sorted(CELLS)}")
    return CELLS[config.cell]


def rnn_model(config: Config, task: Task, cls=None, cell=None) -> nn.Module:
    """The recurrent language model of a configuration: ``RNNLanguageModel`` with ``CELLS[config.cell]``."""
    return (cls or RNNLanguageModel)(task.num_tokens, config.hidden_size, _cell(config, cell), config.embedding_dim,
                                     config.dropout)


def classifier_model(config: Config, task: Task, cls=None, cell=None) -> nn.Module:
    """An ``RNNClassifier`` with the configuration's cell, sizes, direction and readout."""
    return (cls or RNNClassifier)(len(task.vocab), task.num_classes, config.hidden_size, _cell(config, cell),
                                  config.embedding_dim, config.bidirectional, config.readout, task.vocab[BOUNDARY],
                                  config.dropout)


def seq2seq_model(config: Config, task: Task, cls=None, cell=None) -> nn.Module:
    """An encoder–decoder (``Seq2Seq``) with the configuration's cell for both halves."""
    return (cls or Seq2Seq)(*task.vocab, config.hidden_size, _cell(config, cell), config.embedding_dim)


def tagger_model(config: Config, task: Task, cls=None, cell=None) -> nn.Module:
    """A recurrent tagger (an ``RNNClassifier`` reading out at each position) or, for
    ``config.cell == "window"``, a ``WindowTagger`` seeing ``config.block_size`` tokens either side."""
    if config.cell == "window":
        return (cls or WindowTagger)(len(task.vocab), task.num_classes, config.block_size, config.embedding_dim,
                                     config.hidden_size, task.vocab[BOUNDARY])
    return (cls or RNNClassifier)(len(task.vocab), task.num_classes, config.hidden_size, _cell(config, cell),
                                  config.embedding_dim, config.bidirectional, "each", task.vocab[BOUNDARY],
                                  config.dropout)


TASKS = {"surnames": surnames_task, "time-machine": book_task, "first-names": first_names_task,
         "recall": recall_task, "spaces": spaces_task, "conditional-names": conditional_names_task,
         "numbers": numbers_task}  # dataset -> function(config) -> Task
MODELS = {"mlp": mlp_model, "cnn": cnn_model, "rnn": rnn_model, "classifier": classifier_model,
          "tagger": tagger_model, "seq2seq": seq2seq_model}  # model -> function(config, task, cls, cell) -> nn.Module


# ---------------------------------------------------------------------------------------------
# The driver and its cache of runs


@dataclass
class Run:
    """A trained model with its configuration, vocabulary, training history and NLL per split."""

    config: Config
    model: nn.Module
    vocab: Vocab
    history: History
    nll: dict  # split -> nats per token


def runs_dir() -> Path:
    """Where trained runs are cached: ``$CHAPTER_RUNS_DIR`` if set, else ``data_dir() / "runs"``."""
    return Path(os.environ["CHAPTER_RUNS_DIR"]) if os.environ.get("CHAPTER_RUNS_DIR") else data_dir() / "runs"


def _run_path(config: Config) -> Path:
    """Where the cache keeps the run of ``config``: a hash of everything that could change its numbers,
    the configuration, the code (chapter.py and this module), PyTorch, the device and the threads.

    In a notebook the code in effect is chapter.py's unless a ``%%save`` cell was changed: the
    magic then sets ``CHAPTER_CODE_EDITS`` to a digest of the changes, and it joins the key. (The
    thread count matters: two threads may split a matrix product differently than one, and round
    differently in the last bits.)"""
    key = hashlib.sha256()
    for part in (repr(config), Path(chapter.__file__).read_bytes(), Path(__file__).read_bytes(),
                 os.environ.get("CHAPTER_CODE_EDITS", ""), torch.__version__, str(get_device()),
                 str(torch.get_num_threads())):
        key.update(part if isinstance(part, bytes) else part.encode())
    return runs_dir() / f"{config.dataset}-{config.model}-{key.hexdigest()[:16]}.pt"


def _load_run(config: Config, task: Task, model: nn.Module) -> Run | None:
    path = _run_path(config)
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["state_dict"])
    return Run(config, model.to(get_device()), task.vocab, History(**saved["history"]), saved["nll"])


def _save_run(run: Run) -> None:
    path = _run_path(run.config)
    saved = {"state_dict": {k: v.cpu() for k, v in run.model.state_dict().items()},
             "history": dataclasses.asdict(run.history), "nll": run.nll}
    try:
        write_atomically(path, lambda tmp: torch.save(saved, tmp))  # like the data files
    except OSError as err:
        warnings.warn(f"could not cache the trained model in {path.parent} ({err}); set CHAPTER_RUNS_DIR "
                      "to a writable directory to keep runs between notebooks", stacklevel=3)


def _task_and_model(config: Config, model=None, cell=None) -> tuple[Config, Task, nn.Module]:
    if quick_mode():
        config = config.quick()
    if config.dataset not in TASKS or config.model not in MODELS:
        raise ValueError(f"unknown dataset {config.dataset!r} or model {config.model!r}: datasets are "
                         f"{sorted(TASKS)}, models {sorted(MODELS)}")
    set_seed(config.seed)
    task = TASKS[config.dataset](config)
    return config, task, MODELS[config.model](config, task, model, cell)


def _chapters_code(cls) -> bool:
    """Whether a class given to ``train`` is chapter.py's code: the chapter's own, or one that a
    ``%%save`` cell identical to chapter.py's defined in a notebook (the magic marks those)."""
    while isinstance(cls, partial):
        cls = cls.func
    return (cls is None or getattr(chapter, getattr(cls, "__name__", ""), None) is cls
            or vars(cls).get("__held_by_chapter__", False))


def train(config: Config, progress: bool = True, cache: bool = True, model=None, cell=None) -> Run:
    """Train the model that ``config`` describes on its task; return the ``Run``.

    Seeds every generator with ``config.seed``, so a configuration always gives the same run on
    the same machine. Quick mode (``CHAPTER_QUICK=1``) trains ``config.quick()`` instead. ``model``
    and ``cell``: the classes to build the model and its recurrent cell with (called as the
    chapter's are), instead of the chapter's; a notebook passes the ones it has just defined. With
    ``cache``, a run trained before with the same configuration and the same code is loaded from
    ``runs_dir()`` instead of trained again (delete that folder to train afresh); runs of classes that
    are not chapter.py's code (a reader's own) are neither loaded nor kept.
    """
    cache = cache and _chapters_code(model) and _chapters_code(cell)
    config, task, model = _task_and_model(config, model, cell)
    if cache and (run := _load_run(config, task, model)) is not None:
        return run
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}: choose one of {sorted(OPTIMIZERS)}")
    history = fit(model, task.train, task.valid, epochs=config.epochs, lr=config.lr,
                  weight_decay=config.weight_decay, clip=config.clip, stateful=task.stateful,
                  schedule=Plateau.of(config), optimizer=OPTIMIZERS[config.optimizer], progress=progress,
                  desc=f"{config.dataset} {config.label}")
    nll = {split: evaluate(model, data, stateful) for split, (data, stateful) in task.held_out.items()}
    run = Run(config, model, task.vocab, history, nll)
    if cache:
        _save_run(run)
    return run


class NotTrainedYet(LookupError):
    """The run a notebook needs was trained by an earlier notebook that has not run with this code."""


def load(config: Config, notebook: str) -> Run:
    """The run of ``config`` that notebook ``notebook`` (e.g. "03-rnn") trained, from the cache.

    A later notebook that reuses an earlier one's model says so by calling ``load``, and gets the
    model the present code trains: the cache's key holds the code. If that notebook has not run
    with this code, a ``NotTrainedYet`` error says to run it first. (Quick mode, whose runs take
    seconds, trains the run here instead, so that each notebook's quick run stands alone.)
    """
    if quick_mode():
        return train(config)
    config_, task, model = _task_and_model(config)
    run = _load_run(config_, task, model)
    if run is None:
        raise NotTrainedYet(f"no run of this configuration in {runs_dir()} for the present code: run notebook "
                            f"{notebook} first (make notebooks NB={notebook[:2]} FORCE=1), which trains it, then this "
                            f"cell again. (A notebook changed since `make export` trains with other code; or "
                            f"train the run here: experiments.train(config).)")
    return run


# ---------------------------------------------------------------------------------------------
# The configurations the notebooks train

WINDOW_CONFIGS = {  # (dataset, model) -> Config: notebook 02
    ("surnames", "mlp"): Config("surnames", "mlp", block_size=8, hidden_size=256, batch_size=512, lr=5e-3,
                                weight_decay=0.01, epochs=8, decays=1, lr_decay=0.1),
    ("surnames", "cnn"): Config("surnames", "cnn", block_size=8, hidden_size=128, batch_size=512, lr=5e-3,
                                weight_decay=0.01, epochs=8),
    ("time-machine", "mlp"): Config("time-machine", "mlp", block_size=8, hidden_size=256, batch_size=256,
                                    lr=3e-3, weight_decay=0.01, epochs=10, decays=1, lr_decay=0.1),
    ("time-machine", "cnn"): Config("time-machine", "cnn", block_size=16, hidden_size=128, batch_size=256,
                                    lr=3e-3, weight_decay=0.01, epochs=12),
}

RNN_CONFIGS = {  # dataset -> Config: notebook 03; one-hot input (embedding_dim=None), so X_t U is the textbook's
    "surnames": Config("surnames", "rnn", hidden_size=256, embedding_dim=None, batch_size=128, parts=3, lr=5e-3,
                       dropout=0.0, epochs=12, min_delta=0.01),
    "time-machine": Config("time-machine", "rnn", hidden_size=256, embedding_dim=None, num_steps=32, batch_size=32,
                           lr=5e-3, dropout=0.0, epochs=30, patience=2, min_delta=0.01),
}

# Notebook 05. dataset -> the learning rates and the dropout rates (on the recurrent layer's outputs)
# every cell is tried with; the book's grid was widened until no model's best point lay on its far edge
LR_GRID = {"surnames": (2e-3, 5e-3, 1e-2, 2e-2), "time-machine": (2e-3, 5e-3, 1e-2, 2e-2, 4e-2, 8e-2)}
DROPOUT_GRID = {"surnames": (0.0, 0.2, 0.4), "time-machine": (0.0, 0.2, 0.4, 0.6, 0.8)}
EQUAL_PARAMETERS = {"gru": 145, "lstm": 124}  # hidden sizes with about the parameters of the RNN's 256
CHOSEN = {  # (dataset, cell, hidden size) -> (lr, dropout): the grid point with the lowest validation loss
    ("surnames", "rnn", 256): (5e-3, 0.0),
    ("surnames", "gru", 256): (5e-3, 0.2), ("surnames", "gru", 145): (5e-3, 0.0),
    ("surnames", "lstm", 256): (1e-2, 0.2), ("surnames", "lstm", 124): (1e-2, 0.0),
    ("time-machine", "rnn", 256): (5e-3, 0.0),
    ("time-machine", "gru", 256): (1e-2, 0.6), ("time-machine", "gru", 145): (1e-2, 0.2),
    ("time-machine", "lstm", 256): (2e-2, 0.4), ("time-machine", "lstm", 124): (2e-2, 0.2),
}


def _cell_configs(dataset: str) -> dict:
    base = RNN_CONFIGS[dataset]
    configs = {"RNN": base}
    for cell in ("gru", "lstm"):
        for size in (base.hidden_size, EQUAL_PARAMETERS[cell]):
            lr, dropout = CHOSEN[dataset, cell, size]
            label = cell.upper() if size == base.hidden_size else f"{cell.upper()}, {size} units"
            configs[label] = replace(base, cell=cell, hidden_size=size, lr=lr, dropout=dropout)
    return configs


GATED_CONFIGS = {(dataset, label): config for dataset in DATASETS
                 for label, config in _cell_configs(dataset).items()}  # (dataset, label) -> Config

RECALL_CONFIG = Config("recall", "rnn", hidden_size=32, embedding_dim=None, batch_size=128, lr=1e-2, clip=1.0,
                       epochs=20, patience=None, decays=0, stop_below=0.01)
RECALL_SPANS = (5, 10, 20, 40, 80)  # make bench trains them all; notebook 05 all but the last
RECALL_CELLS = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm", "LSTM, forget bias 3": "lstm, forget bias 3"}

# Notebook 06
NAME_CLASSIFIER = Config("first-names", "classifier", cell="gru", hidden_size=128, embedding_dim=64, batch_size=128,
                         lr=5e-3, dropout=0.3, epochs=12)
NAME_CLASSIFIERS = {  # (direction, readout) -> Config
    ("left to right", "last"): NAME_CLASSIFIER,
    ("left to right", "mean"): replace(NAME_CLASSIFIER, readout="mean"),
    ("both ways", "last"): replace(NAME_CLASSIFIER, bidirectional=True),
}
SPACE_TAGGER = Config("spaces", "tagger", cell="gru", hidden_size=128, embedding_dim=24, num_steps=64,
                      batch_size=32, lr=3e-3, dropout=0.1, epochs=15)
SPACE_TAGGERS = {
    "left to right": SPACE_TAGGER,
    "both ways": replace(SPACE_TAGGER, bidirectional=True, hidden_size=88),
    "window, 4 either side": replace(SPACE_TAGGER, cell="window", block_size=4, hidden_size=256),
}

# Notebook 07
CONDITIONAL_GENERATOR = Config("conditional-names", "rnn", cell="gru", hidden_size=64, embedding_dim=24,
                               batch_size=128, parts=3, lr=1e-2, epochs=5)
SEQ2SEQ = Config("numbers", "seq2seq", cell="gru", hidden_size=128, embedding_dim=32, batch_size=256, lr=1e-2,
                 epochs=6)
