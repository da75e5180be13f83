"""The data layer: mirror, offline errors, checksums, atomic cache, loaders and preprocessing."""

import errno
import hashlib
import os
import shutil
import urllib.error
from pathlib import Path

import pytest

import chapter
import chapterdata


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("CHAPTER_DATA_DIR", str(d))
    return d


def test_mirror_fills_the_cache(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))
    monkeypatch.setattr(chapterdata.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    paths = chapterdata.fetch_all()
    assert sorted(p.relative_to(cache).as_posix() for p in paths) == sorted(chapterdata.DATA_FILES)
    for p in paths:
        assert p.read_bytes() == (mirror / p.relative_to(cache)).read_bytes()
    assert not list(cache.rglob("*.part"))
    # a second call reads the cache, not the mirror
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(cache.parent / "nowhere"))
    assert chapterdata.fetch("time-machine/pg35.txt") == cache / "time-machine" / "pg35.txt"


def test_offline_without_mirror_says_what_to_do(cache, monkeypatch):
    monkeypatch.delenv("CHAPTER_DATA_MIRROR", raising=False)

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(chapterdata.urllib.request, "urlopen", offline)
    with pytest.raises(chapterdata.DataUnavailableError) as err:
        chapter.load_surnames()
    message = str(err.value)
    assert "CHAPTER_DATA_MIRROR" in message and "internet" in message and "surnames_freq_ge_100.csv" in message
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_download_path_verifies_and_writes(cache, mirror, monkeypatch):
    monkeypatch.delenv("CHAPTER_DATA_MIRROR", raising=False)
    payload = (mirror / "spanish-names" / "male_names.csv").read_bytes()

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return payload

    seen = []
    monkeypatch.setattr(chapterdata.urllib.request, "urlopen", lambda url, timeout: seen.append(url) or Response())
    path = chapterdata.fetch("spanish-names/male_names.csv")
    assert seen == [chapterdata.DATA_FILES["spanish-names/male_names.csv"].url]
    assert path.read_bytes() == payload


def test_corrupted_file_raises_and_leaves_nothing(cache, mirror, tmp_path, monkeypatch):
    bad = tmp_path / "bad-mirror"
    shutil.copytree(mirror, bad)
    target = bad / "spanish-names" / "female_names.csv"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes().replace(b"MARIA", b"MARTA", 1))
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(bad))
    with pytest.raises(chapterdata.ChecksumError, match="does not match"):
        chapterdata.fetch("spanish-names/female_names.csv")
    assert not (cache / "spanish-names" / "female_names.csv").exists()
    assert not list(cache.rglob("*.part")) if cache.exists() else True


def test_damaged_cache_entry_is_replaced(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))
    path = chapterdata.fetch("spanish-names/male_names.csv")
    path.write_bytes(b"truncated")
    assert chapterdata.fetch("spanish-names/male_names.csv").read_bytes() == (
        mirror / "spanish-names" / "male_names.csv").read_bytes()


def _offline(monkeypatch):
    """No network and no mirror."""
    monkeypatch.delenv("CHAPTER_DATA_MIRROR", raising=False)

    def urlopen(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(chapterdata.urllib.request, "urlopen", urlopen)


def _read_only(monkeypatch, *methods):
    """Make the given filesystem operations fail as on a read-only file system.

    Tests may run as root, where chmod does not stop writes, so the failure is simulated.
    """
    def fail(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(a[0]) if a else "")

    for owner, name in methods:
        monkeypatch.setattr(owner, name, fail)


def test_read_only_cache_says_it_is_not_writable(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))
    cache.mkdir()
    _read_only(monkeypatch, (Path, "mkdir"), (Path, "write_bytes"), (chapter.os, "replace"))
    with pytest.raises(chapterdata.DataCacheError) as err:
        chapterdata.fetch("spanish-names/male_names.csv")
    message = str(err.value)
    assert "not writable" in message and str(cache) in message and "CHAPTER_DATA_DIR" in message
    assert isinstance(err.value, OSError)  # code that catches OSError still catches it
    assert not any(p.is_file() for p in cache.rglob("*"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions; the simulated test covers this case")
def test_read_only_cache_with_real_permissions(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))
    cache.mkdir()
    cache.chmod(0o555)
    try:
        with pytest.raises(chapterdata.DataCacheError, match="not writable.*CHAPTER_DATA_DIR"):
            chapterdata.fetch("spanish-names/male_names.csv")
    finally:
        cache.chmod(0o755)


def test_write_failure_leaves_no_partial_file(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))

    def replace_fails(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(chapterdata.os, "replace", replace_fails)
    with pytest.raises(chapterdata.DataCacheError, match="CHAPTER_DATA_DIR"):
        chapterdata.fetch("spanish-names/male_names.csv")
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_damaged_cache_offline_says_it_was_removed(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))
    path = chapterdata.fetch("spanish-names/male_names.csv")
    path.write_bytes(b"truncated")
    _offline(monkeypatch)
    with pytest.raises(chapterdata.DataUnavailableError) as err:
        chapterdata.fetch("spanish-names/male_names.csv")
    message = str(err.value)
    assert "damaged" in message and "removed" in message and str(path) in message
    assert "internet" in message and "CHAPTER_DATA_MIRROR" in message  # how to get the file
    assert not path.exists()


