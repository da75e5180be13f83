"""Notebook 02: scoring, the n-gram count model, the window models (MLP, causal CNN) and their
receptive fields, the experiment configuration, and the one sampler applied to window models.

The training loop (fit / History) and the driver (train / Run / the cache) are tested in
test_experiments.py; `sample` on recurrent models in test_rnn.py.
"""

import dataclasses
import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import chapter
import experiments
from chapter import sample
from experiments import Config, measures

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)

# ---------------------------------------------------------------------------------------------
# Scoring a language model
# ---------------------------------------------------------------------------------------------


def test_next_token_loss_ignores_padding():
    logits = torch.randn(3, 2, 5)
    targets = torch.tensor([[1, chapter.IGNORE_INDEX], [2, 3], [chapter.IGNORE_INDEX, 4]])
    keep = targets != chapter.IGNORE_INDEX
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(chapter.next_token_loss(logits, targets), expected)


def test_next_token_loss_rejects_targets_outside_the_classes():
    with pytest.raises(ValueError, match="outside the model's 5 classes"):
        chapter.next_token_loss(torch.randn(4, 5), torch.tensor([0, 1, 5, 2]))


def test_evaluate_works_for_a_model_without_parameters():
    model = chapter.NGramModel(3, 1, k=1.0).count(torch.zeros(4, 1, dtype=torch.long),
                                                  torch.tensor([0, 1, 1, 2]))
    X, Y = torch.zeros(2, 1, dtype=torch.long), torch.tensor([1, 2])
    expected = -(math.log(3 / 7) + math.log(2 / 7)) / 2
    assert chapter.evaluate(model, [(X, Y)]) == pytest.approx(expected)


def test_evaluate_cuts_a_pair_of_tensors_into_batches_in_order():
    torch.manual_seed(0)
    model = chapter.MLPContext(5, 3, 4, 8)
    X, Y = torch.randint(5, (20000, 3)), torch.randint(5, (20000,))  # more rows than one batch of 8192
    batches = [(X[i:i + 1000], Y[i:i + 1000]) for i in range(0, len(X), 1000)]
    assert chapter.evaluate(model, (X, Y)) == pytest.approx(chapter.evaluate(model, batches), rel=1e-6)


def test_evaluate_rejects_empty_data():
    with pytest.raises(ValueError, match="empty"):
        chapter.evaluate(chapter.NGramModel(3, 1), [])


