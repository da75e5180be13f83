"""Notebook 06's Bidirectional: against torch.nn (packed and unpacked), per-sequence runs, and bad input.

Its runs on an accelerator are in test_gpu.py.
"""

from functools import partial

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import chapter
from chapter import Bidirectional

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)

T, B, D, H = 7, 6, 3, 5
LENGTHS = [4, 7, 1, 5, 7, 2]  # unsorted, with 1 and T
TORCH_KINDS = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}


def torch_bidirectional(kind: str, dtype=torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TORCH_KINDS[kind](D, H, bidirectional=True).to(dtype)


def torch_run(module, x, lengths):
    """torch.nn's outputs (T, B, 2H) and final states [h_n] or [h_n, c_n], packed when lengths are given."""
    if lengths is None:
        out, state = module(x)
    else:
        packed = pack_padded_sequence(x, torch.as_tensor(lengths), enforce_sorted=False)
        out, state = module(packed)
        out, _ = pad_packed_sequence(out, total_length=x.shape[0])
    return out, list(state) if isinstance(state, tuple) else [state]


def our_run(net, x, lengths):
    """Our outputs and final states in torch.nn's layout: [h_n (2, B, H)] or [h_n, c_n]."""
    out, (state_f, state_b) = net(x, lengths)
    if isinstance(state_f, tuple):  # LSTM: (h, c) per direction
        return out, [torch.stack([f, b]) for f, b in zip(state_f, state_b)]
    return out, [torch.stack([state_f, state_b])]


def loss_of(out, states, seed: int = 1):
    """A loss that touches every output and final state with its own random weight."""
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for s in states:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    return loss


def torch_grads_in_our_layout(module, kind: str) -> dict:
    """The gradient of each of our parameters, read off torch.nn's (ours store W^T, and RNN sums the biases)."""
    grads = {}
    for direction, suffix in [("forward_cell", "_l0"), ("backward_cell", "_l0_reverse")]:
        g = {name: p.grad for name, p in module.named_parameters()}
        ours = ({"U": g["weight_ih" + suffix].T, "W": g["weight_hh" + suffix].T, "b": g["bias_ih" + suffix]}
                if kind == "RNN" else
                {"W_x": g["weight_ih" + suffix].T, "W_h": g["weight_hh" + suffix].T,
                 "b_x": g["bias_ih" + suffix], "b_h": g["bias_hh" + suffix]})
        grads.update({f"{direction}.{name}": grad for name, grad in ours.items()})
    return grads


@pytest.mark.parametrize("lengths", [LENGTHS, [T] * B, None], ids=["padded", "full", "no-lengths"])
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_matches_torch_outputs_states_and_gradients(kind, lengths):
    ref = torch_bidirectional(kind)
    net = Bidirectional.from_torch(ref)
    x = torch.randn(T, B, D, dtype=torch.float64)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()

    out_ref, states_ref = torch_run(ref, x_ref, lengths)
    out, states = our_run(net, x_ours, lengths)
    torch.testing.assert_close(out, out_ref, atol=1e-12, rtol=0)
    assert len(states) == len(states_ref)
    for s, s_ref in zip(states, states_ref):
        torch.testing.assert_close(s, s_ref, atol=1e-12, rtol=0)

    loss_of(out_ref, states_ref).backward()
    loss_of(out, states).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-12, rtol=0)
    expected = torch_grads_in_our_layout(ref, kind)
    assert set(expected) == {name for name, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], atol=1e-12, rtol=0, msg=name)
    if kind == "RNN":  # our single bias b stands for torch's b_ih + b_hh: both get b's gradient
        for suffix, direction in [("_l0", "forward_cell"), ("_l0_reverse", "backward_cell")]:
            torch.testing.assert_close(getattr(ref, "bias_hh" + suffix).grad,
                                       getattr(net, direction).b.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", [chapter.RNN, chapter.GRU, chapter.LSTM, partial(chapter.LSTM, fast=True),
                                  partial(chapter.GRU, fast=True)],
                         ids=["RNN", "GRU", "LSTM", "LSTM-fast", "GRU-fast"])
def test_padded_batch_equals_each_sequence_alone(cell):
    """Any cell with the chapter's interface (tensor, tuple or list state): padding changes nothing."""
    torch.manual_seed(0)
    net = Bidirectional(cell, D, H).double()
    x = torch.randn(T, B, D, dtype=torch.float64)
    out, (state_f, state_b) = net(x, LENGTHS)
    for b, n in enumerate(LENGTHS):
        seq = x[:n, b:b + 1]  # (n, 1, D): the real tokens only
        out_f, alone_f = net.forward_cell(seq)
        out_b, alone_b = net.backward_cell(seq.flip(0))
        torch.testing.assert_close(out[:n, b:b + 1], torch.cat([out_f, out_b.flip(0)], dim=2),
                                   atol=1e-12, rtol=0)
        for batch_state, alone in [(state_f, alone_f), (state_b, alone_b)]:
            leaves, alone_leaves = _leaves(batch_state), _leaves(alone)
            assert len(leaves) == len(alone_leaves)
            for s, a in zip(leaves, alone_leaves):
                torch.testing.assert_close(s[b:b + 1], a, atol=1e-12, rtol=0)


