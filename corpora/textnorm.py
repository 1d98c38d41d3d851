"""Text normalisation: what the aligner and the model see (`norm_text`).

Lower case words separated by single spaces, written out as they are spoken: numbers,
ordinals ("2nd" -> second), years ("1999" -> nineteen ninety nine), decades, currency
("$5.50" -> five dollars fifty cents), times ("3:05 pm" -> three oh five p m), percentages and
units after a number ("5 mg" -> five milligrams) are spelled by `num2words` (a maintained
library; American style, no "and" inside numbers, as the en-US aligner dictionary has it).
Hyphens split words; other punctuation goes. Latin letters lose their accents ("café" ->
cafe); letters of every other script are kept as they are, never dropped: whether such words
can be aligned is `prepare`'s decision (`foreign_words`), not a silent loss here.

Bracketed annotations (`<VOCNOISE>`, `[laughter]`, `{cough}`: the noise and partial-word
markers of Buckeye, Switchboard or MFA's test data) are removed: they are not words the model
should write, and an aligner that pronounced them would misplace their neighbours.

The normaliser works token by token (whitespace tokens of the raw text), looking at the
neighbouring tokens only to choose a word's form ("1 mg" -> one milligram, "3 pm" -> three p m),
so `normalize_tokens` says which raw token each normalised word came from. Deterministic: the
same text always gives the same words. The raw `text` is always stored beside it.
"""
from __future__ import annotations

import functools
import re
import unicodedata

from num2words import num2words

_ANNOTATION = re.compile(r"<[^<>\s]*>|\[[^\[\]\s]*\]|\{[^{}\s]*\}")
_LATIN_EXTRA = str.maketrans({"æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ß": "ss", "ø": "o", "Ø": "o",
                              "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th",
                              "ı": "i", "’": "'", "‘": "'", "ʼ": "'", "–": "-", "—": " ", "−": "-"})
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "×": " times "}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
_MAGNITUDES = {"thousand", "million", "billion", "trillion"}
# unit -> (singular, plural); the first group always expands, the second only after a number
_UNITS = {"mg": "milligram", "kg": "kilogram", "mcg": "microgram", "µg": "microgram", "μg": "microgram",
          "ml": "milliliter", "km": "kilometer", "cm": "centimeter", "mm": "millimeter", "mmhg": "millimeter of mercury",
          "km/h": "kilometer per hour", "kph": "kilometer per hour", "mph": "mile per hour", "hz": "hertz",
          "khz": "kilohertz", "mhz": "megahertz", "ghz": "gigahertz", "kb": "kilobyte", "mb": "megabyte",
          "gb": "gigabyte", "tb": "terabyte", "°c": "degree celsius", "°f": "degree fahrenheit", "°": "degree"}
_UNITS_AFTER_NUMBER = {"g": "gram", "l": "liter", "m": "meter", "s": "second", "sec": "second", "ms": "millisecond",
                       "min": "minute", "h": "hour", "hr": "hour", "hrs": "hour", "lb": "pound", "lbs": "pound",
                       "ft": "foot", "oz": "ounce"}
_IRREGULAR_PLURAL = {"foot": "feet", "inch": "inches", "hertz": "hertz", "degree celsius": "degrees celsius",
                     "degree fahrenheit": "degrees fahrenheit", "millimeter of mercury": "millimeters of mercury",
                     "kilometer per hour": "kilometers per hour", "mile per hour": "miles per hour"}
_NUMBER_TOKEN = re.compile(r"^[$£€¥]?[-−]?\d[\d,]*(?:\.\d+)?[.,;:!?]*$")
_TIME_TOKEN = re.compile(r"^\d{1,2}:\d{2}[.,;:!?]*$")
_MERIDIEM = re.compile(r"^([ap])\.?m\.?([,;:!?]*)$", re.IGNORECASE)
_TRAILING = re.compile(r"[.,;:!?)\]\"']+$")

