# GENERATED FILE - DO NOT EDIT.
# Built by `make export` (python -m chapterkit.export) from the `%%save` cells of
# notebooks/NN-*.md, in notebook order. Edit the notebooks, then re-export;
# `python -m chapterkit.export --check` fails when this file is stale.
"""Sequence Modeling and RNNs: the companion module of the chapter.

Every definition below comes from a notebook cell marked ``%%save``; the comment above each
block names the notebook, cell and section that explain it. Importing this module has no side
effects: it creates no files, downloads nothing and seeds nothing (call ``set_seed``).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import itertools
import json
import math
import os
import random
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

__all__ = [
    'set_seed',
    'get_device',
    'quick_mode',
    'budget',
    'GUTENBERG_START',
    'GUTENBERG_END',
    'DataFile',
    'DATA_FILES',
    'DataUnavailableError',
    'ChecksumError',
    'data_dir',
    'gutenberg_book_text',
    'fetch',
    'fetch_all',
    'SURNAME_FILES',
    'FIRST_NAME_FILES',
    'load_surnames',
    'load_first_names',
    'time_machine_book',
    'preprocess_text',
    'load_time_machine',
    'UNK',
    'BOUNDARY',
    'Vocab',
    'split_names',
    'split_text',
    'name_windows',
    'text_windows',
    'IGNORE_INDEX',
    'pad_names',
    'name_batches',
    'random_batches',
    'sequential_batches',
    'next_token_loss',
    'evaluate',
    'History',
    'fit',
    'plot_history',
    'last_columns',
    'WindowData',
    'CONTEXT_BLOCK',
    'surname_windows',
    'time_machine_windows',
    'eval_batches',
    'split_losses',
    'NGramModel',
    'NGRAM_ORDERS',
    'NGRAM_KS',
    'select_ngram',
    'MLPContext',
    'CausalCNN',
    'WindowConfig',
    'CONTEXT_CONFIGS',
    'QUICK_WINDOWS',
    'window_batches',
    'train_window_model',
    'num_params',
    'sample_window_names',
    'sample_origins',
    'plot_embeddings',
    'RNN',
    'RNNLanguageModel',
    'clip_gradients',
    'surname_lm_config',
    'time_machine_lm_config',
    'fit_annealed',
    'LMRun',
    'surname_splits',
    'train_surname_lm',
    'time_machine_splits',
    'evaluate_text',
    'train_time_machine_lm',
    'generate',
    'sample_names',
    'backprop_through_time',
    'bptt_gradients',
    'LSTM',
    'GRU',
    'StackedRNN',
    'bucketed_name_batches',
    'gated_lm_config',
    'lm_cell',
    'train_gated_lm',
    'recall_vocab_size',
    'recall_batch',
    'RECALL_CONFIG',
    'train_recall',
    'recall_accuracy',
    'state_gradient_norms',
    'results_path',
    'load_results',
    'comparison_table',
]


# %% notebooks/01-text-data.md · cell 4 · Small utilities
def set_seed(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def quick_mode() -> bool:
    """True when ``CHAPTER_QUICK=1``: every notebook then trains with tiny budgets."""
    return os.environ.get("CHAPTER_QUICK", "0") not in ("", "0", "false", "False")


def budget(full, quick):
    """Pick the full-mode or the quick-mode value of a training budget."""
    return quick if quick_mode() else full


# %% notebooks/01-text-data.md · cell 7 · Fetching the data
_NAMES_URL = "https://raw.githubusercontent.com/jvalhondo/spanish-names-surnames/master/"
GUTENBERG_START = "*** START OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***"
GUTENBERG_END = "*** END OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***"


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it is published and what its content must hash to."""

    path: str  # relative to the cache (and to a mirror), e.g. "time-machine/pg35.txt"
    url: str
    sha256: str
    book_text_only: bool = False  # hash only the text between the Gutenberg markers


DATA_FILES = {
    f.path: f
    for f in [
        DataFile("time-machine/pg35.txt", "https://www.gutenberg.org/cache/epub/35/pg35.txt",
                 "6a14f6514908bb0015086fb61100defd4075b0c24c179f17e42b8b151bc9fc23",
                 book_text_only=True),
        DataFile("spanish-names/surnames_freq_ge_100.csv", _NAMES_URL + "surnames_freq_ge_100.csv",
                 "c67019ce17003739722f62dbce8bffa3447176c1c2fa178f6d2071cfc261e4b7"),
        DataFile("spanish-names/surnames_freq_ge_20_le_99.csv",
                 _NAMES_URL + "surnames_freq_ge_20_le_99.csv",
                 "f54e14ef1cb73286b394c13a604751b5f234234944c9c6ad4a4bf9f868d1c581"),
        DataFile("spanish-names/male_names.csv", _NAMES_URL + "male_names.csv",
                 "14a5dd22d253148d04f044ee373bb1637bda3c83c2707cf7ace912c1e9bace8e"),
        DataFile("spanish-names/female_names.csv", _NAMES_URL + "female_names.csv",
                 "55527e547db44f595b04c44d9c00881ca559e1cc38682b3d75ce72d5dd831948"),
    ]
}


class DataUnavailableError(RuntimeError):
    """A dataset file could be neither downloaded nor found in a mirror."""


class ChecksumError(ValueError):
    """A dataset file's content differs from the published one."""


def data_dir() -> Path:
    """The download cache: ``$CHAPTER_DATA_DIR`` if set, else ``data/`` beside chapter.py."""
    if os.environ.get("CHAPTER_DATA_DIR"):
        return Path(os.environ["CHAPTER_DATA_DIR"])
    return Path(__file__).resolve().parent / "data"


def gutenberg_book_text(text: str) -> str:
    """The book between Project Gutenberg's START and END markers (header and licence removed)."""
    start, end = text.find(GUTENBERG_START), text.find(GUTENBERG_END)
    if start < 0 or end < start:
        raise ValueError("not a Project Gutenberg text of The Time Machine: START/END markers missing")
    return text[start + len(GUTENBERG_START):end]


def _content_sha256(data: bytes, spec: DataFile) -> str:
    if spec.book_text_only:
        try:
            data = gutenberg_book_text(data.decode("utf-8-sig")).encode("utf-8")
        except (UnicodeDecodeError, ValueError):
            return "unreadable"
    return hashlib.sha256(data).hexdigest()


def _read_source(spec: DataFile) -> bytes:
    """The file's bytes from the mirror (if ``$CHAPTER_DATA_MIRROR`` is set) or the network."""
    mirror = os.environ.get("CHAPTER_DATA_MIRROR")
    if mirror:
        source = Path(mirror) / spec.path
        if not source.is_file():
            raise DataUnavailableError(
                f"CHAPTER_DATA_MIRROR={mirror} has no file {spec.path}. Lay the mirror out like "
                f"the sources (e.g. {Path(mirror) / 'time-machine' / 'pg35.txt'}), or unset "
                "CHAPTER_DATA_MIRROR to download from the internet.")
        return source.read_bytes()
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DataUnavailableError(
            f"could not download {spec.url} ({err}). Either connect to the internet and retry, "
            f"or set CHAPTER_DATA_MIRROR to a local directory that holds {spec.path} "
            f"(a copy of the dataset laid out like its sources).") from None


