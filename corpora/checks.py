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

from manifests.audio import audio_info, load_audio
from manifests.errors import AudioError
from manifests.schema import Rejected, Utterance

from .base import RawUtterance
from .textnorm import foreign_words, normalize

SCRIPTS = ("latin", "any")


DECODE_CHUNK_SECONDS = 600.0  # audio is verified in pieces of this length: memory stays bounded on long files


EXAMPLES_PER_REASON = 5


def split_of(utt_id: str, test_fraction: float) -> str:
    """`test` for a stable `test_fraction` share of ids, else `train`."""
    bucket = int(hashlib.sha1(utt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


class AudioChecker:
    """(sample rate, seconds) of each audio file, decoded once per file; an AudioError says why not."""

    def __init__(self, verify: bool) -> None:
        self.verify = verify
        self.cache: dict[str, tuple[int, float] | AudioError] = {}

    def __call__(self, path: str) -> tuple[int, float]:
        if path not in self.cache:
            try:
                self.cache[path] = self._check(path)
            except AudioError as exc:
                self.cache[path] = exc
        found = self.cache[path]
        if isinstance(found, AudioError):
            raise found
        return found

    def _check(self, path: str) -> tuple[int, float]:
        if not path:
            raise AudioError("missing_audio: no audio path given")
        if not Path(path).is_file():
            raise AudioError(f"missing_audio: audio file {path} does not exist")
        try:
            rate, length = audio_info(path)
        except AudioError as exc:
            raise AudioError(f"unreadable_audio: {exc}") from exc
        start = 0.0
        while self.verify and start < length:
            try:
                load_audio(path, start, min(DECODE_CHUNK_SECONDS, length - start), rate)
            except AudioError as exc:
                raise AudioError(f"unreadable_audio: {path} does not decode past {start:.0f}s of its "
                                 f"{length:.1f}s (truncated or corrupt): {exc}") from exc
            start += DECODE_CHUNK_SECONDS
        return rate, length


def build_utterances(raws: Iterable[RawUtterance], corpus: str, test_fraction: float, scripts: str = "latin",
                     verify_audio: bool = True) -> Iterator[Utterance | Rejected]:
    """Checked utterances, or a `Rejected` record (reason `category: detail`) for each unusable pair."""
    seen: set[str] = set()
    check_audio = AudioChecker(verify_audio)
    for raw in raws:
        norm = normalize(raw.text) if not raw.problem else ""
        problem = raw.problem or _text_problem(raw, norm, seen, scripts)
        if problem:
            yield Rejected("prepare", raw.utt_id, problem)
            continue
        try:
            rate, length = check_audio(raw.audio_path)
        except AudioError as exc:
            yield Rejected("prepare", raw.utt_id, str(exc))
            continue
        duration = length - raw.offset if raw.duration is None else raw.duration
        if not (math.isfinite(raw.offset) and math.isfinite(duration)):  # NaN passes every comparison below
            yield Rejected("prepare", raw.utt_id, f"bad_row: offset {raw.offset} / duration {duration} is not a finite "
                                                  "number of seconds")
            continue
        if raw.offset < 0 or duration <= 0 or raw.offset + duration > length + 1e-3:
            yield Rejected("prepare", raw.utt_id, f"bad_stretch: {raw.offset:.3f}s+{duration:.3f}s lies outside "
                                                  f"{raw.audio_path} ({length:.3f}s)")
            continue
        seen.add(raw.utt_id)
        yield Utterance(raw.utt_id, raw.audio_path, float(raw.offset), float(duration), rate, raw.speaker, raw.text,
                        norm, corpus, split_of(raw.utt_id, test_fraction))


def _text_problem(raw: RawUtterance, norm: str, seen: set[str], scripts: str) -> str:
    if raw.utt_id in seen:
        return f"duplicate_id: utt_id {raw.utt_id!r} was seen before; only the first is kept"
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
