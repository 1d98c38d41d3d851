"""espeak-ng through ctypes (the `espeakng-loader` wheel): synthesis with word timings, and G2P.

No system espeak is needed: the wheel ships the library and its data. The library keeps
global state, so one `Espeak` per process is created lazily by `espeak()`; calls are
serialised with a lock.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from manifests.errors import JstipError

_AUDIO_OUTPUT_RETRIEVAL = 1
_INIT_PHONEME_EVENTS = 0x0001
_EV_LIST_TERMINATED, _EV_WORD, _EV_PHONEME = 0, 1, 7
_RATE, _PITCH = 1, 3
_CHARS_UTF8 = 1
_PAUSE_PHONEMES = {b"_", b"_:", b"_!", b"_|", b"_^_"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class SpokenWord:
    """A word as espeak spoke it: its characters in the input text and its time in the audio."""

    text: str
    char_start: int
    start: float
    end: float
    phones: tuple[tuple[str, float, float], ...] = ()  # (espeak mnemonic, start, end), contiguous in the word


class Espeak:
    """One initialised espeak-ng library: `synthesize` for speech + word times, `phonemes` for G2P."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise JstipError("espeakng-loader is not installed: pip install espeakng-loader") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_RETRIEVAL, 0, espeakng_loader.get_data_path().encode(), _INIT_PHONEME_EVENTS
        )
        if rate <= 0:
            raise JstipError("espeak-ng failed to initialise; reinstall espeakng-loader")
        self.sample_rate = rate
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept referenced: espeak holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice = ""

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            name = bytes(e.id.string).rstrip(b"\0") if e.type == _EV_PHONEME else b""
            self._events.append((e.type, e.text_position, e.length, e.sample, name))
            i += 1
        return 0

    def set_voice(self, voice: str) -> None:
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise JstipError(f"espeak-ng has no voice {voice!r}; try en-us, en, en-gb-x-rp, en-us+f3")
            self._voice = voice

    def synthesize(
        self, text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, seed: int = 0
    ) -> tuple[np.ndarray, list[SpokenWord]]:
        """Speak `text`; returns float32 samples at `self.sample_rate` and each word's start and end.

        A word spans its phonemes as espeak reports them (`_word_times`: the word event itself
        sits before the word's onset), so the times are the synthesizer's own ground truth, not
        an estimate. `seed` fixes the
        voice's noise, so the same call gives the same samples in any process.
        """
        encoded = text.encode("utf-8")
        with self._lock:
            self.set_voice(voice)
            self._lib.espeak_SetParameter(_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            self._chunks, self._events = [], []
            # breathy voices (+f2, +f3, …) draw noise from espeak's generator: seed it per call
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
            status = self._lib.espeak_Synth(ctypes.c_char_p(encoded), len(encoded) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            if status != 0:
                raise JstipError(f"espeak-ng could not synthesize {text!r} (status {status})")
            chunks, events = self._chunks, self._events
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0, _word_times(encoded, events, pcm, self.sample_rate)

    def phonemes(self, word: str, voice: str = "en-us") -> list[str]:
        """espeak's phoneme mnemonics for `word` (e.g. metformin -> m 'E t f o@ m ,I n)."""
        with self._lock:
            self.set_voice(voice)
            pointer = ctypes.c_char_p(word.encode("utf-8"))
            out = self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, ord("|") << 8)
        text = (out or b"").decode("utf-8", "replace")
        return [p for p in text.replace(" ", "|").split("|") if p]


_STOPS = {"p", "b", "t", "d", "k", "g", "t#", "d#", "tS", "dZ", "t2", "d2", "k2", "?"}


def _name(name: bytes) -> str:
    """A phoneme mnemonic without stress and syllable marks ('a -> a, ,O2 -> O2)."""
    return name.decode("utf-8", "replace").strip("'\",%=")


def _is_stop(name: bytes) -> bool:
    """A plosive or affricate: its closure (silence) comes before espeak's phoneme event, at the burst."""
    return _name(name) in _STOPS


def _closure_start(pcm: np.ndarray, after: int, burst: int) -> int:
    """Where the silent closure before a stop's burst begins: the first sample of the run of exact
    zeros that ends at the burst (espeak's voiceless closures are digital silence), or the burst
    itself when there is none (a voiced closure, which espeak fills with voicing)."""
    if burst <= after or burst > len(pcm):
        return burst
    nonzero = np.flatnonzero(pcm[after:burst])
    return after + int(nonzero[-1]) + 1 if len(nonzero) else after


def _phone_times(phonemes: list, start: int, end: int, pcm: np.ndarray, rate: int) -> tuple:
    """The word's phones (mnemonic, start, end) between its start and end, each ending where the
    next begins. A stop begins at its closure, where the run of silence before the burst (the
    phoneme event) starts; a voiced closure cannot be told from the phone before it."""
    spoken = [(sample, name) for sample, name, pause in phonemes if not pause and start <= sample < end]
    if not spoken:
        return ()
    starts = [start]
    for k in range(1, len(spoken)):
        sample, name = spoken[k]
        starts.append(_closure_start(pcm, spoken[k - 1][0] + 1, sample) if _is_stop(name) else sample)
    bounds = starts + [end]
    return tuple((_name(name), bounds[k] / rate, bounds[k + 1] / rate) for k, (_, name) in enumerate(spoken)
                 if bounds[k + 1] > bounds[k])


def _word_times(text: bytes, events, pcm: np.ndarray, rate: int) -> list[SpokenWord]:
    """Each word's span where its phonemes are, not where espeak's word event is.

    espeak emits a word event where the previous phoneme ends, which is not where the word
    is heard: before a fricative or a stop it inserts a short silence (286 samples at 22 kHz)
    and, for a stop, the closure, and the phoneme event comes after them; before a vowel the
    word event can even sit at the start of the previous word's last phoneme ("given
    atorvastatin": 78 ms early). So a word starts at its first phoneme event, except that a
    stop in running speech starts at its closure (where the previous phoneme ended, which is
    the word event), as phoneticians label it; after a pause a stop's closure cannot be heard
    and the word starts at the burst. Words in running speech are contiguous, as in TIMIT's
    word tier: a word ends where the next one starts, or earlier at a pause phoneme after its
    last phoneme (the short silence espeak puts before a fricative stays with the word before).
    Each word carries its phones (`_phone_times`), which tile it.
    """
    n_samples = len(pcm)
    words: list[list] = []  # [text position, length, word event sample, [(sample, name, is pause)]]
    for kind, pos, length, sample, name in events:
        if kind == _EV_WORD:
            words.append([pos, length, sample, []])
        elif kind == _EV_PHONEME and words:
            words[-1][3].append((sample, name, name in _PAUSE_PHONEMES))
    starts, lasts, paused = [], [], True  # paused: silence before this word (utterance start or a pause)
    for k, (_, _, event, phonemes) in enumerate(words):
        spoken = [(sample, name) for sample, name, pause in phonemes if not pause]
        first = spoken[0] if spoken else (event, b"")
        start = first[0]
        if _is_stop(first[1]) and not paused and lasts and lasts[-1] < event < first[0]:
            start = event  # the closure of a stop in running speech belongs to the word
        starts.append(start)
        lasts.append(spoken[-1][0] if spoken else start)
        paused = any(pause and sample >= lasts[-1] for sample, _, pause in phonemes)
    out = []
    for k, (pos, length, _, phonemes) in enumerate(words):
        last = lasts[k]
        ends = [sample for sample, _, pause in phonemes if pause and sample > last]
        if k + 1 < len(words):
            ends.append(starts[k + 1])
        end = min([e for e in ends if e > starts[k]] or [n_samples])
        chars = text[pos - 1 : pos - 1 + length].decode("utf-8", "replace")
        end = min(end, n_samples)
        phones = _phone_times(phonemes, starts[k], end, pcm, rate)
        out.append(SpokenWord(chars, pos - 1, starts[k] / rate, end / rate, phones))
    return out


_INSTANCE: Espeak | None = None


def espeak() -> Espeak:
    """The process-wide espeak-ng instance (created on first use)."""
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = Espeak()
    return _INSTANCE
