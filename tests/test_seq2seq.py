"""Notebook 07's pieces: the marked names of the conditional generator, the number-words data and
its split, the encoder–decoder (shapes, padding), greedy decoding and beam search, the character
error rate, and both models trained through the driver."""

import dataclasses
import math

import pytest
import torch
from conftest import untrained_nll
from torch import nn

import chapter
import experiments
from chapter import BOUNDARY, GRU, LSTM, RNN, Seq2Seq, Vocab
from experiments.measures import longer_numbers, scores_by_length, sex_agreement, transcribe

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (conftest.py)


# ---------------------------------------------------------------------------------------------
# The conditional generator
# ---------------------------------------------------------------------------------------------


def test_marked_names_lead_with_the_mark_of_their_sex():
    assert chapter.marked_names([("lucía", 0), ("pablo", 1)]) == ["♀lucía", "♂pablo"]
    assert chapter.SEX_MARKS[0] != chapter.SEX_MARKS[1]
    vocab, (train, _, _) = chapter.name_sex_splits()
    assert not set("".join(chapter.SEX_MARKS)) & set(vocab.itos)  # no name holds a mark


def test_conditional_task_marks_every_name():
    config = dataclasses.replace(experiments.CONDITIONAL_GENERATOR, limit=300, parts=1)
    task = experiments.TASKS["conditional-names"](config)
    marks = {task.vocab[m] for m in chapter.SEX_MARKS}
    X, Y = next(iter(task.train()))
    assert (X[0] == task.vocab[BOUNDARY]).all() and set(X[1].tolist()) <= marks  # boundary, then the mark
    assert not set(Y[1:].reshape(-1).tolist()) & marks  # a mark is never a target after the first


def test_conditional_generator_trains_and_samples_the_mark():
    config = dataclasses.replace(experiments.CONDITIONAL_GENERATOR, hidden_size=16, limit=400, epochs=1)
    run = experiments.train(config, progress=False, cache=False)
    untrained = untrained_nll(config)
    assert all(0 < run.nll[split] < untrained[split] for split in run.nll), (run.nll, untrained)
    samples = chapter.sample(run.model, run.vocab, 5, prompt="♀", generator=torch.Generator().manual_seed(0))
    assert all(s.startswith("♀") for s in samples)


class _Fixed(nn.Module):
    """A classifier that answers ``answer`` for every name."""

    def __init__(self, answer: int):
        super().__init__()
        self.answer, self.weight = answer, nn.Parameter(torch.zeros(1))

    def forward(self, X):
        logits = torch.zeros(X.shape[1], 2)
        logits[:, self.answer] = 1
        return logits


def test_sex_agreement_counts_each_judge():
    vocab = Vocab(["abcdefghijklmnopqrstuvwxyz"], reserved=[BOUNDARY])
    sexes = {"ana": (10, 0), "alex": (3, 5), "eli": (2, 2)}  # female, male residents; a tie counts as female
    samples = {0: ["ana", "alex", "zzz", "eli"], 1: ["alex", "ana", "", "qq"]}
    result = sex_agreement(samples, _Fixed(0), vocab, sexes)
    assert result[0] == {"classifier": 1.0, "real": 3 / 4, "INE": 2 / 3}
    assert result[1] == {"classifier": 0.0, "real": 2 / 4, "INE": 1 / 2}  # the empty sample is not classified


# ---------------------------------------------------------------------------------------------
# The data: number words, the split, the batches
# ---------------------------------------------------------------------------------------------


def test_number_words():
    assert chapter.number_words(1895) == "mil ochocientos noventa y cinco"
    assert chapter.number_words(15) == "quince"
    assert chapter.number_words(987654) == "novecientos ochenta y siete mil seiscientos cincuenta y cuatro"


@pytest.mark.parametrize("bad", [-1, chapter.MAX_NUMBER, 2.5, "12", True, None])
def test_number_words_refuses_what_it_cannot_write(bad):
    with pytest.raises(ValueError, match="whole numbers from 0 to"):
        chapter.number_words(bad)


def test_number_splits_share_no_number():
    train, valid, test = chapter.number_splits()
    assert (len(train), len(valid), len(test)) == (12000, 1000, 2000)
    assert len(set(train) | set(valid) | set(test)) == 15000  # distinct, and no number in two splits
    assert all(0 <= n < 10 ** 6 for n in train + valid + test)
    assert chapter.number_splits() == [train, valid, test]  # the same split every time
    digits = [len(str(n)) for n in test]
    assert min(digits) <= 2 and digits.count(3) > 50  # short numbers are not swamped by the long ones
    with pytest.raises(ValueError, match="too many"):
        chapter.number_splits((40, 10, 10), max_digits=2)


