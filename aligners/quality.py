"""The alignment quality report, built shard by shard from Arrow columns: counts by failure
category with a few examples each, and, against a reference, the word boundary error as
Aligner-SUPERB defines it.

Boundary error: words are matched by sequence alignment of the two word lists (so a missing
or extra word does not shift every later comparison); each matched word contributes
(|Δstart| + |Δend|) / 2. Phones, where both sides have them, are scored the same way inside
each matched word whose phone counts agree: phone sets differ between aligners and references
(ARPAbet, espeak's mnemonics, MFA's IPA), so phones are paired by position in the word rather
than by label, and words whose counts differ are counted as not comparable instead of mapped. Only the rows of utterances the reference holds become Python
objects; counts come from the `status` and `reason` columns, so a report over millions of
alignments holds one shard's columns at a time.
"""
from __future__ import annotations

import bisect
import difflib
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.schema import ALIGN_OK, ALIGN_PARTIAL, PhoneSpan, WordSpan

from .base import CATEGORIES, NOTES, TRANSIENT, failure_category

EXAMPLES = 3  # examples kept per category in the report
THRESHOLDS_MS = (10, 25, 50, 100)  # the field's: MFA 3 paper (arXiv 2606.18466) Table 4, Rousso et al. 2024
REPORT_COLUMNS = ("utt_id", "status", "reason", "words", "phones")
_MARKS = re.compile(r"^[\[<({]+|[\]>)}]+$")


def _categories(reason: str) -> list[str]:
    """The note categories of a reason that may hold several (`doubtful: ...; gap: ...`)."""
    return [failure_category(part) for part in reason.split("; ") if failure_category(part) != "other"] or ["other"]


def _key(word: str) -> str:
    """How words are compared with a reference: case and brackets ignored (`[adif]` is `adif`)."""
    return _MARKS.sub("", word.strip().lower())


def matched_word_errors(hyp: Sequence[WordSpan], ref: Sequence[WordSpan]) -> list[tuple[float, float]]:
    """(boundary error, onset error) in seconds for each word matched between `hyp` and `ref`."""
    matcher = difflib.SequenceMatcher(a=[_key(w.word) for w in hyp], b=[_key(w.word) for w in ref], autojunk=False)
    errors = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            h, r = hyp[block.a + k], ref[block.b + k]
            onset = abs(h.start - r.start)
            errors.append(((onset + abs(h.end - r.end)) / 2, onset))
    return errors


def _phones_by_word(words: Sequence[WordSpan], phones: Sequence[PhoneSpan]) -> list[list[PhoneSpan]]:
    """The phones of each word: those whose midpoint lies in the word's span (silences between
    words belong to none)."""
    groups: list[list[PhoneSpan]] = [[] for _ in words]
    starts = [w.start for w in words]
    for p in phones:
        mid = (p.start + p.end) / 2
        k = bisect.bisect_right(starts, mid) - 1
        if k >= 0 and (mid < words[k].end or (k == len(words) - 1 and mid <= words[k].end)):
            groups[k].append(p)
    return groups


def matched_phone_errors(hyp: Sequence[WordSpan], hyp_phones: Sequence[PhoneSpan], ref: Sequence[WordSpan],
                         ref_phones: Sequence[PhoneSpan]) -> tuple[list[tuple[float, float]], int, int]:
    """(boundary error, onset error) in seconds of each phone compared, the number of matched
    words whose phones were compared, and the number of matched words with phones on both
    sides. Phones are compared in matched words whose phone counts agree, by position."""
    if not hyp_phones or not ref_phones:
        return [], 0, 0
    hyp_groups = _phones_by_word(hyp, sorted(hyp_phones, key=lambda p: p.start))
    ref_groups = _phones_by_word(ref, sorted(ref_phones, key=lambda p: p.start))
    matcher = difflib.SequenceMatcher(a=[_key(w.word) for w in hyp], b=[_key(w.word) for w in ref], autojunk=False)
    errors, compared, both = [], 0, 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            hp, rp = hyp_groups[block.a + k], ref_groups[block.b + k]
            if not hp or not rp:
                continue
            both += 1
            if len(hp) != len(rp):
                continue
            compared += 1
            for h, r in zip(hp, rp):
                onset = abs(h.start - r.start)
                errors.append(((onset + abs(h.end - r.end)) / 2, onset))
    return errors, compared, both


