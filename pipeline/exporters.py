"""`jstip export`: sample shards as a Lhotse CutSet manifest or a NeMo JSONL manifest.

Lhotse: one `MonoCut` per sample with audio (id = sample id), its recording (the source file,
or the synthesized tts file), one supervision with the transcript and the word alignment
(times relative to the recording, as lhotse keeps them) and the sample's kind and spans in
`custom`. NeMo: one line per sample with audio, with NeMo's `audio_filepath`, `duration`,
`offset` and `text` (the words spoken) plus `sample_id`, `kind` and `spans`. Text-only samples
have no audio and are counted, not exported. Both are written as JSON lines (gzip for a
`.gz` name), atomically, without importing either library.
"""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from manifests.audio import audio_info
from manifests.errors import AudioError, JstipError
from manifests.io import atomic_path
from manifests.schema import SPEECH, Sample, WordSpan

from .sample_view import alignment_index, iter_samples, sample_words, transcript

FORMATS = ("lhotse", "nemo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("samples", metavar="DIR", help="directory of sample shards, e.g. data/samples")
    parser.add_argument("--format", choices=FORMATS, required=True, help="lhotse (CutSet JSONL) or nemo (JSONL)")
    parser.add_argument("--out", required=True, help="output manifest, e.g. cuts.jsonl.gz or nemo.jsonl")
    parser.add_argument("--alignments", default="data/alignments", help="word alignments of the source utterances")


def spans_json(sample: Sample) -> list[dict[str, Any]]:
    return [{"modality": s.modality, "text": s.text, "start": s.start, "end": s.end} for s in sample.spans]


def lhotse_cut(sample: Sample, words: tuple[WordSpan, ...], rate: int, file_seconds: float) -> dict[str, Any]:
    """A lhotse MonoCut as its dict form (what `CutSet.from_jsonl` reads)."""
    recording_id = f"{sample.audio_path}"
    alignment = [[w.word, round(sample.offset + w.start, 6), round(max(w.end - w.start, 0.0), 6), w.score]
                 for w in words]
    supervision = {"id": sample.sample_id, "recording_id": recording_id, "start": 0.0, "duration": sample.duration,
                   "channel": 0, "text": transcript(sample, words), "alignment": {"word": alignment}}
    recording = {"id": recording_id, "sources": [{"type": "file", "channels": [0], "source": sample.audio_path}],
                 "sampling_rate": rate, "num_samples": int(round(file_seconds * rate)), "duration": file_seconds,
                 "channel_ids": [0]}
    return {"id": sample.sample_id, "start": sample.offset, "duration": sample.duration, "channel": 0,
            "supervisions": [supervision], "recording": recording,
            "custom": {"kind": sample.kind, "spans": spans_json(sample)}, "type": "MonoCut"}


def nemo_line(sample: Sample, words: tuple[WordSpan, ...]) -> dict[str, Any]:
    return {"audio_filepath": sample.audio_path, "offset": sample.offset, "duration": sample.duration,
            "text": transcript(sample, words), "sample_id": sample.sample_id, "kind": sample.kind,
            "spans": spans_json(sample)}


def write_jsonl(lines: Iterable[dict[str, Any]], path: str | Path) -> int:
    n = 0
    with atomic_path(path) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
    return n


def export(samples: str, fmt: str, out: str, alignments: str = "") -> dict[str, Any]:
    """Write the manifest; returns what was exported and what was skipped, by reason."""
    if fmt not in FORMATS:
        raise JstipError(f"unknown export format {fmt!r}; choose among {', '.join(FORMATS)}")
    index = alignment_index([alignments, str(Path(samples) / "tts" / "alignments")])
    skipped: Counter = Counter()
    info: dict[str, tuple[int, float]] = {}

    def lines() -> Iterable[dict[str, Any]]:
        for sample in iter_samples(samples):
            if not any(s.modality == SPEECH for s in sample.spans) or not sample.audio_path:
                skipped[f"{sample.kind}: no audio file"] += 1
                continue
            words = sample_words(sample, index)
            if fmt == "nemo":
                yield nemo_line(sample, words)
                continue
            try:
                if sample.audio_path not in info:
                    info[sample.audio_path] = audio_info(sample.audio_path)
            except AudioError as exc:
                skipped[f"audio unreadable: {exc}"] += 1
                continue
            yield lhotse_cut(sample, words, *info[sample.audio_path])

    n = write_jsonl(lines(), out)
    return {"format": fmt, "out": out, "exported": n, "skipped": dict(skipped)}


def main(args: argparse.Namespace) -> int:
    print(json.dumps(export(args.samples, args.format, args.out, args.alignments), indent=2, sort_keys=True))
    return 0