def _leaves(state) -> list:
    return [state] if isinstance(state, torch.Tensor) else [t for s in state for t in _leaves(s)]


@pytest.mark.parametrize("cell", [chapter.RNN, chapter.GRU, chapter.LSTM])
def test_shape_and_zeros_at_padding(cell):
    net = Bidirectional(cell, D, H)
    x = torch.randn(T, B, D)
    out, _ = net(x, LENGTHS)
    assert out.shape == (T, B, 2 * H)
    padded = torch.arange(T)[:, None] >= torch.tensor(LENGTHS)  # (T, B)
    assert (out[padded] == 0).all()
    assert (out[~padded] != 0).any(dim=-1).all()
    out_none, _ = net(x)
    assert out_none.shape == (T, B, 2 * H)


def test_lengths_as_list_tensor_or_int32_agree():
    torch.manual_seed(0)
    net = Bidirectional(chapter.LSTM, D, H).double()
    x = torch.randn(T, B, D, dtype=torch.float64)
    reference, _ = net(x, LENGTHS)
    for lengths in [torch.tensor(LENGTHS), torch.tensor(LENGTHS, dtype=torch.int32), tuple(LENGTHS)]:
        out, _ = net(x, lengths)
        assert torch.equal(out, reference)


def test_from_torch_keeps_dtype_and_handles_rnn_without_bias():
    ref = nn.RNN(D, H, bias=False, bidirectional=True).double()
    net = Bidirectional.from_torch(ref)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    x = torch.randn(T, B, D, dtype=torch.float64)
    out_ref, states_ref = torch_run(ref, x, LENGTHS)
    out, states = our_run(net, x, LENGTHS)
    torch.testing.assert_close(out, out_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(states[0], states_ref[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("x, match", [
    (torch.randn(T, D), r"shape \(T, B, 3\)"),
    (torch.randn(T, B, D + 1), r"shape \(T, B, 3\)"),
    (torch.randn(0, B, D), "non-empty"),
])
def test_bad_input_shape(x, match):
    with pytest.raises(ValueError, match=match):
        Bidirectional(chapter.GRU, D, H)(x)


@pytest.mark.parametrize("lengths, error, match", [
    (LENGTHS[:-1], ValueError, "one length per sequence"),
    ([LENGTHS], ValueError, "one length per sequence"),
    ([0] + LENGTHS[1:], ValueError, "between 1 and T=7"),
    ([T + 1] + LENGTHS[1:], ValueError, "between 1 and T=7"),
    ([float(n) for n in LENGTHS], TypeError, "integers"),
])
def test_bad_lengths(lengths, error, match):
    with pytest.raises(error, match=match):
        Bidirectional(chapter.GRU, D, H)(torch.randn(T, B, D), lengths)


@pytest.mark.parametrize("module, error, match", [
    (nn.Linear(D, H), TypeError, "expects a torch.nn.RNN, GRU or LSTM"),
    (nn.GRU(D, H), ValueError, "unidirectional.*GRU.from_torch"),
    (nn.LSTM(D, H, num_layers=2, bidirectional=True), ValueError, "one-layer"),
    (nn.GRU(D, H, batch_first=True, bidirectional=True), ValueError, "one direction.*batch_first"),
    (nn.RNN(D, H, nonlinearity="relu", bidirectional=True), ValueError, "one direction.*tanh"),
    (nn.LSTM(D, H, proj_size=2, bidirectional=True), ValueError, "one direction.*projection"),
])
def test_from_torch_refuses_what_it_cannot_copy(module, error, match):
    with pytest.raises(error, match=match):
        Bidirectional.from_torch(module)


def test_cell_instance_is_refused():
    with pytest.raises(TypeError, match="cell class"):
        Bidirectional(chapter.GRU(D, H), D, H)


@pytest.mark.parametrize("cell", [chapter.RNN, chapter.GRU, chapter.LSTM])
def test_padding_gets_no_gradient(cell):
    """Whatever stands at a padded position has no effect: its gradient is zero, from outputs and states."""
    torch.manual_seed(0)
    net = Bidirectional(cell, D, H).double()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    out, states = net(x, LENGTHS)
    loss_of(out, _leaves(states)).backward()
    padded = torch.arange(T)[:, None] >= torch.tensor(LENGTHS)  # (T, B)
    assert (x.grad[padded] == 0).all()
    assert (x.grad[~padded] != 0).any(dim=-1).all()