def fetch(path: str) -> Path:
    """Return the local path of a dataset file, downloading and verifying it if needed."""
    if path not in DATA_FILES:
        raise KeyError(f"unknown data file {path!r}; known: {sorted(DATA_FILES)}")
    spec = DATA_FILES[path]
    target = data_dir() / spec.path
    if target.is_file():
        if _content_sha256(target.read_bytes(), spec) == spec.sha256:
            return target
        target.unlink()  # a stale or damaged cache entry: fetch it again
    data = _read_source(spec)
    digest = _content_sha256(data, spec)
    if digest != spec.sha256:
        raise ChecksumError(
            f"{spec.path}: SHA-256 {digest} does not match the expected {spec.sha256}; nothing "
            "was saved. The source may have changed or the transfer broke: retry, or check the "
            "mirror's copy.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)  # atomic: readers see the old state or the whole file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fetch_all() -> list[Path]:
    """Fetch every dataset file of the chapter (``make data``)."""
    return [fetch(path) for path in DATA_FILES]


# %% notebooks/01-text-data.md · cell 10 · Spanish names
SURNAME_FILES = ("spanish-names/surnames_freq_ge_100.csv", "spanish-names/surnames_freq_ge_20_le_99.csv")
FIRST_NAME_FILES = {"male": "spanish-names/male_names.csv", "female": "spanish-names/female_names.csv"}


def _first_column(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        next(rows)  # header
        return [row[0].strip().lower() for row in rows if row and row[0].strip()]


def load_surnames() -> list[str]:
    """All unique Spanish surnames held by at least 20 residents, lower case, sorted."""
    return sorted({name for file in SURNAME_FILES for name in _first_column(fetch(file))})


def load_first_names(sex: str = "both") -> list[str]:
    """Unique Spanish first names (``sex``: "male", "female" or "both"), lower case, sorted."""
    if sex not in ("male", "female", "both"):
        raise ValueError(f"sex must be 'male', 'female' or 'both', not {sex!r}")
    files = FIRST_NAME_FILES.values() if sex == "both" else [FIRST_NAME_FILES[sex]]
    return sorted({name for file in files for name in _first_column(fetch(file))})


# %% notebooks/01-text-data.md · cell 15 · *The Time Machine*
def time_machine_book() -> str:
    """The Time Machine as published: Gutenberg's header, footer and BOM removed."""
    raw = fetch("time-machine/pg35.txt").read_text(encoding="utf-8-sig")
    return gutenberg_book_text(raw).strip()


def preprocess_text(text: str) -> str:
    """The chapter's preprocessing: lower case; every run of non-letters becomes one space."""
    return re.sub("[^a-z]+", " ", text.lower()).strip()


def load_time_machine() -> str:
    """The Time Machine as used by the chapter: 26 lower-case letters and single spaces."""
    return preprocess_text(time_machine_book())


# %% notebooks/01-text-data.md · cell 20 · Vocabulary and tokenizer
UNK = "<unk>"
BOUNDARY = "."


class Vocab:
    """Token <-> id mapping built from training text; unknown tokens map to ``<unk>`` (id 0)."""

    def __init__(self, texts: Iterable[Sequence[str]], reserved: Sequence[str] = (), min_freq: int = 1):
        counts = Counter(token for text in texts for token in text)
        if UNK in reserved:
            raise ValueError(f"{UNK!r} is always reserved (id 0); do not list it in `reserved`")
        clash = [t for t in reserved if t in counts]
        if clash:
            raise ValueError(f"reserved tokens {clash} also occur in the data; choose other ones")
        kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
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


# %% notebooks/01-text-data.md · cell 23 · Splits that do not leak
def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")


def split_names(names: Iterable[str], fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """Split *unique* names at random into (train, valid, test) lists; no name is in two splits."""
    _check_fractions(fractions)
    unique = sorted(set(names))
    if not unique:
        raise ValueError("split_names got no names")
    random.Random(seed).shuffle(unique)
    n_train = int(round(fractions[0] * len(unique)))
    n_valid = int(round(fractions[1] * len(unique)))
    return unique[:n_train], unique[n_train:n_train + n_valid], unique[n_train + n_valid:]


def split_text(text: str, fractions=(0.8, 0.1, 0.1)):
    """Cut text into contiguous (train, valid, test) blocks, in reading order."""
    _check_fractions(fractions)
    a = int(fractions[0] * len(text))
    b = int((fractions[0] + fractions[1]) * len(text))
    return text[:a], text[a:b], text[b:]


# %% notebooks/01-text-data.md · cell 26 · Fixed-window contexts
def _check_block_size(block_size: int) -> None:
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"the window (block_size) must be a positive integer, got {block_size!r}")


def name_windows(names: Sequence[str], vocab: Vocab, block_size: int):
    """Context windows of every name: X (N, block_size) ids, Y (N,) next-character ids.

    Each name is padded on the left with ``block_size`` boundary tokens and followed by one
    boundary token, so it contributes ``len(name) + 1`` examples.
    """
    _check_block_size(block_size)
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
    """
    _check_block_size(block_size)
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.ndim != 1 or len(ids) <= block_size:
        raise ValueError(f"need a 1-D sequence longer than the window ({block_size}), got shape {tuple(ids.shape)}")
    X = ids.unfold(0, block_size, 1)[:-1]  # (N, block_size), a view: no copy
    Y = ids[block_size:]
    return X, Y


# %% notebooks/01-text-data.md · cell 29 · Sequences for recurrent networks
IGNORE_INDEX = -100  # the default ignore_index of torch.nn.functional.cross_entropy


def pad_names(names: Sequence[str], vocab: Vocab):
    """A batch of names as sequence-first tensors X, Y of shape (T, B); padded targets are IGNORE_INDEX.

    Name ``b`` reads ``. n a m e`` in ``X[:, b]`` and ``n a m e .`` in ``Y[:, b]``.
    """
    if len(names) == 0:
        raise ValueError("pad_names got an empty list of names")
    pad = vocab[BOUNDARY]
    T = max(len(n) for n in names) + 1
    X = torch.full((T, len(names)), pad, dtype=torch.long)
    Y = torch.full((T, len(names)), IGNORE_INDEX, dtype=torch.long)
    for b, name in enumerate(names):
        ids = torch.tensor([pad] + vocab.encode(name) + [pad])
        X[: len(ids) - 1, b] = ids[:-1]
        Y[: len(ids) - 1, b] = ids[1:]
    return X, Y


def name_batches(names: Sequence[str], vocab: Vocab, batch_size: int, shuffle: bool = True,
                 generator: torch.Generator | None = None):
    """Iterate over (X, Y) batches of names, each padded as in ``pad_names``."""
    order = torch.randperm(len(names), generator=generator) if shuffle else torch.arange(len(names))
    for i in range(0, len(names), batch_size):
        yield pad_names([names[j] for j in order[i:i + batch_size].tolist()], vocab)


# %% notebooks/01-text-data.md · cell 32 · Sequences for recurrent networks
def _check_steps(ids, num_steps: int, batch_size: int) -> torch.Tensor:
    ids = torch.as_tensor(ids, dtype=torch.long)
    if num_steps < 1 or batch_size < 1:
        raise ValueError(f"num_steps and batch_size must be >= 1, got {num_steps}, {batch_size}")
    if len(ids) < num_steps * batch_size + 1:
        raise ValueError(f"a text of {len(ids)} tokens is too short for batches of "
                         f"{batch_size} x {num_steps} steps")
    return ids


def random_batches(ids, num_steps: int, batch_size: int, generator: torch.Generator | None = None):
    """Random sampling: shuffled non-overlapping windows, X and Y of shape (num_steps, B) each."""
    ids = _check_steps(ids, num_steps, batch_size)
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    n = (len(ids) - offset - 1) // num_steps
    starts = offset + num_steps * torch.randperm(n, generator=generator)
    steps = torch.arange(num_steps)
    for i in range(0, n - batch_size + 1, batch_size):
        idx = starts[i:i + batch_size, None] + steps  # (B, T)
        yield ids[idx].T, ids[idx + 1].T


def sequential_batches(ids, num_steps: int, batch_size: int, offset: int = 0):
    """Sequential partitioning: row b of each (num_steps, B) batch continues row b of the last one."""
    ids = _check_steps(ids, num_steps, batch_size)
    n = (len(ids) - offset - 1) // batch_size  # tokens per stream
    n -= n % num_steps
    if n < num_steps:
        raise ValueError(f"offset {offset} leaves too little text for one batch")
    Xs = ids[offset:offset + batch_size * n].reshape(batch_size, n).T  # (n, B): one stream per column
    Ys = ids[offset + 1:offset + 1 + batch_size * n].reshape(batch_size, n).T
    for t in range(0, n, num_steps):
        yield Xs[t:t + num_steps], Ys[t:t + num_steps]


# %% notebooks/02-context-models.md · cell 4 · One training loop for the chapter
def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of next-token logits (..., V) against targets (...); IGNORE_INDEX is skipped."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


def _batches(data):
    """``data`` is an iterable of (X, Y) batches, or a function returning a fresh one per epoch."""
    return data() if callable(data) else data


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _logits_and_state(model, X, state, stateful: bool):
    out = model(X, state) if stateful else model(X)
    return out if isinstance(out, tuple) else (out, None)


def _model_device(model: torch.nn.Module) -> torch.device:
    """Where the model lives: its first parameter's (or buffer's) device; CPU if it has neither."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, stateful: bool = False, device=None) -> float:
    """Mean next-token negative log-likelihood (nats per token) of ``model`` on ``data``."""
    device = device or _model_device(model)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for X, Y in _batches(data):
        X, Y = X.to(device), Y.to(device)
        logits, state = _logits_and_state(model, X, state, stateful)
        total += next_token_loss(logits, Y, reduction="sum").item()
        count += int((Y != IGNORE_INDEX).sum())
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got no targets: the data is empty")
    return total / count


@dataclass
class History:
    """What ``fit`` measured: losses per epoch (nats/token), the best epoch and the time taken."""

    train_loss: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    best_epoch: int = -1
    best_valid: float = float("inf")
    seconds: float = 0.0
    steps: int = 0


def fit(model: torch.nn.Module, train_data, valid_data=None, *, epochs: int = 10, lr: float = 1e-3,
        weight_decay: float = 0.0, clip: float | None = None, patience: int | None = None,
        stateful: bool = False, device=None, max_seconds: float | None = None,
        progress: bool = True, desc: str = "training") -> History:
    """Train with AdamW on the mean next-token cross-entropy; return the ``History``.

    After each epoch the validation loss is measured; with ``patience`` training stops once it
    has not improved for that many epochs. The best epoch's weights are restored at the end.
    ``clip`` bounds the global gradient norm; ``stateful`` carries a recurrent model's state
    across (sequential) batches, detaching it between them; ``max_seconds`` caps training time.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = device or get_device()
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history, best_state = History(), None
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, file=sys.stdout, ncols=100,
               mininterval=1.0)
    for epoch in bar:
        model.train()
        total, count, state = 0.0, 0, None
        for X, Y in _batches(train_data):
            X, Y = X.to(device), Y.to(device)
            logits, state = _logits_and_state(model, X, state, stateful)
            state = _detach(state)
            loss = next_token_loss(logits, Y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            n = int((Y != IGNORE_INDEX).sum())
            total, count, history.steps = total + loss.item() * n, count + n, history.steps + 1
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
        history.train_loss.append(total / max(count, 1))
        if valid_data is not None:
            valid = evaluate(model, valid_data, stateful=stateful, device=device)
            history.valid_loss.append(valid)
            if valid < history.best_valid:
                history.best_epoch, history.best_valid = epoch, valid
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(train=f"{history.train_loss[-1]:.3f}", valid=f"{valid:.3f}", refresh=False)
            if patience is not None and epoch - history.best_epoch >= patience:
                break
        else:
            bar.set_postfix(train=f"{history.train_loss[-1]:.3f}", refresh=False)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - start
    return history


def plot_history(histories: dict, ax=None, title: str = "Loss curves"):
    """Plot train (dashed) and validation (solid) loss per epoch for several named ``History``s."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = range(1, len(h.train_loss) + 1)
        ax.plot(epochs, h.train_loss, "--", color=color, alpha=0.7)
        if h.valid_loss:
            ax.plot(epochs, h.valid_loss, "-", color=color, label=name)
            ax.plot(h.best_epoch + 1, h.best_valid, "o", color=color)
        else:
            ax.plot([], [], "--", color=color, label=name)
    ax.set(xlabel="epoch", ylabel="loss (nats/token)", title=title + "  (dashed: train, solid: valid)")
    ax.legend()
    return ax


# %% notebooks/02-context-models.md · cell 6 · Scoring a language model
def last_columns(X: torch.Tensor, block_size: int) -> torch.Tensor:
    """The last ``block_size`` characters of each window X (N, T); T must be >= block_size."""
    if X.ndim != 2:
        raise ValueError(f"windows must have shape (N, T), got {tuple(X.shape)}")
    if X.shape[1] < block_size:
        raise ValueError(f"windows of {X.shape[1]} characters are too short for a model that "
                         f"reads {block_size}; cut them with block_size >= {block_size}")
    return X[:, X.shape[1] - block_size:]


@dataclass
class WindowData:
    """Windows (X, Y) of the train / valid / test splits of one dataset, and its vocabulary."""

    name: str
    vocab: Vocab
    train: tuple
    valid: tuple
    test: tuple


CONTEXT_BLOCK = 16  # the windows are cut this long; every model reads at most this much


def surname_windows(block_size: int = CONTEXT_BLOCK, seed: int = 0) -> WindowData:
    """The Spanish surnames split 80/10/10 by unique name, as windows of ``block_size`` characters."""
    train, valid, test = split_names(load_surnames(), seed=seed)
    vocab = Vocab(train, reserved=[BOUNDARY])
    return WindowData("surnames", vocab, *(name_windows(names, vocab, block_size)
                                           for names in (train, valid, test)))


def time_machine_windows(block_size: int = CONTEXT_BLOCK) -> WindowData:
    """The Time Machine cut into contiguous 80/10/10 blocks, as character windows of each block."""
    train, valid, test = split_text(load_time_machine())
    vocab = Vocab(train)
    return WindowData("time-machine", vocab, *(text_windows(torch.tensor(vocab.encode(part)), block_size)
                                               for part in (train, valid, test)))


def eval_batches(X: torch.Tensor, Y: torch.Tensor, batch_size: int = 8192) -> list:
    """(X, Y) split into a list of large batches, in order: for ``evaluate``."""
    return [(X[i:i + batch_size], Y[i:i + batch_size]) for i in range(0, len(X), batch_size)]


def split_losses(model: torch.nn.Module, data: WindowData, limit: int | None = None) -> dict:
    """NLL (nats/char) of ``model`` on each split of ``data`` (on its first ``limit`` windows)."""
    return {split: evaluate(model, eval_batches(*(t[:limit] for t in getattr(data, split))))
            for split in ("train", "valid", "test")}


# %% notebooks/02-context-models.md · cell 9 · Counting: the $n$-gram model
class NGramModel(nn.Module):
    """Order-``n`` character model from add-k smoothed counts: p(y | previous n-1 characters)."""

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
        X = last_columns(X, self.block_size)
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
        counts = torch.where(seen, self.counts[pos], torch.zeros(()))  # (N, V)
        return (counts + self.k).log() - (counts.sum(1, keepdim=True) + self.k * self.vocab_size).log()


NGRAM_ORDERS = (1, 2, 3, 4, 5, 6)
NGRAM_KS = (0.01, 0.03, 0.1, 0.3, 1.0)


def select_ngram(data: WindowData, orders=NGRAM_ORDERS, ks=NGRAM_KS):
    """Fit every order on the training windows; return the model (order, k) best on validation
    and a dict {(order, k): validation NLL}."""
    valid = eval_batches(*data.valid)
    grid, best = {}, None
    for order in orders:
        model = NGramModel(len(data.vocab), order).count(*data.train)
        for k in ks:
            model.k = k
            grid[order, k] = evaluate(model, valid)
            if best is None or grid[order, k] < grid[best]:
                best = (order, k)
    model = NGramModel(len(data.vocab), best[0], best[1]).count(*data.train)
    return model, grid


# %% notebooks/02-context-models.md · cell 17 · A neural model of the window: the MLP
class MLPContext(nn.Module):
    """Bengio et al. (2003): embed the window's characters, concatenate, one tanh hidden layer."""

    def __init__(self, vocab_size: int, block_size: int, embed_dim: int = 24, hidden: int = 256):
        super().__init__()
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size (the window) must be an integer >= 1, got {block_size!r}")
        self.block_size = block_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.hidden = nn.Linear(block_size * embed_dim, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        e = self.embed(last_columns(X, self.block_size))  # (N, tau, d)
        h = torch.tanh(self.hidden(e.flatten(1)))  # (N, H)
        return self.out(h)  # (N, V) logits


# %% notebooks/02-context-models.md · cell 19 · A causal convolutional model: WaveNet's tree
class CausalCNN(nn.Module):
    """WaveNet-style causal convolutions (kernel 2, dilations 1, 2, 4, ...) read at the last position.

    With ``levels`` layers the receptive field is ``2 ** levels`` characters (``block_size``).
    """

    def __init__(self, vocab_size: int, levels: int = 3, embed_dim: int = 24, channels: int = 128):
        super().__init__()
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1 (receptive field 2**levels), got {levels!r}")
        self.block_size = 2 ** levels  # the receptive field, eq. (eq-receptive-field)
        self.embed = nn.Embedding(vocab_size, embed_dim)
        widths = [embed_dim] + [channels] * levels
        self.convs = nn.ModuleList(nn.Linear(2 * w, channels) for w in widths[:-1])
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(levels))
        self.out = nn.Linear(channels, vocab_size)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h = self.embed(last_columns(X, self.block_size))  # (N, R, d)
        for conv, norm in zip(self.convs, self.norms):
            N, T, C = h.shape
            h = torch.tanh(norm(conv(h.reshape(N, T // 2, 2 * C))))  # (N, T/2, channels): merge pairs
        return self.out(h[:, 0])  # (N, V) logits


# %% notebooks/02-context-models.md · cell 23 · Training the neural models
@dataclass(frozen=True)
class WindowConfig:
    """A window model and its training run (full mode)."""

    model: str  # "mlp" or "cnn"
    block_size: int  # tau for the MLP; the receptive field 2**levels for the CNN
    embed_dim: int = 24
    hidden: int = 128  # hidden units (MLP) or channels (CNN)
    epochs: int = 4  # epochs at the base learning rate ...
    decay_epochs: int = 1  # ... then at lr / 10
    batch_size: int = 512
    lr: float = 5e-3
    weight_decay: float = 0.01
    patience: int = 2
    seed: int = 0

    def build(self, vocab_size: int) -> nn.Module:
        if self.model == "mlp":
            return MLPContext(vocab_size, self.block_size, self.embed_dim, self.hidden)
        if self.model == "cnn":
            levels = int(math.log2(self.block_size))
            if 2 ** levels != self.block_size:
                raise ValueError(f"a CNN's block_size must be a power of 2, got {self.block_size}")
            return CausalCNN(vocab_size, levels, self.embed_dim, self.hidden)
        raise ValueError(f"unknown model {self.model!r}: use 'mlp' or 'cnn'")


CONTEXT_CONFIGS = {
    ("surnames", "mlp"): WindowConfig("mlp", block_size=8, hidden=256, epochs=4, decay_epochs=1),
    ("surnames", "cnn"): WindowConfig("cnn", block_size=8, hidden=128, epochs=4, decay_epochs=2),
    ("time-machine", "mlp"): WindowConfig("mlp", block_size=8, hidden=256, epochs=6, decay_epochs=2,
                                          batch_size=256, lr=3e-3),
    ("time-machine", "cnn"): WindowConfig("cnn", block_size=16, hidden=128, epochs=8, decay_epochs=2,
                                          batch_size=256, lr=3e-3),
}
QUICK_WINDOWS = 8_000  # quick mode trains on this many windows (and validates on a quarter)


def window_batches(X: torch.Tensor, Y: torch.Tensor, batch_size: int, generator: torch.Generator):
    """A function returning, per call, a fresh shuffled pass over (X, Y) in minibatches."""
    def epoch():
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            yield X[idx], Y[idx]
    return epoch


def _merge(first: History, second: History) -> History:
    valid = first.valid_loss + second.valid_loss
    best = min(range(len(valid)), key=valid.__getitem__)
    return History(first.train_loss + second.train_loss, valid, best, valid[best],
                   first.seconds + second.seconds, first.steps + second.steps)


def train_window_model(config: WindowConfig, data: WindowData, quick: bool = False,
                       progress: bool = True, device=None):
    """Build the model of ``config``, train it on ``data`` (seeded, two phases); return (model, History)."""
    set_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    (X, Y), (Xv, Yv) = data.train, data.valid
    epochs, decay_epochs = config.epochs, config.decay_epochs
    if quick:
        keep = torch.randperm(len(X), generator=generator)[:QUICK_WINDOWS]
        X, Y, Xv, Yv = X[keep], Y[keep], Xv[:QUICK_WINDOWS // 4], Yv[:QUICK_WINDOWS // 4]
        epochs, decay_epochs = 1, 1
    model = config.build(len(data.vocab))
    train, valid = window_batches(X, Y, config.batch_size, generator), eval_batches(Xv, Yv)
    name = f"{data.name} {config.model}"
    first = fit(model, train, valid, epochs=epochs, lr=config.lr, weight_decay=config.weight_decay,
                patience=config.patience, device=device, progress=progress, desc=name)
    best_state = copy.deepcopy(model.state_dict())
    second = fit(model, train, valid, epochs=decay_epochs, lr=config.lr / 10,
                 weight_decay=config.weight_decay, patience=config.patience, device=device,
                 progress=progress, desc=name + " (lr/10)")
    if second.best_valid > first.best_valid:  # the slow phase did not help: keep the first's best
        model.load_state_dict(best_state)
    return model, _merge(first, second)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# %% notebooks/02-context-models.md · cell 28 · Sampling names
@torch.no_grad()
def sample_window_names(model: nn.Module, vocab: Vocab, num: int, temperature: float = 1.0,
                 max_len: int = 30, generator: torch.Generator | None = None) -> list[str]:
    """Draw ``num`` names from a window model, each ending at the boundary token (or ``max_len``)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; use a small value such as "
                         "0.01 for (almost) greedy decoding")
    if num < 1 or max_len < 1:
        raise ValueError(f"num and max_len must be >= 1, got {num} and {max_len}")
    was_training = model.training
    model.eval()
    device = _model_device(model)
    pad = vocab[BOUNDARY]
    window = torch.full((num, max(model.block_size, 1)), pad, dtype=torch.long, device=device)
    out = torch.full((num, max_len), pad, dtype=torch.long)
    done = torch.zeros(num, dtype=torch.bool)
    for t in range(max_len):
        logits = model(window).float().cpu()  # (num, V)
        probs = torch.softmax(logits / temperature, dim=-1)
        probs[:, vocab.unk] = 0  # never emit the unknown token
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (num,)
        nxt[done] = pad
        out[:, t] = nxt
        done |= nxt == pad
        if done.all():
            break
        window = torch.cat([window[:, 1:], nxt.unsqueeze(1).to(device)], dim=1)
    model.train(was_training)
    return [vocab.decode(row).split(BOUNDARY)[0] for row in out.tolist()]


def sample_origins(samples: Sequence[str], train_names: Iterable[str], real_names: Iterable[str]) -> dict:
    """Fractions of samples that copy a training name, are real names the model never saw
    (in ``real_names`` but not in training), or are invented (neither)."""
    if len(samples) == 0:
        raise ValueError("sample_origins got no samples")
    train, real = set(train_names), set(real_names)
    copied = sum(s in train for s in samples)
    unseen = sum(s not in train and s in real for s in samples)
    n = len(samples)
    return {"copied": copied / n, "real, unseen": unseen / n, "invented": (n - copied - unseen) / n}


# %% notebooks/02-context-models.md · cell 34 · What the embeddings learned
def plot_embeddings(embedding: torch.Tensor, vocab: Vocab, ax=None, skip=(UNK,)):
    """Scatter the rows of an embedding matrix (V, d) on their first two principal components."""
    import matplotlib.pyplot as plt

    keep = [i for i, t in enumerate(vocab.itos) if t not in skip]
    E = embedding.detach().float().cpu()[keep]
    E = E - E.mean(0)
    _, S, Vh = torch.linalg.svd(E, full_matrices=False)
    xy = E @ Vh[:2].T  # (V, 2)
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    ax.scatter(xy[:, 0], xy[:, 1], s=250, c="#dde7f2")
    for (x, y), i in zip(xy.tolist(), keep):
        token = vocab.itos[i]
        ax.annotate({" ": "␣", BOUNDARY: "·"}.get(token, token), (x, y), ha="center", va="center",
                    fontsize=12, color="C3" if token in "aeiou" else "k")
    explained = (S[:2] ** 2).sum() / (S ** 2).sum()
    ax.set(title=f"character embeddings, PCA ({explained:.0%} of the variance)", xticks=[], yticks=[])
    return ax


# %% notebooks/03-rnn.md · cell 5 · The recurrent cell
class RNN(nn.Module):
    """Elman's recurrent cell, sequence-first: H_t = tanh(X_t U + H_{t-1} W + b)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size}, {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1 / math.sqrt(hidden_size)  # the initialisation of torch.nn.RNN
        self.U = nn.Parameter(torch.empty(input_size, hidden_size).uniform_(-bound, bound))   # (D, H)
        self.W = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))  # (H, H)
        self.b = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))               # (H,)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """x (T, B, D) -> outputs (T, B, H) (the state after every step), final state (B, H)."""
        T, B = _check_sequence(x, self.input_size)
        h = x.new_zeros(B, self.hidden_size) if state is None else _check_state(state, B, self.hidden_size)
        XU = (x.reshape(T * B, -1) @ self.U + self.b).view(T, B, -1)  # (T, B, H): all steps at once
        outputs = []
        for xu in XU.unbind(0):  # (B, H) per step; unbind, not XU[t] (see the text)
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


def _check_sequence(x: torch.Tensor, input_size: int):
    if x.ndim != 3 or x.shape[-1] != input_size:
        raise ValueError(f"expected input of shape (T, B, {input_size}) (sequence first), got "
                         f"{tuple(x.shape)}; batch-first data can be passed as x.transpose(0, 1)")
    if x.shape[0] == 0:
        raise ValueError("the input sequence is empty (T = 0)")
    return x.shape[0], x.shape[1]


def _check_state(h: torch.Tensor, batch_size: int, hidden_size: int) -> torch.Tensor:
    if h.shape != (batch_size, hidden_size):
        raise ValueError(f"expected a state of shape ({batch_size}, {hidden_size}), got {tuple(h.shape)}")
    return h


# %% notebooks/03-rnn.md · cell 11 · A character language model
class RNNLanguageModel(nn.Module):
    """Token ids (T, B) -> next-token logits (T, B, V) through a recurrent cell."""

    def __init__(self, vocab_size: int, hidden_size: int, cell=RNN, embedding_dim: int | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = None if embedding_dim is None else nn.Embedding(vocab_size, embedding_dim)
        self.cell = cell(embedding_dim or vocab_size, hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, X: torch.Tensor, state=None):
        """X (T, B) ids; state None (zeros) or the state returned by an earlier call."""
        if X.ndim != 2 or X.dtype != torch.long:
            raise ValueError(f"expected token ids of shape (T, B) and dtype long, got {tuple(X.shape)} {X.dtype}")
        if self.embedding is None:
            x = F.one_hot(X, self.vocab_size).to(self.output.weight.dtype)  # (T, B, V)
        else:
            x = self.embedding(X)  # (T, B, E)
        outputs, state = self.cell(x, state)  # (T, B, H)
        return self.output(outputs), state  # (T, B, V)


# %% notebooks/03-rnn.md · cell 15 · Gradient clipping
def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """Rescale the gradients in place so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping, like ``torch.nn.utils.clip_grad_norm_``.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)  # the same epsilon as PyTorch
    for g in grads:
        g.detach().mul_(scale)
    return norm


# %% notebooks/03-rnn.md · cell 19 · The experiments' configuration
def surname_lm_config(quick: bool | None = None) -> dict:
    """Hyperparameters of the surname language models (notebooks 03 and 05, ``make bench``)."""
    quick = quick_mode() if quick is None else quick
    return dict(hidden_size=256, embedding_dim=None, batch_size=128, lr=5e-3, epochs=1 if quick else 9,
                lr_final=1e-3, epochs_final=1 if quick else 3, weight_decay=0.0, clip=1.0,
                train_names=640 if quick else None, held_out_names=300 if quick else None, seed=0)


def time_machine_lm_config(quick: bool | None = None) -> dict:
    """Hyperparameters of the Time Machine language models (truncated BPTT over ``num_steps``)."""
    quick = quick_mode() if quick is None else quick
    return dict(hidden_size=256, embedding_dim=None, num_steps=32, batch_size=32, lr=5e-3, epochs=1 if quick else 18,
                lr_final=1e-3, epochs_final=1 if quick else 3, weight_decay=0.0, clip=1.0,
                train_chars=4096 if quick else None, held_out_chars=1024 if quick else None, seed=0)


def fit_annealed(model: nn.Module, train_data, valid_data, config: dict, **kwargs) -> History:
    """``fit`` at ``config["lr"]`` for ``config["epochs"]``, then again at the smaller ``config["lr_final"]``
    for ``config["epochs_final"]`` epochs; returns one History for both phases and keeps the best weights."""
    common = dict(weight_decay=config["weight_decay"], clip=config["clip"], **kwargs)
    first = fit(model, train_data, valid_data, epochs=config["epochs"], lr=config["lr"], **common)
    if not config["epochs_final"]:
        return first
    best = copy.deepcopy(model.state_dict())
    second = fit(model, train_data, valid_data, epochs=config["epochs_final"], lr=config["lr_final"], **common)
    if second.best_valid >= first.best_valid:  # annealing did not help: keep the first phase's weights
        model.load_state_dict(best)
    better = second.best_valid < first.best_valid
    return History(train_loss=first.train_loss + second.train_loss, valid_loss=first.valid_loss + second.valid_loss,
                   best_epoch=len(first.train_loss) + second.best_epoch if better else first.best_epoch,
                   best_valid=min(first.best_valid, second.best_valid), seconds=first.seconds + second.seconds,
                   steps=first.steps + second.steps)


@dataclass
class LMRun:
    """A trained language model with its vocabulary, training history, config and held-out NLLs."""

    model: nn.Module
    vocab: Vocab
    history: History
    config: dict
    nll: dict  # split -> nats per token


def surname_splits():
    """The surnames split by unique name (seed 0) and the vocabulary of the training names."""
    train, valid, test = split_names(load_surnames(), seed=0)
    return train, valid, test, Vocab(train, reserved=[BOUNDARY])


def train_surname_lm(cell=RNN, quick: bool | None = None, progress: bool = True, **overrides) -> LMRun:
    """Train ``RNNLanguageModel(cell=cell)`` on the surnames; NLLs are nats per character."""
    config = {**surname_lm_config(quick), **overrides}
    set_seed(config["seed"])
    train, valid, test, vocab = surname_splits()
    train, valid, test = (names[:limit] if limit else names for names, limit in
                          [(train, config["train_names"]), (valid, config["held_out_names"]),
                           (test, config["held_out_names"])])
    model = RNNLanguageModel(len(vocab), config["hidden_size"], cell=cell, embedding_dim=config["embedding_dim"])
    generator = torch.Generator().manual_seed(config["seed"])
    # evaluation batches hold names of similar length (sorted), so little time goes into padding
    held_out = {split: list(name_batches(sorted(names, key=len), vocab, 1024, shuffle=False))
                for split, names in [("train", train), ("valid", valid), ("test", test)]}
    history = fit_annealed(model, lambda: name_batches(train, vocab, config["batch_size"], generator=generator),
                           held_out["valid"], config, progress=progress, desc=f"surnames {type(model.cell).__name__}")
    nll = {split: evaluate(model, batches) for split, batches in held_out.items()}
    return LMRun(model, vocab, history, config, nll)


def time_machine_splits(held_out_chars: int | None = None):
    """The book's vocabulary (from the training block) and the train/valid/test blocks as id tensors.

    ``held_out_chars`` keeps only the first characters of the validation and test blocks (quick mode).
    """
    train, valid, test = split_text(load_time_machine())
    vocab = Vocab([train])
    valid, test = valid[:held_out_chars], test[:held_out_chars]
    return vocab, *(torch.tensor(vocab.encode(block)) for block in (train, valid, test))


def evaluate_text(model: nn.Module, ids: torch.Tensor, stateful: bool = True, num_steps: int = 32,
                  streams: int = 1) -> float:
    """NLL (nats/char) of a block of text.

    ``stateful``: read the block as ``streams`` long sequences, carrying the state across pieces
    of ``num_steps`` characters. Otherwise: cut it into windows of ``num_steps``, each from a
    zero state (what a model trained on random windows expects).
    """
    if stateful:
        return evaluate(model, lambda: sequential_batches(ids, num_steps, streams), stateful=True)
    return evaluate(model, lambda: sequential_batches(ids, num_steps, 16), stateful=False)


def train_time_machine_lm(cell=RNN, stateful: bool = True, quick: bool | None = None,
                          progress: bool = True, **overrides) -> LMRun:
    """Train on The Time Machine with truncated BPTT.

    ``stateful=True``: sequential batches, the state carried (and detached) from batch to batch,
    a fresh random offset each epoch. ``stateful=False``: random windows, each from a zero state.
    Held-out NLLs are measured the way the model was trained (one long stream, or windows).
    """
    config = {**time_machine_lm_config(quick), **overrides}
    set_seed(config["seed"])
    vocab, train, valid, test = time_machine_splits(config["held_out_chars"])
    train = train[:config["train_chars"]] if config["train_chars"] else train
    T, B = config["num_steps"], config["batch_size"]
    model = RNNLanguageModel(len(vocab), config["hidden_size"], cell=cell, embedding_dim=config["embedding_dim"])
    generator = torch.Generator().manual_seed(config["seed"])
    if stateful:
        def batches():
            offset = int(torch.randint(T, (1,), generator=generator))
            return sequential_batches(train, T, B, offset=offset)
    else:
        def batches():
            return random_batches(train, T, B, generator=generator)
    history = fit_annealed(model, batches, lambda: sequential_batches(valid, T, 8), config, stateful=stateful,
                           progress=progress,
                           desc=f"time machine {type(model.cell).__name__} {'stateful' if stateful else 'windows'}")
    nll = {"train": evaluate_text(model, train, stateful, T, streams=16),
           "valid": evaluate_text(model, valid, stateful, T),
           "test": evaluate_text(model, test, stateful, T)}
    return LMRun(model, vocab, history, config, nll)


# %% notebooks/03-rnn.md · cell 29 · Generating text
def _sample(logits: torch.Tensor, temperature: float, generator, unk: int = 0) -> torch.Tensor:
    """One id per row of logits (B, V), drawn from softmax(logits / temperature); never ``unk``."""
    logits = logits.detach().float().cpu().clone()
    logits[:, unk] = float("-inf")  # the unknown token stands for no character: do not emit it
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (e.g. 0.5 to 1.5), got {temperature}")


@torch.no_grad()
def generate(model: nn.Module, vocab: Vocab, prompt: str, num_chars: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> str:
    """The prompt followed by ``num_chars`` sampled characters.

    The model first reads the prompt (warm-up), then samples one character at a time from
    softmax(logits / temperature) (the unknown token excluded), feeding each back in. Pass a seeded CPU ``generator``
    to make the sample reproducible.
    """
    _check_temperature(temperature)
    if not prompt:
        raise ValueError("the prompt must contain at least one character to warm up the state")
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise ValueError(f"the prompt has characters outside the vocabulary: {unknown}; "
                         "preprocess it like the training text (e.g. with preprocess_text)")
    if num_chars < 0:
        raise ValueError(f"num_chars must be >= 0, got {num_chars}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    X = torch.tensor(vocab.encode(prompt), device=device)[:, None]  # (T, 1)
    logits, state = model(X)  # warm-up
    ids = []
    for _ in range(num_chars):
        next_id = _sample(logits[-1], temperature, generator, vocab.unk)  # (1,)
        ids.append(int(next_id))
        logits, state = model(next_id.to(device)[None], state)  # (1, 1) in, (1, 1, V) out
    model.train(was_training)
    return prompt + vocab.decode(ids)


@torch.no_grad()
def sample_names(model: nn.Module, vocab: Vocab, num_names: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None, max_length: int = 40) -> list[str]:
    """Sample names from a model trained on ``pad_names`` batches: start at the boundary token and
    stop at the next one (or after ``max_length`` characters)."""
    _check_temperature(temperature)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    boundary = vocab[BOUNDARY]
    x = torch.full((1, num_names), boundary, device=device)  # (1, B)
    state, names, done = None, [[] for _ in range(num_names)], [False] * num_names
    for _ in range(max_length):
        logits, state = model(x, state)
        next_ids = _sample(logits[-1], temperature, generator, vocab.unk)  # (B,)
        for b, i in enumerate(next_ids.tolist()):
            if not done[b]:
                done[b] = i == boundary
                if not done[b]:
                    names[b].append(i)
        if all(done):
            break
        x = next_ids.to(device)[None]
    model.train(was_training)
    return [vocab.decode(ids) for ids in names]


# %% notebooks/04-bptt.md · cell 5 · The equations in code
def backprop_through_time(dH_direct: torch.Tensor, W: torch.Tensor, act_grad: torch.Tensor,
                          truncate: int | None = None):
    """The BPTT recursion, from t = T down to 1.

    dH_t = dH_direct_t + dA_{t+1} W^T,   dA_t = dH_t * f'(A_t);   dA_{T+1} = 0.

    dH_direct (T, B, H): the gradient reaching H_t from its own output; act_grad (T, B, H):
    f'(A_t). ``truncate=k`` drops the term through H_{t+1} when t+1 is a multiple of k
    (the state detached every k steps). Returns dH and dA, both (T, B, H).
    """
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

    x, y: (T, B) input and target ids (targets may be IGNORE_INDEX); state: initial H_0 (B, H).
    """
    cell = getattr(model, "cell", None)
    if type(cell) is not RNN:
        raise NotImplementedError(
            f"bptt_gradients derives the equations of the plain RNN cell only; this model's cell is "
            f"{type(cell).__name__}. Use autograd (loss.backward()) for other cells.")
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y must both have shape (T, B), got {tuple(x.shape)} and {tuple(y.shape)}")
    T, B = x.shape
    U, W, b = cell.U, cell.W, cell.b
    V, c = model.output.weight, model.output.bias  # (|V|, H), (|V|,)
    X = F.one_hot(x, model.vocab_size).to(U.dtype) if model.embedding is None else model.embedding.weight[x]

    # forward pass: A_t = X_t U + H_{t-1} W + b, H_t = tanh(A_t), O_t = H_t V^T + c
    XU = X @ U + b  # (T, B, H)
    H_all = XU.new_empty(T + 1, B, cell.hidden_size)  # H_0, H_1, ..., H_T
    H_all[0] = 0 if state is None else state
    H_, XU_ = H_all.unbind(0), XU.unbind(0)  # per-step views, written in place
    for t in range(T):
        torch.tanh(torch.addmm(XU_[t], H_[t], W), out=H_[t + 1])
    H, H_prev = H_all[1:], H_all[:-1]  # (T, B, H) each
    O = H @ V.T + c  # (T, B, |V|)

    # output layer: dO_t = M_t (P_t - E_t) / N
    mask = (y != IGNORE_INDEX).to(O.dtype)  # (T, B)
    dO = torch.softmax(O, dim=-1)
    dO.scatter_add_(-1, y.clamp(min=0)[..., None], -torch.ones_like(mask)[..., None])  # P - E
    dO *= (mask / mask.sum())[..., None]

    def rows(Z):  # (T, B, n) -> (T * B, n): a sum over t of Z_t^T dA_t becomes one product
        return Z.reshape(T * B, -1)

    grads = {"output.weight": rows(dO).T @ rows(H), "output.bias": dO.sum((0, 1))}

    # through time: dH_t = dO_t V + dA_{t+1} W^T, dA_t = dH_t * (1 - H_t^2)
    _, dA = backprop_through_time(dO @ V, W, 1 - H * H, truncate)

    # parameters: sums over time of (input of the step)^T dA_t
    grads["cell.U"] = rows(X).T @ rows(dA)
    grads["cell.W"] = rows(H_prev).T @ rows(dA)
    grads["cell.b"] = dA.sum((0, 1))
    if model.embedding is not None:  # dX_t = dA_t U^T, added into the rows of the ids read
        dX = rows(dA @ U.T)
        grads["embedding.weight"] = torch.zeros_like(model.embedding.weight).index_add_(0, x.reshape(-1), dX)
    return {name: grads[name] for name, _ in model.named_parameters()}


# %% notebooks/05-gated-rnns.md · cell 4 · Long short-term memory
def _sequence_shape(x: torch.Tensor, input_size: int, who: str):
    """(T, B) of an input (T, B, input_size), or a clear error."""
    if x.ndim != 3 or x.shape[-1] != input_size or x.shape[0] == 0:
        raise ValueError(f"{who} expects a non-empty input of shape (T, B, {input_size}), sequence first; "
                         f"got {tuple(x.shape)} (batch-first data can be passed as x.transpose(0, 1))")
    return x.shape[0], x.shape[1]


def _state_tensor(s: torch.Tensor, B: int, H: int, who: str) -> torch.Tensor:
    if not isinstance(s, torch.Tensor) or s.shape != (B, H):
        shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"{who} expects a state of shape ({B}, {H}) (batch, hidden), got {shape}")
    return s


class LSTM(nn.Module):
    """Long short-term memory (PyTorch's equations): input (T, B, D) -> outputs (T, B, H), (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__()
        D, H = input_size, hidden_size
        self.input_size, self.hidden_size = D, H
        k = 1 / math.sqrt(H)  # PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) everywhere
        self.W_x = nn.Parameter(torch.empty(D, 4 * H).uniform_(-k, k))  # gates (i, f, g, o)
        self.W_h = nn.Parameter(torch.empty(H, 4 * H).uniform_(-k, k))
        self.b_x = nn.Parameter(torch.empty(4 * H).uniform_(-k, k))
        self.b_h = nn.Parameter(torch.empty(4 * H).uniform_(-k, k))
        with torch.no_grad():
            self.b_x[H:2 * H] += forget_bias  # start out remembering (Gers et al., 2000)

    def forward(self, x: torch.Tensor, state=None):
        T, B = _sequence_shape(x, self.input_size, "LSTM")
        H = self.hidden_size
        if state is None:
            h, c = x.new_zeros(B, H), x.new_zeros(B, H)
        else:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("an LSTM's state is the pair (h, c), as returned by an earlier call")
            h, c = (_state_tensor(s, B, H, "LSTM") for s in state)
        # The input's contribution to every gate at every step: one matrix product.
        gx = torch.addmm(self.b_x + self.b_h, x.reshape(T * B, -1), self.W_x).view(T, B, 4 * H)
        outputs = []
        for gx_t in gx.unbind(0):  # (B, 4H) per step
            i, f, g, o = torch.addmm(gx_t, h, self.W_h).chunk(4, dim=1)  # each (B, H)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = torch.addcmul(f * c, i, g)  # f*c + i*g
            h = o * torch.tanh(c)
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
                         f"(got bidirectional={module.bidirectional}, bias={module.bias})")
    if module.batch_first:
        raise ValueError("from_torch needs a sequence-first module (batch_first=False): our cells "
                         "take input of shape (T, B, D)")


def _copy_torch_weights(cell: nn.Module, module: nn.Module) -> nn.Module:
    """Copy a single-layer torch.nn.GRU/LSTM into ``cell`` (our W_x, W_h are PyTorch's transposed)."""
    if module.num_layers != 1:
        raise ValueError(f"from_torch needs a single-layer module, got num_layers={module.num_layers}; "
                         "use StackedRNN.from_torch for a multi-layer one")
    cell.to(device=module.weight_hh_l0.device, dtype=module.weight_hh_l0.dtype)
    with torch.no_grad():
        cell.W_x.copy_(module.weight_ih_l0.T)
        cell.W_h.copy_(module.weight_hh_l0.T)
        cell.b_x.copy_(module.bias_ih_l0)
        cell.b_h.copy_(module.bias_hh_l0)
    return cell


# %% notebooks/05-gated-rnns.md · cell 8 · Gated recurrent units
class GRU(nn.Module):
    """Gated recurrent unit (PyTorch's equations): input (T, B, D) -> outputs (T, B, H), h (B, H)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        D, H = input_size, hidden_size
        self.input_size, self.hidden_size = D, H
        k = 1 / math.sqrt(H)
        self.W_x = nn.Parameter(torch.empty(D, 3 * H).uniform_(-k, k))  # gates (r, z, n)
        self.W_h = nn.Parameter(torch.empty(H, 3 * H).uniform_(-k, k))
        self.b_x = nn.Parameter(torch.empty(3 * H).uniform_(-k, k))
        self.b_h = nn.Parameter(torch.empty(3 * H).uniform_(-k, k))

    def forward(self, x: torch.Tensor, state=None):
        T, B = _sequence_shape(x, self.input_size, "GRU")
        H = self.hidden_size
        h = x.new_zeros(B, H) if state is None else _state_tensor(state, B, H, "GRU")
        gx = torch.addmm(self.b_x, x.reshape(T * B, -1), self.W_x).view(T, B, 3 * H)
        gx_rz, gx_n = gx.split([2 * H, H], dim=2)  # (T, B, 2H), (T, B, H)
        outputs = []
        for gx_rz_t, gx_n_t in zip(gx_rz.unbind(0), gx_n.unbind(0)):
            gh_rz, gh_n = torch.addmm(self.b_h, h, self.W_h).split([2 * H, H], dim=1)
            r, z = torch.sigmoid(gx_rz_t + gh_rz).chunk(2, dim=1)  # (B, H) each
            n = torch.tanh(gx_n_t + r * gh_n)
            h = torch.lerp(n, h, z)  # (1 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs), h  # (T, B, H), (B, H)

    @classmethod
    def from_torch(cls, module: nn.GRU) -> "GRU":
        """A GRU with the weights of a single-layer, unidirectional ``torch.nn.GRU``."""
        _check_torch_rnn(module, nn.GRU)
        return _copy_torch_weights(cls(module.input_size, module.hidden_size), module)


# %% notebooks/05-gated-rnns.md · cell 14 · Deep recurrent networks
class StackedRNN(nn.Module):
    """``num_layers`` recurrent layers of one cell class; state: a list of per-layer states."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 2, cell=None,
                 dropout: float = 0.0, output_dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not (0.0 <= dropout < 1.0 and 0.0 <= output_dropout < 1.0):
            raise ValueError(f"dropout rates must be in [0, 1), got {dropout} and {output_dropout}")
        cell = GRU if cell is None else cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.layers = nn.ModuleList(
            [cell(input_size if l == 0 else hidden_size, hidden_size) for l in range(num_layers)])
        self.dropout = nn.Dropout(dropout)  # between layers, like torch.nn.GRU(dropout=...)
        self.output_dropout = nn.Dropout(output_dropout)  # on the top layer's outputs

    def forward(self, x: torch.Tensor, state=None):
        if state is None:
            state = [None] * self.num_layers
        if len(state) != self.num_layers:
            raise ValueError(f"expected a state for each of the {self.num_layers} layers, got {len(state)}")
        new_state = []
        for l, (layer, s) in enumerate(zip(self.layers, state)):
            if l > 0:
                x = self.dropout(x)  # between layers only
            x, s = layer(x, s)  # (T, B, H)
            new_state.append(s)
        return self.output_dropout(x), new_state

    @classmethod
    def from_torch(cls, module: nn.Module, cell) -> "StackedRNN":
        """A stack of ``cell``s with the weights of a multi-layer torch.nn.RNN/GRU/LSTM."""
        if not isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)):
            raise TypeError(f"expected a torch.nn.RNN, GRU or LSTM, got {type(module).__name__}")
        net = cls(module.input_size, module.hidden_size, module.num_layers, cell=cell,
                  dropout=module.dropout)
        for l in range(module.num_layers):
            net.layers[l] = cell.from_torch(_torch_layer(module, l))
        return net


def _torch_layer(module: nn.Module, l: int) -> nn.Module:
    """Layer ``l`` of a multi-layer torch.nn.RNN/GRU/LSTM as a single-layer module of its own."""
    extra = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
    size = module.input_size if l == 0 else module.hidden_size
    single = type(module)(size, module.hidden_size, bias=module.bias, batch_first=module.batch_first,
                          bidirectional=module.bidirectional, **extra)
    p = dict(module.named_parameters())
    single.to(device=p["weight_hh_l0"].device, dtype=p["weight_hh_l0"].dtype)
    with torch.no_grad():
        for name, param in single.named_parameters():
            param.copy_(p[name.replace("_l0", f"_l{l}")])
    return single


# %% notebooks/05-gated-rnns.md · cell 17 · RNN, GRU and LSTM language models
def bucketed_name_batches(names, vocab, batch_size: int, generator: torch.Generator | None = None,
                          pool: int = 64):
    """Like ``name_batches``, but each batch holds names of similar length: less padding.

    Names are shuffled, cut into pools of ``pool`` batches, sorted by length within a pool and
    cut into batches; then the order of the batches is shuffled.
    """
    order = torch.randperm(len(names), generator=generator).tolist()
    batches = []
    for i in range(0, len(order), batch_size * pool):
        chunk = sorted(order[i:i + batch_size * pool], key=lambda j: len(names[j]))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    for b in torch.randperm(len(batches), generator=generator).tolist():
        yield pad_names([names[j] for j in batches[b]], vocab)


def gated_lm_config(dataset: str, quick: bool | None = None) -> dict:
    """Notebook 05's hyperparameters, the same for RNN, GRU and LSTM cells (and ``make bench``)."""
    quick = quick_mode() if quick is None else quick
    if dataset == "surnames":
        return dict(hidden_size=256, dropout=0.2, batch_size=128, lr=5e-3, epochs=1 if quick else 8,
                    anneal_lr=1e-3, anneal_epochs=0 if quick else 2, clip=1.0,
                    train_names=1000 if quick else None, eval_names=500 if quick else None, seed=0)
    if dataset == "time-machine":
        return dict(hidden_size=256, dropout=0.3, num_steps=64, batch_size=32, lr=3e-3,
                    epochs=1 if quick else 14, anneal_lr=6e-4, anneal_epochs=0 if quick else 2, clip=1.0,
                    train_chars=6000 if quick else None, eval_chars=3000 if quick else None, seed=0)
    raise ValueError(f"unknown dataset {dataset!r}: use 'surnames' or 'time-machine'")


def lm_cell(cell, dropout: float = 0.0):
    """The recurrent part of notebook 05's models: one layer of ``cell``, dropout on its outputs."""
    return partial(StackedRNN, num_layers=1, cell=cell, output_dropout=dropout)


def _join(first: History, second: History) -> History:
    """The history of two consecutive ``fit`` calls as one."""
    best_second = second.best_valid < first.best_valid
    return History(first.train_loss + second.train_loss, first.valid_loss + second.valid_loss,
                   len(first.train_loss) + second.best_epoch if best_second else first.best_epoch,
                   min(first.best_valid, second.best_valid), first.seconds + second.seconds,
                   first.steps + second.steps)


def train_gated_lm(dataset: str, cell, quick: bool | None = None, progress: bool = True,
                   **overrides) -> LMRun:
    """Train RNNLanguageModel(cell) with ``gated_lm_config(dataset)``; NLLs in nats per character.

    Surnames: bucketed batches of names, each name from a zero state. The Time Machine: truncated
    BPTT on sequential batches with the state carried across them. Both: the best epoch on the
    validation split is kept (early stopping), then a phase at the smaller ``anneal_lr``.
    """
    config = {**gated_lm_config(dataset, quick), **overrides}
    set_seed(config["seed"])
    generator = torch.Generator().manual_seed(config["seed"])
    if dataset == "surnames":
        train, valid, test, vocab = surname_splits()
        train = train[:config["train_names"]] if config["train_names"] else train
        if config["eval_names"]:
            valid, test = valid[:config["eval_names"]], test[:config["eval_names"]]
        held_out = {split: list(name_batches(names, vocab, 1024, shuffle=False))
                    for split, names in [("train", train), ("valid", valid), ("test", test)]}
        stateful, valid_data = False, held_out["valid"]

        def train_data():
            return bucketed_name_batches(train, vocab, config["batch_size"], generator)

        def measure(model):
            return {split: evaluate(model, batches) for split, batches in held_out.items()}
    else:
        vocab, train, valid, test = time_machine_splits()
        train = train[:config["train_chars"]] if config["train_chars"] else train
        if config["eval_chars"]:
            valid, test = valid[:config["eval_chars"]], test[:config["eval_chars"]]
        T, B = config["num_steps"], config["batch_size"]
        stateful = True

        def train_data():
            return sequential_batches(train, T, B, offset=int(torch.randint(T, (1,), generator=generator)))

        def valid_data():
            return sequential_batches(valid, T, 8)

        def measure(model):
            return {"train": evaluate_text(model, train, True, T, streams=16),
                    "valid": evaluate_text(model, valid, True, T), "test": evaluate_text(model, test, True, T)}
    model = RNNLanguageModel(len(vocab), config["hidden_size"], cell=lm_cell(cell, config["dropout"]))
    train_kwargs = dict(clip=config["clip"], stateful=stateful, progress=progress)
    desc = f"{dataset} {cell.__name__}"
    history = fit(model, train_data, valid_data, epochs=config["epochs"], lr=config["lr"], desc=desc,
                  **train_kwargs)
    if config["anneal_epochs"]:
        best = copy.deepcopy(model.state_dict())
        annealed = fit(model, train_data, valid_data, epochs=config["anneal_epochs"], lr=config["anneal_lr"],
                       desc=desc + " (annealing)", **train_kwargs)
        if annealed.best_valid > history.best_valid:
            model.load_state_dict(best)  # annealing did not help: keep the earlier best
        history = _join(history, annealed)
    model.eval()
    return LMRun(model, vocab, history, config, measure(model))


# %% notebooks/05-gated-rnns.md · cell 28 · A task with a known memory span
def recall_vocab_size(num_symbols: int = 8, num_distractors: int = 8) -> int:
    """Tokens of the recall task: symbols, then distractors, then the query token (the last id)."""
    return num_symbols + num_distractors + 1


def recall_batch(k: int, batch_size: int, num_symbols: int = 8, num_distractors: int = 8,
                 generator: torch.Generator | None = None):
    """A batch of the "recall the token k steps back" task: X, Y of shape (k + 1, B).

    X[0] is a symbol in [0, num_symbols), X[1:k] are distractors, X[k] is the query token; the
    only target is Y[k] = X[0], the token k steps before the query (others are IGNORE_INDEX).
    """
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")
    if num_symbols < 2 or num_distractors < 1:
        raise ValueError("need at least 2 symbols (else there is nothing to recall) and 1 distractor")
    query = num_symbols + num_distractors
    X = torch.randint(num_symbols, query, (k + 1, batch_size), generator=generator)  # distractors
    X[0] = torch.randint(0, num_symbols, (batch_size,), generator=generator)
    X[k] = query
    Y = torch.full_like(X, IGNORE_INDEX)
    Y[k] = X[0]
    return X, Y


# %% notebooks/05-gated-rnns.md · cell 31 · A task with a known memory span
RECALL_CONFIG = dict(hidden_size=32, batch_size=128, lr=1e-2, clip=1.0, steps=500, spans=(5, 10, 20, 40, 80),
                     seed=0)


def train_recall(cell, k: int, hidden_size: int = 32, batch_size: int = 128, lr: float = 1e-2,
                 clip: float = 1.0, steps: int = 500, seed: int = 0, solved_loss: float = 0.01):
    """Train RNNLanguageModel(cell) on recall_batch(k); return (model, number of updates made).

    Training stops early once the loss of a batch falls below ``solved_loss``.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = RNNLanguageModel(recall_vocab_size(), hidden_size, cell=cell)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    updates = 0
    while updates < steps:
        X, Y = recall_batch(k, batch_size, generator=generator)
        loss = next_token_loss(model(X)[0], Y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        updates += 1
        if loss.item() < solved_loss:
            break
    return model, updates


@torch.no_grad()
def recall_accuracy(model, k: int, num_examples: int = 2000, seed: int = 1) -> float:
    """Fraction of fresh recall sequences whose symbol the model names at the query step."""
    X, Y = recall_batch(k, num_examples, generator=torch.Generator().manual_seed(seed))
    logits = model(X)[0][-1]  # (B, V) at the query
    return (logits.argmax(-1) == Y[-1]).float().mean().item()


# %% notebooks/05-gated-rnns.md · cell 34 · A task with a known memory span
def state_gradient_norms(model, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """||dL/dh_t|| for every step t of an RNNLanguageModel, L the loss at the last step only.

    X, Y: (T, B) as from ``recall_batch``. Returns a (T,) tensor, entry ``lag`` for the state
    ``lag`` steps before the last one (the mean over the batch of per-sequence norms).
    """
    x = (F.one_hot(X, model.vocab_size).to(model.output.weight.dtype) if model.embedding is None
         else model.embedding(X))  # (T, B, D)
    states, state = [], None
    for x_t in x.unbind(0):
        out, state = model.cell(x_t[None], state)  # one step: (1, B, H)
        h = state[0] if isinstance(state, (tuple, list)) else state  # an LSTM's state is (h, c)
        h.retain_grad()  # keep dL/dh_t, which autograd would otherwise free
        states.append(h)
    loss = next_token_loss(model.output(out), Y[-1:], reduction="sum")  # per-sequence losses
    model.zero_grad(set_to_none=True)
    loss.backward()
    norms = torch.stack([h.grad.norm(dim=1).mean() for h in states])  # (T,)
    return norms.flip(0).detach()  # index = lag


# %% notebooks/05-gated-rnns.md · cell 38 · The chapter's scoreboard
def results_path() -> Path:
    """Where ``make bench`` records the chapter's results (``benchmarks/results.json``)."""
    return Path(__file__).resolve().parent / "benchmarks" / "results.json"


def load_results(path=None) -> list[dict]:
    """The quality records of ``make bench`` (an empty list if it has not been run)."""
    path = Path(path) if path is not None else results_path()
    if not path.exists():
        return []
    return list(json.loads(path.read_text()).get("quality", []))


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def comparison_table(records: list[dict], split: str = "test") -> str:
    """A Markdown table of the records of one split: per dataset, models by NLL, best in bold."""
    rows = [r for r in records if r.get("split") == split and "nll" in r]
    if not rows:
        return f"*No {split} results yet: run `make bench` to train and record every model.*"
    lines = [f"| dataset | model | {split} NLL (nats/char) | perplexity | parameters | training time (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for dataset in sorted({r.get("dataset", "?") for r in rows}):
        group = sorted((r for r in rows if r.get("dataset", "?") == dataset), key=lambda r: r["nll"])
        for i, r in enumerate(group):
            bold = "**" if i == 0 else ""
            nll = f"{bold}{r['nll']:.3f}{bold}"
            ppl = _cell(r.get("perplexity", math.exp(r["nll"])), ".2f")
            params = _cell(r.get("params"), ",d")
            seconds = _cell(r.get("train_seconds"), ".0f")
            lines.append(f"| {dataset} | {r.get('model', '?')} | {nll} | {ppl} | {params} | {seconds} |")
    return "\n".join(lines)
