from pipeline.textnorm import normalize, spell_number


def test_normalize_lowercases_strips_punctuation_and_spells_numbers():
    assert normalize("Take 500 mg of Metformin, twice-daily!") == "take five hundred mg of metformin twice daily"
    assert normalize("  Don't   STOP... ") == "don't stop"
    assert normalize("2.5% café") == "two point five percent cafe"
    assert normalize("?!") == ""


def test_spell_number():
    assert spell_number(0) == "zero"
    assert spell_number(42) == "forty two"
    assert spell_number(1999) == "one thousand nine hundred ninety nine"
    assert spell_number(2_000_005) == "two million five"


def test_bracketed_annotations_are_not_words():
    assert normalize("cough here <VOCNOISE> yeah [adif] bunch {laugh} ok") == "cough here yeah bunch ok"
    assert normalize("a [b c] d") == "a b c d"  # only single bracketed tokens are annotations
