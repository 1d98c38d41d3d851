"""Reading samples back for people: lookup by id, word alignments, and the sequence the model sees.

Shared by `jstip inspect`, `jstip stats` and the exporters. The frame count printed for a
speech span comes from `manifests.frames`, the rule the trainer itself uses.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from manifests.errors import JstipError, ManifestError
from manifests.frames import FrameSpec, encoded_frames, mel_frames, span_frames
from manifests.io import iter_records
from manifests.schema import SPEECH, Alignment, Sample, WordSpan

def find_sample(samples: str, sample_id: str) -> Sample:
    """The sample `sample_id` of a shard directory (a JstipError listing near ids if absent)."""
    near: list[str] = []
    for sample in iter_records(samples, Sample):
        if sample.sample_id == sample_id:
            return sample
        if sample.sample_id.split(":")[0] == sample_id.split(":")[0] and len(near) < 8:
            near.append(sample.sample_id)
    hint = f"samples of the same source: {', '.join(near)}" if near else "ids look like utt_id:asr, utt_id:interleave_word"
    raise JstipError(f"no sample {sample_id!r} in {samples}; {hint}")


def iter_samples(samples: str) -> Iterator[Sample]:
    yield from iter_records(samples, Sample)


def alignment_index(paths: list[str]) -> dict[str, Alignment]:
    """Alignments by id from every manifest in `paths` that exists (utterance and tts alignments)."""
    index: dict[str, Alignment] = {}
    for path in paths:
        if path and Path(path).exists():
            try:
                index.update((a.utt_id, a) for a in iter_records(path, Alignment))
            except ManifestError:
                continue
    return index


def sample_words(sample: Sample, alignments: dict[str, Alignment]) -> tuple[WordSpan, ...]:
    """The word times of a sample's audio: the source's alignment (tts pairs: by sample id)."""
    for key in (sample.sample_id, sample.source_id):
        alignment = alignments.get(key)
        if alignment is not None and alignment.words:
            return alignment.words
    return ()


def model_view(sample: Sample, spec: FrameSpec = FrameSpec()) -> str:
    """The sequence as the model sees it, span by span: special tokens by name (`<s>`, `<N>`,
    `<|asr|>`, `</s>`, …), speech spans as frame placeholders, text as text."""
    n_frames = encoded_frames(mel_frames(int(round(sample.duration * spec.sample_rate)), spec), spec)
    parts = []
    for span in sample.spans:
        if span.modality == SPEECH:
            first, last = span_frames(span.start, span.end, spec, n_frames)
            parts.append(f'[speech {last - first} frames @{spec.frame_duration * 1000:.0f}ms '
                         f'{span.start:.2f}-{span.end:.2f}s: "{span.text}"]')
        else:
            parts.append(span.text)
    return " ".join(parts)


def sample_audio(sample: Sample, sample_rate: int = 16000) -> np.ndarray:
    """The sample's audio: its embedded FLAC bytes, else `offset..offset+duration` of `audio_path`."""
    from manifests.audio import decode_audio_bytes, load_audio

    if sample.audio:
        return decode_audio_bytes(sample.audio, sample_rate, sample.sample_id)
    if not sample.audio_path:
        raise JstipError(f"sample {sample.sample_id} has no audio (kind {sample.kind})")
    return load_audio(sample.audio_path, sample.offset, sample.duration or None, sample_rate)


def transcript(sample: Sample, words: tuple[WordSpan, ...]) -> str:
    """The words spoken in the sample's audio, in order."""
    if words:
        return " ".join(w.word for w in words)
    speech = [s.text for s in sample.spans if s.modality == SPEECH]
    if sample.kind in ("asr", "tts_pair") and speech:
        return speech[0]
    return " ".join(s.text for s in sample.spans)
