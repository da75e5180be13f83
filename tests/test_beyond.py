"""Notebook 06's pieces: the first-name sex data and its baselines, the recurrent classifier and its
readouts, the space-tagging task and its window tagger, precision/recall/F1, and free running.

Bidirectional itself is tested in test_bidirectional.py.
"""

import dataclasses
import math
import re
from collections import Counter

import pytest
import torch
from conftest import untrained_nll
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import chapter
import experiments
from chapter import RNNClassifier, SuffixClassifier, WindowTagger

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)


# ---------------------------------------------------------------------------------------------
# A fixed target: the sex of a first name
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sexes():
    return chapter.load_name_sexes()


@pytest.fixture(scope="module")
def sex_splits():
    return chapter.name_sex_splits()


def testload_name_sexes_counts_both_lists(sexes):
    assert sexes == dict(sorted(sexes.items()))  # sorted by name
    assert all(isinstance(f, int) and isinstance(m, int) and f + m > 0 for f, m in sexes.values())
    assert set(sexes) == set(chapter.load_first_names("both"))
    assert {n for n, (f, m) in sexes.items() if f} == set(chapter.load_first_names("female"))
    assert {n for n, (f, m) in sexes.items() if m} == set(chapter.load_first_names("male"))
    assert chapter.SEXES == ("female", "male")


def test_name_sex_splits_do_not_leak(sex_splits, sexes):
    vocab, parts = sex_splits
    names = [[name for name, _ in part] for part in parts]
    assert all(len(set(n)) == len(n) for n in names)  # no name twice within a split
    train, valid, test = (set(n) for n in names)
    assert not (train & valid) and not (train & test) and not (valid & test)  # nor in two splits
    assert train | valid | test == set(sexes)
    assert [len(n) for n in names] == [len(n) for n in chapter.split_names(list(sexes), seed=0)]
    assert chapter.BOUNDARY in vocab and all(c in vocab for name in train for c in name)


def test_labels_are_the_majority_sex_with_ties_female(sex_splits, sexes):
    _, parts = sex_splits
    labels = {name: label for part in parts for name, label in part}
    for name, (female, male) in sexes.items():
        assert labels[name] == (1 if male > female else 0), name
    assert labels["antonio"] == 1 and labels["carmen"] == 0 and labels["maria"] == 0
    ties = [name for name, (f, m) in sexes.items() if f == m]
    assert all(labels[name] == 0 for name in ties)
    assert 0.3 < sum(labels.values()) / len(labels) < 0.7  # both classes are common


PAIRS = [("ana", 0), ("juan", 1), ("maria", 0), ("pablo", 1), ("lucia", 0)]


def test_suffix_classifier_backs_off_to_shorter_endings():
    clf = SuffixClassifier(PAIRS, k=2)
    assert clf.predict("diana") == 0  # "na" was seen (ana)
    assert clf.predict("xo") == 1  # "xo" never, "o" was (pablo)
    assert clf.predict("zzz") == 0  # no ending seen: the majority label (3 of 5)
    assert clf.predict("") == 0
    assert [clf.predict(name) for name, _ in PAIRS] == [label for _, label in PAIRS]
    assert all(SuffixClassifier(PAIRS, k=0).predict(n) == 0 for n in ("juan", "pablo", "x"))


def test_suffix_classifier_errors():
    with pytest.raises(ValueError, match="k must be >= 0"):
        SuffixClassifier(PAIRS, k=-1)
    with pytest.raises(ValueError, match="no training names"):
        SuffixClassifier([], k=2).predict("ana")


def test_suffix_classifier_counts_each_name_once_per_ending():
    clf = SuffixClassifier([("a", 1), ("ba", 0), ("ca", 0)], k=3)
    assert clf.votes["a"] == Counter({0: 2, 1: 1})
    assert clf.votes[""] == Counter({0: 2, 1: 1})
    assert clf.predict("da") == 0


def test_classification_accuracy():
    pairs = [("ana", 0), ("juan", 1), ("eva", 1), ("luis", 1)]
    assert chapter.classification_accuracy(lambda name: int(not name.endswith("a")), pairs) == 0.75
    assert chapter.classification_accuracy(SuffixClassifier(PAIRS, 1).predict, PAIRS) == 1.0
    with pytest.raises(ValueError, match="no pairs"):
        chapter.classification_accuracy(lambda name: 0, [])


# ---------------------------------------------------------------------------------------------
# The recurrent classifier and its readouts
# ---------------------------------------------------------------------------------------------

PAD, VOCAB_SIZE, T, LENGTHS = 1, 10, 6, [6, 3, 1, 4]


