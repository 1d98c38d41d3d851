"""A sample's spans → token ids, loss labels and speech frame ranges, as `manifests/formats.py` says.

Token spans become their special token (`<s>`/`</s>` the tokenizer's bos/eos; `<N>`, `<|asr|>`,
`<|speech|>`, `<|/speech|>` added tokens); speech spans become `<|audio|>` placeholders, one per
encoder output frame of the span (`manifests.frames.span_frames`, the one time-to-frame rule);
text spans become their tokens. Labels: text tokens and `</s>`; everything else is ignored.
Nothing is added implicitly: a training sample must end with `</s>` (samples written before
the token formats do not, and are refused with the fix). Text spans that continue a sentence
(after speech or text, as in word-level interleaving) get a leading space for tokenizers
where it matters (`TokenIds.space_prefix`).

`rendered_lengths` gives the same sequence lengths without audio (speech frames from the
sample's `duration`), which is what batch planning and packing use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from manifests import formats
from manifests.errors import JstipError
from manifests.schema import SPEECH, TEXT, TOKEN, Sample, Span

from .features import FrameSpec, encoded_frames, mel_frames, span_frames
from .tokenizer import TokenIds

IGNORE = -100


class BadSample(ValueError):
    """A sample whose spans cannot be rendered; `category` is a short identifier for counting."""

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(f"{category}: {detail}")
        self.category = category


@dataclass
class Rendered:
    """One sample in the model's layout: ids, labels, and each speech span's output frames [first, last)."""

    input_ids: list[int]
    labels: list[int]
    speech: list[tuple[int, int]]


def check_spans(sample: Sample, prompt: bool = False) -> None:
    """Raise `BadSample` for spans that cannot be rendered, JstipError for a sample from before the formats.

    A training sample (`prompt=False`) must end with `</s>`; a prompt (decoding) may stop anywhere.
    """
    if not sample.spans:
        raise BadSample("bad_spans", f"sample {sample.sample_id} has no spans")
    for span in sample.spans:
        if span.modality == TOKEN:
            if span.text not in formats.TOKENS:
                raise BadSample("bad_spans", f"sample {sample.sample_id} has unknown special token {span.text!r}")
        elif span.modality == SPEECH:
            if not span.end >= span.start:  # also catches NaN
                raise BadSample("bad_spans", f"sample {sample.sample_id} has a speech span ending ({span.end}) before "
                                             f"it starts ({span.start})")
        elif span.modality != TEXT:
            raise BadSample("bad_spans", f"sample {sample.sample_id} has a span of modality {span.modality!r}")
    if not prompt and not ends_with_eos(sample.spans):
        raise not_formatted(sample.sample_id)


def ends_with_eos(spans: Sequence[Span]) -> bool:
    last = spans[-1] if spans else None
    return last is not None and last.modality == TOKEN and last.text == formats.EOS


def not_formatted(sample_id: str) -> JstipError:
    return JstipError(f"sample {sample_id} does not end with the end token {formats.EOS}: its shard was written "
                      "before the token formats (manifests/formats.py); rerun jstip interleave")


def text_pieces(spans: Sequence[Span], ids: TokenIds) -> list[str]:
    """The strings to tokenize for a sample's text spans, in order (with the continuation space rule)."""
    out, prev = [], None
    for span in spans:
        if span.modality == TEXT:
            cont = ids.space_prefix and prev in (SPEECH, TEXT)
            out.append(" " + span.text if cont and not span.text.startswith(" ") else span.text)
        prev = span.modality
    return out


def tokenize_pieces(tok: PreTrainedTokenizerBase, pieces: list[str]) -> list[list[int]]:
    """Token ids of each piece, as `tok(piece, add_special_tokens=False)` gives them.

    Goes straight to the Rust tokenizer when there is one: the Python wrapper's per-text
    conversion costs more than the tokenization itself when planning thousands of samples.
    """
    if not pieces:
        return []
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch_fast"):
        return [e.ids for e in backend.encode_batch_fast(pieces, add_special_tokens=False)]
    return tok(pieces, add_special_tokens=False)["input_ids"]


def audio_frames(duration: float, spec: FrameSpec) -> int:
    """Encoder output frames of `duration` seconds of audio (what the collator will count)."""
    return encoded_frames(mel_frames(int(round(duration * spec.sample_rate)), spec), spec) if duration > 0 else 0


def render(spans: Sequence[Span], text_ids: Sequence[list[int]], ids: TokenIds, spec: FrameSpec,
           n_frames: int) -> Rendered:
    """Lay out spans whose text spans are already tokenized (`text_ids`, in order)."""
    input_ids: list[int] = []
    labels: list[int] = []
    speech: list[tuple[int, int]] = []
    texts = iter(text_ids)
    for span in spans:
        if span.modality == SPEECH:
            first, last = span_frames(span.start, span.end, spec, n_frames)
            input_ids += [ids.audio] * (last - first)
            labels += [IGNORE] * (last - first)
            speech.append((first, last))
        elif span.modality == TEXT:
            tokens = next(texts)
            input_ids += tokens
            labels += tokens
        else:
            token = ids.of(span.text)
            input_ids.append(token)
            labels.append(token if token in ids.targets else IGNORE)
    return Rendered(input_ids, labels, speech)


def render_sample(sample: Sample, tok: PreTrainedTokenizerBase, ids: TokenIds, spec: FrameSpec,
                  n_frames: int) -> Rendered:
    """`render` of one sample, tokenizing its text spans."""
    return render(sample.spans, tokenize_pieces(tok, text_pieces(sample.spans, ids)), ids, spec, n_frames)


def rendered_lengths(samples: Sequence[Sample], tok: PreTrainedTokenizerBase, ids: TokenIds,
                     spec: FrameSpec) -> list[int]:
    """Exact sequence length of each sample (speech frames from `duration`), tokenizing all text at once."""
    pieces = [text_pieces(s.spans, ids) for s in samples]
    flat = tokenize_pieces(tok, [p for ps in pieces for p in ps])
    counts = iter(len(t) for t in flat)
    out = []
    for s, ps in zip(samples, pieces):
        n_frames = audio_frames(s.duration, spec)
        n = sum(next(counts) for _ in ps)
        for span in s.spans:
            if span.modality == SPEECH:
                first, last = span_frames(span.start, span.end, spec, n_frames)
                n += last - first
            elif span.modality == TOKEN:
                n += 1
        out.append(n)
    return out


def is_asr_format(spans: Sequence[Span]) -> bool:
    """`<s> A <|asr|> T </s>`: one speech span, then the asr token (the auxiliary CTC loss applies)."""
    speech = [i for i, s in enumerate(spans) if s.modality == SPEECH]
    return len(speech) == 1 and speech[0] + 1 < len(spans) and spans[speech[0] + 1].modality == TOKEN \
        and spans[speech[0] + 1].text == formats.ASR
