"""Notebook 02: the shared training loop, the n-gram count model, the window models' receptive
fields, and sampling."""

import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import chapter

# ---------------------------------------------------------------------------------------------
# The training loop (fit / evaluate / History)
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
    history = chapter.fit(model, batches, batches, epochs=20, lr=0.1, progress=False, device="cpu")
    assert len(history.train_loss) == len(history.valid_loss) == 20
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    assert chapter.evaluate(model, batches) < 0.05 < before
    assert history.steps == 20 * len(batches) and history.seconds > 0


def test_fit_accepts_a_function_returning_fresh_batches_each_epoch():
    torch.manual_seed(0)
    X, Y = _toy({0: 1, 1: 0})
    calls = []

    def epoch():
        calls.append(1)
        yield X, Y

    history = chapter.fit(Lookup(2), epoch, [(X, Y)], epochs=3, lr=0.1, progress=False, device="cpu")
    assert len(calls) == 3 and history.train_loss[-1] < history.train_loss[0]


def test_early_stopping_restores_the_best_weights():
    # Training teaches x -> x; validation wants x -> x + 1, so validation only gets worse after
    # the first epoch: training must stop after `patience` bad epochs and restore epoch 0.
    torch.manual_seed(0)
    train = [_toy({0: 0, 1: 1, 2: 2})]
    valid = [_toy({0: 1, 1: 2, 2: 0})]
    model = Lookup(3)
    history = chapter.fit(model, train, valid, epochs=50, lr=0.05, patience=3, progress=False,
                          device="cpu")
    assert history.best_epoch == 0
    assert len(history.valid_loss) == history.best_epoch + 3 + 1  # stopped early
    assert history.valid_loss[-1] > history.best_valid
    assert chapter.evaluate(model, valid) == pytest.approx(history.best_valid, abs=1e-6)


def test_fit_and_evaluate_reject_bad_input():
    X, Y = _toy({0: 1})
    with pytest.raises(ValueError, match="epochs"):
        chapter.fit(Lookup(2), [(X, Y)], epochs=0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        chapter.evaluate(Lookup(2), [])


def test_next_token_loss_ignores_padding():
    logits = torch.randn(3, 2, 5)
    targets = torch.tensor([[1, chapter.IGNORE_INDEX], [2, 3], [chapter.IGNORE_INDEX, 4]])
    keep = targets != chapter.IGNORE_INDEX
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(chapter.next_token_loss(logits, targets), expected)


def test_evaluate_works_for_a_model_without_parameters():
    model = chapter.NGramModel(3, 1, k=1.0).count(torch.zeros(4, 1, dtype=torch.long),
                                                  torch.tensor([0, 1, 1, 2]))
    X, Y = torch.zeros(2, 1, dtype=torch.long), torch.tensor([1, 2])
    expected = -(math.log(3 / 7) + math.log(2 / 7)) / 2
    assert chapter.evaluate(model, [(X, Y)]) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# The n-gram count model
# ---------------------------------------------------------------------------------------------


def _random_windows(seed, n, width, vocab_size):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(vocab_size, (n, width), generator=g),
            torch.randint(vocab_size, (n,), generator=g))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.integers(1, 4), vocab_size=st.integers(2, 6),
       k=st.floats(1e-4, 1e3))
def test_ngram_probabilities_sum_to_one(seed, order, vocab_size, k):
    X, Y = _random_windows(seed, 40, 4, vocab_size)
    model = chapter.NGramModel(vocab_size, order, k=k).count(X, Y)
    queries, _ = _random_windows(seed + 1, 30, 4, vocab_size)  # seen and unseen contexts
    probs = model(torch.cat([X, queries])).exp()
    assert probs.shape == (70, vocab_size)
    assert torch.allclose(probs.sum(1), torch.ones(70), atol=1e-5)
    assert (probs > 0).all()


def test_ngram_counts_match_a_python_counter():
    X, Y = _random_windows(0, 500, 3, 4)
    model = chapter.NGramModel(4, 3, k=0.5).count(X, Y)
    pairs = Counter((tuple(x[-2:].tolist()), int(y)) for x, y in zip(X, Y))
    contexts = Counter(tuple(x[-2:].tolist()) for x in X)
    probs = model(X).exp()
    for i, (x, y) in enumerate(zip(X, Y)):
        c = tuple(x[-2:].tolist())
        assert probs[i, y].item() == pytest.approx((pairs[c, int(y)] + 0.5) / (contexts[c] + 0.5 * 4))


