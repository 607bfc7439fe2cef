"""modalink.metrics against scikit-learn/SciPy and naive loops."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, roc_curve

from modalink import metrics as M


def _trials(n: int, seed: int, sep: float = 1.0, discrete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random verification trials: labels 0/1, DISTANCE scores (targets lower on average)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)
    s = rng.normal(size=n) - sep * y
    if discrete:
        s = np.round(s * 2) / 2  # many ties
    return y, s


def _independent_eer(y: np.ndarray, s: np.ndarray) -> float:
    """EER (%) by root-finding on np.interp over the full (non-thinned) ROC of distances."""
    fpr, tpr, _ = roc_curve(y, -s, drop_intermediate=False)
    return 100 * brentq(lambda x: 1 - x - np.interp(x, fpr, tpr), 0.0, 1.0)


# --------------------------------------------------------------------------------- EER
def test_fame_eer_hand_checked():
    # distances: targets at .1 .2 .4, non-targets at .3 .5 .6; a threshold in (.3, .4)
    # misses 1/3 targets and accepts 1/3 non-targets -> EER 33.33 %
    y = [1, 1, 0, 1, 0, 0]
    s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert M.fame_eer(y, s) == pytest.approx(100 / 3, abs=1e-6)
    assert M.fast_eer(y, s) == pytest.approx(100 / 3, abs=1e-9)
    assert M.fame_eer([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0, abs=1e-6)
    assert M.fast_eer([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0, abs=1e-9)
    # similarities submitted as distances flip the result (the trap the DESIGN notes)
    assert M.fame_eer([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(100.0, abs=1e-6)
    assert M.fast_eer([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], higher_is_same=True) == pytest.approx(0.0, abs=1e-9)


def test_fame_eer_matches_independent_computation():
    for seed in range(5):
        y, s = _trials(2000, seed)
        assert M.fame_eer(y, s) == pytest.approx(_independent_eer(y, s), abs=1e-6)


def test_fast_eer_agrees_with_fame_eer_large_continuous():
    y, s = _trials(20_000, seed=11, sep=0.8)
    fame = M.fame_eer(y, s)
    fast = M.fast_eer(y, s)
    assert 20 < fame < 45
    assert abs(fast - fame) < 0.01  # the documented tolerance ...
    assert abs(fast - fame) < 1e-6  # ... in practice it is the same number


@pytest.mark.parametrize("discrete", [False, True])
def test_fast_eer_agrees_with_fame_eer_small_and_tied(discrete):
    rng = np.random.default_rng(3)
    for seed in range(60):
        n = int(rng.integers(2, 80))
        y, s = _trials(n, seed, sep=float(rng.uniform(-1, 2)), discrete=discrete)
        assert M.fast_eer(y, s) == pytest.approx(M.fame_eer(y, s), abs=1e-6), (seed, n)


def test_eer_orientation_and_threshold():
    y, s = _trials(50_000, seed=5)
    eer, thr = M.eer_and_threshold(y, s)
    assert M.fast_eer(y, -s, higher_is_same=True) == pytest.approx(eer, abs=1e-9)
    # at the returned threshold the two error rates both sit at the EER
    frr = np.mean(s[y == 1] > thr) * 100
    far = np.mean(s[y == 0] <= thr) * 100
    assert frr == pytest.approx(eer, abs=0.05) and far == pytest.approx(eer, abs=0.05)
    eer2, thr2 = M.eer_and_threshold(y, -s, higher_is_same=True)
    assert eer2 == pytest.approx(eer) and thr2 == pytest.approx(-thr)


def test_verification_accepts_torch_and_bool():
    y, s = _trials(500, seed=2)
    ref = M.fast_eer(y, s)
    assert M.fast_eer(torch.from_numpy(y.astype(bool)), torch.from_numpy(s).float()) == pytest.approx(ref, abs=1e-4)
    assert M.fame_eer(y.tolist(), s.tolist()) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("fn", [M.fame_eer, M.fast_eer, M.min_dcf, M.roc_auc])
def test_verification_input_errors(fn):
    with pytest.raises(ValueError, match="differ in length"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="both classes"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        fn([0, 1, 1], [0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="0/1"):
        fn([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])


# --------------------------------------------------------------------------------- minDCF
def _naive_min_dcf(y, s, p_target, c_miss, c_fa):
    """Thresholds × trials loop on distances: accept 'same' when score <= t."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=float)
    best = math.inf
    for t in np.concatenate([[-np.inf], np.unique(s)]):
        p_miss = np.mean(s[y] > t)
        p_fa = np.mean(s[~y] <= t)
        best = min(best, c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa)
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


