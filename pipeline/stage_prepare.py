"""`jstip prepare`: corpus + domain text -> utterance and text manifests, with raw and normalised text.

Every pair found is checked: the audio file exists and decodes to its end (once, here, so a
truncated FLAC is caught before alignment), the stretch lies inside it, the transcript decodes
under the encoding policy and keeps words after normalisation, its words are in a script the
aligners can place (`scripts`), the id is unique. What fails becomes a `Rejected` record whose
reason starts with a short category (`missing_audio: ...`); counts go to `metrics/prepare.json`,
counts by category with examples to `reports/prepare.json`, and the rejection file is written on
every run. Splits are drawn from a hash of the utterance id, so they never change when the corpus
grows; ids of list corpora never depend on row order (`importers.stable_id`).
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from manifests.audio import audio_info, load_audio
from manifests.errors import AudioError, JstipError
from manifests.io import write_records, write_stage_metrics, write_text_atomic
from manifests.schema import Rejected, Text, Utterance

from .importers import FORMATS, RawUtterance, check_encoding, domain_text_files, iter_corpus, iter_text_lines
from .textnorm import foreign_words, normalize

SCRIPTS = ("latin", "any")
DECODE_CHUNK_SECONDS = 600.0  # audio is verified in pieces of this length: memory stays bounded on long files
EXAMPLES_PER_REASON = 5


@dataclass
class PrepareConfig:
    corpus: str = field(default="", metadata={"help": "the corpus: a directory (MFA or LibriSpeech layout, or Parquet "
                                                      "files of a Hugging Face dataset), a CSV/TSV/JSONL list, a NeMo "
                                                      "manifest, a Lhotse CutSet or supervision manifest"})
    format: str = field(default="auto", metadata={"help": f"corpus layout: {', '.join(FORMATS)}"})
    corpus_name: str = field(default="", metadata={"help": "name stored in the `corpus` column (default: folder name)"})
    domain_text: str = field(default="", metadata={"help": "domain text: a file (one sentence per line), a directory of "
                                                           ".txt files, or a comma-separated list of them"})
    test_fraction: float = field(default=0.1, metadata={"help": "share of utterances held out as split `test`"})
    encoding: str = field(default="utf-8", metadata={"help": "encoding of transcripts and lists: utf-8, or a codec "
                                                             "name such as latin-1 or cp1252; text that does not "
                                                             "decode is rejected with the reason, never guessed"})
    scripts: str = field(default="latin", metadata={"help": "latin: reject transcripts with words in other scripts "
                                                            "(the en-US aligners cannot place them); any: keep them"})
    verify_audio: bool = field(default=True, metadata={"help": "decode every audio file once (catches truncated or "
                                                               "corrupt files here rather than in align)"})
    audio_dir: str = field(default="data/prepared_audio", metadata={"help": "where audio embedded in a Parquet dataset is "
                                                                            "written as files"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "output utterance manifest"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "output text manifest"})
    rejected: str = field(default="data/prepare_rejected.parquet", metadata={"help": "inputs that were not usable, with why"})
    metrics: str = field(default="metrics/prepare.json", metadata={"help": "where to write the counts"})
    report: str = field(default="reports/prepare.json", metadata={"help": "where to write rejections by reason, "
                                                                          "with examples"})


def split_of(utt_id: str, test_fraction: float) -> str:
    """`test` for a stable `test_fraction` share of ids, else `train`."""
    bucket = int(hashlib.sha1(utt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


class AudioChecker:
    """(sample rate, seconds) of each audio file, decoded once per file; an AudioError says why not."""

    def __init__(self, verify: bool) -> None:
        self.verify = verify
        self.cache: dict[str, tuple[int, float] | AudioError] = {}

    def __call__(self, path: str) -> tuple[int, float]:
        if path not in self.cache:
            try:
                self.cache[path] = self._check(path)
            except AudioError as exc:
                self.cache[path] = exc
        found = self.cache[path]
        if isinstance(found, AudioError):
            raise found
        return found

    def _check(self, path: str) -> tuple[int, float]:
        if not path:
            raise AudioError("missing_audio: no audio path given")
        if not Path(path).is_file():
            raise AudioError(f"missing_audio: audio file {path} does not exist")
        try:
            rate, length = audio_info(path)
        except AudioError as exc:
            raise AudioError(f"unreadable_audio: {exc}") from exc
        start = 0.0
        while self.verify and start < length:
            try:
                load_audio(path, start, min(DECODE_CHUNK_SECONDS, length - start), rate)
            except AudioError as exc:
                raise AudioError(f"unreadable_audio: {path} does not decode past {start:.0f}s of its "
                                 f"{length:.1f}s (truncated or corrupt): {exc}") from exc
            start += DECODE_CHUNK_SECONDS
        return rate, length


def build_utterances(raws: Iterable[RawUtterance], corpus: str, test_fraction: float, scripts: str = "latin",
                     verify_audio: bool = True) -> Iterator[Utterance | Rejected]:
    """Checked utterances, or a `Rejected` record (reason `category: detail`) for each unusable pair."""
    seen: set[str] = set()
    check_audio = AudioChecker(verify_audio)
    for raw in raws:
        norm = normalize(raw.text) if not raw.problem else ""
        problem = raw.problem or _text_problem(raw, norm, seen, scripts)
        if problem:
            yield Rejected("prepare", raw.utt_id, problem)
            continue
        try:
            rate, length = check_audio(raw.audio_path)
        except AudioError as exc:
            yield Rejected("prepare", raw.utt_id, str(exc))
            continue
        duration = length - raw.offset if raw.duration is None else raw.duration
        if not (math.isfinite(raw.offset) and math.isfinite(duration)):  # NaN passes every comparison below
            yield Rejected("prepare", raw.utt_id, f"bad_row: offset {raw.offset} / duration {duration} is not a finite "
                                                  "number of seconds")
            continue
        if raw.offset < 0 or duration <= 0 or raw.offset + duration > length + 1e-3:
            yield Rejected("prepare", raw.utt_id, f"bad_stretch: {raw.offset:.3f}s+{duration:.3f}s lies outside "
                                                  f"{raw.audio_path} ({length:.3f}s)")
            continue
        seen.add(raw.utt_id)
        yield Utterance(raw.utt_id, raw.audio_path, float(raw.offset), float(duration), rate, raw.speaker, raw.text,
                        norm, corpus, split_of(raw.utt_id, test_fraction))


def _text_problem(raw: RawUtterance, norm: str, seen: set[str], scripts: str) -> str:
    if raw.utt_id in seen:
        return f"duplicate_id: utt_id {raw.utt_id!r} was seen before; only the first is kept"
    if not raw.text.strip():
        return "empty_transcript: the transcript is empty"
    if not norm:
        return f"no_words: transcript {raw.text!r} has no words after normalisation"
    foreign = foreign_words(norm) if scripts == "latin" else []
    if foreign:
        listed = ", ".join(f"{w} ({script})" for w, script in foreign[:5])
        return (f"foreign_script: words the en-US aligners cannot place: {listed}; set prepare.scripts: any to keep "
                "them for an aligner of that language")
    return ""


def build_texts(paths: Iterable[Path], encoding: str = "utf-8") -> Iterator[Text | Rejected]:
    """Domain text records from text files; lines with no words left (or undecodable) are rejected."""
    stems: Counter = Counter()
    for path in paths:
        stems[path.stem] += 1
        source = path.stem if stems[path.stem] == 1 else f"{path.parent.name}_{path.stem}"
        for text_id, line, problem in iter_text_lines(path, encoding):
            text_id = text_id if stems[path.stem] == 1 else f"{source}-{text_id.rsplit('-', 1)[1]}"
            norm = normalize(line) if not problem else ""
            if problem or not norm:
                yield Rejected("prepare", text_id, problem or "no_words: no words after normalisation")
            else:
                yield Text(text_id, line, norm, path.name)


def check_config(cfg: PrepareConfig) -> None:
    if not cfg.corpus and not cfg.domain_text:
        raise JstipError("prepare needs a corpus: set prepare.corpus in params.yaml or pass --corpus PATH "
                         "(`jstip demo-corpus` makes a demo one), or only --domain-text for a text manifest")
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise JstipError(f"prepare.test_fraction must lie in [0, 1), got {cfg.test_fraction}")
    if cfg.scripts not in SCRIPTS:
        raise JstipError(f"prepare.scripts must be one of {', '.join(SCRIPTS)}, got {cfg.scripts!r}")
    check_encoding(cfg.encoding)


def run(cfg: PrepareConfig) -> dict:
    check_config(cfg)
    started = time.perf_counter()
    corpus = cfg.corpus_name or Path(cfg.corpus.rstrip("/")).name
    _describe_audio_dir(Path(cfg.audio_dir))
    raws = tqdm(iter_corpus(cfg.corpus, cfg.format, cfg.encoding, cfg.audio_dir) if cfg.corpus else iter(()),
                desc="prepare: checking audio", unit="utt")  # no corpus: a text manifest only (e.g. an LM's text)
    utterances, rejected = _partition(build_utterances(raws, corpus, cfg.test_fraction, cfg.scripts, cfg.verify_audio))
    texts, rejected_texts = _partition(build_texts(domain_text_files(cfg.domain_text), cfg.encoding))
    write_records(rejected + rejected_texts, Rejected, cfg.rejected)
    utterances.sort(key=lambda u: u.utt_id)  # the manifest does not depend on the order rows were listed in
    write_records(utterances, Utterance, cfg.utterances)
    write_records(texts, Text, cfg.texts)
    splits = Counter(u.split for u in utterances)
    metrics = {
        "utterances": len(utterances),
        "train_utterances": splits.get("train", 0),
        "test_utterances": splits.get("test", 0),
        "audio_hours": round(sum(u.duration for u in utterances) / 3600, 4),
        "speakers": len({u.speaker for u in utterances}),
        "texts": len(texts),
        "rejected": len(rejected) + len(rejected_texts),
        "rejected_by_reason": dict(Counter(reason_category(r.reason) for r in rejected + rejected_texts)),
    }
    report = {
        "corpus": cfg.corpus, "rejected_file": cfg.rejected,
        "rejected_utterances": reasons_table(rejected), "rejected_texts": reasons_table(rejected_texts),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    if cfg.corpus and not utterances:
        raise JstipError(f"no usable utterance in {cfg.corpus}: {len(rejected)} rejected, reasons in {cfg.rejected} "
                         f"and {cfg.report}")
    return metrics


def _describe_audio_dir(directory: Path) -> None:
    """A note in `audio_dir`, which DVC tracks as an output (and warns about while it is empty)."""
    note = directory / "README.txt"
    text = ("Audio embedded in the Parquet dataset of prepare.corpus, written here by `jstip prepare` "
            "(one file per utterance; nothing else for other corpora).\n")
    if not note.is_file() or note.read_text() != text:
        write_text_atomic(text, note)


def reason_category(reason: str) -> str:
    """The short category a reason starts with (`missing_audio: ...` -> missing_audio)."""
    head = reason.split(":", 1)[0]
    return head if head.isidentifier() else "other"


def reasons_table(rejected: list[Rejected]) -> dict[str, dict]:
    """Counts by category, each with a few examples (id and full reason)."""
    table: dict[str, dict] = {}
    for r in rejected:
        entry = table.setdefault(reason_category(r.reason), {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES_PER_REASON:
            entry["examples"].append({"id": r.record_id, "reason": r.reason})
    return dict(sorted(table.items(), key=lambda kv: -kv[1]["count"]))


def _partition(items: Iterable) -> tuple[list, list[Rejected]]:
    kept, rejected = [], []
    for item in items:
        (rejected if isinstance(item, Rejected) else kept).append(item)
    return kept, rejected
