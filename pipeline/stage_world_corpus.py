"""`jstip world-corpus`: the controlled domain of the Table I/III reproduction, text and speech
(`synthetic/world/corpus.py` says what is written where). Reads its params, writes the world and
`metrics/world_corpus.json` (counts, hours, test occurrences per tier) and the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from manifests.errors import JstipError
from manifests.io import write_stage_metrics
from synthetic.world.plan import WorldConfig
from synthetic.world.speakers import ACCENTS, VARIANTS


@dataclass
class WorldCorpusConfig(WorldConfig):
    out: str = field(default="data/world", metadata={"help": "output directory"})
    accents: str = field(default=ACCENTS, metadata={"help": "espeak-ng accents (comma-separated)"})
    variants: str = field(default=VARIANTS, metadata={"help": "espeak-ng voice variants; a speaker is accent+variant"})
    test_speakers: int = field(default=8, metadata={"help": "voices reserved for test speech"})
    tts_speakers: int = field(default=4, metadata={"help": "voices reserved for the TTS pairs"})
    min_rate: int = field(default=130, metadata={"help": "slowest speaking rate, words per minute"})
    max_rate: int = field(default=200, metadata={"help": "fastest speaking rate, words per minute"})
    noise_share: float = field(default=0.5, metadata={"help": "share of ASR and test utterances with white noise "
                                                              "(TTS pairs stay clean)"})
    snr_min: float = field(default=10.0, metadata={"help": "lowest signal-to-noise ratio of noisy utterances, dB"})
    snr_max: float = field(default=30.0, metadata={"help": "highest signal-to-noise ratio of noisy utterances, dB"})
    max_silence: float = field(default=0.3, metadata={"help": "longest silence before and after the speech, seconds"})
    sample_rate: int = field(default=16000, metadata={"help": "sample rate of the written audio"})
    tts_audio: bool = field(default=True, metadata={"help": "also synthesize the TTS pairs (tts_text spoken)"})
    jitter_ms: str = field(default="20,50,100", metadata={"help": "boundary jitter levels (ms) of the extra "
                                                                  "reference_jitter<ms>.ctm files; '' for none"})
    probe_shots: int = field(default=5, metadata={"help": "multiple-choice dev items (the k shots) in probes/mcq.jsonl"})
    probe_audio: bool = field(default=True, metadata={"help": "speak each probe question (with its options) by a "
                                                              "test voice, so that no run synthesizes them again"})
    text_only: bool = field(default=False, metadata={"help": "write the text sets, lists of entities and probes only "
                                                             "(no audio; for checking sizes)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    metrics: str = field(default="metrics/world_corpus.json", metadata={"help": "where to write the counts"})
    report: str = field(default="reports/world_corpus.json", metadata={"help": "where to write examples and speakers"})


def run(cfg: WorldCorpusConfig) -> dict:
    from synthetic.world.corpus import write_world_corpus

    try:
        metrics, report = write_world_corpus(cfg)
    except ValueError as exc:
        raise JstipError(f"world-corpus: {exc}") from exc
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    return metrics