def test_last_columns():
    X = torch.arange(12).view(2, 6)
    assert torch.equal(chapter._last_columns(X, 2), X[:, 4:])
    with pytest.raises(ValueError, match="too short"):
        chapter._last_columns(X, 7)
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        chapter._last_columns(torch.arange(6), 2)


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
    model, grid = measures.select_ngram(data, orders=(1, 2, 3), ks=(0.1, 1.0))
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
    return [chapter.MLPContext(V, block_size=5, embedding_dim=4, hidden_size=16),
            chapter.CausalCNN(V, levels=3, embedding_dim=4, hidden_size=8),
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


def test_window_models_read_windows_of_exactly_block_size():
    mlp, cnn, _ = _window_models()
    for model in (mlp, cnn):
        X, _ = _random_windows(3, 10, model.block_size, V)
        assert model(X).shape == (10, V)


def test_window_model_parts():
    mlp = chapter.MLPContext(V, block_size=5, embedding_dim=4, hidden_size=16)
    assert mlp.embedding.weight.shape == (V, 4)
    assert mlp.hidden.in_features == 5 * 4 and mlp.hidden.out_features == 16
    assert (mlp.output.in_features, mlp.output.out_features) == (16, V)
    cnn = chapter.CausalCNN(V, levels=3, embedding_dim=4, hidden_size=8)
    assert cnn.embedding.weight.shape == (V, 4) and cnn.block_size == 8
    assert len(cnn.convs) == len(cnn.norms) == 3
    assert [c.in_features for c in cnn.convs] == [2 * 4, 2 * 8, 2 * 8]
    assert (cnn.output.in_features, cnn.output.out_features) == (8, V)


def test_cnn_receptive_field_doubles_per_level():
    for levels in (1, 2, 3, 4):
        assert chapter.CausalCNN(V, levels=levels).block_size == 2 ** levels


def test_cnn_equals_a_stack_of_dilated_causal_convolutions():
    """The stride-2 tree computes what Conv1d(kernel 2, dilation 2**l) layers give at the last step."""
    torch.manual_seed(0)
    model = chapter.CausalCNN(V, levels=3, embedding_dim=4, hidden_size=6).eval()
    X, _ = _random_windows(2, 10, 8, V)
    h = model.embedding(X).transpose(1, 2)  # (N, C, T)
    for level, (lin, norm) in enumerate(zip(model.convs, model.norms)):
        c_in, d = h.shape[1], 2 ** level
        weight = torch.stack([lin.weight[:, :c_in], lin.weight[:, c_in:]], dim=2)  # (out, in, 2)
        h = F.conv1d(F.pad(h, (d, 0)), weight, lin.bias, dilation=d)  # causal: pad on the left
        h = torch.tanh(norm(h.transpose(1, 2)).transpose(1, 2))
    expected = model.output(h[:, :, -1])
    assert torch.allclose(model(X), expected, atol=1e-5)


def test_window_models_reject_bad_input():
    with pytest.raises(ValueError, match="block_size"):
        chapter.MLPContext(V, block_size=0)
    with pytest.raises(ValueError, match="block_size"):
        chapter.MLPContext(V, block_size=2.0)
    with pytest.raises(ValueError, match="levels"):
        chapter.CausalCNN(V, levels=0)
    with pytest.raises(ValueError, match="too short"):
        chapter.MLPContext(V, block_size=5)(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="too short"):
        chapter.CausalCNN(V, levels=2)(torch.zeros(3, 3, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# Config: one frozen description of an experiment
# ---------------------------------------------------------------------------------------------


def test_config_is_frozen():
    config = Config("surnames", "mlp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochz = 3  # not even a new attribute
    assert hash(config) == hash(Config("surnames", "mlp"))  # frozen: usable as a key


def test_config_rejects_unknown_fields():
    with pytest.raises(TypeError, match="epochz"):
        Config("surnames", "mlp", epochz=1)
    with pytest.raises(TypeError, match="epochz"):
        dataclasses.replace(Config("surnames", "mlp"), epochz=1)


@pytest.mark.parametrize("field,value", [
    ("hidden_size", 0), ("block_size", -1), ("batch_size", 1.5), ("num_steps", 0), ("epochs", 0),
    ("patience", 0), ("span", 0), ("dropout", 1.0), ("dropout", -0.1), ("lr", 0.0), ("lr", -1e-3),
])
def test_config_validates_its_fields(field, value):
    with pytest.raises(ValueError, match=field if field not in ("lr", "dropout") else "dropout"):
        Config("surnames", "mlp", **{field: value})


def test_config_accepts_no_patience_and_names_its_model():
    assert Config("surnames", "rnn", patience=None).patience is None
    labels = {Config("surnames", "mlp").label, Config("surnames", "cnn").label,
              Config("surnames", "rnn").label, Config("surnames", "rnn", cell="lstm").label}
    assert labels == {"MLP", "causal CNN", "RNN", "LSTM"}


def test_config_quick_shrinks_the_budget_only():
    config = Config("time-machine", "mlp", hidden_size=64, epochs=30, decays=2, lr=5e-3)
    quick = config.quick()
    assert (quick.epochs, quick.decays, quick.limit) == (1, 0, experiments.QUICK_LIMIT)
    assert dataclasses.replace(quick, epochs=30, decays=2, limit=None) == config  # nothing else changes
    assert config.epochs == 30 and config.limit is None  # the original is untouched
    assert quick.quick() == quick


def test_config_quick_keeps_one_batch_of_the_books_pieces():
    """A recurrent model of the book needs batch_size rows of num_steps characters (plus the offset
    that moves by up to num_steps) for one batch: notebook 05's LSTM over 128 steps in quick mode."""
    for num_steps in (8, 128):
        config = Config("time-machine", "rnn", hidden_size=64, batch_size=32, num_steps=num_steps, lr=5e-3)
        assert config.quick().limit == max(experiments.QUICK_LIMIT, 33 * num_steps + 1)
    assert Config("surnames", "rnn", hidden_size=64, lr=5e-3).quick().limit == experiments.QUICK_LIMIT


# ---------------------------------------------------------------------------------------------
# The chapter's window-model configurations
# ---------------------------------------------------------------------------------------------


def _stub_task(num_tokens):
    return experiments.Task(None, lambda: [], [], {}, num_tokens=num_tokens)


@pytest.mark.parametrize("key", list(experiments.WINDOW_CONFIGS), ids="-".join)
def test_window_configs_build_their_models(key):
    config = experiments.WINDOW_CONFIGS[key]
    assert (config.dataset, config.model) == key
    assert config.dataset in experiments.TASKS and config.model in experiments.WINDOW_MODELS
    torch.manual_seed(0)
    model = experiments.MODELS[config.model](config, _stub_task(30))
    kind = {"mlp": chapter.MLPContext, "cnn": chapter.CausalCNN}[config.model]
    assert isinstance(model, kind)
    assert model.block_size == config.block_size
    assert model.embedding.weight.shape == (30, config.embedding_dim)
    assert (model.output.in_features, model.output.out_features) == (config.hidden_size, 30)
    X = torch.randint(30, (3, config.block_size))
    assert model(X).shape == (3, 30)


def test_cnn_config_needs_a_power_of_two():
    with pytest.raises(ValueError, match=r"2\*\*levels"):
        experiments.MODELS["cnn"](Config("surnames", "cnn", block_size=6), _stub_task(10))


# ---------------------------------------------------------------------------------------------
# Sampling from a window model
# ---------------------------------------------------------------------------------------------


class FixedLogits(chapter.WindowModel):
    """A window model that ignores its input and always returns the same logits."""

    block_size = 2

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float))
        self.seen = []

    def forward(self, X):
        self.seen.append(X.clone())
        return self.logits.expand(len(X), -1)


VOCAB = chapter.Vocab(["abc"], reserved=[chapter.BOUNDARY])  # <unk> . a b c
TEXT_VOCAB = chapter.Vocab(["ab c"])  # <unk> and the characters, no boundary token


def _logits(vocab=VOCAB, **scores):
    out = torch.zeros(len(vocab))
    for token, score in scores.items():
        out[vocab[{"dot": chapter.BOUNDARY, "space": " "}.get(token, token)]] = score
    return out


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_names_end_at_the_boundary_or_max_length_and_never_hold_the_unknown_token():
    never_stops = FixedLogits(_logits(dot=-1e9))
    never_stops.logits[VOCAB.unk] = 10.0  # the unknown token is never emitted, however likely
    names = sample(never_stops, VOCAB, 20, max_length=7, generator=_gen())
    assert len(names) == 20 and all(len(n) == 7 for n in names)
    assert all(set(n) <= set("abc") for n in names)  # never the unknown token
    stops = FixedLogits(_logits(dot=1e9))
    assert sample(stops, VOCAB, 5) == [""] * 5


def test_names_start_after_a_boundary_token_padded_to_the_window():
    model = FixedLogits(_logits(dot=1e9))
    sample(model, VOCAB, 3, generator=_gen())
    first = model.seen[0]
    assert first.shape == (3, 2) and (first == VOCAB[chapter.BOUNDARY]).all()
    model.seen.clear()
    assert sample(model, VOCAB, 2, prompt="ab", generator=_gen()) == ["ab", "ab"]
    assert model.seen[0].tolist() == [[VOCAB["a"], VOCAB["b"]]] * 2  # the window's last two tokens


def test_sampling_real_window_models_ends_names_and_is_reproducible():
    torch.manual_seed(0)
    vocab = chapter.Vocab(["abcdef"], reserved=[chapter.BOUNDARY])
    for model in (chapter.MLPContext(len(vocab), 4, 4, 16), chapter.CausalCNN(len(vocab), 2, 4, 8)):
        names = sample(model, vocab, 50, max_length=12, generator=_gen())
        assert len(names) == 50 and all(len(n) <= 12 and chapter.BOUNDARY not in n for n in names)
        assert all(set(n) <= set("abcdef") for n in names)
        assert names == sample(model, vocab, 50, max_length=12, generator=_gen())
        assert names != sample(model, vocab, 50, max_length=12, generator=_gen(1))


def test_text_samples_have_exactly_max_length_new_tokens_after_the_prompt():
    model = FixedLogits(_logits(TEXT_VOCAB, a=1.0, b=1.0, c=1.0, space=1.0))
    texts = sample(model, TEXT_VOCAB, 4, prompt="ab", max_length=9, generator=_gen())
    assert all(len(t) == 11 and t.startswith("ab") and set(t) <= set("ab c") for t in texts)
    model.seen.clear()
    sample(model, TEXT_VOCAB, 1, prompt="a", max_length=1)
    assert model.seen[0].tolist() == [[TEXT_VOCAB[" "], TEXT_VOCAB["a"]]]  # padded on the left with spaces


def test_sample_leaves_the_model_in_its_mode():
    model = chapter.MLPContext(len(VOCAB), 2, 4, 8).train()
    sample(model, VOCAB, 2)
    assert model.training
    sample(model.eval(), VOCAB, 2)
    assert not model.training


def test_eval_mode_restores_the_mode_also_after_an_error():
    model = chapter.MLPContext(len(VOCAB), 2, 4, 8).train()
    with pytest.raises(RuntimeError, match="inside"):
        with chapter.eval_mode(model):
            assert not model.training and not torch.is_grad_enabled()
            raise RuntimeError("inside")
    assert model.training and torch.is_grad_enabled()
    with chapter.eval_mode(model.eval()):
        pass
    assert not model.training


class NotAWindowModel(nn.Module):
    """A recurrent model that happens to have a ``block_size`` (as a later chapter's Transformer
    has): ids (T, B) -> (logits, state). Only ``WindowModel``s are fed windows."""

    block_size = 3

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float))
        self.shapes = []

    def forward(self, X, state=None):
        self.shapes.append(tuple(X.shape))
        return self.logits.expand(*X.shape, -1), state