def _padded_batch(seed=0, extra=0):
    """Token ids (T + extra, B) with real tokens (never PAD) up to each length, then PAD."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(2, VOCAB_SIZE, (T + extra, len(LENGTHS)), generator=g)
    for b, n in enumerate(LENGTHS):
        X[n:, b] = PAD
    return X


def _classifier(readout, bidirectional, cell=chapter.GRU):
    torch.manual_seed(0)
    return RNNClassifier(VOCAB_SIZE, 3, 5, cell, embedding_dim=4, bidirectional=bidirectional, readout=readout,
                         pad=PAD).double().eval()


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "both-ways"])
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_readouts_see_the_real_tokens_only(readout, bidirectional):
    model = _classifier(readout, bidirectional)
    X = _padded_batch()
    logits = model(X)
    assert logits.shape == (len(LENGTHS), 3)
    # each sequence alone, without padding, gets the same logits
    for b, n in enumerate(LENGTHS):
        torch.testing.assert_close(model(X[:n, b:b + 1])[0], logits[b], atol=1e-12, rtol=0)
    # more padding changes nothing
    torch.testing.assert_close(model(torch.cat([X, torch.full((3, len(LENGTHS)), PAD)])), logits,
                               atol=1e-12, rtol=0)
    # changing a real token changes that sequence's logits (and only its)
    for b, n in enumerate(LENGTHS):
        for t in {0, n - 1}:
            X2 = X.clone()
            X2[t, b] = 2 + (X2[t, b] - 1) % (VOCAB_SIZE - 2)  # another real token
            changed = model(X2)
            assert not torch.allclose(changed[b], logits[b])
            others = [i for i in range(len(LENGTHS)) if i != b]
            torch.testing.assert_close(changed[others], logits[others], atol=1e-12, rtol=0)


def test_last_readout_is_the_state_at_the_last_real_token():
    model = _classifier("last", bidirectional=False, cell=chapter.LSTM)
    X = _padded_batch()
    outputs, _ = model.encoder(model.embedding(X))
    last = torch.stack([outputs[n - 1, b] for b, n in enumerate(LENGTHS)])
    torch.testing.assert_close(model(X), model.output(last), atol=1e-12, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "both-ways"])
def test_each_readout_gives_logits_per_position(bidirectional):
    model = _classifier("each", bidirectional)
    X = _padded_batch()
    logits = model(X)
    assert logits.shape == (T, len(LENGTHS), 3)
    X2 = X.clone()
    X2[3, 0] = 2 + (X2[3, 0] - 1) % (VOCAB_SIZE - 2)
    changed = (model(X2) - logits).abs().amax(-1)  # (T, B)
    assert (changed[:, 1:] == 0).all()  # other sequences untouched
    assert (changed[:3, 0] == 0).all() != bidirectional  # earlier positions see it only if read both ways
    assert (changed[3:, 0] > 0).all()


def test_classifier_rejects_a_bad_readout_and_bad_ids():
    with pytest.raises(ValueError, match="readout"):
        RNNClassifier(VOCAB_SIZE, 2, 4, readout="max")
    with pytest.raises(ValueError, match="token ids"):
        _classifier("last", False)(torch.randn(3, 2))


def test_predictions_flatten_and_drop_ignored_targets():
    model = _classifier("each", bidirectional=False)
    X = _padded_batch()
    Y = torch.randint(3, X.shape)
    Y[X == PAD] = chapter.IGNORE_INDEX
    predicted, truth = chapter.predictions(model, [(X, Y), (X[:, :2], Y[:, :2])])
    n = sum(LENGTHS) + LENGTHS[0] + LENGTHS[1]
    assert predicted.shape == truth.shape == (n,)
    assert torch.equal(predicted[:sum(LENGTHS)], model(X).argmax(-1)[Y != chapter.IGNORE_INDEX])
    assert not (truth == chapter.IGNORE_INDEX).any()


def test_name_classifier_trains_through_the_driver():
    config = dataclasses.replace(experiments.NAME_CLASSIFIER, hidden_size=8, embedding_dim=8, limit=400, epochs=1)
    run = experiments.train(config, progress=False, cache=False)
    untrained = untrained_nll(config)
    assert set(run.nll) == {"train", "valid", "test"}
    assert all(0 < run.nll[split] < untrained[split] for split in run.nll), (run.nll, untrained)
    assert isinstance(run.model, RNNClassifier) and run.model.readout == "last"
    task = experiments.TASKS["first-names"](config)
    predicted, truth = chapter.predictions(run.model, task.held_out["test"][0])
    assert len(predicted) == len(truth) == 100 and set(truth.tolist()) <= {0, 1}


def test_name_classifier_configs():
    assert experiments.NAME_CLASSIFIERS["left to right", "last"] == experiments.NAME_CLASSIFIER
    for (direction, readout), config in experiments.NAME_CLASSIFIERS.items():
        assert config.readout == readout and config.bidirectional == (direction == "both ways")
        assert (config.dataset, config.model) == ("first-names", "classifier")


# ---------------------------------------------------------------------------------------------
# An aligned task: putting the spaces back
# ---------------------------------------------------------------------------------------------


def test_without_spaces_examples():
    assert chapter.without_spaces("the time machine") == ("thetimemachine", [0, 0, 1, 0, 0, 0, 1] + [0] * 7)
    assert chapter.without_spaces("a  b ") == ("ab", [1, 1])  # runs of spaces count once, a final one too
    assert chapter.without_spaces(" ab") == ("ab", [0, 0])  # nothing before a leading space
    assert chapter.without_spaces("") == ("", [])


@given(st.text(alphabet="ab ", max_size=30))
def test_without_spaces_marks_the_letters_that_a_space_follows(text):
    letters, follows = chapter.without_spaces(text)
    assert " " not in letters and len(letters) == len(follows) and set(follows) <= {0, 1}
    assert letters == text.replace(" ", "")
    rebuilt = "".join(c + " " * f for c, f in zip(letters, follows))
    assert rebuilt == re.sub(" +", " ", text).lstrip()


def test_window_tagger_sees_k_either_side():
    torch.manual_seed(0)
    k, T_ = 2, 9
    model = WindowTagger(VOCAB_SIZE, 2, k, embedding_dim=4, hidden_size=8, pad=PAD).double().eval()
    X = torch.randint(2, VOCAB_SIZE, (T_, 3))
    logits = model(X)
    assert logits.shape == (T_, 3, 2)
    for s in range(T_):
        X2 = X.clone()
        X2[s, 1] = 2 + (X2[s, 1] - 1) % (VOCAB_SIZE - 2)
        changed = (model(X2) - logits).abs().amax(-1)  # (T, B)
        assert (changed[:, [0, 2]] == 0).all()
        for t in range(T_):
            assert (changed[t, 1] > 0) == (abs(t - s) <= k), (s, t)


def test_window_tagger_reads_pad_beyond_the_ends():
    torch.manual_seed(0)
    model = WindowTagger(VOCAB_SIZE, 2, 1, embedding_dim=3, hidden_size=4, pad=PAD).eval()
    X = torch.randint(2, VOCAB_SIZE, (4, 1))
    padded = torch.cat([torch.full((1, 1), PAD), X, torch.full((1, 1), PAD)])  # (6, 1)
    torch.testing.assert_close(model(X), model(padded)[1:-1])  # the inner positions see the same windows


def test_tagger_configs_build_their_models():
    task = experiments.Task(chapter.Vocab(["abc"], reserved=[chapter.BOUNDARY]), lambda: [], [], {}, num_classes=2)
    for name, config in experiments.SPACE_TAGGERS.items():
        model = experiments.MODELS["tagger"](config, task)
        if config.cell == "window":
            assert isinstance(model, WindowTagger) and model.k == config.block_size
        else:
            assert isinstance(model, RNNClassifier) and model.readout == "each"
            assert model.bidirectional == (name == "both ways")
        assert model(torch.randint(len(task.vocab), (7, 2))).shape == (7, 2, 2)


@pytest.mark.parametrize("cell", ["window", "gru"])
def test_space_tagger_trains_through_the_driver(cell):
    config = dataclasses.replace(experiments.SPACE_TAGGER, cell=cell, block_size=2, hidden_size=8, embedding_dim=8,
                                 num_steps=16, limit=2000, epochs=1)
    run = experiments.train(config, progress=False, cache=False)
    untrained = untrained_nll(config)
    assert set(run.nll) == {"train", "valid", "test"}
    assert all(0 < run.nll[split] < min(untrained[split], math.log(2)) for split in run.nll), (run.nll, untrained)
    assert " " not in run.vocab and chapter.BOUNDARY in run.vocab
    task = experiments.TASKS["spaces"](config)
    (X, Y), *_ = task.held_out["valid"][0]
    assert X.shape[0] == Y.shape[0] == 16 and set(Y.unique().tolist()) <= {0, 1}


def test_precision_recall_f1_by_hand():
    f = chapter.precision_recall_f1
    predicted, truth = torch.tensor([1, 0, 1, 1, 0]), torch.tensor([1, 1, 0, 1, 0])
    assert f(predicted, truth) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "F1": 2 / 3})
    assert f(torch.tensor([1, 0, 0, 0]), torch.tensor([1, 1, 1, 0])) == pytest.approx(
        {"precision": 1.0, "recall": 1 / 3, "F1": 0.5})
    assert f(truth, truth) == {"precision": 1.0, "recall": 1.0, "F1": 1.0}
    assert f(predicted, truth, positive=0) == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "F1": 1 / 2})
    zeros = torch.zeros(4, dtype=torch.long)
    assert f(zeros, zeros) == {"precision": 0.0, "recall": 0.0, "F1": 0.0}  # no positives anywhere
    assert f(zeros, torch.tensor([0, 1, 0, 1])) == {"precision": 0.0, "recall": 0.0, "F1": 0.0}  # none predicted
    assert f(torch.ones(4, dtype=torch.long), zeros) == {"precision": 0.0, "recall": 0.0, "F1": 0.0}


# ---------------------------------------------------------------------------------------------
# Teacher forcing and free running
# ---------------------------------------------------------------------------------------------

PERIOD = 5
TEXT = torch.arange(400) % PERIOD  # a text whose next character follows from the current one


class RecurrentLookup(nn.Module):
    """A recurrent model whose logits depend on the current token only: ids (T, B) -> table[ids]
    (T, B, V), the state passed through."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table.float())

    def forward(self, X, state=None):
        return self.table[X], state


