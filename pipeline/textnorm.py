"""Text normalisation: what the aligner and the model see (`norm_text`).

Lower case, digits spelled out, punctuation removed except word-internal apostrophes and
hyphens split into words. Bracketed annotations (`<VOCNOISE>`, `[laughter]`, `{cough}`, the
noise and partial-word markers of corpora such as Buckeye, Switchboard or MFA's test data) are
removed: they are not words the model should write, and an aligner that pronounced them as
words would misplace their neighbours (MFA likewise aligns them as spoken noise). Kept deliberately simple and predictable: the raw `text` is
always stored beside it, so richer normalisers can be swapped in later.
"""
from __future__ import annotations

import re
import unicodedata

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
_ANNOTATION = re.compile(r"<[^<>\s]*>|\[[^\[\]\s]*\]|\{[^{}\s]*\}")


def spell_number(n: int) -> str:
    """English words for a non-negative integer below one billion (larger: digit by digit)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + spell_number(rest))
    for size, name in ((10**6, "million"), (10**3, "thousand")):
        if n >= size and n < 10**9:
            rest = n % size
            return spell_number(n // size) + " " + name + ("" if rest == 0 else " " + spell_number(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def _spell_match(match: re.Match) -> str:
    whole, _, frac = match.group(0).partition(".")
    words = spell_number(int(whole))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return f" {words} "


def normalize(text: str) -> str:
    """Normalised transcript: lower case ASCII words separated by single spaces."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = _ANNOTATION.sub(" ", text)
    text = text.replace("%", " percent ").replace("&", " and ")
    text = _NUMBER.sub(_spell_match, text)
    text = text.replace("-", " ")
    text = _NOT_WORD.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)