def test_damaged_cache_in_read_only_directory(cache, mirror, monkeypatch):
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(mirror))
    path = chapterdata.fetch("spanish-names/male_names.csv")
    path.write_bytes(b"truncated")
    _read_only(monkeypatch, (Path, "unlink"))
    with pytest.raises(chapterdata.DataCacheError) as err:
        chapterdata.fetch("spanish-names/male_names.csv")
    message = str(err.value)
    assert "damaged" in message and str(path) in message
    assert "not writable" in message and "CHAPTER_DATA_DIR" in message


def test_gutenberg_checksum_ignores_header_changes(cache, mirror, tmp_path, monkeypatch):
    edited = tmp_path / "edited"
    (edited / "time-machine").mkdir(parents=True)
    text = (mirror / "time-machine" / "pg35.txt").read_text(encoding="utf-8-sig")
    text = "\ufeffA NEW HEADER LINE\n" + text.replace("Title: The Time Machine", "Title: The Time Machine (new)")
    (edited / "time-machine" / "pg35.txt").write_text(text + "\nand a new footer\n", encoding="utf-8")
    monkeypatch.setenv("CHAPTER_DATA_MIRROR", str(edited))
    book = chapter.load_time_machine(preprocess=False)
    assert book.startswith("The Time Machine") and book.endswith("still lived on in the heart of man.")
    # ... but a change inside the book is caught
    (edited / "time-machine" / "pg35.txt").write_text(text.replace("Time Traveller", "Time Traveler", 1))
    (cache / "time-machine" / "pg35.txt").unlink()
    with pytest.raises(chapterdata.ChecksumError):
        chapterdata.fetch("time-machine/pg35.txt")


def test_unknown_file_and_bad_sex():
    with pytest.raises(KeyError, match="unknown data file"):
        chapterdata.fetch("nope.csv")
    with pytest.raises(ValueError, match="sex must be"):
        chapter.load_first_names("other")


def test_name_loaders_counts_and_alphabet():
    surnames, first = chapter.load_surnames(), chapter.load_first_names()
    assert len(surnames) == 73_793 and len(set(surnames)) == len(surnames) and surnames == sorted(surnames)
    assert len(first) == 48_687
    assert len(chapter.load_first_names("male")) == 24_584 and len(chapter.load_first_names("female")) == 24_756
    alphabet = set("".join(surnames)) | set("".join(first))
    assert alphabet == set("abcdefghijklmnopqrstuvwxyz ñç'")
    assert {"muñoz", "de la fuente", "maria carmen"} <= set(surnames) | set(first)
    assert all(n == n.strip() and n == n.lower() for n in surnames)


def test_time_machine_text_and_preprocessing():
    book = chapter.load_time_machine(preprocess=False)
    assert len(book) == 179_692 and "\ufeff" not in book and "Gutenberg" not in book
    digest = hashlib.sha256(chapterdata.gutenberg_book_text(
        chapterdata.fetch("time-machine/pg35.txt").read_text(encoding="utf-8-sig")).encode()).hexdigest()
    # the checksum that ../shared/data/README.md publishes for the text between the markers
    assert digest == "6a14f6514908bb0015086fb61100defd4075b0c24c179f17e42b8b151bc9fc23"
    text = chapter.load_time_machine()
    assert len(text) == 174_215
    assert set(text) == set("abcdefghijklmnopqrstuvwxyz ")
    assert "  " not in text and text == text.strip()
    assert text.startswith("the time machine an invention by h g wells")
    assert chapter._preprocess_text("  Hello,  World!\n—It's 1895.  ") == "hello world it s"
    assert chapter._preprocess_text("") == ""