class WindowLookup(chapter.WindowModel):
    """The same as a window model (block_size 1): windows (N, T) -> table[last token] (N, V)."""

    block_size = 1

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table.float())

    def forward(self, X):
        return self.table[X[:, -1]]


def _knows_the_text():
    return torch.eye(PERIOD).roll(1, dims=1) * 10  # token x -> x + 1 (mod PERIOD)


def _ignores_the_input():
    return torch.tensor([0.0, 3.0, 1.0, 0.0, 2.0]).expand(PERIOD, PERIOD).clone()  # always token 1


@pytest.mark.parametrize("kind", [WindowLookup, RecurrentLookup], ids=["window", "recurrent"])
def test_a_model_that_knows_the_text_is_always_right(kind):
    curves = chapter.free_running_accuracy(kind(_knows_the_text()), TEXT, horizon=6, warmup=8, num_starts=50)
    assert set(curves) == {"teacher forcing", "free running"}
    assert curves["teacher forcing"] == curves["free running"] == [1.0] * 6


@pytest.mark.parametrize("kind", [WindowLookup, RecurrentLookup], ids=["window", "recurrent"])
def test_a_model_that_ignores_its_input_scores_the_same_either_way(kind):
    curves = chapter.free_running_accuracy(kind(_ignores_the_input()), TEXT, horizon=6, warmup=8, num_starts=200)
    assert curves["teacher forcing"] == curves["free running"]
    assert len(curves["free running"]) == 6 and all(0 < a < 0.5 for a in curves["free running"])


