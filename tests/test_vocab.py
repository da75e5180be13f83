"""Vocab and tokenizer properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import chapter

ALPHABET = "abcdefghijklmnopqrstuvwxyzñç' "
VOCAB = chapter.Vocab(["muñoz", "garçon", "d'ors", "de la fuente", "abcdefghijklmnopqrstuvwxyz"],
                      reserved=[chapter.BOUNDARY])


@given(st.text(alphabet=ALPHABET))
def test_round_trip_in_vocabulary(text):
    ids = VOCAB.encode(text)
    assert len(ids) == len(text) and VOCAB.unk not in ids
    assert VOCAB.decode(ids) == text


@given(st.text(alphabet=ALPHABET + "üÁ9!é", min_size=1))
def test_unknown_characters_map_to_unk(text):
    ids = VOCAB.encode(text)
    for ch, i in zip(text, ids):
        assert (i == VOCAB.unk) == (ch not in ALPHABET)
    assert VOCAB.decode(ids) == "".join(ch if ch in ALPHABET else chapter.UNK for ch in text)


def test_empty_string_and_layout():
    assert VOCAB.encode("") == [] and VOCAB.decode([]) == ""
    assert VOCAB.itos[:2] == [chapter.UNK, chapter.BOUNDARY] and VOCAB.unk == 0
    assert len(VOCAB) == 2 + len(set(ALPHABET))
    # frequency order, ties alphabetical: deterministic ids
    assert VOCAB.itos == chapter.Vocab(list(reversed(["muñoz", "garçon", "d'ors", "de la fuente",
                                                       "abcdefghijklmnopqrstuvwxyz"])), reserved=["."]).itos


def test_min_freq_and_errors():
    v = chapter.Vocab(["aab"], min_freq=2)
    assert v.encode("ab") == [v["a"], v.unk]
    with pytest.raises(ValueError, match="also occur in the data"):
        chapter.Vocab(["a.b"], reserved=["."])
    with pytest.raises(ValueError, match="always reserved"):
        chapter.Vocab(["ab"], reserved=[chapter.UNK])
    with pytest.raises(IndexError, match="outside this vocabulary"):
        VOCAB.decode([len(VOCAB)])


@pytest.mark.parametrize("texts", [[], [""], ["", ""], ""])
def test_empty_vocabulary_is_an_error(texts):
    with pytest.raises(ValueError, match=r"no tokens.*Vocab\(train_names\)"):
        chapter.Vocab(texts, reserved=[chapter.BOUNDARY])


def test_min_freq_that_keeps_nothing_is_an_error():
    with pytest.raises(ValueError, match="lower min_freq"):
        chapter.Vocab(["aab"], min_freq=3)
