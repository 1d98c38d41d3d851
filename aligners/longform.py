"""Long recordings: cut at silences found by a voice activity detector, align the pieces, stitch the times.

Forced alignment of a long recording in one pass is slow, needs memory in proportion to its
length, and fails or misplaces words around long silences (a word pulled a second early into a
pause; a 7 s silence the search cannot cross). So a recording over `max_full_seconds` is read in
blocks, silero-vad marks its speech, and the speech is cut into pieces at every pause of
`min_gap` or more (the pauses themselves are never aligned, so no word is pulled into one).
Each piece is read on its own and given to the backend's
`align_piece`: it places as many of the remaining words as the piece holds (a piece ends in a
pause, so no word is cut); it sees the piece followed by the first second of the next one, so
that the next sentence's first word is found where it is spoken, and only the words placed
within the piece's speech are kept. The last piece takes every word left. Times are shifted back to the
recording, so one Alignment per utterance comes out however many pieces there were, and memory
stays that of one block and one piece whatever the recording's length.

silero-vad ships its model in its wheel (no download) and runs on CPU with torch; it is
imported on first use, so `aligners` imports without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from manifests.schema import WordSpan

from .base import AlignmentFailed

SAMPLE_RATE = 16000
CHUNK = 512  # silero-vad's window at 16 kHz: 32 ms
BLOCK_SECONDS = 60.0  # audio read at a time for the VAD


@dataclass(frozen=True)
class LongformSettings:
    """How long recordings are cut (defaults suit read and conversational speech)."""

    min_gap: float = 0.2  # pauses this long end a piece (stop closures inside words are shorter)
    lookahead: float = 1.0  # seconds of the next piece appended when placing a piece's words
    pad: float = 0.2  # audio kept around each piece's speech (word edges the VAD clipped)
    threshold: float = 0.5  # speech probability that starts speech
    neg_threshold: float = 0.35  # probability under which speech may end
    min_silence: float = 0.1  # silence that ends a stretch of speech
    min_speech: float = 0.1  # shorter stretches of speech are dropped (clicks)
    gaps: bool = True  # a stretch that does not align is left out (`partial`), not the recording
    resync_words: int = 80  # after such a stretch, the next piece may start this many words further on
    # a piece whose words' mean acoustic score (log per frame, relative to the best path) is under this
    # many times the median of the pieces placed before it holds words that are not spoken there
    # (words that match score about -0.002, words forced onto other speech -0.005 and lower)
    score_ratio: float = 2.0
    min_score: float = -0.005  # the same, before 3 pieces have been placed


_MODEL: list = []


def _vad_model():
    """silero-vad's model, loaded once per process (imports torch)."""
    if not _MODEL:
        try:
            import torch
            from silero_vad import load_silero_vad
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise AlignmentFailed(f"long recordings need silero-vad: pip install silero-vad ({exc})",
                                  "aligner_error") from exc
        import warnings

        torch.set_num_threads(1)  # a tiny model: threads cost more than they give, and workers share cores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load, which silero-vad uses
            _MODEL.append(load_silero_vad())
    return _MODEL[0]


def speech_probabilities(read: Callable[[float, float], np.ndarray], duration: float) -> np.ndarray:
    """Speech probability per 32 ms chunk of the first `duration` seconds that `read(start, seconds)` gives."""
    import torch

    model = _vad_model()
    model.reset_states()
    probs: list[float] = []
    carry = np.zeros(0, np.float32)
    t = 0.0
    with torch.no_grad():
        while t < duration:
            block = np.concatenate([carry, read(t, min(BLOCK_SECONDS, duration - t))])
            t += BLOCK_SECONDS
            usable = len(block) // CHUNK * CHUNK
            for i in range(0, usable, CHUNK):
                probs.append(float(model(torch.from_numpy(block[i : i + CHUNK]), SAMPLE_RATE)))
            carry = block[usable:]
            if len(block) == 0:
                break
    return np.asarray(probs, np.float32)


def speech_regions(probs: np.ndarray, s: LongformSettings) -> list[tuple[float, float]]:
    """(start, end) seconds of speech from chunk probabilities, with hysteresis (as silero's own helper)."""
    step = CHUNK / SAMPLE_RATE
    regions, start, quiet = [], None, 0
    for i, p in enumerate(probs):
        if start is None:
            if p >= s.threshold:
                start, quiet = i, 0
        elif p < s.neg_threshold:
            quiet += 1
            if quiet * step >= s.min_silence:
                regions.append((start, i - quiet + 1))
                start = None
        else:
            quiet = 0
    if start is not None:
        regions.append((start, len(probs)))
    return [(a * step, b * step) for a, b in regions if (b - a) * step >= s.min_speech]


def pieces(regions: Sequence[tuple[float, float]], duration: float,
           s: LongformSettings) -> list[tuple[float, float, float]]:
    """(start, end, end of speech) of each piece: speech regions joined across pauses shorter than
    `min_gap`, padded, inside the audio.

    Every pause of `min_gap` or more ends a piece, so no word can be stretched into a pause
    further than the padding; a pause's audio is never aligned.
    """
    groups: list[list[float]] = []
    for a, b in regions:
        if groups and a - groups[-1][1] < s.min_gap:
            groups[-1][1] = b
        else:
            groups.append([a, b])
    out = []
    for k, (a, b) in enumerate(groups):
        before = groups[k - 1][1] if k else 0.0
        after = groups[k + 1][0] if k + 1 < len(groups) else duration
        out.append((max(a - s.pad, (a + before) / 2, 0.0), min(b + s.pad, (b + after) / 2, duration), b))
    return out


