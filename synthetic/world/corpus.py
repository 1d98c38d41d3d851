"""The controlled domain of the Table I/III reproduction, text and speech.

Builds the world's plan (`plan.py`: entities, facts, every text set, controls),
synthesizes its speech with espeak-ng and writes, under `out`:

| path | what |
| --- | --- |
| `asr_train.jsonl`, `test.jsonl`, `tts_pairs.jsonl` | speech lists for `jstip prepare` (`audio`, `text`, `speaker`, `utt_id`, `split`, `duration`); audio in `speech/<set>/<speaker>/` |
| `reference.parquet`, `reference.ctm` | the synthesizer's true word times (Alignment records / CTM) of all speech |
| `reference_jitter<ms>.ctm` | the same with boundaries moved by up to ±ms (the boundary-noise ablation) |
| `world_text.txt` | stage-0 LM pretraining text (one sentence per line) |
| `domain_text.txt`, `tts_text.txt` | the domain text pool (PubMed's role) and the TTS-pair transcripts |
| `entities.jsonl`, `entities.txt`, `facts.jsonl` | the world: names with category and tier; lower-cased names; facts |
| `test_entities.jsonl` | per test utterance: `utt_id`, `text`, `entities` [{start, end, text, category, tier, entity_id}] (char spans of `text`) |
| `probes/mcq.jsonl`, `probes/qa.jsonl` | multiple choice in MMLU form (`split` dev: the k shots) and open questions, in `jstip probe`'s format; with `probe_audio`, each test question spoken by a test voice (`audio`, under `probes/audio/`; a multiple-choice item's `question_audio` is its question alone, the open question's recording) |

The plan's controls fail the stage before any audio is made. `metrics/world_corpus.json` holds
counts, hours and test occurrences per tier; `reports/world_corpus.json` the examples and speakers.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any
from pathlib import Path

import numpy as np
from tqdm import tqdm

from manifests.audio import write_audio
from manifests.errors import JstipError
from manifests.io import write_records, write_text_atomic
from manifests.schema import ALIGN_OK, Alignment

from .plan import Plan, make_plan, test_occurrences
from .probes import make_probes, spoken_mc
from .speakers import TEST, TRAIN, TTS, make_speakers
from .speech import SpeechItem, assign, hash_key, jitter, synthesize

SPEECH_SETS = {"asr_train": (TRAIN, "train"), "test": (TEST, "test"), "tts_text": (TTS, "train")}


LIST_NAMES = {"asr_train": "asr_train.jsonl", "test": "test.jsonl", "tts_text": "tts_pairs.jsonl"}


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _ctm(alignments: list[Alignment]) -> str:
    return "".join(f"{a.utt_id} 1 {w.start:.4f} {w.end - w.start:.4f} {w.word} {w.score:.2f}\n"
                   for a in alignments for w in a.words)


def _write_text_sets(plan: Plan, cfg: Any, out: Path) -> dict[str, list[dict]]:
    """Write every text output but the probes; returns the probe items (written by `_write_probes`)."""
    sets = plan.sets
    for name in ("world_text", "domain_text", "tts_text"):
        write_text_atomic("".join(line.text + "\n" for line in sets[name]), out / f"{name}.txt")
    entities = sorted(plan.world.entities.values(), key=lambda e: e.entity_id)
    write_text_atomic(_jsonl({"entity_id": e.entity_id, "name": e.name, "category": e.category, "tier": e.tier}
                             for e in entities), out / "entities.jsonl")
    write_text_atomic("".join(e.name.lower() + "\n" for e in entities), out / "entities.txt")
    write_text_atomic(_jsonl({"fact_id": f.fact_id, "relation": f.relation, "subject": f.subject, "object": f.object,
                              "probe": f.probe, "tier": plan.world.tier(f)} for f in plan.world.facts),
                      out / "facts.jsonl")
    # `category` is what `jstip evaluate` breaks the entity error rate down by: the tier (doses apart)
    write_text_atomic(_jsonl({"utt_id": l.line_id, "text": l.text,
                              "entities": [{**m.as_dict(), "type": m.category, "category": m.tier or m.category}
                                           for m in l.mentions]} for l in sets["test"]),
                      out / "test_entities.jsonl")
    return make_probes(plan.world, cfg.seed, cfg.probe_shots)


def _write_probes(probes: dict[str, list[dict]], speakers: list, cfg: Any, out: Path) -> float:
    """Write the probe files; with speakers, speak each test question first. Returns seconds of audio."""
    seconds = 0.0
    for name, items in probes.items():
        for k, item in enumerate(i for i in items if i.get("split", "test") == "test" and speakers):
            speaker = speakers[k % len(speakers)]
            text = spoken_mc(item) if name == "mcq" else item["question"]
            spoken = SpeechItem(item["id"], text, speaker, speaker.rate, 0.1, 0.1, None,
                                hash_key(f"{cfg.seed}-{item['id']}") % (2**31 - 1))
            try:
                audio, _ = synthesize(spoken, cfg.sample_rate, words=False)
            except ValueError as exc:
                raise JstipError(f"world-corpus: probe {item['id']} ({text[:60]!r}): {exc}") from exc
            write_audio(audio, out / "probes" / "audio" / f"{item['id']}.flac", cfg.sample_rate)
            item["audio"] = f"audio/{item['id']}.flac"  # relative to the JSONL file, as jstip probe reads it
            item["speaker"] = speaker.speaker_id
            seconds += len(audio) / cfg.sample_rate
    spoken_questions = {q["question"]: q["audio"] for q in probes.get("qa", []) if q.get("audio")}
    for item in probes.get("mcq", []):  # the question alone, for the cloze form: the open question's recording
        if item.get("split", "test") == "test" and item["question"] in spoken_questions:
            item["question_audio"] = spoken_questions[item["question"]]
    for name, items in probes.items():
        write_text_atomic(_jsonl(items), out / "probes" / f"{name}.jsonl")
    return seconds


def _speakers(cfg: Any) -> list:
    return make_speakers(cfg.accents, cfg.variants, cfg.test_speakers, cfg.tts_speakers, cfg.min_rate, cfg.max_rate,
                         cfg.seed)


def _items(plan: Plan, cfg: Any) -> dict[str, list[SpeechItem]]:
    speakers = _speakers(cfg)
    items = {}
    for name, (group, _) in SPEECH_SETS.items():
        if name == "tts_text" and not cfg.tts_audio:
            continue
        noise = 0.0 if group == TTS else cfg.noise_share
        items[name] = assign(plan.sets[name], [s for s in speakers if s.group == group], cfg.min_rate, cfg.max_rate,
                             noise, cfg.snr_min, cfg.snr_max, cfg.max_silence, cfg.seed, name)
    return items


def _synthesize_set(name: str, items: list[SpeechItem], cfg: Any, out: Path,
                    bar) -> tuple[list[dict], list[Alignment], float]:
    split = SPEECH_SETS[name][1]
    rows, alignments, seconds = [], [], 0.0
    for item in items:
        try:
            audio, words = synthesize(item, cfg.sample_rate)
        except ValueError as exc:
            raise JstipError(f"world-corpus: utterance {item.utt_id} ({item.text!r}, voice {item.speaker.voice}): "
                             f"{exc}") from exc
        relative = Path("speech") / name / item.speaker.speaker_id / f"{item.utt_id}.flac"
        write_audio(audio, out / relative, cfg.sample_rate)
        duration = round(len(audio) / cfg.sample_rate, 4)
        rows.append({"utt_id": item.utt_id, "audio": str(relative), "text": item.text, "speaker": item.speaker.speaker_id,
                     "split": split, "duration": duration, "voice": item.speaker.voice, "rate": item.rate,
                     "snr_db": item.snr_db})
        alignments.append(Alignment(item.utt_id, "espeak", ALIGN_OK, "", tuple(words)))
        seconds += duration
        bar.update(1)
    return rows, alignments, seconds


def _jitter_levels(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise JstipError(f"--jitter-ms must list whole milliseconds like 20,50,100; got {text!r}") from exc


def unheard_test_words(plan: Plan) -> dict:
    """Words of the test transcripts outside entity mentions that no ASR training transcript contains:
    their share of those words, and the most frequent ones (an ASR test should not hinge on them)."""
    def words(text: str) -> list[str]:
        return [w.lower() for w in re.findall(r"[A-Za-z]+", text)]

    heard = {w for line in plan.sets["asr_train"] for w in words(line.text)}
    counts: Counter = Counter()
    total = 0
    for line in plan.sets["test"]:
        text = line.text
        for m in sorted(line.mentions, key=lambda m: -m.start):
            text = text[:m.start] + " " + text[m.end:]
        ws = words(text)
        total += len(ws)
        counts.update(w for w in ws if w not in heard)
    return {"share": round(sum(counts.values()) / total, 4) if total else 0.0, "words": dict(counts.most_common(20))}


def write_world_corpus(cfg: Any) -> tuple[dict, dict]:
    """Plan, synthesize and write the world under `cfg.out` (`cfg`: the stage's WorldCorpusConfig);
    returns (metrics, report). The plan's controls raise before any audio is made."""
    started = time.perf_counter()
    levels = _jitter_levels(cfg.jitter_ms)
    try:
        plan = make_plan(cfg)
        items = {} if cfg.text_only else _items(plan, cfg)
    except ValueError as exc:
        raise JstipError(f"world-corpus: {exc}") from exc
    out = Path(cfg.out)
    probes = _write_text_sets(plan, cfg, out)
    voices = [] if cfg.text_only or not cfg.probe_audio else [s for s in _speakers(cfg) if s.group == TEST]
    hours_probes = _write_probes(probes, voices, cfg, out) / 3600
    hours: dict[str, float] = {}
    alignments: list[Alignment] = []
    durations: dict[str, float] = {}
    with tqdm(total=sum(len(v) for v in items.values()), desc="world-corpus: synthesizing", unit="utt",
              disable=not cfg.progress) as bar:
        for name, set_items in items.items():
            rows, aligned, seconds = _synthesize_set(name, set_items, cfg, out, bar)
            write_text_atomic(_jsonl(rows), out / LIST_NAMES[name])
            alignments += aligned
            durations.update((r["utt_id"], r["duration"]) for r in rows)
            hours[name] = round(seconds / 3600, 4)
    synth_seconds = time.perf_counter() - started
    if alignments:
        write_records(alignments, Alignment, out / "reference.parquet")
        write_text_atomic(_ctm(alignments), out / "reference.ctm")
        for ms in levels:
            moved = [Alignment(a.utt_id, f"espeak+jitter{ms}", ALIGN_OK, "",
                               tuple(jitter(list(a.words), ms, durations[a.utt_id],
                                            np.random.default_rng(hash_key(f"{cfg.seed}-{ms}-{a.utt_id}")))))
                     for a in alignments]
            write_text_atomic(_ctm(moved), out / f"reference_jitter{ms:03d}.ctm")
    occurrences = test_occurrences(plan)
    unheard = unheard_test_words(plan)
    metrics = {
        "sentences": plan.counts(),
        "audio_hours": hours,
        "test_occurrences": occurrences,
        "entities": dict(Counter(e.tier for e in plan.world.entities.values())),
        "facts": len(plan.world.facts),
        "probes": {name: len(items) for name, items in probes.items()},
        "probe_audio_hours": round(hours_probes, 4),
        "world_text_words": sum(len(l.text.split()) for l in plan.sets["world_text"]),
        "test_words_unheard_share": unheard["share"],  # test words outside entities that ASR training never says
        "syntheses_per_s": round(len(alignments) / synth_seconds, 2) if alignments else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    report = {
        "examples": {name: [l.text for l in lines[:5]] for name, lines in plan.sets.items()},
        "speakers": {name: sorted({i.speaker.voice for i in set_items}) for name, set_items in items.items()},
        "entities": {e.entity_id: [e.name, e.category, e.tier] for e in plan.world.entities.values()},
        "test_words_unheard": unheard["words"],
        "outputs": str(out),
    }
    return metrics, report
