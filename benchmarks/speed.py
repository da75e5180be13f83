"""Speed: the chapter's from-scratch cells against torch.nn, BPTT by hand against autograd,
and how long the chapter takes to export and to execute.

Cells are timed side by side in one process: for each repetition, ours and torch.nn's run one
forward+backward pass each on the same input with the same weights (interleaved, so that a
change of machine load hits both); we report medians and their ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(64, 64, 32, 256), (256, 128, 64, 512), (1024, 256, 64, 1024)]  # (B, T, D, H)
LOOP_LIMIT = 2 ** 28  # B * T * H from which the step-by-step loop is not timed on the CPU


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_forward_backward(models: dict, x: torch.Tensor, repeats: int = 7) -> dict:
    """Median seconds of one forward + backward pass of each model on ``x``; the repetitions are
    interleaved across the models, so that a change of machine load hits all of them alike."""
    device = x.device
    times = {name: [] for name in models}
    for rep in range(repeats + 1):  # the first round warms up and is not counted
        for name, model in models.items():
            _sync(device)
            start = time.perf_counter()
            out = model(x)[0]
            out.sum().backward()
            _sync(device)
            if rep:
                times[name].append(time.perf_counter() - start)
            for p in model.parameters():
                p.grad = None
    return {name: statistics.median(t) for name, t in times.items()}


class _Flat(torch.nn.Module):
    """A cell whose state is returned flat, (outputs, h) or (outputs, h, c), as CUDA graphs need."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x):
        outputs, state = self.cell(x)
        return (outputs, *state) if isinstance(state, tuple) else (outputs, state)


def _graphed(cell, x: torch.Tensor) -> torch.nn.Module:
    """``cell`` captured in CUDA graphs (forward and backward) for inputs shaped like ``x``: the
    per-step kernel launches of the Python loop are replayed without the CPU in the way."""
    return torch.cuda.make_graphed_callables(_Flat(cell), (x,))


# cuBLASLt's fused bias epilogue (``addmm`` with a bias) has failed inside a capture on an H100
# (CUBLAS_STATUS_EXECUTION_FAILED, which invalidates the capture); PyTorch's DISABLE_ADDMM_CUDA_LT
# switch sends ``addmm`` to plain cuBLAS instead. The first setting that captures is timed.
GRAPH_SETTINGS = ({}, {"DISABLE_ADDMM_CUDA_LT": "1"})


def _graph_in_subprocess(name: str, shape) -> tuple[float, str] | None:
    """The ratio (fast path in CUDA graphs) / torch.nn for one cell and shape, measured in a fresh
    process, and the environment it needed; None (with the reasons printed) if no capture works."""
    code = f"""
import json, torch, chapter
from benchmarks.speed import _graphed, time_forward_backward
B, T, D, H = {tuple(shape)}
torch.manual_seed(0)
reference = torch.nn.{name}(D, H).cuda()
x = torch.randn(T, B, D, device="cuda")
fast = chapter.{name}.from_torch(reference).cuda()
fast.fast = True
graphed = _graphed(fast, x)
s = time_forward_backward({{"torch.nn": reference, "graph": graphed}}, x, 20)
print(json.dumps(s["graph"] / s["torch.nn"]))
"""
    for setting in GRAPH_SETTINGS:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **setting})
        label = " ".join(f"{k}={v}" for k, v in setting.items()) or "default settings"
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1]), label
        print(f"  {name} {shape}: CUDA graph capture failed with {label}: "
              f"{done.stderr.strip().splitlines()[-1:]}", flush=True)
    return None


