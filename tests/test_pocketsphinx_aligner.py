import numpy as np
import pytest

from aligners import AlignmentFailed, get_aligner
from aligners.quality import matched_word_errors
from manifests.errors import JstipError
from manifests.schema import WordSpan
from corpora.textnorm import normalize


@pytest.fixture(scope="module")
def aligner():
    return get_aligner("pocketsphinx")


def test_aligns_synthesized_speech_close_to_the_true_word_onsets(aligner, spoken):
    sentence = "The patient was given atorvastatin for hypertension yesterday."
    audio, truth = spoken(sentence, voice="en-us+f3")
    words = normalize(sentence).split()
    spans = aligner.align(audio, words)
    assert [s.word for s in spans] == words  # includes a word missing from cmudict
    onset_errors = [abs(s.start - t.start) for s, t in zip(spans, truth)]
    assert np.mean(onset_errors) < 0.05
    assert all(0 <= s.start <= s.end <= len(audio) / 16000 for s in spans)


def test_empty_transcript_and_silence_fail_with_a_reason(aligner, sine):
    with pytest.raises(AlignmentFailed, match="empty transcript"):
        aligner.align(sine(1.0), [])
    with pytest.raises(AlignmentFailed, match="too short"):
        aligner.align(np.zeros(100, np.float32), ["hello"])


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(JstipError, match="pocketsphinx"):
        get_aligner("nope")


def test_boundary_error_matches_words_by_sequence():
    ref = [WordSpan("a", 0.0, 0.1), WordSpan("b", 0.1, 0.3), WordSpan("c", 0.3, 0.5)]
    hyp = [WordSpan("a", 0.02, 0.1), WordSpan("x", 0.1, 0.2), WordSpan("c", 0.3, 0.54)]
    errors = matched_word_errors(hyp, ref)
    assert [round(b, 4) for b, _ in errors] == [0.01, 0.02]
    assert [round(o, 4) for _, o in errors] == [0.02, 0.0]


def test_long_recording_is_aligned_in_pieces(spoken):
    aligner = get_aligner("pocketsphinx", max_full_seconds=10.0)
    sentences = ["The patient was given atorvastatin for hypertension yesterday.",
                 "She reported mild dizziness after the second dose.",
                 "Her blood pressure improved within two weeks of treatment.",
                 "The physician recommended a follow up visit next month."]
    pause = np.zeros(int(0.6 * 16000), np.float32)
    parts, truth, words, offset = [], [], [], 0.0
    for sentence in sentences:
        audio, spoken_words = spoken(sentence, voice="en-us", rate=150)
        parts += [audio, pause]
        truth += [t.start + offset for t in spoken_words]
        words += normalize(sentence).split()
        offset += (len(audio) + len(pause)) / 16000
    audio = np.concatenate(parts)
    assert len(audio) / 16000 > aligner.max_full_seconds  # so the windowed path is taken
    spans = aligner.align(audio, words)
    assert [s.word for s in spans] == words
    assert np.mean([abs(s.start - t) for s, t in zip(spans, truth)]) < 0.05
    assert all(a.end <= b.start + 1e-6 for a, b in zip(spans, spans[1:]))


def test_wide_beam_keeps_the_last_words(spoken):
    # With pocketsphinx's lattice best-path rescoring (its default) this utterance came back
    # without "letter" at any beam of 1e-100 or wider; the Viterbi backtrace keeps every word.
    sentence = "Peter called on saturday to ask about the letter."
    audio, truth = spoken(sentence, voice="en-us+f3", rate=160)
    spans = get_aligner("pocketsphinx", beams=(1e-100,)).align(audio, normalize(sentence).split())
    assert [s.word for s in spans] == normalize(sentence).split()
    assert abs(spans[-1].start - truth[-1].start) < 0.05
    assert all(s.score <= 0 for s in spans)  # log score per frame relative to the best path


def test_retry_decoder_is_built_on_demand_with_the_added_words(spoken):
    aligner = get_aligner("pocketsphinx", beams=(1e-120, 1e-200))
    assert aligner._decoders[1] is None  # the retry rung costs nothing until a pass fails
    sentence = "The patient was given atorvastatin for hypertension yesterday."
    aligner.align(spoken(sentence)[0], normalize(sentence).split())
    assert aligner._decoder(1).lookup_word("atorvastatin") is not None  # G2P words replayed


def test_boundary_error_shares_use_the_fields_thresholds():
    from aligners.quality import error_summary

    summary = error_summary([(e / 1000, 0.0) for e in (5, 10, 20, 40, 90, 200)])
    assert [summary[f"within_{t}ms"] for t in (10, 25, 50, 100)] == [round(2 / 6, 4), 0.5, round(4 / 6, 4), round(5 / 6, 4)]
    assert summary["boundary_error_median_ms"] == 30.0
