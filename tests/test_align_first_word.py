"""A short first word after leading silence never costs the utterance.

The search may spend the noise pad before the audio on a short, faint first word (a reduced
"the") rather than the audio itself; that word used to end the alignment before its first word
(`no_alignment: placed 0 of 8 words, stuck at the start`). Now it is placed again in the audio and
noted `doubtful`, and the words after it keep their places. Words that are not in the audio still fail.
"""
import numpy as np
import pytest

from aligners import AlignmentFailed, get_aligner
from aligners.quality import error_summary, matched_word_errors
from tests.align_speech import first_word_set

# today's error on these utterances (`python bench/align_first_word.py`, before the change: 13.4 ms
# mean over the 197 of 200 it aligned; after: 13.7 ms over all 200), with room for a small set
MEAN_ERROR_MS = 16.0


@pytest.fixture(scope="module")
def aligner():
    return get_aligner("pocketsphinx")


def _check(aligner, data):
    errors, doubtful = [], 0
    for item in data:
        spans = aligner.align(item.audio, item.text.split())  # raises if any utterance is lost
        assert [s.word for s in spans] == item.text.split()
        assert all(0 <= a.start <= a.end <= b.start + 1e-6 for a, b in zip(spans, spans[1:]))
        if aligner.notes:
            doubtful += 1
            assert aligner.notes[0][0] == "doubtful" and spans[0].end > spans[0].start
        errors += matched_word_errors(spans, item.truth)
    return error_summary(errors), doubtful


def test_sixty_short_first_words_after_silence_all_align_within_todays_error(aligner):
    data = first_word_set(60)
    assert sum(item.first_gain <= 0.1 for item in data) >= 20  # faint first words are the hard case
    summary, doubtful = _check(aligner, data)
    assert doubtful >= 1  # the set holds the case that used to fail whole
    assert summary["boundary_error_mean_ms"] <= MEAN_ERROR_MS, summary
    assert summary["within_50ms"] >= 0.93, summary


@pytest.mark.slow
def test_two_hundred_short_first_words_after_silence_all_align(aligner):
    summary, doubtful = _check(aligner, first_word_set(200, seed=1))
    assert summary["boundary_error_mean_ms"] <= MEAN_ERROR_MS, summary


def test_words_that_are_not_in_the_audio_still_fail_after_leading_silence(aligner):
    item = first_word_set(1)[0]
    with pytest.raises(AlignmentFailed):
        aligner.align(np.concatenate([item.audio[: int(item.lead * 16000)]] * 8), item.text.split())
    with pytest.raises(AlignmentFailed):
        aligner.align(item.audio, ("elephant " * 30).split())
