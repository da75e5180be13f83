"""Leak-free splits, context windows and sequence batches."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import chapter


@given(st.lists(st.text(alphabet="abc ñ", min_size=1, max_size=6), min_size=3, max_size=80), st.integers(0, 5))
def test_split_names_is_a_partition_of_unique_names(names, seed):
    train, valid, test = chapter.split_names(names, seed=seed)
    assert not set(train) & set(valid) and not set(train) & set(test) and not set(valid) & set(test)
    assert sorted(train + valid + test) == sorted(set(names))
    assert chapter.split_names(names, seed=seed) == (train, valid, test)


def test_split_names_real_data_and_errors():
    train, valid, test = chapter.split_names(chapter.load_surnames(), seed=0)
    assert (len(train), len(valid), len(test)) == (59_034, 7_379, 7_380)
    assert not set(train) & (set(valid) | set(test))
    with pytest.raises(ValueError, match="no names"):
        chapter.split_names([])
    with pytest.raises(ValueError, match="summing to 1"):
        chapter.split_names(["a"], fractions=(0.5, 0.5, 0.5))


def test_split_text_is_contiguous_and_test_is_the_end():
    text = chapter.load_time_machine()
    train, valid, test = chapter.split_text(text)
    assert train + valid + test == text
    assert len(test) == len(text) - int(0.9 * len(text))


@settings(max_examples=30)
@given(st.integers(1, 12), st.integers(20, 200))
def test_text_windows_stay_inside_their_block(block_size, n):
    ids = torch.arange(n)
    train_ids = ids[: n // 2]
    if len(train_ids) <= block_size:  # too short for one window: an error, not an empty result
        with pytest.raises(ValueError):
            chapter.text_windows(train_ids, block_size)
    else:
        X, Y = chapter.text_windows(train_ids, block_size)
        assert X.shape == (len(train_ids) - block_size, block_size)
        assert int(torch.cat([X.flatten(), Y]).max()) < len(train_ids)  # nothing from held-out text
        assert torch.equal(X[:, -1] + 1, Y)


def test_name_windows_pad_with_boundary():
    vocab = chapter.Vocab(["sanz", "ruiz"], reserved=[chapter.BOUNDARY])
    X, Y = chapter.name_windows(["sanz", "ruiz"], vocab, 3)
    assert X.shape == (10, 3) and Y.shape == (10,)
    assert vocab.decode(X[0]) == "..." and vocab.decode(Y[:5]) == "sanz."
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            chapter.name_windows(["sanz"], vocab, bad)
    with pytest.raises(ValueError, match="empty"):
        chapter.name_windows([], vocab, 3)
    with pytest.raises(ValueError, match="boundary"):
        chapter.name_windows(["sanz"], chapter.Vocab(["sanz"]), 3)


def test_pad_names_targets_and_padding():
    vocab = chapter.Vocab(["sanz", "de la rosa"], reserved=[chapter.BOUNDARY])
    X, Y = chapter.pad_names(["sanz", "de la rosa"], vocab)
    assert X.shape == Y.shape == (11, 2)
    assert vocab.decode(X[:5, 0]) == ".sanz" and vocab.decode(Y[:5, 0]) == "sanz."
    assert (Y[5:, 0] == chapter.IGNORE_INDEX).all()
    assert torch.equal(X[1:, 1], Y[:-1, 1])


@settings(deadline=None)
@given(st.integers(1, 7), st.integers(1, 5), st.integers(40, 400), st.integers(0, 6))
def test_sequential_batches_continue_each_stream(num_steps, batch_size, n, offset):
    ids = torch.arange(n)
    assume(n - offset - 1 >= num_steps * batch_size)  # room for at least one batch
    batches = list(chapter.sequential_batches(ids, num_steps, batch_size, offset=offset))
    Xs = torch.cat([X for X, _ in batches])  # (steps, B)
    Ys = torch.cat([Y for _, Y in batches])
    assert torch.equal(Xs + 1, Ys)
    for b in range(batch_size):  # each column is one contiguous stream...
        assert torch.equal(Xs[:, b], torch.arange(Xs[0, b], Xs[0, b] + len(Xs)))
    # ... and the streams tile the text from the offset without gaps or overlaps
    assert torch.equal(Xs.T.flatten(), torch.arange(offset, offset + Xs.numel()))


def test_random_batches_are_disjoint_windows():
    ids = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    batches = list(chapter.random_batches(ids, 10, 8, generator=g))
    starts = torch.cat([X[0] for X, _ in batches])
    assert len(set(starts.tolist())) == len(starts) and len(batches) >= 10
    for X, Y in batches:
        assert X.shape == (10, 8) and torch.equal(X + 1, Y)
        assert torch.equal(X - X[0], torch.arange(10)[:, None].expand(10, 8))
    assert (torch.diff(torch.sort(starts).values) >= 10).all()
    with pytest.raises(ValueError, match="too short"):
        list(chapter.random_batches(torch.arange(5), 10, 1))
