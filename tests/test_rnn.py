"""The from-scratch RNN (fast and step by step), the language model, clipping, sampling from a
recurrent model, and the chapter's RNN configurations (notebooks 03 and 04)."""

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chapter
import experiments
from chapter import RNN, RNNLanguageModel, Vocab, clip_gradients, sample
from experiments import measures

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)


def _pair(T, B, D, H, dtype=torch.float64, bias=True, seed=0, fast=True):
    torch.manual_seed(seed)
    ref = torch.nn.RNN(D, H, bias=bias).to(dtype)
    rnn = RNN.from_torch(ref)
    rnn.fast = fast
    return ref, rnn


SHAPES = [(1, 1, 1, 1), (1, 4, 3, 5), (9, 1, 2, 3), (6, 3, 7, 16), (20, 5, 4, 2)]  # (T, B, D, H)


@pytest.mark.parametrize("T,B,D,H", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
def test_rnn_matches_torch(T, B, D, H, with_state, fast):
    ref, rnn = _pair(T, B, D, H, fast=fast)
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


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
def test_rnn_parameters_and_bad_input(fast):
    rnn = RNN(3, 4, fast=fast)
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


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
def test_state_carries_over(fast):
    torch.manual_seed(0)
    rnn = RNN(3, 5, fast=fast)
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




# ---------------------------------------------------------------------------------------------
# The fast RNN (_rnn_scan, notebook 04's backward) against the step-by-step loop
# ---------------------------------------------------------------------------------------------


def _twins(D, H, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    loop = RNN(D, H, fast=False).to(dtype)
    fast = RNN(D, H, fast=True).to(dtype)
    fast.load_state_dict(loop.state_dict())
    return loop, fast


def _run_and_grads(cell, x, h0, w_out, w_final):
    outputs, final = cell(x, h0)
    loss = (outputs * w_out).sum() + (final * w_final).sum()
    wrt = [x, *cell.parameters()] + ([h0] if h0 is not None else [])
    return outputs, final, torch.autograd.grad(loss, wrt)


@pytest.mark.parametrize("T,B,D,H", SHAPES + [(200, 3, 2, 4)])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_fast_rnn_equals_the_loop_float64(T, B, D, H, with_state):
    loop, fast = _twins(D, H)
    with torch.no_grad():  # larger weights than the default init: exercise tanh away from 0
        for cell in (loop, fast):
            cell.W.mul_(2.0)
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True) if with_state else None
    w_out, w_final = torch.randn(T, B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    ours, ref = _run_and_grads(fast, x, h0, w_out, w_final), _run_and_grads(loop, x, h0, w_out, w_final)
    tol = dict(rtol=0, atol=1e-12)
    torch.testing.assert_close(ours[0], ref[0], **tol)  # outputs
    torch.testing.assert_close(ours[1], ref[1], **tol)  # final state
    assert len(ours[2]) == len(ref[2]) == 4 + with_state  # x, U, W, b (and h0)
    for g, g_ref in zip(ours[2], ref[2]):
        torch.testing.assert_close(g, g_ref, **tol)


def test_fast_rnn_without_grad_equals_with_grad():
    _, fast = _twins(3, 5, dtype=torch.float32)
    x = torch.randn(7, 2, 3)
    outputs, final = fast(x)
    with torch.no_grad():
        outputs_ng, final_ng = fast(x)
    assert outputs.requires_grad and not outputs_ng.requires_grad
    assert torch.equal(outputs, outputs_ng) and torch.equal(final, final_ng)


def test_fast_rnn_language_model_gradients_equal_the_loops():
    torch.manual_seed(0)
    fast = RNNLanguageModel(9, 6, embedding_dim=4).double()
    loop = RNNLanguageModel(9, 6, embedding_dim=4, cell=lambda d, h: RNN(d, h, fast=False)).double()
    loop.load_state_dict(fast.state_dict())
    X, Y = torch.randint(9, (11, 3)), torch.randint(9, (11, 3))
    for model in (fast, loop):
        chapter.next_token_loss(model(X)[0], Y).backward()
    for (name, p), q in zip(fast.named_parameters(), loop.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-12, msg=name)


# ---------------------------------------------------------------------------------------------
# Sampling from a recurrent model (the one sampler of notebook 02)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    vocab = Vocab(["the time machine"])
    return RNNLanguageModel(len(vocab), 8), vocab


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("max_length", [1, 25])
def test_text_samples_have_the_length_asked_for_and_are_reproducible(tiny_lm, max_length):
    model, vocab = tiny_lm
    a = sample(model, vocab, 3, prompt="the ", max_length=max_length, generator=_gen())
    b = sample(model, vocab, 3, prompt="the ", max_length=max_length, generator=_gen())
    assert a == b and len(a) == 3
    assert all(s.startswith("the ") and len(s) == 4 + max_length and set(s) <= set(vocab.itos[1:]) for s in a)


def test_sampling_errors(tiny_lm):
    model, vocab = tiny_lm
    for t in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            sample(model, vocab, 1, prompt="the", temperature=t)
    with pytest.raises(ValueError, match="prompt"):
        sample(model, vocab, 1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sample(model, vocab, 1, prompt="The")
    with pytest.raises(ValueError, match="max_length"):
        sample(model, vocab, 1, prompt="the", max_length=0)


def test_low_temperature_is_greedy(tiny_lm):
    model, vocab = tiny_lm
    samples = {tuple(sample(model, vocab, 2, prompt="th", max_length=10, temperature=1e-4, generator=_gen(s)))
               for s in range(3)}
    assert len(samples) == 1 and len(set(next(iter(samples)))) == 1


def test_names_from_a_recurrent_model_stop_at_the_boundary():
    torch.manual_seed(0)
    vocab = Vocab(["ab"], reserved=[chapter.BOUNDARY])
    model = RNNLanguageModel(len(vocab), 4)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
        model.output.bias[vocab.unk] = 50.0  # never emitted, however likely
    names = sample(model, vocab, 40, max_length=7, generator=_gen(0))
    assert len(names) == 40 and all(chapter.BOUNDARY not in n and len(n) <= 7 for n in names)
    assert all(set(n) <= {"a", "b"} for n in names) and any(len(n) < 7 for n in names)
    with torch.no_grad():
        model.output.bias[vocab[chapter.BOUNDARY]] = 100.0
    assert sample(model, vocab, 5, generator=_gen(0)) == [""] * 5
    assert sample(model, vocab, 2, prompt="ba", generator=_gen(0)) == ["ba", "ba"]
    assert sample(model, vocab, 4, generator=_gen(3)) == sample(model, vocab, 4, generator=_gen(3))


class Rerun(chapter.WindowModel):
    """A recurrent model seen as a window model: at every step it reads the whole context again
    from a zero state (the sampler gives it the context; ``first`` is its length at the first call)."""

    block_size = 64

    def __init__(self, lm, first):
        super().__init__()
        self.lm, self.first, self.calls = lm, first, 0

    def forward(self, X):  # (num, block_size) windows, padded on the left
        real = self.first + self.calls
        self.calls += 1
        return self.lm(X[:, -real:].T)[0][-1]  # (num, V): the logits after the real context


@pytest.mark.parametrize("cell", [RNN, chapter.GRU, chapter.LSTM])
@pytest.mark.parametrize("names", [True, False], ids=["names", "text"])
def test_carrying_the_state_equals_rereading_the_context(cell, names):
    """The sampler feeds a recurrent model only the new token and its state; that is the same as
    reading the whole context again, so both draw the same samples."""
    torch.manual_seed(0)
    vocab = Vocab(["abcde "], reserved=[chapter.BOUNDARY] if names else [])
    lm = RNNLanguageModel(len(vocab), 12, cell=cell, embedding_dim=5).double()
    prompt = "ab" if not names else ""
    first = len(prompt) + names  # the boundary token, then the prompt
    a = sample(lm, vocab, 16, prompt=prompt, max_length=20, generator=_gen(5))
    b = sample(Rerun(lm, first), vocab, 16, prompt=prompt, max_length=20, generator=_gen(5))
    assert a == b
    assert len(set(a)) > 1


def test_sample_restores_the_training_mode_and_works_with_dropout():
    torch.manual_seed(0)
    vocab = Vocab(["abc"], reserved=[chapter.BOUNDARY])
    model = RNNLanguageModel(len(vocab), 8, dropout=0.5).train()
    a = sample(model, vocab, 8, generator=_gen())
    assert model.training
    assert a == sample(model, vocab, 8, generator=_gen())  # dropout is off while sampling


# ---------------------------------------------------------------------------------------------
# The chapter's RNN configurations, and the measurements of notebook 03
# ---------------------------------------------------------------------------------------------


def _stub_task(num_tokens):
    return experiments.Task(None, lambda: [], [], {}, num_tokens=num_tokens)


@pytest.mark.parametrize("dataset", experiments.DATASETS)
def test_rnn_configs_build_one_hot_rnn_language_models(dataset):
    config = experiments.RNN_CONFIGS[dataset]
    assert set(experiments.RNN_CONFIGS) == set(experiments.DATASETS)
    assert (config.dataset, config.model, config.cell, config.embedding_dim) == (dataset, "rnn", "rnn", None)
    assert experiments.CELLS["rnn"] is RNN
    model = experiments.MODELS["rnn"](config, _stub_task(28))
    assert isinstance(model, RNNLanguageModel) and type(model.cell) is RNN and not model.cell.fast
    assert model.embedding is None and model.cell.input_size == 28  # one-hot: X_t U is the textbook's
    assert model.cell.hidden_size == config.hidden_size and model.dropout.p == config.dropout
    assert model.output.out_features == 28
    quick = config.quick()
    assert quick.epochs == 1 < config.epochs and quick.limit == experiments.QUICK_LIMIT


def test_rnn_model_refuses_an_unknown_cell():
    with pytest.raises(ValueError, match="unknown cell 'tcn'"):
        experiments.rnn_model(dataclasses.replace(experiments.RNN_CONFIGS["surnames"], cell="tcn"), _stub_task(5))


class Memoryless(torch.nn.Module):
    """A recurrent language model whose prediction depends on the current token only."""

    def __init__(self, vocab_size):
        super().__init__()
        self.table = torch.nn.Embedding(vocab_size, vocab_size)

    def forward(self, X, state=None):
        return self.table(X), state


class ShiftRegister(torch.nn.Module):
    """A recurrent language model whose memory is exactly its last `span` tokens, by construction: the
    state holds them (id + 1, 0 for none yet), and the logits are a sum of one table per lag."""

    def __init__(self, vocab_size, span):
        super().__init__()
        self.span = span
        self.tables = torch.nn.Parameter(3 * torch.randn(span, vocab_size + 1, vocab_size, dtype=torch.float64))

    def forward(self, X, state=None):
        state = X.new_zeros(X.shape[1], self.span) if state is None else state  # (B, span)
        logits = []
        for x_t in X.unbind(0):
            state = torch.cat([x_t[:, None] + 1, state[:, :-1]], dim=1)  # the newest token first
            logits.append(sum(self.tables[i][state[:, i]] for i in range(self.span)))  # (B, V)
        return torch.stack(logits), state


def test_a_model_with_a_known_memory_has_no_excess_loss_beyond_it():
    torch.manual_seed(0)
    ids = torch.randint(5, (700,))
    for span in (2, 5, 9):
        reset, stream = measures.loss_by_offset(ShiftRegister(5, span), ids, block=32)
        excess = reset - stream
        assert excess.shape == (32,)
        assert excess[span - 1:].abs().max() < 1e-12  # from offset `span` on it has all it uses
        assert excess[span - 2].abs() > 0.01  # one character fewer changes its loss
        assert measures.memory_span(excess) == span - 1  # characters of history; 1, 4, 8 end a range
    reset, stream = measures.loss_by_offset(Memoryless(5), ids, block=32)
    assert (reset - stream).abs().max() < 1e-6 and measures.memory_span(reset - stream) == 0


def test_loss_by_offset_reads_blocks_from_a_zero_state_and_the_stream_whole():
    torch.manual_seed(0)
    model = RNNLanguageModel(5, 6).double()
    ids = torch.randint(5, (70,))
    reset, stream = measures.loss_by_offset(model, ids, block=16)
    n = 64  # four blocks; the first only warms the stream up
    X, Y = ids[:n].view(4, 16).T[:, 1:], ids[1:n + 1].view(4, 16).T[:, 1:]
    assert reset.mean().item() == pytest.approx(chapter.evaluate(model, [(X, Y)]), abs=1e-12)
    assert reset[0].item() == pytest.approx(chapter.evaluate(model, [(X[:1], Y[:1])]), abs=1e-12)
    with torch.no_grad():
        losses = chapter.next_token_loss(model(ids[:n, None])[0], ids[1:n + 1, None], reduction="none")
    assert stream.mean().item() == pytest.approx(losses[16:].mean().item(), abs=1e-12)
    assert model.training  # left as it was found


def test_offset_ranges_double():
    ranges = measures.offset_ranges(torch.arange(1.0, 21.0))  # the value at offset j is j
    assert list(ranges) == ["1", "2", "3-4", "5-8", "9-16", "17-20"]
    assert ranges["5-8"] == 6.5 and ranges["17-20"] == 18.5


def _position_nll_by_hand(model, names, vocab, positions):
    pad = vocab[chapter.BOUNDARY]
    total, count = torch.zeros(positions), torch.zeros(positions)
    for name in names:
        ids = [pad] + vocab.encode(name) + [pad]
        for t in range(min(len(name) + 1, positions)):
            context = torch.tensor(ids[:t + 1])
            if hasattr(model, "block_size"):
                window = torch.cat([torch.full((model.block_size,), pad), context])[-model.block_size:]
                logits = model(window[None])[0]
            else:
                logits = model(context[:, None])[0][-1, 0]
            total[t] += torch.nn.functional.cross_entropy(logits, torch.tensor(ids[t + 1]))
            count[t] += 1
    return total / count.clamp(min=1)


def test_position_nll_equals_a_loop_over_names():
    torch.manual_seed(0)
    names = ["ab", "abcab", "c", "bca", "cabbac"]
    vocab = Vocab(names, reserved=[chapter.BOUNDARY])
    for model in (RNNLanguageModel(len(vocab), 5, embedding_dim=3).eval(),
                  chapter.MLPContext(len(vocab), 3, 4, 8).eval()):
        got = measures.position_nll(model, names, vocab, positions=5)
        torch.testing.assert_close(got, _position_nll_by_hand(model, names, vocab, 5), rtol=1e-5, atol=1e-6)


def test_position_nll_of_an_ngram_model():
    names = ["ab", "abcab", "c"]
    vocab = Vocab(names, reserved=[chapter.BOUNDARY])
    model = chapter.NGramModel(len(vocab), 2).count(*chapter.name_windows(names, vocab, 1))
    got = measures.position_nll(model, names, vocab, positions=4)
    torch.testing.assert_close(got, _position_nll_by_hand(model, names, vocab, 4), rtol=1e-5, atol=1e-6)
