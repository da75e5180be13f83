"""Measurements the chapter's notebooks print and ``make bench`` records, kept out of ``chapter.py``:
a later chapter imports the models and the data from ``chapter``, not these.

* ``select_ngram``: the n-gram order and smoothing chosen on validation (notebook 02);
* ``sample_origins``: how often samples copy a training name (notebook 02);
* ``loss_by_offset``, ``position_nll``: how much history a model uses (notebooks 03 and 05);
* ``offset_ranges``, ``memory_span``: a per-offset loss curve summed up (notebooks 03 and 05);
* ``recall_vocab_size``, ``recall_accuracy``: the recall task's tokens and score (notebook 05);
* ``gate_trace``, ``state_gradient_norms``: a gated cell's gates and gradients, step by step (notebook 05);
* ``sex_agreement``: how often a conditional generator's names have the requested sex (notebook 07);
* ``transcribe``, ``scores_by_length``: an encoder–decoder's outputs, scored by input length (notebook 07).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from chapter import (
    IGNORE_INDEX,
    NGramModel,
    Vocab,
    WindowData,
    WindowModel,
    beam_search,
    character_error_rate,
    check_positive,
    eval_mode,
    evaluate,
    greedy_decode,
    labelled_batches,
    model_device,
    name_windows,
    next_token_loss,
    number_words,
    pad_names,
    pad_sources,
    predictions,
    recall_batch,
)

NGRAM_ORDERS = (1, 2, 3, 4, 5, 6)
NGRAM_KS = (0.01, 0.03, 0.1, 0.3, 1.0)


def select_ngram(data: WindowData, orders=NGRAM_ORDERS, ks=NGRAM_KS, model=NGramModel):
    """Fit every order on the training windows; return the model (order, k) best on validation
    and a dict {(order, k): validation NLL}. ``model``: the class to build (a notebook passes its own)."""
    grid, best = {}, None
    for order in orders:
        fitted = model(len(data.vocab), order).count(*data.train)
        for k in ks:
            fitted.k = k
            grid[order, k] = evaluate(fitted, data.valid)
            if best is None or grid[order, k] < grid[best]:
                best = (order, k)
    return model(len(data.vocab), best[0], best[1]).count(*data.train), grid


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


def loss_by_offset(model: nn.Module, ids: torch.Tensor, block: int = 512):
    """NLL (nats) of a recurrent language model at each offset 1..block after a reset of its state.

    The text ``ids`` (1-D) is read twice: cut into blocks of ``block`` characters, each from a zero
    state (``reset``), and as one stream with the whole history (``stream``). Returns
    ``(reset, stream)``, two (block,) tensors whose entry j - 1 is the mean loss of the characters
    predicted after reading j characters of their block. The first block only warms the stream
    up, so both are means over the same characters, each with at least ``block`` of history.
    """
    check_positive(block=block)
    if isinstance(model, WindowModel):
        raise TypeError("loss_by_offset measures a recurrent model's memory; a window model's is its block_size")
    if ids.ndim != 1 or len(ids) <= 2 * block:
        raise ValueError(f"need a 1-D tensor of more than 2 * block = {2 * block} ids, got shape {tuple(ids.shape)}")
    device = model_device(model)
    with eval_mode(model):
        n = (len(ids) - 1) // block * block
        X, Y = ids[:n].to(device), ids[1:n + 1].to(device)
        stream, state = [], None
        for i in range(0, n, block):  # one column, the state carried from piece to piece
            logits, state = model(X[i:i + block, None], state)
            stream.append(next_token_loss(logits, Y[i:i + block, None], reduction="none"))  # (block,)
        stream = torch.stack(stream, dim=1)[:, 1:]  # (block, n / block - 1): offset by block
        logits, _ = model(X.view(-1, block).T)  # (block, n / block, V): every block from a zero state
        reset = next_token_loss(logits, Y.view(-1, block).T, reduction="none").view(block, -1)[:, 1:]
    return reset.mean(dim=1).cpu(), stream.mean(dim=1).cpu()


def position_nll(model: nn.Module, names, vocab: Vocab, positions: int = 12) -> torch.Tensor:
    """Mean NLL (nats) of the character at each position 0 .. positions-1 of ``names``: position t is
    predicted from the boundary token and the name's first t letters (the final boundary counts at
    its position). Window models see at most their last ``block_size`` tokens of that context.
    A position that no name reaches gets NaN."""
    if len(names) == 0:
        raise ValueError("position_nll got an empty list of names")
    device = model_device(model)
    with eval_mode(model):
        total, count = torch.zeros(positions), torch.zeros(positions)
        for i in range(0, len(names), 1024):
            batch = names[i:i + 1024]
            if isinstance(model, WindowModel):  # one window per target, in name order
                X, Y = name_windows(batch, vocab, model.block_size)
                losses = next_token_loss(model(X.to(device)), Y.to(device), reduction="none").cpu()
                where = torch.tensor([t for name in batch for t in range(len(name) + 1)])
            else:
                X, Y = pad_names(batch, vocab)  # (T, B)
                losses = next_token_loss(model(X.to(device))[0], Y.to(device), reduction="none").cpu()
                real = (Y != IGNORE_INDEX).reshape(-1)
                losses = losses[real]
                where = torch.arange(Y.shape[0])[:, None].expand_as(Y).reshape(-1)[real]
            keep = where < positions
            total.index_add_(0, where[keep], losses[keep])
            count.index_add_(0, where[keep], torch.ones(int(keep.sum())))
    return torch.where(count > 0, total / count.clamp(min=1), torch.nan)


def offset_ranges(values: torch.Tensor) -> dict:
    """Means of a per-offset curve (entry j - 1 for offset j) over the ranges 1, 2, 3-4, 5-8, ..."""
    ranges, lo = {}, 1
    while lo <= len(values):
        hi = min(max(2 * lo - 2, lo), len(values))  # 1, 2, 3-4, 5-8, 9-16, ...
        ranges[str(lo) if hi == lo else f"{lo}-{hi}"] = values[lo - 1:hi].mean().item()
        lo = hi + 1
    return ranges


def memory_span(excess: torch.Tensor, tol: float = 0.005) -> int:
    """How many characters of history (before the current one) a model uses, at the resolution of
    ``offset_ranges``: the last offset of the last range whose mean excess loss is at least ``tol``
    nats in size, 0 if none is (a model that reads the current character only)."""
    span = 0
    for name, value in offset_ranges(excess).items():
        if abs(value) >= tol:
            span = int(name.split("-")[-1])
    return span


def recall_vocab_size(num_symbols: int = 8, num_distractors: int = 8) -> int:
    """Tokens of the recall task: symbols, then distractors, then the query token (the last id)."""
    return num_symbols + num_distractors + 1


def recall_accuracy(model, k: int, num_examples: int = 2000, seed: int = 2) -> float:
    """Fraction of recall sequences (by default the task's test batch) whose symbol the model names."""
    X, Y = recall_batch(k, num_examples, generator=torch.Generator().manual_seed(seed))
    device = model_device(model)
    with eval_mode(model):
        logits = model(X.to(device))[0][-1]  # (B, V) at the query
    return (logits.argmax(-1).cpu() == Y[-1]).float().mean().item()


@torch.no_grad()
def gate_trace(model, X: torch.Tensor) -> dict:
    """The gates of an RNNLanguageModel's GRU or LSTM cell at every step of token ids X (T, B), from a
    zero state: gate name -> (T, B, H) (an LSTM's i, f, g, o; a GRU's r, z, n)."""
    cell = model.cell
    if not hasattr(cell, "step"):
        raise TypeError(f"gate_trace needs a gated cell with a step method, got {type(cell).__name__}")
    X = X.to(model_device(model))
    x = model.embed(X)  # (T, B, D)
    gx = cell.input_gates(x)  # (T, B, kH)
    state, trace = None, {}  # the zero state
    for gx_t in gx.unbind(0):
        state, gates = cell.step(gx_t, state)
        for name, g in gates.items():
            trace.setdefault(name, []).append(g)
    return {name: torch.stack(values) for name, values in trace.items()}


def state_gradient_norms(model, X: torch.Tensor, Y: torch.Tensor) -> dict:
    """||dL/dh_s|| for every step s of an RNNLanguageModel, L the loss at the last step only, and for
    an LSTM also ||dL/dc_s||, the gradient reaching its cell state.

    X, Y: (T, B) as from ``recall_batch``. Returns {"h": (T,)} or {"h": (T,), "c": (T,)}: entry
    ``lag`` for the state ``lag`` steps before the last one (the mean over the batch of per-sequence
    norms).
    """
    device = model_device(model)
    X, Y = X.to(device), Y.to(device)
    x = model.embed(X)  # (T, B, D)
    states, state, fast = [], None, model.cell.fast
    model.cell.fast = False  # under autograd: the fused fast path would hide the path from c_t to h_t
    try:
        for x_t in x.unbind(0):
            _, state = model.cell(x_t[None], state)  # one step
            parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)  # (h,) or an LSTM's (h, c)
            for part in parts:
                part.retain_grad()  # keep dL/dh_t (and dL/dc_t), which autograd would otherwise free
            states.append(parts)
    finally:
        model.cell.fast = fast
    loss = next_token_loss(model.output(states[-1][0])[None], Y[-1:], reduction="sum")  # from h_T
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: torch.stack([parts[i].grad.norm(dim=1).mean() for parts in states]).flip(0).detach().cpu()
            for i, name in enumerate(("h", "c")[:len(states[0])])}  # (T,) each, index = lag


