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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, stateful: bool = False, device=None) -> float:
    """Mean next-token negative log-likelihood (nats per token) of ``model`` on ``data``."""
    device = device or next(model.parameters()).device
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
