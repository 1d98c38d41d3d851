"""`jstip interleave`: aligned utterances + domain text -> a recipe's mixture of samples (shards).

The stage only reads, calls `interleave/` and writes. The recipe (`recipe`: a name from `recipes`,
e.g. the paper's `asr_il` or `il_segment_silence`, or an inline `kind:weight,...`) says which
kinds to build and in what proportion (by estimated tokens by default, as the paper balances its
data). The inputs are cut into tasks (`interleave_inputs`): row ranges of the utterance manifest
with the alignment files covering them, and row ranges of the text manifests. Pass 1 measures
every task's candidates per hash bucket; the stage sums them and sets each kind's threshold;
pass 2 builds the candidates under the thresholds and writes one shard per task. Workers read
their own slices (inline, on one pool of local processes kept for both passes, or on the dask
cluster at `--scheduler`), the driver holds only the small per-bucket sums, and the output never
depends on `--workers`. A kind with an empty pool leaves the mixture; a mixture limited by a small pool says
so on stderr with the share of speech it leaves unused.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from interleave.batch import BuildSettings
from interleave.extension import LAYOUTS
from interleave.recipes import (BUCKET_BITS, DEFAULT_RECIPES, MIX_BY, SPEECH_KINDS, TEXT_KINDS, UTTERANCE_KINDS,
                                resolve, thresholds)
from interleave.sampling import SAMPLERS, SamplerParams, entity_phrases, parse_range
from interleave.sequences import VARIANTS
from interleave.tokens import Rates
from interleave.units import FORMS, SEGMENTERS
from manifests import storage
from manifests.errors import JstipError
from manifests.io import manifest_files, shard_path, write_stage_metrics

from . import execution
from .execution import fingerprint
from .interleave_build import EMPTY_DIR, Job, build, measure, one_thread
from interleave.inputs import Task, file_stamp, plan_tasks
from interleave.report import metrics_and_report, speech_left, write_segment_plots
from synthetic.tts import TTS_DIR

# Part of every shard's fingerprint: bump it whenever interleave/ or the build code changes what a
# shard holds for the same settings and inputs, so a rerun rebuilds the shards instead of keeping old ones.
INTERLEAVE_VERSION = 4
DEFAULT_VOICES = "en-us,en-us+f3,en-us+m3,en-gb-x-rp+m2"
TOKEN_FORMATS = ("paper", "tagged")
MAX_TASK_ROWS = 8192  # utterances per shard at most: bounds a worker's memory whatever the corpus
WINDOW_TASKS = 64  # tasks handed to the workers at a time: the driver holds one window's results
WINDOW_BYTES = 16 * 2**20  # pass 1: a window's histograms at most this (but 2 tasks per worker at least)
BYTES_PER_SAMPLE = 1500.0  # a sample row without audio (spans of a ~12 s, ~30-word utterance): for shard sizes
FLAC_BYTES_PER_SECOND = 20000.0  # 16 kHz speech as 16-bit FLAC: a shard-size estimate only
NOT_RECIPE_SETTINGS = {"utterances", "alignments", "texts", "tts_texts", "tts_recordings", "tts_alignments", "out", "recipe", "recipes", "workers",
                       "scheduler", "metrics", "report", "plot", "figure"}

# What `metrics/interleave.json` holds (samples and hours per kind, the mixture, the segment lengths of
# the paper's Figure 2); every other figure is in the report.
INTERLEAVE_METRICS = ("samples", "tokens", "samples_by_kind", "speech_hours_by_kind", "token_share_by_kind",
                      "speech_hours_used", "speech_share_unused", "segments.*.mean_words")


@dataclass
class InterleaveConfig:
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest"})
    alignments: str = field(default="data/alignments", metadata={"help": "alignment shards from `align` ('' for none: asr and text only)"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "domain text manifest: `text` samples ('' for none)"})
    tts_texts: str = field(default="", metadata={"help": "text manifest of the TTS kinds (tts_pair, tts_interleave, tts_text); '' uses --texts"})
    out: str = field(default="data/samples", metadata={"help": "output directory of sample shards"})
    split: str = field(default="train", metadata={"help": "which utterance split becomes samples"})
    recipe: str = field(default="demo", metadata={"help": "a name from `recipes` (the paper's rows: README), or inline 'asr:2,text:1'"})
    recipes: dict = field(default_factory=lambda: dict(DEFAULT_RECIPES),
                          metadata={"help": "name -> mixture, or {mixture, setting: value...} (JSON on the command line)"})
    mix_by: str = field(default="tokens", metadata={"help": f"mix kinds by {' or '.join(MIX_BY)} (the paper: tokens)"})
    max_repeats: int = field(default=1, metadata={"help": "most samples one source gives one kind (repeats let small pools be redrawn)"})
    text_ratio: float = field(default=0.0, metadata={"help": "if > 0: text weight = this x the speech kinds' weight (overrides the recipe's)"})
    transcripts_as_text: bool = field(default=False, metadata={"help": "add training transcripts to the `text` pool"})
    asr_failed_alignments: bool = field(default=False, metadata={
        "help": "also make asr samples of utterances whose alignment failed (by default they are left out, counted: "
                "the aligner found that the audio does not hold the transcript's words)"})
    text_form: str = field(default="raw", metadata={"help": "text spans as written (raw: case, punctuation) or normalised (norm)"})
    tokens: str = field(default="paper", metadata={"help": "token format: paper (manifests/formats.py) or tagged (speech in <|speech|>…<|/speech|>)"})
    variants: str = field(default="both", metadata={"help": f"alternation variants per source: {', '.join(VARIANTS)}"})
    layout: str = field(default="switch", metadata={"help": f"interleaved layout: {', '.join(LAYOUTS)} (chunk_transcript: an extension)"})
    word_sampler: str = field(default="alternate", metadata={"help": f"word-level modality choice: {', '.join(SAMPLERS)} (alternate: the paper)"})
    segment_sampler: str = field(default="alternate", metadata={"help": f"segment-level modality choice: {', '.join(SAMPLERS)}"})
    segmenter: str = field(default="silence_punct", metadata={"help": f"segment units by {', '.join(SEGMENTERS)}"})
    word_probability: float = field(default=0.5, metadata={"help": "interleave_mixed, tts_interleave: chance a source is word level (else segment)"})
    poisson_lambda: float = field(default=3.0, metadata={"help": "poisson: mean length in units of a speech span (λ, 1..1000)"})
    speech_fraction: float = field(default=0.5, metadata={"help": "poisson: target share of units given as speech (η, 0.01..0.99)"})
    random_p: float = field(default=0.5, metadata={"help": "random: chance each unit is speech (0.01..0.99)"})
    spirit_speech_words: str = field(default="1-10", metadata={"help": "spirit: speech span length range in units"})
    spirit_text_words: str = field(default="1-10", metadata={"help": "spirit: text span length range in units"})
    entity_list: str = field(default="", metadata={"help": "entity: the entity phrases, one per line (optionally a tab and "
                                                           "a category, as jstip evaluate --entities reads it); units "
                                                           "holding one are text, the others speech with --random-p"})
    max_pause: float = field(default=0.25, metadata={"help": "silence segmenters: a pause of at least this many seconds ends a segment"})
    min_words: int = field(default=1, metadata={"help": "fewest words in a segment (shorter ones fold into a neighbour; 1: off)"})
    max_segment_duration: float = field(default=0.0, metadata={"help": "longest segment in seconds (longer ones are cut; 0: off)"})
    segment_words: int = field(default=5, metadata={"help": "segmenter every_n: word units per segment"})
    tts_recordings: str = field(default="", metadata={"help": "utterance manifest of TTS pairs that exist as audio (e.g. "
                                                              "prepared in-house TTS output): tts_pair and tts_interleave use "
                                                              "the recording whose transcript is the TTS text instead of "
                                                              "synthesizing; '' synthesizes with espeak-ng"})
    tts_alignments: str = field(default="", metadata={"help": "alignments of tts_recordings (e.g. the synthesizer's "
                                                              "true word times: jstip align --aligner import)"})
    tts_voices: str = field(default=DEFAULT_VOICES, metadata={"help": "tts kinds: espeak-ng voices to draw from"})
    tts_min_rate: int = field(default=140, metadata={"help": "tts kinds: slowest speaking rate (wpm)"})
    tts_max_rate: int = field(default=190, metadata={"help": "tts kinds: fastest speaking rate (wpm)"})
    tts_sample_rate: int = field(default=16000, metadata={"help": "tts kinds: sample rate of the synthesized audio"})
    embed_audio: bool = field(default=False, metadata={"help": "store each sample's audio in the shard as FLAC bytes"})
    target_shard_mb: float = field(default=64.0, metadata={"help": "target shard size in MB (estimated, uncompressed)"})
    shard_size: int = field(default=0, metadata={"help": f"most source records per shard (0: by size, at most {MAX_TASK_ROWS})"})
    row_group_mb: float = field(default=32.0, metadata={"help": "largest row group in MB (uncompressed)"})
    speech_tokens_per_second: float = field(default=12.5, metadata={"help": "tokens: LM positions per second of speech (the paper: 12.5)"})
    tokens_per_word: float = field(default=1.5, metadata={"help": "tokens: tokenizer pieces per text word (estimate)"})
    seed: int = field(default=0, metadata={"help": "global seed; each choice depends on it and the record's id only"})
    workers: int = field(default=1, metadata={"help": "worker processes (1 runs inline)"})
    scheduler: str = field(default="", metadata={"help": "dask scheduler address (tcp://HOST:8786) instead of local worker processes"})
    metrics: str = field(default="metrics/interleave.json", metadata={"help": "numeric metrics (dvc metrics)"})
    report: str = field(default="reports/interleave.json", metadata={"help": "the report: mixture, pools, reasons with examples"})
    plot: str = field(default="plots/interleave_segments_{segmenter}.csv",
                      metadata={"help": "words-per-segment histogram of each segmenter, {segmenter} in the name (dvc plots)"})
    figure: str = field(default="plots/interleave_segments.png", metadata={"help": "the same as a PNG, like the paper's Figure 2"})


def _recipes(cfg: InterleaveConfig) -> dict[str, Any]:
    recipes = cfg.recipes
    if isinstance(recipes, str):
        try:
            recipes = json.loads(recipes)
        except ValueError as exc:
            raise JstipError(f"--recipes must be JSON like '{{\"mine\": \"asr:1,text:1\"}}': {exc}") from None
    return recipes


def resolve_config(cfg: InterleaveConfig) -> tuple[InterleaveConfig, dict[str, float]]:
    """The config with the recipe's own settings applied, and its normalised weights (`text_ratio` applied)."""
    try:
        weights, settings = resolve(cfg.recipe, _recipes(cfg))
    except ValueError as exc:
        raise JstipError(str(exc)) from None
    known = {f.name for f in fields(InterleaveConfig)} - NOT_RECIPE_SETTINGS
    unknown = sorted(set(settings) - known)
    if unknown:
        raise JstipError(f"recipe {cfg.recipe!r} sets unknown options {unknown}; it may set {sorted(known)}")
    cfg = replace(cfg, **settings)
    if cfg.text_ratio > 0:
        speech = sum(w for k, w in weights.items() if k in SPEECH_KINDS)
        weights = {**weights, "text": cfg.text_ratio * speech}
        weights = {k: w / sum(weights.values()) for k, w in weights.items()}
    return cfg, weights