def test_free_running_drifts_where_teacher_forcing_does_not():
    table = _knows_the_text()
    table[2] = torch.eye(PERIOD)[0] * 10  # one wrong rule: after 2 it says 0, the text says 3
    curves = chapter.free_running_accuracy(RecurrentLookup(table), TEXT, horizon=6, warmup=8, num_starts=400)
    assert all(abs(a - 0.8) < 0.1 for a in curves["teacher forcing"])  # one position in five is wrong
    assert curves["free running"][-1] < curves["teacher forcing"][-1]  # its own mistakes lead it astray
    assert curves["free running"][0] == curves["teacher forcing"][0]  # the first guess reads the same context


def test_free_running_of_a_recurrent_lm_runs_and_is_reproducible():
    torch.manual_seed(0)
    model = chapter.RNNLanguageModel(PERIOD, 6, cell=chapter.GRU, embedding_dim=3)
    a = chapter.free_running_accuracy(model, TEXT, horizon=4, warmup=10, num_starts=30, seed=1)
    assert a == chapter.free_running_accuracy(model, TEXT, horizon=4, warmup=10, num_starts=30, seed=1)
    assert all(len(v) == 4 for v in a.values())
    assert a["free running"][0] == a["teacher forcing"][0]  # the first guess reads the same context


def test_free_running_accuracy_of_an_ngram_model():
    X, Y = chapter.text_windows(TEXT, 1)
    model = chapter.NGramModel(PERIOD, 2).count(X, Y)
    curves = chapter.free_running_accuracy(model, TEXT, horizon=3, warmup=4, num_starts=20)
    assert curves["teacher forcing"] == curves["free running"] == [1.0] * 3
