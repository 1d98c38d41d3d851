"""pocketsphinx forced alignment: the embedded default, runs anywhere from a wheel.

What makes it dependable on real corpora and on synthetic speech:
- words missing from cmudict get pronunciations from espeak-ng (`g2p.arpabet`);
- a faint, seeded noise floor is added, because digital silence (exact zeros, as in
  synthesized or gated audio) derails its feature normalisation;
- a short pad of that noise floor is put around the audio, because the search must reach
  its final state after the last word: clips cut tight at the last word otherwise lose it;
- word times come from the Viterbi backtrace out of the grammar's final state
  (`bestpath=False`): pocketsphinx's default lattice best-path rescoring can end on a partial
  path and drop the last words of a well-formed utterance;
- the beams are wide (1e-120, retry at 1e-200; the default 1e-48 loses the path in
  spontaneous speech): a linear grammar keeps few paths alive, so this costs ~30% more
  than 1e-48 and a retry is rarely needed;
- the output is checked word for word against the transcript, so a truncated alignment is
  never mistaken for a result;
- word times are frame centres: frame i describes samples [10 i ms, 10 i ms + 25.6 ms), so a
  boundary between frames i - 1 and i lies at 10 i ms + 7.8 ms, not at 10 i ms (reading it as
  the frame's first sample put every boundary 7.8 ms early);
- a word the search put into the noise pad (outside the audio) is not a placed word;
- a recording up to `max_full_seconds` (30 s) is aligned in one forced pass: on real
  speech one pass agrees better with MFA than pieces do (a filler placed from a piece's
  edge drifts); when a pass stops early, the words it placed (but the last) are kept and
  the rest is aligned on the rest of the audio; when a pass finds nothing, a window of
  `window_seconds` is decoded with a grammar that may stop after any word and the words
  ending well inside it are kept, so one hard spot (a cough, a cut) does not fail a recording;
- a longer recording is cut at silences by a voice activity detector and aligned piece by
  piece (`longform`): the time and memory of one piece, whatever the recording's length;
- phones (ARPAbet) come from pocketsphinx's second, state-level pass over the first pass's words
  (`set_alignment`/`get_alignment`), for a recording whose words one forced pass placed; where
  words were placed in pieces, windows or again, the record has words only.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np

from manifests.audio import load_audio
from manifests.errors import JstipError
from manifests.schema import PhoneSpan, Utterance, WordSpan

from .base import MIN_SECONDS, Aligner, AlignmentFailed
from .g2p import arpabet, foreign_script
from .coverage import CoverageSettings, unexplained_speech
from .longform import LongformSettings, align_long, run_start

FRAME_RATE = 100  # pocketsphinx's default: 10 ms frames
NOISE_FLOOR = 1e-3  # about -60 dBFS: inaudible, but never an exact zero
DEFAULT_BEAMS = (1e-120, 1e-200)  # a linear grammar keeps few paths alive: wide beams cost little
WORD_BEAM_RATIO = 1e8  # wbeam = beam * this: 1e-120 -> 1e-112 (pocketsphinx's 7e-29 is too narrow)
PAD_SECONDS = 0.25
WINDOW_SECONDS = 8.0
MAX_FULL_SECONDS = 30.0
MAX_WORDS_PER_SECOND = 8  # a window's grammar holds at most this many words per second of audio
WINDOW_MARGIN = 1.0  # words ending this close to a window's cut may be cut themselves: not kept
REFINE_TOLERANCE = 0.05  # a leading word placed again is kept when the word after it moves at most this
GUESS_SECONDS = 0.1  # a faint first word the search cannot place is put in this much before the next
MIN_WORD_SECONDS = 0.03  # the word after words placed again keeps at least this much (3 frames: one phone)
_VARIANT = re.compile(r"\(\d+\)$")


class PocketsphinxAligner(Aligner):
    """Word alignment with pocketsphinx's en-US model and dictionary (16 kHz)."""

    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(
        self,
        beams: Sequence[float] = DEFAULT_BEAMS,
        noise_floor: float = NOISE_FLOOR,
        window_seconds: float = WINDOW_SECONDS,
        max_full_seconds: float = MAX_FULL_SECONDS,
        config: dict | None = None,
        longform: LongformSettings | None = None,
        coverage: CoverageSettings | None = None,
        unexplained_speech: float = CoverageSettings.min_seconds,
        phones: bool = False,
    ) -> None:
        """`beams`: the retry ladder, narrowest first; `config`: extra pocketsphinx decoder settings;
        `unexplained_speech`: seconds of speech no word covers that make a record partial (0: not checked);
        `phones`: also place phones (a second, state-level pass; see `_phone_pass`)."""
        if not beams:
            raise JstipError("pocketsphinx needs at least one beam width, e.g. beams=(1e-120, 1e-200)")
        if window_seconds <= 2 * WINDOW_MARGIN:
            raise JstipError(f"window_seconds must exceed {2 * WINDOW_MARGIN}s, got {window_seconds}")
        self.beams = tuple(float(b) for b in beams)
        self.noise_floor = noise_floor
        self.window_seconds = window_seconds
        self.max_full_seconds = max_full_seconds
        self.longform = longform or LongformSettings()
        self.coverage = coverage or CoverageSettings(min_seconds=unexplained_speech)
        self.phones = phones
        self.placed_phones: list[PhoneSpan] = []  # the phones of the utterance aligned last (align_one keeps them)
        self._pass_phones: list[PhoneSpan] = []  # the phones of the last forced pass that placed every word
        # bestpath=False: word times from the Viterbi backtrace out of the grammar's final state.
        # The lattice best-path rescoring (pocketsphinx's default) may end on a partial path and
        # drop the last words, which made well-formed utterances fail as "stopped early".
        self._config = {"bestpath": False, **(config or {})}
        # the retry decoders are built when first needed (each loads the acoustic model, ~0.2 s)
        self._decoders: list = [self._build(self.beams[0])] + [None] * (len(self.beams) - 1)
        config = self._decoders[0].config
        self._frate = int(config["frate"])
        # frame i is computed from samples [i * shift, i * shift + window): it describes the audio
        # around its centre, i * shift + window / 2. A boundary between frames i - 1 and i lies
        # between their centres, at i * shift + (window - shift) / 2 (7.8 ms for 25.6 ms windows
        # at 10 ms); reading frame i as "starts at i * shift" puts every boundary that much early.
        window = int(float(config["wlen"]) * self.sample_rate + 0.5) / self.sample_rate
        self.frame_offset = (window - 1 / self._frate) / 2
        self._added: dict[str, str] = {}  # word -> phones added from G2P, replayed into later decoders
        self._grammars = 0
        self.passes: Counter = Counter()  # decoding passes by kind and beam (for profiling retries)

    def _ensure_pronunciations(self, words: Sequence[str]) -> None:
        for word in dict.fromkeys(words):
            if word in self._added or self._decoders[0].lookup_word(word) is not None:
                continue
            script = foreign_script(word)
            if script:
                raise AlignmentFailed(
                    f"word {word!r} is written in {script} script: the en-US model has no pronunciation for it and "
                    "would place letter names instead; transliterate it, or align this corpus with a model of that "
                    "language", "no_pronunciation")
            phones = arpabet(word)
            if not phones:
                raise AlignmentFailed(f"no pronunciation for {word!r}: not in cmudict and espeak-ng gave no phones",
                                      "no_pronunciation")
            self._added[word] = " ".join(phones)
            for decoder in self._decoders:
                if decoder is not None:
                    # update=False: dictionary only. Every pass builds a fresh search that reads the
                    # dictionary; rebuilding the current search per added word cost ~0.1 s per decoder.
                    decoder.add_word(word, self._added[word], False)

    def _build(self, beam: float):
        from pocketsphinx import Decoder

        return Decoder(samprate=self.sample_rate, loglevel="FATAL", beam=beam, wbeam=beam * WORD_BEAM_RATIO,
                       pbeam=beam, **self._config)

    def _decoder(self, rung: int):
        """The decoder of the ladder's `rung`, built (with the words added so far) on first use."""
        if self._decoders[rung] is None:
            decoder = self._build(self.beams[rung])
            for word, phones in self._added.items():
                decoder.add_word(word, phones, False)
            self._decoders[rung] = decoder
        return self._decoders[rung]

    def _pcm(self, audio: np.ndarray, lead: float = PAD_SECONDS) -> bytes:
        """16-bit PCM of `audio` in the noise floor, `lead` seconds of it before and PAD_SECONDS after."""
        rng = np.random.default_rng(0)  # fixed seed: the same audio always aligns the same way
        pad = np.zeros(int(PAD_SECONDS * self.sample_rate), np.float32)
        # without its DC offset: an offset steps up from the pad at the audio's first sample, which
        # the search may take for a word's onset
        audio = audio.astype(np.float32) - (float(audio.mean()) if len(audio) else 0.0)
        padded = np.concatenate([pad[: int(lead * self.sample_rate)], audio, pad])
        noisy = padded + self.noise_floor * rng.standard_normal(len(padded)).astype(np.float32)
        return (np.clip(noisy, -1.0, 1.0) * 32767).astype(np.int16).tobytes()

    def _decode(self, decoder, audio: np.ndarray, words: Sequence[str], prefix: bool,
                lead: float = PAD_SECONDS, entries: int = 0) -> list[WordSpan]:
        """One pass: forced (every word, in order) or prefix (may stop after any word; with
        `entries`, may also start at any of the first `entries` + 1 words: the spans then match
        `words` from the word they start at, `longform.run_start`).

        Leading words the search put into the noise pad before the audio, ahead of words it
        placed in the audio, are placed again (`_refine_leading`), never a reason to drop the rest.
        """
        # Feature state (cepstral mean and more) adapts across utterances; resetting it makes
        # an alignment independent of what the worker aligned before (1 and N workers agree).
        decoder.reinit_feat()
        try:
            if prefix:
                n = len(words)
                transitions = [(i, i + 1, 1.0, w) for i, w in enumerate(words)] + [(i, n, 1.0) for i in range(1, n)] \
                    + [(0, j, 1.0) for j in range(1, min(entries, n - 1) + 1)]
                self._grammars += 1
                name = f"prefix{self._grammars}"
                decoder.add_fsg(name, decoder.create_fsg(name, 0, n, transitions))
                decoder.activate_search(name)
            else:
                decoder.set_align_text(" ".join(words))
        except (RuntimeError, ValueError) as exc:
            raise AlignmentFailed(f"pocketsphinx rejected the transcript: {exc}", "transcript_rejected") from exc
        self.passes[f"{'window' if prefix else 'forced'} beam {decoder.config['beam']:.0e}"] += 1
        pcm = self._pcm(audio, lead)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        spans, leading = self._word_spans(decoder, len(audio) / self.sample_rate, lead) \
            if decoder.hyp() is not None else ([], 0)
        if prefix:
            decoder.remove_search(name)
        if entries:
            start = run_start(spans, words, entries)
            return _matching_prefix(spans, words[start:]) if start is not None else []
        spans = _matching_prefix(spans, words)
        if leading:
            spans = self._refine_leading(decoder, audio, spans, leading) if len(spans) > leading else []
        elif self.phones and lead == PAD_SECONDS and len(spans) == len(words):
            self._pass_phones = self._phone_pass(decoder, pcm, spans, lead)
        return spans

    def _phone_pass(self, decoder, pcm: bytes, spans: list[WordSpan], lead: float) -> list[PhoneSpan]:
        """The phones of `spans`, from pocketsphinx's state-level alignment of the pass just decoded
        (`set_alignment` realigns the hypothesis's words, silences and fillers frame by frame and
        keeps its phones and states; the first pass keeps only words, which is why it is faster).
        Each phone is clipped to its word as the first pass placed it, so phones tile the word
        spans of the record; [] when the second pass does not give the same words."""
        self.passes["phones"] += 1
        try:
            decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
        except RuntimeError:
            return []
        if alignment is None:
            return []
        # an entry's phones are read while the iterator stands on it (it owns them: reading them
        # after it moved on crashed the process)
        entries = [(_VARIANT.sub("", w.name), [(p.name, p.start, p.start + p.duration) for p in w])
                   for w in alignment if not w.name.startswith(("<", "[", "(", "+"))]
        if [name for name, _ in entries] != [s.word for s in spans]:
            return []
        phones = []
        for (_, frames), span in zip(entries, spans):
            for name, first, stop in frames:
                start = max(first / self._frate + self.frame_offset - lead, span.start)
                end = min(stop / self._frate + self.frame_offset - lead, span.end)
                if end > start:
                    phones.append(PhoneSpan(name, round(start, 4), round(end, 4)))
        return phones

    def _refine_leading(self, decoder, audio: np.ndarray, spans: list[WordSpan], leading: int) -> list[WordSpan]:
        """`spans` with its first `leading` words (which the search put before the audio, in the
        noise pad) placed again, or [] when they cannot be placed in the audio.

        A short, faint first word after a leading silence (a reduced "the") is where the search
        may rather spend the pad before the audio than the audio itself; the words after it were
        placed well. So those words and the next two are aligned again over the audio up to the
        end of the second, with no pad before it: the words must then lie in the audio. The
        refined words are kept when the next word starts or ends where the whole pass put it (within
        `REFINE_TOLERANCE`); that word then starts where the second pass put it and ends where the
        first did. When the second pass disagrees, one such word (not more: several words before
        the audio mean a transcript that does not match it) is put just before the next word, its
        times a guess. Either way the change is noted (`doubtful`), so a reader can tell.
        """
        anchor = spans[leading]
        last = spans[min(leading + 1, len(spans) - 1)]
        stop = min(len(audio), int(round((last.end + 0.05) * self.sample_rate)))
        words = [s.word for s in spans[: leading + 2]]
        again = self._decode(decoder, audio[:stop], words, prefix=False, lead=0.0)
        doubtful = " ".join(words[:leading])
        if len(again) > leading and min(abs(again[leading].start - anchor.start), abs(again[leading].end - anchor.end)) \
                <= REFINE_TOLERANCE and again[leading].start <= anchor.end - MIN_WORD_SECONDS:
            # the next word keeps its end (the words after it were placed from there) and takes the
            # start the second pass gave it, after the words placed again
            placed = again[:leading] + [WordSpan(anchor.word, again[leading].start, anchor.end, anchor.score)]
            self.note("doubtful", f"{doubtful!r} placed again in the audio before {anchor.word!r} at "
                                  f"{anchor.start:.2f}s (the search had put it before the audio)")
            return placed + spans[leading + 1:]
        if leading == 1 and anchor.start >= GUESS_SECONDS:
            first = spans[0]
            guessed = WordSpan(first.word, round(anchor.start - GUESS_SECONDS, 4), anchor.start, first.score)
            self.note("doubtful", f"{doubtful!r} not found in the audio: put in the {GUESS_SECONDS:g}s before "
                                  f"{anchor.word!r} at {anchor.start:.2f}s (times guessed)")
            return [guessed] + spans[1:]
        return []

    def _forced(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        """The longest placed prefix of `words` from the forced passes, widening the beam on failure."""
        best: list[WordSpan] = []
        for rung in range(len(self.beams)):
            self._pass_phones = []
            spans = self._decode(self._decoder(rung), audio, words, prefix=False)
            if len(spans) == len(words):
                return spans
            best = max(best, spans, key=len)
        return best

    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        words = self._checked(words, len(audio) / self.sample_rate)
        sr = self.sample_rate
        if len(audio) / sr > self.max_full_seconds:
            def read(start: float, seconds: float) -> np.ndarray:
                return audio[int(round(start * sr)) : int(round((start + seconds) * sr))]

            return align_long(self, read, len(audio) / sr, words, self.longform)
        spans = self._align_pieces(audio, words)
        if self.coverage.min_seconds > 0:
            self._note_unexplained(unexplained_speech(audio, spans, self.coverage, sr))
        return spans

    def _note_unexplained(self, stretches: list[tuple[float, float]]) -> None:
        """Note speech no word covers (`coverage`), when there is `min_seconds` of it or more."""
        seconds = sum(b - a for a, b in stretches)
        if seconds >= self.coverage.min_seconds:
            where = ", ".join(f"{a:.2f}-{b:.2f}s" for a, b in stretches[:5])
            self.note("unexplained_speech", f"{seconds:.2f}s of speech no word covers ({where}); the transcript "
                                            "may miss words there")

    def align_utterance(self, utt: Utterance) -> list[WordSpan]:
        """A recording over `max_full_seconds` is read piece by piece (`longform`), never whole."""
        if utt.duration <= self.max_full_seconds:
            return super().align_utterance(utt)
        words = self._checked(utt.norm_text.split(), utt.duration)

        def read(start: float, seconds: float) -> np.ndarray:
            return load_audio(utt.audio_path, utt.offset + start, seconds, self.sample_rate)

        return align_long(self, read, utt.duration, words, self.longform)

    def align_piece(self, audio: np.ndarray, words: Sequence[str], last: bool, skip: int = 0) -> list[WordSpan]:
        """The leading words spoken in one piece of a long recording (every word when `last`); with
        `skip`, the words from any of the first `skip` + 1 on (after a stretch that did not align)."""
        if last and not skip:
            phones, self.phones = self.phones, False  # a piece's phones are not the recording's: no phone pass
            try:
                return self._align_pieces(audio, words)
            finally:
                self.phones, self.placed_phones = phones, []
        limit = int(MAX_WORDS_PER_SECOND * len(audio) / self.sample_rate) + 1 + skip
        for rung in range(len(self.beams)):
            spans = self._decode(self._decoder(rung), audio, words[:limit], prefix=True, entries=skip)
            if spans:
                return spans
        return []

    def _checked(self, words: Sequence[str], seconds: float) -> list[str]:
        self.notes = []  # a new utterance: no notes yet
        self.placed_phones = []
        words = [w for w in words if w]
        if not words:
            raise AlignmentFailed("empty transcript: nothing to align", "empty_transcript")
        if seconds < MIN_SECONDS:
            raise AlignmentFailed(f"audio too short to align ({seconds:.3f}s)", "too_short")
        self._ensure_pronunciations(words)
        return words

    def _align_pieces(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        """One forced pass; where it stops early, the rest in further passes and prefix windows."""
        sr = self.sample_rate
        total = len(audio) / sr
        placed: list[WordSpan] = []
        t0, i = 0.0, 0
        while i < len(words):
            rest, remaining = audio[int(round(t0 * sr)):], words[i:]
            seconds = len(rest) / sr
            got: list[WordSpan] = []
            if seconds <= self.max_full_seconds and seconds >= 0.05:
                got = self._forced(rest, remaining)
                if len(got) == len(remaining):
                    if not placed:  # one pass placed every word: its phones are the record's
                        self.placed_phones = self._pass_phones
                    placed += _shift(got, t0, total)
                    break
                got = got[:-1]  # the last word of a pass that stopped early may be stretched
            if not got and seconds >= 0.05:
                got = self._window(rest, remaining)
            if not got:
                where = f"after {placed[-1].word!r} at {placed[-1].end:.2f}s" if placed else "at the start"
                raise AlignmentFailed(
                    f"placed {len(placed)} of {len(words)} words, stuck {where} "
                    f"(beams {', '.join(f'{b:g}' for b in self.beams)}); check that the transcript matches the audio",
                    "stopped_early" if placed else "no_alignment")
            placed += _shift(got, t0, total)
            i += len(got)
            t0 = placed[-1].end
        return placed

    def _window(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        """Words placed by a prefix grammar in the first window, keeping those well inside it."""
        sr = self.sample_rate
        seconds = len(audio) / sr
        last = seconds <= self.window_seconds
        window = audio if last else audio[: int(self.window_seconds * sr)]
        words = words if last else words[: int(MAX_WORDS_PER_SECOND * self.window_seconds)]
        # the widest beam only: a narrow one in a prefix grammar can race through the words
        for rung in reversed(range(len(self.beams))):
            spans = self._decode(self._decoder(rung), window, words, prefix=True)
            if last:
                kept = spans if len(spans) == len(words) else spans[:-1]
            else:
                kept = [s for s in spans if s.end <= self.window_seconds - WINDOW_MARGIN]
            if kept:
                return kept
        return []

    def _word_spans(self, decoder, duration: float, lead: float = PAD_SECONDS) -> tuple[list[WordSpan], int]:
        """Transcript words with times relative to the unpadded audio, clipped to it, and how many
        leading words lie mostly before the audio.

        The search may put words it cannot fit into the noise pad around the audio; a word lying
        mostly there is not in the audio. After the audio, the spans end before it (the caller
        then sees a pass that stopped early, never a word squeezed to zero length at an edge).
        Before the audio, such words are counted (the caller places them again when words in the
        audio follow them: a doubtful first word must not cost the words after it).
        """
        spans, leading = [], 0
        for seg in decoder.seg():
            if seg.word.startswith(("<", "[", "(")):
                continue  # <s>, </s>, <sil>, [NOISE], (NULL) (a grammar's empty step): not transcript words
            frames = seg.end_frame - seg.start_frame + 1
            # mean log acoustic score per frame (nats) relative to the best path alive in each
            # frame: 0 is the best there was, strongly negative means the word was a poor fit
            score = math.log(max(seg.ascore, 1e-300)) / frames
            raw_start = seg.start_frame / self._frate + self.frame_offset - lead
            raw_end = (seg.end_frame + 1) / self._frate + self.frame_offset - lead
            inside = min(raw_end, duration) - max(raw_start, 0.0)
            start = min(max(raw_start, 0.0), duration)
            end = min(max(raw_end, start), duration)
            if inside < 0.5 * (raw_end - raw_start):
                if spans[leading:] or raw_end > duration:
                    break  # after the audio: not placed
                leading += 1  # before the audio, ahead of any word in it
            spans.append(WordSpan(_VARIANT.sub("", seg.word), start, end, round(score, 4)))
        return (spans, leading) if spans[leading:] else ([], 0)


def _matching_prefix(spans: list[WordSpan], words: Sequence[str]) -> list[WordSpan]:
    """The leading spans that are exactly the leading words (anything after a mismatch is dropped)."""
    n = 0
    while n < min(len(spans), len(words)) and spans[n].word == words[n]:
        n += 1
    return spans[:n]


def _shift(spans: Sequence[WordSpan], offset: float, total: float) -> list[WordSpan]:
    """Piece-relative spans made relative to the whole audio, rounded to 0.1 ms and kept inside it."""
    shifted = []
    for s in spans:
        start = min(round(s.start + offset, 4), total)
        shifted.append(WordSpan(s.word, start, max(min(round(s.end + offset, 4), total), start), s.score))
    return shifted
