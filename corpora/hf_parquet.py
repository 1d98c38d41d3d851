"""Hugging Face datasets as a corpus: Parquet files (one, or a folder of them as the Hub stores a
dataset) with an `Audio` column, stored by `datasets` as a struct {bytes, path}.

Embedded bytes are written once to files under `audio_dir` (`<utt_id>.<wav|flac|...>`, skipped
when the same bytes are already there), because every later stage reads audio by path and
exports must point at real files; a cell with only a `path` is used in place (relative to the
Parquet file). The transcript comes from the first of `text`, `sentence`, `transcription`,
`transcript`, `normalized_text`; the speaker from `speaker_id`/`speaker`/`client_id`; the id from
`utt_id`/`id`/`audio_id`/`segment_id`, else from the audio's name and a hash of its bytes, so
ids never depend on row order. Rows are streamed batch by batch, never the whole dataset.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from manifests.errors import JstipError
from manifests.io import atomic_path

from .base import RawUtterance, absolute

TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")
ID_COLUMNS = ("utt_id", "id", "audio_id", "segment_id")
MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"))


def parquet_files(path: Path) -> list[Path]:
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise JstipError(f"{path} holds no .parquet files")
    return files


def audio_column(schema) -> str:
    """The column `datasets` decodes as audio: from the features metadata, else an `audio` struct."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if meta:
        features = json.loads(meta).get("info", {}).get("features", {})
        for name, feature in features.items():
            if isinstance(feature, dict) and feature.get("_type") == "Audio":
                return name
    if "audio" in schema.names:
        return "audio"
    raise JstipError(f"no Audio column in this Parquet dataset (columns {schema.names}); "
                     "a Hugging Face audio dataset stores one as a struct {bytes, path}")


def _pick(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in names), None)


def _suffix(data: bytes, name: str) -> str:
    suffix = Path(name or "").suffix.lower()
    if suffix in (".wav", ".flac", ".ogg", ".mp3", ".opus"):
        return suffix
    return next((ext for magic, ext in MAGIC if data.startswith(magic)), ".wav")


def write_bytes_once(data: bytes, path: Path) -> None:
    """Write `data` to `path` atomically unless the file already holds exactly these bytes."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def iter_hf(path: Path, audio_dir: Path) -> Iterator[RawUtterance]:
    """Utterances of a Parquet audio dataset; embedded audio is written under `audio_dir`."""
    for file in parquet_files(path):
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
        audio_col = audio_column(schema)
        text_col = _pick(schema.names, TEXT_COLUMNS)
        if text_col is None:
            raise JstipError(f"{file} has no transcript column (one of {', '.join(TEXT_COLUMNS)})")
        speaker_col, id_col = _pick(schema.names, SPEAKER_COLUMNS), _pick(schema.names, ID_COLUMNS)
        columns = [c for c in (audio_col, text_col, speaker_col, id_col) if c]
        row_number = 0
        for batch in parquet.iter_batches(batch_size=64, columns=columns):
            for row in batch.to_pylist():
                row_number += 1
                yield _utterance(row, audio_col, text_col, speaker_col, id_col, file, row_number, audio_dir)


def _utterance(row: dict, audio_col: str, text_col: str, speaker_col: str | None, id_col: str | None,
               file: Path, n: int, audio_dir: Path) -> RawUtterance:
    where = f"{file.name} row {n}"
    cell = row.get(audio_col)
    text = row.get(text_col)
    given = str(row[id_col]).strip() if id_col and row.get(id_col) not in (None, "") else ""
    speaker = str(row.get(speaker_col) or "") if speaker_col else ""
    clean = " ".join(text.split()) if isinstance(text, str) else ""
    if not isinstance(cell, dict) or not (cell.get("bytes") or cell.get("path")):
        return RawUtterance(given or f"{file.name}:{n}", "", clean, speaker,
                            problem=f"missing_audio: {where} has no audio bytes or path")
    data, name = cell.get("bytes"), cell.get("path") or ""
    if data:
        utt_id = given or f"{Path(name).stem or 'audio'}-{hashlib.sha1(data).hexdigest()[:10]}"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in utt_id)
        audio_path = absolute(audio_dir / f"{safe}{_suffix(data, name)}", Path.cwd())
        write_bytes_once(data, Path(audio_path))
    else:
        audio_path = absolute(name, file.parent)
        utt_id = given or Path(name).stem
    problem = "" if isinstance(text, str) else f"no_transcript: {where} has no {text_col}"
    return RawUtterance(utt_id, audio_path, clean, speaker or Path(audio_path).stem, problem=problem)
