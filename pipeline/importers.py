"""Corpus importers: find (audio, transcript) pairs in the layouts users already have.

Layouts (`--format`, `auto` detects): an MFA-style directory (`speaker/*.wav|flac` beside
`.lab`/`.txt`), the LibriSpeech layout (`*.trans.txt` + flac), a CSV/TSV/JSONL list or a NeMo
manifest (`pipeline.import_lists`), a Lhotse CutSet or supervision manifest
(`pipeline.import_lhotse`) and a Hugging Face dataset in Parquet with an `Audio` column
(`pipeline.import_hf`). Importers only find pairs; `prepare` checks the audio and normalises
the text. Every pair carries an absolute audio path (relative paths are resolved against the
list's own folder), so manifests work from any directory. A pair that cannot be used still
comes out, with `problem` set to `category: what is wrong`, so it is counted, never lost.

Transcript files are decoded by one stated policy (`decode_text`): UTF-8 by default, or the
codec named by `prepare.encoding`; text that does not decode is rejected with the fix, never
repaired by guessing (detectors guess wrong on short transcripts: "naïve" read as "nadve").
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from manifests.errors import JstipError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
FORMATS = ("auto", "mfa", "librispeech", "list", "nemo", "lhotse", "hf")
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
    path = os.path.expanduser(str(path))
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(os.path.abspath(base), path))


def stable_id(audio_path: str, base: Path, offset: float | None = None) -> str:
    """An id for a listed stretch without `utt_id`: the file's stem, a hash of its path relative to
    the list, and the offset in ms when the row gives one. Rows may be reordered, added or removed:
    the id of every other row stays the same."""
    relative = os.path.relpath(audio_path, os.path.abspath(base))
    digest = hashlib.sha1(relative.encode()).hexdigest()[:8]
    stem = Path(audio_path).stem
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


def detect_format(path: Path) -> str:
    """Guess a corpus layout from what is on disk."""
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".parquet"):
            return "hf"
        if name.endswith((".jsonl.gz", ".json.gz")) or name.endswith((".jsonl", ".json")):
            from .import_lhotse import looks_like_lhotse

            return "lhotse" if looks_like_lhotse(path) else "list"
        if name.endswith(LIST_SUFFIXES):
            return "list"
        raise JstipError(f"{path} is a file but not a .csv/.tsv/.jsonl/.json list, a Lhotse manifest or a "
                         "Parquet dataset; pass one of those or a corpus directory")
    if not path.is_dir():
        raise JstipError(f"corpus {path} does not exist; set prepare.corpus (or --corpus) to your data")
    if next(path.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    has_audio = any(p.suffix.lower() in AUDIO_SUFFIXES for p in path.rglob("*"))
    if not has_audio and next(path.rglob("*.parquet"), None) is not None:
        return "hf"
    return "mfa"


def iter_corpus(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", audio_dir: str | Path = "") -> Iterator[RawUtterance]:
    """Pairs found under `path` in layout `fmt` (`auto` detects it); `audio_dir` receives audio
    embedded in a Parquet dataset."""
    path = Path(path)
    if fmt not in FORMATS:
        raise JstipError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.exists():
        raise JstipError(f"corpus {path} does not exist; set prepare.corpus (or --corpus) to your data")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt in ("list", "nemo"):
        from .import_lists import iter_list

        return iter_list(path, encoding)
    if fmt == "lhotse":
        from .import_lhotse import iter_lhotse

        return iter_lhotse(path)
    if fmt == "hf":
        from .import_hf import iter_hf

        return iter_hf(path, Path(audio_dir or "data/prepared_audio"))
    if not path.is_dir():
        raise JstipError(f"format {fmt} needs a corpus directory, got the file {path}")
    return iter_mfa_dir(path, encoding) if fmt == "mfa" else iter_librispeech(path, encoding)


def iter_mfa_dir(root: Path, encoding: str = "utf-8") -> Iterator[RawUtterance]:
    """MFA layout: each audio file with a same-named `.lab` or `.txt`; the folder is the speaker.
    A transcript without audio is reported too."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio_stems = {p.with_suffix("") for p in files if p.suffix.lower() in AUDIO_SUFFIXES}
    for file in files:
        suffix = file.suffix.lower()
        speaker = file.parent.name if file.parent != root else file.stem
        if suffix in (".lab", ".txt") and file.with_suffix("") not in audio_stems:
            if suffix == ".lab" or not file.name.endswith(".trans.txt"):
                yield RawUtterance(file.stem, absolute(file, Path.cwd()), "", speaker,
                                   problem=f"missing_audio: transcript {file.name} has no audio file beside it "
                                           f"({'/'.join(AUDIO_SUFFIXES)})")
            continue
        if suffix not in AUDIO_SUFFIXES:
            continue
        transcript = next((file.with_suffix(s) for s in (".lab", ".txt") if file.with_suffix(s).exists()), None)
        if transcript is None:
            yield RawUtterance(file.stem, absolute(file, Path.cwd()), "", speaker,
                               problem="no_transcript: no .lab or .txt transcript beside the audio")
            continue
        text, problem = decode_text(transcript.read_bytes(), encoding, transcript.name)
        yield RawUtterance(file.stem, absolute(file, Path.cwd()), " ".join(text.split()), speaker, problem=problem)


def iter_librispeech(root: Path, encoding: str = "utf-8") -> Iterator[RawUtterance]:
    """LibriSpeech: `SPEAKER-CHAPTER.trans.txt` lines `UTT_ID TEXT`, audio `UTT_ID.flac` beside it."""
    for listing in sorted(root.rglob("*.trans.txt")):
        for n, raw_line in enumerate(listing.read_bytes().splitlines(), start=1):
            line, problem = decode_text(raw_line, encoding, f"{listing.name} line {n}")
            if not line.strip() and not problem:
                continue
            utt_id, _, text = line.strip().partition(" ")
            utt_id = utt_id or f"{listing.name}:{n}"
            audio = listing.parent / f"{utt_id}.flac"
            if not problem and not audio.exists():
                problem = f"missing_audio: audio {audio.name} listed in {listing.name} does not exist"
            yield RawUtterance(utt_id, absolute(audio, Path.cwd()), text.strip(), utt_id.split("-")[0], problem=problem)


def iter_text_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[str, str, str]]:
    """(text_id, line, problem) for each non-empty line of a domain text file."""
    path = Path(path)
    if not path.is_file():
        raise JstipError(f"domain text file {path} does not exist; fix prepare.domain_text (or --domain-text)")
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            line, problem = decode_text(raw, encoding, f"{path.name} line {n}")
            if line.strip() or problem:
                yield f"{path.stem}-{n:06d}", " ".join(line.split()), problem


def domain_text_files(spec: str) -> list[Path]:
    """The files of `prepare.domain_text`: a file, a directory (its *.txt), or a comma-separated list."""
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        path = Path(part)
        if path.is_dir():
            found = sorted(path.rglob("*.txt"))
            if not found:
                raise JstipError(f"domain text directory {path} holds no .txt files")
            files += found
        else:
            files.append(path)
    return files
