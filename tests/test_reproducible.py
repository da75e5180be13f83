"""Runs are seeded and deterministic on the CPU: the same configuration trained in two fresh
processes prints the same losses, bit for bit (DESIGN.md, "Running and testing").

The two processes differ in their string-hash seed, so the data pipeline may not depend on the
order of a set or dict of strings either.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import dataclasses
    import sys

    import torch

    import chapter
    import experiments

    torch.set_num_threads(int(sys.argv[1]))
    tiny = dict(hidden_size=8, epochs=2, patience=1, decays=1)
    configs = [
        dataclasses.replace(experiments.WINDOW_CONFIGS["surnames", "mlp"], embedding_dim=4, limit=300, **tiny),
        dataclasses.replace(experiments.RNN_CONFIGS["surnames"], cell="gru", parts=2, limit=300, **tiny),
        dataclasses.replace(experiments.WINDOW_CONFIGS["time-machine", "cnn"], embedding_dim=4, limit=1200, **tiny),
        dataclasses.replace(experiments.RNN_CONFIGS["time-machine"], cell="lstm", num_steps=16, batch_size=8,
                            limit=1200, **tiny),
    ]
    for config in configs:
        run = experiments.train(config, progress=False, cache=False)
        h = run.history
        print(config.dataset, config.label, repr(h.train_loss), repr(h.valid_loss), repr(h.lr), h.best_epoch)
        print("  nll", repr(sorted(run.nll.items())))
        print("  weights", repr(sum(p.double().sum().item() for p in run.model.parameters())))
        print("  samples", chapter.sample(run.model, run.vocab, 3, prompt="" if config.dataset == "surnames"
                                          else "the ", max_length=12, generator=torch.Generator().manual_seed(0)))
""")


def _train_in_a_fresh_process(tmp_path, hash_seed: str, threads: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "CHAPTER_DEVICE": "cpu",
           "CHAPTER_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    env.pop("CHAPTER_QUICK", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_training_is_bit_for_bit_reproducible_across_processes(tmp_path):
    threads = 1  # the same in both processes (and fast on a busy machine)
    first = _train_in_a_fresh_process(tmp_path, "1", threads)
    second = _train_in_a_fresh_process(tmp_path, "2", threads)
    assert first.count("nll") == 4 and "nan" not in first
    assert first == second, f"two runs differ:\n{first}\n---\n{second}"
    assert not (tmp_path / "runs").exists()  # cache=False: nothing was written


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
