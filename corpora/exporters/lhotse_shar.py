"""Lhotse Shar through Lhotse's own `SharWriter`: what NeMo's speechlm2 and Canary trainers stream.

Each shard is `cuts.NNNNNN.jsonl.gz` (one `MonoCut` per sample) beside `recording.NNNNNN.tar`
(the cut's audio as FLAC, encoded by Lhotse). A cut carries one supervision with the target text,
speaker, language and the word alignment as `AlignmentItem`s, and the sample's kind, source and
spans in `custom`. The writer keeps only the cut's stretch of audio and moves the cut's start to
0, so the word times written here are relative to the sample's start (lhotse does not shift
alignments itself). Samples whose audio fails are left out and recorded, the shard goes on.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from corpora.export import RecordingIds
from manifests.audio import audio_info
from manifests.errors import AudioError

from .items import ExportItem, Skips, stretch_frames

# names SharWriter writes (a rerun may replace a folder holding only these)
FILES = re.compile(r"(cuts|recording)\.\d{6}\.(jsonl\.gz|tar)")


def shar_cut(item: ExportItem, recording: Any, start: float, duration: float) -> Any:
    """The MonoCut of one sample over `recording` (its file from `start`, or its embedded bytes)."""
    from lhotse import MonoCut, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    s = item.sample
    words = [AlignmentItem(symbol=w.word, start=round(w.start, 6), duration=round(max(w.end - w.start, 0.0), 6),
                           score=w.score) for w in item.words]
    supervision = SupervisionSegment(id=s.sample_id, recording_id=recording.id, start=0.0, duration=duration,
                                     channel=0, text=item.text, language=item.language,
                                     speaker=item.speaker or None, alignment={"word": words})
    return MonoCut(id=s.sample_id, start=start, duration=duration, channel=0, recording=recording,
                   supervisions=[supervision],
                   custom={"kind": s.kind, "source_id": s.source_id, "split": item.split,
                           "spans": item.meta(recording.sampling_rate)["spans"]})


class _Recordings:
    """One lhotse Recording per audio file (its header read once), or one over embedded bytes."""

    def __init__(self) -> None:
        self.ids = RecordingIds()
        self.by_path: dict[str, Any] = {}

    def __call__(self, item: ExportItem) -> tuple[Any, float, float]:
        """(recording, cut start, cut duration) of the item; AudioError when its audio cannot serve."""
        from lhotse import Recording

        s = item.sample
        if s.audio:
            try:
                recording = Recording.from_bytes(s.audio, recording_id=s.sample_id)
            except Exception as exc:  # noqa: BLE001  lhotse raises several types for undecodable bytes
                raise AudioError(f"cannot decode the embedded audio: {exc}") from exc
            return recording, 0.0, recording.duration
        path = item.audio_path
        if path not in self.by_path:
            audio_info(path)  # our check first: a missing or unreadable file becomes a reason, not a crash
            self.by_path[path] = Recording.from_file(path, recording_id=self.ids(path))
        recording = self.by_path[path]
        rate = recording.sampling_rate
        start, frames = stretch_frames(s, rate, recording.num_samples)
        return recording, start / rate, frames / rate


def write_shar(items: Iterable[ExportItem], out: Path, skips: Skips, shard_size: int) -> dict[str, Any]:
    """Write the items as Lhotse Shar into `out`; returns the shard files written."""
    from lhotse.audio.utils import AudioLoadingError, DurationMismatchError
    from lhotse.shar import SharWriter
    import soundfile as sf

    LOAD_ERRORS = (AudioLoadingError, DurationMismatchError, sf.LibsndfileError)

    recordings = _Recordings()
    n = 0
    with SharWriter(str(out), fields={"recording": "flac"}, shard_size=shard_size) as writer:
        for item in items:
            try:
                cut = shar_cut(item, *recordings(item))
                writer.write(cut)  # loads the audio first: a failure leaves nothing half written
            except AudioError as exc:
                skips.reject(item.sample.sample_id, "audio_unreadable", str(exc))
            except LOAD_ERRORS as exc:  # lhotse's own load errors (corrupt data past a good header)
                skips.reject(item.sample.sample_id, "audio_unreadable", f"lhotse could not load it: {exc}")
            else:
                n += 1
    return {"exported": n, "files": sorted(Path(p).name for paths in writer.output_paths.values() for p in paths)}
