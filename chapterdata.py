"""The data layer of the chapter: fetch a dataset file once, verify it, keep it.

``fetch(path)`` returns the local path of one of the chapter's dataset files (``DATA_FILES``),
downloading it the first time it is asked for. It

* downloads each file once into ``data/`` beside this module (so it works from any current
  directory) and afterwards reads that cache; ``CHAPTER_DATA_DIR`` moves the cache elsewhere;
* verifies a SHA-256 checksum before anything is written (for the book, of the text between
  Project Gutenberg's START and END markers, which does not change when Gutenberg rewrites its
  licence header), and checks the cached copy on every call: a damaged file is fetched again;
* writes atomically (a temporary file, then a rename): an interrupted download leaves nothing;
* reads a local mirror instead of the network when ``CHAPTER_DATA_MIRROR`` names a directory
  laid out like the sources (``spanish-names/...``, ``time-machine/...``);
* fails with an error that says what is missing and what to do.

The loaders of ``chapter`` (``load_surnames``, ``load_first_names``, ``load_time_machine``) call
``fetch``; notebook 01 describes this module, and ``make data`` fetches every file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

_NAMES_URL = "https://raw.githubusercontent.com/jvalhondo/spanish-names-surnames/master/"
GUTENBERG_START = "*** START OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***"
GUTENBERG_END = "*** END OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***"


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it is published and what its content must hash to."""

    path: str  # relative to the cache (and to a mirror), e.g. "time-machine/pg35.txt"
    url: str
    sha256: str
    book_text_only: bool = False  # hash only the text between the Gutenberg markers


DATA_FILES = {
    f.path: f
    for f in [
        DataFile("time-machine/pg35.txt", "https://www.gutenberg.org/cache/epub/35/pg35.txt",
                 "6a14f6514908bb0015086fb61100defd4075b0c24c179f17e42b8b151bc9fc23",
                 book_text_only=True),
        DataFile("spanish-names/surnames_freq_ge_100.csv", _NAMES_URL + "surnames_freq_ge_100.csv",
                 "c67019ce17003739722f62dbce8bffa3447176c1c2fa178f6d2071cfc261e4b7"),
        DataFile("spanish-names/surnames_freq_ge_20_le_99.csv",
                 _NAMES_URL + "surnames_freq_ge_20_le_99.csv",
                 "f54e14ef1cb73286b394c13a604751b5f234234944c9c6ad4a4bf9f868d1c581"),
        DataFile("spanish-names/male_names.csv", _NAMES_URL + "male_names.csv",
                 "14a5dd22d253148d04f044ee373bb1637bda3c83c2707cf7ace912c1e9bace8e"),
        DataFile("spanish-names/female_names.csv", _NAMES_URL + "female_names.csv",
                 "55527e547db44f595b04c44d9c00881ca559e1cc38682b3d75ce72d5dd831948"),
    ]
}


class DataUnavailableError(RuntimeError):
    """A dataset file could be neither downloaded nor found in a mirror."""


class ChecksumError(ValueError):
    """A dataset file's content differs from the published one."""


class DataCacheError(OSError):
    """The download cache (``data/`` or ``$CHAPTER_DATA_DIR``) cannot be written to."""


def data_dir() -> Path:
    """The download cache: ``$CHAPTER_DATA_DIR`` if set, else ``data/`` beside chapter.py (and this module)."""
    if os.environ.get("CHAPTER_DATA_DIR"):
        return Path(os.environ["CHAPTER_DATA_DIR"])
    return Path(__file__).resolve().parent / "data"


def gutenberg_book_text(text: str) -> str:
    """The book between Project Gutenberg's START and END markers (header and licence removed)."""
    start, end = text.find(GUTENBERG_START), text.find(GUTENBERG_END)
    if start < 0 or end < start:
        raise ValueError("not a Project Gutenberg text of The Time Machine: START/END markers missing")
    return text[start + len(GUTENBERG_START):end]


