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

from __future__ import annotations

import contextlib
import copy
import csv
import itertools
import math
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from tqdm.std import tqdm

from chapterdata import FIRST_NAME_FILES, SURNAME_FILES, fetch, gutenberg_book_text
from fastrnn import gru_forward, lstm_forward, needs_grad, previous_states, rnn_forward, weight_gradient

__all__ = [
    'set_seed', 'get_device', 'load_surnames', 'load_first_names', 'load_time_machine', 'UNK', 'BOUNDARY', 'Vocab',
    'split_names', 'split_text', 'check_positive', 'name_windows', 'text_windows', 'IGNORE_INDEX', 'pad_names',
    'Parts', 'name_batches', 'random_batches', 'sequential_batches', 'next_token_loss', 'model_device', 'eval_mode',
    'evaluate', 'splits', 'WindowData', 'windows', 'WindowModel', 'NGramModel', 'History', 'fit', 'num_params',
    'plot_history', 'MLPContext', 'CausalCNN', 'sample', 'check_sequence', 'check_state', 'RNN', 'RNNLanguageModel',
    'clip_gradients', 'backprop_through_time', 'bptt_gradients', 'LSTM', 'GRU', 'recall_batch', 'Bidirectional',
    'SEXES', 'load_name_sexes', 'name_sex_splits', 'SuffixClassifier', 'classification_accuracy', 'RNNClassifier',
    'pad_sources', 'labelled_batches', 'predictions', 'without_spaces', 'WindowTagger', 'precision_recall_f1',
    'free_running_accuracy', 'SEX_MARKS', 'marked_names', 'MAX_NUMBER', 'number_words', 'number_splits',
    'number_vocabs', 'number_batches', 'Seq2Seq', 'greedy_decode', 'beam_search', 'character_error_rate',
]


# %% notebooks/01-text-data.md · § Small utilities
def set_seed(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators.

    Explained in notebooks/01-text-data.md, § Small utilities.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device() -> torch.device:
    """``$CHAPTER_DEVICE`` if set (cpu, cuda, mps), else the best available: CUDA, then Apple's MPS, then the CPU.

    Explained in notebooks/01-text-data.md, § Small utilities.
    """
    choice = os.environ.get("CHAPTER_DEVICE", "").strip().lower()
    if choice:
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
        if choice not in available:
            raise ValueError(f"CHAPTER_DEVICE={choice!r} is not a device: use cpu, cuda or mps (or unset it)")
        if not available[choice]:
            raise RuntimeError(f"CHAPTER_DEVICE={choice} but this machine's PyTorch has no {choice} device; "
                               "unset CHAPTER_DEVICE to use the best available one")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# %% notebooks/01-text-data.md · § Spanish names
def _first_column(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        next(rows)  # header
        return [row[0].strip().lower() for row in rows if row and row[0].strip()]


def load_surnames() -> list[str]:
    """All unique Spanish surnames held by at least 20 residents, lower case, sorted.

    Explained in notebooks/01-text-data.md, § Spanish names.
    """
    return sorted({name for file in SURNAME_FILES for name in _first_column(fetch(file))})


def load_first_names(sex: str = "both") -> list[str]:
    """Unique Spanish first names (``sex``: "male", "female" or "both"), lower case, sorted.

    Explained in notebooks/01-text-data.md, § Spanish names.
    """
    if sex not in ("male", "female", "both"):
        raise ValueError(f"sex must be 'male', 'female' or 'both', not {sex!r}")
    files = FIRST_NAME_FILES.values() if sex == "both" else [FIRST_NAME_FILES[sex]]
    return sorted({name for file in files for name in _first_column(fetch(file))})


# %% notebooks/01-text-data.md · § *The Time Machine*
def _preprocess_text(text: str) -> str:
    """The chapter's preprocessing: lower case; every run of non-letters becomes one space."""
    return re.sub("[^a-z]+", " ", text.lower()).strip()


def load_time_machine(preprocess: bool = True) -> str:
    """The Time Machine as the chapter uses it, 26 lower-case letters and single spaces; with
    ``preprocess=False``, as published (only Gutenberg's header, footer and BOM removed).

    Explained in notebooks/01-text-data.md, § *The Time Machine*.
    """
    raw = fetch("time-machine/pg35.txt").read_text(encoding="utf-8-sig")
    book = gutenberg_book_text(raw).strip()
    return _preprocess_text(book) if preprocess else book


# %% notebooks/01-text-data.md · § Vocabulary and tokenizer
UNK = "<unk>"
BOUNDARY = "."


class Vocab:
    """Token <-> id mapping built from training text; unknown tokens map to ``<unk>`` (id 0).

    Explained in notebooks/01-text-data.md, § Vocabulary and tokenizer.
    """

    def __init__(self, texts: Iterable[Sequence[str]], reserved: Sequence[str] = (), min_freq: int = 1):
        counts = Counter(token for text in texts for token in text)
        if not counts:
            raise ValueError(
                "Vocab got no tokens: pass the training texts it should cover, e.g. a list of "
                "names (Vocab(train_names)) or a list holding one long text (Vocab([train_text])).")
        if UNK in reserved:
            raise ValueError(f"{UNK!r} is always reserved (id 0); do not list it in `reserved`")
        clash = [t for t in reserved if t in counts]
        if clash:
            raise ValueError(f"reserved tokens {clash} also occur in the data; choose other ones")
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        if not kept:
            raise ValueError(f"no token occurs at least min_freq={min_freq} times "
                             f"(the most frequent occurs {max(counts.values())} times); lower min_freq")
        self.itos: list[str] = [UNK, *reserved, *kept]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.counts = counts

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, 0)

    @property
    def unk(self) -> int:
        return 0

    def encode(self, text: Sequence[str]) -> list[int]:
        """Ids of the tokens of ``text`` (characters of a string); unknown ones -> ``unk``."""
        return [self.stoi.get(token, 0) for token in text]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of a sequence of ids (tokens joined without separator)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self.itos)]
        if bad:
            raise IndexError(f"ids {bad[:5]} are outside this vocabulary of size {len(self)}")
        return "".join(self.itos[i] for i in ids)

    def __repr__(self) -> str:
        shown = "".join(t if len(t) == 1 else f"[{t}]" for t in self.itos[:40])
        return f"Vocab(size={len(self)}, tokens={shown!r})"


# %% notebooks/01-text-data.md · § Splits that do not leak
def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")


def split_names(names: Iterable[str], fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """Split *unique* names at random into (train, valid, test) lists; no name is in two splits.

    Explained in notebooks/01-text-data.md, § Splits that do not leak.
    """
    _check_fractions(fractions)
    unique = sorted(set(names))
    if not unique:
        raise ValueError("split_names got no names")
    random.Random(seed).shuffle(unique)
    n_train = int(round(fractions[0] * len(unique)))
    n_valid = int(round(fractions[1] * len(unique)))
    return unique[:n_train], unique[n_train:n_train + n_valid], unique[n_train + n_valid:]


def split_text(text: str, fractions=(0.8, 0.1, 0.1)):
    """Cut text into contiguous (train, valid, test) blocks, in reading order.

    Explained in notebooks/01-text-data.md, § Splits that do not leak.
    """
    _check_fractions(fractions)
    a = int(fractions[0] * len(text))
    b = int((fractions[0] + fractions[1]) * len(text))
    return text[:a], text[a:b], text[b:]


# %% notebooks/01-text-data.md · § Fixed-window contexts
def check_positive(**sizes) -> None:
    """Raise unless every keyword's value is an int >= 1 (a window, a batch size, a hidden size...).

    Explained in notebooks/01-text-data.md, § Fixed-window contexts.
    """
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def name_windows(names: Sequence[str], vocab: Vocab, block_size: int):
    """Context windows of every name: X (N, block_size) ids, Y (N,) next-character ids.

    Each name is padded on the left with ``block_size`` boundary tokens and followed by one
    boundary token, so it contributes ``len(name) + 1`` examples.

    Explained in notebooks/01-text-data.md, § Fixed-window contexts.
    """
    check_positive(block_size=block_size)
    if len(names) == 0:
        raise ValueError("name_windows got an empty list of names")
    if BOUNDARY not in vocab:
        raise ValueError(f"the vocabulary has no boundary token {BOUNDARY!r}; build it with reserved=[BOUNDARY]")
    pad = vocab[BOUNDARY]
    X, Y = [], []
    for name in names:
        ids = [pad] * block_size + vocab.encode(name) + [pad]
        for t in range(block_size, len(ids)):
            X.append(ids[t - block_size:t])
            Y.append(ids[t])
    return torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)


def text_windows(ids: torch.Tensor, block_size: int):
    """All windows of a 1-D id tensor: X (N, block_size), Y (N,) with Y[i] = ids[i + block_size].

    Windows are cut inside ``ids`` only, so windows of a training block never reach held-out text.

    Explained in notebooks/01-text-data.md, § Fixed-window contexts.
    """
    check_positive(block_size=block_size)
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.ndim != 1 or len(ids) <= block_size:
        raise ValueError(f"need a 1-D sequence longer than the window ({block_size}), got shape {tuple(ids.shape)}")
    X = ids.unfold(0, block_size, 1)[:-1]  # (N, block_size), a view: no copy
    Y = ids[block_size:]
    return X, Y


# %% notebooks/01-text-data.md · § Sequences for recurrent networks
IGNORE_INDEX = -100  # the default ignore_index of torch.nn.functional.cross_entropy


def pad_names(names: Sequence[str], vocab: Vocab):
    """A batch of names as sequence-first tensors X, Y of shape (T, B); padded targets are IGNORE_INDEX.

    Name ``b`` reads ``. n a m e`` in ``X[:, b]`` and ``n a m e .`` in ``Y[:, b]``.

    Explained in notebooks/01-text-data.md, § Sequences for recurrent networks.
    """
    if len(names) == 0:
        raise ValueError("pad_names got an empty list of names")
    if BOUNDARY not in vocab:
        raise ValueError(f"the vocabulary has no boundary token {BOUNDARY!r}; build it with reserved=[BOUNDARY]")
    pad = vocab[BOUNDARY]
    T = max(len(n) for n in names) + 1
    rows = [[pad] + vocab.encode(name) + [pad] for name in names]  # each name between two boundaries
    X = torch.tensor([row[:-1] + [pad] * (T + 1 - len(row)) for row in rows])  # (B, T)
    Y = torch.tensor([row[1:] + [IGNORE_INDEX] * (T + 1 - len(row)) for row in rows])
    return X.T.contiguous(), Y.T.contiguous()  # (T, B) each


class Parts(tuple):
    """One training batch cut into parts of similar length, each padded only to its own longest
    sequence. ``fit`` takes one optimizer step on all the parts together (it adds up their
    gradients), so the step is the same as on the whole batch; less of the work is padding.

    Explained in notebooks/01-text-data.md, § Sequences for recurrent networks.
    """


