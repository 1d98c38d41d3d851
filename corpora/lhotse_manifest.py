"""Lhotse manifests as a corpus: a CutSet (`cuts.jsonl.gz`) or a supervision manifest with its
recording manifest beside it (`*_supervisions_*.jsonl.gz` + `*_recordings_*.jsonl.gz`, as
`lhotse prepare` writes them).

Read as JSON lines directly (Lhotse's documented serialisation), so Lhotse need not be
installed. One utterance per supervision: its id, text and speaker, the recording's file, the
offset `cut.start + supervision.start` in the file and the supervision's duration. Recordings
whose source is not a file (URL, command, memory) and supervisions without a recording are
problem records with the reason. Relative source paths are resolved against the manifest's folder.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator

from manifests.errors import JstipError

from .base import RawUtterance, absolute


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield n, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield n, f"line {n} is not JSON: {exc}"
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise JstipError(f"cannot read Lhotse manifest {path}: {exc}") from exc


def looks_like_lhotse(path: Path) -> bool:
    """True when the first record of a JSON-lines file is a Lhotse cut, supervision or recording."""
    for _, record in _lines(path):
        return isinstance(record, dict) and (
            "supervisions" in record or record.get("type", "").endswith("Cut")
            or {"recording_id", "start", "duration"} <= set(record) or {"sources", "sampling_rate"} <= set(record))
    return False


def iter_lhotse(path: Path) -> Iterator[RawUtterance]:
    """Utterances of a Lhotse CutSet or supervision manifest."""
    first = next((r for _, r in _lines(path) if isinstance(r, dict)), None)
    if first is None:
        raise JstipError(f"{path} holds no Lhotse records")
    if {"sources", "sampling_rate"} <= set(first):
        raise JstipError(f"{path} is a Lhotse recording manifest; give the supervision manifest "
                         "(its recordings are found beside it) or a CutSet")
    if "supervisions" in first or first.get("type", "").endswith("Cut"):
        yield from _from_cuts(path)
    else:
        yield from _from_supervisions(path)


def _source(recording: dict, base: Path) -> tuple[str, str]:
    """(absolute audio path, problem) of a recording's first source."""
    sources = recording.get("sources") or []
    if not sources:
        return "", f"bad_row: recording {recording.get('id')!r} has no sources"
    source = sources[0]
    if source.get("type") != "file":
        return "", (f"unsupported_source: recording {recording.get('id')!r} has a {source.get('type')!r} source; "
                    "only files are read (lhotse: save the audio to files first)")
    return absolute(source["source"], base), ""


def _utterance(sup: dict, audio: str, offset: float, problem: str, where: str) -> RawUtterance:
    sup_id = str(sup.get("id") or where)
    start, duration = sup.get("start", 0.0), sup.get("duration")
    if not problem and (not isinstance(start, (int, float)) or not isinstance(duration, (int, float))):
        problem = f"bad_row: {where}: start/duration {start!r}/{duration!r} are not numbers"
    if problem:
        return RawUtterance(sup_id, audio, str(sup.get("text") or ""), "", problem=problem)
    text = sup.get("text")
    return RawUtterance(sup_id, audio, " ".join(str(text or "").split()), str(sup.get("speaker") or ""),
                        float(offset + start), float(duration))


def _from_cuts(path: Path) -> Iterator[RawUtterance]:
    for n, cut in _lines(path):
        where = f"{path.name} line {n}"
        if not isinstance(cut, dict):
            yield RawUtterance(f"{path.name}:{n}", "", "", "", problem=f"bad_row: {where}: {cut}")
            continue
        recording = cut.get("recording") or {}
        audio, problem = _source(recording, path.parent) if recording else ("", f"bad_row: cut {cut.get('id')!r} has no recording")
        supervisions = cut.get("supervisions") or []
        if not supervisions:
            yield RawUtterance(str(cut.get("id") or f"{path.name}:{n}"), audio, "", "",
                               problem=f"no_transcript: cut {cut.get('id')!r} has no supervision")
        for sup in supervisions:
            yield _utterance(sup, audio, float(cut.get("start") or 0.0), problem, where)


def _from_supervisions(path: Path) -> Iterator[RawUtterance]:
    rec_path = path.with_name(path.name.replace("supervisions", "recordings"))
    if rec_path == path or not rec_path.exists():
        raise JstipError(f"the recordings of supervision manifest {path} were not found at {rec_path}; "
                         "keep lhotse's *_recordings_* file beside it, or give a CutSet")
    recordings = {r["id"]: r for _, r in _lines(rec_path) if isinstance(r, dict) and "id" in r}
    for n, sup in _lines(path):
        where = f"{path.name} line {n}"
        if not isinstance(sup, dict):
            yield RawUtterance(f"{path.name}:{n}", "", "", "", problem=f"bad_row: {where}: {sup}")
            continue
        recording = recordings.get(sup.get("recording_id"))
        if recording is None:
            yield RawUtterance(str(sup.get("id") or where), "", str(sup.get("text") or ""), "",
                               problem=f"missing_audio: recording {sup.get('recording_id')!r} is not in {rec_path.name}")
            continue
        audio, problem = _source(recording, rec_path.parent)
        yield _utterance(sup, audio, 0.0, problem, where)