_CURRENCY = re.compile(r"([$£€¥])(\d[\d,]*)(?:\.(\d+))?")
_TIME = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)(?:([ap])\.?m\.?(?![a-z]))?")
_HOUR_MERIDIEM = re.compile(r"(?<![\d:.])(\d{1,2})([ap])\.?m\.?(?![a-z])")
_ORDINAL = re.compile(r"(?<![\d.])(\d[\d,]*)(st|nd|rd|th)(?![a-z])")
_DECADE = re.compile(r"(?<![\d.])'?(\d{2}|1[1-9]\d0|20\d0)'?s(?![a-z])")
_GLUED_UNIT = re.compile(r"(?<![\d.])(\d[\d,]*(?:\.\d+)?)(" + "|".join(sorted(map(re.escape, {**_UNITS, **_UNITS_AFTER_NUMBER}), key=len, reverse=True)) + r")(?![a-z])")
_NUMBER = re.compile(r"(?<![\d])(-)?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")
_NOT_WORD = re.compile(r"[^\w' ]+|_")
_PLAIN_WORD = re.compile(r"([a-z]+)[.,;:!?]*")
# plain words whose spoken form depends on their neighbours ("5 m", "3 pm", "$2 million"): the slow path
_CONTEXT_WORDS = frozenset([*_UNITS, *_UNITS_AFTER_NUMBER, *_MAGNITUDES, "am", "pm"])


def _plain(n: int) -> str:
    """num2words' cardinal without the British "and" (one hundred forty, as en-US speakers say it)."""
    return " ".join(w for w in num2words(n).replace("-", " ").replace(",", " ").split() if w != "and")


def _ordinal(n: int) -> str:
    return " ".join(w for w in num2words(n, to="ordinal").replace("-", " ").replace(",", " ").split() if w != "and")


def _year(n: int) -> str:
    return " ".join(w for w in num2words(n, to="year").replace("-", " ").split() if w != "and")


def _plural(words: str) -> str:
    last = words.split()[-1]
    plural = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return " ".join(words.split()[:-1] + [plural])


def _integer(digits: str) -> str:
    """An integer as written: 1100-2099 without separators reads as a year, others as a cardinal."""
    n = int(digits.replace(",", ""))
    if "," not in digits and len(digits) == 4 and 1100 <= n <= 2099:
        return _year(n)
    return _plain(n)


def _number_match(m: re.Match) -> str:
    sign, whole, frac = m.group(1), m.group(2), m.group(3)
    words = _integer(whole) if not frac else _plain(int(whole.replace(",", "")))
    if frac:
        words += " point " + " ".join(_plain(int(d)) for d in frac)
    return f" {'minus ' if sign else ''}{words} "


def _currency_match(m: re.Match, magnitude_follows: bool) -> str:
    one, many, cent, cents = _CURRENCIES[m.group(1)]
    whole, frac = int(m.group(2).replace(",", "")), m.group(3)
    if magnitude_follows:  # "$2.5 million" -> two point five million dollars: the unit goes after the magnitude
        return _number_match(_NUMBER.match(m.group(2) + (f".{frac}" if frac else "")))
    if frac and len(frac) > 2:
        return f" {_number_match(_NUMBER.match(m.group(2) + '.' + frac))} {many} "
    parts = [f"{_plain(whole)} {one if whole == 1 else many}"] if whole or not frac else []
    if frac and int(frac.ljust(2, "0")):
        n = int(frac.ljust(2, "0"))
        parts.append(f"{_plain(n)} {cent if n == 1 else cents}")
    return " " + " ".join(parts) + " "


def _time_match(m: re.Match, meridiem_follows: bool) -> str:
    hour, minute, glued = int(m.group(1)), int(m.group(2)), m.group(3)
    suffix = f" {glued} m " if glued else " "
    if hour > 24 or minute > 59:
        return f" {_plain(hour)} {_plain(minute)}{suffix}"
    if minute == 0:
        return f" {_plain(hour)}{suffix}" if meridiem_follows or glued else f" {_plain(hour)} o'clock "
    return f" {_plain(hour)} {'oh ' if minute < 10 else ''}{_plain(minute)}{suffix}"


def _decade_match(m: re.Match) -> str:
    digits = m.group(1)
    n = int(digits)
    words = _plain(n) if len(digits) == 2 else _year(n)
    return f" {_plural(words)} "


def _unit_words(unit: str, singular: bool) -> str:
    name = _UNITS.get(unit) or _UNITS_AFTER_NUMBER[unit]
    return name if singular else _IRREGULAR_PLURAL.get(name) or _plural(name)


