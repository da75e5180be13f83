"""Tests of notebook 05: GRU/LSTM against torch.nn, the stacked RNN, the recall task, the table."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chapter
from chapter import GRU, LSTM, RNN, StackedRNN


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one thread is faster, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PAIRS = [(GRU, torch.nn.GRU), (LSTM, torch.nn.LSTM)]
SHAPES = [  # (T, B, D, H)
    (1, 1, 1, 1),
    (1, 3, 4, 5),
    (7, 1, 3, 1),
    (5, 4, 1, 6),
    (12, 2, 5, 8),
]
TOL = {torch.float32: dict(atol=2e-5, rtol=1e-4), torch.float64: dict(atol=1e-12, rtol=1e-10)}


def flat(state):
    return torch.cat([s.reshape(-1) for s in (state if isinstance(state, tuple) else (state,))])


def random_state(cls, B, H, dtype):
    h = torch.randn(B, H, dtype=dtype)
    return (h, torch.randn(B, H, dtype=dtype)) if cls is LSTM else h


def torch_state(state):
    return tuple(s[None] for s in state) if isinstance(state, tuple) else state[None]


@pytest.mark.parametrize("ours_cls,torch_cls", PAIRS, ids=["GRU", "LSTM"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_cell_matches_torch(ours_cls, torch_cls, shape, dtype, with_state):
    T, B, D, H = shape
    torch.manual_seed(T * 1000 + B * 100 + D * 10 + H)
    ref = torch_cls(D, H).to(dtype)
    ours = ours_cls.from_torch(ref)
    assert ours.W_x.dtype == dtype
    x = torch.randn(T, B, D, dtype=dtype)
    x_ref = x.clone().requires_grad_()
    x_ours = x.clone().requires_grad_()
    state = random_state(ours_cls, B, H, dtype) if with_state else None
    out_ref, state_ref = ref(x_ref, None if state is None else torch_state(state))
    out, new_state = ours(x_ours, state)
    assert out.shape == (T, B, H)
    torch.testing.assert_close(out, out_ref, **TOL[dtype])
    torch.testing.assert_close(flat(new_state), flat(state_ref), **TOL[dtype])
    # A loss that touches every output and the final state (both h and c for the LSTM).
    w_out = torch.randn_like(out)
    w_state = torch.randn_like(flat(new_state))
    ((out_ref * w_out).sum() + (flat(state_ref) * w_state).sum()).backward()
    ((out * w_out).sum() + (flat(new_state) * w_state).sum()).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **TOL[dtype])
    torch.testing.assert_close(ours.W_x.grad, ref.weight_ih_l0.grad.T, **TOL[dtype])
    torch.testing.assert_close(ours.W_h.grad, ref.weight_hh_l0.grad.T, **TOL[dtype])
    torch.testing.assert_close(ours.b_x.grad, ref.bias_ih_l0.grad, **TOL[dtype])
    torch.testing.assert_close(ours.b_h.grad, ref.bias_hh_l0.grad, **TOL[dtype])


@pytest.mark.parametrize("ours_cls,torch_cls", PAIRS, ids=["GRU", "LSTM"])
def test_gradient_of_initial_state_matches_torch(ours_cls, torch_cls):
    torch.manual_seed(0)
    ref = torch_cls(3, 4).double()
    ours = ours_cls.from_torch(ref)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    s1 = random_state(ours_cls, 2, 4, torch.float64)
    s1 = tuple(s.requires_grad_() for s in s1) if isinstance(s1, tuple) else s1.requires_grad_()
    s2 = tuple(s.detach().clone()[None].requires_grad_() for s in s1) if isinstance(s1, tuple) \
        else s1.detach().clone()[None].requires_grad_()
    ours(x, s1)[0].sum().backward()
    ref(x, s2)[0].sum().backward()
    torch.testing.assert_close(flat(tuple(s.grad for s in s1) if isinstance(s1, tuple) else s1.grad),
                               flat(tuple(s.grad for s in s2) if isinstance(s2, tuple) else s2.grad))


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 6), B=st.integers(1, 4), D=st.integers(1, 5), H=st.integers(1, 6),
       chunks=st.integers(1, 3), lstm=st.booleans())
def test_state_carries_across_calls(T, B, D, H, chunks, lstm):
    """Feeding a sequence in pieces, passing the state on, gives the outputs of one call."""
    torch.manual_seed(0)
    cell = (LSTM if lstm else GRU)(D, H).double()
    x = torch.randn(T * chunks, B, D, dtype=torch.float64)
    whole, final = cell(x)
    pieces, state = [], None
    for piece in x.split(T):
        out, state = cell(piece, state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces), whole)
    torch.testing.assert_close(flat(state), flat(final))
    torch.testing.assert_close(whole[-1], state[0] if lstm else state)


def test_lstm_forget_bias_and_parameter_count():
    lstm = LSTM(5, 3)
    assert sum(p.numel() for p in lstm.parameters()) == sum(p.numel() for p in torch.nn.LSTM(5, 3).parameters())
    # the forget-gate block of the summed bias starts around +1 (each bias is within +-1/sqrt(3))
    b = (lstm.b_x + lstm.b_h).detach()
    assert (b[3:6] > 1 - 2 / math.sqrt(3)).all() and (b[3:6] > b[:3].max() - 2 / math.sqrt(3)).all()
    assert LSTM(5, 3, forget_bias=0.0).b_x[3:6].abs().max() <= 1 / math.sqrt(3)


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_bad_input_gives_clear_errors(cls):
    cell = cls(4, 3)
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        cell(torch.randn(5, 4))  # missing batch dimension
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        cell(torch.randn(5, 2, 3))  # wrong feature size
    with pytest.raises(ValueError, match="state"):
        cell(torch.randn(5, 2, 4), (torch.zeros(2, 3), torch.zeros(2, 3)) if cls is GRU else torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        bad = torch.zeros(3, 3)
        cell(torch.randn(5, 2, 4), (bad, bad) if cls is LSTM else bad)


def test_from_torch_rejects_what_it_cannot_copy():
    with pytest.raises(TypeError):
        GRU.from_torch(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="single-layer"):
        LSTM.from_torch(torch.nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="unidirectional"):
        GRU.from_torch(torch.nn.GRU(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="batch_first"):
        GRU.from_torch(torch.nn.GRU(3, 4, batch_first=True))


# --- the stacked network ----------------------------------------------------------------------

@pytest.mark.parametrize("cell", [RNN, GRU, LSTM])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_stacked_shapes_and_state(cell, num_layers):
    torch.manual_seed(0)
    net = StackedRNN(5, 7, num_layers=num_layers, cell=cell)
    x = torch.randn(4, 3, 5)
    out, state = net(x)
    assert out.shape == (4, 3, 7)
    assert len(state) == num_layers
    for s in state:
        for t in (s if isinstance(s, tuple) else (s,)):
            assert t.shape == (3, 7)
    # the top layer's final state is the last output
    top = state[-1][0] if cell is LSTM else state[-1]
    torch.testing.assert_close(out[-1], top)
    # state is carried: two halves with the state passed on equal one call
    first, mid = net(x[:2])
    second, end = net(x[2:], mid)
    torch.testing.assert_close(torch.cat([first, second]), out)
    with pytest.raises(ValueError, match="layers"):
        net(x, state[:-1] if num_layers > 1 else [])


@pytest.mark.parametrize("ours,torch_cls", [(RNN, torch.nn.RNN), (GRU, torch.nn.GRU), (LSTM, torch.nn.LSTM)])
def test_stacked_matches_torch_multilayer(ours, torch_cls):
    torch.manual_seed(1)
    ref = torch_cls(4, 6, num_layers=3).double()
    net = StackedRNN.from_torch(ref, cell=ours)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    out_ref, state_ref = ref(x)
    out, state = net(x)
    torch.testing.assert_close(out, out_ref)
    if ours is LSTM:
        torch.testing.assert_close(torch.stack([h for h, c in state]), state_ref[0])
        torch.testing.assert_close(torch.stack([c for h, c in state]), state_ref[1])
    else:
        torch.testing.assert_close(torch.stack(state), state_ref)
    out.sum().backward()
    out_ref.sum().backward()
    torch.testing.assert_close(net.layers[2].W_h.grad if ours is not RNN else net.layers[2].W.grad,
                               ref.weight_hh_l2.grad.T)


def test_stacked_dropout_only_between_layers_and_only_in_training():
    torch.manual_seed(0)
    net = StackedRNN(3, 4, num_layers=2, cell=GRU, dropout=0.5)
    x = torch.randn(6, 2, 3)
    net.eval()
    torch.testing.assert_close(net(x)[0], net(x)[0])
    net.train()
    assert not torch.allclose(net(x)[0], net(x)[0])
    one = StackedRNN(3, 4, num_layers=1, cell=GRU, dropout=0.5).train()
    torch.testing.assert_close(one(x)[0], one(x)[0])  # a single layer has nothing to drop between
    with pytest.raises(ValueError):
        StackedRNN(3, 4, num_layers=0)
    with pytest.raises(ValueError):
        StackedRNN(3, 4, dropout=1.0)


def test_language_model_accepts_gated_cells():
    for cell in (GRU, LSTM, lambda d, h: StackedRNN(d, h, num_layers=2, cell=LSTM)):
        model = chapter.RNNLanguageModel(10, 8, cell=cell)
        X = torch.randint(10, (6, 3))
        logits, state = model(X)
        assert logits.shape == (6, 3, 10)
        logits2, _ = model(X[:1], state)  # the state can be fed back
        assert logits2.shape == (1, 3, 10)


# --- the recall task -----------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 40), B=st.integers(1, 16), S=st.integers(2, 9), N=st.integers(1, 9),
       seed=st.integers(0, 2**31 - 1))
def test_recall_answer_is_k_steps_back(k, B, S, N, seed):
    X, Y = chapter.recall_batch(k, B, num_symbols=S, num_distractors=N,
                                generator=torch.Generator().manual_seed(seed))
    V = chapter.recall_vocab_size(S, N)
    assert X.shape == Y.shape == (k + 1, B)
    assert X.dtype == Y.dtype == torch.long
    assert ((0 <= X) & (X < V)).all()
    query = V - 1
    assert (X[-1] == query).all() and (X[:-1] != query).all()
    # the only target is at the query step and it is the token k steps back
    assert (Y[:-1] == chapter.IGNORE_INDEX).all()
    assert torch.equal(Y[-1], X[-1 - k])
    assert ((0 <= Y[-1]) & (Y[-1] < S)).all()
    # nothing between the symbol and the query is a symbol: the answer is only k steps back
    assert (X[1:-1] >= S).all()


def test_recall_batch_is_reproducible_and_varied():
    a = chapter.recall_batch(10, 500, generator=torch.Generator().manual_seed(3))
    b = chapter.recall_batch(10, 500, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert len(set(a[1][-1].tolist())) == 8  # every symbol occurs
    with pytest.raises(ValueError):
        chapter.recall_batch(0, 4)


def test_recall_is_learnable_at_short_span_and_scored_correctly():
    model, steps = chapter.train_recall(GRU, k=2, hidden_size=16, batch_size=64, steps=300, lr=5e-2,
                                        solved_loss=0.05)
    assert steps < 300  # solved, and stopped early
    assert chapter.recall_accuracy(model, 2) > 0.9

    class Oracle(torch.nn.Module):  # reads the answer k steps back: accuracy 1
        def forward(self, X):
            return torch.nn.functional.one_hot(X[:1].expand_as(X), chapter.recall_vocab_size()).float(), None

    assert chapter.recall_accuracy(Oracle(), 7) == 1.0


def test_state_gradient_norms_matches_autograd_on_a_tiny_case():
    torch.manual_seed(0)
    model = chapter.RNNLanguageModel(chapter.recall_vocab_size(), 4, cell=RNN).double()
    X, Y = chapter.recall_batch(5, 3, generator=torch.Generator().manual_seed(0))
    norms = chapter.state_gradient_norms(model, X, Y)
    assert norms.shape == (6,)
    # lag 0 by hand: dL/dh_T = W_out^T (softmax - onehot) per sequence
    h_T = model(X)[1]
    p = torch.softmax(model.output(h_T), -1)
    p[torch.arange(3), Y[-1]] -= 1
    expected = (p @ model.output.weight).norm(dim=1).mean()
    torch.testing.assert_close(norms[0], expected)
    # plain-RNN gradients vanish with the lag at this initialisation
    assert norms[-1] < norms[0]


# --- the comparison table ----------------------------------------------------------------------

def test_comparison_table_from_whatever_records_exist(tmp_path):
    assert "make bench" in chapter.comparison_table([])
    records = [
        {"dataset": "surnames", "model": "GRU", "split": "test", "nll": 2.0, "perplexity": math.exp(2.0),
         "params": 123456, "train_seconds": 99.4, "seed": 0},
        {"dataset": "surnames", "model": "MLP", "split": "test", "nll": 2.3, "perplexity": math.exp(2.3),
         "params": 1000, "train_seconds": None, "seed": 0},
        {"dataset": "surnames", "model": "GRU", "split": "valid", "nll": 1.9},
        {"dataset": "time-machine", "model": "LSTM", "split": "test", "nll": 1.3},  # fields missing
    ]
    table = chapter.comparison_table(records)
    lines = table.splitlines()
    assert len(lines) == 2 + 3  # header, rule, three test rows
    assert "**2.000**" in lines[2] and "123,456" in lines[2] and "GRU" in lines[2]
    assert "MLP" in lines[3] and "–" in lines[3]
    assert "time-machine" in lines[4] and f"{math.exp(1.3):.2f}" in lines[4]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"quality": records, "speed": []}))
    assert chapter.load_results(path) == records
    assert chapter.load_results(tmp_path / "missing.json") == []
