"""What every corpus reader shares: the pair it yields (`RawUtterance`), absolute paths, stable ids
for rows without one, and the one decoding policy for transcripts.

Transcript files are decoded by one stated policy (`decode_text`): UTF-8 by default, or the
codec named by `prepare.encoding`; text that does not decode is rejected with the fix, never
repaired by guessing (detectors guess wrong on short transcripts: "naïve" read as "nadve").
A pair that cannot be used still comes out, with `problem` set to `category: what is wrong`, so
it is counted, never lost.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from manifests.errors import JstipError
from manifests.storage import is_url, join, relative_to

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")


LIST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


@dataclass(frozen=True)
class RawUtterance:
    """A transcript paired with its audio as found on disk; `problem` is set when it is unusable."""

    utt_id: str
    audio_path: str
    text: str
    speaker: str
    offset: float = 0.0
    duration: float | None = None
    problem: str = ""


def absolute(path: str | Path, base: Path) -> str:
    """`path` made absolute against the folder `base` (normalised, symlinks kept as given)."""
    if is_url(path):
        return str(path)
    if is_url(base):  # a list in object storage: its relative paths are objects beside it
        return join(str(base), str(path))
    path = os.path.expanduser(str(path))
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(_absolute_folder(str(base)), path))


@functools.lru_cache(maxsize=256)
def _absolute_folder(base: str) -> str:
    return os.path.abspath(base)


def stable_id(audio_path: str, base: Path, offset: float | None = None) -> str:
    """An id for a listed stretch without `utt_id`: the file's stem, a hash of its path relative to
    the list, and the offset in ms when the row gives one. Rows may be reordered, added or removed:
    the id of every other row stays the same."""
    relative = relative_to(audio_path, str(base))
    digest = hashlib.sha1(relative.encode()).hexdigest()[:8]
    stem = Path(audio_path.split("://", 1)[-1]).stem
    return f"{stem}-{digest}" if offset is None else f"{stem}-{digest}-{int(round(offset * 1000)):d}"


def decode_text(data: bytes, encoding: str = "utf-8", what: str = "transcript") -> tuple[str, str]:
    """(text, problem) for the bytes of a transcript under the encoding policy; problem "" when fine."""
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        try:
            return data.decode("utf-8-sig"), ""
        except UnicodeDecodeError as exc:
            return "", (f"bad_encoding: {what} is not UTF-8 (byte {data[exc.start]:#04x} at {exc.start}); "
                        "save it as UTF-8 or set prepare.encoding to its codec (e.g. latin-1, cp1252)")
    try:
        return data.decode(encoding), ""
    except UnicodeDecodeError as exc:
        return "", f"bad_encoding: {what} is not {encoding} (byte {data[exc.start]:#04x} at {exc.start})"


def check_encoding(encoding: str) -> None:
    """A JstipError unless `encoding` is a codec Python knows."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise JstipError(f"prepare.encoding {encoding!r} is not a known encoding; use utf-8, latin-1, cp1252, ...") from exc
