"""The one interface every forced-alignment backend implements, its failure type and failure categories.

A backend places words one utterance at a time (`align`), or overrides `align_utterances`
when it works on a whole shard at once (MFA stages a corpus; import looks results up).
Either way every utterance comes back as one `Alignment`: `ok` with word spans (and phones
where the backend has them) or `failed` with the reason.

A failed record's reason reads `CATEGORY: what happened and what to do`, where CATEGORY is
one of `CATEGORIES` (a short identifier: metrics count by it, the report keeps examples).
Some categories are *transient* (`TRANSIENT`): the cause lies outside the utterance and its
audio (a file that could not be read from this directory, a crashed backend), so a rerun
aligns those utterances again instead of keeping the failure. The others are deterministic:
the same audio and transcript would fail the same way. An `ok` record's reason is empty, or
a note (`NOTES`: `partial: …` when an imported alignment lacked a word of the transcript:
its words are then the matched ones, in order, and the note names the rest).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from manifests.audio import load_audio
from manifests.errors import AudioError, JstipError
from manifests.schema import ALIGN_FAILED, ALIGN_OK, ALIGN_PARTIAL, Alignment, PhoneSpan, Utterance, WordSpan

# category -> what it means (README's table and the report's legend)
CATEGORIES: dict[str, str] = {
    "audio_unreadable": "the audio could not be read (missing file, wrong directory, bad offset); retried on rerun",
    "aligner_error": "the backend raised an unexpected error; retried on rerun",
    "backend_failed": "an external aligner (mfa) exited with an error for the whole shard; retried on rerun",
    "bad_utterance": "offset or duration is not a finite, non-negative number",
    "empty_transcript": "nothing to align: the normalised transcript is empty",
    "too_short": "the audio is too short to hold the transcript's words",
    "no_pronunciation": "a word has no pronunciation in this aligner's language (e.g. another script)",
    "transcript_rejected": "the backend refused the transcript (characters it cannot take)",
    "no_alignment": "the aligner could not place the first word",
    "stopped_early": "the aligner placed only the first words (transcript and audio disagree)",
    "not_aligned": "an external aligner wrote no result for the utterance",
    "transcript_mismatch": "an imported or external alignment does not hold the transcript's words",
    "not_in_source": "the imported alignments have nothing for this utterance",
    "source_unreadable": "the imported alignment file of this utterance cannot be read",
}
# notes an `ok` record's reason may carry (what an external alignment left out); not failures
NOTES: dict[str, str] = {
    "partial": "ok, but an imported or external alignment left a few transcript words without a span (left out) "
               "or had extra words",
    "doubtful": "ok, but a word the search first put outside the audio was placed again (its times are less sure)",
    "gap": "partial: a stretch of a long recording did not align; its seconds and words are left out, every other "
           "word is placed",
    "unexplained_speech": "partial: speech that no word covers (seconds given): the transcript may miss words",
}
# notes that make a record `partial` (its words do not cover the transcript or the speech), not `ok`
PARTIAL_NOTES = frozenset({"gap", "unexplained_speech"})
TRANSIENT = frozenset({"audio_unreadable", "aligner_error", "backend_failed"})
MIN_SECONDS = 0.1  # no word of any language is shorter; a clip under this holds no alignable speech


class AlignmentFailed(JstipError):
    """The backend could not place the words; `category` (one of CATEGORIES) and the message become the reason."""

    def __init__(self, message: str, category: str = "no_alignment") -> None:
        super().__init__(message)
        self.category = category


def failure_reason(category: str, message: str) -> str:
    """The stored reason of a failed record: `category: message`."""
    if category not in CATEGORIES and category not in NOTES:
        raise ValueError(f"unknown failure category {category!r}; add it to aligners.base.CATEGORIES")
    return f"{category}: {message}"


def failure_category(reason: str) -> str:
    """The category (or note) a stored reason starts with; `other` for reasons written without one."""
    head = reason.split(":", 1)[0].strip()
    return head if head in CATEGORIES or head in NOTES else "other"


def is_transient(reason: str) -> bool:
    """Whether a failure with this reason should be retried on rerun rather than kept."""
    return failure_category(reason) in TRANSIENT


def failed(utt_id: str, aligner: str, category: str, message: str) -> Alignment:
    """A failed record with a categorised reason."""
    return Alignment(utt_id, aligner, ALIGN_FAILED, failure_reason(category, message), ())


def check_utterance(utt: Utterance) -> None:
    """Raise AlignmentFailed (bad_utterance, empty_transcript, too_short) before any audio is read."""
    for name in ("offset", "duration"):
        value = getattr(utt, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise AlignmentFailed(f"{name} is {value!r}; give a finite number of seconds >= 0 in the manifest",
                                  "bad_utterance")
    if not (utt.norm_text or "").split():
        raise AlignmentFailed("the normalised transcript is empty: nothing to align", "empty_transcript")
    if utt.duration < MIN_SECONDS:
        raise AlignmentFailed(f"{utt.duration:.3f}s of audio cannot hold {len(utt.norm_text.split())} word(s) "
                              f"(shortest alignable clip: {MIN_SECONDS}s)", "too_short")


class Aligner(ABC):
    """Places the words of a transcript in time. Load heavy models in `__init__`, once per worker."""

    name: str = "base"
    sample_rate: int = 16000

    @abstractmethod
    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        """Word spans for `words` (in order, one each) over mono float32 `audio` at `sample_rate`.

        Raises AlignmentFailed with a human-readable reason when the words cannot be placed.
        """

    def align_utterance(self, utt: Utterance) -> list[WordSpan]:
        """Word spans of one utterance read from its audio (long-form backends override this to stream)."""
        audio = load_audio(utt.audio_path, utt.offset, utt.duration, self.sample_rate)
        return self.align(audio, utt.norm_text.split())

    def align_utterances(self, utterances: Sequence[Utterance]) -> list[Alignment]:
        """One Alignment per utterance, in order; a failure is a record with its reason, never a crash."""
        return [self.align_one(utt) for utt in utterances]

    def note(self, category: str, message: str) -> None:
        """Tell the record of the utterance being aligned something about it (a `NOTES` category):
        its reason then carries the notes, `category: message; ...`."""
        if category not in NOTES:
            raise ValueError(f"unknown note {category!r}; add it to aligners.base.NOTES")
        self.__dict__.setdefault("notes", []).append((category, message))

    def align_one(self, utt: Utterance) -> Alignment:
        """One utterance's record: ok, or failed with a categorised reason (never an exception)."""
        self.notes: list[tuple[str, str]] = []
        self.placed_phones: list[PhoneSpan] = []  # a backend that places phones sets them here
        try:
            check_utterance(utt)
            words = self.align_utterance(utt)
            reason = "; ".join(failure_reason(c, m) for c, m in self.notes)
            partial = any(c in PARTIAL_NOTES for c, _ in self.notes)
            return Alignment(utt.utt_id, self.name, ALIGN_PARTIAL if partial else ALIGN_OK, reason, tuple(words),
                             tuple(self.placed_phones))
        except AlignmentFailed as exc:
            return failed(utt.utt_id, self.name, exc.category, str(exc))
        except AudioError as exc:
            return failed(utt.utt_id, self.name, "audio_unreadable", f"{exc}; run from the directory the "
                          "manifest's relative paths start from, or fix the path")
        except Exception as exc:  # noqa: BLE001 - one utterance must not end the run; retried on rerun
            return failed(utt.utt_id, self.name, "aligner_error", f"{type(exc).__name__}: {exc}")
