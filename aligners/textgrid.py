"""Existing alignments in, alignment records out: Praat TextGrids (MFA's output) and CTM files.

Used three ways: the MFA backend reads what `mfa align` wrote; `jstip align --aligner import`
turns a directory of TextGrids or a CTM file made elsewhere into the alignment manifest; and
`--reference` scores against either. MFA writes tiers `words` and `phones` (one speaker) or
`SPEAKER - words` / `SPEAKER - phones`; silence is an empty interval; out-of-vocabulary words
are `<unk>` (or kept as written, e.g. `[adif]`, with phone `spn`). `match_transcript` maps the
aligner's labels back onto the transcript's words, so the manifest always holds `norm_text`.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from manifests.errors import JstipError
from manifests.schema import PhoneSpan, WordSpan

from .base import AlignmentFailed, failure_reason

UNKNOWN_LABELS = {"<unk>", "<spn>", "spn", "[unk]", "<oov>"}
SILENCE_LABELS = {"", "<eps>", "sil", "sp", "<sil>", "silence"}
_MARKS = re.compile(r"^[\[<({]+|[\]>)}]+$")


class TextGridError(JstipError):
    """A TextGrid or CTM file cannot be read, or lacks the tiers an alignment needs."""


def read_textgrid(path: str | Path) -> tuple[list[WordSpan], list[PhoneSpan]]:
    """Word and phone intervals (non-empty ones) of an MFA-style TextGrid."""
    from praatio import textgrid

    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as exc:  # praatio raises assorted exceptions on malformed files
        raise TextGridError(f"cannot read TextGrid {path}: {exc}; is it a Praat TextGrid (long or short format)?") from exc
    names = list(grid.tierNames)
    word_tier = _pick_tier(names, "words")
    if word_tier is None:
        raise TextGridError(f"TextGrid {path} has no `words` or `SPEAKER - words` tier (tiers: {names})")
    words = [
        WordSpan(e.label.strip(), float(e.start), float(e.end))
        for e in grid.getTier(word_tier).entries
        if e.label.strip().lower() not in SILENCE_LABELS
    ]
    phone_tier = _pick_tier(names, "phones")
    phones = []
    if phone_tier is not None:
        phones = [
            PhoneSpan(e.label.strip(), float(e.start), float(e.end))
            for e in grid.getTier(phone_tier).entries
            if e.label.strip().lower() not in SILENCE_LABELS
        ]
    return words, phones


def _pick_tier(names: Sequence[str], kind: str) -> str | None:
    for name in names:
        if name.lower() == kind:
            return name
    for name in names:
        if name.lower().endswith(f" - {kind}"):
            return name  # multi-speaker MFA output: the first speaker's tier
    return None


def read_ctm(path: str | Path) -> dict[str, list[WordSpan]]:
    """Word spans per utterance from a CTM file (`utt channel start duration word [score]`)."""
    spans: dict[str, list[WordSpan]] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise TextGridError(f"cannot read CTM file {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or line.startswith(";;"):
            continue
        try:
            utt, start, duration, word = fields[0], float(fields[2]), float(fields[3]), fields[4]
            score = float(fields[5]) if len(fields) > 5 else 0.0
        except (IndexError, ValueError) as exc:
            raise TextGridError(
                f"{path} line {number} is not `utt channel start duration word [score]`: {line!r}"
            ) from exc
        spans.setdefault(utt, []).append(WordSpan(word, start, round(start + duration, 6), score))
    for utt in spans:
        spans[utt].sort(key=lambda s: s.start)
    return spans


def _label(word: str) -> str:
    return _MARKS.sub("", word.strip().lower())


def _is_annotation(word: str) -> bool:
    """A bracketed annotation (`[adif]`, `<vocnoise>`, `{cough}`), not an unknown-word label like `<unk>`."""
    w = word.strip().lower()
    return len(w) > 2 and w[0] + w[-1] in ("[]", "<>", "{}") and w not in UNKNOWN_LABELS


@dataclass(frozen=True)
class Match:
    """An external alignment mapped onto the transcript: the spans of the words it placed, and what differed."""

    spans: list[WordSpan]
    missing: list[str]  # transcript words with no span (`'uh' #39`)
    extra: list[str]  # the aligner's words that are not in the transcript
    relabelled: list[str]  # near-identical words taken over (`'word'->'words'`)

    def note(self) -> str:
        """'' when the alignment matched word for word, else `partial: …` (the reason of an ok record)."""
        parts = [f"transcript words without a span: {', '.join(self.missing)}" if self.missing else "",
                 f"extra words in the alignment (left out): {', '.join(self.extra)}" if self.extra else "",
                 f"relabelled: {', '.join(self.relabelled)}" if self.relabelled else ""]
        text = "; ".join(p for p in parts if p)
        return failure_reason("partial", text) if text else ""


def tolerated(n_words: int) -> int:
    """Mismatched words (dropped + extra) an external alignment may have before it fails: 1 in 10, at least 1."""
    return max(1, n_words // 10)


def match_transcript(spans: Sequence[WordSpan], words: Sequence[str], max_unmatched: int | None = None) -> Match:
    """The aligner's spans relabelled with the transcript's words, in order.

    Labels are compared without case and brackets (`[adif]` is `adif`); an unknown-word label
    (`<unk>`, `spn`) takes the transcript word at its place, and so does a near-identical label
    in the same place (`word` for `words`: noted); an extra bracketed annotation span (`[adif]`,
    `<vocnoise>`: normalisation drops bracketed annotations) is left out silently. Other
    differences, a word the aligner inserted or dropped (MFA run on a transcript with one more
    "uh"), are tolerated up to `max_unmatched` (default `tolerated(len(words))`): the matched
    words keep their spans, the transcript word without one is left out of `spans`, and the
    Match says which. Beyond that the alignment belongs to another transcript: AlignmentFailed
    (`transcript_mismatch`) names the first difference.
    """
    limit = tolerated(len(words)) if max_unmatched is None else max_unmatched
    labels = [_label(s.word) for s in spans]
    targets = [_label(w) for w in words]
    unknown = {_label(u) for u in UNKNOWN_LABELS}
    out: list[WordSpan | None] = [None] * len(words)
    missing, extra, relabelled, first = [], [], [], ""
    matcher = difflib.SequenceMatcher(a=labels, b=targets, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        same_shape = op == "replace" and a1 - a0 == b1 - b0
        if op == "equal" or (same_shape and all(labels[k] in unknown or spans[k].word.lower() in UNKNOWN_LABELS
                                                for k in range(a0, a1))):
            for k in range(a1 - a0):
                s = spans[a0 + k]
                out[b0 + k] = WordSpan(words[b0 + k], s.start, s.end, s.score)
            continue
        if b1 == b0 and all(_is_annotation(spans[k].word) for k in range(a0, a1)):
            continue  # annotations the normalised transcript no longer has: not words
        if same_shape and all(_similar(labels[a0 + k], targets[b0 + k]) for k in range(a1 - a0)):
            for k in range(a1 - a0):
                s = spans[a0 + k]
                out[b0 + k] = WordSpan(words[b0 + k], s.start, s.end, s.score)
                relabelled.append(f"{s.word!r}->{words[b0 + k]!r}")
            continue
        missing += [f"{words[k]!r} #{k + 1}" for k in range(b0, b1)]
        extra += [repr(spans[k].word) for k in range(a0, a1) if not _is_annotation(spans[k].word)]
        if not first:
            first = (f"word {words[b0]!r} (#{b0 + 1} of {len(words)}) has no span in the aligner's output "
                     f"(it has {[s.word for s in spans[a0:a1]] or 'nothing'} there)" if b1 > b0 else
                     f"the aligner's output has extra words {[s.word for s in spans[a0:a1]]} not in the transcript")
    if len(missing) + len(extra) > limit:
        raise AlignmentFailed(f"{first}; {len(missing)} transcript words unplaced and {len(extra)} extra, more than "
                              f"the {limit} tolerated: the alignment was made for another transcript",
                              "transcript_mismatch")
    if not any(out) and words:
        raise AlignmentFailed(f"no transcript word has a span ({first})", "transcript_mismatch")
    return Match([s for s in out if s is not None], missing, extra, relabelled)


def _similar(a: str, b: str) -> bool:
    """Near-identical spellings (`word`/`words`, `colour`/`color`): the same word in the same place."""
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio() >= 0.8


def utt_id_of(path: Path) -> str:
    """The utterance id a TextGrid is named for (`ID.TextGrid` or `ID.mfa.TextGrid`)."""
    name = path.name
    for suffix in (".mfa.TextGrid", ".TextGrid", ".textgrid"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_alignment_dir(path: str | Path) -> dict[str, tuple[list[WordSpan], list[PhoneSpan]] | TextGridError]:
    """Every TextGrid under `path` (searched recursively), by utterance id.

    A file that cannot be read, or a second file for the same id, is kept as its TextGridError
    (the utterance fails with it), so one bad file does not stop an import.
    """
    files = sorted(Path(path).rglob("*.TextGrid")) + sorted(Path(path).rglob("*.textgrid"))
    if not files:
        raise TextGridError(f"no *.TextGrid files under {path}; point at MFA's output directory")
    out: dict = {}
    for file in files:
        utt = utt_id_of(file)
        if utt in out:
            out[utt] = TextGridError(f"two TextGrids for utterance {utt!r} under {path} (one is {file}); keep one")
            continue
        try:
            out[utt] = read_textgrid(file)
        except TextGridError as exc:
            out[utt] = exc
    return out


def read_existing(path: str | Path) -> dict[str, tuple[list[WordSpan], list[PhoneSpan]]]:
    """Alignments made elsewhere, by utterance id: a TextGrid directory or a CTM file."""
    p = Path(path)
    if p.is_dir():
        return read_alignment_dir(p)
    if p.is_file() and p.suffix.lower() in (".ctm", ".txt"):
        return {utt: (spans, []) for utt, spans in read_ctm(p).items()}
    raise TextGridError(f"{path} is neither a directory of TextGrids nor a .ctm file")