def error_summary(errors: Sequence[tuple[float, float]]) -> dict:
    """Mean/median boundary error (ms) and the share within 10, 25, 50 and 100 ms (`THRESHOLDS_MS`:
    the thresholds of the MFA 3 paper and of Rousso et al. 2024); the same for onsets (word starts
    only, which is what the MFA 3 paper's Table 4 scores)."""
    if not errors:
        return {"words_matched": 0}
    boundary = np.array([e[0] for e in errors]) * 1000
    onset = np.array([e[1] for e in errors]) * 1000
    report = {
        "words_matched": len(errors),
        "boundary_error_mean_ms": round(float(boundary.mean()), 2),
        "boundary_error_median_ms": round(float(np.median(boundary)), 2),
        "onset_error_mean_ms": round(float(onset.mean()), 2),
        "onset_error_median_ms": round(float(np.median(onset)), 2),
    }
    for limit in THRESHOLDS_MS:
        report[f"within_{limit}ms"] = round(float((boundary <= limit).mean()), 4)
    for limit in THRESHOLDS_MS:  # starts only, as the MFA 3 paper's Table 4 scores words
        report[f"onset_within_{limit}ms"] = round(float((onset <= limit).mean()), 4)
    return report


def boundary_report(pairs: Iterable[tuple[Sequence[WordSpan], Sequence[WordSpan]]]) -> dict:
    """`error_summary` over (hypothesis, reference) word lists."""
    return error_summary([e for hyp, ref in pairs for e in matched_word_errors(hyp, ref)])


class QualityReport:
    """Accumulates the report over alignment tables (`add`), then gives `metrics()` and `details()`."""

    def __init__(self, reference: dict[str, Sequence[WordSpan]] | None = None,
                 reference_phones: dict[str, Sequence[PhoneSpan]] | None = None) -> None:
        """`reference`: word spans by utterance id; `reference_phones`: phones by utterance id,
        for those of its utterances that have them (scored in `details()["phones"]`)."""
        self.reference = reference
        self.reference_phones = reference_phones or {}
        self.phone_errors: list[tuple[float, float]] = []
        self.phone_words = Counter()  # compared, with phones on both sides
        self.rows = self.aligned = self.partial = self.words = 0
        self.failed: Counter = Counter()
        self.notes: Counter = Counter()
        self.examples: dict[str, list[dict]] = {}
        self.errors: list[tuple[float, float]] = []
        self.scored = 0

    def add(self, table: pa.Table) -> None:
        """One shard's (or row group's) `utt_id`, `status`, `reason` and `words` columns."""
        self.rows += table.num_rows
        ok = pc.fill_null(pc.equal(table["status"], ALIGN_OK), False)
        partial = pc.fill_null(pc.equal(table["status"], ALIGN_PARTIAL), False)
        self.aligned += int(pc.sum(ok).as_py() or 0)
        self.partial += int(pc.sum(partial).as_py() or 0)
        placed = pc.or_(ok, partial)  # words placed (a partial record's words are right, some are left out)
        self.words += int(pc.sum(pc.list_value_length(pc.filter(table["words"], placed))).as_py() or 0)
        has_reason = pc.fill_null(pc.not_equal(table["reason"], ""), False)
        for kind, mask in (("failed", pc.invert(placed)), ("note", pc.and_(placed, has_reason))):
            rows = table.select(["utt_id", "reason"]).filter(mask)
            for utt_id, reason in zip(rows["utt_id"].to_pylist(), rows["reason"].to_pylist()):
                category = failure_category(reason or "")
                for c in _categories(reason or "") if kind == "note" else [category]:
                    (self.failed if kind == "failed" else self.notes)[c] += 1
                kept = self.examples.setdefault(category, [])
                if len(kept) < EXAMPLES:
                    kept.append({"utt_id": utt_id, "reason": reason})
        if self.reference:
            ids = pa.array(list(self.reference), pa.string())
            scored = table.filter(pc.and_(placed, pc.is_in(table["utt_id"], value_set=ids)))
            phones = scored["phones"].to_pylist() if "phones" in scored.column_names else [None] * scored.num_rows
            for utt_id, words, hyp_phones in zip(scored["utt_id"].to_pylist(), scored["words"].to_pylist(), phones):
                hyp = [WordSpan(**w) for w in words]
                self.errors += matched_word_errors(hyp, self.reference[utt_id])
                self.scored += 1
                if hyp_phones and utt_id in self.reference_phones:
                    errors, compared, both = matched_phone_errors(
                        hyp, [PhoneSpan(**p) for p in hyp_phones], self.reference[utt_id], self.reference_phones[utt_id])
                    self.phone_errors += errors
                    self.phone_words.update(compared=compared, both=both)

    def metrics(self) -> dict:
        """The numeric metrics (`metrics/align.json`): counts, shares, failures by category, boundary error."""
        failed = self.rows - self.aligned - self.partial
        out = {
            "utterances": self.rows,
            "aligned": self.aligned,
            "failed": failed,
            "aligned_share": round(self.aligned / self.rows, 4) if self.rows else None,
            "failed_transient": sum(n for c, n in self.failed.items() if c in TRANSIENT),
            # records with words left out: status partial, or ok with an imported alignment's `partial` note
            "partial": self.partial + self.notes.get("partial", 0),
            "words_aligned": self.words,
            "failed_by_reason": dict(sorted(self.failed.items())),
        }
        if self.reference is not None:
            out["utterances_scored"] = self.scored
            out.update(error_summary(self.errors))
        return out

    def details(self) -> dict:
        """What goes to the report (`reports/align.json`): examples and the meaning of each category."""
        seen = set(self.failed) | set(self.notes)
        legend = {**CATEGORIES, **NOTES, "other": "a reason written without a category (an older shard)"}
        out = {
            "failed_by_reason": dict(sorted(self.failed.items())),
            "notes_by_reason": dict(sorted(self.notes.items())),
            "examples": {c: self.examples[c] for c in sorted(self.examples)},
            "categories": {c: legend[c] for c in sorted(seen)},
            "transient_categories": sorted(TRANSIENT),
        }
        if self.reference_phones:
            out["phones"] = self.phone_details()
        return out

    def phone_details(self) -> dict:
        """Phone boundary error against the reference's phones (`matched_phone_errors`): mean, median,
        shares within 10/25/50/100 ms, and how many matched words could be compared."""
        both, compared = self.phone_words["both"], self.phone_words["compared"]
        if not both:
            return {"words_with_phones": 0, "note": "the alignments hold no phones of the reference's words "
                                                    "(pocketsphinx places phones with --phones)"}
        summary = error_summary(self.phone_errors)
        summary["phones_matched"] = summary.pop("words_matched")
        return {**summary, "words_with_phones": both, "words_compared": compared,
                "words_compared_share": round(compared / both, 4) if both else None,
                "how": "phones paired by position inside matched words whose phone counts agree; "
                       "per phone (|Δstart| + |Δend|) / 2"}


