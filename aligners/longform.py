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


def align_long(aligner, read: Callable[[float, float], np.ndarray], duration: float, words: Sequence[str],
               settings: LongformSettings) -> list[WordSpan]:
    """Word spans over a long recording that `read(start, seconds)` gives, piece by piece (see module doc).

    `aligner.align_piece(audio, words, last)` places a prefix of `words` in a piece (all of them
    when `last`), with times relative to the piece.
    """
    regions = speech_regions(speech_probabilities(read, duration), settings)
    if not regions:
        raise AlignmentFailed(f"the voice activity detector found no speech in {duration:.1f}s of audio",
                              "no_alignment")
    spans: list[WordSpan] = []
    cut = pieces(regions, duration, settings)
    i = 0
    for k, (a, b, speech_end) in enumerate(cut):
        if i == len(words):
            break
        last = k == len(cut) - 1
        audio = read(a, b - a)
        if not last:
            # the start of the next piece after this one's trailing pause: the search sees where the
            # next words really are, instead of squeezing the next sentence's first word into this tail
            nxt = cut[k + 1]
            audio = np.concatenate([audio, read(nxt[0], min(settings.lookahead, nxt[1] - nxt[0]))])
        got = aligner.align_piece(audio, words[i:], last=last)
        while got and not last and (got[-1].start + got[-1].end) / 2 > speech_end - a:
            got = got[:-1]  # a word of the next piece (or placed in the padding after this one's speech)
        spans += [WordSpan(w.word, round(w.start + a, 4), round(w.end + a, 4), w.score) for w in got]
        i += len(got)
    if i < len(words):
        where = f"after {spans[-1].word!r} at {spans[-1].end:.2f}s" if spans else "at the start"
        raise AlignmentFailed(f"placed {i} of {len(words)} words in {len(cut)} pieces of speech, stuck {where}; "
                              "check that the transcript matches the audio", "stopped_early" if i else "no_alignment")
    return spans
