"""Samples → model batches: audio loading, the encoder input of speech spans, padded or packed rows.

A sample is rendered by `render.py` (token formats of `manifests/formats.py`). Its speech spans
reach the encoder in one of two ways (`span_encoding`):
- `concat` (the paper's, default): the log-mel rows of each speech span (`frames.span_mel`, a
  whole number of output frames each) are cut out, concatenated and encoded once per sample;
  the outputs fill the placeholders in order. A span's frames see only speech given as speech.
- `slice` (our first build's): the whole utterance is encoded once and each span's frames are
  sliced from it; a span's frames then also see the audio of the words given as text.
Either way the batch carries, per speech span, its encoder row and output-frame range, so the
model takes exactly the frames the collator counted.

Rows are `padded` (one sample per row, right- or left-padded, with an attention mask) or
`packed` (several samples per row; position ids restart at each sample and the model resets
attention there; labels stay per sample). Text-only samples give the encoder nothing.
Audio comes from the sample's embedded FLAC bytes (`Sample.audio`) when present, else from
`audio_path` at offset/duration. A sample that cannot be used (unreadable audio, too long,
malformed spans) is skipped and recorded as "category: detail", never silently lost.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from manifests.audio import decode_audio_bytes, load_audio
from manifests.errors import AudioError, JstipError
from manifests.frames import span_mel
from manifests.schema import SPEECH, TEXT, Sample

from .features import FrameSpec, encoded_frames, feature_extractor
from .render import IGNORE, BadSample, check_spans, is_asr_format, render_sample
from .tokenizer import TokenIds

SPAN_ENCODINGS = ("concat", "slice")
__all__ = ["IGNORE", "Collator", "Features", "Item", "SampleDataset", "load_item", "skip_counts", "to_device"]


@dataclass
class Item:
    """One loaded sample: the record and its log-mel (None for text-only samples)."""

    sample: Sample
    mel: torch.Tensor | None


class Features:
    """The encoder's feature rows (log-mel, or `spec.features`) of a sample's audio, cached by source (up to `cache_mb`); raises AudioError.

    `audio_bytes(sample)` may fetch embedded audio lazily (the trainer reads it from the shard
    when the batch is built); by default it is `sample.audio`.
    """

    def __init__(self, spec: FrameSpec = FrameSpec(), cache_mb: float = 512.0,
                 audio_bytes: Callable[[Sample], bytes | None] | None = None) -> None:
        self.spec = spec
        self.logmel: Callable[[Any], torch.Tensor] | None = None  # the encoder's features (log-mel by default)
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
            self.logmel = feature_extractor(self.spec)
        mel = self.logmel(wave)
        self.cache[key] = mel
        self.cache_bytes += mel.numel() * 4
        while self.cache_bytes > self.cache_limit and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.cache_bytes -= old.numel() * 4
        return mel


def load_item(sample: Sample, features: Features, skipped: dict[str, str]) -> "Item | None":
    """The `Item` of a sample, or None with "category: detail" recorded in `skipped`."""
    if not any(span.modality == SPEECH for span in sample.spans):
        return Item(sample, None)
    try:
        return Item(sample, features(sample))
    except AudioError as exc:
        reason = str(exc)
        skipped[sample.sample_id] = ("no_audio: " if reason.startswith("speech span") else "audio_unreadable: ") + reason
        return None


class SampleDataset(torch.utils.data.Dataset):
    """Samples held in memory (decoding, small runs); log-mel computed on first use and cached."""

    def __init__(self, samples: Sequence[Sample], spec: FrameSpec = FrameSpec(), cache_mb: float = 512.0) -> None:
        self.samples = list(samples)
        self.spec = spec
        self.features = Features(spec, cache_mb)
        self.skipped: dict[str, str] = {}  # sample_id -> "category: detail", each sample counted once

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item | None:
        return load_item(self.samples[index], self.features, self.skipped)


@dataclass
class _Example:
    sample: Sample
    input_ids: list[int]
    labels: list[int]
    audio: int | None  # encoder row
    ctc: list[int] | None


def _pad_mel(mel: torch.Tensor, rows: int, spec: FrameSpec = FrameSpec()) -> torch.Tensor:
    """`mel` cut or padded with silence to `rows` rows: log-mel's own floor value; 0 for the normalised
    waveform and fbank rows of `encoder: hf` (their extractors' padding value)."""
    if mel.shape[0] >= rows:
        return mel[:rows]
    floor = mel.min() if mel.numel() and spec.features == "logmel" else mel.new_zeros(())
    return torch.cat([mel, floor.expand(rows - mel.shape[0], mel.shape[1])])


CTC_UNITS = ("tokens", "chars")
WORD_BOUNDARY = "\u2581"  # the Metaspace tokenizers' word start; a space in char targets


def char_ids(tok: PreTrainedTokenizerBase) -> dict[str, int]:
    """Lower-case letters, digits, the apostrophe and a word boundary as the tokenizer's single-character
    token ids (the CTC head's classes for `ctc_units: chars`); characters it lacks are left out."""
    wanted = "abcdefghijklmnopqrstuvwxyz0123456789'"
    unk = tok.unk_token_id
    out = {c: i for c in wanted if (i := tok.convert_tokens_to_ids(c)) is not None and i != unk}
    boundary = tok.convert_tokens_to_ids(WORD_BOUNDARY)
    if boundary is not None and boundary != unk:
        out[" "] = boundary
    if len(out) < 27:
        raise JstipError(f"ctc_units chars needs single-letter tokens in the tokenizer; it has {len(out)} of "
                         f"{len(wanted) + 1}: use ctc_units tokens")
    return out


def char_targets(text: str, ids: dict[str, int]) -> list[int]:
    """A transcript as CTC character targets: lower case, characters outside `ids` dropped (punctuation),
    words separated by one boundary. Letters generalise across words where a small encoder would learn
    each token of a 1000-token vocabulary from few examples (and memorise sentences instead)."""
    words = ["".join(c for c in w if c in ids) for w in text.lower().split()]
    return [ids[c] for c in " ".join(w for w in words if w) if c in ids]


class Collator:
    """Lays out a list of `Item`s as a batch the `SpeechLM` takes (see the module docstring).

    `collator(items)` gives padded rows, one sample each; `collator(items, rows=[r0, r1, ...])`
    packs item i into row r_i (in order). `add_eos=False` (or `prompt=True`) makes prompt
    batches for decoding: samples may stop before the answer (no `</s>` required), typically
    left-padded, and carry no labels (so `SpeechLM(batch).logits` scores every position; score a
    continuation with a training batch's `example_loss` instead). Keys: input_ids, labels, position_ids, example_ids (sample index per position,
    -1 on padding) `[R, W]`; attention_mask (padded rows only); mel `[A, T, n_mels]`, mel_lens
    `[A]` (one encoder row per sample with speech); span_audio, span_first, span_last (per
    speech span in placeholder order: its encoder row and output-frame range); ctc_audio,
    ctc_targets, ctc_target_lens for samples in the asr format (`<s> A <|asr|> T </s>`);
    bookkeeping: kinds, sample_ids, n_tokens, n_pad, attn_positions (Σ length², for MFU),
    n_mel, n_mel_pad, audio_seconds.
    """

    def __init__(self, tok: PreTrainedTokenizerBase, spec: FrameSpec = FrameSpec(), max_tokens: int = 2048,
                 padding_side: str = "right", add_eos: bool = True, span_encoding: str = "concat",
                 prompt: bool | None = None, ctc_units: str = "tokens") -> None:
        if span_encoding not in SPAN_ENCODINGS:
            raise JstipError(f"span_encoding {span_encoding!r} is unknown; use {' or '.join(SPAN_ENCODINGS)}")
        if ctc_units not in CTC_UNITS:
            raise JstipError(f"ctc_units {ctc_units!r} is unknown; use {' or '.join(CTC_UNITS)}")
        self.ctc_units, self._chars = ctc_units, char_ids(tok) if ctc_units == "chars" else {}
        self.tok, self.ids, self.spec = tok, TokenIds(tok), spec
        self.max_tokens, self.padding_side, self.span_encoding = max_tokens, padding_side, span_encoding
        self.prompt = (not add_eos) if prompt is None else prompt
        self.skipped: dict[str, str] = {}  # sample_id -> "category: detail", each sample counted once

    def _example(self, item: Item, mels: list[torch.Tensor], spans: list[tuple[int, int, int]]) -> _Example | None:
        sample = item.sample
        try:
            check_spans(sample, self.prompt)
        except BadSample as exc:
            self.skipped[sample.sample_id] = str(exc)
            return None
        n_frames = encoded_frames(item.mel.shape[0], self.spec) if item.mel is not None else 0
        r = render_sample(sample, self.tok, self.ids, self.spec, n_frames)
        if len(r.input_ids) > self.max_tokens:
            self.skipped[sample.sample_id] = f"too_long: {len(r.input_ids)} positions > {self.max_tokens}"
            return None
        audio, ctc = None, None
        if r.speech:
            audio = len(mels)
            if self.span_encoding == "concat":
                pieces, offset = [], 0
                for first, last in r.speech:
                    a, b = span_mel(first, last, self.spec)
                    pieces.append(_pad_mel(item.mel[a:], b - a, self.spec))
                    spans.append((audio, offset, offset + last - first))
                    offset += last - first
                mels.append(torch.cat(pieces))
            else:
                mels.append(item.mel)
                spans += [(audio, first, last) for first, last in r.speech]
            if is_asr_format(sample.spans) and self.ctc_units == "chars":  # the transcript's letters
                ctc = char_targets(" ".join(sp.text for sp in sample.spans if sp.modality == TEXT), self._chars)
            elif is_asr_format(sample.spans):  # a CTC target for the encoder: the transcript's tokens
                ctc = [t for t, lab in zip(r.input_ids, r.labels) if lab != IGNORE and t not in self.ids.targets]
        labels = list(r.labels)
        if labels:
            labels[0] = IGNORE  # nothing predicts a sample's first position (never the previous sample)
        return _Example(sample, r.input_ids, labels, audio, ctc)

    def __call__(self, items: Sequence[Item | None], rows: Sequence[int] | None = None) -> dict[str, Any] | None:
        mels: list[torch.Tensor] = []
        spans: list[tuple[int, int, int]] = []
        examples: list[_Example] = []
        row_of: list[int] = []
        for k, item in enumerate(items):
            if item is None:
                continue
            ex = self._example(item, mels, spans)
            if ex is not None:
                examples.append(ex)
                row_of.append(rows[k] if rows is not None else len(row_of))
        if not examples:
            return None
        layout: dict[int, list[int]] = {}
        for e, r in enumerate(row_of):
            layout.setdefault(r, []).append(e)
        lines = list(layout.values())
        width = max(sum(len(examples[e].input_ids) for e in line) for line in lines)
        n = len(lines)
        input_ids = torch.full((n, width), self.ids.pad, dtype=torch.long)
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        example_ids = torch.full((n, width), -1, dtype=torch.long)
        left = self.padding_side == "left" and rows is None
        for i, line in enumerate(lines):
            used = sum(len(examples[e].input_ids) for e in line)
            at = width - used if left else 0
            for e in line:
                ex = examples[e]
                sl = slice(at, at + len(ex.input_ids))
                input_ids[i, sl] = torch.tensor(ex.input_ids)
                labels[i, sl] = torch.tensor(ex.labels)
                positions[i, sl] = torch.arange(len(ex.input_ids))
                example_ids[i, sl] = e
                at += len(ex.input_ids)
            if rows is not None and used < width:  # packed: the tail is one more (label-free) sequence
                positions[i, used:] = torch.arange(width - used)
        lengths = [len(ex.input_ids) for ex in examples]
        batch: dict[str, Any] = {
            "input_ids": input_ids, "labels": labels, "position_ids": positions, "example_ids": example_ids,
            "packed": rows is not None, "kinds": [ex.sample.kind for ex in examples],
            "sample_ids": [ex.sample.sample_id for ex in examples], "n_tokens": sum(lengths),
            "n_pad": n * width - sum(lengths), "attn_positions": sum(x * x for x in lengths)}
        if rows is None:
            batch["attention_mask"] = (example_ids >= 0).long()
        if self.prompt:  # prompts have no targets: the model returns every position's logits
            del batch["labels"]
        if mels:
            lens = torch.tensor([m.shape[0] for m in mels])
            mel = torch.zeros(len(mels), int(lens.max()), mels[0].shape[1])
            for i, m in enumerate(mels):
                mel[i, : m.shape[0]] = m
            batch.update(mel=mel, mel_lens=lens, span_audio=torch.tensor([a for a, _, _ in spans], dtype=torch.long),
                         span_first=torch.tensor([f for _, f, _ in spans], dtype=torch.long),
                         span_last=torch.tensor([last for _, _, last in spans], dtype=torch.long))
        ctc = [(ex.audio, ex.ctc) for ex in examples if ex.ctc is not None and ex.audio is not None]
        if ctc:
            batch.update(ctc_audio=torch.tensor([a for a, _ in ctc], dtype=torch.long),
                         ctc_targets=torch.tensor([t for _, ts in ctc for t in ts], dtype=torch.long),
                         ctc_target_lens=torch.tensor([len(ts) for _, ts in ctc], dtype=torch.long))
        n_mel = sum(m.shape[0] for m in mels)
        batch.update(n_mel=n_mel, n_mel_pad=(batch["mel"].shape[0] * batch["mel"].shape[1] - n_mel) if mels else 0,
                     audio_seconds=float(n_mel) * self.spec.hop_length / self.spec.sample_rate)
        return batch


def skip_counts(*skipped: dict[str, str]) -> Counter[str]:
    """Skipped samples per category (the identifier before ':'), each sample counted once."""
    merged: dict[str, str] = {}
    for d in skipped:
        merged.update(d)
    return Counter(reason.split(":")[0] for reason in merged.values())


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move the tensors of a batch to `device` (frame indices and lengths stay on CPU: read as ints)."""
    keep_cpu = {"span_audio", "span_first", "span_last", "mel_lens", "ctc_audio", "ctc_target_lens"}
    return {k: (v.to(device) if isinstance(v, torch.Tensor) and k not in keep_cpu else v) for k, v in batch.items()}
