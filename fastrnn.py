"""The speed engineering of the chapter's fast paths: the forward loops and the helpers that the
hand-derived backward passes (``chapter._rnn_scan``, ``_gru_scan``, ``_lstm_scan``) run on.

Notebooks 04 and 05 derive and explain the backward passes; this module holds what only makes
them fast, and the text points to it without walking through it: every step writes into
preallocated buffers (``out=`` arguments, per-step views), the activations the backward pass
needs are kept only when it will run, sums over the steps become one matrix product over all
``T * B`` rows, and tanh is computed through the sigmoid, which is faster on some CPUs. The
functions compute the same values as the step-by-step cells of ``chapter`` up to rounding (the
tests hold them to ``torch.nn`` and to autograd in float64).
"""

from __future__ import annotations

import torch


def needs_grad(*tensors) -> bool:
    """Whether autograd will need a backward pass through these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def steps(buffer: torch.Tensor, T: int, save: bool):
    """Per-step views of ``buffer``: its T slices when backward needs them all, else one slice reused."""
    return buffer.unbind(0) if save else [buffer[0]] * T


def rows(Z: torch.Tensor) -> torch.Tensor:
    """(T, B, n) -> (T * B, n): a sum over t of products Z_t^T dA_t becomes one product."""
    return Z.reshape(-1, Z.shape[-1])


def tanh_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1, written into ``out`` (which may be ``x``).

    The same function up to rounding, in four cheap operations; on some CPUs these together are
    faster than torch.tanh. That is a property of the machine and library, not of tanh.
    """
    return torch.mul(x, 2, out=out).sigmoid_().mul_(2).sub_(1)


def previous_states(h0: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """H_0, ..., H_{T-1} (T, B, H): the state each step started from."""
    return torch.cat([h0[None], outputs[:-1]])


def weight_gradient(h0: torch.Tensor, outputs: torch.Tensor, dA: torch.Tensor) -> torch.Tensor:
    """sum_t H_{t-1}^T dA_t (H, n), as one matrix product over all T * B rows."""
    return rows(previous_states(h0, outputs)).T @ rows(dA)


def rnn_forward(xu: torch.Tensor, h0: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The states H_1, ..., H_T (T, B, H) of H_t = tanh(xu_t + H_{t-1} W)."""
    outputs = xu.new_empty(xu.shape)  # (T, B, H)
    H_, xu_ = outputs.unbind(0), xu.unbind(0)  # per-step views (B, H), written in place
    prev_ = (h0,) + H_[:-1]  # the state each step starts from
    for t in range(len(H_)):
        tanh_into(torch.addmm(xu_[t], prev_[t], W, out=H_[t]), out=H_[t])
    return outputs


def gru_forward(gx, h0, W_h, b_h, save: bool):
    """The states h_1..h_T (T, B, H); with ``save``, also every step's gh = h_{t-1} W_h + b_h and
    activations (r, z, n), both (T, B, 3H) (without, one step's buffers are reused)."""
    T, B, H3 = gx.shape
    H = H3 // 3
    outputs = gx.new_empty(T, B, H)
    GH = gx.new_empty(T if save else 1, B, 3 * H)   # h_{t-1} W_h + b_h
    RZN = gx.new_empty(T if save else 1, B, 3 * H)  # r, z, n
    # per-step views (B, 3H), (B, 2H) or (B, H), taken once and written in place
    H_ = outputs.unbind(0)
    prev_ = (h0,) + H_[:-1]  # the state each step starts from
    gh_, rz_ = steps(GH, T, save), steps(RZN[..., :2 * H], T, save)
    gh_rz_, gh_n_ = (steps(block, T, save) for block in GH.split([2 * H, H], dim=-1))
    r_, z_, n_ = (steps(block, T, save) for block in RZN.chunk(3, dim=-1))
    gx_rz_, gx_n_ = (block.unbind(0) for block in gx.split([2 * H, H], dim=-1))
    for t in range(T):
        torch.addmm(b_h, prev_[t], W_h, out=gh_[t])                   # (B, 3H)
        torch.add(gx_rz_[t], gh_rz_[t], out=rz_[t]).sigmoid_()        # r, z
        tanh_into(torch.addcmul(gx_n_[t], r_[t], gh_n_[t], out=n_[t]), out=n_[t])  # n
        torch.lerp(n_[t], prev_[t], z_[t], out=H_[t])                 # (1 - z) n + z h_{t-1}
    return outputs, GH, RZN


def lstm_forward(gx, h0, c0, W_h, save: bool):
    """The states h_1..h_T (T, B, H) and c_0..c_T (T + 1, B, H); with ``save``, also every step's
    gates (T, B, 4H) and tanh(c_t) (T, B, H) (without, one step's buffers are reused)."""
    T, B, H4 = gx.shape
    H = H4 // 4
    outputs = gx.new_empty(T, B, H)
    C = gx.new_empty(T + 1 if save else 1, B, H)  # c_0, ..., c_T
    C[0] = c0
    G = gx.new_empty(T if save else 1, B, 4 * H)  # gates i, f, g, o
    TC = gx.new_empty(T if save else 1, B, H)     # tanh(c_t)
    # per-step views (B, 4H) or (B, H), taken once and written in place
    H_, gx_ = outputs.unbind(0), gx.unbind(0)
    prev_ = (h0,) + H_[:-1]  # the state each step starts from
    C_, G_, tc_ = steps(C, T + 1, save), steps(G, T, save), steps(TC, T, save)
    i_, f_, g_, o_ = (steps(block, T, save) for block in G.chunk(4, dim=-1))
    for t in range(T):
        torch.addmm(gx_[t], prev_[t], W_h, out=G_[t])  # (B, 4H) pre-activations
        g_[t].mul_(2)                # tanh(a) = 2 sigmoid(2a) - 1, so that
        G_[t].sigmoid_()             # one sigmoid serves all four gates:
        g_[t].mul_(2).sub_(1)        # i, f, o = sigmoid(a), g = tanh(a)
        torch.mul(f_[t], C_[t], out=C_[t + 1]).addcmul_(i_[t], g_[t])  # c_t = f c_{t-1} + i g
        torch.mul(o_[t], tanh_into(C_[t + 1], out=tc_[t]), out=H_[t])      # h_t = o tanh(c_t)
    return outputs, C, G, TC
