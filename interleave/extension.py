"""Interleaved sequences from a random span sampler or the `chunk_transcript` layout: extensions.

The paper's construction is `sequences.alternation`. Here a sampler (`interleave/sampling.py`)
draws a speech/text mask over a source's units from (seed, sample id); neighbouring units of one
modality are merged into one span; trailing speech units are dropped so the sequence ends with
text (counted in `dropped`). Layouts: `switch` (each unit once, as speech or as text) and
`chunk_transcript` (each speech run is followed by its own transcript, then by the text run after
it). Token formats as in the paper: nothing between spans at word level, `<N>` before every span
but the first at segment level. A Python loop per sample: the option costs what it costs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from manifests.formats import BOS, EOS, SEGMENT

from .sampling import SamplerParams, rng_for, speech_mask
from .sequences import SPEECH_CODE, TEXT_CODE, TOK, TOKEN_CODE, Alternation, Slots
from .units import Units

LAYOUTS = ("switch", "chunk_transcript")


def sampled(units: Units, sources: np.ndarray, keys: Sequence[str], sampler: str, params: SamplerParams, seed: int,
            segment_level: bool = False, layout: str = "switch") -> Alternation:
    """One sequence per source in `sources`, its mask drawn from (seed, keys[i])."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose among {', '.join(LAYOUTS)}")
    params.check(sampler)
    texts: list[str] = []
    code: list[int] = []
    index: list[int] = []
    start: list[float] = []
    end: list[float] = []
    offsets = [0]
    kept, cands, dropped, s_words, t_words, seconds = [], [], [], [], [], []
    skipped = 0
    for cand, (source, key) in enumerate(zip(np.asarray(sources, np.int64), keys)):
        lo, hi = int(units.offsets[source]), int(units.offsets[source + 1])
        if hi - lo < 2:
            skipped += 1
            continue
        unit_texts = units.text.slice(lo, hi - lo).to_pylist() if sampler == "entity" else None
        mask = speech_mask(sampler, hi - lo, params, rng_for(seed, key), unit_texts)
        last_text = max(i for i, m in enumerate(mask) if not m)
        runs = _runs(mask[: last_text + 1])
        spans = _layout(runs, layout)
        slots: list[tuple[int, int, float, float]] = [(TOKEN_CODE, TOK[BOS], 0.0, 0.0)]
        for k, (is_speech, members) in enumerate(spans):
            if segment_level and k:
                slots.append((TOKEN_CODE, TOK[SEGMENT], 0.0, 0.0))
            texts.append(" ".join(units.text[lo + i].as_py() for i in members))
            if is_speech:
                slots.append((SPEECH_CODE, len(texts) - 1, float(units.start[lo + members[0]]),
                              float(units.end[lo + members[-1]])))
            else:
                slots.append((TEXT_CODE, len(texts) - 1, 0.0, 0.0))
        slots.append((TOKEN_CODE, TOK[EOS], 0.0, 0.0))
        for c, i, a, b in slots:
            code.append(c), index.append(i), start.append(a), end.append(b)
        offsets.append(len(code))
        kept.append(source)
        cands.append(cand)
        dropped.append(last_text + 1 < hi - lo)
        words = {sp: sum(int(units.words[lo + i]) for is_sp, members in spans if is_sp == sp for i in members)
                 for sp in (True, False)}
        s_words.append(words[True])
        t_words.append(words[False])
        seconds.append(sum(float(units.end[lo + m[-1]] - units.start[lo + m[0]]) for is_sp, m in spans if is_sp))
    slots_out = Slots(np.array(offsets, np.int64), np.array(code, np.int8), np.array(index, np.int64),
                      np.array(start, np.float64), np.array(end, np.float64), pa.array(texts, pa.string()))
    n = len(kept)
    return Alternation(slots_out, np.array(cands, np.int64), np.array(kept, np.int64), np.full(n, -1), np.array(dropped, bool),
                       np.array(s_words, np.int64), np.array(t_words, np.int64), np.array(seconds, np.float64), skipped)


def _runs(mask: Sequence[bool]) -> list[tuple[bool, list[int]]]:
    runs: list[tuple[bool, list[int]]] = []
    for i, m in enumerate(mask):
        if runs and runs[-1][0] == bool(m):
            runs[-1][1].append(i)
        else:
            runs.append((bool(m), [i]))
    return runs


def _layout(runs: list[tuple[bool, list[int]]], layout: str) -> list[tuple[bool, list[int]]]:
    """Spans of the layout: `switch` as the runs are; `chunk_transcript` repeats each speech run as text."""
    if layout == "switch":
        return runs
    spans: list[tuple[bool, list[int]]] = []
    for is_speech, members in runs:
        if is_speech:
            spans += [(True, members), (False, list(members))]
        elif spans and not spans[-1][0]:
            spans[-1] = (False, spans[-1][1] + members)
        else:
            spans.append((False, members))
    return spans
