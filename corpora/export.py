"""`jstip export`: sample shards as a Lhotse CutSet manifest or a NeMo JSONL manifest.

`--kind` picks the sample kinds (NeMo's default `asr,tts_pair`: ASR pairs, one line per source
utterance; Lhotse's default: every kind with audio). Lhotse: one `MonoCut` per sample (id = sample
id) over its recording (a short id: the file's stem, with a hash of its path only when two files
share a stem), one supervision with the transcript, speaker (from the utterance manifest),
language and the word alignment (times relative to the recording, as lhotse keeps them), and the
sample's kind and spans in `custom`. NeMo: `audio_filepath`, `duration`, `offset`, `text` (the
sample's target text: the transcript as written for asr and tts pairs), `lang`, `speaker`,
`sample_id`, `kind`. Audio paths are written absolute, so the manifest loads from any directory
(paths stored relative by older runs are resolved against the working directory). Text-only
samples have no audio and are counted, not exported. Written as JSON lines (gzip for a `.gz`
name), atomically, without importing either library.

Both stream: samples a row group at a time, alignments and speakers looked up by id a row group at
a time (manifests/lookup.py), audio headers through a small cache, and what must be remembered per
file or per source (recording ids, NeMo pairs already written) in a map that moves to disk past a
million keys (manifests/spilled_map.py): memory does not grow with the corpus.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Iterable

from manifests import storage
from manifests.audio import audio_info
from manifests.errors import AudioError, JstipError
from manifests.io import atomic_path
from manifests.lookup import ById
from manifests.schema import SPEECH, TEXT, Alignment, Sample, Utterance, WordSpan
from manifests.spilled_map import SpilledMap
from manifests.views import iter_samples

FORMATS = ("lhotse", "nemo")
DEFAULT_KINDS = {"nemo": "asr,tts_pair", "lhotse": ""}
PAIR_KINDS = ("asr", "tts_pair")
AUDIO_INFO_CACHE = 4096  # audio files whose header is kept (a file's samples come together)


def spans_json(sample: Sample) -> list[dict[str, Any]]:
    return [{"modality": s.modality, "text": s.text, "start": s.start, "end": s.end} for s in sample.spans]


def target_text(sample: Sample, words: tuple[WordSpan, ...]) -> str:
    """What is said in the sample's audio: an asr/tts pair's transcript as written, else the aligned words."""
    if sample.kind in PAIR_KINDS:
        text = " ".join(s.text for s in sample.spans if s.modality == TEXT)
        if text:
            return text
    if words:
        return " ".join(w.word for w in words)
    return " ".join(s.text for s in sample.spans if s.modality in (SPEECH, TEXT) and s.text)


def alignment_words(sample: Sample, alignments: ById) -> tuple[WordSpan, ...]:
    """The word times of a sample's audio: the source's alignment (tts pairs: by sample id), as
    `manifests.views.sample_words` gives them, looked up a row group at a time."""
    for key in (sample.sample_id, sample.source_id):
        alignment = alignments.record(key)
        if alignment is not None and alignment.words:
            return alignment.words
    return ()


def alignment_lookup(samples: str, alignments: str) -> ById:
    """The utterances' alignments and the tts pairs' (inside the sample directory), by id."""
    return ById([alignments, storage.join(samples, "tts", "alignments")], Alignment, "utt_id")


class RecordingIds:
    """Short recording ids: the file's stem, or stem-<hash of the path> when another file has that stem.
    The first file of each stem is remembered in a map that spills to disk (one key per audio file)."""

    def __init__(self) -> None:
        self.by_stem = SpilledMap()

    def __call__(self, path: str) -> str:
        stem = Path(path).stem
        owner = self.by_stem.first(stem, path)
        return stem if owner == path else f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


class AudioInfo:
    """`audio_info` of the last `size` files read (rate, seconds): samples of a file come together."""

    def __init__(self, size: int = AUDIO_INFO_CACHE) -> None:
        self.size, self.known = size, OrderedDict()

    def __call__(self, path: str) -> tuple[int, float]:
        if path in self.known:
            self.known.move_to_end(path)
            return self.known[path]
        got = self.known[path] = audio_info(path)
        if len(self.known) > self.size:
            self.known.popitem(last=False)
        return got


def lhotse_cut(sample: Sample, words: tuple[WordSpan, ...], audio_path: str, recording_id: str, rate: int,
               file_seconds: float, speaker: str, language: str) -> dict[str, Any]:
    """A lhotse MonoCut as its dict form (what `CutSet.from_jsonl` reads)."""
    alignment = [[w.word, round(sample.offset + w.start, 6), round(max(w.end - w.start, 0.0), 6), w.score]
                 for w in words]
    supervision = {"id": sample.sample_id, "recording_id": recording_id, "start": 0.0, "duration": sample.duration,
                   "channel": 0, "text": target_text(sample, words), "language": language,
                   "alignment": {"word": alignment}}
    if speaker:
        supervision["speaker"] = speaker
    source = "url" if storage.is_url(audio_path) else "file"  # lhotse opens a URL source through smart_open
    recording = {"id": recording_id, "sources": [{"type": source, "channels": [0], "source": audio_path}],
                 "sampling_rate": rate, "num_samples": int(round(file_seconds * rate)), "duration": file_seconds,
                 "channel_ids": [0]}
    return {"id": sample.sample_id, "start": sample.offset, "duration": sample.duration, "channel": 0,
            "supervisions": [supervision], "recording": recording,
            "custom": {"kind": sample.kind, "source_id": sample.source_id, "spans": spans_json(sample)},
            "type": "MonoCut"}


def nemo_line(sample: Sample, words: tuple[WordSpan, ...], audio_path: str, speaker: str, language: str) -> dict[str, Any]:
    line = {"audio_filepath": audio_path, "offset": sample.offset, "duration": sample.duration,
            "text": target_text(sample, words), "lang": language, "sample_id": sample.sample_id, "kind": sample.kind}
    if speaker:
        line["speaker"] = speaker
    return line


def write_jsonl(lines: Iterable[dict[str, Any]], path: str | Path) -> int:
    n = 0
    with atomic_path(path) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
    return n


def export(samples: str, fmt: str, out: str, alignments: str = "", kinds: str | None = None,
           utterances: str = "", language: str = "en") -> dict[str, Any]:
    """Write the manifest; returns what was exported and what was skipped, by reason."""
    if fmt not in FORMATS:
        raise JstipError(f"unknown export format {fmt!r}; choose among {', '.join(FORMATS)}")
    wanted = {k.strip() for k in (DEFAULT_KINDS[fmt] if kinds is None else kinds).split(",") if k.strip()}
    aligned = alignment_lookup(samples, alignments)
    speakers = ById([utterances], Utterance, "utt_id", columns=["utt_id", "speaker"])
    skipped: Counter = Counter()
    info = AudioInfo()
    recording_ids = RecordingIds()
    seen_pairs = SpilledMap()  # kind and source of each NeMo pair written -> its sample id

    def lines() -> Iterable[dict[str, Any]]:
        for sample in iter_samples(samples):
            if wanted and sample.kind not in wanted:
                skipped[f"kind_{sample.kind}_not_exported"] += 1
                continue
            if not any(s.modality == SPEECH for s in sample.spans) or not sample.audio_path:
                skipped[f"{sample.kind}_no_audio"] += 1
                continue
            if fmt == "nemo" and sample.kind in PAIR_KINDS:
                pair = f"{sample.kind}\t{sample.source_id}"
                if seen_pairs.first(pair, sample.sample_id) != sample.sample_id:  # a redrawn pair: one line per utterance
                    skipped[f"{sample.kind}_repeat"] += 1
                    continue
            words = alignment_words(sample, aligned)
            audio_path = sample.audio_path if storage.is_url(sample.audio_path) else os.path.abspath(sample.audio_path)
            speaker = (speakers.row(sample.source_id) or {}).get("speaker") or ""
            if fmt == "nemo":
                yield nemo_line(sample, words, audio_path, speaker, language)
                continue
            try:
                rate, seconds = info(audio_path)
            except AudioError:
                skipped["audio_unreadable"] += 1
                continue
            yield lhotse_cut(sample, words, audio_path, recording_ids(audio_path), rate, seconds, speaker, language)

    try:
        n = write_jsonl(lines(), out)
    finally:
        recording_ids.by_stem.close()
        seen_pairs.close()
    return {"format": fmt, "out": out, "kinds": sorted(wanted) or "all", "exported": n, "skipped": dict(skipped)}
