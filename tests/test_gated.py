"""Notebook 05 (and the fast scans of 04-05): GRU/LSTM, fast and step by step, against torch.nn and
each other; gradcheck of the hand-derived backward passes; gates; the gated
configurations; the recall task and its measurements."""

import dataclasses
import math

import pytest
import torch
from conftest import untrained_nll
from hypothesis import given, settings
from hypothesis import strategies as st

import chapter
import experiments
from chapter import GRU, LSTM, RNN
from experiments import measures

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)


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
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
def test_cell_matches_torch(ours_cls, torch_cls, shape, dtype, with_state, fast):
    T, B, D, H = shape
    torch.manual_seed(T * 1000 + B * 100 + D * 10 + H)
    ref = torch_cls(D, H).to(dtype)
    ours = ours_cls.from_torch(ref)
    assert not ours.fast  # the default: the loop under autograd
    ours.fast = fast
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
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
def test_gradient_of_initial_state_matches_torch(ours_cls, torch_cls, fast):
    torch.manual_seed(0)
    ref = torch_cls(3, 4).double()
    ours = ours_cls.from_torch(ref)
    ours.fast = fast
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
       chunks=st.integers(1, 3), lstm=st.booleans(), fast=st.booleans())
def test_state_carries_across_calls(T, B, D, H, chunks, lstm, fast):
    """Feeding a sequence in pieces, passing the state on, gives the outputs of one call."""
    torch.manual_seed(0)
    cell = (LSTM if lstm else GRU)(D, H, fast=fast).double()
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
    # the default adds exactly 1 to the forget-gate block (i, f, g, o) of b_x and nothing elsewhere,
    # against a twin drawn from the same seed without it
    torch.manual_seed(0)
    default = LSTM(5, 3)
    torch.manual_seed(0)
    plain = LSTM(5, 3, forget_bias=0.0)
    shift = (default.b_x - plain.b_x).detach()
    torch.testing.assert_close(shift, torch.tensor([0.0] * 3 + [1.0] * 3 + [0.0] * 6), rtol=0, atol=1e-6)
    assert torch.equal(default.b_h, plain.b_h) and torch.equal(default.W_h, plain.W_h)
    assert plain.b_x.abs().max() <= 1 / math.sqrt(3)  # torch.nn.LSTM's initialisation, U(-1/sqrt(H), 1/sqrt(H))


@pytest.mark.parametrize("cls", [GRU, LSTM])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
def test_bad_input_gives_clear_errors(cls, fast):
    cell = cls(4, 3, fast=fast)
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


# --- the fast cells (_gru_scan, _lstm_scan) against the step-by-step loop ------------------------

CELL_CLASSES = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}
SCANS = {"RNN": chapter._rnn_scan, "GRU": chapter._gru_scan, "LSTM": chapter._lstm_scan}


def twins(name, D, H, dtype=torch.float64, seed=0):
    """The step-by-step cell and the fast one, with the same (random) weights."""
    torch.manual_seed(seed)
    loop = CELL_CLASSES[name](D, H, fast=False).to(dtype)
    fast = CELL_CLASSES[name](D, H, fast=True).to(dtype)
    fast.load_state_dict(loop.state_dict())
    return loop, fast


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run_with_grads(cell, x, state, w_out, w_final):
    """Outputs, final state(s), and the gradients of a random linear function of both with respect
    to x, every parameter and the initial state(s)."""
    outputs, final = cell(x, state)
    loss = (outputs * w_out).sum() + sum((f * w).sum() for f, w in zip(as_tuple(final), w_final))
    wrt = [x, *cell.parameters()] + ([] if state is None else list(as_tuple(state)))
    return outputs, as_tuple(final), torch.autograd.grad(loss, wrt)


