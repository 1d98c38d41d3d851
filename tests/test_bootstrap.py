"""The one paired bootstrap reproduces, on a fixed seed, the outputs of the two it replaced: the
evaluate/probe comparison of two systems (one run each) and the reproduction's report pooling
several seeds per system (values pinned from trainer/bootstrap.py and pipeline/report_stats.py
before they were merged)."""
import pytest

from evaluation.bootstrap import bootstrap_ratio, paired_bootstrap

TOTALS = [3, 2, 2, 3, 2, 3, 3, 0, 0, 1, 1, 3, 3, 0, 1, 3, 0, 3, 0, 1, 3, 1, 1, 1, 2, 1, 3, 1, 1, 2, 2, 2, 2, 3, 3, 3,
          2, 2, 1, 3]
A = [[1, 0, 2, 0, 2, 1, 0, 0, 0, 0, 0, 1, 2, 0, 1, 2, 0, 1, 0, 1, 0, 1, 1, 0, 2, 0, 0, 0, 1, 2, 2, 0, 2, 1, 1, 0, 1, 2, 1, 0],
     [1, 0, 2, 2, 0, 1, 2, 0, 0, 1, 0, 2, 1, 0, 0, 1, 0, 1, 0, 1, 2, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 2, 1, 1, 1, 2, 1, 1],
     [1, 1, 1, 1, 1, 2, 2, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 2, 2, 1, 2, 1, 2, 2, 1, 0, 0]]
B = [[1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0],
     [0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1]]


def test_one_run_each_as_evaluate_and_probe_compared():
    out = paired_bootstrap(A[0], B[0], TOTALS, resamples=500, seed=3)
    assert out.delta == pytest.approx(-0.1780821917808219) and out.rate_a == pytest.approx(0.4246575342465753)
    assert (out.lo, out.hi) == (pytest.approx(-0.3441527143581938), pytest.approx(0.0, abs=1e-12))
    assert out.p_value == pytest.approx(0.028)
    back = paired_bootstrap(B[0], A[0], TOTALS, resamples=500, seed=3)
    assert back.p_value == pytest.approx(0.028) and back.p_b_not_lower == pytest.approx(0.982)  # one-sided, both ways


def test_seeds_pooled_as_the_reproduction_report_compared():
    out = paired_bootstrap(A, B, TOTALS, resamples=500, seed=3)
    assert out.delta == pytest.approx(-0.17123287671232873)
    assert (out.lo, out.hi) == (pytest.approx(-0.26398358585858583), pytest.approx(-0.08021456552706555))
    assert out.draws == 500 and out.b_lower == 499 and out.p_b_not_lower == pytest.approx(0.002)


def test_interval_of_one_rate_pinned():
    assert bootstrap_ratio(A[0], TOTALS, resamples=500, seed=3) == (pytest.approx(0.29138976793248944),
                                                                    pytest.approx(0.5734833659491193))
