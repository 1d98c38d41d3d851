"""Forced-alignment backends behind one `Aligner` interface, chosen by name (`--aligner NAME`).

Backends are imported only when built, so choosing pocketsphinx never imports torch (ctc)
and a missing optional tool (MFA) only matters to whoever asks for it.
"""
from __future__ import annotations

import importlib
from typing import Any

from manifests.errors import JstipError

from .base import Aligner, AlignmentFailed

# name -> (module, class); each class takes keyword options and may define `check(**options)`
REGISTRY: dict[str, tuple[str, str]] = {
    "pocketsphinx": ("aligners.pocketsphinx", "PocketsphinxAligner"),
    "mfa": ("aligners.mfa", "MfaAligner"),
    "ctc": ("aligners.ctc", "CtcAligner"),
    "import": ("aligners.imported", "ImportedAligner"),
}
BACKENDS = tuple(REGISTRY)


def check_aligner_name(name: str) -> None:
    """Raise a JstipError listing the known backends when `name` is not one of them."""
    if name not in REGISTRY:
        raise JstipError(f"unknown aligner {name!r}; known aligners: {', '.join(BACKENDS)}")


def aligner_class(name: str) -> type:
    check_aligner_name(name)
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def check_aligner(name: str, **options: Any) -> None:
    """Fail early (before any output is touched) when the backend cannot run with `options`."""
    cls = aligner_class(name)
    check = getattr(cls, "check", None)
    if check is not None:
        check(**options)


def get_aligner(name: str, **options: Any) -> Aligner:
    """The aligner registered as `name`, built once (load it once per worker, not per utterance)."""
    return aligner_class(name)(**options)


__all__ = ["Aligner", "AlignmentFailed", "BACKENDS", "REGISTRY", "aligner_class", "check_aligner",
           "check_aligner_name", "get_aligner"]