@pytest.mark.parametrize("shape", SHAPES + [(200, 3, 2, 4)], ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_fast_cell_equals_the_loop_float64(name, shape, with_state):
    T, B, D, H = shape
    loop, fast = twins(name, D, H)
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    state = None
    if with_state:
        state = random_state(CELL_CLASSES[name], B, H, torch.float64)
        state = tuple(s.requires_grad_() for s in state) if name == "LSTM" else state.requires_grad_()
    w_out = torch.randn(T, B, H, dtype=torch.float64)
    w_final = [torch.randn(B, H, dtype=torch.float64) for _ in range(2 if name == "LSTM" else 1)]
    ours, ref = run_with_grads(fast, x, state, w_out, w_final), run_with_grads(loop, x, state, w_out, w_final)
    tol = dict(atol=1e-12, rtol=0)
    torch.testing.assert_close(ours[0], ref[0], **tol)  # outputs
    for a, b in zip(ours[1], ref[1], strict=True):     # final state(s)
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(ours[2], ref[2], strict=True):     # x, parameters, initial state(s)
        torch.testing.assert_close(a, b, **tol)


def scan_inputs(name, T, B, H, requires_grad=(True, True, True, True), seed=0):
    """Random float64 inputs of one scan, each requiring grad or not."""
    torch.manual_seed(seed)
    shapes = {"RNN": [(T, B, H), (B, H), (H, H)],
              "GRU": [(T, B, 3 * H), (B, H), (H, 3 * H), (3 * H,)],
              "LSTM": [(T, B, 4 * H), (B, H), (B, H), (H, 4 * H)]}[name]
    return [torch.randn(*s, dtype=torch.float64).requires_grad_(rg) for s, rg in zip(shapes, requires_grad)]


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 4), (5, 1, 2)], ids=lambda s: "T{}B{}H{}".format(*s))
@pytest.mark.parametrize("name", list(SCANS))
def test_scan_gradcheck(name, shape):
    """The hand-derived backward of each scan against finite differences."""
    assert torch.autograd.gradcheck(SCANS[name], scan_inputs(name, *shape))


@pytest.mark.parametrize("name", list(SCANS))
def test_scan_gradcheck_when_only_the_final_state_is_used(name):
    """Autograd passes no gradient (zeros) for the unused outputs."""
    assert torch.autograd.gradcheck(lambda *a: SCANS[name](*a)[-1], scan_inputs(name, 4, 2, 3))


@pytest.mark.parametrize("name", list(SCANS))
def test_scan_gradients_of_some_inputs_only(name):
    """Inputs that need no gradient get none; the others are unchanged by the choice."""
    full = scan_inputs(name, 4, 3, 5)
    for mask in [(True, False, False, False), (False, False, False, True), (False, True, True, False)]:
        inputs = scan_inputs(name, 4, 3, 5, requires_grad=mask)
        wanted = [a for a, m in zip(inputs, mask) if m]
        if not wanted:  # the RNN's scan has three inputs only
            continue
        grads = torch.autograd.grad(SCANS[name](*inputs)[0].square().sum(), wanted)
        expected = torch.autograd.grad(SCANS[name](*full)[0].square().sum(), [a for a, m in zip(full, mask) if m])
        for g, e in zip(grads, expected, strict=True):
            torch.testing.assert_close(g, e, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(SCANS))
def test_scan_backward_twice_with_retain_graph(name):
    """Backward does not consume what forward saved."""
    inputs = scan_inputs(name, 5, 2, 3)
    loss = SCANS[name](*inputs)[0].sum()
    first = torch.autograd.grad(loss, inputs, retain_graph=True)
    second = torch.autograd.grad(loss, inputs)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("name", list(CELL_CLASSES))
def test_fast_forward_without_grad_equals_with_grad(name):
    _, fast = twins(name, 3, 7, dtype=torch.float32)
    x = torch.randn(9, 4, 3)
    outputs, final = fast(x)
    with torch.no_grad():
        outputs_ng, final_ng = fast(x)
    assert outputs.requires_grad and not outputs_ng.requires_grad
    assert torch.equal(outputs_ng, outputs)
    assert all(torch.equal(a, b) for a, b in zip(as_tuple(final_ng), as_tuple(final), strict=True))


@pytest.mark.parametrize("name", list(CELL_CLASSES))
def test_fast_carried_state_passes_gradient_back_like_the_loop(name):
    loop, fast = twins(name, 3, 4)
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    grads = []
    for cell in (loop, fast):
        _, state = cell(x[:3])
        second, _ = cell(x[3:], state)
        grads.append(torch.autograd.grad(second.square().sum(), list(cell.parameters())))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(CELL_CLASSES))
