"""Prepare's checks: each pair a reader found becomes an `Utterance` or a `Rejected` record whose
reason starts with a short category (`missing_audio: ...`).

The audio file exists and decodes to its end (once, so a truncated FLAC is caught before
alignment), the stretch lies inside it, the transcript keeps words after normalisation and they
are in a script the aligners can place (`scripts`), the id is unique. Splits are drawn from a hash
of the utterance id, so they never change when the corpus grows.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Iterable, Iterator

from manifests.audio import audio_info, decode_through
from manifests import storage
from manifests.errors import AudioError
from manifests.schema import Rejected, Utterance

from .base import RawUtterance
from .textnorm import foreign_words, normalize

SCRIPTS = ("latin", "any")


DECODE_CHUNK_SECONDS = 600.0  # audio is verified in pieces of this length: memory stays bounded on long files


EXAMPLES_PER_REASON = 5


END_TOLERANCE = 0.05  # seconds a stretch may end past its file's end and be clamped (NeMo rounds durations to 0.01 s)


class CheckNotes:
    """Things prepare changed without rejecting (a stretch clamped to its file's end), counted with examples."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[dict]] = {}

    def add(self, category: str, record_id: str, detail: str) -> None:
        self.counts[category] = self.counts.get(category, 0) + 1
        examples = self.examples.setdefault(category, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append({"id": record_id, "note": detail})

    def merge(self, other: "CheckNotes") -> None:
        for category, count in other.counts.items():
            self.counts[category] = self.counts.get(category, 0) + count
            examples = self.examples.setdefault(category, [])
            examples.extend(other.examples.get(category, [])[: EXAMPLES_PER_REASON - len(examples)])

    def table(self) -> dict[str, dict]:
        return {c: {"count": n, "examples": self.examples.get(c, [])} for c, n in sorted(self.counts.items())}


def split_of(utt_id: str, test_fraction: float) -> str:
    """`test` for a stable `test_fraction` share of ids, else `train`."""
    bucket = int(hashlib.sha1(utt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


class AudioChecker:
    """(sample rate, seconds) of each audio file, decoded once per file; an AudioError says why not."""

    def __init__(self, verify: bool) -> None:
        self.verify = verify
        self.cache: dict[str, tuple[int, float] | str] = {}

    def __call__(self, path: str) -> tuple[int, float]:
        if path not in self.cache:
            try:
                self.cache[path] = self._check(path)
            except AudioError as exc:  # kept as text: a cached exception's traceback would pin the caller's rows
                self.cache[path] = str(exc)
        found = self.cache[path]
        if isinstance(found, str):
            raise AudioError(found)
        return found

    def _check(self, path: str) -> tuple[int, float]:
        if not path:
            raise AudioError("missing_audio: no audio path given")
        if not storage.is_file(path):
            raise AudioError(f"missing_audio: audio file {path} does not exist")
        try:
            rate, length = audio_info(path)
        except AudioError as exc:
            raise AudioError(f"unreadable_audio: {exc}") from exc
        start = 0.0
        while self.verify and start < length:
            try:
                decode_through(path, start, min(DECODE_CHUNK_SECONDS, length - start))
            except AudioError as exc:
                raise AudioError(f"unreadable_audio: {path} does not decode past {start:.0f}s of its "
                                 f"{length:.1f}s (truncated or corrupt): {exc}") from exc
            start += DECODE_CHUNK_SECONDS
        return rate, length


def build_utterances(raws: Iterable[RawUtterance], corpus: str, test_fraction: float, scripts: str = "latin",
                     verify_audio: bool = True, end_tolerance: float = END_TOLERANCE,
                     notes: CheckNotes | None = None) -> Iterator[Utterance | Rejected]:
    """Checked utterances, or a `Rejected` record (reason `category: detail`) for each unusable pair.

    Of rows sharing an id, the first usable one is kept. A stretch ending at most `end_tolerance`
    seconds past its file's end is clamped to the file and counted in `notes`."""
    seen: set[str] = set()
    check_audio = AudioChecker(verify_audio)
    for raw in raws:
        checked = check_row(raw, corpus, test_fraction, scripts, check_audio, end_tolerance, notes)
        if isinstance(checked, Utterance):
            if checked.utt_id in seen:
                checked = Rejected("prepare", raw.utt_id, duplicate_reason(raw.utt_id))
            else:
                seen.add(checked.utt_id)
        yield checked


def duplicate_reason(utt_id: str) -> str:
    return f"duplicate_id: utt_id {utt_id!r} was seen before; only the first is kept"


def check_row(raw: RawUtterance, corpus: str, test_fraction: float, scripts: str, check_audio: "AudioChecker",
              end_tolerance: float = END_TOLERANCE, notes: CheckNotes | None = None) -> Utterance | Rejected:
    """One row's checks but the duplicate id (text, audio, stretch): an Utterance or why not."""
    norm = normalize(raw.text) if not raw.problem else ""
    problem = raw.problem or _text_problem(raw, norm, scripts)
    if problem:
        return Rejected("prepare", raw.utt_id, problem)
    try:
        rate, length = check_audio(raw.audio_path)
    except AudioError as exc:
        return Rejected("prepare", raw.utt_id, str(exc))
    duration = length - raw.offset if raw.duration is None else raw.duration
    if not (math.isfinite(raw.offset) and math.isfinite(duration)):  # NaN passes every comparison below
        return Rejected("prepare", raw.utt_id, f"bad_row: offset {raw.offset} / duration {duration} is not a finite "
                                               "number of seconds")
    end = raw.offset + duration
    if raw.offset < 0 or duration <= 0 or raw.offset >= length or end > length + end_tolerance + 1e-9:
        return Rejected("prepare", raw.utt_id, f"bad_stretch: {raw.offset:.3f}s+{duration:.3f}s lies outside "
                                               f"{raw.audio_path} ({length:.3f}s; {end_tolerance * 1000:g} ms past "
                                               "its end are tolerated)")
    if end > length + 1e-6:  # rounded durations (NeMo writes 0.01 s) end a few ms past the file: clamp, count
        if notes is not None:
            notes.add("clamped_to_file_end", raw.utt_id, f"{raw.offset:.3f}s+{duration:.3f}s ended "
                                                          f"{(end - length) * 1000:.1f} ms past {raw.audio_path} "
                                                          f"({length:.3f}s); clamped")
        duration = length - raw.offset
    return Utterance(raw.utt_id, raw.audio_path, float(raw.offset), float(duration), rate, raw.speaker, raw.text,
                     norm, corpus, split_of(raw.utt_id, test_fraction))


def _text_problem(raw: RawUtterance, norm: str, scripts: str) -> str:
    if not raw.text.strip():
        return "empty_transcript: the transcript is empty"
    if not norm:
        return f"no_words: transcript {raw.text!r} has no words after normalisation"
    foreign = foreign_words(norm) if scripts == "latin" else []
    if foreign:
        listed = ", ".join(f"{w} ({script})" for w, script in foreign[:5])
        return (f"foreign_script: words the en-US aligners cannot place: {listed}; set prepare.scripts: any to keep "
                "them for an aligner of that language")
    return ""


def reason_category(reason: str) -> str:
    """The short category a reason starts with (`missing_audio: ...` -> missing_audio)."""
    head = reason.split(":", 1)[0]
    return head if head.isidentifier() else "other"


def reasons_table(rejected: list[Rejected]) -> dict[str, dict]:
    """Counts by category, each with a few examples (id and full reason)."""
    table: dict[str, dict] = {}
    for r in rejected:
        entry = table.setdefault(reason_category(r.reason), {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES_PER_REASON:
            entry["examples"].append({"id": r.record_id, "reason": r.reason})
    return dict(sorted(table.items(), key=lambda kv: -kv[1]["count"]))