def test_ngram_smoothing_limits():
    X, Y = _random_windows(1, 300, 2, 5)
    model = chapter.NGramModel(5, 2).count(X, Y)
    ctx = X[:, -1:]
    counts = torch.zeros(5, 5)
    counts.index_put_((ctx[:, 0], Y), torch.ones(len(Y)), accumulate=True)
    frequencies = counts / counts.sum(1, keepdim=True)
    model.k = 1e-9  # k -> 0: relative frequencies
    assert torch.allclose(model(torch.arange(5)[:, None]).exp(), frequencies, atol=1e-6)
    model.k = 1e9  # k -> infinity: uniform
    assert torch.allclose(model(torch.arange(5)[:, None]).exp(), torch.full((5, 5), 0.2), atol=1e-6)


def test_ngram_unseen_context_is_uniform():
    model = chapter.NGramModel(4, 3, k=0.1).count(torch.tensor([[1, 2]]), torch.tensor([3]))
    assert torch.allclose(model(torch.tensor([[2, 1], [0, 0]])).exp(), torch.full((2, 4), 0.25))


def test_ngram_rejects_bad_input():
    with pytest.raises(ValueError, match="order"):
        chapter.NGramModel(5, 0)
    with pytest.raises(ValueError, match="k must be > 0"):
        chapter.NGramModel(5, 2, k=0)
    model = chapter.NGramModel(5, 3)
    with pytest.raises(RuntimeError, match="count"):
        model(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="too short"):
        model.count(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one"):
        model.count(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, dtype=torch.long))


def test_select_ngram_picks_the_best_validation_cell():
    names = ["abab", "abba", "baba", "aabb", "bbaa", "abcab", "cabba"] * 3
    vocab = chapter.Vocab(names, reserved=[chapter.BOUNDARY])
    windows = chapter.name_windows(names, vocab, 4)
    data = chapter.WindowData("toy", vocab, windows, windows, windows)
    model, grid = chapter.select_ngram(data, orders=(1, 2, 3), ks=(0.1, 1.0))
    assert set(grid) == {(o, k) for o in (1, 2, 3) for k in (0.1, 1.0)}
    best = min(grid, key=grid.get)
    assert (model.order, model.k) == best
    assert chapter.evaluate(model, [windows]) == pytest.approx(grid[best])


# ---------------------------------------------------------------------------------------------
# Window models and their receptive field
# ---------------------------------------------------------------------------------------------

V = 7


def _window_models():
    torch.manual_seed(0)
    X, Y = _random_windows(0, 2000, 12, V)
    return [chapter.MLPContext(V, block_size=5, embed_dim=4, hidden=16),
            chapter.CausalCNN(V, levels=3, embed_dim=4, channels=8),
            chapter.NGramModel(V, 3, k=0.1).count(X, Y)]


@pytest.mark.parametrize("model", _window_models(), ids=["mlp", "cnn", "ngram"])
def test_receptive_field(model):
    """Changing a character outside the last block_size positions never changes the output;
    changing one inside does."""
    model.eval()
    X, _ = _random_windows(1, 64, 12, V)
    base = model(X)
    assert base.shape == (64, V)
    T, R = X.shape[1], model.block_size
    for pos in range(T):
        for shift in (1, 3):
            Xp = X.clone()
            Xp[:, pos] = (Xp[:, pos] + shift) % V
            changed = not torch.equal(model(Xp), base)
            assert changed == (pos >= T - R), f"position {pos}, receptive field {R}"


def test_cnn_receptive_field_doubles_per_level():
    for levels in (1, 2, 3, 4):
        assert chapter.CausalCNN(V, levels=levels).block_size == 2 ** levels


def test_cnn_equals_a_stack_of_dilated_causal_convolutions():
    """The stride-2 tree computes what Conv1d(kernel 2, dilation 2**l) layers give at the last step."""
    torch.manual_seed(0)
    model = chapter.CausalCNN(V, levels=3, embed_dim=4, channels=6).eval()
    X, _ = _random_windows(2, 10, 8, V)
    h = model.embed(X).transpose(1, 2)  # (N, C, T)
    for level, (lin, norm) in enumerate(zip(model.convs, model.norms)):
        c_in, d = h.shape[1], 2 ** level
        weight = torch.stack([lin.weight[:, :c_in], lin.weight[:, c_in:]], dim=2)  # (out, in, 2)
        h = F.conv1d(F.pad(h, (d, 0)), weight, lin.bias, dilation=d)  # causal: pad on the left
        h = torch.tanh(norm(h.transpose(1, 2)).transpose(1, 2))
    expected = model.out(h[:, :, -1])
    assert torch.allclose(model(X), expected, atol=1e-5)