def test_number_batches_layout():
    vocabs = chapter.number_vocabs([15, 1895])
    source_vocab, target_vocab = vocabs
    assert len(target_vocab) == 12  # unknown, boundary and the ten digits
    (S, X), Y = next(chapter.number_batches([15, 1895], vocabs, batch_size=8))
    assert S.shape == (len("mil ochocientos noventa y cinco"), 2) and X.shape == Y.shape == (5, 2)
    assert source_vocab.decode(S[:, 0].tolist()) == "quince" + BOUNDARY * (S.shape[0] - 6)  # padded at the end
    assert target_vocab.decode(X[:, 1].tolist()) == ".1895" and target_vocab.decode(Y[:3, 0].tolist()) == "15."
    assert (Y[3:, 0] == chapter.IGNORE_INDEX).all()


# ---------------------------------------------------------------------------------------------
# The encoder–decoder
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vocabs():
    return chapter.number_vocabs(range(1000))


def _model(vocabs, seed=0, cell=GRU):
    torch.manual_seed(seed)
    return Seq2Seq(*vocabs, hidden_size=16, cell=cell, embedding_dim=8)


@pytest.mark.parametrize("cell", [GRU, RNN])
def test_seq2seq_shapes(vocabs, cell):
    model = _model(vocabs, cell=cell)
    (S, X), Y = next(chapter.number_batches([7, 123, 40001], vocabs, batch_size=3))
    assert model(S, X).shape == (X.shape[0], 3, len(vocabs[1]))
    assert model.encode(S).shape == (3, 16)
    assert chapter.next_token_loss(model(S, X), Y).isfinite()


def test_padding_does_not_change_the_encoding(vocabs):
    model = _model(vocabs)
    words = [chapter.number_words(n) for n in (7, 123, 40001)]
    together = model.encode(chapter.pad_sources(words, vocabs[0]))
    alone = torch.cat([model.encode(chapter.pad_sources([w], vocabs[0])) for w in words])
    torch.testing.assert_close(together, alone)
    longer = torch.cat([chapter.pad_sources(words, vocabs[0]),
                        torch.full((5, 3), vocabs[0][BOUNDARY])])  # five more steps of padding
    torch.testing.assert_close(model.encode(longer), together)


def test_seq2seq_refuses_bad_input(vocabs):
    model = _model(vocabs)
    with pytest.raises(ValueError, match="all padding"):
        model.encode(torch.full((3, 2), vocabs[0][BOUNDARY]))
    with pytest.raises(ValueError, match="token ids"):
        model.encode(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="RNN or GRU"):
        Seq2Seq(*vocabs, hidden_size=8, cell=LSTM)


def test_the_driver_trains_a_pair_of_inputs(vocabs):
    """fit and evaluate pass an encoder–decoder's (source, decoder input) pair on as two arguments."""
    model = _model(vocabs)
    numbers = list(range(0, 1000, 7))
    batches = list(chapter.number_batches(numbers, vocabs, 32))
    before = chapter.evaluate(model, batches)
    chapter.fit(model, batches, epochs=3, lr=1e-2, progress=False, device="cpu")
    assert chapter.evaluate(model, batches) < before - 0.3


def test_beam_of_width_one_is_greedy_decoding(vocabs):
    for seed in range(3):
        model = _model(vocabs, seed)
        source = chapter.pad_sources([chapter.number_words(n) for n in (3, 45, 678, 9012)], vocabs[0])
        greedy = chapter.greedy_decode(model, source)
        assert chapter.beam_search(model, source, beam_width=1) == greedy
        assert all(len(row) <= 12 and model.boundary not in row for row in greedy)


