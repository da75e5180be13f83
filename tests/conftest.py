import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_MIRROR = ROOT.parent / "shared" / "data"


def mirror_dir() -> Path | None:
    """The dataset mirror the tests may use: $CHAPTER_DATA_MIRROR, else ../shared/data if present."""
    if os.environ.get("CHAPTER_DATA_MIRROR"):
        return Path(os.environ["CHAPTER_DATA_MIRROR"])
    return SHARED_MIRROR if SHARED_MIRROR.is_dir() else None


@pytest.fixture(scope="session", autouse=True)
def _data_source():
    """Make the datasets reachable offline: point the data layer at the mirror when one exists."""
    mirror = mirror_dir()
    if mirror is not None:
        os.environ.setdefault("CHAPTER_DATA_MIRROR", str(mirror))
    yield


def untrained_nll(config) -> dict:
    """split -> the NLL of the model that ``experiments.train(config)`` starts from (same seed, task and
    construction), scored as ``train`` scores it: what a run has to beat to have learned anything."""
    import chapter
    import experiments

    chapter.set_seed(config.seed)
    task = experiments.TASKS[config.dataset](config)
    model = experiments.MODELS[config.model](config, task)
    return {split: chapter.evaluate(model, data, stateful) for split, (data, stateful) in task.held_out.items()}


@pytest.fixture
def mirror() -> Path:
    m = mirror_dir()
    if m is None:
        pytest.skip("no dataset mirror: set CHAPTER_DATA_MIRROR to a copy of the datasets")
    return m


@pytest.fixture(scope="module")
def one_thread():
    """The unit tests' tensors are tiny: one thread is faster, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