@functools.lru_cache(maxsize=1 << 16)  # tokens repeat (Zipf): most are folded once
def _fold(token: str) -> str:
    """Unicode to the forms the rules expect: NFKC, ASCII digits, Latin letters without accents, lower case."""
    token = unicodedata.normalize("NFKC", token).translate(_LATIN_EXTRA)
    token = "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in token)
    kept: list[str] = []
    for c in unicodedata.normalize("NFD", token):
        if unicodedata.combining(c) and kept and kept[-1].isascii():
            continue  # an accent on a Latin letter: café -> cafe
        kept.append(c)
    return unicodedata.normalize("NFC", "".join(kept)).lower()


def _bare(token: str) -> str:
    return _TRAILING.sub("", token)


def _token_words(token: str, prev: str, nxt: str) -> list[str]:
    """The normalised words of one raw token; `prev`/`nxt` (already folded) only choose word forms."""
    plain = _PLAIN_WORD.fullmatch(token)
    if plain and plain.group(1) not in _CONTEXT_WORDS:  # most tokens: a word, maybe with punctuation after it
        return [plain.group(1)]
    text = _ANNOTATION.sub(" ", token)
    bare, bare_prev, bare_next = _bare(text), _bare(prev), _bare(nxt)
    after_number = bool(_NUMBER_TOKEN.match(prev) or _TIME_TOKEN.match(prev))
    if after_number and _MERIDIEM.match(text):
        return [_MERIDIEM.match(text).group(1), "m"]
    if bare in _UNITS or (after_number and bare in _UNITS_AFTER_NUMBER):
        return _finish(_unit_words(bare, bare_prev in ("1", "one")))
    if bare in _MAGNITUDES and _CURRENCY.fullmatch(bare_prev):
        return _finish(f"{bare} {_CURRENCIES[bare_prev[0]][1]}")
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"#(?=\d)", " number ", text)
    magnitude_next = bare_next in _MAGNITUDES
    text = _CURRENCY.sub(lambda m: _currency_match(m, magnitude_next), text)
    text = _TIME.sub(lambda m: _time_match(m, bool(_MERIDIEM.match(nxt))), text)
    text = _HOUR_MERIDIEM.sub(lambda m: f" {_plain(int(m.group(1)))} {m.group(2)} m ", text)
    text = _ORDINAL.sub(lambda m: f" {_ordinal(int(m.group(1).replace(',', '')))} ", text)
    text = _DECADE.sub(_decade_match, text)
    text = _GLUED_UNIT.sub(lambda m: f"{m.group(1)} {_unit_words(m.group(2), m.group(1) == '1')} ", text)
    if _NUMBER.fullmatch(_bare(text.strip())):
        text = _NUMBER.sub(_number_match, text)  # "-5" alone is minus five; in "covid-19" the hyphen splits
    else:  # b12 -> b twelve, 5-10 -> five ten
        text = _NUMBER.sub(lambda m: _number_match(_NUMBER.match(m.group(0).lstrip("-"))), text)
    return _finish(text)


def _finish(text: str) -> list[str]:
    text = _NOT_WORD.sub(" ", text.replace("-", " "))
    return [w for w in (w.strip("'") for w in text.split()) if w]


def normalize_tokens(text: str) -> list[list[str]]:
    """For each whitespace token of `text`, the normalised words it became (possibly none)."""
    tokens = [_fold(t) for t in text.split()]
    return [_token_words(t, tokens[i - 1] if i else "", tokens[i + 1] if i + 1 < len(tokens) else "")
            for i, t in enumerate(tokens)]


def normalize(text: str) -> str:
    """Normalised transcript: lower case spoken words separated by single spaces."""
    return " ".join(w for words in normalize_tokens(text) for w in words)


def foreign_words(norm_text: str) -> list[tuple[str, str]]:
    """(word, script) for each normalised word with letters outside a-z: CJK, ARABIC, CYRILLIC, ..."""
    if norm_text.isascii():  # normalised text is lower case: its ASCII letters are a-z
        return []
    found = []
    for word in norm_text.split():
        other = next((c for c in word if c.isalpha() and not ("a" <= c <= "z")), None)
        if other is not None:
            found.append((word, unicodedata.name(other, "UNKNOWN").split()[0]))
    return found


def spell_number(n: int) -> str:
    """English words for a non-negative integer (num2words, American style)."""
    return _plain(n)


__all__ = ["normalize", "normalize_tokens", "foreign_words", "spell_number"]
