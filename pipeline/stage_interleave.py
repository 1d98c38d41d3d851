"""`jstip interleave`: aligned utterances + domain text -> a recipe's mixture of samples (shards).

The recipe (`recipe`, one of `recipes` or an inline `kind:weight,...` spec) says which sample
kinds to build and in what proportion, by sample count or by estimated tokens (`mix_by`).
Candidates are chosen by a hash of (seed, kind, source id) and every sample draws its spans
from (seed, sample id), so the output never depends on sharding or `--workers`. Shards are
planned from size estimates (`target_shard_mb`, `shard_size`), built by `run_shards`, and
written as zstd Parquet with row groups bounded in bytes. Held-out utterances, failed
alignments and candidates beyond the recipe's share yield nothing and are counted with why;
a kind with no candidates at all (no domain texts, no utterance of 2+ words) leaves the
mixture, named in the metrics' `dropped_kinds` and on stderr.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interleave.builders import LAYOUTS
from interleave.recipes import MIX_BY, Candidate, parse_mixture, sample_tokens, select
from interleave.sampling import SAMPLERS, parse_range
from interleave.spans import SEGMENTERS
from manifests.errors import JstipError
from manifests.io import iter_records, read_records, shard_path, write_metrics
from manifests.schema import ALIGN_OK, SAMPLE_KINDS, Alignment, Text, Utterance

from .execution import fingerprint, run_shards
from .interleave_build import FLAC_BYTES_PER_SECOND, TTS_DIR, Item, Task, base_sample_id, build_shard
from .interleave_tts import tts_audio_path

DEFAULT_RECIPES = {
    "demo": "asr:2,interleave_word:1,interleave_segment:1,text:1",
    "asr_only": "asr:1",
    "joint": "asr:2,text:1",
    "jstip_word": "asr:2,interleave_word:2,text:1",
    "jstip_segment": "asr:2,interleave_segment:2,text:1",
    "jstip_mixed": "asr:2,interleave_mixed:2,text:1",
    "jstip_tts": "asr:2,interleave_mixed:2,tts_pair:1",
}
SPEECH_KINDS = ("asr", "interleave_word", "interleave_segment", "interleave_mixed")
# Part of every shard's fingerprint: bump it whenever interleave/ or the build code changes what a
# shard holds for the same settings and items, so a rerun rebuilds the shards instead of keeping old ones.
INTERLEAVE_VERSION = 2
DEFAULT_VOICES = "en-us,en-us+f3,en-us+m3,en-gb-x-rp+m2"


@dataclass
class InterleaveConfig:
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest"})
    alignments: str = field(default="data/alignments", metadata={"help": "alignment shards from `align`"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "domain text manifest ('' for none)"})
    out: str = field(default="data/samples", metadata={"help": "output directory of sample shards"})
    split: str = field(default="train", metadata={"help": "which utterance split becomes samples"})
    recipe: str = field(default="demo", metadata={"help": "a name from `recipes`, or an inline mixture 'asr:2,text:1'"})
    recipes: dict = field(default_factory=lambda: dict(DEFAULT_RECIPES),
                          metadata={"help": "name -> mixture of kinds (JSON on the command line)"})
    mix_by: str = field(default="samples", metadata={"help": f"mix kinds by {' or '.join(MIX_BY)}"})
    max_repeats: int = field(default=1, metadata={"help": "most samples one source gives one kind (repeats draw new spans)"})
    text_ratio: float = field(default=0.0, metadata={"help": "if > 0: text samples per speech sample (overrides the recipe's text weight)"})
    transcripts_as_text: bool = field(default=False, metadata={"help": "add training transcripts to the `text` pool"})
    layout: str = field(default="switch", metadata={"help": f"interleaved layout: {', '.join(LAYOUTS)}"})
    word_sampler: str = field(default="poisson", metadata={"help": f"word-level span sampler: {', '.join(SAMPLERS)}"})
    segment_sampler: str = field(default="alternate", metadata={"help": f"segment-level span sampler: {', '.join(SAMPLERS)}"})
    segmenter: str = field(default="pause", metadata={"help": f"segment spans by {', '.join(SEGMENTERS)}"})
    word_probability: float = field(default=0.5, metadata={"help": "interleave_mixed: chance a sample is word level (else segment)"})
    poisson_lambda: float = field(default=3.0, metadata={"help": "poisson: mean length in units of a speech span (λ)"})
    speech_fraction: float = field(default=0.5, metadata={"help": "poisson: target share of units given as speech (η)"})
    random_p: float = field(default=0.5, metadata={"help": "random: chance each unit is speech"})
    spirit_speech_words: str = field(default="1-10", metadata={"help": "spirit: speech span length range in units"})
    spirit_text_words: str = field(default="1-10", metadata={"help": "spirit: text span length range in units"})
    max_pause: float = field(default=0.4, metadata={"help": "segmenter pause: a pause at least this long (s) ends a segment"})
    min_words: int = field(default=2, metadata={"help": "fewest words in a segment (pause, punctuation)"})
    max_segment_duration: float = field(default=10.0, metadata={"help": "longest segment in seconds (pause, punctuation)"})
    segment_words: int = field(default=5, metadata={"help": "segmenter every_n: words per segment"})
    asr_prompt: str = field(default="", metadata={"help": "text between the speech and the transcript of asr/tts_pair samples"})
    tts_voices: str = field(default=DEFAULT_VOICES, metadata={"help": "tts_pair: espeak-ng voices to draw from"})
    tts_min_rate: int = field(default=140, metadata={"help": "tts_pair: slowest speaking rate (wpm)"})
    tts_max_rate: int = field(default=190, metadata={"help": "tts_pair: fastest speaking rate (wpm)"})
    tts_sample_rate: int = field(default=16000, metadata={"help": "tts_pair: sample rate of the synthesized audio"})
    embed_audio: bool = field(default=False, metadata={"help": "store each sample's audio in the shard as FLAC bytes"})
    target_shard_mb: float = field(default=256.0, metadata={"help": "target shard size in MB (estimated)"})
    shard_size: int = field(default=0, metadata={"help": "most samples per shard (0: by size only)"})
    row_group_mb: float = field(default=32.0, metadata={"help": "largest row group in MB (uncompressed)"})
    speech_tokens_per_second: float = field(default=25.0, metadata={"help": "token estimate: LM positions per second of speech"})
    tokens_per_word: float = field(default=1.5, metadata={"help": "token estimate: tokens per text word"})
    seed: int = field(default=0, metadata={"help": "global seed; each sample's draws depend on it and its id only"})
    workers: int = field(default=1, metadata={"help": "worker processes (1 runs inline)"})
    scheduler: str = field(default="", metadata={"help": "dask scheduler address (tcp://HOST:8786) instead of local workers"})
    metrics: str = field(default="metrics/interleave.json", metadata={"help": "where to write the counts"})


def recipe_weights(cfg: InterleaveConfig) -> dict[str, float]:
    """The normalised mixture the config selects, with `text_ratio` applied."""
    recipes = cfg.recipes
    if isinstance(recipes, str):
        import json

        try:
            recipes = json.loads(recipes)
        except ValueError as exc:
            raise JstipError(f"--recipes must be JSON like '{{\"mine\": \"asr:1,text:1\"}}': {exc}") from None
    spec = recipes.get(cfg.recipe, cfg.recipe if ":" in cfg.recipe or cfg.recipe in SAMPLE_KINDS else None)
    if spec is None:
        raise JstipError(f"unknown recipe {cfg.recipe!r}; known: {', '.join(recipes)} (or write kind:weight,...)")
    try:
        weights = parse_mixture(spec)
    except ValueError as exc:
        raise JstipError(str(exc)) from None
    if cfg.text_ratio > 0:
        speech = sum(w for k, w in weights.items() if k in SPEECH_KINDS)
        weights = {**weights, "text": cfg.text_ratio * speech}
        weights = {k: w / sum(weights.values()) for k, w in weights.items()}
    return weights


def check_config(cfg: InterleaveConfig) -> dict[str, float]:
    """Every bad setting as a JstipError naming it and the fix, before any output is touched."""
    choices = {"layout": LAYOUTS, "word_sampler": SAMPLERS, "segment_sampler": SAMPLERS, "segmenter": SEGMENTERS,
               "mix_by": MIX_BY}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise JstipError(f"--{name.replace('_', '-')} {getattr(cfg, name)!r} is unknown; choose among {', '.join(allowed)}")
    if not 0.0 < cfg.speech_fraction < 1.0 or cfg.poisson_lambda <= 0:
        raise JstipError(f"--speech-fraction must lie in (0, 1) and --poisson-lambda be positive, got "
                         f"{cfg.speech_fraction} and {cfg.poisson_lambda}")
    if not 0.0 < cfg.random_p < 1.0 or not 0.0 <= cfg.word_probability <= 1.0:
        raise JstipError(f"--random-p must lie in (0, 1) and --word-probability in [0, 1], got {cfg.random_p}, {cfg.word_probability}")
    if cfg.max_repeats < 1 or cfg.segment_words < 1 or cfg.min_words < 1 or cfg.shard_size < 0:
        raise JstipError("--max-repeats, --segment-words and --min-words must be at least 1 and --shard-size at least 0")
    if cfg.target_shard_mb <= 0 or cfg.row_group_mb <= 0 or cfg.workers < 1:
        raise JstipError("--target-shard-mb and --row-group-mb must be positive and --workers at least 1")
    if cfg.tts_min_rate > cfg.tts_max_rate:
        raise JstipError(f"--tts-min-rate {cfg.tts_min_rate} is above --tts-max-rate {cfg.tts_max_rate}")
    for name in ("spirit_speech_words", "spirit_text_words"):
        try:
            parse_range(getattr(cfg, name), name)
        except ValueError as exc:
            raise JstipError(f"--{name.replace('_', '-')}: {exc}") from None
    return recipe_weights(cfg)


def plan(cfg: InterleaveConfig, weights: dict[str, float], utterances: list[Utterance],
         alignments: dict[str, Alignment], texts: list[Text], skipped: Counter) -> tuple[list[Item], dict]:
    """The items to build, in output order (utterances in input order, then texts), and the mixing summary."""
    from .interleave_build import utterance_sample

    eligible: list[tuple[int, Utterance, Alignment]] = []
    for i, utt in enumerate(utterances):
        alignment = alignments.get(utt.utt_id)
        if utt.split != cfg.split:
            skipped[f"split {utt.split}"] += 1
        elif alignment is None:
            skipped["no alignment record"] += 1
        elif alignment.status != ALIGN_OK or not alignment.words:
            skipped["alignment failed"] += 1
        else:
            eligible.append((i, utt, alignment))
    settings = asdict(cfg)
    pools: dict[str, list[Candidate]] = {}
    for kind in weights:
        if kind in SPEECH_KINDS or kind == "text" and cfg.transcripts_as_text:
            pool = []
            for i, utt, alignment in eligible:
                if kind.startswith("interleave_") and len(alignment.words) < 2:
                    skipped[f"{kind}: fewer than 2 aligned words"] += 1
                    continue
                tokens = 1.0
                if cfg.mix_by == "tokens":
                    built = utterance_sample(Item(kind, 0, utt, alignment), settings, Counter())
                    tokens = sample_tokens(built, cfg.speech_tokens_per_second, cfg.tokens_per_word)
                pool.append(Candidate(kind, utt.utt_id, i, tokens))
            pools[kind] = pool
        if kind in ("text", "tts_pair"):
            wpm = (cfg.tts_min_rate + cfg.tts_max_rate) / 2
            per_word = cfg.tokens_per_word + (cfg.speech_tokens_per_second * 60 / wpm if kind == "tts_pair" else 0)
            pools.setdefault(kind, []).extend(
                Candidate(kind, t.text_id, len(utterances) + j, per_word * len(t.norm_text.split()))
                for j, t in enumerate(texts) if t.norm_text.strip())
    chosen, summary = select(pools, weights, cfg.mix_by, cfg.seed, cfg.max_repeats)
    summary["dropped_kinds"] = {k: _empty_reason(k, cfg, eligible, texts) for k in summary["dropped"]}
    for kind, pool in pools.items():  # sources (not repeats) that gave this kind nothing
        unused = len(pool) - len({c.index for c in chosen if c.kind == kind})
        if unused:
            skipped[f"{kind}: beyond the recipe's share ({summary['limited_by']} limits the mixture)"] += unused
    kind_order = {k: n for n, k in enumerate(weights)}
    chosen.sort(key=lambda c: (c.index, kind_order[c.kind], c.repeat))
    items = []
    for c in chosen:
        if c.index < len(utterances):
            utt = utterances[c.index]
            items.append(Item(c.kind, c.repeat, utt, alignments[utt.utt_id]))
        else:
            items.append(Item(c.kind, c.repeat, text=texts[c.index - len(utterances)]))
    _check_unique_ids(items)
    return items, summary


def _empty_reason(kind: str, cfg: InterleaveConfig, eligible: list, texts: list[Text]) -> str:
    """Why the pool of `kind` is empty, for the metrics and the warning."""
    if kind in ("text", "tts_pair"):
        what = "no domain texts" if not any(t.norm_text.strip() for t in texts) else "no domain text with words"
        if kind == "text" and cfg.transcripts_as_text:
            what += f" and no aligned training transcripts in split {cfg.split!r}"
        return what + ("" if cfg.texts else " (--texts '')")
    if not eligible:
        return f"no aligned utterances in split {cfg.split!r}"
    return "no aligned utterance has 2 or more words"


def _check_unique_ids(items: list[Item]) -> None:
    """Two items with one sample id would be two rows no reader can tell apart: a JstipError naming it."""
    seen: set[str] = set()
    for item in items:
        sid = base_sample_id(item)
        if sid in seen:
            utt, text = item.utterance, item.text
            what, source = ("utterance", utt.utt_id) if utt else ("text", text.text_id)  # type: ignore[union-attr]
            raise JstipError(f"two samples would have the id {sid!r}: the {what} id {source!r} appears twice "
                             f"in its manifest (ids must be unique; fix or drop the duplicate)")
        seen.add(sid)


def estimated_bytes(item: Item, embed: bool) -> float:
    """What one item adds to a shard, for planning shard boundaries before anything is built."""
    text = item.utterance.norm_text if item.utterance else item.text.norm_text  # type: ignore[union-attr]
    size = 150 + 2 * len(text)
    if embed and item.kind != "text":
        seconds = item.utterance.duration if item.utterance else len(text.split()) * 0.4
        size += seconds * FLAC_BYTES_PER_SECOND
    return size


def make_tasks(items: list[Item], cfg: InterleaveConfig) -> list[Task]:
    """Items cut into shards of about `target_shard_mb` (and at most `shard_size` samples)."""
    settings = asdict(cfg)
    settings["recipes"] = {}
    shared = {k: v for k, v in settings.items() if k not in ("workers", "scheduler", "metrics", "utterances",
                                                              "alignments", "texts")}
    tasks, current, size = [], [], 0.0
    limit = cfg.target_shard_mb * 2**20
    for item in items:
        b = estimated_bytes(item, cfg.embed_audio)
        if current and (size + b > limit or (cfg.shard_size and len(current) >= cfg.shard_size)):
            tasks.append(current)
            current, size = [], 0.0
        current.append(item)
        size += b
    if current or not tasks:
        tasks.append(current)
    tts = any(x.kind == "tts_pair" for x in items)  # then every shard has a (maybe empty) tts alignment shard
    return [Task(i, part, settings, fingerprint(INTERLEAVE_VERSION, shared, [asdict(x) for x in part]), tts)
            for i, part in enumerate(tasks)]


def run(cfg: InterleaveConfig) -> dict:
    weights = check_config(cfg)
    started = time.perf_counter()
    utterances = read_records(cfg.utterances, Utterance)
    alignments = {a.utt_id: a for a in iter_records(cfg.alignments, Alignment)}
    texts = read_records(cfg.texts, Text) if cfg.texts else []
    skipped: Counter = Counter()
    items, summary = plan(cfg, weights, utterances, alignments, texts, skipped)
    dropped = summary["dropped_kinds"]
    speech_asked = [k for k in weights if k != "text"]
    if not items or (speech_asked and all(k in dropped for k in speech_asked)):
        why = "; ".join(f"{k}: {r}" for k, r in dropped.items()) or "every candidate is beyond the mixture"
        raise JstipError(f"recipe {cfg.recipe!r} selects no samples with speech ({why}; skipped: {dict(skipped)}); "
                         f"check the alignments, --split {cfg.split!r} and --texts")
    for kind, reason in dropped.items():
        print(f"jstip interleave: {kind} left out of the mixture: {reason}", file=sys.stderr)
    tasks = make_tasks(items, cfg)
    results = run_shards(build_shard, tasks, workers=cfg.workers, scheduler=cfg.scheduler,
                         desc="interleave", unit="sample", size=lambda t: len(t.items))
    _remove_stale(Path(cfg.out), len(tasks), {tts_audio_path(cfg.out, x.text.text_id, x.repeat).name  # type: ignore[union-attr]
                                              for x in items if x.kind == "tts_pair"})
    metrics = report(results, skipped, summary, summary["weights"], cfg, time.perf_counter() - started)
    write_metrics(metrics, cfg.metrics)
    return metrics


def _remove_stale(out: Path, n_shards: int, tts_files: set[str]) -> None:
    """Shards, tts alignment shards and tts audio of an earlier run that this run did not write are removed."""
    keep = {shard_path(out, i).name for i in range(n_shards)}
    for directory in (out, out / TTS_DIR / "alignments"):
        for stale in directory.glob("part-*.parquet"):
            if stale.name not in keep or (directory != out and not tts_files):
                stale.unlink()
    for stale in (out / TTS_DIR).glob("*.flac"):
        if stale.name not in tts_files:
            stale.unlink()


def report(results: list[dict], skipped: Counter, summary: dict, weights: dict[str, float],
           cfg: InterleaveConfig, wall: float) -> dict[str, Any]:
    """metrics/interleave.json: totals, per-kind counts and shares, and every skip with its reason.

    `mixture` is the mixture used: the recipe's, less the kinds in `dropped_kinds` (empty pools).
    """
    by_kind: dict[str, dict[str, float]] = {}
    notes: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for r in results:
        for kind, stats in r["by_kind"].items():
            agg = by_kind.setdefault(kind, Counter())
            agg.update(stats)
        notes.update(r.get("notes", {}))
        for reason, ex in r.get("failed_examples", {}).items():
            examples.setdefault(reason, []).extend(ex)
    total = lambda key: sum(v[key] for v in by_kind.values())  # noqa: E731
    n, tokens = total("samples"), total("tokens")
    speech_words, text_words = total("speech_words"), total("text_words")
    return {
        "recipe": cfg.recipe,
        "mixture": {k: round(w, 4) for k, w in weights.items()},
        "mix_by": cfg.mix_by,
        "limited_by": summary["limited_by"],
        "dropped_kinds": dict(summary.get("dropped_kinds", {})),
        "samples": int(n),
        "shards": len(results),
        "shards_reused": sum(r.get("reused", 0) for r in results),
        "samples_by_kind": {k: int(v["samples"]) for k, v in sorted(by_kind.items())},
        "sample_share_by_kind": {k: round(v["samples"] / max(n, 1), 4) for k, v in sorted(by_kind.items())},
        "token_share_by_kind": {k: round(v["tokens"] / max(tokens, 1e-9), 4) for k, v in sorted(by_kind.items())},
        "speech_hours": round(total("speech_seconds") / 3600, 4),
        "speech_hours_by_kind": {k: round(v["speech_seconds"] / 3600, 4) for k, v in sorted(by_kind.items())},
        "words": int(speech_words + text_words),
        "speech_words": int(speech_words),
        "text_words": int(text_words),
        "speech_text_word_ratio": round(speech_words / max(text_words, 1), 4),
        "estimated_tokens": int(tokens),
        "embedded_audio_mb": round(total("audio_bytes") / 2**20, 2),
        "skipped": dict(sorted(skipped.items())),
        "failed": {k: v for k, v in sorted(notes.items()) if k in examples},
        "failed_examples": {k: v[:3] for k, v in sorted(examples.items())},
        "notes": {k: v for k, v in sorted(notes.items()) if k not in examples},
        "wall_seconds": round(wall, 2),
    }