def test_fast_outputs_are_protected_from_inplace_changes(name):
    """Outputs share memory with what backward needs: changing them in place is an error, not a wrong gradient."""
    _, fast = twins(name, 3, 4)
    outputs, _ = fast(torch.randn(5, 2, 3, dtype=torch.float64))
    outputs.mul_(2)
    with pytest.raises(RuntimeError):
        outputs.sum().backward()


# --- one step, and the gates -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_step_by_step_equals_forward(name):
    torch.manual_seed(0)
    cell = CELL_CLASSES[name](3, 5).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    k = 4 if name == "LSTM" else 3
    gx = cell.input_gates(x)
    assert gx.shape == (6, 2, k * 5)
    h = torch.zeros(2, 5, dtype=torch.float64)
    state = (h, h.clone()) if name == "LSTM" else h
    outputs = []
    for gx_t in gx.unbind(0):
        state, gates = cell.step(gx_t, state)
        assert set(gates) == ({"i", "f", "g", "o"} if name == "LSTM" else {"r", "z", "n"})
        assert all(g.shape == (2, 5) for g in gates.values())
        outputs.append(state[0] if name == "LSTM" else state)
    expected, final = cell(x)
    torch.testing.assert_close(torch.stack(outputs), expected, atol=1e-12, rtol=0)
    for a, b in zip(as_tuple(state), as_tuple(final), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("embedding_dim", [None, 4])
@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_gate_trace_gives_gates_that_rebuild_the_states(name, embedding_dim):
    torch.manual_seed(0)
    model = chapter.RNNLanguageModel(7, 5, cell=CELL_CLASSES[name], embedding_dim=embedding_dim).double()
    X = torch.randint(7, (9, 3))
    trace = measures.gate_trace(model, X)
    assert all(g.shape == (9, 3, 5) for g in trace.values())
    x = model.embedding(X) if embedding_dim else torch.nn.functional.one_hot(X, 7).double()
    outputs, _ = model.cell(x)
    h = torch.zeros(3, 5, dtype=torch.float64)
    c, states = torch.zeros_like(h), []
    for t in range(9):
        if name == "LSTM":
            assert set(trace) == {"i", "f", "g", "o"}
            c = trace["f"][t] * c + trace["i"][t] * trace["g"][t]
            h = trace["o"][t] * torch.tanh(c)
        else:
            assert set(trace) == {"r", "z", "n"}
            h = (1 - trace["z"][t]) * trace["n"][t] + trace["z"][t] * h
        states.append(h)
    torch.testing.assert_close(torch.stack(states), outputs, atol=1e-12, rtol=0)
    for name_, g in trace.items():
        lo = -1 if name_ in ("g", "n") else 0  # tanh, else sigmoid
        assert (g >= lo).all() and (g <= 1).all()


@pytest.mark.parametrize("cls", [GRU, LSTM])
def test_a_step_without_a_state_starts_from_zeros(cls):
    torch.manual_seed(0)
    cell = cls(3, 4).double()
    gx = cell.input_gates(torch.randn(1, 2, 3, dtype=torch.float64))[0]  # (B, kH)
    zeros = torch.zeros(2, 4, dtype=torch.float64)
    (state, gates), (state0, gates0) = cell.step(gx, None), cell.step(gx, (zeros, zeros) if cls is LSTM else zeros)
    for a, b in zip([*(state if cls is LSTM else [state]), *gates.values()],
                    [*(state0 if cls is LSTM else [state0]), *gates0.values()]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gate_trace_needs_a_gated_cell():
    with pytest.raises(TypeError, match="gated cell"):
        measures.gate_trace(chapter.RNNLanguageModel(5, 3), torch.randint(5, (4, 2)))


def test_language_model_accepts_gated_cells():
    for cell in (GRU, LSTM):
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
    V = measures.recall_vocab_size(S, N)
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


def test_state_gradient_norms_matches_autograd_on_a_tiny_case():
    torch.manual_seed(0)
    model = chapter.RNNLanguageModel(measures.recall_vocab_size(), 4, cell=RNN).double()
    X, Y = chapter.recall_batch(5, 3, generator=torch.Generator().manual_seed(0))
    norms = measures.state_gradient_norms(model, X, Y)
    assert set(norms) == {"h"}  # an RNN's state has no cell
    norms = norms["h"]
    assert norms.shape == (6,)
    # lag 0 by hand: dL/dh_T = W_out^T (softmax - onehot) per sequence
    h_T = model(X)[1]
    p = torch.softmax(model.output(h_T), -1)
    p[torch.arange(3), Y[-1]] -= 1
    expected = (p @ model.output.weight).norm(dim=1).mean()
    torch.testing.assert_close(norms[0], expected)
    # plain-RNN gradients vanish with the lag at this initialisation
    assert norms[-1] < norms[0]


def test_state_gradient_norms_of_an_lstm_include_the_cell_state():
    torch.manual_seed(0)
    model = chapter.RNNLanguageModel(measures.recall_vocab_size(), 4, cell=LSTM).double()
    X, Y = chapter.recall_batch(5, 3, generator=torch.Generator().manual_seed(0))
    norms = measures.state_gradient_norms(model, X, Y)
    assert set(norms) == {"h", "c"} and norms["h"].shape == norms["c"].shape == (6,)
    # lag 0 by hand: dL/dc_T = dL/dh_T * o_T * (1 - tanh(c_T)^2), since h_T = o_T * tanh(c_T)
    h_T, c_T = model(X)[1]
    p = torch.softmax(model.output(h_T), -1)
    p[torch.arange(3), Y[-1]] -= 1
    dh = p @ model.output.weight
    o_T = measures.gate_trace(model, X)["o"][-1]
    torch.testing.assert_close(norms["h"][0], dh.norm(dim=1).mean())
    torch.testing.assert_close(norms["c"][0], (dh * o_T * (1 - torch.tanh(c_T) ** 2)).norm(dim=1).mean())
    # one step back, by autograd from c_{T-1}: through c_T, and through h_{T-1} = o_{T-1} * tanh(c_{T-1})
    x = torch.nn.functional.one_hot(X, model.vocab_size).double()
    _, (_, c_prev) = model.cell(x[:-1])
    c_prev = c_prev.detach().requires_grad_()
    h_prev = measures.gate_trace(model, X)["o"][-2] * torch.tanh(c_prev)
    _, (h, _) = model.cell(x[-1:], (h_prev, c_prev))
    loss = chapter.next_token_loss(model.output(h)[None], Y[-1:], reduction="sum")
    (grad,) = torch.autograd.grad(loss, c_prev)
    torch.testing.assert_close(norms["c"][1], grad.norm(dim=1).mean())


def test_recall_task_trains_through_the_driver():
    config = dataclasses.replace(experiments.RECALL_CONFIG, cell="gru", span=3, epochs=1)
    run = experiments.train(config, cache=False, progress=False)
    assert run.vocab is None and set(run.nll) == {"valid", "test"}
    untrained = untrained_nll(config)
    assert all(0 < run.nll[split] < untrained[split] for split in run.nll), (run.nll, untrained)
    assert isinstance(run.model.cell, GRU) and run.model.embedding is None  # one-hot, as RECALL_CONFIG says
    assert run.history.steps == experiments.RECALL_BATCHES
    # the accuracy is that of the model's answer at the query on the task's test batch (seed 2)
    X, Y = chapter.recall_batch(3, 2000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = (run.model.eval()(X)[0][-1].argmax(-1) == Y[-1]).float().mean().item()
    assert measures.recall_accuracy(run.model, 3) == expected


def test_recall_is_learnable_at_a_short_span_and_stop_below_ends_training():
    config = dataclasses.replace(experiments.RECALL_CONFIG, cell="gru", span=2, hidden_size=16, lr=3e-2, epochs=20,
                                 stop_below=0.05)
    run = experiments.train(config, cache=False, progress=False)
    assert run.history.valid_loss[-1] < 0.05 and len(run.history.valid_loss) < 20  # solved: stopped early
    assert measures.recall_accuracy(run.model, 2) > 0.9


def test_recall_task_batches():
    config = dataclasses.replace(experiments.RECALL_CONFIG, span=6, batch_size=32)
    task = experiments.TASKS["recall"](config)
    batches = list(task.train())
    assert len(batches) == experiments.RECALL_BATCHES
    assert all(X.shape == Y.shape == (7, 32) for X, Y in batches)
    assert not torch.equal(batches[0][0], list(task.train())[0][0])  # fresh batches every epoch
    (Xv, Yv), = task.valid
    assert Xv.shape == (7, 1000) and task.num_tokens == measures.recall_vocab_size()
    assert task.held_out["valid"][0] is task.valid
    assert task.held_out["test"][0][0][0].shape == (7, 2000)


def test_recall_accuracy_of_an_oracle_is_one():
    class Oracle(torch.nn.Module):  # reads the answer k steps back: accuracy 1
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, X):
            return torch.nn.functional.one_hot(X[:1].expand_as(X), measures.recall_vocab_size()).float(), None

    assert measures.recall_accuracy(Oracle(), 7) == 1.0


# --- the gated language models' configurations -----------------------------------------------

def test_cells_registry():
    cells = {name: experiments.CELLS[name](3, 4) for name in ("rnn", "gru", "lstm", "lstm, forget bias 3")}
    assert [type(cell) for cell in cells.values()] == [RNN, GRU, LSTM, LSTM]
    assert [cell.fast for cell in cells.values()] == [False, True, True, True]  # the gated cells' fast path
    assert (cells["lstm, forget bias 3"].b_x[4:8] > 2).all()
    assert set(experiments.RECALL_CELLS.values()) <= set(experiments.CELLS)


@pytest.mark.parametrize("key", list(experiments.GATED_CONFIGS), ids=" ".join)
def test_gated_configs(key):
    dataset, label = key
    config = experiments.GATED_CONFIGS[key]
    base = experiments.RNN_CONFIGS[dataset]
    assert config.dataset == dataset and config.model == "rnn" and config.cell in experiments.CELLS
    assert config.label == label.split(",")[0]
    assert (config.lr, config.dropout) == experiments.CHOSEN[dataset, config.cell, config.hidden_size]
    assert config.lr in experiments.LR_GRID[dataset] and config.dropout in experiments.DROPOUT_GRID[dataset]
    # only the cell, its size, its learning rate and its dropout differ from the RNN's configuration
    assert dataclasses.replace(config, cell="rnn", hidden_size=base.hidden_size, lr=base.lr,
                               dropout=base.dropout) == base
    # notebook 03's RNN is the grid's choice
    assert (base.lr, base.dropout) == experiments.CHOSEN[dataset, "rnn", base.hidden_size]
    if "units" in label:
        assert config.hidden_size == experiments.EQUAL_PARAMETERS[config.cell]


def test_chosen_has_a_point_for_every_cell_and_size_and_nothing_else():
    """CHOSEN holds one grid point for each cell and size that notebook 05 trains (whether each is the
    grid's best is a question for the benchmark's records: `make bench-check`, benchmarks/consistency.py)."""
    assert {(d, c.cell, c.hidden_size) for (d, _), c in experiments.GATED_CONFIGS.items()} == set(experiments.CHOSEN)
    assert set(experiments.LR_GRID) == set(experiments.DROPOUT_GRID) == set(experiments.DATASETS)


@pytest.mark.parametrize("dataset", experiments.DATASETS)
def test_equal_parameter_sizes_have_about_the_rnns_parameters(dataset):
    vocab_size = len(chapter.splits(dataset)[0])
    task = experiments.Task(None, lambda: [], [], {}, num_tokens=vocab_size)
    counts = {label: chapter.num_params(experiments.MODELS["rnn"](config, task))
              for (d, label), config in experiments.GATED_CONFIGS.items() if d == dataset}
    for cell in ("GRU", "LSTM"):
        equal = counts[f"{cell}, {experiments.EQUAL_PARAMETERS[cell.lower()]} units"]
        assert abs(equal / counts["RNN"] - 1) < 0.1, (cell, equal, counts["RNN"])
        assert counts[cell] > 2 * counts["RNN"]