def _content_sha256(data: bytes, spec: DataFile) -> str:
    if spec.book_text_only:
        try:
            data = gutenberg_book_text(data.decode("utf-8-sig")).encode("utf-8")
        except (UnicodeDecodeError, ValueError):
            return "unreadable"
    return hashlib.sha256(data).hexdigest()


def _read_source(spec: DataFile) -> bytes:
    """The file's bytes from the mirror (if ``$CHAPTER_DATA_MIRROR`` is set) or the network."""
    mirror = os.environ.get("CHAPTER_DATA_MIRROR")
    if mirror:
        source = Path(mirror) / spec.path
        if not source.is_file():
            raise DataUnavailableError(
                f"CHAPTER_DATA_MIRROR={mirror} has no file {spec.path}. Lay the mirror out like "
                f"the sources (e.g. {Path(mirror) / 'time-machine' / 'pg35.txt'}), or unset "
                "CHAPTER_DATA_MIRROR to download from the internet.")
        return source.read_bytes()
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DataUnavailableError(
            f"could not download {spec.url} ({err}). Either connect to the internet and retry, "
            f"or set CHAPTER_DATA_MIRROR to a local directory that holds {spec.path} "
            f"(a copy of the dataset laid out like its sources).") from None


def _cache_error(what: str, err: OSError) -> DataCacheError:
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = f"the cache directory {data_dir()} is not writable ({err.strerror})"
    else:
        why = f"{err.strerror or err}"
    return DataCacheError(
        f"{what}: {why}. Choose another cache directory, one you can write to, with the "
        "environment variable CHAPTER_DATA_DIR (e.g. CHAPTER_DATA_DIR=$HOME/chapter-data), or fix "
        "this one, then retry.")


def write_atomically(path: Path, write) -> None:
    """Write ``path`` by calling ``write(tmp)`` on a temporary file named for this process (two
    processes may write the same file at once), then rename it into place: readers see the old
    file or the whole new one. If anything fails the temporary file is removed and the OSError
    propagates."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)  # atomic
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # nothing was written there


def fetch(path: str) -> Path:
    """Return the local path of a dataset file, downloading and verifying it if needed."""
    if path not in DATA_FILES:
        raise KeyError(f"unknown data file {path!r}; known: {sorted(DATA_FILES)}")
    spec = DATA_FILES[path]
    target = data_dir() / spec.path
    damaged = False
    if target.is_file():
        if _content_sha256(target.read_bytes(), spec) == spec.sha256:
            return target
        damaged = True  # a stale or damaged cache entry: remove it and fetch the file again
        try:
            target.unlink()
        except OSError as err:
            raise _cache_error(f"the cached copy {target} is damaged (its checksum does not "
                               "match) and could not be removed", err) from None
    try:
        data = _read_source(spec)
    except DataUnavailableError as err:
        if damaged:
            raise DataUnavailableError(
                f"the cached copy {target} was damaged (its checksum did not match) and has been "
                f"removed, and a fresh copy could not be fetched: {err}") from None
        raise
    digest = _content_sha256(data, spec)
    if digest != spec.sha256:
        raise ChecksumError(
            f"{spec.path}: SHA-256 {digest} does not match the expected {spec.sha256}; nothing "
            "was saved. The source may have changed or the transfer broke: retry, or check the "
            "mirror's copy.")
    try:
        write_atomically(target, lambda tmp: tmp.write_bytes(data))
    except OSError as err:
        raise _cache_error(f"could not save {target}", err) from None
    return target


def fetch_all() -> list[Path]:
    """Fetch every dataset file of the chapter (``make data``)."""
    return [fetch(path) for path in DATA_FILES]


SURNAME_FILES = ("spanish-names/surnames_freq_ge_100.csv", "spanish-names/surnames_freq_ge_20_le_99.csv")
FIRST_NAME_FILES = {"male": "spanish-names/male_names.csv", "female": "spanish-names/female_names.csv"}
