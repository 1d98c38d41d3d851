"""WER and entity error rate on hand-made examples."""
import pytest

from trainer.metrics import count_phrase, edit_distance, entity_error_rate, wer


def test_edit_distance_counts_sub_ins_del():
    assert edit_distance("a b c".split(), "a b c".split()) == 0
    assert edit_distance("a b c".split(), "a x c".split()) == 1
    assert edit_distance("a b c".split(), "a b".split()) == 1
    assert edit_distance("a b".split(), "a b c d".split()) == 2
    assert edit_distance([], "a b".split()) == 2
    assert edit_distance("the cat sat".split(), "cat sat on the".split()) == 3


def test_corpus_wer_pools_errors_over_reference_words():
    out = wer(["the cat sat", "hello world"], ["the cat sat", "hello"])
    assert out == {"wer": pytest.approx(1 / 5), "errors": 1, "reference_words": 5}
    assert wer(["a"], ["b c d"])["wer"] == 3.0  # insertions can push WER above 1
    assert wer([""], [""])["wer"] is None


def test_wer_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_count_phrase_whole_words_only():
    assert count_phrase("the heart attack and heart".split(), ("heart",)) == 2
    assert count_phrase("heartburn".split(), ("heart",)) == 0
    assert count_phrase("new york and new york city".split(), ("new", "york")) == 2


def test_entity_error_rate():
    refs = ["patient takes metformin daily", "flew to new york", "metformin and metformin", "no entity here"]
    hyps = ["patient takes met forming daily", "flew to new york", "metformin and something", "new york"]
    out = entity_error_rate(refs, hyps, ["metformin", "new york", ""])
    # occurrences: 1 + 1 + 2 = 4; errors: utterance 1 (1) + utterance 3 (1 of 2) = 2
    assert out == {"entity_error_rate": 0.5, "entity_errors": 2, "entity_occurrences": 4}


def test_entity_error_rate_without_occurrences_is_none():
    out = entity_error_rate(["hello"], ["hello"], ["metformin"])
    assert out["entity_error_rate"] is None and out["entity_occurrences"] == 0
