"""TER, WER, entity error rate and bootstrap intervals on hand-made cases."""
import numpy as np
import pytest

from corpora.textnorm import normalize
from evaluation.bootstrap import bootstrap_ratio, paired_bootstrap
from evaluation.metrics import (EntitySpan, entity_error_rate, error_counts, locate_phrases, score_entities, text_tokens,
                             token_error_rate, wer)


def test_text_tokens_split_punctuation_and_keep_case():
    assert text_tokens("Take 5 mg, twice-daily.") == ["Take", "5", "mg", ",", "twice", "-", "daily", "."]
    assert text_tokens("Don't stop: 3.5 at 10:30, 1,000!") == ["Don't", "stop", ":", "3.5", "at", "10:30", ",",
                                                                "1,000", "!"]
    assert text_tokens("") == []


def test_error_counts_by_operation():
    [c] = error_counts([["a", "b", "c", "d"]], [["a", "x", "c", "e", "d"]])
    assert (c.substitutions, c.deletions, c.insertions, c.reference, c.errors) == (1, 0, 1, 4, 2)
    [c] = error_counts([["a", "b"]], [[]])
    assert (c.deletions, c.errors) == (2, 2)
    [c] = error_counts([[]], [["a"]])
    assert (c.insertions, c.reference) == (1, 0)


def test_corpus_wer_pools_errors_over_reference_words():
    out = wer(["the cat sat", "hello world"], ["the cat sat", "hello"])
    assert out == {"wer": pytest.approx(1 / 5), "errors": 1, "reference_words": 5}
    assert wer(["a"], ["b c d"])["wer"] == 3.0  # insertions can push WER above 1
    assert wer([""], [""])["wer"] is None
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_ter_counts_case_and_punctuation_that_wer_ignores():
    ref, hyp = "Metformin, twice daily.", "metformin twice daily"
    assert token_error_rate([ref], [hyp]) == {"ter": pytest.approx(3 / 5), "errors": 3, "reference_tokens": 5}
    assert wer([normalize(ref)], [normalize(hyp)])["wer"] == 0.0


REF = "Metformin was stopped because of worsening atrial fibrillation."
PHRASES = [("metformin", "common"), ("atrial fibrillation", "rare")]


def test_locate_phrases_case_insensitive_whole_words_longest_first():
    assert locate_phrases(REF, PHRASES) == [EntitySpan(0, 9, "common"), EntitySpan(43, 62, "rare")]
    text = "A chest X-ray, then a Chest x ray; no chestx ray but an x ray."
    spans = locate_phrases(text, [("chest x ray", ""), ("x ray", "")])
    assert [text[s.start:s.end] for s in spans] == ["chest X-ray", "Chest x ray", "x ray"]
    assert locate_phrases("heartburn and heart", [("heart", "")]) == [EntitySpan(14, 19, "")]


@pytest.mark.parametrize("hyp, raw, norm", [
    (REF, [True, True], [True, True]),
    ("metformin was stopped because of worsening atrial fibrillation", [False, True], [True, True]),  # case counts
    ("Metformin was stopped because of worsening Atrial fibrillation.", [True, False], [True, True]),
    ("Metformin was stopped because of worsening atrial fib rillation.", [True, False], [True, False]),
    ("Metformin was stopped because of worsening atrial and fibrillation.", [True, False], [True, False]),  # insertion inside
    ("Metformin, was stopped because of worsening atrial fibrillation!", [True, True], [True, True]),  # outside: no effect
    ("Metformine was stopped because of worsening.", [False, False], [False, False]),  # spelling counts everywhere
    ("", [False, False], [False, False]),
])
def test_an_entity_counts_only_when_all_its_tokens_are_right_in_place(hyp, raw, norm):
    results = score_entities(REF, hyp, locate_phrases(REF, PHRASES), normalize)
    assert [r.hit for r in results] == raw
    assert [r.hit_normalised for r in results] == norm
    assert [r.text for r in results] == ["Metformin", "atrial fibrillation"]


def test_entity_punctuation_inside_the_span_counts():
    ref = "She had a chest X-ray today."
    [span] = locate_phrases(ref, [("chest x ray", "")])
    assert [r.hit for r in score_entities(ref, "She had a chest X-ray today", [span], normalize)] == [True]
    [r] = score_entities(ref, "She had a chest X ray today.", [span], normalize)
    assert (r.hit, r.hit_normalised) == (False, True)


def test_a_perfect_hypothesis_recognises_every_annotation_even_inside_a_token():
    ref = "The metformin's dose, 3.5 mg."
    spans = [EntitySpan(4, 13), EntitySpan(22, 25)]  # "metformin" of "metformin's"; "3.5"
    assert [(r.hit, r.hit_normalised) for r in score_entities(ref, ref, spans, normalize)] == [(True, True)] * 2
    [r, _] = score_entities(ref, "The metformin dose, 3.5 mg.", spans, normalize)
    assert not r.hit and r.hypothesis == "metformin"  # the whole token "metformin's" must be right


def test_entity_error_rate_pools_instances_and_splits_categories():
    refs = [REF, "Metformin again.", "No entity here."]
    hyps = ["metformin was stopped because of worsening atrial fibrillation.", "Metformin again.", "No entity."]
    results = [score_entities(r, h, locate_phrases(r, PHRASES), normalize) for r, h in zip(refs, hyps)]
    out = entity_error_rate(results)
    assert (out["instances"], out["hits"], out["hits_normalised"]) == (3, 2, 3)
    assert out["eer"] == pytest.approx(1 / 3) and out["eer_normalised"] == 0.0
    assert out["by_category"]["common"]["eer"] == 0.5 and out["by_category"]["rare"]["eer"] == 0.0
    assert entity_error_rate([[]])["eer"] is None


def test_bootstrap_interval_brackets_the_rate_and_is_seeded():
    rng = np.random.default_rng(1)
    errors, words = rng.integers(0, 5, 200), rng.integers(5, 15, 200)
    rate = errors.sum() / words.sum()
    lo, hi = bootstrap_ratio(errors, words, resamples=500, seed=3)
    assert lo < rate < hi and hi - lo < 0.1
    assert bootstrap_ratio(errors, words, resamples=500, seed=3) == (lo, hi)
    assert bootstrap_ratio(errors, words, resamples=500, seed=4) != (lo, hi)
    assert bootstrap_ratio([], [], resamples=10) == (None, None)
    assert bootstrap_ratio([1, 0], [0, 0], resamples=10) == (None, None)
    narrow = bootstrap_ratio(np.tile(errors, 10), np.tile(words, 10), resamples=500, seed=3)
    assert narrow[1] - narrow[0] < (hi - lo) / 2  # 10x the items: about a third of the width


def test_paired_bootstrap_sees_a_consistent_improvement():
    a = np.array([1] * 30 + [0] * 70)  # system a misses 30 of 100
    b = a.copy()
    b[:15] = 0  # b fixes half of them and breaks nothing
    out = paired_bootstrap(a, b, resamples=500)
    assert out.delta == pytest.approx(-0.15) and out.rate_a == 0.3 and out.rate_b == pytest.approx(0.15)
    assert out.hi < 0 and out.p_value < 0.01
    same = paired_bootstrap(a, a, resamples=50)
    assert same.delta == 0 and same.p_value is None
