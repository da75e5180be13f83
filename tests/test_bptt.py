"""Hand-derived backpropagation through time (notebook 04) against autograd."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chapter
from chapter import IGNORE_INDEX, RNNLanguageModel, backprop_through_time, bptt_gradients, next_token_loss


def _autograd(model, x, y, state=None):
    model.zero_grad()
    next_token_loss(model(x, state)[0], y).backward()
    return {name: p.grad for name, p in model.named_parameters()}


@settings(max_examples=20, deadline=None)
@given(T=st.integers(1, 12), B=st.integers(1, 5), V=st.integers(2, 9), H=st.integers(1, 10),
       embedding=st.sampled_from([None, 3]), with_state=st.booleans(), seed=st.integers(0, 2**16))
def test_bptt_equals_autograd_float64(T, B, V, H, embedding, with_state, seed):
    torch.manual_seed(seed)
    model = RNNLanguageModel(V, H, embedding_dim=embedding).double()
    with torch.no_grad():  # larger weights than the default init: exercise tanh away from 0
        for p in model.parameters():
            p.mul_(2.0)
    x, y = torch.randint(V, (T, B)), torch.randint(V, (T, B))
    y[torch.rand(T, B) < 0.2] = IGNORE_INDEX
    y[0, 0] = 0  # at least one target
    state = torch.randn(B, H, dtype=torch.float64) if with_state else None
    ours, theirs = bptt_gradients(model, x, y, state), _autograd(model, x, y, state)
    assert list(ours) == [name for name, _ in model.named_parameters()]
    for name in ours:
        assert ours[name].shape == theirs[name].shape
        assert (ours[name] - theirs[name]).abs().max().item() <= 1e-12, name


def test_bptt_float32_close_to_autograd():
    torch.manual_seed(0)
    model = RNNLanguageModel(28, 64)
    x, y = torch.randint(28, (30, 8)), torch.randint(28, (30, 8))
    ours, theirs = bptt_gradients(model, x, y), _autograd(model, x, y)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-6)


def test_bptt_does_not_touch_grads_and_rejects_other_cells():
    model = RNNLanguageModel(5, 4).double()
    x = torch.randint(5, (3, 2))
    bptt_gradients(model, x, x)
    assert all(p.grad is None for p in model.parameters())

    class OtherCell(chapter.RNN):
        pass

    with pytest.raises(NotImplementedError, match="OtherCell"):
        bptt_gradients(RNNLanguageModel(5, 4, cell=OtherCell), x, x)
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        bptt_gradients(model, x, x[:2])


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_truncation_equals_detaching_the_state(k):
    """truncate=k gives the gradient of the same loss with the state detached every k steps."""
    torch.manual_seed(k)
    model = RNNLanguageModel(6, 5).double()
    T, B = 11, 3
    x, y = torch.randint(6, (T, B)), torch.randint(6, (T, B))
    model.zero_grad()
    state, logits = None, []
    for start in range(0, T, k):
        out, state = model(x[start:start + k], state)
        state = state.detach()
        logits.append(out)
    next_token_loss(torch.cat(logits), y).backward()
    ours = bptt_gradients(model, x, y, truncate=k)
    for name, p in model.named_parameters():
        assert (ours[name] - p.grad).abs().max().item() <= 1e-12, name


def test_closed_form_sum_over_paths_equals_recursion():
    torch.manual_seed(0)
    T, B, H = 9, 2, 4
    W = torch.randn(H, H, dtype=torch.float64) / math.sqrt(H)
    G = torch.randn(T, B, H, dtype=torch.float64)
    dH, dA = backprop_through_time(G, W, torch.ones_like(G))
    closed = torch.stack([sum(G[t + k] @ torch.linalg.matrix_power(W.T, k) for k in range(T - t))
                          for t in range(T)])
    torch.testing.assert_close(dH, closed, rtol=0, atol=1e-12)
    torch.testing.assert_close(dA, dH)


def test_causality_loss_at_step_s_reaches_no_later_state():
    torch.manual_seed(0)
    T, B, H, s = 8, 2, 3, 4
    direct = torch.zeros(T, B, H, dtype=torch.float64)
    direct[s] = torch.randn(B, H, dtype=torch.float64)
    dH, _ = backprop_through_time(direct, torch.randn(H, H, dtype=torch.float64),
                                  torch.rand(T, B, H, dtype=torch.float64))
    assert torch.all(dH[s + 1:] == 0) and torch.all(dH[:s + 1].flatten(1).norm(dim=1) > 0)


def _path_factor(fprime, W, t, kappa):
    """prod_{j=kappa}^{1} diag(f'(a_{t+j})) W^T for one sequence (notebook 04, eq-bptt-closed-tanh)."""
    P = torch.eye(W.shape[0], dtype=W.dtype)
    for j in range(kappa, 0, -1):
        P = P @ torch.diag(fprime[t + j, 0]) @ W.T
    return P


def test_closed_form_with_tanh_equals_recursion():
    torch.manual_seed(1)
    T, H = 10, 4
    W = torch.randn(H, H, dtype=torch.float64)
    h, fprime = torch.zeros(1, H, dtype=torch.float64), torch.empty(T, 1, H, dtype=torch.float64)
    for t in range(T):
        h = torch.tanh(torch.randn(1, H, dtype=torch.float64) + h @ W)
        fprime[t] = 1 - h * h
    g = torch.randn(T, 1, H, dtype=torch.float64)
    dH, _ = backprop_through_time(g, W, fprime)
    closed = torch.stack([sum(g[t + k] @ _path_factor(fprime, W, t, k) for k in range(T - t))
                          for t in range(T)])
    torch.testing.assert_close(dH, closed, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(H=st.integers(1, 6), kappa=st.integers(1, 8), gamma=st.sampled_from([1.0, 0.25]),
       seed=st.integers(0, 2**16))
def test_path_factor_is_bounded_by_gamma_sigma_max_to_the_kappa(H, kappa, gamma, seed):
    """A gradient that enters at step kappa reaches step 0 through backprop_through_time with norm at
    most (gamma sigma_max(W))^kappa times its own, whenever 0 <= f' <= gamma (notebook 04's bound)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(H, H, generator=g, dtype=torch.float64)
    fprime = gamma * torch.rand(kappa + 1, 1, H, generator=g, dtype=torch.float64)
    direct = torch.zeros(kappa + 1, 1, H, dtype=torch.float64)
    direct[kappa] = torch.randn(1, H, generator=g, dtype=torch.float64)
    dH, _ = backprop_through_time(direct, W, fprime)
    bound = (gamma * torch.linalg.matrix_norm(W, ord=2).item()) ** kappa * direct[kappa].norm().item()
    assert dH[0].norm().item() <= bound * (1 + 1e-9) + 1e-300


def test_spectral_radius_of_a_product_is_not_bounded_by_the_factors():
    """The counterexample of notebook 04: rho(W) = 0, yet rho(diag(1, 0.5) W) = 0.5."""
    W = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    DW = torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64)) @ W
    rho = lambda M: torch.linalg.eigvals(M).abs().max().item()  # noqa: E731
    assert rho(W) < 1e-7 and abs(rho(DW) - 0.5) < 1e-12
    assert torch.linalg.matrix_norm(DW, ord=2) <= torch.linalg.matrix_norm(W, ord=2)
