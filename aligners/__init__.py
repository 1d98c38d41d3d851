"""Forced-alignment backends behind one `Aligner` interface, chosen by name."""
from __future__ import annotations

from manifests.errors import JstipError

from .base import Aligner, AlignmentFailed

BACKENDS = ("pocketsphinx",)


def get_aligner(name: str, **options) -> Aligner:
    """The aligner registered as `name`, built once (load it once per worker, not per utterance)."""
    if name == "pocketsphinx":
        from .pocketsphinx import PocketsphinxAligner

        return PocketsphinxAligner(**options)
    raise JstipError(f"unknown aligner {name!r}; known aligners: {', '.join(BACKENDS)}")


__all__ = ["Aligner", "AlignmentFailed", "BACKENDS", "get_aligner"]
