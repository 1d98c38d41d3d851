"""The one interface every forced-alignment backend implements, and its failure type."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from manifests.errors import JstipError
from manifests.schema import WordSpan


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