def run_start(spans: Sequence[WordSpan], words: Sequence[str], entries: int) -> int | None:
    """The first j <= `entries` such that `spans` are `words[j:]`'s first words (None: no spans)."""
    if not spans:
        return None
    placed = [s.word for s in spans]
    best, best_len = 0, -1
    for j in range(min(entries, len(words) - 1) + 1):
        n = 0
        while n < len(placed) and j + n < len(words) and placed[n] == words[j + n]:
            n += 1
        if n == len(placed):
            return j
        if n > best_len:
            best, best_len = j, n
    return best


def _attempt(aligner, read: Callable[[float, float], np.ndarray], cut: Sequence[tuple[float, float, float]], k: int,
             span: int, words: Sequence[str], skip: int, settings: LongformSettings) -> list[WordSpan]:
    """Words placed in pieces k .. k + span - 1 read as one (times in the recording)."""
    a, b, speech_end = cut[k][0], cut[k + span - 1][1], cut[k + span - 1][2]
    last = k + span == len(cut)
    audio = read(a, b - a)
    if not last:
        # the start of the next piece after this one's trailing pause: the search sees where the
        # next words really are, instead of squeezing the next sentence's first word into this tail
        nxt = cut[k + span]
        audio = np.concatenate([audio, read(nxt[0], min(settings.lookahead, nxt[1] - nxt[0]))])
    try:
        got = aligner.align_piece(audio, words, last=last, skip=skip)
    except AlignmentFailed:
        if not (last and settings.gaps):
            raise
        got = aligner.align_piece(audio, words, last=False, skip=skip)  # the words it holds; the rest left out
    while got and not last and (got[-1].start + got[-1].end) / 2 > speech_end - a:
        got = got[:-1]  # a word of the next piece (or placed in the padding after this one's speech)
    return [WordSpan(w.word, round(w.start + a, 4), round(w.end + a, 4), w.score) for w in got]


def _score(spans: Sequence[WordSpan]) -> float:
    """Mean acoustic score of a piece's words, weighted by their length."""
    frames = np.array([max(s.end - s.start, 0.01) for s in spans])
    return float(np.dot([s.score for s in spans], frames) / frames.sum())


def _floor(scores: Sequence[float], settings: LongformSettings) -> float:
    """The score under which a piece's words are taken for words that are not spoken there."""
    return settings.score_ratio * float(np.median(scores)) if len(scores) >= 3 else settings.min_score


def align_long(aligner, read: Callable[[float, float], np.ndarray], duration: float, words: Sequence[str],
               settings: LongformSettings) -> list[WordSpan]:
    """Word spans over a long recording that `read(start, seconds)` gives, piece by piece (see module doc).

    `aligner.align_piece(audio, words, last, skip)` places a prefix of `words` in a piece (all of
    them when `last`), with times relative to the piece; with `skip`, a run starting at any of the
    first `skip` + 1 words. A piece that places no word is tried again with the next piece's audio
    (its neighbour's context), and so is a piece whose words fit its speech much worse than the pieces
    before fit theirs (`score_ratio`: words forced onto speech that is not theirs, a transcript
    that is wrong there); when that fails too, it begins a stretch that is left out: the next
    pieces may start up to `resync_words` further on in the transcript, and the seconds and words
    between the last word placed before and the first placed after are noted (`gap`, the record
    is `partial`) while every other piece keeps its words. With `gaps` off, such a recording
    fails as a whole (the behaviour before).
    """
    regions = speech_regions(speech_probabilities(read, duration), settings)
    if not regions:
        raise AlignmentFailed(f"the voice activity detector found no speech in {duration:.1f}s of audio",
                              "no_alignment")
    spans: list[WordSpan] = []
    gaps: list[tuple[float, float, int, int]] = []  # (from s, to s, first word left out, first word kept again)
    cut = pieces(regions, duration, settings)
    i, k, lost = 0, 0, None  # lost: (time, word index) where a stretch that does not align began
    scores: list[float] = []  # mean word score of each piece placed
    while k < len(cut) and i < len(words):
        skip = min(settings.resync_words, len(words) - i - 1) if lost else 0
        got, used = [], 1
        for span in (1, 2):  # the piece alone, then with its neighbour's context
            if k + span <= len(cut):
                got, used = _attempt(aligner, read, cut, k, span, words[i:], skip, settings), span
                if got and settings.gaps and _score(got) < _floor(scores, settings):
                    got = []  # words forced onto speech that is not theirs
                if got:
                    break
        if not got:
            if not settings.gaps:
                break
            if lost is None:
                lost = (spans[-1].end if spans else 0.0, i)
            k += 1
            continue
        start = run_start(got, words[i:], skip) if skip else 0
        if lost is not None:
            gaps.append((lost[0], got[0].start, i, i + start))
            lost = None
        spans += got
        scores.append(_score(got))
        i += start + len(got)
        k += used
    if i < len(words) and settings.gaps and spans:
        gaps.append((lost[0] if lost else spans[-1].end, duration, i, len(words)))
        i = len(words)
    if i < len(words):
        where = f"after {spans[-1].word!r} at {spans[-1].end:.2f}s" if spans else "at the start"
        raise AlignmentFailed(f"placed {i} of {len(words)} words in {len(cut)} pieces of speech, stuck {where}; "
                              "check that the transcript matches the audio", "stopped_early" if i else "no_alignment")
    if gaps:
        seconds = sum(b - a for a, b, _, _ in gaps)
        left = sum(m - n for _, _, n, m in gaps)
        where = ", ".join(f"{a:.1f}-{b:.1f}s ({m - n} words from {words[n]!r})" if m > n else f"{a:.1f}-{b:.1f}s"
                          for a, b, n, m in gaps[:5])
        aligner.note("gap", f"{seconds:.1f}s and {left} of {len(words)} words left out in {len(gaps)} stretch(es) "
                            f"that did not align: {where}; check the transcript there")
    return spans
