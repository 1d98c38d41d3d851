"""The one interface every forced-alignment backend implements, and its failure type.

A backend places words one utterance at a time (`align`), or overrides `align_utterances`
when it works on a whole shard at once (MFA stages a corpus; import looks results up).
Either way every utterance comes back as one `Alignment`: `ok` with word spans (and phones
where the backend has them) or `failed` with the reason.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from manifests.audio import load_audio
from manifests.errors import AudioError, JstipError
from manifests.schema import ALIGN_FAILED, ALIGN_OK, Alignment, Utterance, WordSpan


class AlignmentFailed(JstipError):
    """The backend could not place the words; the message becomes the record's `reason`."""


class Aligner(ABC):
    """Places the words of a transcript in time. Load heavy models in `__init__`, once per worker."""

    name: str = "base"
    sample_rate: int = 16000

    @abstractmethod
    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        """Word spans for `words` (in order, one each) over mono float32 `audio` at `sample_rate`.

        Raises AlignmentFailed with a human-readable reason when the words cannot be placed.
        """

    def align_utterances(self, utterances: Sequence[Utterance]) -> list[Alignment]:
        """One Alignment per utterance, in order; a failure is a record with its reason, never a crash."""
        out = []
        for utt in utterances:
            try:
                audio = load_audio(utt.audio_path, utt.offset, utt.duration, self.sample_rate)
                words = self.align(audio, utt.norm_text.split())
                out.append(Alignment(utt.utt_id, self.name, ALIGN_OK, "", tuple(words)))
            except (AlignmentFailed, AudioError) as exc:
                out.append(Alignment(utt.utt_id, self.name, ALIGN_FAILED, str(exc), ()))
        return out
