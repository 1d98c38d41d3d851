"""Normalisation: spoken forms through num2words, nothing spoken dropped, token attribution."""
import pytest

from corpora.textnorm import foreign_words, normalize, normalize_tokens, spell_number


def test_normalize_lowercases_strips_punctuation_and_spells_numbers():
    assert normalize("Take 500 mg of Metformin, twice-daily!") == "take five hundred milligrams of metformin twice daily"
    assert normalize("  Don't   STOP... ") == "don't stop"
    assert normalize("2.5% café") == "two point five percent cafe"
    assert normalize("?!") == ""


@pytest.mark.parametrize("raw, spoken", [
    ("the 2nd floor", "the second floor"),
    ("on the 21st and the 103rd", "on the twenty first and the one hundred third"),
    ("It cost $5.50.", "it cost five dollars fifty cents"),
    ("$1 or £20 or €0.99", "one dollar or twenty pounds or ninety nine cents"),
    ("$2.5 million", "two point five million dollars"),
    ("at 3:05 pm", "at three oh five p m"),
    ("at 10:00, then 7am and 12:30", "at ten o'clock then seven a m and twelve thirty"),
    ("in 1999 and 2005 and 2024", "in nineteen ninety nine and two thousand five and twenty twenty four"),
    ("the 1990s and the 80s", "the nineteen nineties and the eighties"),
    ("1,234 people", "one thousand two hundred thirty four people"),
    ("1 mg then 5mg", "one milligram then five milligrams"),
    ("37.5 °C and 120 mmHg", "thirty seven point five degrees celsius and one hundred twenty millimeters of mercury"),
    ("60 km/h for 2 h", "sixty kilometers per hour for two hours"),
    ("COVID-19, B12 and -5", "covid nineteen b twelve and minus five"),
    ("#1 fan", "number one fan"),
    ("naïve Ærø Straße", "naive aero strasse"),
])
def test_spoken_forms(raw, spoken):
    assert normalize(raw) == spoken


def test_words_of_other_scripts_are_kept_and_named_never_dropped():
    norm = normalize("hello 你好 world مرحبا again")
    assert norm == "hello 你好 world مرحبا again"
    assert foreign_words(norm) == [("你好", "CJK"), ("مرحبا", "ARABIC")]
    assert foreign_words(normalize("Müller's café, naïve")) == []
    assert normalize("٣ apples") == "three apples"  # Arabic-Indic digit


def test_each_normalised_word_is_attributed_to_its_raw_token():
    raw = "Give 1 mg at 3:30 pm, in 1999."
    tokens = normalize_tokens(raw)
    assert len(tokens) == len(raw.split())
    assert tokens == [["give"], ["one"], ["milligram"], ["at"], ["three", "thirty"], ["p", "m"], ["in"],
                      ["nineteen", "ninety", "nine"]]
    assert normalize(raw) == " ".join(w for ws in tokens for w in ws)


def test_deterministic_and_idempotent_on_its_output():
    text = "On 3/4, Dr. Smith gave 2.5 mg (twice) to 12 patients at 9:15am; 50% improved!"
    assert normalize(text) == normalize(text)
    assert normalize(normalize(text)) == normalize(text)


def test_spell_number():
    assert spell_number(0) == "zero"
    assert spell_number(42) == "forty two"
    assert spell_number(1999) == "one thousand nine hundred ninety nine"
    assert spell_number(2_000_005) == "two million five"


def test_bracketed_annotations_are_not_words():
    assert normalize("cough here <VOCNOISE> yeah [adif] bunch {laugh} ok") == "cough here yeah bunch ok"
    assert normalize("a [b c] d") == "a b c d"  # only single bracketed tokens are annotations
