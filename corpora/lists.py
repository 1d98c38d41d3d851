"""List corpora: CSV/TSV with a header row, JSON lines, and NeMo manifests.

Columns (CSV) or keys (JSONL): `audio` (or `audio_path`, or NeMo's `audio_filepath`), `text`,
and optional `offset`, `duration` (seconds; empty or null: to the end of the file), `speaker`,
`utt_id` (or `id`). Relative audio paths are relative to the list file. Without `utt_id` a row's
id comes from its audio path and offset (`importers.stable_id`), never from its position, so
reordering, adding or removing rows changes no other row's id (nor its split).

A row that cannot be read (not JSON, a JSON array or string, bytes that are not the list's
encoding, a non-numeric or non-finite offset/duration) becomes a problem record, under its
`utt_id` when it has one, else under `LIST:line N`.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from manifests.errors import JstipError
from manifests.storage import open_binary

from .base import RawUtterance, absolute, decode_text, stable_id

AUDIO_KEYS = ("audio", "audio_path", "audio_filepath")
ID_KEYS = ("utt_id", "id")


def iter_list(path: Path, encoding: str = "utf-8") -> Iterator[RawUtterance]:
    """Utterances of a CSV/TSV/JSONL list or NeMo manifest, one per row, in file order."""
    for where, row, problem in _rows(path, encoding):
        utterance = _from_row(row, where, path)
        yield utterance if not problem else RawUtterance(utterance.utt_id, utterance.audio_path, "",
                                                          utterance.speaker, problem=problem)


def _rows(path: Path, encoding: str) -> Iterator[tuple[str, Any, str]]:
    """(where, row, problem) for each row: a dict (or a str saying why there is none) and what is wrong.

    The file is read as a stream, a line or a CSV record at a time: a list of millions of rows
    never sits in memory whole."""
    name = path.name.lower()
    with open_binary(path) as raw_file:
        data = gzip.GzipFile(fileobj=raw_file) if name.endswith(".gz") else raw_file
        if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
            yield from _json_rows(data, path, encoding)
        else:
            yield from _csv_rows(data, path, encoding)


def _json_rows(data: BinaryIO, path: Path, encoding: str) -> Iterator[tuple[str, Any, str]]:
    for n, raw in enumerate(data, start=1):
        if not raw.strip():
            continue
        where = f"{path.name} line {n}"
        line, problem = decode_text(raw.rstrip(b"\r\n"), encoding, where)
        if problem:  # the id may still be readable: the row is filed under it
            line = raw.decode("utf-8", errors="surrogateescape")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, problem or f"bad_row: {where} is not JSON: {exc}", problem
            continue
        yield where, row if isinstance(row, dict) else (
            f"bad_row: {where} is a JSON {type(row).__name__}, not an object with audio and text"), problem


def _csv_rows(data: BinaryIO, path: Path, encoding: str) -> Iterator[tuple[str, Any, str]]:
    """CSV/TSV records; with UTF-8, undecodable bytes are kept as surrogates so only their rows are
    rejected; with another codec, bytes it cannot decode stop the run with the line named."""
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    text = io.TextIOWrapper(data, encoding="utf-8-sig" if utf8 else encoding,
                            errors="surrogateescape" if utf8 else "strict", newline="")
    reader = csv.DictReader(text, delimiter="\t" if path.name.lower().endswith(".tsv") else ",")
    try:
        fields = reader.fieldnames or []
        if "text" not in fields or not any(k in fields for k in AUDIO_KEYS):
            raise JstipError(f"{path} needs a header row with columns 'audio' and 'text' (found {fields})")
        for row in reader:
            where = f"{path.name} line {reader.line_num}"
            bad = [k for k, v in row.items() if isinstance(v, str) and _undecodable(v)]
            problem = (f"bad_encoding: {where} is not UTF-8 (column {bad[0]}); save the list as UTF-8 or set "
                       "prepare.encoding to its codec (e.g. latin-1)") if bad else ""
            if None in row:
                problem = problem or f"bad_row: {where} has more fields than the header"
            yield where, row, problem
    except UnicodeDecodeError as exc:
        raise JstipError(f"bad_encoding: {path.name} is not {encoding} after line {reader.line_num} "
                         f"(byte {exc.object[exc.start]:#04x})") from exc


def _undecodable(value: str) -> bool:
    """True when `value` holds bytes that did not decode (kept as surrogates by surrogateescape)."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _number(row: dict, key: str, where: str) -> tuple[float | None, str]:
    """A finite float from `row[key]`, None when absent/empty/null, or a problem."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, f"bad_row: {where}: {key} {value!r} is not a number of seconds"
    try:
        number = float(value)
    except ValueError:
        return None, f"bad_row: {where}: {key} {value!r} is not a number of seconds"
    if not math.isfinite(number):
        return None, f"bad_row: {where}: {key} {value!r} is not a finite number of seconds"
    return number, ""


def _from_row(row: Any, where: str, path: Path) -> RawUtterance:
    if isinstance(row, str):
        return RawUtterance(f"{path.name}:{where.rsplit(' ', 1)[-1]}", "", "", "", problem=row)
    given_id = next((str(row[k]).strip() for k in ID_KEYS if row.get(k) not in (None, "") and not
                     (isinstance(row[k], str) and _undecodable(row[k]))), "")
    audio = next((row[k] for k in AUDIO_KEYS if row.get(k) not in (None, "")), None)
    text = row.get("text")
    fallback_id = given_id or f"{path.name}:{where.rsplit(' ', 1)[-1]}"
    if not isinstance(audio, str) or not audio.strip():
        problem = f"bad_row: {where} has no audio path (column {'/'.join(AUDIO_KEYS)})" if audio is None else \
            f"bad_row: {where}: audio {audio!r} is not a path"
        return RawUtterance(fallback_id, "", str(text or ""), "", problem=problem)
    audio_path = absolute(audio.strip(), path.parent)
    offset, problem = _number(row, "offset", where)
    duration, duration_problem = _number(row, "duration", where)
    problem = problem or duration_problem
    if text is not None and not isinstance(text, str):
        problem = problem or f"bad_row: {where}: text {text!r} is not a string"
    utt_id = given_id or stable_id(audio_path, path.parent, offset)
    speaker = str(row.get("speaker") or row.get("speaker_id") or "").strip() or Path(audio_path).stem
    clean_text = " ".join(text.split()) if isinstance(text, str) else ""
    return RawUtterance(utt_id, audio_path, clean_text, speaker, offset or 0.0, duration, problem)
