"""Pronunciations for words a dictionary lacks: espeak-ng phonemes mapped to CMU ARPAbet.

Medical entities and names are rarely in cmudict; without a pronunciation pocketsphinx
refuses the whole utterance. espeak-ng's letter-to-sound rules cover any English word,
and its phoneme mnemonics map onto the 39 ARPAbet phones of the en-us acoustic model.
"""
from __future__ import annotations

import unicodedata

from .espeak import espeak

# espeak-ng English phoneme mnemonics (stress marks removed) -> ARPAbet phones.
ESPEAK_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # consonants
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",),
    "S": ("SH",), "Z": ("ZH",), "h": ("HH",), "m": ("M",), "n": ("N",), "N": ("NG",),
    "l": ("L",), "r": ("R",), "w": ("W",), "j": ("Y",), "tS": ("CH",), "dZ": ("JH",),
    "t#": ("T",), "d#": ("D",), "?": ("T",), "x": ("K",), "r-": ("R",), "W": ("W",),
    "n-": ("AH", "N"), "l-": ("AH", "L"), "m-": ("AH", "M"), "@L": ("AH", "L"),
    # vowels
    "a": ("AE",), "a#": ("AH",), "aa": ("AE",), "A:": ("AA",), "A@": ("AA", "R"), "A": ("AA",),
    "aI": ("AY",), "aI@": ("AY", "ER"), "aI3": ("AY", "ER"), "aU": ("AW",), "aU@": ("AW", "ER"),
    "@": ("AH",), "@2": ("AH",), "@5": ("AH",), "@-": ("AH",), "3": ("ER",), "3:": ("ER",),
    "e": ("EH",), "e@": ("EH", "R"), "eI": ("EY",), "E": ("EH",), "E2": ("EH",), "E@": ("EH", "R"),
    "i": ("IY",), "i:": ("IY",), "i@": ("IY", "AH"), "i@3": ("IY", "R"), "I": ("IH",), "I#": ("IH",),
    "I2": ("IH",), "I@": ("IH", "R"), "0": ("AA",), "0@": ("AO", "R"), "O": ("AO",), "O:": ("AO",),
    "O@": ("AO", "R"), "o@": ("AO", "R"), "OI": ("OY",), "oU": ("OW",), "o": ("OW",), "u:": ("UW",),
    "u": ("UW",), "U": ("UH",), "U@": ("UH", "R"), "V": ("AH",), "IR": ("IH", "R"), "VR": ("ER",),
}
_IGNORED = {"_", "_:", "_!", "_|", "||", "|"}


def foreign_script(word: str) -> str:
    """The script of the first letter of `word` that is not Latin (e.g. `CJK`, `ARABIC`), or "".

    espeak's English voice reads such letters by their names ("chinese letter …"), which is
    no pronunciation of the word: an aligner must not place it with one. Digits, symbols and
    Latin letters with diacritics (café, naïve) are read in English and pass.
    """
    for char in word:
        if unicodedata.category(char).startswith(("L", "M")):
            name = unicodedata.name(char, "")
            if not name.startswith("LATIN"):
                if unicodedata.category(char).startswith("M") and name.startswith("COMBINING"):
                    continue  # a combining accent on a Latin letter (NFD text)
                return name.split()[0] if name else "unknown"
    return ""


def arpabet(word: str, voice: str = "en-us") -> list[str]:
    """ARPAbet phones for `word` from espeak-ng's letter-to-sound rules (unknown symbols skipped)."""
    phones: list[str] = []
    for symbol in espeak().phonemes(word, voice):
        symbol = symbol.strip("',%=")
        if not symbol or symbol in _IGNORED:
            continue
        phones.extend(_map_symbol(symbol))
    return phones


def _map_symbol(symbol: str) -> tuple[str, ...]:
    if symbol in ESPEAK_TO_ARPABET:
        return ESPEAK_TO_ARPABET[symbol]
    # Longest known prefix first, so unusual suffix marks (e.g. "I;", "oU#") still map.
    for cut in range(len(symbol) - 1, 0, -1):
        head = symbol[:cut]
        if head in ESPEAK_TO_ARPABET:
            return ESPEAK_TO_ARPABET[head] + _map_symbol(symbol[cut:]) if symbol[cut:].strip("#;:") else ESPEAK_TO_ARPABET[head]
    return ()
