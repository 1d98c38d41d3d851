"""Token counts: of built samples (reported), and estimated per candidate from columns (for mixing).

A sample's length in LM positions is its speech seconds x `speech_per_second` (the paper's
encoder gives 12.5 positions per second), plus its text words x `per_word` (an estimate of
tokenizer pieces per word), plus one position per special-token span. Mixing by tokens needs each
kind's total before anything is built, so `estimate_*` compute it per candidate from the columns
a first pass reads (durations, word times and counts), never by building samples; the report
compares these estimates with the counts of the samples built.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class Rates:
    speech_per_second: float = 12.5
    per_word: float = 1.5


def count(speech_seconds, text_words, token_spans, rates: Rates) -> np.ndarray:
    """LM positions of samples."""
    return (np.asarray(speech_seconds, np.float64) * rates.speech_per_second
            + np.asarray(text_words, np.float64) * rates.per_word + np.asarray(token_spans, np.float64))


def estimate_asr(durations: np.ndarray, n_words: np.ndarray, rates: Rates, tagged: bool = False) -> np.ndarray:
    """`<s>` A `<|asr|>` T `</s>`: the whole audio and every word."""
    return count(durations, n_words, 3 + 2 * tagged, rates)


def estimate_text(n_words: np.ndarray, n_sentences: np.ndarray, rates: Rates) -> np.ndarray:
    """`<s>` S1 `</s>` …: every word and an end token per sentence."""
    return count(0.0, n_words, 1 + np.asarray(n_sentences), rates)


def estimate_interleave(stats: dict[str, np.ndarray], level: str, variants: str, rates: Rates,
                        tagged: bool = False) -> np.ndarray:
    """Both variants of a source together hold each unit once as speech and once as text; one
    variant alone about half of that. Segment spans also hold the short pauses inside them."""
    n = stats["words"].astype(np.float64)
    if level == "word":
        speech, specials = stats["inside"], np.full(len(n), 4.0)
    else:
        segments = np.maximum(stats["cuts"] + 1, np.minimum(n, 2))
        speech = stats["inside"] + stats["short_pauses"]
        specials = 4.0 + 2.0 * (segments - 1)
        n_units = segments
    units = n if level == "word" else n_units
    specials = specials + 2.0 * units * tagged
    factor = 1.0 if variants == "both" else 0.5
    return factor * count(speech, n, specials, rates)


def interleave_samples(n_units: np.ndarray, variants: str) -> np.ndarray:
    """How many sequences a source of n units gives (a1 needs 2 units, t1 needs 3)."""
    n = np.asarray(n_units)
    if variants == "both":
        return (n >= 2).astype(np.float64) + (n >= 3)
    if variants == "text_first":
        return (n >= 3).astype(np.float64)
    if variants == "whole":
        return ((n >= 2) & ((n % 2 == 0) | (n >= 3))).astype(np.float64)
    return (n >= 2).astype(np.float64)


def estimate_tts(n_words: np.ndarray, words_per_minute: float, rates: Rates, tagged: bool = False) -> np.ndarray:
    """A synthesized pair: about len(words) x 60 / wpm seconds of speech, then the words."""
    seconds = np.asarray(n_words, np.float64) * 60.0 / words_per_minute
    return count(seconds, n_words, 3 + 2 * tagged, rates)
