"""The demo corpus: English sentences (general and medical, with common and rare entities) spoken
by several espeak-ng voices, with the synthesizer's own word times as a reference alignment
(`reference.parquet`, aligner `espeak`, with its phones), domain text and an entity list with tiers.

Writes under `out`: `corpus/<speaker>/<utt_id>.wav + .lab` (the MFA layout), `reference.parquet`,
`domain_text.txt`, `entities.txt` (phrase TAB rare|common). The same seed gives the same corpus.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import librosa
from tqdm import tqdm

from aligners.espeak import espeak
from manifests.audio import write_audio
from manifests.errors import JstipError
from manifests.io import write_records, write_text_atomic
from manifests.schema import ALIGN_OK, Alignment

from . import demo_text
from .tts import tts_phones, tts_words


def _speaker_id(voice: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", voice).strip("_")


def write_demo_corpus(cfg: Any) -> tuple[dict, dict]:
    """Synthesize and write the demo corpus under `cfg.out` (`cfg`: the stage's DemoCorpusConfig); returns
    (metrics, report)."""
    voices = [v.strip() for v in cfg.voices.split(",") if v.strip()]
    if not voices:
        raise JstipError("demo-corpus needs at least one voice in --voices, e.g. en-us")
    if cfg.min_rate > cfg.max_rate:
        raise JstipError(f"--min-rate {cfg.min_rate} is above --max-rate {cfg.max_rate}")
    out = Path(cfg.out)
    rng = random.Random(cfg.seed)
    engine = espeak()
    references, seconds, started = [], 0.0, time.perf_counter()
    for i in tqdm(range(cfg.n_utterances), desc="demo-corpus: synthesizing", unit="utt"):
        voice = voices[i % len(voices)]
        rate = rng.randint(cfg.min_rate, cfg.max_rate)
        domain, sentence = demo_text.speech_sentence(rng, cfg.medical_fraction, cfg.rare_entity_share)
        audio, spoken = engine.synthesize(sentence, voice=voice, rate=rate, seed=cfg.seed * 100003 + i)
        audio = librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=cfg.sample_rate)
        speaker = _speaker_id(voice)
        utt_id = f"demo-{domain[:3]}-{i:05d}"
        write_audio(audio, out / "corpus" / speaker / f"{utt_id}.wav", cfg.sample_rate)
        write_text_atomic(sentence + "\n", out / "corpus" / speaker / f"{utt_id}.lab")
        references.append(Alignment(utt_id, "espeak", ALIGN_OK, "", tuple(tts_words(spoken)),
                                     tuple(tts_phones(spoken))))
        seconds += len(audio) / cfg.sample_rate
    write_records(references, Alignment, out / "reference.parquet")
    domain_lines = [demo_text.domain_sentence(rng) for _ in range(cfg.n_domain_texts)]
    write_text_atomic("\n".join(domain_lines) + "\n", out / "domain_text.txt")
    rare = set(demo_text.DRUGS_RARE + demo_text.CONDITIONS_RARE + demo_text.PROCEDURES_RARE)
    # phrase TAB category: evaluate reports the entity error rate of rare and common entities apart
    write_text_atomic("".join(f"{e}\t{'rare' if e in rare else 'common'}\n" for e in demo_text.entities()),
                      out / "entities.txt")
    wall = time.perf_counter() - started
    metrics = {
        "utterances": cfg.n_utterances,
        "audio_hours": round(seconds / 3600, 4),
        "speakers": len(set(voices[: cfg.n_utterances])),
        "domain_texts": len(domain_lines),
    }
    report = {"out": str(out), "corpus": str(out / "corpus"), "reference": str(out / "reference.parquet"),
              "domain_text": str(out / "domain_text.txt"), "entities": str(out / "entities.txt"), "voices": voices,
              "synthesis_rtf": round(wall / max(seconds, 1e-9), 4), "wall_seconds": round(wall, 2)}
    return metrics, report
