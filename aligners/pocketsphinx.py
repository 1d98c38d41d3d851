"""pocketsphinx forced alignment: the embedded default, runs anywhere from a wheel.

Three things make it dependable on real corpora and on synthetic speech:
- words missing from cmudict get pronunciations from espeak-ng (`g2p.arpabet`);
- a faint, seeded noise floor is added, because digital silence (exact zeros, as in
  synthesized or gated audio) derails its feature normalisation;
- a short pad of that noise floor is put around the audio, because the search must reach
  its final state after the last word: clips cut tight at the last word otherwise lose it;
- a ladder of wider beams is tried, and the output is checked word for word against the
  transcript, so a truncated alignment is never mistaken for a result.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from manifests.schema import WordSpan

from .base import Aligner, AlignmentFailed
from .g2p import arpabet

FRAME_RATE = 100  # pocketsphinx's default: 10 ms frames
NOISE_FLOOR = 1e-3  # about -60 dBFS: inaudible, but never an exact zero
DEFAULT_BEAMS = (1e-48, 1e-80, 1e-120)
PAD_SECONDS = 0.25
_VARIANT = re.compile(r"\(\d+\)$")


class PocketsphinxAligner(Aligner):
    """Word alignment with pocketsphinx's en-US model and dictionary (16 kHz)."""

    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, beams: Sequence[float] = DEFAULT_BEAMS, noise_floor: float = NOISE_FLOOR) -> None:
        from pocketsphinx import Decoder

        if not beams:
            raise AlignmentFailed("pocketsphinx needs at least one beam width")
        self.beams = tuple(beams)
        self.noise_floor = noise_floor
        self._decoders = [
            Decoder(samprate=self.sample_rate, loglevel="FATAL", beam=b, wbeam=b * 1e19, pbeam=b) for b in self.beams
        ]
        self._added: set[str] = set()

    def _ensure_pronunciations(self, words: Sequence[str]) -> None:
        for word in dict.fromkeys(words):
            if word in self._added or self._decoders[0].lookup_word(word) is not None:
                continue
            phones = arpabet(word)
            if not phones:
                raise AlignmentFailed(f"no pronunciation for {word!r}: not in cmudict and espeak-ng gave no phones")
            for decoder in self._decoders:
                decoder.add_word(word, " ".join(phones), True)
            self._added.add(word)

    def _pcm(self, audio: np.ndarray) -> bytes:
        rng = np.random.default_rng(0)  # fixed seed: the same audio always aligns the same way
        pad = np.zeros(int(PAD_SECONDS * self.sample_rate), np.float32)
        padded = np.concatenate([pad, audio.astype(np.float32), pad])
        noisy = padded + self.noise_floor * rng.standard_normal(len(padded)).astype(np.float32)
        return (np.clip(noisy, -1.0, 1.0) * 32767).astype(np.int16).tobytes()

    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        words = [w for w in words if w]
        if not words:
            raise AlignmentFailed("empty transcript: nothing to align")
        if len(audio) < self.sample_rate * 0.05:
            raise AlignmentFailed(f"audio too short to align ({len(audio) / self.sample_rate:.3f}s)")
        self._ensure_pronunciations(words)
        pcm = self._pcm(audio)
        reasons = []
        for beam, decoder in zip(self.beams, self._decoders):
            # Feature state (cepstral mean and more) adapts across utterances; resetting it makes
            # an alignment independent of what the worker aligned before (1 and N workers agree).
            decoder.reinit_feat()
            try:
                decoder.set_align_text(" ".join(words))
            except RuntimeError as exc:
                raise AlignmentFailed(f"pocketsphinx rejected the transcript: {exc}") from exc
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            spans = _word_spans(decoder, len(audio) / self.sample_rate) if decoder.hyp() is not None else []
            got = [s.word for s in spans]
            if got == list(words):
                return spans
            reasons.append(_mismatch(beam, words, got))
        kind = "no alignment found" if all(r.endswith("nothing") for r in reasons) else "alignment stopped early"
        raise AlignmentFailed(f"{kind}: " + "; ".join(reasons))


def _word_spans(decoder, duration: float) -> list[WordSpan]:
    """Transcript words with times relative to the unpadded audio, clipped to it."""
    spans = []
    for seg in decoder.seg():
        if seg.word.startswith(("<", "[")):
            continue  # <s>, </s>, <sil>, [NOISE]: not transcript words
        frames = seg.end_frame - seg.start_frame + 1
        score = math.log(max(seg.ascore, 1e-300)) / frames
        start = min(max(seg.start_frame / FRAME_RATE - PAD_SECONDS, 0.0), duration)
        end = min(max((seg.end_frame + 1) / FRAME_RATE - PAD_SECONDS, start), duration)
        spans.append(WordSpan(_VARIANT.sub("", seg.word), round(start, 4), min(round(end, 4), duration), score))
    return spans


def _mismatch(beam: float, expected: Sequence[str], got: Sequence[str]) -> str:
    if not got:
        return f"beam {beam:g} aligned nothing"
    return f"beam {beam:g} aligned {len(got)} of {len(expected)} words (stopped after {got[-1]!r})"