def test_window_models_reject_bad_input():
    with pytest.raises(ValueError, match="block_size"):
        chapter.MLPContext(V, block_size=0)
    with pytest.raises(ValueError, match="levels"):
        chapter.CausalCNN(V, levels=0)
    with pytest.raises(ValueError, match="too short"):
        chapter.MLPContext(V, block_size=5)(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="power of 2"):
        chapter.WindowConfig("cnn", block_size=6).build(V)
    with pytest.raises(ValueError, match="unknown model"):
        chapter.WindowConfig("rnn", block_size=4).build(V)


def test_train_window_model_is_deterministic_and_learns():
    names = ["garcia", "garces", "gomez", "lopez", "perez", "sanz", "ruiz", "diaz"] * 4
    vocab = chapter.Vocab(names, reserved=[chapter.BOUNDARY])
    windows = chapter.name_windows(names, vocab, 8)
    data = chapter.WindowData("toy", vocab, windows, windows, windows)
    config = chapter.WindowConfig("cnn", block_size=4, hidden=16, epochs=3, decay_epochs=1,
                                  batch_size=128, lr=2e-2)
    model, history = chapter.train_window_model(config, data, progress=False, device="cpu")
    again, history2 = chapter.train_window_model(config, data, progress=False, device="cpu")
    assert history.valid_loss == history2.valid_loss
    assert len(history.valid_loss) == 4 and history.best_valid == min(history.valid_loss)
    assert history.best_valid < history.valid_loss[0] < math.log(len(vocab))
    assert chapter.evaluate(model, [windows]) == pytest.approx(history.best_valid, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


class FixedLogits(nn.Module):
    """A window model that ignores its input and always returns the same logits."""

    block_size = 2

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float))

    def forward(self, X):
        return self.logits.expand(len(X), -1)


VOCAB = chapter.Vocab(["abc"], reserved=[chapter.BOUNDARY])  # <unk> . a b c


def _logits(**scores):
    out = torch.zeros(len(VOCAB))
    for token, score in scores.items():
        out[VOCAB[{"dot": chapter.BOUNDARY}.get(token, token)]] = score
    return out


def test_sampling_terminates_at_the_boundary_or_max_len():
    never_stops = FixedLogits(_logits(dot=-1e9))
    never_stops.logits[VOCAB.unk] = 10.0  # the unknown token is never emitted, however likely
    names = chapter.sample_window_names(never_stops, VOCAB, 20, max_len=7,
                                        generator=torch.Generator().manual_seed(0))
    assert len(names) == 20 and all(len(n) == 7 for n in names)
    assert all(set(n) <= set("abc") for n in names)  # never the unknown token
    stops = FixedLogits(_logits(dot=1e9))
    assert chapter.sample_window_names(stops, VOCAB, 5) == [""] * 5


def test_sampling_with_real_models_ends_names():
    model = _window_models()[0]
    vocab = chapter.Vocab(["abcdef"], reserved=[chapter.BOUNDARY])
    g = torch.Generator().manual_seed(0)
    names = chapter.sample_window_names(model, vocab, 50, temperature=1.0, max_len=12, generator=g)
    assert len(names) == 50 and all(len(n) <= 12 and chapter.BOUNDARY not in n for n in names)
    g = torch.Generator().manual_seed(0)
    assert names == chapter.sample_window_names(model, vocab, 50, max_len=12, generator=g)


@given(st.one_of(st.floats(max_value=0.0), st.just(float("nan"))))
def test_sampling_rejects_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        chapter.sample_window_names(FixedLogits(_logits()), VOCAB, 3, temperature=temperature)


def test_temperature_limits():
    model = FixedLogits(_logits(a=2.0, b=1.0, c=0.0, dot=-1e9))
    g = torch.Generator().manual_seed(0)
    cold = chapter.sample_window_names(model, VOCAB, 200, temperature=1e-3, max_len=3, generator=g)
    assert cold == ["aaa"] * 200  # T -> 0: always the most likely character
    hot = chapter.sample_window_names(model, VOCAB, 3000, temperature=1e4, max_len=1, generator=g)
    freq = Counter(hot)
    assert set(freq) == {"a", "b", "c"}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in freq.values())  # T -> inf: uniform


def test_sample_origins():
    samples = ["garcia", "lopez", "maria", "zzz"]
    origins = chapter.sample_origins(samples, train_names=["garcia", "lopez"],
                                     real_names=["maria", "lopez"])
    assert origins == {"copied": 0.5, "real, unseen": 0.25, "invented": 0.25}
    with pytest.raises(ValueError, match="no samples"):
        chapter.sample_origins([], ["a"], ["b"])
