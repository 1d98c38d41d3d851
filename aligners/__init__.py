"""Forced-alignment backends behind one `Aligner` interface, chosen by name."""
from __future__ import annotations

from manifests.errors import JstipError

from .base import Aligner, AlignmentFailed

BACKENDS = ("pocketsphinx",)


def check_aligner_name(name: str) -> None:
    """Raise a JstipError listing the known backends when `name` is not one of them."""
    if name not in BACKENDS:
        raise JstipError(f"unknown aligner {name!r}; known aligners: {', '.join(BACKENDS)}")


def get_aligner(name: str, **options) -> Aligner:
    """The aligner registered as `name`, built once (load it once per worker, not per utterance)."""
    check_aligner_name(name)
    from .pocketsphinx import PocketsphinxAligner  # the one backend so far; more join BACKENDS here

    return PocketsphinxAligner(**options)


__all__ = ["Aligner", "AlignmentFailed", "BACKENDS", "check_aligner_name", "get_aligner"]
