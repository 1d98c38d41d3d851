"""Corpus importers: find (audio, transcript) pairs in the layouts users already have.

Supported: an MFA-style directory (`speaker/*.wav|flac` beside `.lab`/`.txt`), the
LibriSpeech layout (`*.trans.txt` + flac), and a CSV/JSONL list with columns `audio`,
`text` and optional `offset`, `duration`, `speaker`, `utt_id`. Importers only find pairs;
checking the audio and normalising the text happens in `prepare`.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from manifests.errors import JstipError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
FORMATS = ("auto", "mfa", "librispeech", "list")


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


def detect_format(path: Path) -> str:
    """Guess a corpus layout from what is on disk."""
    if path.is_file():
        if path.suffix.lower() in (".csv", ".jsonl", ".json", ".tsv"):
            return "list"
        raise JstipError(f"{path} is a file but not a .csv/.tsv/.jsonl list; pass a corpus directory or a list")
    if not path.is_dir():
        raise JstipError(f"corpus {path} does not exist")
    if next(path.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    return "mfa"


def iter_corpus(path: str | Path, fmt: str = "auto") -> Iterator[RawUtterance]:
    """Pairs found under `path` in layout `fmt` (`auto` detects it)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise JstipError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    return {"mfa": iter_mfa_dir, "librispeech": iter_librispeech, "list": iter_list}[fmt](path)


def iter_mfa_dir(root: Path) -> Iterator[RawUtterance]:
    """MFA layout: each audio file with a same-named `.lab` or `.txt`; the folder is the speaker."""
    audio_files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    for audio in audio_files:
        speaker = audio.parent.name if audio.parent != root else audio.stem
        transcript = next((audio.with_suffix(s) for s in (".lab", ".txt") if audio.with_suffix(s).exists()), None)
        if transcript is None:
            yield RawUtterance(audio.stem, str(audio), "", speaker, problem="no .lab or .txt transcript beside the audio")
            continue
        text = transcript.read_text(encoding="utf-8", errors="replace").strip()
        yield RawUtterance(audio.stem, str(audio), " ".join(text.split()), speaker)


def iter_librispeech(root: Path) -> Iterator[RawUtterance]:
    """LibriSpeech: `SPEAKER-CHAPTER.trans.txt` lines `UTT_ID TEXT`, audio `UTT_ID.flac` beside it."""
    for listing in sorted(root.rglob("*.trans.txt")):
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = listing.parent / f"{utt_id}.flac"
            problem = "" if audio.exists() else f"audio {audio.name} listed in {listing.name} is missing"
            yield RawUtterance(utt_id, str(audio), text.strip(), utt_id.split("-")[0], problem=problem)


def iter_list(path: Path) -> Iterator[RawUtterance]:
    """A CSV/TSV (header row) or JSONL list; relative audio paths are relative to the list file."""
    rows = _read_rows(path)
    for n, row in enumerate(rows, start=1):
        if row.get("_error"):
            yield RawUtterance(f"{path.stem}-{n:06d}", "", "", "", problem=row["_error"])
            continue
        audio = str(row.get("audio") or row.get("audio_path") or "").strip()
        if not audio:
            yield RawUtterance(f"{path.stem}-{n:06d}", "", str(row.get("text") or ""), "", problem=f"row {n} has no 'audio'")
            continue
        audio_path = Path(audio) if Path(audio).is_absolute() else path.parent / audio
        try:
            offset = float(row.get("offset") or 0.0)
            duration = float(row["duration"]) if row.get("duration") not in (None, "") else None
        except ValueError as exc:
            yield RawUtterance(f"{path.stem}-{n:06d}", str(audio_path), "", "", problem=f"row {n}: {exc}")
            continue
        utt_id = str(row.get("utt_id") or row.get("id") or f"{audio_path.stem}-{n:06d}")
        speaker = str(row.get("speaker") or audio_path.stem)
        yield RawUtterance(utt_id, str(audio_path), " ".join(str(row.get("text") or "").split()), speaker, offset, duration)


def _read_rows(path: Path) -> list[dict]:
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    rows.append({"audio": "", "text": "", "_error": f"line {n} is not JSON: {exc}"})
        return rows
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise JstipError(f"{path} needs a header row with at least 'audio' and 'text' columns")
        return list(reader)


def iter_text_lines(path: str | Path) -> Iterator[tuple[str, str]]:
    """(text_id, line) for each non-empty line of a domain text file."""
    path = Path(path)
    if not path.is_file():
        raise JstipError(f"domain text file {path} does not exist")
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield f"{path.stem}-{n:06d}", " ".join(line.split())