def device_label(device: torch.device) -> str:
    """The device as the speed records name it: a GPU by its model and the torch build."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return str(device)


def _reps(shape, device) -> int:
    B, T, D, H = shape
    if device.type == "cuda":
        return 20
    work = B * T * H * H
    return 7 if work < 5e9 else (3 if work < 1e11 else 2)


def time_cells(shapes=SHAPES, device=None, cells=("RNN", "GRU", "LSTM")) -> list[dict]:
    """Each cell of the chapter against torch.nn's: the fast path (``fast=True``), the step-by-step
    loop (the default) and, on CUDA, the fast path captured in CUDA graphs."""
    import chapter

    device = device or torch.device("cpu")
    records = []
    for shape in shapes:
        B, T, D, H = shape
        for name in cells:
            torch.manual_seed(0)
            reference = getattr(torch.nn, name)(D, H).to(device)
            fast = getattr(chapter, name).from_torch(reference).to(device)
            fast.fast = True
            loop = getattr(chapter, name).from_torch(reference).to(device)
            x = torch.randn(T, B, D, device=device)
            models = {"torch.nn": reference, "fast": fast, "step by step": loop}
            if device.type == "cpu" and B * T * H >= LOOP_LIMIT:
                # autograd keeps every step's gate tensors: at (1024, 256, 64, 1024) the LSTM's loop
                # needs more than the 24 GB of the benchmark machine, and the process is killed
                print(f"  {name:4s} B={B} T={T} D={D} H={H}: step-by-step loop not timed (memory)", flush=True)
                del models["step by step"]
            seconds = time_forward_backward(models, x, _reps(shape, device))
            notes = {}
            if device.type == "cuda":  # in a process of its own: a failed capture can poison the CUDA context
                graphed = _graph_in_subprocess(name, shape)
                if graphed is not None:
                    seconds["fast, CUDA graph"] = graphed[0] * seconds["torch.nn"]
                    notes["fast, CUDA graph"] = f"captured with make_graphed_callables, {graphed[1]}"
            ref = seconds.pop("torch.nn")
            for variant, s in seconds.items():
                records.append({"kind": "cell fwd+bwd", "model": f"chapter.{name} ({variant}) vs torch.nn.{name}",
                                "shape": f"B={B} T={T} D={D} H={H}", "device": device_label(device),
                                "ours_ms": 1000 * s, "reference_ms": 1000 * ref, "ratio": s / ref,
                                "target": "" if variant == "step by step" else
                                ("ratio <= 1.2" if device.type == "cpu" else "ratio <= 2.0"),
                                **({"note": notes[variant]} if variant in notes else {})})
                print(f"  {name:4s} {records[-1]['shape']:26s} {variant:16s} {1000 * s:9.1f} ms  "
                      f"torch {1000 * ref:9.1f} ms  ratio {s / ref:.2f}", flush=True)
            del models, reference, fast, loop, x
    return records


def time_bptt(reps: int = 7) -> list[dict]:
    """``bptt_gradients`` (hand-derived) against autograd on the RNN language model."""
    import chapter

    if not hasattr(chapter, "bptt_gradients"):
        return []
    torch.manual_seed(0)
    V, H, T, B = 28, 256, 64, 32
    model = chapter.RNNLanguageModel(V, H)
    X, Y = torch.randint(V, (T, B)), torch.randint(V, (T, B))

    def autograd():
        model.zero_grad(set_to_none=True)
        logits, _ = model(X)
        chapter.next_token_loss(logits, Y).backward()

    def by_hand():
        chapter.bptt_gradients(model, X, Y)

    times = {"hand": [], "autograd": []}
    autograd(), by_hand()
    for _ in range(reps):
        for key, fn in (("hand", by_hand), ("autograd", autograd)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    hand, auto = (1000 * statistics.median(times[k]) for k in ("hand", "autograd"))
    print(f"  bptt_gradients {hand:.1f} ms vs autograd {auto:.1f} ms: ratio {hand / auto:.2f}")
    return [{"kind": "bptt", "model": "bptt_gradients vs autograd (RNN LM)", "shape": f"V={V} H={H} T={T} B={B}",
             "device": "cpu", "ours_ms": hand, "reference_ms": auto, "ratio": hand / auto, "target": "ratio <= 1.0"}]


def time_export() -> list[dict]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chapterkit.export", "--check"], cwd=ROOT, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - start
    print(f"  export --check: {seconds:.2f} s")
    return [{"kind": "export", "model": "python -m chapterkit.export --check", "device": "cpu",
             "ours_ms": 1000 * seconds, "note": "whole process, interpreter start included"}]


def time_chapter(quick: bool, full_chapter: bool = False) -> list[dict]:
    """Execute every notebook (into a temporary folder) and time each; full mode only on request.

    Quick mode always runs; full mode (``--full-chapter``: about ten minutes on two cores) only
    when asked. The notebook runner (``chapterkit.execute``) does the work and reports the seconds.
    """
    from chapterkit import notebook_sources
    from chapterkit.execute import execute_all

    modes = [("quick", True, "all notebooks, quick mode (CHAPTER_QUICK=1)", "<= 90 s")]
    if full_chapter and not quick:
        modes.append(("full", False, "all notebooks, full mode", "<= 600 s"))
    records = []
    for mode, quick_mode, model, target in modes:
        with tempfile.TemporaryDirectory() as out:
            saved = os.environ.get("CHAPTER_RUNS_DIR")
            os.environ["CHAPTER_RUNS_DIR"] = str(Path(out) / "runs")  # an empty cache: every model is trained
            try:
                seconds = execute_all(notebook_sources(), quick=quick_mode, out=Path(out), force=True)
            finally:
                os.environ.pop("CHAPTER_RUNS_DIR") if saved is None else os.environ.update(CHAPTER_RUNS_DIR=saved)
        total = sum(seconds.values())
        print(f"  chapter in {mode} mode: {total:.1f} s", flush=True)
        records.append({"kind": "chapter", "model": model, "device": "cpu", "ours_ms": 1000 * total,
                        "target": target, "notebooks": {k: round(v, 1) for k, v in seconds.items()},
                        "note": f"{total:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())})
    return records


def run(quick: bool, full_chapter: bool = False) -> list[dict]:
    torch.set_num_threads(torch.get_num_threads())
    shapes = [(8, 8, 4, 16)] if quick else SHAPES
    records = time_cells(shapes)
    if torch.cuda.is_available():
        records += time_cells(shapes, device=torch.device("cuda"))
    records += time_bptt(reps=2 if quick else 7)
    records += time_export()
    records += time_chapter(quick, full_chapter)
    return records
