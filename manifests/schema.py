"""The data contract: every record that crosses a stage boundary, with its Arrow schema.

Each record is a frozen dataclass next to the `pyarrow` schema it is stored with, so that
a stage can work on plain Python objects while the Parquet files stay typed and checked.
All times are seconds (float64) relative to the utterance's own start; frame indices are
never stored because they depend on the encoder.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Type, TypeVar

import pyarrow as pa

T = TypeVar("T")

SPEECH = "speech"
TEXT = "text"
TOKEN = "token"  # a span holding one special token by name (see manifests/formats.py)
MODALITIES = (SPEECH, TEXT, TOKEN)
ALIGN_OK = "ok"
ALIGN_FAILED = "failed"
# words placed, but not all of the transcript or the speech is covered (the reason says what is left out)
ALIGN_PARTIAL = "partial"
# `tts_text`: transcripts of the TTS pairs given as text; `tts_interleave`: interleaved sequences of
# the TTS pairs over the synthesizer's word times (the paper's Table I, best row)
SAMPLE_KINDS = ("asr", "text", "interleave_word", "interleave_segment", "interleave_mixed", "tts_pair", "tts_text",
                "tts_interleave")


@dataclass(frozen=True)
class Utterance:
    """One transcribed stretch of audio: a whole file, or `offset`..`offset+duration` of it."""

    utt_id: str
    audio_path: str
    offset: float
    duration: float
    sample_rate: int
    speaker: str
    text: str
    norm_text: str
    corpus: str
    split: str


UTTERANCE_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("audio_path", pa.string()),
        ("offset", pa.float64()),
        ("duration", pa.float64()),
        ("sample_rate", pa.int32()),
        ("speaker", pa.string()),
        ("text", pa.string()),
        ("norm_text", pa.string()),
        ("corpus", pa.string()),
        ("split", pa.string()),
    ]
)


@dataclass(frozen=True)
class WordSpan:
    """A word of `norm_text` placed in time; `score` is the backend's confidence (higher is better)."""

    word: str
    start: float
    end: float
    score: float = 0.0


WORD_TYPE = pa.struct(
    [("word", pa.string()), ("start", pa.float64()), ("end", pa.float64()), ("score", pa.float64())]
)


@dataclass(frozen=True)
class PhoneSpan:
    """A phone placed in time (ARPAbet for pocketsphinx, the model's phone set for MFA)."""

    phone: str
    start: float
    end: float


PHONE_TYPE = pa.struct([("phone", pa.string()), ("start", pa.float64()), ("end", pa.float64())])


@dataclass(frozen=True)
class Alignment:
    """The aligner's verdict on one utterance: word spans when `status == "ok"`, else a reason.

    `phones` is empty for backends that do not place phones.
    """

    utt_id: str
    aligner: str
    status: str
    reason: str
    words: tuple[WordSpan, ...] = ()
    phones: tuple[PhoneSpan, ...] = ()


ALIGNMENT_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("aligner", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("words", pa.list_(WORD_TYPE)),
        ("phones", pa.list_(PHONE_TYPE)),
    ]
)


@dataclass(frozen=True)
class Text:
    """Transcript-only domain text: no audio, used for `text` samples."""

    text_id: str
    text: str
    norm_text: str
    source: str


TEXT_SCHEMA = pa.schema(
    [("text_id", pa.string()), ("text", pa.string()), ("norm_text", pa.string()), ("source", pa.string())]
)


@dataclass(frozen=True)
class Span:
    """A stretch of a sample: speech (with its times), text, or one special token (`text` names it).

    Text and token spans have times 0..0. The token formats are in `manifests/formats.py`.
    """

    modality: str
    text: str
    start: float = 0.0
    end: float = 0.0


SPAN_TYPE = pa.struct(
    [("modality", pa.string()), ("text", pa.string()), ("start", pa.float64()), ("end", pa.float64())]
)


@dataclass(frozen=True)
class Sample:
    """One training sequence: an ordered list of speech and text spans over one source record.

    `audio` optionally holds the FLAC bytes of `offset`..`offset + duration` of `audio_path`
    (then span times are relative to the start of those bytes, as always), so that training
    needs no access to the corpus; None means read `audio_path`. In Parquet the column is
    Hugging Face's `Audio` struct {bytes, path}, so `datasets` decodes it as audio.
    """

    sample_id: str
    kind: str
    source_id: str
    audio_path: str
    offset: float
    duration: float
    spans: tuple[Span, ...]
    n_speech_words: int
    n_text_words: int
    audio: bytes | None = None


