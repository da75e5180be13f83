"""The chapter on a CUDA GPU: every model trains a step there, sampling works there with a CPU
generator, the fast cells and Bidirectional compute there what they compute on the CPU, the driver
trains there, and every notebook runs there in quick mode.

Skipped, with the reason, on a machine without CUDA (DESIGN.md: "tests that need a GPU skip
cleanly without one").
"""

import copy
import dataclasses
import math
from functools import partial

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import chapter
import experiments

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")

DEVICE = "cuda"
V, PAD = 9, 1


def _on_device(model: nn.Module) -> bool:
    return all(p.device.type == DEVICE for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Every model of the chapter trains a step on the GPU
# ---------------------------------------------------------------------------------------------


def _lm_batches(window: int | None, seed=0):
    """Language-model batches on the CPU: windows (N, window) and targets (N,), or (T, B) and (T, B)."""
    g = torch.Generator().manual_seed(seed)
    if window is not None:
        return [(torch.randint(V, (32, window), generator=g), torch.randint(V, (32,), generator=g))]
    return [(torch.randint(V, (7, 4), generator=g), torch.randint(V, (7, 4), generator=g))]


def _classification_batches(per_position: bool, seed=0):
    """(T, B) ids padded with PAD after each length; labels (B,) or, per position, (T, B)."""
    g = torch.Generator().manual_seed(seed)
    lengths = [6, 2, 4, 1]
    X = torch.randint(2, V, (6, 4), generator=g)
    for b, n in enumerate(lengths):
        X[n:, b] = PAD
    if per_position:
        Y = torch.randint(2, (6, 4), generator=g)
        Y[X == PAD] = chapter.IGNORE_INDEX
    else:
        Y = torch.randint(2, (4,), generator=g)
    return [(X, Y)]


def _lm(cell):
    return lambda: chapter.RNNLanguageModel(V, 8, cell=cell, embedding_dim=4, dropout=0.1)


MODELS = {  # name -> (builder, batches)
    "MLP": (lambda: chapter.MLPContext(V, 4, 4, 8), _lm_batches(4)),
    "causal CNN": (lambda: chapter.CausalCNN(V, 2, 4, 8), _lm_batches(4)),
    "RNN": (_lm(chapter.RNN), _lm_batches(None)),
    "RNN, fast": (_lm(partial(chapter.RNN, fast=True)), _lm_batches(None)),
    "GRU": (_lm(chapter.GRU), _lm_batches(None)),
    "GRU, fast": (_lm(partial(chapter.GRU, fast=True)), _lm_batches(None)),
    "LSTM": (_lm(chapter.LSTM), _lm_batches(None)),
    "LSTM, fast": (_lm(partial(chapter.LSTM, fast=True)), _lm_batches(None)),
    "RNN, one-hot": (lambda: chapter.RNNLanguageModel(V, 8), _lm_batches(None)),
    "classifier": (lambda: chapter.RNNClassifier(V, 2, 8, chapter.GRU, 4, pad=PAD), _classification_batches(False)),
    "classifier, both ways, last": (
        lambda: chapter.RNNClassifier(V, 2, 8, chapter.LSTM, 4, bidirectional=True, pad=PAD),
        _classification_batches(False)),
    "classifier, both ways, mean": (
        lambda: chapter.RNNClassifier(V, 2, 8, chapter.RNN, 4, bidirectional=True, readout="mean", pad=PAD),
        _classification_batches(False)),
    "tagger, both ways": (
        lambda: chapter.RNNClassifier(V, 2, 8, chapter.GRU, 4, bidirectional=True, readout="each", pad=PAD),
        _classification_batches(True)),
    "window tagger": (lambda: chapter.WindowTagger(V, 2, 2, 4, 8, pad=PAD), _classification_batches(True)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_model_trains_a_step_on_the_gpu(name):
    build, batches = MODELS[name]
    torch.manual_seed(0)
    model = build()
    history = chapter.fit(model, batches, batches, epochs=2, lr=1e-2, clip=1.0, device=DEVICE, progress=False)
    assert _on_device(model)
    assert len(history.train_loss) == 2 and all(math.isfinite(x) for x in history.train_loss + history.valid_loss)
    assert chapter.evaluate(model, batches) == pytest.approx(history.best_valid, rel=1e-5)


@pytest.mark.parametrize("cell", [chapter.RNN, chapter.GRU, chapter.LSTM])
def test_stateful_training_on_the_gpu(cell):
    torch.manual_seed(0)
    ids = torch.randint(V, (400,))
    model = chapter.RNNLanguageModel(V, 8, cell=cell, embedding_dim=4)
    batches = lambda: chapter.sequential_batches(ids, 10, 4)
    history = chapter.fit(model, batches, batches, epochs=2, stateful=True, device=DEVICE, progress=False)
    assert _on_device(model) and all(math.isfinite(x) for x in history.valid_loss)


def test_bidirectional_model_gets_gradients_on_the_gpu():
    torch.manual_seed(0)
    net = chapter.Bidirectional(chapter.GRU, 3, 5).to(DEVICE)
    x = torch.randn(7, 4, 3, device=DEVICE, requires_grad=True)
    out, _ = net(x, torch.tensor([7, 3, 1, 5], device=DEVICE))
    out.square().sum().backward()
    assert out.device.type == DEVICE and all(p.grad is not None and p.grad.device.type == DEVICE
                                             for p in net.parameters())


# ---------------------------------------------------------------------------------------------
# Sampling on the GPU with a CPU generator
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlp", "cnn", "rnn", "gru", "lstm"])
@pytest.mark.parametrize("names", [True, False], ids=["names", "text"])
def test_sample_on_the_gpu_equals_the_cpu(kind, names):
    torch.manual_seed(0)
    vocab = chapter.Vocab(["abcde f"], reserved=[chapter.BOUNDARY] if names else [])
    n = len(vocab)
    model = {"mlp": lambda: chapter.MLPContext(n, 4, 4, 8), "cnn": lambda: chapter.CausalCNN(n, 2, 4, 8),
             "rnn": lambda: chapter.RNNLanguageModel(n, 8, chapter.RNN, 4),
             "gru": lambda: chapter.RNNLanguageModel(n, 8, chapter.GRU, 4),
             "lstm": lambda: chapter.RNNLanguageModel(n, 8, chapter.LSTM, 4)}[kind]().double()
    gpu = copy.deepcopy(model).to(DEVICE)
    prompt = "" if names else "ab"

    def draw(m, seed):
        return chapter.sample(m, vocab, 8, prompt=prompt, max_length=15, generator=torch.Generator().manual_seed(seed))

    on_gpu = draw(gpu, 3)
    assert on_gpu == draw(gpu, 3)  # reproducible with a seeded CPU generator
    assert on_gpu == draw(model, 3)  # float64: the same probabilities, so the same draws
    assert _on_device(gpu)


# ---------------------------------------------------------------------------------------------
# The fast cells and Bidirectional compute on the GPU what they compute on the CPU
# ---------------------------------------------------------------------------------------------


def _grads_of(cell, x, state, w_out, w_final):
    outputs, final = cell(x, state)
    final = final if isinstance(final, tuple) else (final,)
    loss = (outputs * w_out).sum() + sum((f * w).sum() for f, w in zip(final, w_final))
    wrt = [x, *cell.parameters()] + ([] if state is None else list(state if isinstance(state, tuple) else (state,)))
    return [outputs, *final, *torch.autograd.grad(loss, wrt)]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "loop"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("cls", [chapter.RNN, chapter.GRU, chapter.LSTM], ids=["RNN", "GRU", "LSTM"])
def test_cells_on_the_gpu_equal_the_cpu_float64(cls, with_state, fast):
    T, B, D, H = 30, 3, 4, 6
    torch.manual_seed(0)
    cpu = cls(D, H, fast=fast).double()
    gpu = copy.deepcopy(cpu).to(DEVICE)
    x = torch.randn(T, B, D, dtype=torch.float64)
    n_state = 2 if cls is chapter.LSTM else 1
    states = [torch.randn(B, H, dtype=torch.float64) for _ in range(n_state)]
    w_out, w_final = torch.randn(T, B, H, dtype=torch.float64), [torch.randn(B, H, dtype=torch.float64)
                                                                 for _ in range(n_state)]

    def inputs(device):
        s = [t.to(device).requires_grad_() for t in states]
        state = None if not with_state else (tuple(s) if n_state == 2 else s[0])
        return (x.to(device).requires_grad_(), state, w_out.to(device), [w.to(device) for w in w_final])

    ours, ref = _grads_of(gpu, *inputs(DEVICE)), _grads_of(cpu, *inputs("cpu"))
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.device.type == DEVICE
        torch.testing.assert_close(a.cpu(), b, atol=1e-10, rtol=0)


def test_scans_gradcheck_on_the_gpu():
    torch.manual_seed(0)
    T, B, H = 3, 2, 3
    rand = lambda *s: torch.randn(*s, dtype=torch.float64, device=DEVICE).requires_grad_()
    assert torch.autograd.gradcheck(chapter._rnn_scan, [rand(T, B, H), rand(B, H), rand(H, H)])
    assert torch.autograd.gradcheck(chapter._gru_scan, [rand(T, B, 3 * H), rand(B, H), rand(H, 3 * H), rand(3 * H)])
    assert torch.autograd.gradcheck(chapter._lstm_scan, [rand(T, B, 4 * H), rand(B, H), rand(B, H), rand(H, 4 * H)])


TORCH_KINDS = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}
LENGTHS = [4, 7, 1, 5, 7, 2]


def _flat_states(states):
    out = []
    for s in states:
        out += list(s) if isinstance(s, tuple) else [s]
    return out


@pytest.mark.parametrize("kind", list(TORCH_KINDS))
def test_bidirectional_on_the_gpu_equals_cpu_and_torch(kind):
    # float64: in float32, cuDNN's own RNN uses TF32 by default (about 1e-4 off)
    T, B, D, H = 7, 6, 3, 5
    torch.manual_seed(0)
    ref = TORCH_KINDS[kind](D, H, bidirectional=True).double()
    x = torch.randn(T, B, D, dtype=torch.float64)
    out_cpu, states_cpu = chapter.Bidirectional.from_torch(ref)(x, LENGTHS)
    net = chapter.Bidirectional.from_torch(ref.to(DEVICE))
    assert _on_device(net)
    packed = pack_padded_sequence(x.to(DEVICE), torch.tensor(LENGTHS), enforce_sorted=False)
    out_ref, _ = ref(packed)
    out_ref, _ = pad_packed_sequence(out_ref, total_length=T)
    for lengths in [LENGTHS, torch.tensor(LENGTHS), torch.tensor(LENGTHS, device=DEVICE)]:
        out, states = net(x.to(DEVICE), lengths)
        assert out.device.type == DEVICE
        torch.testing.assert_close(out.cpu(), out_cpu, atol=1e-10, rtol=0)
        torch.testing.assert_close(out, out_ref, atol=1e-10, rtol=0)
        for s, s_cpu in zip(_flat_states(states), _flat_states(states_cpu), strict=True):
            torch.testing.assert_close(s.cpu(), s_cpu, atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------------------------
# The driver on the GPU (CHAPTER_DEVICE=cuda)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    dataclasses.replace(experiments.WINDOW_CONFIGS["surnames", "cnn"], hidden_size=16, limit=300, epochs=1),
    dataclasses.replace(experiments.RNN_CONFIGS["time-machine"], cell="lstm", hidden_size=16, limit=1200, epochs=1),
    dataclasses.replace(experiments.NAME_CLASSIFIERS["both ways", "last"], readout="mean", hidden_size=8, limit=300,
                        epochs=1),
], ids=["surnames cnn", "book lstm", "names both ways"])
def test_train_on_the_gpu_and_load_from_the_cache(config, tmp_path, monkeypatch):
    monkeypatch.setenv("CHAPTER_DEVICE", DEVICE)
    monkeypatch.setenv("CHAPTER_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("CHAPTER_QUICK", raising=False)
    run = experiments.train(config, progress=False)
    assert _on_device(run.model) and all(math.isfinite(v) for v in run.nll.values())
    again = experiments.train(config, progress=False)  # from the cache, back on the GPU
    assert _on_device(again.model) and again.nll == run.nll


# ---------------------------------------------------------------------------------------------
# Every notebook in quick mode on the GPU
# ---------------------------------------------------------------------------------------------


def _notebooks():
    from chapterkit import notebook_sources

    return notebook_sources()


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    """One cache of runs for all notebooks, as in `make chapter`: later notebooks reuse earlier runs."""
    return tmp_path_factory.mktemp("runs")


@pytest.mark.notebooks
@pytest.mark.parametrize("md", _notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_on_the_gpu_in_quick_mode(md, tmp_path, shared_runs, monkeypatch):
    for module in ("nbclient", "nbformat", "jupytext", "ipykernel"):
        pytest.importorskip(module, reason=f"executing notebooks needs {module} (the dev extra)")
    import nbformat

    from chapterkit.execute import execute_notebook

    monkeypatch.setenv("CHAPTER_DEVICE", DEVICE)  # the kernel inherits the environment
    monkeypatch.setenv("CHAPTER_RUNS_DIR", str(shared_runs))
    out = tmp_path / (md.stem + ".ipynb")
    execute_notebook(md, out, quick=True, failed_dir=tmp_path / "failed")
    nb = nbformat.read(out, as_version=4)
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, cell in enumerate(nb.cells)
              for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