class _TableDecoder(nn.Module):
    """A decoder whose next-token log-probabilities depend only on the token it reads: ``table[token]``."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table.log(), requires_grad=False)

    def forward(self, X, state):
        return self.table[X], state


def _constructed(vocabs):
    """Greedy decoding takes "a" (0.55) and then must stop at 0.34: the sequence "a" has probability
    0.55 * 0.34 = 0.187. "b" then stops for sure: probability 0.45, which a beam of 2 keeps."""
    _, target = vocabs
    end, a, b = target[BOUNDARY], target["1"], target["2"]
    table = torch.full((len(target), len(target)), 1e-9)
    table[end, [a, b]] = torch.tensor([0.55, 0.45])  # the first token
    table[a, [end, a, b]] = torch.tensor([0.34, 0.33, 0.33])
    table[b, end] = 1.0
    model = _model(vocabs)
    model.decoder = _TableDecoder(table / table.sum(1, keepdim=True))
    return model, a, b


def _log_likelihood(model, source, target: list[int]) -> float:
    X = torch.tensor([model.boundary] + target)[:, None].repeat(1, source.shape[1])
    logp = model(source, X)  # (T, B, V): already log-probabilities
    steps = target + [model.boundary]
    return sum(logp[t, 0, token].item() for t, token in enumerate(steps))


def test_beam_search_finds_a_likelier_sequence_than_greedy(vocabs):
    model, a, b = _constructed(vocabs)
    source = chapter.pad_sources(["uno", "dos"], vocabs[0])
    greedy = chapter.greedy_decode(model, source)
    beam = chapter.beam_search(model, source, beam_width=2)
    assert greedy == [[a], [a]] and beam == [[b], [b]]
    assert math.isclose(math.exp(_log_likelihood(model, source, greedy[0])), 0.55 * 0.34, rel_tol=1e-4)
    assert _log_likelihood(model, source, beam[0]) > _log_likelihood(model, source, greedy[0])


def test_decoders_stop_at_max_length(vocabs):
    model, a, _ = _constructed(vocabs)
    model.decoder.table.data[a] = torch.tensor([1e-9] * len(vocabs[1])).index_fill(0, torch.tensor([a]), 1).log()
    source = chapter.pad_sources(["uno"], vocabs[0])  # "a" forever: only max_length stops it
    assert chapter.greedy_decode(model, source, max_length=5) == [[a] * 5]
    assert chapter.beam_search(model, source, beam_width=3, max_length=5) == [[a] * 5]
    with pytest.raises(ValueError, match="beam_width"):
        chapter.beam_search(model, source, beam_width=0)


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def test_character_error_rate():
    assert chapter.character_error_rate(["1895"], ["1895"]) == 0
    assert chapter.character_error_rate(["kitten"], ["sitting"]) == 3 / 7  # the classic Levenshtein example
    assert chapter.character_error_rate(["", "12"], ["123", "12"]) == 3 / 5
    assert chapter.character_error_rate(["12345"], ["1"]) == 4
    with pytest.raises(ValueError, match="one prediction per true text"):
        chapter.character_error_rate(["1"], ["1", "2"])


def test_scores_by_length_bins_and_scores(vocabs):
    model, a, b = _constructed(vocabs)  # writes "1" for every input
    numbers = [1, 1000, 21, 900000]
    rows = scores_by_length(model, numbers, vocabs, edges=(0, 5, 100))
    assert transcribe(model, numbers, vocabs) == ["1"] * 4
    assert [(r["low"], r["high"], r["count"]) for r in rows] == [(0, 5, 2), (5, 100, 2)]  # "uno", "mil"; the others
    assert rows[0]["exact"] == 0.5 and rows[1]["exact"] == 0.0
    assert rows[1]["cer"] == chapter.character_error_rate(["1", "1"], ["21", "900000"])
    assert all(len(str(n)) in (7, 8, 9) for n in longer_numbers())


def test_seq2seq_trains_through_the_driver():
    config = dataclasses.replace(experiments.SEQ2SEQ, hidden_size=16, limit=600, epochs=1)
    run = experiments.train(config, progress=False, cache=False)
    untrained = untrained_nll(config)
    assert set(run.nll) == {"train", "valid", "test"}
    assert all(0 < run.nll[split] < untrained[split] for split in run.nll), (run.nll, untrained)
    assert isinstance(run.model, Seq2Seq) and run.vocab[1].itos[2:] == list("0123456789")


def test_the_bench_area_records_both_models_by_name(monkeypatch, tmp_path):
    """benchmarks/seq2seq.py in quick mode: records named "conditional" and "seq2seq", with the scores
    the notebook prints, which the report's tables read."""
    from benchmarks import report
    from benchmarks import seq2seq as area

    monkeypatch.setenv("CHAPTER_QUICK", "1")
    monkeypatch.setenv("CHAPTER_RUNS_DIR", str(tmp_path))
    small = {"CONDITIONAL_GENERATOR": 8, "SEQ2SEQ": 8}
    for name, size in small.items():
        monkeypatch.setattr(experiments, name, dataclasses.replace(getattr(experiments, name), hidden_size=size))
    monkeypatch.setitem(experiments.NAME_CLASSIFIERS, ("left to right", "last"),
                        dataclasses.replace(experiments.NAME_CLASSIFIER, hidden_size=8, embedding_dim=8))
    records = area.run(quick=True)
    by_model = {r["model"]: r for r in records}
    assert set(by_model) == {"conditional GRU", "seq2seq GRU"} and all(r["split"] == "test" for r in records)
    generator, translator = by_model["conditional GRU"], by_model["seq2seq GRU"]
    assert "conditional" in generator["dataset"] and "seq2seq" in translator["model"]
    assert 0 <= generator["classifier_agreement"] <= 1 and set(generator["by_sex"]) == set(chapter.SEXES)
    assert 0 <= translator["exact_beam_1"] <= 1 and 0 <= translator["exact_beam_4"] <= 1
    groups = translator["by_length"]
    assert list(groups) == ["below a million, held out", "a million and more"]
    assert sum(row["count"] for row in groups["a million and more"]) == 900
    table = report.seq2seq_length_table({"quality": records})
    assert "a million and more" in table and "greedy decoding, mean over 1 seeds" in table
