"""Sample builders: turn an utterance (with its alignment) or a text into training sequences.

Layout `switch`: each word appears once, as speech or as text, and samples start with
speech so every text span follows acoustic and textual context. Speech spans carry the
times of their first and last word; their `text` is kept for inspection only.
"""
from __future__ import annotations

from typing import Sequence

from manifests.schema import SPEECH, TEXT, Sample, Span, Text, Utterance, WordSpan


def asr_sample(utt: Utterance) -> Sample:
    """The whole utterance as speech, then its transcript."""
    spans = (Span(SPEECH, utt.norm_text, 0.0, utt.duration), Span(TEXT, utt.norm_text))
    n = len(utt.norm_text.split())
    return Sample(f"{utt.utt_id}:asr", "asr", utt.utt_id, utt.audio_path, utt.offset, utt.duration, spans, n, n)


def text_sample(text: Text) -> Sample:
    """Transcript-only domain text: one text span, no audio."""
    n = len(text.norm_text.split())
    return Sample(f"{text.text_id}:text", "text", text.text_id, "", 0.0, 0.0, (Span(TEXT, text.norm_text),), 0, n)


def spans_from_runs(runs: Sequence[tuple[bool, Sequence[WordSpan]]]) -> tuple[Span, ...]:
    """Spans from (is_speech, words) runs, merging neighbouring runs of the same modality."""
    merged: list[tuple[bool, list[WordSpan]]] = []
    for is_speech, words in runs:
        if not words:
            continue
        if merged and merged[-1][0] == is_speech:
            merged[-1][1].extend(words)
        else:
            merged.append((is_speech, list(words)))
    spans = []
    for is_speech, words in merged:
        text = " ".join(w.word for w in words)
        spans.append(Span(SPEECH, text, words[0].start, words[-1].end) if is_speech else Span(TEXT, text))
    return tuple(spans)


def interleaved_sample(utt: Utterance, kind: str, runs: Sequence[tuple[bool, Sequence[WordSpan]]]) -> Sample:
    """An interleaved sample of `kind` from modality runs over the utterance's aligned words."""
    spans = spans_from_runs(runs)
    n_speech = sum(len(s.text.split()) for s in spans if s.modality == SPEECH)
    n_text = sum(len(s.text.split()) for s in spans if s.modality == TEXT)
    return Sample(f"{utt.utt_id}:{kind}", kind, utt.utt_id, utt.audio_path, utt.offset, utt.duration, spans, n_speech, n_text)


def word_runs(words: Sequence[WordSpan], mask: Sequence[bool]) -> list[tuple[bool, list[WordSpan]]]:
    """One run per word, in the modality the mask gives it (merged later)."""
    return [(bool(m), [w]) for w, m in zip(words, mask)]


def segment_runs(segments: Sequence[Sequence[WordSpan]]) -> list[tuple[bool, Sequence[WordSpan]]]:
    """Segments alternating speech, text, speech, … starting with speech."""
    return [(i % 2 == 0, seg) for i, seg in enumerate(segments)]