def load_reference(path: str) -> dict[str, list[WordSpan]]:
    """Reference word spans by utterance id: an alignment manifest (its `ok` records), a TextGrid
    directory or a CTM file. Files of the directory that cannot be read are left out (a reference
    is for scoring; it holds a labelled set, small next to the corpus)."""
    return load_references(path)[0]


def load_references(path: str) -> tuple[dict[str, list[WordSpan]], dict[str, list[PhoneSpan]]]:
    """`load_reference`'s word spans, and the phones of the utterances that have them (an alignment
    manifest's `phones`, a TextGrid's phone tier; a CTM has none)."""
    from manifests.io import iter_records
    from manifests.schema import Alignment

    from .textgrid import read_existing

    p = Path(path)
    if p.suffix == ".parquet" or (p.is_dir() and any(p.glob("part-*.parquet"))):
        ok = [a for a in iter_records(p, Alignment) if a.status == ALIGN_OK]
        return {a.utt_id: list(a.words) for a in ok}, {a.utt_id: list(a.phones) for a in ok if a.phones}
    found = {utt: f for utt, f in read_existing(p).items() if not isinstance(f, Exception)}
    return {utt: f[0] for utt, f in found.items()}, {utt: list(f[1]) for utt, f in found.items() if f[1]}


def format_report(report: dict) -> str:
    """The metrics as a small two-column table for the terminal."""
    rows = [("aligner", report.get("aligner", "")), ("utterances", report.get("utterances")),
            ("aligned", report.get("aligned")), ("failed", report.get("failed"))]
    rows += [(f"  failed: {k}", v) for k, v in report.get("failed_by_reason", {}).items()]
    for key in ("partial", "audio_hours", "real_time_factor", "workers", "shards", "shards_skipped", "shards_retried",
                "utterances_scored", "words_matched", "boundary_error_mean_ms", "boundary_error_median_ms",
                "onset_error_mean_ms", "within_10ms", "within_25ms", "within_50ms", "within_100ms"):
        if key in report:
            rows.append((key, report[key]))
    width = max(len(k) for k, _ in rows)
    # None: not measured (e.g. real-time factors when every shard was skipped)
    return "\n".join(f"{k:<{width}}  {'n/a' if v is None else v}" for k, v in rows)
