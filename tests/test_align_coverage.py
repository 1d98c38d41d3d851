"""A transcript that misses spoken words: the speech no word covers is reported and the record is partial."""
import numpy as np

from aligners import get_aligner
from aligners.coverage import CoverageSettings, uncovered
from manifests.audio import write_audio
from manifests.schema import Utterance, WordSpan
from corpora.textnorm import normalize

SENTENCES = ["The patient was given atorvastatin for hypertension yesterday.",
             "She reported mild dizziness after the second dose.",
             "Her blood pressure improved within two weeks of treatment."]


def test_uncovered_speech_is_what_no_word_covers_in_stretches_long_enough():
    s = CoverageSettings(min_stretch=0.3, margin=0.1, min_score=-0.005)
    words = [WordSpan("a", 1.0, 1.5, -0.002), WordSpan("b", 1.5, 2.0, -0.002), WordSpan("c", 4.0, 4.5, -0.02)]
    # 2.1-3.0 uncovered; c scores too poorly to cover 3.9-4.6; 0.9-1.0 is under min_stretch
    assert uncovered([(0.9, 3.0), (3.5, 4.6)], words, s) == [(2.1, 3.0), (3.5, 4.6)]


def test_a_missing_sentence_makes_the_record_partial_and_a_complete_one_stays_ok(tmp_path, spoken):
    parts = []
    for k, sentence in enumerate(SENTENCES):
        audio, _ = spoken(sentence, voice=["en-us", "en-us+f3", "en-gb-x-rp+m2"][k], rate=170)
        parts += [audio, np.zeros(6400, np.float32)]
    audio = np.concatenate(parts)
    audio += 0.002 * np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    write_audio(audio, tmp_path / "three.wav", 16000)
    aligner = get_aligner("pocketsphinx")
    off = get_aligner("pocketsphinx", unexplained_speech=0.0)

    def record(text, which=aligner):
        return which.align_one(Utterance("u", str(tmp_path / "three.wav"), 0.0, len(audio) / 16000, 16000, "s", text,
                                         normalize(text), "c", "train"))

    complete = record(" ".join(SENTENCES))
    assert (complete.status, complete.reason) == ("ok", "")
    for missing in range(3):
        text = " ".join(s for k, s in enumerate(SENTENCES) if k != missing)
        got = record(text)
        assert got.status == "partial" and got.reason.startswith("unexplained_speech: "), (missing, got.reason)
        seconds = float(got.reason.split(": ", 1)[1].split("s of speech")[0])
        assert seconds >= 1.0
        assert record(text, off).status == "ok"  # with the check off, as before
