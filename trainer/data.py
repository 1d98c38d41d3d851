"""Samples → padded model batches: audio loading, token layout, labels.

A sample becomes `<bos>` + for each span in order: speech → `<|speech|>` `<|audio|>`×n
`<|/speech|>` (n from `features.span_frames`), text → the span's tokens; then `<eos>`. Loss is
on text tokens and `<eos>` only. Each sample's audio is loaded and turned into log-mel once
(cached by source), and the model encodes it once per batch; the batch carries each speech
span's times so the model slices the same frames the collator counted.
Audio comes from the sample's embedded FLAC bytes (`Sample.audio`, the stretch
offset..offset+duration of the source) when present, else from `audio_path` at offset/duration.
Samples whose audio cannot be read are skipped and counted by reason, never silently lost.
Batch planning (bucketing, ranks, resume cursor) lives in `batching.py`.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from transformers import PreTrainedTokenizerFast

from manifests.audio import decode_audio_bytes, load_audio
from manifests.errors import AudioError, JstipError
from manifests.schema import SPEECH, TEXT, Sample

from .features import FrameSpec, LogMel, encoded_frames, span_frames
from .tokenizer import TokenIds

IGNORE = -100


@dataclass
class Item:
    """One loaded sample: the record and its log-mel (None for text-only samples)."""

    sample: Sample
    mel: torch.Tensor | None


class Features:
    """Log-mel of a sample's audio, cached by source (up to `cache_mb`); raises AudioError.

    `audio_bytes(sample)` may fetch embedded audio lazily (the trainer reads it from the shard
    when the batch is built); by default it is `sample.audio`.
    """

    def __init__(self, spec: FrameSpec = FrameSpec(), cache_mb: float = 512.0,
                 audio_bytes: Callable[[Sample], bytes | None] | None = None) -> None:
        self.spec = spec
        self.logmel: LogMel | None = None
        self.audio_bytes = audio_bytes or (lambda s: s.audio)
        self.cache: OrderedDict[tuple[str, float, float], torch.Tensor] = OrderedDict()
        self.cache_bytes, self.cache_limit = 0, int(cache_mb * 2**20)
        self.bad: dict[tuple[str, float, float], str] = {}

    def __call__(self, sample: Sample) -> torch.Tensor:
        key = (sample.audio_path or sample.source_id, float(sample.offset), float(sample.duration))
        if key in self.bad:
            raise AudioError(self.bad[key])
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        try:
            data = self.audio_bytes(sample)
            if data is not None:
                wave = decode_audio_bytes(data, self.spec.sample_rate, sample.sample_id)
            elif sample.audio_path:
                wave = load_audio(sample.audio_path, sample.offset, sample.duration if sample.duration > 0 else None,
                                  self.spec.sample_rate)
            else:
                raise AudioError("speech span without audio_path or embedded audio")
            if wave.size == 0:
                raise AudioError(f"audio {sample.audio_path} at {sample.offset:.3f}s+{sample.duration:.3f}s holds no samples")
        except AudioError as exc:
            self.bad[key] = str(exc)
            raise
        if self.logmel is None:
            self.logmel = LogMel(self.spec)
        mel = self.logmel(wave)
        self.cache[key] = mel
        self.cache_bytes += mel.numel() * 4
        while self.cache_bytes > self.cache_limit and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.cache_bytes -= old.numel() * 4
        return mel


def load_item(sample: Sample, features: Features, skipped: dict[str, str]) -> "Item | None":
    """The `Item` of a sample, or None with the reason recorded in `skipped`."""
    if not any(span.modality == SPEECH for span in sample.spans):
        return Item(sample, None)
    try:
        return Item(sample, features(sample))
    except AudioError as exc:
        reason = str(exc)
        skipped[sample.sample_id] = reason if reason.startswith("speech span") else f"audio unreadable: {reason}"
        return None


class SampleDataset(torch.utils.data.Dataset):
    """Samples held in memory (decoding, small runs); log-mel computed on first use and cached."""

    def __init__(self, samples: Sequence[Sample], spec: FrameSpec = FrameSpec(), cache_mb: float = 512.0) -> None:
        self.samples = list(samples)
        self.spec = spec
        self.features = Features(spec, cache_mb)
        self.skipped: dict[str, str] = {}  # sample_id -> reason, each sample counted once

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item | None:
        return load_item(self.samples[index], self.features, self.skipped)


def check_sample(sample: Sample) -> None:
    """Raise a JstipError naming the sample when its spans cannot be laid out."""
    if not sample.spans:
        raise JstipError(f"sample {sample.sample_id} has no spans; rerun the interleave stage")
    for span in sample.spans:
        if span.modality not in (SPEECH, TEXT):
            raise JstipError(f"sample {sample.sample_id} has a span of modality {span.modality!r}; "
                             f"expected {SPEECH!r} or {TEXT!r}")
        if span.modality == SPEECH and span.end < span.start:
            raise JstipError(f"sample {sample.sample_id} has a speech span ending ({span.end}) before it starts "
                             f"({span.start}); fix the alignment or interleave stage")


def layout(spans: Sequence[Any], tok: PreTrainedTokenizerFast, ids: TokenIds, spec: FrameSpec, n_frames: int,
           add_eos: bool = True) -> tuple[list[int], list[int], list[tuple[float, float]]]:
    """Token ids, labels and speech-span times of one sample in the JSTIP layout."""
    input_ids, labels, speech = [ids.bos], [IGNORE], []
    for span in spans:
        if span.modality == SPEECH:
            first, last = span_frames(span.start, span.end, spec, n_frames)
            input_ids += [ids.speech_open] + [ids.audio] * (last - first) + [ids.speech_close]
            labels += [IGNORE] * (last - first + 2)
            speech.append((float(span.start), float(span.end)))
        else:
            tokens = tok(span.text, add_special_tokens=False)["input_ids"]
            input_ids += tokens
            labels += tokens
    if add_eos:
        input_ids.append(ids.eos)
        labels.append(ids.eos)
    return input_ids, labels, speech


class Collator:
    """Pads a list of `Item`s into a batch the `SpeechLM` takes.

    Keys: input_ids, attention_mask, labels `[B, L]`; mel `[A, T, n_mels]` and mel_lens `[A]`
    for the A samples with audio; span_audio, span_start, span_end (one row per speech span, in
    placeholder order); ctc_audio, ctc_targets, ctc_target_lens for `asr` samples (the transcript
    tokens, an optional CTC target for the encoder); plus bookkeeping (kinds, audio_seconds, n_tokens, n_pad).
    """

    def __init__(self, tok: PreTrainedTokenizerFast, spec: FrameSpec = FrameSpec(), max_tokens: int = 2048,
                 padding_side: str = "right", add_eos: bool = True) -> None:
        self.tok, self.ids, self.spec = tok, TokenIds(tok), spec
        self.max_tokens, self.padding_side, self.add_eos = max_tokens, padding_side, add_eos
        self.skipped: dict[str, str] = {}  # sample_id -> reason, each sample counted once

    def __call__(self, items: Sequence[Item | None]) -> dict[str, Any] | None:
        rows, mels, span_audio, span_times, kinds, ids_list, ctc = [], [], [], [], [], [], []
        for item in items:
            if item is None:
                continue
            n_frames = encoded_frames(item.mel.shape[0], self.spec) if item.mel is not None else 0
            input_ids, labels, speech = layout(item.sample.spans, self.tok, self.ids, self.spec, n_frames, self.add_eos)
            if len(input_ids) > self.max_tokens:
                self.skipped[item.sample.sample_id] = f"longer than max_tokens={self.max_tokens}"
                continue
            if speech:
                if item.sample.kind == "asr":  # whole utterance + transcript: a CTC target for the encoder
                    ctc.append((len(mels), [t for t, lab in zip(input_ids, labels) if lab != IGNORE and t != self.ids.eos]))
                span_audio += [len(mels)] * len(speech)
                span_times += speech
                mels.append(item.mel)
            rows.append((input_ids, labels))
            kinds.append(item.sample.kind)
            ids_list.append(item.sample.sample_id)
        if not rows:
            return None
        width = max(len(r[0]) for r in rows)
        input_ids = torch.full((len(rows), width), self.ids.pad, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, labs) in enumerate(rows):
            sl = slice(width - len(ids), width) if self.padding_side == "left" else slice(0, len(ids))
            input_ids[i, sl] = torch.tensor(ids)
            labels[i, sl] = torch.tensor(labs)
            mask[i, sl] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                                 "kinds": kinds, "sample_ids": ids_list,
                                 "n_tokens": int(mask.sum()), "n_pad": int(mask.numel() - mask.sum())}
        if mels:
            lens = torch.tensor([m.shape[0] for m in mels])
            mel = torch.zeros(len(mels), int(lens.max()), mels[0].shape[1])
            for i, m in enumerate(mels):
                mel[i, : m.shape[0]] = m
            batch.update(mel=mel, mel_lens=lens, span_audio=torch.tensor(span_audio, dtype=torch.long),
                         span_start=torch.tensor([s for s, _ in span_times], dtype=torch.float64),
                         span_end=torch.tensor([e for _, e in span_times], dtype=torch.float64))
        if ctc:
            batch.update(ctc_audio=torch.tensor([a for a, _ in ctc], dtype=torch.long),
                         ctc_targets=torch.tensor([t for _, ts in ctc for t in ts], dtype=torch.long),
                         ctc_target_lens=torch.tensor([len(ts) for _, ts in ctc], dtype=torch.long))
        batch["audio_seconds"] = float(sum(m.shape[0] for m in mels)) * self.spec.hop_length / self.spec.sample_rate
        return batch


def skip_counts(*skipped: dict[str, str]) -> Counter[str]:
    """Skipped samples per reason kind (the text before ':'), each sample counted once."""
    merged: dict[str, str] = {}
    for d in skipped:
        merged.update(d)
    return Counter(reason.split(":")[0] for reason in merged.values())


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move the tensors of a batch to `device` (span times stay on CPU: they are read as floats)."""
    keep_cpu = {"span_audio", "span_start", "span_end", "mel_lens", "ctc_audio", "ctc_target_lens"}
    return {k: (v.to(device) if isinstance(v, torch.Tensor) and k not in keep_cpu else v) for k, v in batch.items()}
