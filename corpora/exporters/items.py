"""What every sharded export shares: the samples it takes, their audio as bytes, what it leaves out
and why, a progress bar, and an output directory replaced only when the export succeeds.

An `ExportItem` is one sample with audio, ready for any format: its word alignment (times relative
to the sample's start, as its spans are), the target text, speaker, language and split. Samples
that are not exported by choice (another kind, no audio) are counted; samples whose audio cannot
be read (missing file, unreadable, a stretch past the file's end) become `Rejected` records with
the reason, written beside the output, and the export goes on.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow.parquet as pq
import soundfile as sf

from corpora.checks import END_TOLERANCE  # the tolerance prepare clamps with, so both agree
from corpora.export import alignment_lookup, alignment_words, spans_json, target_text
from manifests import storage
from manifests.errors import AudioError, JstipError, ManifestError
from manifests.io import manifest_files, write_records
from manifests.lookup import ById
from manifests.schema import SPEECH, Rejected, Sample, Utterance, WordSpan
from manifests.views import iter_samples

SHARD_SIZE = 1000  # items per shard: Lhotse's SharWriter default, used for every sharded format
EXAMPLES_PER_REASON = 5


@dataclass(frozen=True)
class ExportItem:
    """One sample with audio, and what the formats write about it."""

    sample: Sample
    words: tuple[WordSpan, ...]
    text: str
    speaker: str
    language: str
    split: str

    @property
    def audio_path(self) -> str:
        return os.path.abspath(self.sample.audio_path) if self.sample.audio_path else ""

    def meta(self, sample_rate: int) -> dict[str, Any]:
        """The sample as JSON: ids, text, speaker, spans and word times (seconds from the audio's start)."""
        s = self.sample
        return {"sample_id": s.sample_id, "kind": s.kind, "source_id": s.source_id, "text": self.text,
                "speaker": self.speaker, "language": self.language, "split": self.split, "duration": s.duration,
                "sampling_rate": sample_rate, "spans": spans_json(s),
                "words": [{"word": w.word, "start": w.start, "end": w.end, "score": w.score} for w in self.words],
                "audio_path": self.audio_path, "offset": s.offset}


@dataclass
class Skips:
    """What was not exported: counts by reason, and a `Rejected` record for each bad input."""

    counts: Counter = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)

    def count(self, reason: str) -> None:
        self.counts[reason] += 1

    def reject(self, sample_id: str, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        self.rejected.append(Rejected("export", sample_id, f"{reason}: {detail}"))

    def report(self) -> dict[str, Any]:
        examples: dict[str, list[str]] = {}
        for r in self.rejected:
            shown = examples.setdefault(r.reason.split(":", 1)[0], [])
            if len(shown) < EXAMPLES_PER_REASON:
                shown.append(f"{r.record_id}: {r.reason}")
        return {"skipped": dict(self.counts), "examples": examples}


def rejected_path(out: str | Path) -> str:
    """Where an export's rejected records go: beside the output, never inside it (readers scan it)."""
    return storage.join(storage.parent(str(out)), f"{storage.name(str(out))}.rejected.parquet")


def write_rejected(skips: Skips, out: str | Path) -> str:
    path = rejected_path(out)
    write_records(skips.rejected, Rejected, path)
    return path


def count_samples(samples: str) -> int:
    """Rows in the sample shards, from their footers (the progress bar's total)."""
    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in manifest_files(samples))
    except (OSError, ManifestError):
        return 0


def export_items(samples: str, kinds: set[str], skips: Skips, alignments: str = "", utterances: str = "",
                 language: str = "en", tick: Callable[[], Any] = lambda: None) -> Iterator[ExportItem]:
    """The samples to export, in shard order; the others counted in `skips` by reason. `tick` is
    called once per sample read (a progress bar's update). Alignments, speakers and splits are
    looked up by id a row group at a time (manifests/lookup.py): memory does not grow with the corpus."""
    aligned = alignment_lookup(samples, alignments)
    utts = ById([utterances], Utterance, "utt_id", columns=["utt_id", "speaker", "split"])
    for sample in iter_samples(samples):
        tick()
        if kinds and sample.kind not in kinds:
            skips.count(f"kind_{sample.kind}_not_exported")
            continue
        if not any(s.modality == SPEECH for s in sample.spans) or not (sample.audio_path or sample.audio):
            skips.count(f"{sample.kind}_no_audio")
            continue
        words = alignment_words(sample, aligned)
        utt = utts.row(sample.source_id) or {}
        yield ExportItem(sample, words, target_text(sample, words), utt.get("speaker") or "", language,
                         utt.get("split") or "train")