def test_a_block_size_alone_does_not_make_a_window_model():
    model = NotAWindowModel(_logits(a=1.0))
    assert sample(model, VOCAB, 2, max_length=3, generator=_gen()) and model.shapes[0] == (1, 2)  # (T, B)
    window = FixedLogits(_logits(a=1.0))
    sample(window, VOCAB, 2, max_length=3, generator=_gen())
    assert window.seen[0].shape == (2, window.block_size)  # (N, block_size) windows
    assert chapter.model_device(model) == torch.device("cpu")  # buffers count; no parameters needed


@given(st.one_of(st.floats(max_value=0.0), st.just(float("nan"))))
def test_sampling_rejects_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample(FixedLogits(_logits()), VOCAB, 3, temperature=temperature)


def test_sampling_errors_say_what_to_do():
    model = FixedLogits(_logits(TEXT_VOCAB))
    with pytest.raises(ValueError, match="prompt"):
        sample(model, TEXT_VOCAB, 2)  # a text model needs something to start from
    with pytest.raises(ValueError, match="outside the vocabulary.*'z'"):
        sample(model, TEXT_VOCAB, 2, prompt="az")
    with pytest.raises(ValueError, match="num and max_length"):
        sample(model, TEXT_VOCAB, 0, prompt="a")
    with pytest.raises(ValueError, match="num and max_length"):
        sample(model, TEXT_VOCAB, 1, prompt="a", max_length=0)


def test_temperature_limits():
    model = FixedLogits(_logits(a=2.0, b=1.0, c=0.0, dot=-1e9))
    cold = sample(model, VOCAB, 200, temperature=1e-3, max_length=3, generator=_gen())
    assert cold == ["aaa"] * 200  # T -> 0: always the most likely character
    hot = sample(model, VOCAB, 3000, temperature=1e4, max_length=1, generator=_gen())
    freq = Counter(hot)
    assert set(freq) == {"a", "b", "c"}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in freq.values())  # T -> inf: uniform


def test_sample_origins():
    samples = ["garcia", "lopez", "maria", "zzz"]
    origins = measures.sample_origins(samples, train_names=["garcia", "lopez"],
                                     real_names=["maria", "lopez"])
    assert origins == {"copied": 0.5, "real, unseen": 0.25, "invented": 0.25}
    with pytest.raises(ValueError, match="no samples"):
        measures.sample_origins([], ["a"], ["b"])
