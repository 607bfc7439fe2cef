"""Evaluation metrics: verification (EER, minDCF), classification (AUC, accuracy, F1) and
ranking (Recall@K, NDCG@K, coverage).

Arrays go in (NumPy, lists or torch tensors, which are converted), Python floats come out.

Verification conventions
------------------------
``labels`` are 1 for a target trial (same person) and 0 for a non-target trial. ``scores``
are DISTANCES by default (lower = same person), exactly like the FAME organisers' scorer;
pass ``higher_is_same=True`` for similarities. EERs are in PERCENT.

* :func:`fame_eer` reproduces the organisers' computation line for line
  (``roc_curve(labels, -scores)`` then ``brentq`` on ``interp1d(fpr, tpr)``).
* :func:`fast_eer` / :func:`eer_and_threshold` compute the same quantity in O(N log N)
  without a root finder: one sort, cumulative sums for the ROC at every distinct
  threshold, then the exact crossing of ``1 - fpr`` and ``tpr`` on that ROC polyline
  (linear interpolation inside the crossing segment; at a vertical step the crossing is the
  step's fpr, which is where ``brentq`` converges on the organisers' discontinuous
  function). They agree with :func:`fame_eer` to ~1e-9 percentage points, with ties and
  discrete scores too (see ``tests/unit/test_metrics.py``).
* :func:`min_dcf` is the normalised minimum detection cost (NIST SRE style): the minimum
  over all thresholds, "accept all" and "reject all" included, of
  ``c_miss * p_target * P_miss + c_fa * (1 - p_target) * P_fa`` divided by
  ``min(c_miss * p_target, c_fa * (1 - p_target))``; so it lies in [0, 1].

Ranking conventions
-------------------
Tied scores never favour low item ids. :func:`recall_at_k` and :func:`ndcg_at_k` AVERAGE over
ties: they return the exact expected value over a uniformly random order of tied items (for
NDCG the value of scikit-learn's ``ndcg_score(..., ignore_ties=False)``), so a model that gives
every candidate the same score scores the random-ranking level. :func:`topk_items` (and so
:func:`coverage` of its lists) breaks ties at random with a seed (default 0: reproducible).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from modalink.errors import InputError

__all__ = [
    "fame_eer", "fast_eer", "eer_and_threshold", "min_dcf", "min_dcf_and_threshold", "det_curve",
    "roc_auc", "accuracy", "f1_scores", "topk_items", "recall_at_k", "ndcg_at_k", "coverage",
]


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------
def _to_numpy(x: Any, name: str) -> np.ndarray:
    """NumPy view of ``x``; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot convert to an array ({exc})") from None
    if arr.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, got objects (ragged input?)")
    return arr