def recipe_weights(cfg: InterleaveConfig) -> dict[str, float]:
    """The normalised mixture the config selects."""
    return resolve_config(cfg)[1]


def _entity_phrases(cfg: InterleaveConfig) -> tuple[tuple[str, ...], ...]:
    """The phrases of --entity-list for the entity sampler; a JstipError when the list is missing or empty."""
    if not cfg.entity_list:
        raise JstipError("the entity sampler needs --entity-list PATH (one entity phrase per line, e.g. the world "
                         "corpus's entities.txt)")
    try:
        with storage.open_binary(cfg.entity_list) as f:
            lines = f.read().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise JstipError(f"--entity-list {cfg.entity_list!r} cannot be read: {exc}") from None
    phrases = entity_phrases(lines)
    if not phrases:
        raise JstipError(f"--entity-list {cfg.entity_list!r} holds no phrase (one entity per line)")
    return phrases


def check_config(cfg: InterleaveConfig) -> tuple[InterleaveConfig, dict[str, float], BuildSettings]:
    """Every bad setting as a JstipError naming it and the fix, before any output is touched."""
    cfg, weights = resolve_config(cfg)
    choices = {"layout": LAYOUTS, "word_sampler": SAMPLERS, "segment_sampler": SAMPLERS, "segmenter": SEGMENTERS,
               "mix_by": MIX_BY, "text_form": FORMS, "tokens": TOKEN_FORMATS, "variants": VARIANTS}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise JstipError(f"--{name.replace('_', '-')} {getattr(cfg, name)!r} is unknown; choose among {', '.join(allowed)}")
    try:
        params = SamplerParams(lam=cfg.poisson_lambda, eta=cfg.speech_fraction, p=cfg.random_p,
                               speech_range=parse_range(cfg.spirit_speech_words, "--spirit-speech-words"),
                               text_range=parse_range(cfg.spirit_text_words, "--spirit-text-words"),
                               entities=_entity_phrases(cfg) if "entity" in (cfg.word_sampler, cfg.segment_sampler) else ())
        for sampler in {cfg.word_sampler, cfg.segment_sampler}:
            params.check(sampler)
    except ValueError as exc:
        raise JstipError(f"{exc} (--poisson-lambda, --speech-fraction, --random-p, --spirit-*-words, --entity-list)") from None
    if not 0.0 <= cfg.word_probability <= 1.0:
        raise JstipError(f"--word-probability must lie in [0, 1], got {cfg.word_probability}")
    if not 0.0 < cfg.max_pause <= 60 or cfg.max_segment_duration < 0:
        raise JstipError(f"--max-pause must lie in (0, 60] s and --max-segment-duration be >= 0, got {cfg.max_pause}, "
                         f"{cfg.max_segment_duration}")
    if not 1 <= cfg.max_repeats <= 100 or cfg.segment_words < 1 or cfg.min_words < 1 or cfg.shard_size < 0:
        raise JstipError("--max-repeats must lie in 1..100, --segment-words and --min-words be at least 1 and "
                         "--shard-size at least 0")
    if cfg.plot and "{segmenter}" not in cfg.plot:
        raise JstipError(f"--plot {cfg.plot!r} must contain {{segmenter}} (one CSV per segmenter), or be ''")
    if cfg.target_shard_mb <= 0 or cfg.row_group_mb <= 0 or cfg.workers < 1:
        raise JstipError("--target-shard-mb and --row-group-mb must be positive and --workers at least 1")
    if cfg.speech_tokens_per_second <= 0 or cfg.tokens_per_word <= 0:
        raise JstipError("--speech-tokens-per-second and --tokens-per-word must be positive")
    if bool(cfg.tts_recordings) != bool(cfg.tts_alignments):
        raise JstipError("--tts-recordings and --tts-alignments go together: the recordings' manifest and their word "
                         f"times (got {cfg.tts_recordings!r} and {cfg.tts_alignments!r})")
    if not 0 < cfg.tts_min_rate <= cfg.tts_max_rate:
        raise JstipError(f"--tts-min-rate {cfg.tts_min_rate} must be positive and at most --tts-max-rate {cfg.tts_max_rate}")
    settings = BuildSettings(
        tuple(weights), cfg.split, cfg.seed, cfg.mix_by, cfg.max_repeats, cfg.text_form, cfg.tokens == "tagged",
        cfg.variants, cfg.segmenter, cfg.max_pause, cfg.min_words, cfg.max_segment_duration, cfg.segment_words,
        cfg.word_sampler, cfg.segment_sampler, params, cfg.layout, cfg.word_probability, cfg.transcripts_as_text,
        Rates(cfg.speech_tokens_per_second, cfg.tokens_per_word), (cfg.tts_min_rate + cfg.tts_max_rate) / 2,
        cfg.asr_failed_alignments)
    return cfg, weights, settings