def stretch_frames(sample: Sample, rate: int, total: int) -> tuple[int, int]:
    """(first frame, frame count) of the sample in its file of `total` frames: a stretch ending up to
    END_TOLERANCE past the file's end is clamped to it, one ending further is an AudioError."""
    start = int(round(sample.offset * rate))
    wanted = int(round(sample.duration * rate)) if sample.duration > 0 else total - start
    if start >= total:
        raise AudioError(f"offset {sample.offset:.3f}s lies past the end of {sample.audio_path} ({total / rate:.3f}s)")
    past = (start + wanted - total) / rate
    if past > END_TOLERANCE:
        raise AudioError(f"{sample.offset:.3f}s+{sample.duration:.3f}s ends {past:.3f}s past the end of "
                         f"{sample.audio_path} ({total / rate:.3f}s)")
    return start, min(wanted, total - start)


def audio_flac(sample: Sample) -> tuple[bytes, int]:
    """(FLAC bytes, sample rate) of the sample's audio: its embedded bytes as they are, else
    `offset..offset+duration` of its file at the file's own rate and channels, losslessly for
    16-bit sources (24-bit and float sources are kept at 24 bits). AudioError says why not."""
    if sample.audio:
        try:
            return sample.audio, int(sf.info(io.BytesIO(sample.audio)).samplerate)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise AudioError(f"cannot decode the embedded audio: {exc}") from exc
    path = sample.audio_path
    try:
        with sf.SoundFile(path) as f:
            rate, subtype = f.samplerate, f.subtype
            start, frames = stretch_frames(sample, rate, f.frames)
            wide = subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE")
            f.seek(start)
            data = f.read(frames, dtype="int32" if wide else "int16", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="FLAC", subtype="PCM_24" if wide else "PCM_16")
    return buffer.getvalue(), rate


def with_flac(items: Iterable[ExportItem], skips: Skips) -> Iterator[tuple[ExportItem, bytes, int]]:
    """Each item with its audio as FLAC; an item whose audio cannot be read is recorded in `skips`
    with the reason (`audio_unreadable`) and left out, so one bad file never stops an export."""
    for item in items:
        try:
            audio, rate = audio_flac(item.sample)
        except AudioError as exc:
            skips.reject(item.sample.sample_id, "audio_unreadable", str(exc))
            continue
        yield item, audio, rate


def progress_bar(total: int, fmt: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, desc=f"export {fmt}", unit="sample", disable=not enabled)


@contextmanager
def replaced_dir(out: str | Path, ours: re.Pattern) -> Iterator[Path]:
    """A fresh temporary directory beside `out`, put in its place when the block succeeds.

    An existing `out` is replaced only when it holds nothing but files whose names match `ours`
    (an earlier export of the same format): no stale shard survives, and no other folder is lost.
    An fsspec URL is written locally and put file by file when the block succeeds."""
    if storage.is_url(out):
        yield from _replaced_remote_dir(str(out), ours)
        return
    final = Path(out)
    if final.exists():
        if not final.is_dir():
            raise JstipError(f"--out {final} is a file; an export of this format writes a directory")
        foreign = sorted(p.name for p in final.rglob("*") if p.is_file() and not ours.fullmatch(
            p.relative_to(final).as_posix()))
        if foreign:
            raise JstipError(f"--out {final} holds files this export did not write ({', '.join(foreign[:3])}); "
                             f"choose a new or empty directory")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = final.parent / f".{final.name}.old"
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replaced_remote_dir(out: str, ours: re.Pattern) -> Iterator[Path]:
    """`replaced_dir` for a folder in object storage (no rename there: the old export's objects are
    removed only after the new one is complete locally, then the new files are put)."""
    fs, inner = storage.url_to_fs(out)
    if fs.isfile(inner):
        raise JstipError(f"--out {out} is an object; an export of this format writes a folder")
    existing = [p[len(inner.rstrip("/")) + 1:] for p in fs.find(inner)] if fs.isdir(inner) else []
    foreign = sorted(p for p in existing if not ours.fullmatch(p))
    if foreign:
        raise JstipError(f"--out {out} holds files this export did not write ({', '.join(foreign[:3])}); "
                         f"choose a new or empty folder")
    with tempfile.TemporaryDirectory(prefix="jstip-export-") as tmp:
        yield Path(tmp)
        if existing:
            storage.remove(out)
        storage.upload_folder(tmp, out)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


__all__ = ["END_TOLERANCE", "ExportItem", "SHARD_SIZE", "Skips", "audio_flac", "count_samples", "export_items",
           "progress_bar", "rejected_path", "replaced_dir", "stretch_frames", "write_rejected"]
