"""Bad input a reader could plausibly pass gets a clear error (or, where the library documents a
result for it, that result) instead of a silent wrong answer. Each case is one a review of the
library found doing something wrong quietly."""

import math

import pytest
import torch
from torch import nn

import chapter
import experiments
from chapter import BOUNDARY, IGNORE_INDEX, Vocab
from experiments import measures

NAMES = ["ana", "luis", "mar"]


@pytest.fixture
def vocab():
    return Vocab(NAMES, reserved=[BOUNDARY])


@pytest.mark.parametrize("clip", [0, 0.0, -1.0])
def test_fit_refuses_a_clip_that_would_zero_or_flip_the_gradients(clip):
    model = nn.Linear(2, 2)
    data = [(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))]
    with pytest.raises(ValueError, match="clip must be > 0, or None"):
        chapter.fit(model, data, epochs=1, clip=clip, progress=False)


def test_pad_names_needs_the_boundary_token():
    with pytest.raises(ValueError, match="reserved=\\[BOUNDARY\\]"):
        chapter.pad_names(NAMES, Vocab(NAMES))  # without it every name would be framed by <unk>


@pytest.mark.parametrize("batch_size", [0, -2, 1.5])
def test_batchers_refuse_a_batch_size_that_is_not_a_positive_integer(vocab, batch_size):
    X, Y = torch.zeros(10, 3, dtype=torch.long), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(chapter.name_batches(NAMES, vocab, batch_size))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        experiments.window_batches(X, Y, batch_size, torch.Generator())


def test_name_batches_refuses_an_empty_list(vocab):
    with pytest.raises(ValueError, match="empty list"):
        list(chapter.name_batches([], vocab, 2))


def test_random_batches_fails_the_same_way_whatever_the_random_offset():
    ids = torch.arange(4 * 3 + 1)  # one batch of 3 x 4 fits, but not after an offset of 1 to 3
    for seed in range(8):
        with pytest.raises(ValueError, match="too short for random batches"):
            list(chapter.random_batches(ids, 4, 3, generator=torch.Generator().manual_seed(seed)))
    assert len(list(chapter.random_batches(torch.arange(4 * 4), 4, 3, generator=torch.Generator()))) == 1


def test_sequential_batches_refuses_a_negative_offset():
    with pytest.raises(ValueError, match="offset must be an integer >= 0"):
        list(chapter.sequential_batches(torch.arange(40), 4, 2, offset=-3))


def test_next_token_loss_refuses_targets_of_another_shape():
    logits, Y = torch.randn(5, 3, 7), torch.randint(7, (5, 3))  # (T, B, C) and (T, B)
    chapter.next_token_loss(logits, Y)
    with pytest.raises(ValueError, match="batch-first"):
        chapter.next_token_loss(logits, Y.T.contiguous().view(5, 3).T)  # (B, T): same numel, wrong pairs


def test_clip_gradients_takes_a_single_tensor_like_torch():
    w = torch.ones(3, requires_grad=True)
    w.grad = torch.full((3,), 4.0)
    norm = chapter.clip_gradients(w, 1.0)
    assert norm.item() == pytest.approx(math.sqrt(48))
    assert w.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_loss_by_offset_needs_a_recurrent_model_and_enough_text():
    model = chapter.RNNLanguageModel(5, 4)
    with pytest.raises(ValueError, match="more than 2 \\* block"):
        measures.loss_by_offset(model, torch.randint(5, (100,)), block=50)
    with pytest.raises(TypeError, match="window model"):
        measures.loss_by_offset(chapter.MLPContext(5, 8, 4, 8), torch.randint(5, (100,)), block=8)


def test_position_nll_marks_positions_no_name_reaches(vocab):
    model = chapter.RNNLanguageModel(len(vocab), 4)
    nll = measures.position_nll(model, NAMES, vocab, positions=8)
    assert torch.isfinite(nll[:5]).all()  # "luis" and its final boundary reach position 4
    assert torch.isnan(nll[5:]).all()
    with pytest.raises(ValueError, match="empty list"):
        measures.position_nll(model, [], vocab)


def test_bptt_refuses_truncate_zero_and_a_model_with_active_dropout():
    with pytest.raises(ValueError, match="truncate must be a positive integer"):
        chapter.backprop_through_time(torch.zeros(3, 1, 2), torch.zeros(2, 2), torch.ones(3, 1, 2), truncate=0)
    model = chapter.RNNLanguageModel(5, 4, dropout=0.5)
    x = torch.randint(5, (6, 2))
    with pytest.raises(ValueError, match="model.eval"):
        chapter.bptt_gradients(model, x, x)
    chapter.bptt_gradients(model.eval(), x, x)  # the equations hold in eval mode


def test_recall_accuracy_scores_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = chapter.RNNLanguageModel(measures.recall_vocab_size(), 8, chapter.GRU, dropout=0.5)
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    first = measures.recall_accuracy(model, 3, num_examples=200)
    assert modes == [False] and model.training  # scored in eval mode, and the mode restored
    assert measures.recall_accuracy(model, 3, num_examples=200) == first  # no dropout noise


@pytest.mark.parametrize("cell", [chapter.GRU, chapter.LSTM])
def test_gated_cells_refuse_sizes_below_one(cell):
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        cell(3, 0)
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        cell(-1, 4)


def test_classifier_refuses_an_all_padding_column(vocab):
    model = chapter.RNNClassifier(len(vocab), 2, 4, pad=vocab[BOUNDARY])
    X, _ = chapter.pad_names(["ana", "luis"], vocab)
    X[:, 1] = vocab[BOUNDARY]  # the second column holds no name at all
    with pytest.raises(ValueError, match="all padding"):
        model(X)


def test_ignore_index_is_what_cross_entropy_ignores():  # the padding targets above rely on it
    assert IGNORE_INDEX == nn.CrossEntropyLoss().ignore_index
