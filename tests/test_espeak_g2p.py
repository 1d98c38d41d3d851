from aligners.g2p import arpabet

ARPABET = set(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)


def test_synthesis_gives_audio_and_ordered_word_times(spoken):
    audio, words = spoken("The patient takes metformin daily.")
    assert len(audio) > 16000 * 0.8
    assert [w.text for w in words] == ["The", "patient", "takes", "metformin", "daily"]
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.end > w.start for w in words)
    assert words[-1].end <= len(audio) / 16000 + 0.05


def test_g2p_gives_arpabet_for_words_outside_any_dictionary():
    phones = arpabet("atorvastatin")
    assert phones and set(phones) <= ARPABET
    assert arpabet("metformin") == ["M", "EH", "T", "F", "AO", "R", "M", "IH", "N"]