# Hugging Face `datasets.Audio` storage: the schema metadata below makes `load_dataset("parquet")`
# decode the column as audio. `path` is a name for the bytes (`<sample_id>.flac`), not a file to open.
AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
HF_FEATURES = {b"huggingface": json.dumps({"info": {"features": {"audio": {"_type": "Audio"}}}}).encode()}

SAMPLE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("kind", pa.string()),
        ("source_id", pa.string()),
        ("audio_path", pa.string()),
        ("offset", pa.float64()),
        ("duration", pa.float64()),
        ("spans", pa.list_(SPAN_TYPE)),
        ("n_speech_words", pa.int32()),
        ("n_text_words", pa.int32()),
        ("audio", AUDIO_TYPE),
    ],
    metadata=HF_FEATURES,
)


@dataclass(frozen=True)
class Rejected:
    """An input that did not become a record, and why: nothing is dropped silently."""

    stage: str
    record_id: str
    reason: str


REJECTED_SCHEMA = pa.schema([("stage", pa.string()), ("record_id", pa.string()), ("reason", pa.string())])


@dataclass(frozen=True)
class Hypothesis:
    """A decoded transcript of a held-out utterance next to its reference."""

    utt_id: str
    reference: str
    hypothesis: str


HYPOTHESIS_SCHEMA = pa.schema([("utt_id", pa.string()), ("reference", pa.string()), ("hypothesis", pa.string())])


SCHEMAS: dict[type, pa.Schema] = {
    Utterance: UTTERANCE_SCHEMA,
    Alignment: ALIGNMENT_SCHEMA,
    Text: TEXT_SCHEMA,
    Sample: SAMPLE_SCHEMA,
    Rejected: REJECTED_SCHEMA,
    Hypothesis: HYPOTHESIS_SCHEMA,
}
# Columns added after manifests were first written: older files lack them and read back with
# the field's default. Any other missing column is an error.
ADDED_COLUMNS: dict[type, frozenset[str]] = {Alignment: frozenset({"phones"}), Sample: frozenset({"audio"})}

_NESTED: dict[tuple[type, str], type] = {
    (Alignment, "words"): WordSpan, (Alignment, "phones"): PhoneSpan, (Sample, "spans"): Span,
}


def schema_of(record_type: type) -> pa.Schema:
    """The Arrow schema a record type is stored with."""
    return SCHEMAS[record_type]


def to_row(record: Any) -> dict[str, Any]:
    """A record as a plain dict (nested dataclasses become dicts), ready for Arrow."""
    row = dataclasses.asdict(record)
    if isinstance(record, Sample):
        row["audio"] = audio_cell(record.audio, record.sample_id)
    return row


def audio_cell(data: bytes | None, sample_id: str) -> dict[str, Any] | None:
    """Embedded FLAC bytes as the stored `audio` struct (None stays None)."""
    return None if data is None else {"bytes": data, "path": f"{sample_id}.flac"}


def audio_bytes(cell: Any) -> bytes | None:
    """The bytes of a stored `audio` value: the struct, or plain bytes in shards written before it."""
    if isinstance(cell, dict):
        return cell.get("bytes")
    return cell


def to_table(records: Iterable[Any], record_type: type) -> pa.Table:
    """Records of one type as an Arrow table with that type's schema (checked by Arrow)."""
    rows = [to_row(r) for r in records]
    return pa.Table.from_pylist(rows, schema=schema_of(record_type))


def from_row(row: dict[str, Any], record_type: Type[T]) -> T:
    """Build a record from a dict read back from Arrow, rebuilding nested spans as tuples."""
    kwargs = {}
    for f in dataclasses.fields(record_type):
        value = row[f.name]
        nested = _NESTED.get((record_type, f.name))
        if nested is not None:
            value = tuple(nested(**v) for v in (value or ()))
        elif record_type is Sample and f.name == "audio":
            value = audio_bytes(value)
        kwargs[f.name] = value
    return record_type(**kwargs)


def from_table(table: pa.Table, record_type: Type[T]) -> Iterator[T]:
    """Records from an Arrow table (or record batch) of that type's schema."""
    for row in table.to_pylist():
        yield from_row(row, record_type)


__all__ = [
    "Alignment", "Hypothesis", "PhoneSpan", "Rejected", "Sample", "Span", "Text", "Utterance", "WordSpan",
    "schema_of", "to_table", "from_table", "from_row", "to_row", "audio_bytes", "audio_cell",
]
