"""The metrics behind every reported figure, on cases small enough to compute by hand."""

import math

import numpy as np
import pytest

from minewatch.metrics import average_precision, best_f1_threshold, binary_scores, pr_curve, precision_recall_f1

# Four windows, scores falling: positive, negative, positive, negative.
Y = np.array([1, 0, 1, 0])
S = np.array([0.9, 0.8, 0.7, 0.1])


def test_precision_recall_f1_from_counts():
    assert precision_recall_f1(3, 1, 2) == pytest.approx((0.75, 0.6, 2 * 0.75 * 0.6 / 1.35))
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)  # nothing predicted, nothing to find
    assert precision_recall_f1(0, 4, 0) == (0.0, 0.0, 0.0)


def test_pr_curve_steps_at_every_distinct_score():
    precision, recall, thresholds = pr_curve(Y, S)
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7, 0.1])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0, 1.0])


def test_pr_curve_keeps_tied_scores_together():
    precision, recall, thresholds = pr_curve(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.2]))
    np.testing.assert_allclose(thresholds, [0.5, 0.2])  # the tie is one threshold, not two
    np.testing.assert_allclose(precision, [0.5, 1 / 3])
    np.testing.assert_allclose(recall, [1.0, 1.0])


def test_average_precision_is_the_area_under_the_step_curve():
    # recall steps 0.5 at precision 1, then 0.5 at precision 2/3 (as scikit-learn computes it)
    assert average_precision(Y, S) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert average_precision(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])) == pytest.approx(1.0)
    assert math.isnan(average_precision(np.zeros(3), np.array([0.1, 0.2, 0.3])))


def test_best_f1_threshold_sits_midway_below_the_best_score():
    # F1 by threshold: 0.9 -> 2/3, 0.8 -> 1/2, 0.7 -> 4/5, 0.1 -> 2/3; the best cut keeps the top three
    threshold, f1 = best_f1_threshold(Y, S)
    assert f1 == pytest.approx(0.8)
    assert threshold == pytest.approx((0.7 + 0.1) / 2)
    assert best_f1_threshold(np.zeros(4), S) == (0.5, 0.0)  # no positives: the default
    assert best_f1_threshold(np.array([1]), np.array([0.3])) == (0.3, 1.0)  # no lower score: the score itself


def test_binary_scores_count_decisions_at_a_threshold():
    got = binary_scores(Y, S, 0.4)
    assert (got["tp"], got["fp"], got["fn"]) == (2, 1, 0)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == 1.0 and got["f1"] == pytest.approx(0.8)
    assert binary_scores(Y, S, 0.95)["f1"] == 0.0  # nothing flagged