@contextmanager
def _executor(cfg: InterleaveConfig) -> Iterator[Callable[..., list]]:
    """How both passes run their tasks: `run(fn, jobs, what, reduce=None)` inline (`--workers 1`), on
    the dask cluster at `--scheduler` (one connection for both passes), or, for local `--workers N`,
    on one pool of N spawned processes kept for both passes (`pipeline.execution`). Measured at 1,000 h
    on 2 cores: a dask LocalCluster gave 1.14x one worker (its workers spent ~30% more CPU per task, and start-up and
    shutdown cost seconds); the pool 1.6x. With `reduce`, results are handed to it a window of tasks
    at a time and not kept (pass 1's histograms, `task_bytes` each: 32 KB per kind and repeat, which
    held until the end grew with the corpus): `WINDOW_TASKS`, fewer when their histograms would
    pass `WINDOW_BYTES`, never fewer than 2 per worker; without it they come back as a list."""
    from tqdm import tqdm

    def collect(run_window, jobs, what, reduce, workers, task_bytes):
        size = WINDOW_TASKS if reduce is None else \
            max(2 * workers, min(WINDOW_TASKS, WINDOW_BYTES // max(task_bytes, 1)))
        results = []
        with tqdm(total=sum(j.task.rows for j in jobs), desc=f"interleave: {what}", unit="row") as bar:
            for window in (jobs[lo:lo + size] for lo in range(0, len(jobs), size)):
                got = run_window(window, bar)
                if reduce is None:
                    results += got
                else:
                    reduce(got)
        return results

    with execution.executor(workers=cfg.workers, scheduler=cfg.scheduler, initializer=one_thread) as run_all:
        def shards(fn, jobs, what, reduce=None, task_bytes=0):
            return collect(lambda window, bar: run_all(fn, window, lambda j: bar.update(j.task.rows)),
                           jobs, what, reduce, run_all.workers, task_bytes)

        yield shards


def _text_roles(cfg: InterleaveConfig, weights: dict[str, float]) -> dict[str, tuple[str, ...]]:
    roles: dict[str, list[str]] = {}
    if cfg.texts and "text" in weights:
        roles.setdefault(cfg.texts, []).append("domain")
    tts = cfg.tts_texts or cfg.texts
    if tts and any(k in weights for k in TEXT_KINDS if k != "text"):
        roles.setdefault(tts, []).append("tts")
    return {path: tuple(r) for path, r in roles.items()}


def _rows_per_task(cfg: InterleaveConfig, weights: dict[str, float], kinds: tuple[str, ...]) -> int:
    if cfg.shard_size:
        return min(cfg.shard_size, MAX_TASK_ROWS)
    per_row = sum((2 if k.startswith(("interleave", "tts_interleave")) else 1) *
                  (BYTES_PER_SAMPLE + (12 * FLAC_BYTES_PER_SECOND if cfg.embed_audio and k in SPEECH_KINDS else 0))
                  for k in weights if k in kinds) or BYTES_PER_SAMPLE
    return int(max(1, min(MAX_TASK_ROWS, cfg.target_shard_mb * 2**20 // per_row)))


def _dropped_reason(kind: str, cfg: InterleaveConfig) -> str:
    if kind in TEXT_KINDS:
        path = cfg.texts if kind == "text" else cfg.tts_texts or cfg.texts
        what = "no text records with words" + ("" if path else " (--texts '')")
        return what + (f" and no transcripts in split {cfg.split!r}" if kind == "text" and cfg.transcripts_as_text else "")
    if kind == "asr":
        return f"no utterance with a transcript in split {cfg.split!r}"
    return f"no utterance in split {cfg.split!r} with an ok alignment of 2 or more words"


def run(cfg: InterleaveConfig) -> dict:
    cfg, weights, settings = check_config(cfg)
    started = time.perf_counter()
    utt_kinds = tuple(k for k in weights if k in UTTERANCE_KINDS or (k == "text" and cfg.transcripts_as_text))
    tasks = plan_tasks(cfg.utterances if utt_kinds else "", cfg.alignments, _text_roles(cfg, weights),
        _rows_per_task(cfg, weights, utt_kinds), _rows_per_task(cfg, weights, tuple(k for k in weights if k in TEXT_KINDS)))
    tts = {k: getattr(cfg, k) for k in ("tts_voices", "tts_min_rate", "tts_max_rate", "tts_sample_rate")}
    if cfg.tts_recordings:  # recorded pairs: their files (not the voices) decide the shards
        tts = {"tts_recordings": cfg.tts_recordings, "tts_alignments": cfg.tts_alignments,
               "stamps": [file_stamp(f) for p in (cfg.tts_recordings, cfg.tts_alignments) for f in manifest_files(p)]}
    with _executor(cfg) as shards:
        hists: dict[str, np.ndarray] = {}
        candidates: dict[str, int] = {}

        def add(measured: list[dict]) -> None:  # summed a window at a time, in task order
            for r in measured:
                for kind, h in r["hists"].items():
                    hists[kind] = hists.get(kind, 0) + np.asarray(h, np.float64)
                    candidates[kind] = candidates.get(kind, 0) + r["candidates"][kind]

        shards(measure, [Job(t, settings) for t in tasks], "measure", reduce=add,
               task_bytes=len(weights) * cfg.max_repeats * (8 << BUCKET_BITS))  # float64 per (repeat, bucket)
        selection = thresholds(hists, weights)
        dropped = {k: _dropped_reason(k, cfg) for k in selection.dropped}
        speech_asked = [k for k in weights if k in SPEECH_KINDS]
        if not selection.weights or (speech_asked and all(k in selection.dropped for k in speech_asked)):
            why = "; ".join(f"{k}: {r}" for k, r in dropped.items())
            raise JstipError(f"recipe {cfg.recipe!r} selects no samples with speech ({why}); check the alignments, "
                             f"--split {cfg.split!r} and --texts")
        _warn(cfg, selection, dropped)
        base = asdict(settings)
        jobs = [Job(t, settings, selection.thresholds, _fingerprint(t, base, selection.thresholds, cfg, tts), cfg.out,
                    cfg.embed_audio, cfg.row_group_mb, tts) for t in tasks]
        results = shards(build, jobs, "build")
    _remove_stale(cfg.out, tasks, {name for r in results for name in r.get("tts_files", [])})
    metrics, report, segments = metrics_and_report(results, selection, cfg, candidates, dropped,
                                                   time.perf_counter() - started)
    write_segment_plots(segments, cfg.plot, cfg.figure)
    if metrics["speech_share_unused"] > 0.01:
        print(f"jstip interleave: {metrics['speech_share_unused']:.1%} of the speech of split {cfg.split!r} "
              f"({metrics['speech_hours_in_split'] - metrics['speech_hours_used']:.2f} of "
              f"{metrics['speech_hours_in_split']:.2f} h) is left unused: the mixture is limited by "
              f"{selection.limited_by} (see {cfg.report})", file=sys.stderr)
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report, keep=INTERLEAVE_METRICS)
    return metrics


def _fingerprint(task: Task, settings: dict, cut: dict[str, int], cfg: InterleaveConfig, tts: dict) -> str:
    return fingerprint(INTERLEAVE_VERSION, settings, cut, task.source, task.stamp, task.roles, cfg.embed_audio,
                       cfg.row_group_mb, tts if "tts" in task.roles else {}, cfg.out if "tts" in task.roles else "")


def _warn(cfg: InterleaveConfig, selection, dropped: dict[str, str]) -> None:
    for kind, reason in dropped.items():
        print(f"jstip interleave: {kind} left out of the mixture: {reason}", file=sys.stderr)
    left = {k: v for k, v in speech_left(selection).items() if v > 0.01}
    if left and selection.limited_by not in SPEECH_KINDS:
        parts = ", ".join(f"{k} leaves {v:.0%} of its pool" for k, v in left.items())
        print(f"jstip interleave: the mixture is limited by the {selection.limited_by} pool: {parts} "
              f"(more {selection.limited_by} data, --max-repeats or another recipe would use more)", file=sys.stderr)


def _remove_stale(out: str, tasks: list[Task], tts_files: set[str]) -> None:
    """Shards, tts alignment shards and tts audio of an earlier run that this run did not write are removed."""
    if not storage.is_dir(out):
        return
    keep = {Path(shard_path("", t.index)).name for t in tasks}
    for stale in storage.glob(storage.join(out, EMPTY_DIR), "*.json"):
        shard = Path(storage.name(stale)).with_suffix(".parquet").name
        if shard not in keep or storage.exists(storage.join(out, shard)):
            storage.unlink(stale)
    keep_tts = {Path(shard_path("", t.index)).name for t in tasks if "tts" in t.roles}
    for stale in storage.glob(out, "part-*.parquet"):
        if storage.name(stale) not in keep:
            storage.unlink(stale)
    for stale in storage.glob(storage.join(out, TTS_DIR, "alignments"), "part-*.parquet"):
        if storage.name(stale) not in keep_tts:
            storage.unlink(stale)
    for stale in storage.glob(storage.join(out, TTS_DIR), "*.flac"):
        if storage.name(stale) not in tts_files:
            storage.unlink(stale)
