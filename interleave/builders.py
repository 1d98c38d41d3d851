"""Sample builders: turn an utterance (with its alignment) or a text into training sequences.

Two layouts for interleaved samples, both starting with speech:
- `switch` (default): each word appears once, as speech or as text;
- `chunk_transcript`: each speech chunk is followed by its own transcript, then any text run.
Speech spans carry the times (seconds from the sample's audio start) of their first word's
start and last word's end; their `text` is kept for inspection only.
"""
from __future__ import annotations

from typing import Sequence

from manifests.schema import SPEECH, TEXT, Sample, Span, Text, Utterance, WordSpan

LAYOUTS = ("switch", "chunk_transcript")
Run = tuple[bool, Sequence[WordSpan]]


def asr_sample(utt: Utterance, prompt: str = "", sample_id: str = "") -> Sample:
    """The whole utterance as speech, then (after an optional text prompt) its transcript."""
    spans = [Span(SPEECH, utt.norm_text, 0.0, utt.duration)]
    if prompt:
        spans.append(Span(TEXT, f"{prompt} {utt.norm_text}"))
    else:
        spans.append(Span(TEXT, utt.norm_text))
    n = len(utt.norm_text.split())
    return Sample(sample_id or f"{utt.utt_id}:asr", "asr", utt.utt_id, utt.audio_path, utt.offset, utt.duration,
                  tuple(spans), n, n + len(prompt.split()))


def text_sample(text: Text, sample_id: str = "") -> Sample:
    """Transcript-only domain text: one text span, no audio."""
    n = len(text.norm_text.split())
    return Sample(sample_id or f"{text.text_id}:text", "text", text.text_id, "", 0.0, 0.0,
                  (Span(TEXT, text.norm_text),), 0, n)


def transcript_text_sample(utt: Utterance, sample_id: str = "") -> Sample:
    """A training transcript used as text (recipes with `transcripts_as_text`)."""
    n = len(utt.norm_text.split())
    return Sample(sample_id or f"{utt.utt_id}:text", "text", utt.utt_id, "", 0.0, 0.0,
                  (Span(TEXT, utt.norm_text),), 0, n)


def merge_runs(runs: Sequence[Run]) -> list[tuple[bool, list[WordSpan]]]:
    """Neighbouring runs of the same modality joined, empty runs dropped."""
    merged: list[tuple[bool, list[WordSpan]]] = []
    for is_speech, words in runs:
        if not words:
            continue
        if merged and merged[-1][0] == is_speech:
            merged[-1][1].extend(words)
        else:
            merged.append((is_speech, list(words)))
    return merged


def spans_from_runs(runs: Sequence[Run], layout: str = "switch") -> tuple[Span, ...]:
    """Spans from (is_speech, words) runs in `layout`; neighbouring text spans are joined."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose among {', '.join(LAYOUTS)}")
    spans: list[Span] = []
    for is_speech, words in merge_runs(runs):
        text = " ".join(w.word for w in words)
        if is_speech:
            spans.append(Span(SPEECH, text, words[0].start, words[-1].end))
        if not is_speech or layout == "chunk_transcript":
            if spans and spans[-1].modality == TEXT:
                spans[-1] = Span(TEXT, f"{spans[-1].text} {text}")
            else:
                spans.append(Span(TEXT, text))
    return tuple(spans)


def interleaved_sample(
    utt: Utterance, kind: str, runs: Sequence[Run], layout: str = "switch", sample_id: str = ""
) -> Sample:
    """An interleaved sample of `kind` from modality runs over the utterance's aligned words."""
    spans = spans_from_runs(runs, layout)
    n_speech = sum(len(s.text.split()) for s in spans if s.modality == SPEECH)
    n_text = sum(len(s.text.split()) for s in spans if s.modality == TEXT)
    return Sample(sample_id or f"{utt.utt_id}:{kind}", kind, utt.utt_id, utt.audio_path, utt.offset, utt.duration,
                  spans, n_speech, n_text)


def tts_pair_sample(text: Text, audio_path: str, duration: float, sample_id: str = "", prompt: str = "") -> Sample:
    """Domain text spoken by a synthesizer (`audio_path`, `duration` s), then its transcript."""
    utt = Utterance(text.text_id, audio_path, 0.0, duration, 0, "", text.text, text.norm_text, "", "")
    sample = asr_sample(utt, prompt, sample_id or f"{text.text_id}:tts_pair")
    return Sample(sample.sample_id, "tts_pair", text.text_id, audio_path, 0.0, duration, sample.spans,
                  sample.n_speech_words, sample.n_text_words)


def word_runs(words: Sequence[WordSpan], mask: Sequence[bool]) -> list[Run]:
    """One run per word, in the modality the mask gives it (merged later)."""
    return [(bool(m), [w]) for w, m in zip(words, mask)]


def segment_runs(segments: Sequence[Sequence[WordSpan]], mask: Sequence[bool] | None = None) -> list[Run]:
    """Segments in the modality the mask gives them; by default alternating, starting with speech."""
    if mask is None:
        mask = [i % 2 == 0 for i in range(len(segments))]
    return [(bool(m), seg) for seg, m in zip(segments, mask)]
