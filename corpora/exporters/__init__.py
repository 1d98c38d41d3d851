"""`jstip export --format NAME`: the formats other trainers read, chosen by name from one table.

`lhotse` and `nemo` write one JSONL manifest that points at the corpus's audio (corpora/export.py).
`shar`, `webdataset` and `hf` write directories of shards that carry the audio itself, through each
peer's own library (lhotse's SharWriter, webdataset's ShardWriter, datasets' features and card),
imported only when that format is asked for. The sharded exports share one selection of samples
(exporters/items.py), a progress bar, shards of `shard_size` samples, a directory that is replaced
only when the export succeeds, and a `<out>.rejected.parquet` beside it naming each sample whose
audio could not be read, and why. An export that would hold no sample is refused (JstipError with
what was skipped, and why) and leaves `out` as it was: `datasets` cannot load a card without a split,
an empty folder pushed to the Hub or handed to a trainer is never what was meant, and the cause
(a `--kind` with no audio, unreadable audio) is best seen at once.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from manifests.errors import JstipError

from .items import SHARD_SIZE, Skips, count_samples, export_items, progress_bar, rejected_path, replaced_dir, \
    write_rejected

# name -> (module, function, default kinds ("" = every kind with audio), what it writes)
REGISTRY: dict[str, tuple[str, str, str, str]] = {
    "lhotse": ("corpora.export", "export", "", "Lhotse CutSet JSONL (audio stays in the corpus)"),
    "nemo": ("corpora.export", "export", "asr,tts_pair", "NeMo JSONL manifest (audio stays in the corpus)"),
    "shar": ("corpora.exporters.lhotse_shar", "write_shar", "", "Lhotse Shar: cuts JSONL + FLAC tar shards"),
    "webdataset": ("corpora.exporters.webdataset_shards", "write_webdataset", "",
                   "WebDataset tar shards: <key>.flac + <key>.json"),
    "hf": ("corpora.exporters.hf_folder", "write_hf", "", "Hugging Face dataset folder: Parquet + README card"),
}
FORMATS = tuple(REGISTRY)
SHARDED = ("shar", "webdataset", "hf")


def check_format(fmt: str) -> None:
    if fmt not in REGISTRY:
        raise JstipError(f"unknown export format {fmt!r}; choose among {', '.join(FORMATS)}")


def export(samples: str, fmt: str, out: str, alignments: str = "", kinds: str | None = None, utterances: str = "",
           language: str = "en", shard_size: int = SHARD_SIZE, progress: bool = False) -> dict[str, Any]:
    """Export the sample shards in `samples` as `fmt` to `out`; returns what was written and what
    was skipped, by reason (with examples)."""
    check_format(fmt)
    module, function, default_kinds, _ = REGISTRY[fmt]
    writer = getattr(importlib.import_module(module), function)
    if fmt not in SHARDED:
        return writer(samples, fmt, out, alignments, kinds, utterances, language)
    if shard_size < 1:
        raise JstipError(f"--shard-size {shard_size}: a shard holds at least one sample")
    wanted = {k.strip() for k in (default_kinds if kinds is None else kinds).split(",") if k.strip()}
    skips = Skips()
    ours = getattr(importlib.import_module(module), "FILES")
    with progress_bar(count_samples(samples), fmt, progress) as bar, replaced_dir(out, ours) as tmp:
        items = export_items(samples, wanted, skips, alignments, utterances, language, tick=bar.update)
        written = writer(items, Path(tmp), skips, shard_size)
        if not written["exported"]:
            _refuse_empty(fmt, wanted, skips, out)
    files = written.pop("files")  # names inside `out`
    write_rejected(skips, out)
    return {"format": fmt, "out": out, "kinds": sorted(wanted) or "all", **written, "n_files": len(files),
            "files": files[:20], **skips.report(), "rejected": str(rejected_path(out))}


def _refuse_empty(fmt: str, wanted: set[str], skips: Skips, out: str) -> None:
    """No sample to write: say why (the rejected records are written, as for any export) and stop."""
    rejected = write_rejected(skips, out) if skips.rejected else None
    why = ", ".join(f"{reason}: {n}" for reason, n in sorted(skips.counts.items())) or "the sample shards are empty"
    raise JstipError(f"export --format {fmt}: no sample to export (kinds {','.join(sorted(wanted)) or 'all with audio'}; "
                     f"skipped {why}){f'; see {rejected}' if rejected else ''}. Nothing was written and {out} is "
                     "unchanged; choose --kind among the kinds with audio (`jstip stats` lists them)")


__all__ = ["FORMATS", "REGISTRY", "SHARDED", "check_format", "export"]