def sex_agreement(samples: dict, classifier: nn.Module, classifier_vocab: Vocab, name_sexes: dict) -> dict:
    """For the samples asked of each sex (0 female, 1 male: ``samples[sex]`` a list of names): the
    share of the non-empty ones that ``classifier`` labels with that sex ("classifier"), the share
    that are names of INE's lists ("real"), and the share of those that most of their holders have
    (``name_sexes[name]``: female and male residents; a tie counts as female, as in training) ("INE")."""
    result = {}
    for sex, names in samples.items():
        named = [n for n in names if n]
        if not named:
            raise ValueError(f"no non-empty samples for sex {sex}")
        predicted, _ = predictions(classifier, labelled_batches([(n, sex) for n in named], classifier_vocab, 1024))
        real = [n for n in named if n in name_sexes]
        agree = [int(name_sexes[n][1] > name_sexes[n][0]) == sex for n in real]
        result[sex] = {"classifier": (predicted == sex).float().mean().item(), "real": len(real) / len(names),
                       "INE": sum(agree) / len(agree) if agree else float("nan")}
    return result


def longer_numbers(digits=(7, 8, 9), count: int = 300, seed: int = 1) -> list[int]:
    """``count`` random numbers of each count of ``digits``: longer than the encoder–decoder's training inputs."""
    g = torch.Generator().manual_seed(seed)
    return [int(torch.randint(10 ** (d - 1), 10 ** d, (1,), generator=g)) for d in digits for _ in range(count)]