def _by_length(items: Sequence, parts: int, length=len) -> list[list]:
    """``items`` sorted by ``length`` (stably) and cut into ``parts`` runs of (nearly) equal size."""
    check_positive(parts=parts)
    items, n = sorted(items, key=length), len(items)
    cuts = [k * n // parts for k in range(parts + 1)]
    return [items[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def name_batches(names: Sequence[str], vocab: Vocab, batch_size: int, shuffle: bool = True,
                 generator: torch.Generator | None = None, parts: int = 1):
    """Iterate over (X, Y) batches of names, each padded as in ``pad_names``.

    With ``parts`` > 1, each batch is yielded as ``Parts``: its names sorted by length and cut
    into ``parts`` pieces, each an (X, Y) padded to its own longest name. The batches are the
    same as with ``parts=1``; only the padding differs.

    Explained in notebooks/01-text-data.md, § Sequences for recurrent networks.
    """
    _by_length([], parts)  # checks parts
    check_positive(batch_size=batch_size)
    if len(names) == 0:
        raise ValueError("name_batches got an empty list of names")
    order = torch.randperm(len(names), generator=generator).tolist() if shuffle else list(range(len(names)))

    def batch(chosen):
        if parts == 1:
            return pad_names(chosen, vocab)
        return Parts(pad_names(piece, vocab) for piece in _by_length(chosen, parts))

    for i in range(0, len(names), batch_size):
        yield batch([names[j] for j in order[i:i + batch_size]])


# %% notebooks/01-text-data.md · § Sequences for recurrent networks (2)
def _check_steps(ids, num_steps: int, batch_size: int) -> torch.Tensor:
    ids = torch.as_tensor(ids, dtype=torch.long)
    check_positive(num_steps=num_steps, batch_size=batch_size)
    if len(ids) < num_steps * batch_size + 1:
        raise ValueError(f"a text of {len(ids)} tokens is too short for batches of "
                         f"{batch_size} x {num_steps} steps")
    return ids


def random_batches(ids, num_steps: int, batch_size: int, generator: torch.Generator | None = None):
    """Random sampling: shuffled non-overlapping windows, X and Y of shape (num_steps, B) each.

    Explained in notebooks/01-text-data.md, § Sequences for recurrent networks.
    """
    ids = _check_steps(ids, num_steps, batch_size)
    if len(ids) < num_steps * (batch_size + 1):  # one batch whatever the random offset (< num_steps)
        raise ValueError(f"a text of {len(ids)} tokens is too short for random batches of {batch_size} x "
                         f"{num_steps} steps: it needs {num_steps * (batch_size + 1)}")
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    n = (len(ids) - offset - 1) // num_steps
    starts = offset + num_steps * torch.randperm(n, generator=generator)
    steps = torch.arange(num_steps)
    for i in range(0, n - batch_size + 1, batch_size):
        idx = starts[i:i + batch_size, None] + steps  # (B, T)
        yield ids[idx].T, ids[idx + 1].T


def sequential_batches(ids, num_steps: int, batch_size: int, offset: int = 0):
    """Sequential partitioning: row b of each (num_steps, B) batch continues row b of the last one.
    The streams start ``offset`` >= 0 tokens into ``ids``.

    Explained in notebooks/01-text-data.md, § Sequences for recurrent networks.
    """
    ids = _check_steps(ids, num_steps, batch_size)
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an integer >= 0, got {offset!r}")
    n = (len(ids) - offset - 1) // batch_size  # tokens per stream
    n -= n % num_steps
    if n < num_steps:
        raise ValueError(f"offset {offset} leaves too little text for one batch")
    Xs = ids[offset:offset + batch_size * n].reshape(batch_size, n).T  # (n, B): one stream per column
    Ys = ids[offset + 1:offset + 1 + batch_size * n].reshape(batch_size, n).T
    for t in range(0, n, num_steps):
        yield Xs[t:t + num_steps], Ys[t:t + num_steps]


# %% notebooks/02-context-models.md · § Scoring a language model
def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits (..., C) against class ids (...); IGNORE_INDEX targets do not count.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"logits of shape {tuple(logits.shape)} need targets of shape {tuple(logits.shape[:-1])}, "
                         f"got {tuple(targets.shape)}: are the targets batch-first where the logits are not?")
    C = logits.shape[-1]
    targets = targets.reshape(-1)
    real = targets[targets != IGNORE_INDEX]
    if len(real) and not 0 <= int(real.min()) <= int(real.max()) < C:
        raise ValueError(f"a target id ({int(real.min())} or {int(real.max())}) is outside the model's {C} "
                         "classes: encode the data with the vocabulary the model was built for")
    return F.cross_entropy(logits.reshape(-1, C), targets, ignore_index=IGNORE_INDEX, reduction=reduction)


def _batches(data):
    """A fresh pass over ``data``: a list of (X, Y) batches, a function returning fresh batches, or one
    pair (X, Y) of tensors (windows and their targets, say), cut in order into batches of 8192 rows."""
    if callable(data):
        return data()
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        X, Y = data
        return [(X[i:i + 8192], Y[i:i + 8192]) for i in range(0, len(X), 8192)]
    if iter(data) is data:
        raise TypeError(f"got a one-shot {type(data).__name__}, which would be empty after one pass. Pass a "
                        "list of (X, Y) batches, or a function returning fresh batches, e.g. "
                        "lambda: sequential_batches(ids, 32, 16)")
    return data


def _detach(state):
    """The state without its history: gradients stop here (truncated BPTT)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return type(state)(_detach(s) for s in state)


def _on(device, X):
    """X moved to ``device``: a tensor, or a tuple of them (an encoder–decoder reads two, notebook 07)."""
    return tuple(x.to(device) for x in X) if isinstance(X, tuple) else X.to(device)


def _logits_and_state(model, X, state, stateful: bool):
    inputs = X if isinstance(X, tuple) else (X,)
    out = model(*inputs, state) if stateful else model(*inputs)
    return out if isinstance(out, tuple) else (out, None)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model lives: its first parameter's (or buffer's) device; the CPU if it has neither.
    New tensors that meet the model go there.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """``with eval_mode(model):`` evaluation mode (dropout off) and no gradients inside the block;
    afterwards the model is back in the mode it had, also when the block raised.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def evaluate(model: torch.nn.Module, data, stateful: bool = False) -> float:
    """Mean cross-entropy (nats per token) of ``model`` on ``data``: a list of (X, Y) batches, a
    function returning them, or one (X, Y) pair of tensors (evaluated in batches); ``stateful``
    carries a recurrent model's state across the batches.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """
    device = model_device(model)
    total, count, state = 0.0, 0, None
    with eval_mode(model):
        for X, Y in _batches(data):
            X, Y = _on(device, X), Y.to(device)
            logits, state = _logits_and_state(model, X, state, stateful)
            total += next_token_loss(logits, Y, reduction="sum").item()
            count += int((Y != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("evaluate got no targets: the data is empty")
    return total / count


# %% notebooks/02-context-models.md · § Scoring a language model (2)
def splits(dataset: str):
    """(vocab, train, valid, test) of a dataset, split as in notebook 01.

    Surnames: lists of names, split 80/10/10 by unique name (seed 0); the vocabulary of the training
    names reserves the boundary token. The Time Machine: 1-D tensors of ids, the contiguous blocks.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """
    if dataset == "surnames":
        train, valid, test = split_names(load_surnames(), seed=0)
        return Vocab(train, reserved=[BOUNDARY]), train, valid, test
    if dataset == "time-machine":
        train, valid, test = split_text(load_time_machine())
        vocab = Vocab([train])
        return (vocab, *(torch.tensor(vocab.encode(block)) for block in (train, valid, test)))
    raise ValueError(f"unknown dataset {dataset!r}: choose 'surnames' or 'time-machine'")


def _last_columns(X: torch.Tensor, block_size: int) -> torch.Tensor:
    """The last ``block_size`` characters of each window X (N, T); T must be >= block_size."""
    if X.ndim != 2:
        raise ValueError(f"windows must have shape (N, T), got {tuple(X.shape)}")
    if X.shape[1] < block_size:
        raise ValueError(f"windows of {X.shape[1]} characters are too short for a model that "
                         f"reads {block_size}; cut them with block_size >= {block_size}")
    return X[:, X.shape[1] - block_size:]


@dataclass
class WindowData:
    """Windows (X, Y) of the train / valid / test splits of one dataset, and its vocabulary.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """

    name: str
    vocab: Vocab
    train: tuple
    valid: tuple
    test: tuple


def windows(dataset: str, block_size: int = 16) -> WindowData:
    """Every split of ``dataset`` cut into windows of ``block_size`` characters (X) and targets (Y).

    Names are padded with the boundary token; the book's windows stay inside their own block.

    Explained in notebooks/02-context-models.md, § Scoring a language model.
    """
    vocab, *parts = splits(dataset)
    if dataset == "surnames":
        return WindowData(dataset, vocab, *(name_windows(names, vocab, block_size) for names in parts))
    return WindowData(dataset, vocab, *(text_windows(ids, block_size) for ids in parts))


# %% notebooks/02-context-models.md · § Counting: the $n$-gram model
class WindowModel(nn.Module):
    """A model of the next token given a fixed window: ``forward`` maps windows X (N, T) to logits
    (N, V) and reads only their last ``block_size`` tokens. The sampler and the metrics feed such
    a model windows; every other model is read as a recurrent one, ids (T, B) -> (logits, state).

    Explained in notebooks/02-context-models.md, § Counting: the $n$-gram model.
    """

    block_size: int  # tokens of context


class NGramModel(WindowModel):
    """Order-``n`` character model from add-k smoothed counts: p(y | previous n-1 characters).

    Explained in notebooks/02-context-models.md, § Counting: the $n$-gram model.
    """

    def __init__(self, vocab_size: int, order: int, k: float = 0.1):
        super().__init__()
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer >= 1 (1 = unigram), got {order!r}")
        if vocab_size < 2 or vocab_size ** (order - 1) >= 2 ** 62:
            raise ValueError(f"vocab_size {vocab_size} and order {order} give too many contexts to index")
        self.vocab_size, self.order, self.block_size = vocab_size, order, order - 1
        self.k = k
        self.register_buffer("contexts", torch.zeros(0, dtype=torch.long))  # sorted context ids
        self.register_buffer("counts", torch.zeros(0, vocab_size))  # (contexts, V): N(c, y)

    @property
    def k(self) -> float:
        return self._k

    @k.setter
    def k(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"the smoothing constant k must be > 0, got {value}: with k = 0 an "
                             "unseen pair gets probability 0 and the loss becomes infinite")
        self._k = float(value)

    def context_ids(self, X: torch.Tensor) -> torch.Tensor:
        """Each window's last n-1 characters as one number in base |V|: (N, T) -> (N,)."""
        X = _last_columns(X, self.block_size)
        powers = self.vocab_size ** torch.arange(self.block_size - 1, -1, -1, device=X.device)
        return (X * powers).sum(dim=1)

    @torch.no_grad()
    def count(self, X: torch.Tensor, Y: torch.Tensor) -> "NGramModel":
        """Count every (context, next character) pair of the windows X (N, T) and targets Y (N,)."""
        if len(X) == 0 or len(X) != len(Y):
            raise ValueError(f"need as many targets as windows (and at least one), got {len(X)} and {len(Y)}")
        self.contexts, inverse = torch.unique(self.context_ids(X), return_inverse=True)
        self.counts = torch.zeros(len(self.contexts), self.vocab_size, device=X.device)
        self.counts.index_put_((inverse, Y), torch.ones(len(Y), device=X.device), accumulate=True)
        return self

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, V) of the next character after each window of X (N, T)."""
        keys = self.context_ids(X)  # (N,)
        if len(self.contexts) == 0:
            raise RuntimeError("this NGramModel has no counts yet: call .count(X, Y) first")
        pos = torch.searchsorted(self.contexts, keys).clamp(max=len(self.contexts) - 1)
        seen = (self.contexts[pos] == keys).unsqueeze(1)  # (N, 1): unseen contexts count 0
        counts = torch.where(seen, self.counts[pos], 0.0)  # (N, V)
        return (counts + self.k).log() - (counts.sum(1, keepdim=True) + self.k * self.vocab_size).log()


# %% notebooks/02-context-models.md · § One training loop for the chapter
@dataclass
class History:
    """What ``fit`` measured per epoch (losses in nats/token, learning rates), the best epoch, the time.

    Explained in notebooks/02-context-models.md, § One training loop for the chapter.
    """

    train_loss: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = -1
    best_valid: float = math.inf
    seconds: float = 0.0
    steps: int = 0


def _train_epoch(model, data, optimizer, clip, stateful: bool, device) -> tuple[float, int]:
    """One pass over the training batches; returns the mean training loss and the number of steps.

    A batch is an (X, Y) pair, or ``Parts`` of one (notebook 01): then each part's summed loss,
    divided by the whole batch's number of targets, is backpropagated in turn, and the gradients
    add up to those of the batch's mean loss before the one step.
    """
    model.train()
    total, count, steps, state = 0.0, 0, 0, None
    for batch in _batches(data):
        pieces = batch if isinstance(batch, Parts) else (batch,)
        if stateful and len(pieces) > 1:
            raise ValueError("a stateful model carries its state from batch to batch: its batches cannot "
                             "come in Parts")
        n = sum(int((Y != IGNORE_INDEX).sum()) for _, Y in pieces)  # targets in the whole batch
        optimizer.zero_grad(set_to_none=True)
        for X, Y in pieces:
            X, Y = _on(device, X), Y.to(device)
            logits, state = _logits_and_state(model, X, state, stateful)
            state = _detach(state)  # truncated BPTT: the next batch's gradient stops here
            if len(pieces) == 1:
                loss = next_token_loss(logits, Y)
            else:  # this part's share of the batch's mean loss
                loss = next_token_loss(logits, Y, reduction="sum") / n
            loss.backward()
            total += loss.item() * n
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        count, steps = count + n, steps + 1
    if steps == 0:
        raise ValueError("the training data produced no batches: is it smaller than one batch?")
    return total / max(count, 1), steps


# %% notebooks/02-context-models.md · § One training loop for the chapter (2)
def _validate(model: torch.nn.Module, valid_data, stateful: bool, epoch: int) -> float:
    valid = evaluate(model, valid_data, stateful=stateful)
    if math.isnan(valid):
        raise FloatingPointError(f"the validation loss is nan after epoch {epoch + 1}: training diverged; "
                                 "try a smaller learning rate (lr) or gradient clipping (clip)")
    return valid


def fit(model: torch.nn.Module, train_data, valid_data=None, *, epochs: int = 10, lr: float = 1e-3,
        weight_decay: float = 0.0, clip: float | None = None, stateful: bool = False, schedule=None,
        optimizer=torch.optim.AdamW, device=None, progress: bool = True, desc: str = "training") -> History:
    """Train ``model`` on the mean cross-entropy for ``epochs`` epochs; return its ``History``.

    ``train_data``, ``valid_data``: lists of (X, Y) batches, or functions returning fresh batches
    (called once per epoch). ``clip`` bounds the global gradient norm; ``stateful`` carries a
    recurrent model's state across batches (detached). With ``valid_data``, the weights of the
    best validation loss are kept and restored at the end, and ``schedule``, if given, is called
    after every epoch as ``schedule(valid_loss, lr)``: it returns the next epoch's learning rate
    (a new one continues from the best weights), or None to stop. ``optimizer``: a class of
    ``torch.optim`` (or a function) called as ``optimizer(parameters, lr=lr, weight_decay=weight_decay)``.
    ``device`` defaults to ``get_device()``.

    Explained in notebooks/02-context-models.md, § One training loop for the chapter.
    """
    if clip is not None and not clip > 0:  # clip_grad_norm_ would scale every gradient by 0, or flip it
        raise ValueError(f"clip must be > 0, or None for no clipping; got {clip}")
    check_positive(epochs=epochs)
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    history, best_state = History(), None
    start = time.perf_counter()
    bar = tqdm(total=epochs, desc=desc, disable=not progress, file=sys.stdout, ncols=100, mininterval=1.0,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} epochs{postfix}")
    for epoch in range(epochs):
        history.lr.append(opt.param_groups[0]["lr"])
        train_loss, steps = _train_epoch(model, train_data, opt, clip, stateful, device)
        history.train_loss.append(train_loss)
        history.steps += steps
        if valid_data is None:
            bar.set_postfix(train=f"{train_loss:.3f}", refresh=False)
            bar.update()
            continue
        valid = _validate(model, valid_data, stateful, epoch)
        history.valid_loss.append(valid)
        bar.set_postfix(train=f"{train_loss:.3f}", valid=f"{valid:.3f}", refresh=False)
        bar.update()  # the bar counts the epochs run, also when the schedule stops training early
        if valid < history.best_valid:
            history.best_epoch, history.best_valid = epoch, valid
            best_state = copy.deepcopy(model.state_dict())
        next_lr = history.lr[-1] if schedule is None else schedule(valid, history.lr[-1])
        if next_lr is None:
            break
        if next_lr != history.lr[-1]:
            model.load_state_dict(best_state)  # continue from the best weights, with the new rate
            for group in opt.param_groups:
                group["lr"] = next_lr
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history


# %% notebooks/02-context-models.md · § One training loop for the chapter (3)
def num_params(model: torch.nn.Module) -> int:
    """The number of numbers in ``model``'s parameters (trainable or not).

    Explained in notebooks/02-context-models.md, § One training loop for the chapter.
    """
    return sum(p.numel() for p in model.parameters())


def plot_history(histories: dict, ax=None, title: str = "Loss curves"):
    """Train (dashed) and validation (solid) loss per epoch of several named ``History``s; a dot marks
    the best epoch and a small vertical tick each drop of the learning rate.

    Explained in notebooks/02-context-models.md, § One training loop for the chapter.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = range(1, len(h.train_loss) + 1)
        ax.plot(epochs, h.train_loss, "--", color=color, alpha=0.7)
        if h.valid_loss:
            ax.plot(epochs, h.valid_loss, "-", color=color, label=name)
            ax.plot(h.best_epoch + 1, h.best_valid, "o", color=color)
            drops = [e + 1 for e in range(1, len(h.lr)) if h.lr[e] < h.lr[e - 1]]
            ax.plot(drops, [h.valid_loss[e - 1] for e in drops], "|", color=color, markersize=12)
        else:
            ax.plot([], [], "--", color=color, label=name)
    ax.set(xlabel="epoch", ylabel="loss (nats/token)", title=title + "  (dashed: train, solid: valid)")
    ax.legend()
    return ax


# %% notebooks/02-context-models.md · § A neural model of the window: the MLP
class MLPContext(WindowModel):
    """Bengio et al. (2003): embed the window's characters, concatenate, one tanh hidden layer.

    Explained in notebooks/02-context-models.md, § A neural model of the window: the MLP.
    """

    def __init__(self, vocab_size: int, block_size: int, embedding_dim: int = 24, hidden_size: int = 256):
        super().__init__()
        check_positive(block_size=block_size)
        self.block_size = block_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.hidden = nn.Linear(block_size * embedding_dim, hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Windows X (N, T >= block_size) -> logits (N, V) of the next character."""
        e = self.embedding(_last_columns(X, self.block_size))  # (N, tau, d)
        h = torch.tanh(self.hidden(e.flatten(1)))  # (N, H)
        return self.output(h)  # (N, V) logits


# %% notebooks/02-context-models.md · § A causal convolutional model: WaveNet's tree
class CausalCNN(WindowModel):
    """WaveNet-style causal convolutions (kernel 2, dilations 1, 2, 4, ...) read at the last position.

    With ``levels`` layers the receptive field is ``2 ** levels`` characters (``block_size``).

    Explained in notebooks/02-context-models.md, § A causal convolutional model: WaveNet's tree.
    """

    def __init__(self, vocab_size: int, levels: int = 3, embedding_dim: int = 24, hidden_size: int = 128):
        super().__init__()
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1 (receptive field 2**levels), got {levels!r}")
        self.block_size = 2 ** levels  # the receptive field, eq. (eq-receptive-field)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        widths = [embedding_dim] + [hidden_size] * levels  # channels per level
        self.convs = nn.ModuleList(nn.Linear(2 * w, hidden_size) for w in widths[:-1])
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(levels))
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Windows X (N, T >= block_size) -> logits (N, V) of the next character."""
        h = self.embedding(_last_columns(X, self.block_size))  # (N, R, d)
        for conv, norm in zip(self.convs, self.norms):
            N, T, C = h.shape
            h = torch.tanh(norm(conv(h.reshape(N, T // 2, 2 * C))))  # (N, T/2, channels): merge pairs
        return self.output(h[:, 0])  # (N, V) logits


# %% notebooks/02-context-models.md · § Sampling names
def _next_logits(model: nn.Module, context: torch.Tensor, fresh: torch.Tensor, state, pad: int):
    """Logits (num, V) of the token after ``context`` (num, L). Window models read its last
    ``block_size`` tokens; recurrent ones read only the ``fresh`` tokens, carrying ``state``."""
    if not isinstance(model, WindowModel):
        logits, state = model(fresh.T, state)  # (L', num) in, (L', num, V) out
        return logits[-1], state
    missing = model.block_size - context.shape[1]
    if missing > 0:
        context = torch.cat([context.new_full((len(context), missing), pad), context], dim=1)
    return model(context[:, -model.block_size:]), None


def sample(model: nn.Module, vocab: Vocab, num: int = 1, prompt: str = "", max_length: int = 30,
           temperature: float = 1.0, generator: torch.Generator | None = None) -> list[str]:
    """``num`` samples of a language model: ``prompt`` followed by at most ``max_length`` drawn tokens.

    With the boundary token in the vocabulary, samples are names: generation starts after a
    boundary token and a sample ends at the next one (not included). Otherwise the prompt must not be
    empty; a window model sees it padded on the left with spaces. Each token is drawn from
    softmax(logits / temperature), never the unknown token; the draws use ``generator`` on the CPU.

    Explained in notebooks/02-context-models.md, § Sampling names.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; use a small value such as 0.01 "
                         "for (almost) greedy decoding")
    if num < 1 or max_length < 1:
        raise ValueError(f"num and max_length must be >= 1, got {num} and {max_length}")
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise ValueError(f"the prompt has characters outside the vocabulary: {unknown}; preprocess it like "
                         "the training text (for the book: lower case, letters and single spaces)")
    names = BOUNDARY in vocab
    if not (names or prompt):
        raise ValueError("a text model needs a prompt of at least one character to start from")
    pad = vocab[BOUNDARY] if names else vocab[" "]
    device = model_device(model)
    with eval_mode(model):
        context = torch.tensor(([pad] if names else []) + vocab.encode(prompt), device=device).repeat(num, 1)
        fresh, state, drawn = context, None, []
        done = torch.zeros(num, dtype=torch.bool)
        for _ in range(max_length):
            logits, state = _next_logits(model, context, fresh, state, pad)
            probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)  # (num, V)
            probs[:, vocab.unk] = 0  # the unknown token stands for no character: never emit it
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]  # (num,)
            if names:
                token[done] = pad
                done |= token == pad
            drawn.append(token)
            if names and done.all():
                break
            fresh = token.to(device)[:, None]  # (num, 1)
            context = torch.cat([context, fresh], dim=1)
    texts = [vocab.decode(row) for row in torch.stack(drawn, dim=1).tolist()]
    return [prompt + (text.split(BOUNDARY)[0] if names else text) for text in texts]


# %% notebooks/03-rnn.md · § The recurrent cell
def check_sequence(x: torch.Tensor, input_size: int, who: str, ids: bool = False):
    """(T, B) of an input x (T, B, input_size), or an error that says what was expected.

    With ``ids``, x holds token ids instead: shape (T, B), dtype long, every id in [0, input_size).

    Explained in notebooks/03-rnn.md, § The recurrent cell.
    """
    if ids:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.dtype != torch.long:
            shape = (tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{who} expects token ids of shape (T, B) and dtype long (sequence first), got {shape}")
        if x.numel() and not 0 <= int(x.min()) <= int(x.max()) < input_size:
            raise ValueError(f"token ids must lie in [0, {input_size}), got {int(x.min())}..{int(x.max())}: "
                             "encode the text with the vocabulary the model was built for")
        return x.shape[0], x.shape[1]
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != input_size or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} expects a non-empty input of shape (T, B, {input_size}), sequence first; "
                         f"got {shape} (batch-first data can be passed as x.transpose(0, 1))")
    return x.shape[0], x.shape[1]


def check_state(state: torch.Tensor, batch_size: int, hidden_size: int, who: str) -> torch.Tensor:
    """``state`` if it is a (batch_size, hidden_size) tensor, else an error that says so.

    Explained in notebooks/03-rnn.md, § The recurrent cell.
    """
    if not isinstance(state, torch.Tensor) or state.shape != (batch_size, hidden_size):
        shape = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
        raise ValueError(f"{who} expects a state of shape ({batch_size}, {hidden_size}) (batch, hidden), "
                         f"got {shape}")
    return state


class RNN(nn.Module):
    """Elman's recurrent cell, sequence-first: H_t = tanh(X_t U + H_{t-1} W + b).

    By default the loop below runs under autograd; ``fast=True`` runs it through ``_rnn_scan``,
    whose backward pass is notebook 04's hand-derived BPTT. Both compute the same.

    Explained in notebooks/03-rnn.md, § The recurrent cell.
    """

    def __init__(self, input_size: int, hidden_size: int, fast: bool = False):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.fast = input_size, hidden_size, fast
        bound = 1 / math.sqrt(hidden_size)  # the initialisation of torch.nn.RNN
        self.U = nn.Parameter(torch.empty(input_size, hidden_size).uniform_(-bound, bound))   # (D, H)
        self.W = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))  # (H, H)
        self.b = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))               # (H,)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """x (T, B, D) -> outputs (T, B, H) (the state after every step), final state (B, H)."""
        T, B = check_sequence(x, self.input_size, "RNN")
        h = x.new_zeros(B, self.hidden_size) if state is None else check_state(state, B, self.hidden_size, "RNN")
        XU = (x.reshape(T * B, -1) @ self.U + self.b).view(T, B, -1)  # (T, B, H): all steps at once
        if self.fast:  # opt-in: the same loop, with the backward pass derived in notebook 04
            return _rnn_scan(XU, h, self.W)
        outputs = []
        for xu in XU.unbind(0):  # (B, H) per step
            h = torch.tanh(xu + h @ self.W)  # (B, H)
            outputs.append(h)
        return torch.stack(outputs), h

    @classmethod
    def from_torch(cls, module: nn.RNN) -> "RNN":
        """An RNN with the weights of a single-layer, unidirectional, tanh ``torch.nn.RNN``."""
        if type(module) is not nn.RNN:
            raise TypeError(f"from_torch expects a torch.nn.RNN, got {type(module).__name__}")
        if module.num_layers != 1 or module.bidirectional or module.nonlinearity != "tanh" or module.batch_first:
            raise ValueError("from_torch supports torch.nn.RNN(input_size, hidden_size) with num_layers=1, "
                             "bidirectional=False, nonlinearity='tanh' and batch_first=False only")
        w = module.weight_ih_l0
        rnn = cls(module.input_size, module.hidden_size).to(device=w.device, dtype=w.dtype)
        with torch.no_grad():
            rnn.U.copy_(module.weight_ih_l0.T)  # torch stores (H, D) and computes x W_ih^T
            rnn.W.copy_(module.weight_hh_l0.T)
            rnn.b.copy_(module.bias_ih_l0 + module.bias_hh_l0 if module.bias else torch.zeros_like(rnn.b))
        return rnn


# %% notebooks/03-rnn.md · § A character language model
class RNNLanguageModel(nn.Module):
    """Token ids (T, B) -> next-token logits (T, B, V) through a recurrent cell; returns (logits, state).

    Explained in notebooks/03-rnn.md, § A character language model.
    """

    def __init__(self, vocab_size: int, hidden_size: int, cell=RNN, embedding_dim: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = None if embedding_dim is None else nn.Embedding(vocab_size, embedding_dim)
        self.cell = cell(embedding_dim or vocab_size, hidden_size)
        self.dropout = nn.Dropout(dropout)  # on the states read by the output layer, not in the recurrence
        self.output = nn.Linear(hidden_size, vocab_size)  # weight: V^T, (vocab_size, hidden_size)

    def forward(self, X: torch.Tensor, state=None):
        """X (T, B) ids; state None (zeros) or the state returned by an earlier call."""
        outputs, state = self.cell(self.embed(X), state)  # (T, B, H)
        return self.output(self.dropout(outputs)), state  # (T, B, V)

    def embed(self, X: torch.Tensor) -> torch.Tensor:
        """The cell's inputs for ids X (T, B): one-hot rows (T, B, V), or embeddings (T, B, E)."""
        check_sequence(X, self.vocab_size, "RNNLanguageModel", ids=True)
        if self.embedding is None:
            return F.one_hot(X, self.vocab_size).to(self.output.weight.dtype)
        return self.embedding(X)


# %% notebooks/03-rnn.md · § Gradient clipping
def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """Rescale the gradients in place so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping, like ``torch.nn.utils.clip_grad_norm_``.

    Explained in notebooks/03-rnn.md, § Gradient clipping.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    if isinstance(parameters, torch.Tensor):  # one tensor, as clip_grad_norm_ also accepts
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)  # the same epsilon as PyTorch
    for g in grads:
        g.detach().mul_(scale)
    return norm


# %% notebooks/04-bptt.md · § The equations in code
def backprop_through_time(dH_direct: torch.Tensor, W: torch.Tensor, act_grad: torch.Tensor,
                          truncate: int | None = None):
    """The BPTT recursion, from t = T down to 1.

    dH_t = dH_direct_t + dA_{t+1} W^T,   dA_t = dH_t * f'(A_t);   dA_{T+1} = 0.

    dH_direct (T, B, H): the gradient reaching H_t from its own output; act_grad (T, B, H):
    f'(A_t). ``truncate=k`` drops the term through H_{t+1} when t is a multiple of k (the
    state detached after every k-th step). Returns dH and dA, both (T, B, H), whose index
    t - 1 holds step t.

    Explained in notebooks/04-bptt.md, § The equations in code.
    """
    if truncate is not None:
        check_positive(truncate=truncate)
    T = dH_direct.shape[0]
    dH, dA = torch.empty_like(dH_direct), torch.empty_like(dH_direct)
    # per-step views (B, H), taken once: dH_[t] is dH[t], written in place
    dH_, dA_, direct_, fprime_, Wt = dH.unbind(0), dA.unbind(0), dH_direct.unbind(0), act_grad.unbind(0), W.T
    for t in range(T - 1, -1, -1):
        if t == T - 1 or (truncate is not None and (t + 1) % truncate == 0):
            dH_[t].copy_(direct_[t])
        else:
            torch.addmm(direct_[t], dA_[t + 1], Wt, out=dH_[t])  # direct + through H_{t+1}
        torch.mul(dH_[t], fprime_[t], out=dA_[t])
    return dH, dA


@torch.no_grad()
def bptt_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, state: torch.Tensor | None = None,
                   truncate: int | None = None) -> dict:
    """Gradients of the mean next-token cross-entropy of an ``RNNLanguageModel`` with an ``RNN`` cell,
    from the hand-derived BPTT equations (no autograd). Keys as in ``model.named_parameters()``.

    x, y: (T, B) input and target ids (targets may be IGNORE_INDEX); state: initial H_0 (B, H);
    ``truncate=k``: the gradient of truncated BPTT with the state detached every k steps (see
    ``backprop_through_time``). The model is differentiated as in eval mode: it must have no
    dropout, or be in eval mode.

    Explained in notebooks/04-bptt.md, § The equations in code.
    """
    cell = getattr(model, "cell", None)
    if type(cell) is not RNN:
        raise NotImplementedError(
            f"bptt_gradients derives the equations of the plain RNN cell only; this model's cell is "
            f"{type(cell).__name__}. Use autograd (loss.backward()) for other cells.")
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y must both have shape (T, B), got {tuple(x.shape)} and {tuple(y.shape)}")
    if model.training and model.dropout.p > 0:
        raise ValueError("the equations have no dropout: call model.eval() first, or build the model with dropout=0")
    T, B = x.shape
    U, W, b = cell.U, cell.W, cell.b
    Vt, c = model.output.weight, model.output.bias  # V^T as nn.Linear stores it, (|V|, H); c (|V|,)
    X = model.embed(x).detach()  # (T, B, V) one-hot rows or (T, B, E) embeddings

    # forward pass: A_t = X_t U + H_{t-1} W + b, H_t = tanh(A_t), O_t = H_t V + c
    XU = X @ U + b  # (T, B, H)
    H_all = XU.new_empty(T + 1, B, cell.hidden_size)  # H_0, H_1, ..., H_T
    H_all[0] = 0 if state is None else state
    H_, XU_ = H_all.unbind(0), XU.unbind(0)  # per-step views, written in place
    for t in range(T):
        torch.tanh(torch.addmm(XU_[t], H_[t], W), out=H_[t + 1])
    H, H_prev = H_all[1:], H_all[:-1]  # (T, B, H) each
    O = H @ Vt.T + c  # H_t V + c: (T, B, |V|)

    # output layer: dO_t = M_t (P_t - E_t) / N
    mask = (y != IGNORE_INDEX).to(O.dtype)  # (T, B)
    dO = torch.softmax(O, dim=-1)
    dO.scatter_add_(-1, y.clamp(min=0)[..., None], -torch.ones_like(mask)[..., None])  # P - E
    dO *= (mask / mask.sum())[..., None]

    def rows(Z):  # (T, B, n) -> (T * B, n): a sum over t of Z_t^T dA_t becomes one product
        return Z.reshape(T * B, -1)

    # dV = sum_t H_t^T dO_t, (H, |V|); nn.Linear's weight holds V^T, so its gradient is dV^T
    grads = {"output.weight": rows(dO).T @ rows(H), "output.bias": dO.sum((0, 1))}

    # through time: dH_t = dO_t V^T + dA_{t+1} W^T, dA_t = dH_t * (1 - H_t^2)
    _, dA = backprop_through_time(dO @ Vt, W, 1 - H * H, truncate)

    # parameters: sums over time of (input of the step)^T dA_t
    grads["cell.U"] = rows(X).T @ rows(dA)
    grads["cell.W"] = rows(H_prev).T @ rows(dA)
    grads["cell.b"] = dA.sum((0, 1))
    if model.embedding is not None:  # dX_t = dA_t U^T, added into the rows of the ids read
        dX = rows(dA @ U.T)
        grads["embedding.weight"] = torch.zeros_like(model.embedding.weight).index_add_(0, x.reshape(-1), dX)
    return {name: grads[name] for name, _ in model.named_parameters()}


# %% notebooks/04-bptt.md · § A fast RNN from the equations
class _RNNScan(torch.autograd.Function):
    """The RNN over a whole sequence; backward is notebook 04's BPTT."""

    @staticmethod
    def forward(ctx, xu, h0, W):
        outputs = rnn_forward(xu, h0, W)  # (T, B, H)
        ctx.save_for_backward(outputs, h0, W)
        return outputs, outputs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_hT):
        H, h0, W = ctx.saved_tensors  # (T, B, H), (B, H), (H, H)
        dH_direct = d_outputs.clone(memory_format=torch.contiguous_format)  # (T, B, H)
        dH_direct[-1] += d_hT  # H_T is also the final state
        _, dA = backprop_through_time(dH_direct, W, 1 - H * H)  # tanh' = 1 - H_t^2
        dh0 = dA[0] @ W.T if ctx.needs_input_grad[1] else None  # what truncated BPTT drops
        dW = weight_gradient(h0, H, dA) if ctx.needs_input_grad[2] else None
        return dA, dh0, dW  # d(xu) = dA: xu enters A_t with weight 1


def _rnn_scan(xu: torch.Tensor, h0: torch.Tensor, W: torch.Tensor):
    """H_t = tanh(xu_t + H_{t-1} W) over a sequence.

    xu (T, B, H): the input's contribution X_t U + b at every step; h0 (B, H); W (H, H).
    Returns outputs (T, B, H) (every state H_1..H_T) and the final state H_T (B, H).
    """
    if needs_grad(xu, h0, W):
        return _RNNScan.apply(xu, h0, W)
    outputs = rnn_forward(xu, h0, W)
    return outputs, outputs[-1]


# %% notebooks/05-gated-rnns.md · § Long short-term memory
class LSTM(nn.Module):
    """Long short-term memory (PyTorch's equations): input (T, B, D) -> outputs (T, B, H), state (h, c).

    ``step`` is one step of the equations; ``forward`` runs the whole sequence step by step under
    autograd or, with ``fast=True``, with the hand-derived backward pass of ``_lstm_scan``.

    Explained in notebooks/05-gated-rnns.md, § Long short-term memory.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, fast: bool = False):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size)
        D, H = input_size, hidden_size
        self.input_size, self.hidden_size, self.fast = D, H, fast
        k = 1 / math.sqrt(H)  # PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) everywhere
        self.W_x = nn.Parameter(torch.empty(D, 4 * H).uniform_(-k, k))  # gates (i, f, g, o)
        self.W_h = nn.Parameter(torch.empty(H, 4 * H).uniform_(-k, k))
        self.b_x = nn.Parameter(torch.empty(4 * H).uniform_(-k, k))
        self.b_h = nn.Parameter(torch.empty(4 * H).uniform_(-k, k))
        with torch.no_grad():
            self.b_x[H:2 * H] += forget_bias  # start out remembering (Gers et al., 2000)

    def step(self, gx_t: torch.Tensor, state=None):
        """One step of eq. (eq-lstm): gx_t = x_t W_x + b (B, 4H), state (h, c) (None: zeros) -> new (h, c), gates."""
        h, c = state if state is not None else (gx_t.new_zeros(len(gx_t), self.hidden_size),) * 2
        i, f, g, o = torch.addmm(gx_t, h, self.W_h).chunk(4, dim=1)  # each (B, H)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return (h, c), {"i": i, "f": f, "g": g, "o": o}

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """x W_x + b for every step of x (T, B, D): the input's part of every gate, one matrix product."""
        T, B, _ = x.shape
        return torch.addmm(self.b_x + self.b_h, x.reshape(T * B, -1), self.W_x).view(T, B, -1)  # (T, B, 4H)

    def forward(self, x: torch.Tensor, state=None):
        T, B = check_sequence(x, self.input_size, "LSTM")
        H = self.hidden_size
        if state is None:
            h, c = x.new_zeros(B, H), x.new_zeros(B, H)
        else:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("an LSTM's state is the pair (h, c), as returned by an earlier call")
            h, c = (check_state(s, B, H, "LSTM") for s in state)
        gx = self.input_gates(x)  # (T, B, 4H)
        if self.fast:
            outputs, h, c = _lstm_scan(gx, h, c, self.W_h)
            return outputs, (h, c)
        outputs = []
        for gx_t in gx.unbind(0):  # (B, 4H) per step
            (h, c), _ = self.step(gx_t, (h, c))
            outputs.append(h)
        return torch.stack(outputs), (h, c)  # (T, B, H), ((B, H), (B, H))

    @classmethod
    def from_torch(cls, module: nn.LSTM) -> "LSTM":
        """An LSTM with the weights of a single-layer, unidirectional ``torch.nn.LSTM``."""
        _check_torch_rnn(module, nn.LSTM)
        return _copy_torch_weights(cls(module.input_size, module.hidden_size), module)


def _check_torch_rnn(module, kind) -> None:
    if not isinstance(module, kind):
        raise TypeError(f"expected a torch.nn.{kind.__name__}, got {type(module).__name__}")
    if module.bidirectional or not module.bias or getattr(module, "proj_size", 0):
        raise ValueError("from_torch needs a unidirectional module with biases and no projection "
                         f"(got bidirectional={module.bidirectional}, bias={module.bias}); for a "
                         "bidirectional one see Bidirectional.from_torch (notebook 06)")
    if module.batch_first:
        raise ValueError("from_torch needs a sequence-first module (batch_first=False): our cells "
                         "take input of shape (T, B, D)")


def _copy_torch_weights(cell: nn.Module, module: nn.Module) -> nn.Module:
    """Copy a single-layer torch.nn.GRU/LSTM into ``cell`` (our W_x, W_h are PyTorch's transposed)."""
    if module.num_layers != 1:
        raise ValueError(f"from_torch needs a single-layer module, got num_layers={module.num_layers}; "
                         "copy each layer of a deeper one into a cell of its own")
    cell.to(device=module.weight_hh_l0.device, dtype=module.weight_hh_l0.dtype)
    with torch.no_grad():
        cell.W_x.copy_(module.weight_ih_l0.T)
        cell.W_h.copy_(module.weight_hh_l0.T)
        cell.b_x.copy_(module.bias_ih_l0)
        cell.b_h.copy_(module.bias_hh_l0)
    return cell


# %% notebooks/05-gated-rnns.md · § Gated recurrent units
class GRU(nn.Module):
    """Gated recurrent unit (PyTorch's equations): input (T, B, D) -> outputs (T, B, H), state h (B, H).

    ``step`` is one step of the equations; ``forward`` runs the whole sequence step by step under
    autograd or, with ``fast=True``, with the hand-derived backward pass of ``_gru_scan``.

    Explained in notebooks/05-gated-rnns.md, § Gated recurrent units.
    """

    def __init__(self, input_size: int, hidden_size: int, fast: bool = False):
        super().__init__()
        check_positive(input_size=input_size, hidden_size=hidden_size)
        D, H = input_size, hidden_size
        self.input_size, self.hidden_size, self.fast = D, H, fast
        k = 1 / math.sqrt(H)
        self.W_x = nn.Parameter(torch.empty(D, 3 * H).uniform_(-k, k))  # gates (r, z, n)
        self.W_h = nn.Parameter(torch.empty(H, 3 * H).uniform_(-k, k))
        self.b_x = nn.Parameter(torch.empty(3 * H).uniform_(-k, k))
        self.b_h = nn.Parameter(torch.empty(3 * H).uniform_(-k, k))

    def step(self, gx_t: torch.Tensor, h: torch.Tensor | None = None):
        """One step of eq. (eq-gru): gx_t = x_t W_x + b_x (B, 3H), state h (None: zeros) -> new h, gates."""
        H = self.hidden_size
        h = gx_t.new_zeros(len(gx_t), H) if h is None else h
        gh = torch.addmm(self.b_h, h, self.W_h)  # (B, 3H): h W_h + b_h, all three blocks at once
        r, z = torch.sigmoid(gx_t[:, :2 * H] + gh[:, :2 * H]).chunk(2, dim=1)  # (B, H) each
        n = torch.tanh(gx_t[:, 2 * H:] + r * gh[:, 2 * H:])
        return torch.lerp(n, h, z), {"r": r, "z": z, "n": n}  # (1 - z) * n + z * h

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """x W_x + b_x for every step of x (T, B, D): the input's part of every gate, one matrix product."""
        T, B, _ = x.shape
        return torch.addmm(self.b_x, x.reshape(T * B, -1), self.W_x).view(T, B, -1)  # (T, B, 3H)

    def forward(self, x: torch.Tensor, state=None):
        T, B = check_sequence(x, self.input_size, "GRU")
        H = self.hidden_size
        h = x.new_zeros(B, H) if state is None else check_state(state, B, H, "GRU")
        gx = self.input_gates(x)  # (T, B, 3H)
        if self.fast:
            return _gru_scan(gx, h, self.W_h, self.b_h)
        outputs = []
        for gx_t in gx.unbind(0):  # (B, 3H) per step
            h, _ = self.step(gx_t, h)
            outputs.append(h)
        return torch.stack(outputs), h  # (T, B, H), (B, H)

    @classmethod
    def from_torch(cls, module: nn.GRU) -> "GRU":
        """A GRU with the weights of a single-layer, unidirectional ``torch.nn.GRU``."""
        _check_torch_rnn(module, nn.GRU)
        return _copy_torch_weights(cls(module.input_size, module.hidden_size), module)


# %% notebooks/05-gated-rnns.md · § Backpropagation through the gates
def _gru_local_derivatives(h0, outputs, GH, RZN):
    """For all steps at once, what multiplies dh_t (the gradient of h_t) to give the gates'.

    With a_n = gx_n + r gh_n, n = tanh(a_n) and h_t = (1 - z) n + z h_{t-1}:
        d(a_n) = dh_t (1 - z)(1 - n^2)              = dh_t K_n
        d(a_r) = d(a_n) gh_n r (1 - r)              = dh_t K_r
        d(a_z) = dh_t (h_{t-1} - n) z (1 - z)       = dh_t K_z
    and d(gh) = [d(a_r), d(a_z), r d(a_n)], d(gx) = [d(a_r), d(a_z), d(a_n)].
    Returns K = [K_r, K_z, r K_n] (T, B, 3H), so that d(gh)_t = dh_t K_t, and K_n (T, B, H).
    """
    H = outputs.shape[-1]
    r, z, n = RZN.split(H, dim=-1)  # (T, B, H) each
    gh_n = GH[..., 2 * H:]
    # (T, B, H) products written into K block by block, in place, to keep temporaries few
    K_n = (1 - n * n).mul_(1 - z)
    K = torch.empty_like(RZN)
    K_r, K_z, K_hn = K.split(H, dim=-1)
    torch.mul(K_n, gh_n, out=K_r).mul_(r).mul_(1 - r)
    torch.sub(previous_states(h0, outputs), n, out=K_z).mul_(z).mul_(1 - z)
    torch.mul(K_n, r, out=K_hn)
    return K, K_n


class _GRUScan(torch.autograd.Function):
    """PyTorch's GRU over a whole sequence, with a hand-derived backward."""

    @staticmethod
    def forward(ctx, gx, h0, W_h, b_h):
        outputs, GH, RZN = gru_forward(gx, h0, W_h, b_h, save=True)
        ctx.save_for_backward(h0, outputs, GH, RZN, W_h)
        return outputs, outputs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_hT):
        h0, outputs, GH, RZN, W_h = ctx.saved_tensors
        T, B, H = outputs.shape
        dGH, K_n = _gru_local_derivatives(h0, outputs, GH, RZN)  # K, made d(gh)_t at step t
        dH = outputs.new_empty(T + 1, B, H)  # dh_t, the full gradient of h_t, t = 0..T
        dH_, z_ = dH.unbind(0), RZN[..., H:2 * H].unbind(0)  # per-step views
        dGH_, dGH_blocks_ = dGH.unbind(0), dGH.unflatten(-1, (3, H)).unbind(0)  # (B, 3H), (B, 3, H)
        direct_ = (torch.zeros_like(h0),) + d_outputs.unbind(0)  # what reaches h_t from outside
        torch.add(direct_[T], d_hT, out=dH_[T])  # h_T is also the final state
        W_hT = W_h.T.contiguous()  # (nH, H), row-major: faster per-step products than the view W_h.T
        for t in range(T - 1, -1, -1):  # step t + 1 computed h_{t+1} from h_t
            dGH_blocks_[t].mul_(dH_[t + 1][:, None])                  # (B, 3, H): d(gh) of step t + 1
            torch.addcmul(direct_[t], dH_[t + 1], z_[t], out=dH_[t])  # through z h_t
            dH_[t].addmm_(dGH_[t], W_hT)                              # through gh = h_t W_h + b_h
        dW_h = weight_gradient(h0, outputs, dGH) if ctx.needs_input_grad[2] else None
        db_h = dGH.sum((0, 1)) if ctx.needs_input_grad[3] else None
        dGX = dGH  # (T, B, 3H): d(gx) equals d(gh) in blocks r and z; block n, written over:
        torch.mul(dH[1:], K_n, out=dGX[..., 2 * H:])
        return dGX, dH[0], dW_h, db_h


def _gru_scan(gx: torch.Tensor, h0: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor):
    """PyTorch's GRU over a sequence.

    gx (T, B, 3H): x_t W_x + b_x, gates (r, z, n); h0 (B, H); W_h (H, 3H); b_h (3H,).
    Returns outputs (T, B, H) and the final state (B, H).
    """
    if needs_grad(gx, h0, W_h, b_h):
        return _GRUScan.apply(gx, h0, W_h, b_h)
    outputs, _, _ = gru_forward(gx, h0, W_h, b_h, save=False)
    return outputs, outputs[-1]


# %% notebooks/05-gated-rnns.md · § Backpropagation through the gates (2)
def _lstm_local_derivatives(C, G, TC):
    """For all steps at once, what multiplies dh_t and dc_t to give the gates' gradients.

    With a the gates' pre-activations, h_t = o tanh(c_t) and c_t = f c_{t-1} + i g:
        dc_t += dh_t o (1 - tanh(c_t)^2)      = dh_t P_t     (what reaches c_t through h_t)
        d(a_o) = dh_t tanh(c_t) o (1 - o)     = dh_t K_o
        d(a_i) = dc_t g i (1 - i)             = dc_t K_i
        d(a_f) = dc_t c_{t-1} f (1 - f)       = dc_t K_f
        d(a_g) = dc_t i (1 - g^2)             = dc_t K_g
    Returns K = [K_i, K_f, K_g, K_o] (T, B, 4H) and P (T, B, H).
    """
    i, f, g, o = G.chunk(4, dim=-1)  # (T, B, H) each
    # (T, B, H) products written into K block by block, in place, with one scratch buffer for the
    # factors 1 - x: on a CPU, each fresh buffer of this size costs page faults, not just arithmetic
    K, P, one_minus = torch.empty_like(G), torch.empty_like(TC), torch.empty_like(TC)
    K_i, K_f, K_g, K_o = K.chunk(4, dim=-1)
    torch.mul(i, torch.neg(i, out=one_minus).add_(1), out=K_i).mul_(g)  # i (1 - i) g
    torch.mul(f, torch.neg(f, out=one_minus).add_(1), out=K_f).mul_(C[:-1])
    torch.mul(torch.mul(g, g, out=one_minus).neg_().add_(1), i, out=K_g)  # (1 - g^2) i
    torch.mul(o, torch.neg(o, out=one_minus).add_(1), out=K_o).mul_(TC)
    torch.mul(TC, TC, out=P).neg_().add_(1).mul_(o)  # (1 - tanh(c)^2) o
    return K, P


class _LSTMScan(torch.autograd.Function):
    """The LSTM over a whole sequence, with a hand-derived backward."""

    @staticmethod
    def forward(ctx, gx, h0, c0, W_h):
        outputs, C, G, TC = lstm_forward(gx, h0, c0, W_h, save=True)
        ctx.save_for_backward(h0, outputs, C, G, TC, W_h)
        return outputs, outputs[-1].clone(), C[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outputs, d_hT, d_cT):
        h0, outputs, C, G, TC, W_h = ctx.saved_tensors
        T, B, H = outputs.shape
        dG, P = _lstm_local_derivatives(C, G, TC)  # K, made d(gates)_t at step t
        dG_, P_, f_ = dG.unbind(0), P.unbind(0), G[..., H:2 * H].unbind(0)  # per-step views
        dG_ifg_ = dG[..., :3 * H].unflatten(-1, (3, H)).unbind(0)  # (B, 3, H): blocks i, f, g
        dG_o_ = dG[..., 3 * H:].unbind(0)                            # (B, H): block o
        direct_ = (torch.zeros_like(h0),) + d_outputs.unbind(0)  # what reaches h_t from outside
        dh = direct_[T] + d_hT  # (B, H): dh_t, the full gradient of h_t
        dc = d_cT.clone()       # (B, H): dc_t, so far only what came through c_{t+1}
        W_hT = W_h.T.contiguous()  # (nH, H), row-major: faster per-step products than the view W_h.T
        for t in range(T - 1, -1, -1):  # step t + 1 computed (h, c)_{t+1} from (h, c)_t
            dc.addcmul_(dh, P_[t])                 # + through h_{t+1} = o tanh(c_{t+1})
            dG_o_[t].mul_(dh)                      # (B, H): d(gates) of step t + 1, block o
            dG_ifg_[t].mul_(dc[:, None])           # (B, 3, H): blocks i, f, g
            dc.mul_(f_[t])                         # the cell path: dc_t = dc_{t+1} f_{t+1}
            torch.addmm(direct_[t], dG_[t], W_hT, out=dh)  # + through the gates of step t + 1
        dW_h = weight_gradient(h0, outputs, dG) if ctx.needs_input_grad[3] else None
        return dG, dh, dc, dW_h


def _lstm_scan(gx: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, W_h: torch.Tensor):
    """The LSTM over a sequence.

    gx (T, B, 4H): x_t W_x + b (both biases), gates (i, f, g, o); h0, c0 (B, H); W_h (H, 4H).
    Returns outputs (T, B, H), the final h (B, H) and the final c (B, H).
    """
    if needs_grad(gx, h0, c0, W_h):
        return _LSTMScan.apply(gx, h0, c0, W_h)
    outputs, C, _, _ = lstm_forward(gx, h0, c0, W_h, save=False)
    return outputs, outputs[-1], C[-1]


# %% notebooks/05-gated-rnns.md · § A task with a known memory span
def recall_batch(k: int, batch_size: int, num_symbols: int = 8, num_distractors: int = 8,
                 generator: torch.Generator | None = None):
    """A batch of the "recall the token k steps back" task: X, Y of shape (k + 1, B).

    X[0] is a symbol in [0, num_symbols), X[1:k] are distractors, X[k] is the query token; the
    only target is Y[k] = X[0], the token k steps before the query (others are IGNORE_INDEX).

    Explained in notebooks/05-gated-rnns.md, § A task with a known memory span.
    """
    check_positive(k=k, batch_size=batch_size)
    if num_symbols < 2 or num_distractors < 1:
        raise ValueError("need at least 2 symbols (else there is nothing to recall) and 1 distractor")
    query = num_symbols + num_distractors
    X = torch.randint(num_symbols, query, (k + 1, batch_size), generator=generator)  # distractors
    X[0] = torch.randint(0, num_symbols, (batch_size,), generator=generator)
    X[k] = query
    Y = torch.full_like(X, IGNORE_INDEX)
    Y[k] = X[0]
    return X, Y


# %% notebooks/06-beyond-language-models.md · § Bidirectional recurrent networks
class Bidirectional(nn.Module):
    """Two recurrent cells reading (T, B, D) both ways; outputs (T, B, 2H), final states (forward, backward).

    ``cell`` is a cell class such as RNN, GRU or LSTM (anything built as ``cell(input_size,
    hidden_size)`` whose ``forward(x, state=None)`` returns ``(outputs (T, B, H), state)``, the
    state being a tensor or a tuple/list of tensors). One cell reads left to right, the other
    right to left.

    Explained in notebooks/06-beyond-language-models.md, § Bidirectional recurrent networks.
    """

    def __init__(self, cell, input_size: int, hidden_size: int):
        super().__init__()
        if isinstance(cell, nn.Module):
            raise TypeError(f"Bidirectional expects a cell class such as GRU, not an instance "
                            f"({type(cell).__name__}(...)): it builds one cell per direction itself")
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.forward_cell = cell(input_size, hidden_size)   # reads x_1, x_2, ..., x_T
        self.backward_cell = cell(input_size, hidden_size)  # reads x_T, ..., x_2, x_1

    def forward(self, x: torch.Tensor, lengths=None):
        """x (T, B, D) -> outputs (T, B, 2H), (forward state, backward state).

        ``outputs[t, b]`` is the forward cell's output at t followed by the backward cell's (the
        layout of torch.nn). Each state has the cell's own form: ``h`` (B, H), or ``(h, c)`` for an
        LSTM; ``torch.stack([h_forward, h_backward])`` is torch.nn's ``h_n`` (2, B, H).

        ``lengths`` (B ints, 1 <= length <= T; a list or a tensor on any device) says where each
        column's padding starts. Then the backward cell starts at each sequence's last real token,
        each final state is the one at that sequence's real end (as torch.nn computes on a
        PackedSequence), and outputs at padded positions are zero.
        """
        check_sequence(x, self.input_size, "Bidirectional")
        lengths = _padding_lengths(lengths, x)  # (B,) on x's device, or None when nothing is padded
        out_f, state_f = _run(self.forward_cell, x, lengths)                           # (T, B, H)
        out_b, state_b = _run(self.backward_cell, _reverse_each(x, lengths), lengths)  # (T, B, H), reversed
        outputs = torch.cat([out_f, _reverse_each(out_b, lengths)], dim=2)             # (T, B, 2H)
        return outputs, (state_f, state_b)

    @classmethod
    def from_torch(cls, module: nn.Module) -> "Bidirectional":
        """A Bidirectional with the weights of a one-layer ``torch.nn.RNN/GRU/LSTM(bidirectional=True)``."""
        cell = {nn.RNN: RNN, nn.GRU: GRU, nn.LSTM: LSTM}.get(type(module))
        if cell is None:
            raise TypeError(f"Bidirectional.from_torch expects a torch.nn.RNN, GRU or LSTM, "
                            f"got {type(module).__name__}")
        if not module.bidirectional:
            raise ValueError(f"this torch.nn.{type(module).__name__} is unidirectional: pass bidirectional=True, "
                             f"or convert it with {cell.__name__}.from_torch(module)")
        if module.num_layers != 1:
            raise ValueError(f"Bidirectional.from_torch needs a one-layer module, got num_layers="
                             f"{module.num_layers}; build a deeper network by feeding one Bidirectional's "
                             f"(T, B, 2H) outputs into the next")
        net = cls(cell, module.input_size, module.hidden_size)
        try:  # each direction is an ordinary one-layer module: the cell's own from_torch copies it
            net.forward_cell = cell.from_torch(_one_direction(module, reverse=False))  # *_l0
            net.backward_cell = cell.from_torch(_one_direction(module, reverse=True))  # *_l0_reverse
        except ValueError as err:
            raise ValueError(f"{cell.__name__}.from_torch cannot copy one direction of this "
                             f"module: {err}") from err
        return net


# %% notebooks/06-beyond-language-models.md · § Bidirectional recurrent networks (2)
def _one_direction(module: nn.Module, reverse: bool) -> nn.Module:
    """The forward (``reverse=False``) or backward direction of a one-layer bidirectional
    torch.nn.RNN/GRU/LSTM, as a unidirectional module with that direction's weights."""
    extra = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
    if getattr(module, "proj_size", 0):  # kept, so that the cell's from_torch says it has no projection
        extra["proj_size"] = module.proj_size
    single = type(module)(module.input_size, module.hidden_size, bias=module.bias,
                          batch_first=module.batch_first, **extra)
    theirs = dict(module.named_parameters())
    single.to(device=theirs["weight_hh_l0"].device, dtype=theirs["weight_hh_l0"].dtype)
    with torch.no_grad():  # weight_ih_l0 <- weight_ih_l0[_reverse], ...
        for name, param in single.named_parameters():
            param.copy_(theirs[name + ("_reverse" if reverse else "")])
    return single


def _padding_lengths(lengths, x: torch.Tensor):
    """Checked ``lengths`` as a (B,) tensor on x's device, or None when no sequence is padded."""
    if lengths is None:
        return None
    T, B = x.shape[:2]
    lengths = torch.as_tensor(lengths, device="cpu")  # checked on the CPU (one copy if they live on a GPU)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (B,):
        raise ValueError(f"expected one length per sequence, a 1-D list or tensor of {B} ints, "
                         f"got shape {tuple(lengths.shape)}")
    if (lengths < 1).any() or (lengths > T).any():
        raise ValueError(f"every length must be between 1 and T={T}, got min {lengths.min().item()}, "
                         f"max {lengths.max().item()}; drop empty sequences from the batch")
    if (lengths == T).all():  # no padding: whole-sequence calls give the same result, faster
        return None
    return lengths.to(x.device)


def _reverse_each(x: torch.Tensor, lengths) -> torch.Tensor:
    """Reverse each column of x (T, B, H) within its own length; padding stays where it is."""
    if lengths is None:
        return x.flip(0)
    t = torch.arange(x.shape[0], device=x.device)[:, None]  # (T, 1)
    source = torch.where(t < lengths, lengths - 1 - t, t)    # (T, B): rev[t, b] = lengths[b] - 1 - t
    return x.gather(0, source[:, :, None].expand_as(x))       # (T, B, H)


def _run(cell: nn.Module, x: torch.Tensor, lengths):
    """Run ``cell`` over x (T, B, D); with lengths, each sequence's state is the one at its own end.

    Returns outputs (T, B, H), zero at padded positions, and the state after step lengths[b] - 1.
    """
    if lengths is None:
        return cell(x)  # the cell's own loop over whole sequences
    real = torch.arange(x.shape[0], device=x.device)[:, None] < lengths  # (T, B): True at real tokens
    out, state = cell(x[:1])  # step 0, real for every sequence (lengths >= 1)
    if isinstance(state, torch.Tensor) and torch.equal(out[-1], state):
        # The state is the output itself (RNN, GRU): one pass over the whole batch, the state read
        # off at each sequence's last real step (padding comes after it, so it cannot change it).
        out, _ = cell(x)  # (T, B, H)
        last = (lengths - 1)[None, :, None].expand(1, *out.shape[1:])  # (1, B, H)
        return out.masked_fill(~real[:, :, None], 0.0), out.gather(0, last)[0]
    outputs = [out]  # a state of its own (LSTM's cell c): step on, freezing the ended sequences
    for x_t, real_t in zip(x[1:].split(1), real[1:, :, None].unbind(0)):  # (1, B, D), (B, 1)
        out, new_state = cell(x_t, state)  # (1, B, H)
        state = _keep_where(real_t, new_state, state)
        outputs.append(out)
    return torch.cat(outputs).masked_fill(~real[:, :, None], 0.0), state  # (T, B, H)


def _keep_where(mask: torch.Tensor, new, old):
    """``new`` where mask (B, 1) is True, else ``old``, for a state tensor or a tuple/list of them."""
    if isinstance(new, torch.Tensor):
        return torch.where(mask, new, old)
    return type(new)(_keep_where(mask, n, o) for n, o in zip(new, old))


# %% notebooks/06-beyond-language-models.md · § A fixed target: the sex of a first name
SEXES = ("female", "male")  # class 0 and class 1


def _name_counts(path) -> Counter:
    """name (lower case) -> number of residents, from one of INE's first-name files."""
    counts = Counter()
    with open(path, encoding="utf-8", newline="") as f:
        for row in itertools.islice(csv.reader(f), 1, None):  # skip the header
            if row and row[0].strip():
                counts[row[0].strip().lower()] += int(row[1])
    return counts


def load_name_sexes() -> dict:
    """Every first name of INE's lists -> (female residents, male residents); 0 where a list lacks it.

    Explained in notebooks/06-beyond-language-models.md, § A fixed target: the sex of a first name.
    """
    female, male = (_name_counts(fetch(FIRST_NAME_FILES[sex])) for sex in SEXES)
    return {name: (female[name], male[name]) for name in sorted(female.keys() | male.keys())}


def name_sex_splits():
    """(vocab, splits): the first names split 80/10/10 by unique name (seed 0), each with its label,
    0 (female) or 1 (male): the sex that more of its holders have (a tie counts as female).

    Explained in notebooks/06-beyond-language-models.md, § A fixed target: the sex of a first name.
    """
    counts = load_name_sexes()
    train, valid, test = split_names(list(counts), seed=0)
    label = {name: int(m > f) for name, (f, m) in counts.items()}
    vocab = Vocab(train, reserved=[BOUNDARY])  # the boundary token pads a batch
    return vocab, [[(name, label[name]) for name in part] for part in (train, valid, test)]


# %% notebooks/06-beyond-language-models.md · § Two baselines
class SuffixClassifier:
    """Predicts the most frequent training label of names ending in the same ``k`` letters,
    backing off to shorter endings (down to the majority label) for endings never seen.

    Explained in notebooks/06-beyond-language-models.md, § Two baselines.
    """

    def __init__(self, pairs, k: int):
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        self.k = k
        self.votes = defaultdict(Counter)  # ending -> label counts
        for name, label in pairs:
            for j in range(min(k, len(name)) + 1):
                self.votes[name[len(name) - j:] if j else ""][label] += 1

    def predict(self, name: str) -> int:
        for j in range(min(self.k, len(name)), -1, -1):
            ending = name[len(name) - j:] if j else ""
            if ending in self.votes:
                return self.votes[ending].most_common(1)[0][0]
        raise ValueError("the classifier saw no training names")


def classification_accuracy(predict, pairs) -> float:
    """The fraction of (input, label) pairs that ``predict`` labels correctly.

    Explained in notebooks/06-beyond-language-models.md, § Two baselines.
    """
    if not pairs:
        raise ValueError("no pairs to score")
    return sum(predict(x) == y for x, y in pairs) / len(pairs)


# %% notebooks/06-beyond-language-models.md · § A recurrent classifier
class RNNClassifier(nn.Module):
    """Token ids (T, B), padded at the end with ``pad``, -> class logits through a recurrent encoder.

    ``readout``: "last" (the state at each sequence's last real token; for a bidirectional encoder
    also the backward state at its first token) or "mean" (the outputs averaged over real tokens)
    give logits (B, C), one answer per sequence; "each" gives logits (T, B, C), one per position, and
    reads every column whole: a tagger's pieces of text are not padded, and ``pad`` may be a real token.
    The cell is a GRU unless ``cell`` names another cell class.

    Explained in notebooks/06-beyond-language-models.md, § A recurrent classifier.
    """

    def __init__(self, vocab_size: int, num_classes: int, hidden_size: int, cell=None, embedding_dim: int = 32,
                 bidirectional: bool = False, readout: str = "last", pad: int = 1, dropout: float = 0.0):
        super().__init__()
        if readout not in ("last", "mean", "each"):
            raise ValueError(f"readout must be 'last', 'mean' or 'each', got {readout!r}")
        cell = cell or GRU
        self.pad, self.readout, self.bidirectional, self.hidden_size = pad, readout, bidirectional, hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.encoder = (Bidirectional(cell, embedding_dim, hidden_size) if bidirectional
                        else cell(embedding_dim, hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        check_sequence(X, self.embedding.num_embeddings, "RNNClassifier", ids=True)
        lengths = (X != self.pad).sum(0)  # (B,): real tokens per column (padding only at the end)
        x = self.embedding(X)  # (T, B, E)
        if self.bidirectional:
            outputs, _ = self.encoder(x, lengths if self.readout != "each" else None)  # (T, B, 2H)
        else:
            outputs, _ = self.encoder(x)  # padding after a sequence cannot change its real positions
        if self.readout == "each":
            return self.output(self.dropout(outputs))  # (T, B, C)
        if not self.bidirectional and (lengths == 0).any():  # (the bidirectional encoder checks lengths)
            raise ValueError("a column of X is all padding: drop empty sequences before classifying")
        if self.readout == "mean":
            real = (torch.arange(X.shape[0], device=X.device)[:, None] < lengths)[..., None]  # (T, B, 1)
            summary = (outputs * real).sum(0) / lengths[:, None]  # (B, H or 2H)
        else:
            last = outputs.gather(0, (lengths - 1).view(1, -1, 1).expand(1, -1, outputs.shape[2]))[0]
            if self.bidirectional:  # the backward direction ends at the first token
                last = torch.cat([last[:, :self.hidden_size], outputs[0, :, self.hidden_size:]], dim=1)
            summary = last  # (B, H or 2H)
        return self.output(self.dropout(summary))  # (B, C)


# %% notebooks/06-beyond-language-models.md · § A recurrent classifier (2)
def pad_sources(texts, vocab: Vocab) -> torch.Tensor:
    """Texts as token ids (T, B), sequence first, padded at the end with the boundary token.

    Explained in notebooks/06-beyond-language-models.md, § A recurrent classifier.
    """
    T, pad = max(len(t) for t in texts), vocab[BOUNDARY]
    return torch.tensor([vocab.encode(t) + [pad] * (T - len(t)) for t in texts], dtype=torch.long).T.contiguous()


def labelled_batches(pairs, vocab: Vocab, batch_size: int, generator=None):
    """(X (T, B) character ids padded with the boundary token, Y (B,) labels), shuffled if a
    generator is given, else in order.

    Explained in notebooks/06-beyond-language-models.md, § A recurrent classifier.
    """
    order = torch.randperm(len(pairs), generator=generator).tolist() if generator else range(len(pairs))
    for i in range(0, len(pairs), batch_size):
        batch = [pairs[j] for j in order[i:i + batch_size]]
        yield pad_sources([name for name, _ in batch], vocab), torch.tensor([label for _, label in batch])


def predictions(model: nn.Module, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes, true classes) of a classifier or tagger over batches of (X, Y),
    flattened, with IGNORE_INDEX targets dropped.

    Explained in notebooks/06-beyond-language-models.md, § A recurrent classifier.
    """
    device = model_device(model)
    with eval_mode(model):
        predicted, truth = [], []
        for X, Y in batches:
            logits = model(X.to(device))
            keep = Y.reshape(-1) != IGNORE_INDEX
            predicted.append(logits.argmax(-1).reshape(-1).cpu()[keep])
            truth.append(Y.reshape(-1)[keep])
    return torch.cat(predicted), torch.cat(truth)


# %% notebooks/06-beyond-language-models.md · § An aligned task: putting the spaces back
def without_spaces(text: str):
    """The letters of ``text`` without its spaces, and for each letter 1 if a space followed it, else 0.

    Explained in notebooks/06-beyond-language-models.md, § An aligned task: putting the spaces back.
    """
    letters, follows = [], []
    for ch in text:
        if ch == " ":
            if follows:
                follows[-1] = 1
        else:
            letters.append(ch)
            follows.append(0)
    return "".join(letters), follows


class WindowTagger(nn.Module):
    """Per-position logits (T, B, C) from the ``k`` tokens before and after each position of X (T, B):
    an MLP over a centred window (positions beyond the ends read ``pad``).

    Explained in notebooks/06-beyond-language-models.md, § An aligned task: putting the spaces back.
    """

    def __init__(self, vocab_size: int, num_classes: int, k: int, embedding_dim: int = 24, hidden_size: int = 128,
                 pad: int = 1):
        super().__init__()
        self.k, self.pad = k, pad
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.hidden = nn.Linear((2 * k + 1) * embedding_dim, hidden_size)
        self.output = nn.Linear(hidden_size, num_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        padded = F.pad(X, (0, 0, self.k, self.k), value=self.pad)  # (T + 2k, B)
        windows = padded.unfold(0, 2 * self.k + 1, 1)  # (T, B, 2k + 1): position t sees t-k .. t+k
        return self.output(torch.tanh(self.hidden(self.embedding(windows).flatten(2))))  # (T, B, C)


def precision_recall_f1(predicted: torch.Tensor, truth: torch.Tensor, positive: int = 1) -> dict:
    """Precision, recall and F1 of the ``positive`` class.

    Explained in notebooks/06-beyond-language-models.md, § An aligned task: putting the spaces back.
    """
    hits = int(((predicted == positive) & (truth == positive)).sum())
    precision = hits / max(int((predicted == positive).sum()), 1)
    recall = hits / max(int((truth == positive).sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "F1": f1}


# %% notebooks/06-beyond-language-models.md · § Teacher forcing and free running
def free_running_accuracy(model: nn.Module, ids: torch.Tensor, horizon: int = 16, warmup: int = 64,
                          num_starts: int = 1000, seed: int = 0) -> dict:
    """Accuracy of the k-th prediction after ``warmup`` true characters, k = 1 .. ``horizon``, at
    ``num_starts`` random positions of ``ids``: fed the true characters ("teacher forcing") or its
    own greedy predictions ("free running"). Window and recurrent language models alike.

    Explained in notebooks/06-beyond-language-models.md, § Teacher forcing and free running.
    """
    device = model_device(model)
    with eval_mode(model):
        g = torch.Generator().manual_seed(seed)
        starts = torch.randint(warmup, len(ids) - horizon, (num_starts,), generator=g)  # first predicted position
        truth = ids[starts[:, None] + torch.arange(horizon)].to(device)  # (N, horizon)
        context = ids[starts[:, None] + torch.arange(-warmup, 0)].to(device)  # (N, warmup)
        result = {}
        for mode in ("teacher forcing", "free running"):
            seq, state, fresh, hits = context, None, context, []
            for k in range(horizon):
                if isinstance(model, WindowModel):
                    logits = model(seq[:, -model.block_size:])  # (N, V)
                else:
                    out, state = model(fresh.T, state)
                    logits = out[-1]
                guess = logits.argmax(-1)  # (N,)
                hits.append((guess == truth[:, k]).float().mean().item())
                fresh = (truth[:, k] if mode == "teacher forcing" else guess)[:, None]  # what is read next
                seq = torch.cat([seq, fresh], dim=1)
            result[mode] = hits
    return result


# %% notebooks/07-seq2seq.md · § A fixed input: names of a requested sex
SEX_MARKS = ("♀", "♂")  # read before a name: female (class 0 of SEXES), male (class 1)


def marked_names(pairs) -> list[str]:
    """(name, sex) pairs -> each name led by the mark of its sex: ("lucía", 0) -> "♀lucía".

    Explained in notebooks/07-seq2seq.md, § A fixed input: names of a requested sex.
    """
    return [SEX_MARKS[sex] + name for name, sex in pairs]


# %% notebooks/07-seq2seq.md · § An unaligned task: number words to digits
MAX_NUMBER = 10 ** 12  # number_words writes the whole numbers below this


def number_words(n: int) -> str:
    """``n`` in Spanish words: 1895 -> "mil ochocientos noventa y cinco" (num2words, lang="es").

    Explained in notebooks/07-seq2seq.md, § An unaligned task: number words to digits.
    """
    from num2words import num2words
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < MAX_NUMBER:
        raise ValueError(f"number_words writes whole numbers from 0 to {MAX_NUMBER - 1:,}, got {n!r}")
    return num2words(n, lang="es")


def number_splits(sizes=(12000, 1000, 2000), max_digits: int = 6, seed: int = 0) -> list[list[int]]:
    """Disjoint lists (train, valid, test) of distinct numbers below 10**max_digits: no number is in
    two lists. Each draw first picks a count of digits, all equally likely, so that the short numbers
    are not swamped by the many long ones; a number drawn twice is kept once.

    Explained in notebooks/07-seq2seq.md, § An unaligned task: number words to digits.
    """
    check_positive(max_digits=max_digits, **{f"size_{i}": size for i, size in enumerate(sizes)})
    if sum(sizes) > 10 ** max_digits // 2:
        raise ValueError(f"{sum(sizes)} distinct numbers are too many to draw below 10**{max_digits}")
    g = torch.Generator().manual_seed(seed)
    chosen: dict[int, None] = {}  # an ordered set
    while len(chosen) < sum(sizes):
        digits = int(torch.randint(1, max_digits + 1, (1,), generator=g))
        chosen[int(torch.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits, (1,), generator=g))] = None
    numbers = [list(chosen)[i] for i in torch.randperm(len(chosen), generator=g).tolist()]
    cuts = [0, *itertools.accumulate(sizes)]
    return [numbers[a:b] for a, b in zip(cuts, cuts[1:])]


# %% notebooks/07-seq2seq.md · § An unaligned task: number words to digits (2)
def number_vocabs(numbers) -> tuple[Vocab, Vocab]:
    """(the characters of the numbers' words, the ten digits), each with the boundary token.

    Explained in notebooks/07-seq2seq.md, § An unaligned task: number words to digits.
    """
    return (Vocab([number_words(n) for n in numbers], reserved=[BOUNDARY]),
            Vocab(["0123456789"], reserved=[BOUNDARY]))


def number_batches(numbers, vocabs, batch_size: int, generator=None):
    """((source (S, B), decoder input (T, B)), target (T, B)): the words of each number in, its
    digits out, laid out as by ``pad_names``. Shuffled if a generator is given, else in order.

    Explained in notebooks/07-seq2seq.md, § An unaligned task: number words to digits.
    """
    check_positive(batch_size=batch_size)
    source_vocab, target_vocab = vocabs
    order = torch.randperm(len(numbers), generator=generator).tolist() if generator else range(len(numbers))
    for i in range(0, len(order), batch_size):
        chosen = [numbers[j] for j in order[i:i + batch_size]]
        X, Y = pad_names([str(n) for n in chosen], target_vocab)
        yield (pad_sources([number_words(n) for n in chosen], source_vocab), X), Y


# %% notebooks/07-seq2seq.md · § The encoder–decoder
class Seq2Seq(nn.Module):
    """An encoder–decoder, eq. (eq-seq2seq): a recurrent encoder reads the source (S, B), padded
    at the end; its state after each source's last token starts the decoder, a language model of
    the target. forward(source, target_in (T, B)) -> logits (T, B, target vocabulary).

    Explained in notebooks/07-seq2seq.md, § The encoder–decoder.
    """

    def __init__(self, source_vocab: Vocab, target_vocab: Vocab, hidden_size: int, cell=GRU,
                 embedding_dim: int = 32):
        super().__init__()
        self.pad, self.boundary = source_vocab[BOUNDARY], target_vocab[BOUNDARY]
        self.embedding = nn.Embedding(len(source_vocab), embedding_dim)
        self.encoder = cell(embedding_dim, hidden_size)
        if isinstance(self.encoder, LSTM):
            raise ValueError("Seq2Seq hands one state tensor from encoder to decoder: use the RNN or GRU cell")
        self.decoder = RNNLanguageModel(len(target_vocab), hidden_size, cell, embedding_dim)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """c: the encoder's state after each source's last token, (B, H)."""
        check_sequence(source, self.embedding.num_embeddings, "Seq2Seq", ids=True)
        lengths = (source != self.pad).sum(0)  # (B,)
        if (lengths == 0).any():
            raise ValueError("a source is all padding: every source needs at least one token")
        outputs, _ = self.encoder(self.embedding(source))  # (S, B, H); padding comes after the last token
        return outputs[lengths - 1, torch.arange(source.shape[1], device=source.device)]

    def forward(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        logits, _ = self.decoder(target_in, self.encode(source))
        return logits


# %% notebooks/07-seq2seq.md · § Greedy decoding and beam search
def _until_boundary(row: list[int], boundary: int) -> list[int]:
    return row[:row.index(boundary)] if boundary in row else row


def greedy_decode(model: Seq2Seq, source: torch.Tensor, max_length: int = 12) -> list[list[int]]:
    """For each source, the target chosen token by token as the most likely next one, up to the
    boundary token (not returned) or ``max_length`` tokens.

    Explained in notebooks/07-seq2seq.md, § Greedy decoding and beam search.
    """
    check_positive(max_length=max_length)
    source = source.to(model_device(model))
    with eval_mode(model):
        state = model.encode(source)
        token = torch.full((source.shape[1],), model.boundary, device=source.device)
        chosen = []
        for _ in range(max_length):
            logits, state = model.decoder(token[None], state)  # (1, B, V)
            token = logits[0].argmax(-1)
            chosen.append(token)
            if (torch.stack(chosen) == model.boundary).any(0).all():
                break
    return [_until_boundary(row, model.boundary) for row in torch.stack(chosen, 1).tolist()]


# %% notebooks/07-seq2seq.md · § Greedy decoding and beam search (2)
def beam_search(model: Seq2Seq, source: torch.Tensor, beam_width: int = 4, max_length: int = 12) -> list[list[int]]:
    """For each source, the most likely of ``beam_width`` targets kept at every step: each is
    extended by every token and the ``beam_width`` of highest log-likelihood stay. A target ends
    at the boundary token (not returned).

    Explained in notebooks/07-seq2seq.md, § Greedy decoding and beam search.
    """
    check_positive(beam_width=beam_width, max_length=max_length)
    source = source.to(model_device(model))
    B, k, device = source.shape[1], beam_width, source.device
    with eval_mode(model):
        state = model.encode(source).repeat_interleave(k, dim=0)  # (B k, H): k copies of each source's c
        score = torch.full((B, k), -math.inf, device=device)
        score[:, 0] = 0.0  # one candidate to start from: the empty target
        token = torch.full((B * k,), model.boundary, device=device)
        done = torch.zeros(B * k, dtype=torch.bool, device=device)
        chosen = token.new_empty(B * k, 0)
        for _ in range(max_length):
            logits, state = model.decoder(token[None], state)
            logp = F.log_softmax(logits[0].float(), dim=-1)  # (B k, V)
            V = logp.shape[1]
            logp[done] = -math.inf
            logp[done, model.boundary] = 0.0  # a finished candidate stays as it is
            score, best = (score.reshape(-1, 1) + logp).reshape(B, k * V).topk(k, dim=1)  # (B, k)
            rows = (torch.arange(B, device=device)[:, None] * k + best // V).reshape(-1)  # the prefixes kept
            token = (best % V).reshape(-1)
            state, chosen = state[rows], torch.cat([chosen[rows], token[:, None]], dim=1)
            done = done[rows] | (token == model.boundary)
            if done.all():
                break
        top = chosen.view(B, k, -1)[torch.arange(B, device=device), score.argmax(1)]
    return [_until_boundary(row, model.boundary) for row in top.tolist()]


# %% notebooks/07-seq2seq.md · § The bottleneck
def character_error_rate(predicted, truth) -> float:
    """The fewest single-character edits (insert, delete, substitute) that turn each prediction into
    its true text, summed, over the true texts' total length (Levenshtein distance).

    Explained in notebooks/07-seq2seq.md, § The bottleneck.
    """
    if len(predicted) != len(truth) or not truth:
        raise ValueError(f"need one prediction per true text, at least one; got {len(predicted)} and {len(truth)}")
    edits = 0
    for p, t in zip(predicted, truth):
        row = list(range(len(t) + 1))  # distances from the empty prefix of p to each prefix of t
        for i, a in enumerate(p, 1):
            diagonal, row[0] = row[0], i
            for j, b in enumerate(t, 1):
                diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (a != b))
        edits += row[-1]
    return edits / sum(len(t) for t in truth)
