"""The from-scratch RNN, the language model, clipping, generation and stateful batching (notebook 03)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chapter
from chapter import RNN, RNNLanguageModel, Vocab, clip_gradients, generate, sample_names


def _pair(T, B, D, H, dtype=torch.float64, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.RNN(D, H, bias=bias).to(dtype)
    return ref, RNN.from_torch(ref)


@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (1, 4, 3, 5), (9, 1, 2, 3), (6, 3, 7, 16), (20, 5, 4, 2)])
@pytest.mark.parametrize("with_state", [False, True])
def test_rnn_matches_torch(T, B, D, H, with_state):
    ref, rnn = _pair(T, B, D, H)
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    h0 = torch.randn(B, H, dtype=torch.float64) if with_state else None
    out, h = rnn(x, h0)
    out_ref, h_ref = ref(x_ref, None if h0 is None else h0[None])
    assert out.shape == (T, B, H) and h.shape == (B, H)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, h_ref[0], rtol=0, atol=1e-12)
    w = torch.randn(T, B, H, dtype=torch.float64)  # a loss that weighs every output differently
    ((out * w).sum() + h.square().sum()).backward()
    ((out_ref * w).sum() + h_ref[0].square().sum()).backward()
    torch.testing.assert_close(rnn.U.grad, ref.weight_ih_l0.grad.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(rnn.W.grad, ref.weight_hh_l0.grad.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(rnn.b.grad, ref.bias_ih_l0.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(rnn.b.grad, ref.bias_hh_l0.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-12)


def test_rnn_matches_torch_float32_and_without_bias():
    ref, rnn = _pair(5, 3, 4, 6, dtype=torch.float32, bias=False)
    assert rnn.U.dtype == torch.float32 and torch.all(rnn.b == 0)
    x = torch.randn(5, 3, 4)
    torch.testing.assert_close(rnn(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)


def test_rnn_parameters_and_bad_input():
    rnn = RNN(3, 4)
    assert {n: tuple(p.shape) for n, p in rnn.named_parameters()} == {"U": (3, 4), "W": (4, 4), "b": (4,)}
    with pytest.raises(ValueError, match="sequence first"):
        rnn(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        rnn(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="state"):
        rnn(torch.randn(2, 5, 3), torch.zeros(4, 4))
    with pytest.raises(TypeError):
        RNN.from_torch(torch.nn.GRU(3, 4))
    for bad in (torch.nn.RNN(3, 4, num_layers=2), torch.nn.RNN(3, 4, bidirectional=True),
                torch.nn.RNN(3, 4, nonlinearity="relu"), torch.nn.RNN(3, 4, batch_first=True)):
        with pytest.raises(ValueError, match="num_layers=1"):
            RNN.from_torch(bad)


def test_state_carries_over():
    torch.manual_seed(0)
    rnn = RNN(3, 5)
    x = torch.randn(8, 2, 3)
    out, h = rnn(x)
    out_a, h_a = rnn(x[:3])
    out_b, h_b = rnn(x[3:], h_a)
    torch.testing.assert_close(torch.cat([out_a, out_b]), out)
    torch.testing.assert_close(h_b, h)


@pytest.mark.parametrize("embedding_dim", [None, 4])
def test_language_model_shapes_and_causality(embedding_dim):
    torch.manual_seed(0)
    model = RNNLanguageModel(11, 6, embedding_dim=embedding_dim)
    X = torch.randint(11, (7, 3))
    logits, state = model(X)
    assert logits.shape == (7, 3, 11) and state.shape == (3, 6)
    X2 = X.clone()
    X2[4:] = (X2[4:] + 1) % 11  # change the future: the first 4 predictions must not move
    torch.testing.assert_close(model(X2)[0][:4], logits[:4])
    assert not torch.allclose(model(X2)[0][4:], logits[4:])
    with pytest.raises(ValueError, match="token ids"):
        model(torch.randn(7, 3))


def test_language_model_accepts_other_cells():
    class TupleStateCell(torch.nn.Module):  # an LSTM-like cell: state (h, c)
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.rnn = RNN(input_size, hidden_size)

        def forward(self, x, state=None):
            out, h = self.rnn(x, None if state is None else state[0])
            return out, (h, h.clone())

    model = RNNLanguageModel(5, 3, cell=TupleStateCell)
    logits, (h, c) = model(torch.randint(5, (4, 2)))
    logits2, _ = model(torch.randint(5, (4, 2)), (h, c))
    assert logits.shape == logits2.shape == (4, 2, 5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=12), st.floats(0.01, 10.0), st.integers(0, 2**16))
def test_clip_gradients_equals_torch(scales, max_norm, seed):
    torch.manual_seed(seed)
    ours = [torch.nn.Parameter(torch.randn(3, 2)) for _ in scales]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for p, q, s in zip(ours, theirs, scales):
        p.grad = torch.randn(3, 2) * s
        q.grad = p.grad.clone()
    ours[0].grad = None  # a parameter without gradient is skipped
    theirs[0].grad = None
    norm = clip_gradients(ours, max_norm)
    norm_ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    torch.testing.assert_close(norm, norm_ref, rtol=1e-5, atol=1e-6)
    for p, q in zip(ours[1:], theirs[1:]):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in ours[1:])) if len(ours) > 1 else torch.tensor(0.0)
    assert total <= max_norm * (1 + 1e-4)


def test_clip_gradients_bad_max_norm():
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradients([torch.nn.Parameter(torch.ones(1))], 0.0)


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    vocab = Vocab(["the time machine"])
    return RNNLanguageModel(len(vocab), 8), vocab


@pytest.mark.parametrize("num_chars", [0, 1, 25])
def test_generate_length_and_reproducible(tiny_lm, num_chars):
    model, vocab = tiny_lm
    a = generate(model, vocab, "the ", num_chars, generator=torch.Generator().manual_seed(1))
    b = generate(model, vocab, "the ", num_chars, generator=torch.Generator().manual_seed(1))
    assert a == b and a.startswith("the ") and len(a) == 4 + num_chars


def test_generate_temperature_and_prompt_errors(tiny_lm):
    model, vocab = tiny_lm
    for t in (0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            generate(model, vocab, "the", 5, temperature=t)
        with pytest.raises(ValueError, match="temperature"):
            sample_names(model, vocab, 3, temperature=t)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, vocab, "", 5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, vocab, "The", 5)


def test_generate_low_temperature_is_greedy(tiny_lm):
    model, vocab = tiny_lm
    samples = {generate(model, vocab, "th", 10, temperature=1e-4, generator=torch.Generator().manual_seed(s))
               for s in range(3)}
    assert len(samples) == 1


def test_sample_names_stop_at_boundary():
    torch.manual_seed(0)
    vocab = Vocab(["ab"], reserved=[chapter.BOUNDARY])
    model = RNNLanguageModel(len(vocab), 4)
    with torch.no_grad():  # make the boundary by far the most likely next token after one character
        model.output.bias.zero_()
        model.output.bias[vocab["a"]] = 5.0
        model.output.weight.zero_()
    names = sample_names(model, vocab, 6, generator=torch.Generator().manual_seed(0), max_length=7)
    assert len(names) == 6 and all(chapter.BOUNDARY not in n and len(n) <= 7 for n in names)
    with torch.no_grad():
        model.output.bias[vocab[chapter.BOUNDARY]] = 10.0
    names = sample_names(model, vocab, 5, generator=torch.Generator().manual_seed(0))
    assert names == [""] * 5
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert sample_names(model, vocab, 4, generator=g1) == sample_names(model, vocab, 4, generator=g2)


def test_configs_shrink_in_quick_mode():
    for config in (chapter.surname_lm_config, chapter.time_machine_lm_config):
        full, quick = config(quick=False), config(quick=True)
        assert quick["epochs"] < full["epochs"] and set(full) == set(quick)
