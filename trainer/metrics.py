"""Transcription metrics as pure functions: word error rate and entity error rate.

Inputs are normalized strings (lower case, words split on whitespace). WER is the word
edit distance summed over a set divided by the number of reference words. Entity error rate
is the share of entity occurrences in the references (an entity phrase matched as a
whole-word sequence) that the hypothesis of the same utterance does not also contain.
"""
from __future__ import annotations

from typing import Iterable, Sequence


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int | None]:
    """Corpus WER: `{"wer", "errors", "reference_words"}`; wer is None with no reference words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    errors = sum(edit_distance(r.split(), h.split()) for r, h in zip(references, hypotheses))
    words = sum(len(r.split()) for r in references)
    return {"wer": errors / words if words else None, "errors": errors, "reference_words": words}


def count_phrase(words: Sequence[str], phrase: Sequence[str]) -> int:
    """Non-overlapping occurrences of `phrase` as a whole-word sequence in `words`."""
    n, count, i = len(phrase), 0, 0
    if n == 0:
        return 0
    while i + n <= len(words):
        if list(words[i:i + n]) == list(phrase):
            count += 1
            i += n
        else:
            i += 1
    return count


def entity_error_rate(references: Sequence[str], hypotheses: Sequence[str],
                      entities: Iterable[str]) -> dict[str, float | int | None]:
    """`{"entity_error_rate", "entity_errors", "entity_occurrences"}` over a set of utterances.

    For each utterance and entity, an occurrence in the reference counts as an error unless
    the hypothesis has at least as many occurrences (extra entities in the hypothesis are not
    counted). The rate is None when the references contain no entity.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    phrases = sorted({tuple(e.split()) for e in entities if e.strip()})
    occurrences = errors = 0
    for ref, hyp in zip(references, hypotheses):
        ref_words, hyp_words = ref.split(), hyp.split()
        for phrase in phrases:
            in_ref = count_phrase(ref_words, phrase)
            if in_ref:
                occurrences += in_ref
                errors += max(0, in_ref - count_phrase(hyp_words, phrase))
    return {"entity_error_rate": errors / occurrences if occurrences else None,
            "entity_errors": errors, "entity_occurrences": occurrences}