def transcribe(model: nn.Module, numbers: Sequence[int], vocabs, beam_width: int = 1,
               batch_size: int = 1000) -> list[str]:
    """The digits an encoder–decoder writes for the words of each number: greedy decoding for
    ``beam_width`` 1, else beam search. ``vocabs``: (source vocabulary, target vocabulary)."""
    source_vocab, target_vocab = vocabs
    written = []
    for i in range(0, len(numbers), batch_size):
        source = pad_sources([number_words(n) for n in numbers[i:i + batch_size]], source_vocab)
        ids = greedy_decode(model, source) if beam_width == 1 else beam_search(model, source, beam_width)
        written += [target_vocab.decode(row) for row in ids]
    return written


def scores_by_length(model: nn.Module, numbers: Sequence[int], vocabs, edges: Sequence[int],
                     beam_width: int = 1) -> list[dict]:
    """Exact match and character error rate of the greedy (or beam) transcriptions of
    ``numbers``, by the length of their words in characters: one row per bin [low, high) of
    ``edges`` that holds any number."""
    written = transcribe(model, numbers, vocabs, beam_width)
    lengths = [len(number_words(n)) for n in numbers]
    rows = []
    for low, high in zip(edges, edges[1:]):
        chosen = [(w, str(n)) for w, n, length in zip(written, numbers, lengths) if low <= length < high]
        if chosen:
            rows.append({"low": low, "high": high, "count": len(chosen),
                         "exact": sum(w == t for w, t in chosen) / len(chosen),
                         "cer": character_error_rate(*zip(*chosen))})
    return rows