@pytest.mark.parametrize("p_target,c_miss,c_fa", [(0.01, 1, 1), (0.05, 1, 1), (0.5, 1, 1), (0.1, 10, 1)])
def test_min_dcf_matches_naive(p_target, c_miss, c_fa):
    for seed in range(8):
        y, s = _trials(300, seed, sep=1.5, discrete=seed % 2 == 1)
        got = M.min_dcf(y, s, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
        assert got == pytest.approx(_naive_min_dcf(y, s, p_target, c_miss, c_fa), abs=1e-12)
        assert 0.0 <= got <= 1.0
        assert M.min_dcf(y, -s, p_target, c_miss, c_fa, higher_is_same=True) == pytest.approx(got, abs=1e-12)


def test_min_dcf_threshold_reaches_the_cost():
    y, s = _trials(3000, seed=9, sep=2.0)
    value, thr = M.min_dcf_and_threshold(y, s, p_target=0.05)
    p_miss, p_fa = np.mean(s[y == 1] > thr), np.mean(s[y == 0] <= thr)
    assert (0.05 * p_miss + 0.95 * p_fa) / 0.05 == pytest.approx(value, abs=1e-12)
    with pytest.raises(ValueError, match="p_target"):
        M.min_dcf(y, s, p_target=1.0)


def test_fast_metrics_one_million_trials_match_the_analytic_values():
    """At scale the sort-based EER and minDCF land on the Gaussian closed forms (targets N(-1, 1),
    non-targets N(0, 1)); their speed is measured by scripts/bench_metrics.py, not asserted here."""
    from scipy.stats import norm

    y, s = _trials(1_000_000, seed=0)
    assert M.fast_eer(y, s) == pytest.approx(100 * norm.cdf(-0.5), abs=0.3)
    t = np.linspace(-6, 6, 200_001)  # distance thresholds: accept as same when s <= t
    cost = (0.05 * norm.sf(t + 1) + 0.95 * norm.cdf(t)) / 0.05
    assert M.min_dcf(y, s, p_target=0.05) == pytest.approx(cost.min(), abs=0.02)


# --------------------------------------------------------------------------------- AUC, acc, F1
def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    for seed in range(20):
        y, s = _trials(int(rng.integers(5, 400)), seed, discrete=seed % 2 == 0)
        assert M.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.roc_auc([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)


def test_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    logits = rng.normal(size=(200, 5))
    assert M.accuracy(y, logits) == pytest.approx(accuracy_score(y, logits.argmax(1)))
    assert M.accuracy(torch.from_numpy(y), torch.from_numpy(logits)) == pytest.approx(accuracy_score(y, logits.argmax(1)))
    assert M.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == pytest.approx(0.75)
    yt = rng.integers(0, 2, (50, 4))
    yp = yt.copy()
    yp[:10, 0] = 1 - yp[:10, 0]
    assert M.accuracy(yt, yp) == pytest.approx(accuracy_score(yt, yp))
    with pytest.raises(ValueError, match="shape"):
        M.accuracy([1, 2], [1, 2, 3])


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_f1_matches_sklearn(average):
    rng = np.random.default_rng(4)
    for seed in range(10):
        y = rng.integers(0, 6, 120)
        p = np.where(rng.random(120) < 0.6, y, rng.integers(0, 7, 120))  # class 6 never true
        assert M.f1_scores(y, p, average) == pytest.approx(f1_score(y, p, average=average), abs=1e-12)
        yt = (rng.random((80, 7)) < 0.3).astype(int)
        yt[:, 3] = 0  # an empty column
        pt = (rng.random((80, 7)) < 0.3).astype(int)
        pt[:, 3] = 0
        assert M.f1_scores(yt, pt, average) == pytest.approx(
            f1_score(yt, pt, average=average, zero_division=0), abs=1e-12)
    scores = rng.random((30, 4))
    yt = (rng.random((30, 4)) < 0.5).astype(int)
    assert M.f1_scores(yt, scores, average, threshold=0.5) == pytest.approx(
        f1_score(yt, (scores >= 0.5).astype(int), average=average, zero_division=0))


def test_f1_errors():
    with pytest.raises(ValueError, match="average"):
        M.f1_scores([0, 1], [0, 1], average="weighted")
    with pytest.raises(ValueError, match="indicator"):
        M.f1_scores(np.array([[0, 1]]), np.array([[0.2, 0.7]]))


# --------------------------------------------------------------------------------- ranking
def _naive_ranking(scores, relevant, k, seen):
    recalls, ndcgs = [], []
    for u in range(scores.shape[0]):
        rel = {i for i in range(scores.shape[1]) if relevant[u, i]}
        if not rel:
            continue
        cands = [i for i in range(scores.shape[1]) if seen is None or not seen[u, i]]
        ranked = sorted(cands, key=lambda i: -scores[u, i])[:k]
        hits = [1.0 if i in rel else 0.0 for i in ranked]
        recalls.append(sum(hits) / min(k, len(rel)))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
        ndcgs.append(dcg / idcg)
    return float(np.mean(recalls)), float(np.mean(ndcgs))


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_recall_ndcg_match_naive_loops(k):
    rng = np.random.default_rng(k)
    n_users, n_items = 25, 30
    scores = rng.normal(size=(n_users, n_items))
    seen = rng.random((n_users, n_items)) < 0.3
    relevant = (rng.random((n_users, n_items)) < 0.15) & ~seen
    relevant[0] = False  # a user without relevant items is skipped
    for mask in (None, seen):
        r_ref, n_ref = _naive_ranking(scores, relevant, k, mask)
        assert M.recall_at_k(scores, relevant, k, seen=mask) == pytest.approx(r_ref, abs=1e-12)
        assert M.ndcg_at_k(scores, relevant, k, seen=mask) == pytest.approx(n_ref, abs=1e-12)
    sets = [set(np.flatnonzero(row).tolist()) for row in relevant]
    assert M.recall_at_k(torch.from_numpy(scores), sets, k, seen=torch.from_numpy(seen)) == pytest.approx(
        _naive_ranking(scores, relevant, k, seen)[0], abs=1e-12)


def test_ranking_hand_checked_and_seen_changes_result():
    scores = np.array([[0.9, 0.8, 0.1, 0.7]])
    relevant = np.array([[False, False, True, True]])
    # top-2 = items 0, 1 -> no hit; masking them out brings items 3, 2 to the top -> both hit
    assert M.recall_at_k(scores, relevant, 2) == 0.0
    seen = np.array([[True, True, False, False]])
    assert M.recall_at_k(scores, relevant, 2, seen=seen) == 1.0
    assert M.ndcg_at_k(scores, relevant, 2, seen=seen) == pytest.approx(1.0)
    # top-3 without a mask: items 0, 1, 3 -> hit at rank 3
    assert M.ndcg_at_k(scores, relevant, 3) == pytest.approx((1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert M.recall_at_k(scores, relevant, 3) == pytest.approx(0.5)


def test_topk_and_coverage():
    scores = np.array([[0.1, 0.5, 0.3], [0.9, 0.2, 0.4]])
    top = M.topk_items(scores, 2)
    assert top.tolist() == [[1, 2], [0, 2]]
    assert M.coverage(top, 3) == pytest.approx(1.0)
    assert M.coverage(top, 6) == pytest.approx(0.5)
    assert M.topk_items(scores, 5).shape == (2, 3)
    with pytest.raises(ValueError, match="outside"):
        M.coverage([[0, 7]], 3)
    with pytest.raises(ValueError, match="positive integer"):
        M.recall_at_k(scores, scores > 0.3, 0)
    with pytest.raises(ValueError, match="no user"):
        M.recall_at_k(scores, np.zeros_like(scores, dtype=bool), 2)
    with pytest.raises(ValueError, match="shape"):
        M.ndcg_at_k(scores, np.ones((3, 3), dtype=bool), 2)


def test_constant_scores_give_the_random_level():
    """Ties are averaged: a model that scores every item the same gets the expected value of a
    random ranking, whatever the item ids (no favouring of low ids)."""
    rng = np.random.default_rng(0)
    n_users, n_items, k = 40, 50, 10
    relevant = rng.random((n_users, n_items)) < 0.1
    relevant[:, :k] = False  # the lowest ids are never relevant: tie-by-id would score exactly 0
    relevant[:, -1] = True
    n_rel = relevant.sum(1)
    scores = np.zeros((n_users, n_items))
    # expected hits at every rank = n_rel / n_items (linearity of expectation)
    p = n_rel / n_items
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.array([disc[:min(k, n)].sum() for n in n_rel])
    assert M.recall_at_k(scores, relevant, k) == pytest.approx(float(np.mean(k * p / np.minimum(k, n_rel))))
    assert M.ndcg_at_k(scores, relevant, k) == pytest.approx(float(np.mean(p * disc.sum() / idcg)))
    # with seen items masked the random level is over the unseen items only
    seen = np.zeros_like(relevant)
    seen[:, k:2 * k] = ~relevant[:, k:2 * k]
    n_cand = n_items - seen.sum(1)
    assert M.recall_at_k(scores, relevant, k, seen=seen) == pytest.approx(
        float(np.mean(k * (n_rel / n_cand) / np.minimum(k, n_rel))))


def test_tied_ndcg_matches_sklearn_and_random_tie_breaking():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(3)
    for trial in range(30):
        n_items, k = int(rng.integers(3, 25)), int(rng.integers(1, 12))
        scores = rng.integers(0, 4, (6, n_items)).astype(float)  # many ties
        relevant = rng.random((6, n_items)) < 0.3
        relevant[:, 0] = True
        ref = ndcg_score(relevant.astype(float), scores, k=k, ignore_ties=False)
        assert M.ndcg_at_k(scores, relevant, k) == pytest.approx(ref, abs=1e-12)
    # recall = the mean over random tie-breaks (Monte Carlo with topk_items' seeded tie-breaking)
    scores = np.array([[1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 2.0, 0.0]])
    relevant = np.array([[False, True, False, False, True, False, False, True]])
    k = 3  # item 6, then 2 of the 4 items tied at 1.0 (1 relevant): E[recall] = (2 * 1/4) / 3
    assert M.recall_at_k(scores, relevant, k) == pytest.approx(0.5 / 3)
    draws = [relevant[0, M.topk_items(scores, k, seed=s)[0]].sum() / 3 for s in range(4000)]
    assert np.mean(draws) == pytest.approx(0.5 / 3, abs=0.01)


def test_topk_breaks_ties_at_random_with_a_seed():
    scores = np.zeros((200, 30))
    a, b = M.topk_items(scores, 5, seed=1), M.topk_items(scores, 5, seed=1)
    assert np.array_equal(a, b)  # same seed, same lists
    assert not np.array_equal(a, M.topk_items(scores, 5, seed=2))
    # not the lowest ids: every item appears, about uniformly
    counts = np.bincount(a.ravel(), minlength=30)
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()
    assert M.coverage(a, 30) == 1.0
    # strict order is kept: the best items stay first
    scores[:, 7] = 2.0
    scores[:, 3] = 1.0
    assert (M.topk_items(scores, 5, seed=0)[:, :2] == [7, 3]).all()


def test_det_curve_matches_sklearn_roc():
    y, s = _trials(500, seed=8, discrete=True)
    p_miss, p_fa, thr = M.det_curve(y, s)
    fpr, tpr, sk_thr = roc_curve(y, -s, drop_intermediate=False)
    np.testing.assert_allclose(p_fa, fpr)
    np.testing.assert_allclose(p_miss, 1 - tpr)
    np.testing.assert_allclose(thr[1:], -sk_thr[1:])
    assert thr[0] == -np.inf  # distances: "accept nothing" is score <= -inf