def _binary_trials(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a verification trial list; return (bool labels, float64 scores), both 1-D."""
    y = _to_numpy(labels, "labels").reshape(-1) if np.ndim(labels) else None
    s = _to_numpy(scores, "scores").reshape(-1) if np.ndim(scores) else None
    if y is None or s is None:
        raise ValueError("labels and scores must be 1-D sequences, not scalars")
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} labels vs {s.shape[0]} scores")
    if y.shape[0] == 0:
        raise ValueError("no trials: labels and scores are empty")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"labels must be 0/1 or bool, got dtype {y.dtype}")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"labels must be 0/1 or bool; trial {i} has label {y[i]!r}")
        y = y.astype(bool)
    if not np.issubdtype(s.dtype, np.number) and s.dtype != bool:
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    finite = np.isfinite(s)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise InputError(f"scores must be finite; trial {i} has score {s[i]!r} "
                         f"({int((~finite).sum())} non-finite in total)")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        which = "target (label 1)" if n_pos == 0 else "non-target (label 0)"
        raise InputError(f"both classes are needed: there is no {which} trial among {y.shape[0]}")
    return y, s


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC at every distinct threshold of ``s`` (higher = target), (0, 0) first.

    Returns ``(fpr, tpr, thresholds)``; point i accepts trials with ``s >= thresholds[i]``
    (``thresholds[0] = +inf`` accepts nothing). One stable sort plus cumulative sums.
    """
    order = np.argsort(-s)
    s_sorted = s[order]
    y_sorted = y[order]
    last_of_run = np.flatnonzero(np.diff(s_sorted))  # last index of each block of equal scores
    ends = np.concatenate([last_of_run, [s_sorted.shape[0] - 1]])
    tps = np.cumsum(y_sorted, dtype=np.int64)[ends]
    fps = (ends + 1) - tps
    n_pos, n_neg = tps[-1], fps[-1]
    fpr = np.concatenate([[0.0], fps / n_neg])
    tpr = np.concatenate([[0.0], tps / n_pos])
    thresholds = np.concatenate([[np.inf], s_sorted[ends]])
    return fpr, tpr, thresholds


def _oriented(scores: np.ndarray, higher_is_same: bool) -> np.ndarray:
    return scores if higher_is_same else -scores


# ---------------------------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------------------------
def fame_eer(labels: Any, scores: Any) -> float:
    """EER in percent, computed exactly as the FAME organisers do (scores are DISTANCES).

    ``fpr, tpr, _ = roc_curve(labels, -scores)``;
    ``eer = brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)``; returns ``100 * eer``.
    This is O(N log N) for the ROC plus a root search; use :func:`fast_eer` for the same
    number without SciPy's interpolator.
    """
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    y, s = _binary_trials(labels, scores)
    fpr, tpr, _ = roc_curve(y.astype(np.int64), -s)
    with np.errstate(divide="ignore", invalid="ignore"):  # interp1d divides by 0 on vertical steps
        eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    return float(100.0 * eer)


def eer_and_threshold(labels: Any, scores: Any, higher_is_same: bool = False) -> tuple[float, float]:
    """EER in percent and the score threshold at which it is reached, in O(N log N).

    The threshold is in the caller's score units: with distances (the default) a trial is
    accepted as "same" when ``score <= threshold``; with ``higher_is_same=True`` when
    ``score >= threshold``. Inside the crossing segment the threshold is interpolated with
    the same fraction as the error rate (when the crossing is at the very first step it is
    that step's score).
    """
    y, s = _binary_trials(labels, scores)
    fpr, tpr, thr = _roc_points(y, _oriented(s, higher_is_same))
    gap = 1.0 - fpr - tpr  # = fnr - fpr; nonincreasing along the ROC, 1 at (0,0), -1 at (1,1)
    k = int(np.argmax(gap <= 0.0))  # first ROC point at or past the crossing (k >= 1)
    g0, g1 = gap[k - 1], gap[k]
    frac = g0 / (g0 - g1)  # g0 > 0 >= g1 so the denominator is positive
    eer = fpr[k - 1] + frac * (fpr[k] - fpr[k - 1])
    if k == 1:  # the previous point is the +inf "accept nothing" threshold
        t = thr[1]
    else:
        t = thr[k - 1] + frac * (thr[k] - thr[k - 1])
    t = float(t if higher_is_same else -t)
    return float(100.0 * eer), t


def fast_eer(labels: Any, scores: Any, higher_is_same: bool = False) -> float:
    """EER in percent in O(N log N); equals :func:`fame_eer` (to ~1e-9 points) for distances."""
    return eer_and_threshold(labels, scores, higher_is_same)[0]


def det_curve(labels: Any, scores: Any, higher_is_same: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold, "accept nothing" first.

    Returns ``(p_miss, p_fa, thresholds)`` with thresholds in the caller's score units
    (``+inf``/``-inf`` for "accept nothing" depending on ``higher_is_same``).
    """
    y, s = _binary_trials(labels, scores)
    fpr, tpr, thr = _roc_points(y, _oriented(s, higher_is_same))
    return 1.0 - tpr, fpr, (thr if higher_is_same else -thr)


def min_dcf_and_threshold(labels: Any, scores: Any, p_target: float = 0.01, c_miss: float = 1.0,
                          c_fa: float = 1.0, higher_is_same: bool = False) -> tuple[float, float]:
    """Normalised minimum detection cost and the threshold that reaches it, in O(N log N).

    Thresholds are in the caller's units (see :func:`eer_and_threshold`); ``±inf`` means
    "reject everything" is optimal.
    """
    if not 0.0 < p_target < 1.0:
        raise InputError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise InputError(f"c_miss and c_fa must be positive, got c_miss={c_miss}, c_fa={c_fa}")
    y, s = _binary_trials(labels, scores)
    fpr, tpr, thr = _roc_points(y, _oriented(s, higher_is_same))
    # point 0 is "reject all" (P_miss = 1, P_fa = 0); the last point is "accept all".
    dcf = c_miss * p_target * (1.0 - tpr) + c_fa * (1.0 - p_target) * fpr
    c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
    i = int(np.argmin(dcf))
    t = float(thr[i] if higher_is_same else -thr[i])
    return float(dcf[i] / c_def), t


def min_dcf(labels: Any, scores: Any, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0,
            higher_is_same: bool = False) -> float:
    """Normalised minimum detection cost (NIST SRE style, in [0, 1]) in O(N log N)."""
    return min_dcf_and_threshold(labels, scores, p_target, c_miss, c_fa, higher_is_same)[0]


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------
def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (O(N log N))."""
    order = np.argsort(x)
    xs = x[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(xs)) + 1])
    ends = np.concatenate([starts[1:], [xs.shape[0]]])
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(xs.shape[0], dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (higher score = positive), ties counted as 1/2; O(N log N).

    Equals ``sklearn.metrics.roc_auc_score`` (Mann–Whitney U with average ranks).
    """
    y, s = _binary_trials(labels, scores)
    ranks = _average_ranks(s)
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def accuracy(y_true: Any, y_pred_or_logits: Any) -> float:
    """Fraction of correct predictions.

    ``y_true`` is (N,) class ids; ``y_pred_or_logits`` is (N,) predicted ids or (N, C)
    scores/logits (arg-maxed). For multi-label (N, L) indicator arrays on both sides this is
    the subset accuracy (a sample counts only when all its labels match).
    """
    t = _to_numpy(y_true, "y_true")
    p = _to_numpy(y_pred_or_logits, "y_pred_or_logits")
    if t.ndim == 1 and p.ndim == 2:
        if p.shape[0] != t.shape[0]:
            raise ValueError(f"y_true has {t.shape[0]} samples but logits have {p.shape[0]} rows")
        p = p.argmax(axis=1)
    if t.shape != p.shape:
        raise ValueError(f"y_true shape {t.shape} does not match predictions shape {p.shape}")
    if t.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    eq = t == p
    if eq.ndim == 2:
        eq = eq.all(axis=1)
    return float(eq.mean())


def f1_scores(y_true: Any, y_pred: Any, average: str = "macro", threshold: float | None = None) -> float:
    """F1 score, ``average="macro"`` (unweighted mean over classes) or ``"micro"``.

    Multi-class: ``y_true``/``y_pred`` are (N,) label ids; classes are the union of labels
    seen on either side (as scikit-learn does). Multi-label: (N, L) 0/1 indicator arrays, all
    L columns count. ``threshold`` binarises score-valued multi-label predictions
    (``y_pred >= threshold``). A class with no true and no predicted sample has F1 = 0, as in
    ``sklearn.metrics.f1_score`` with its default ``zero_division``.
    """
    if average not in ("macro", "micro"):
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    t = _to_numpy(y_true, "y_true")
    p = _to_numpy(y_pred, "y_pred")
    if threshold is not None:
        p = p >= threshold
    if t.shape != p.shape:
        raise ValueError(f"y_true shape {t.shape} does not match y_pred shape {p.shape}")
    if t.size == 0:
        raise ValueError("F1 of an empty set is undefined")
    if t.ndim == 1:
        classes = np.union1d(t, p)
        t_ind = t[:, None] == classes[None, :]
        p_ind = p[:, None] == classes[None, :]
    elif t.ndim == 2:
        for name, a in (("y_true", t), ("y_pred", p)):
            if not np.isin(a, (0, 1)).all():
                raise ValueError(f"{name}: multi-label input must be a 0/1 indicator matrix "
                                 "(pass threshold= to binarise scores)")
        t_ind, p_ind = t.astype(bool), p.astype(bool)
    else:
        raise ValueError(f"expected 1-D labels or a 2-D indicator matrix, got shape {t.shape}")
    tp = (t_ind & p_ind).sum(axis=0).astype(np.float64)
    fp = (~t_ind & p_ind).sum(axis=0).astype(np.float64)
    fn = (t_ind & ~p_ind).sum(axis=0).astype(np.float64)
    if average == "micro":
        denom = 2 * tp.sum() + fp.sum() + fn.sum()
        return float(2 * tp.sum() / denom) if denom > 0 else 0.0
    denom = 2 * tp + fp + fn
    per_class = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(per_class.mean())


# ---------------------------------------------------------------------------------------------
# ranking (recommendation, retrieval)
# ---------------------------------------------------------------------------------------------
def _relevance_matrix(relevant: Any, shape: tuple[int, int]) -> np.ndarray:
    """A boolean (U, I) matrix from a boolean/0-1 matrix or a sequence of per-user item-id sets."""
    n_users, n_items = shape
    if isinstance(relevant, (list, tuple)) and any(isinstance(r, (set, frozenset)) for r in relevant):
        if len(relevant) != n_users:
            raise ValueError(f"relevant has {len(relevant)} user entries but scores has {n_users} rows")
        rel = np.zeros(shape, dtype=bool)
        for u, items in enumerate(relevant):
            ids = np.fromiter((int(i) for i in items), dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= n_items):
                bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
                raise ValueError(f"relevant[{u}] has item id {bad} outside [0, {n_items})")
            rel[u, ids] = True
        return rel
    rel = _to_numpy(relevant, "relevant")
    if rel.shape != shape:
        raise ValueError(f"relevant shape {rel.shape} does not match scores shape {shape}")
    if rel.dtype != bool:
        if not np.isin(rel, (0, 1)).all():
            raise ValueError("relevant must be a boolean/0-1 matrix or a list of item-id sets")
        rel = rel.astype(bool)
    return rel


def _masked_scores(scores: Any, seen: Any | None) -> np.ndarray:
    s = _to_numpy(scores, "scores")
    if s.ndim != 2:
        raise ValueError(f"scores must be a (users, items) matrix, got shape {s.shape}")
    s = s.astype(np.float64, copy=True)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if seen is not None:
        m = _to_numpy(seen, "seen")
        if m.shape != s.shape:
            raise ValueError(f"seen shape {m.shape} does not match scores shape {s.shape}")
        s[m.astype(bool)] = -np.inf
    return s


def topk_items(scores: Any, k: int, seen: Any | None = None, seed: int | None = 0) -> np.ndarray:
    """(U, k') item ids of each user's top-k by score, best first (k' = min(k, n_items)).

    ``seen`` (bool U×I) marks items excluded from the ranking (their score becomes -inf, so
    they only appear if a user has fewer than k unseen items). Tied scores are ordered at
    RANDOM (independently per user, from ``numpy.random.default_rng(seed)``; the same seed
    gives the same lists), so a model that ties many items does not get the lowest item ids.
    ``seed=None`` draws fresh randomness. Cost O(U·I + U·k log k).
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    s = _masked_scores(scores, seen)
    return _topk_random_ties(s, int(k), np.random.default_rng(seed))


def _kth_largest(s: np.ndarray, k: int) -> np.ndarray:
    """(U,) the k-th largest value of each row (k ≤ n_items)."""
    n = s.shape[1]
    return np.partition(s, n - k, axis=1)[:, n - k]


def _topk_random_ties(s: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    k = min(k, s.shape[1])
    r = rng.random(s.shape)
    t = _kth_largest(s, k)[:, None]
    # items above the k-th score are all in; of those tied with it, the ones with the largest
    # random keys fill the remaining places
    key = np.where(s > t, 2.0, np.where(s == t, r, -1.0))
    part = np.argpartition(-key, k - 1, axis=1)[:, :k] if k < s.shape[1] else \
        np.broadcast_to(np.arange(s.shape[1]), s.shape).copy()
    ps, pr = np.take_along_axis(s, part, axis=1), np.take_along_axis(r, part, axis=1)
    order = np.lexsort((-pr, -ps), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _expected_hits(scores: Any, relevant: Any, k: int, seen: Any | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(E[hit] per rank U×k', n_relevant per user, k) after masking ``seen``, the expectation
    taken over a uniformly random order of tied scores (exact, no sampling): inside a group of
    tied items every rank the group occupies gets the group's share of relevant items."""
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    s = _masked_scores(scores, seen)
    rel = _relevance_matrix(relevant, s.shape)
    n_rel = rel.sum(axis=1)
    if not (n_rel > 0).any():
        raise InputError("no user has a relevant item; Recall/NDCG are undefined")
    k = int(k)
    kk = min(k, s.shape[1])
    hit_able = rel & np.isfinite(s)  # masked (seen) items are never hits
    t = _kth_largest(s, kk)
    tied = s == t[:, None]
    boundary_share = (hit_able & tied).sum(axis=1) / tied.sum(axis=1)  # the k-th score's group
    top = _topk_random_ties(s, kk, np.random.default_rng(0))  # the order of ties is averaged out below
    ts = np.take_along_axis(s, top, axis=1)
    th = np.take_along_axis(hit_able, top, axis=1).astype(np.float64)
    # groups of equal scores above the k-th score lie wholly inside the top k: average within them
    new = np.ones_like(ts, dtype=bool)
    new[:, 1:] = ts[:, 1:] != ts[:, :-1]
    gid = (np.cumsum(new, axis=1) - 1) + (np.arange(ts.shape[0]) * kk)[:, None]
    sums = np.bincount(gid.ravel(), th.ravel(), minlength=ts.size)
    counts = np.bincount(gid.ravel(), minlength=ts.size)
    expected = sums[gid] / counts[gid]
    at_boundary = ts == t[:, None]
    expected = np.where(at_boundary, boundary_share[:, None], expected)
    return expected, n_rel, k


def recall_at_k(scores: Any, relevant: Any, k: int, seen: Any | None = None) -> float:
    """Mean Recall@K over users with at least one relevant item.

    Recall@K = (relevant items in the top K) / min(K, n_relevant) — the "truncated" recall
    used by SiBraR/RecBole-style evaluations, so a perfect ranking scores 1 even when a user
    has more than K relevant items. Items flagged in ``seen`` are removed from the ranking
    (and cannot be hits); keep ``relevant`` and ``seen`` disjoint. Ties are AVERAGED: the value
    is the exact expectation over a uniformly random order of tied items (so a constant score
    gives the random-ranking level, whatever the item ids).
    """
    hits, n_rel, k = _expected_hits(scores, relevant, k, seen)
    users = n_rel > 0
    per_user = hits[users].sum(axis=1) / np.minimum(k, n_rel[users])
    return float(per_user.mean())


def ndcg_at_k(scores: Any, relevant: Any, k: int, seen: Any | None = None) -> float:
    """Mean NDCG@K over users with at least one relevant item.

    Binary gains, discount ``1 / log2(rank + 1)`` (rank 1 = best); the ideal DCG places
    ``min(K, n_relevant)`` relevant items first. ``seen`` as in :func:`recall_at_k`. Ties are
    averaged as in :func:`recall_at_k` (the same value as scikit-learn's ``ndcg_score`` with
    ``ignore_ties=False``).
    """
    hits, n_rel, k = _expected_hits(scores, relevant, k, seen)
    users = n_rel > 0
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits[users] * discount).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = ideal_cum[np.minimum(k, n_rel[users])]
    return float((dcg / idcg).mean())


def coverage(topk_items: Any, n_items: int) -> float:
    """Catalogue coverage: distinct items recommended in any top-k list / ``n_items``."""
    if int(n_items) != n_items or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    ids = _to_numpy(topk_items, "topk_items").reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"topk_items must hold integer item ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n_items):
        raise ValueError(f"topk_items has ids outside [0, {n_items})")
    return float(np.unique(ids).size / n_items)
