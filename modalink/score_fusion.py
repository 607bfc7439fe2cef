"""Fusion of several verification systems' scores into one (all DISTANCES: lower = same person).

* :func:`mean_fusion` — the mean of each system's z-normalised scores (each system's scores of
  one trial list standardised by their own mean and standard deviation: no labels needed);
* :class:`LinearFusion` — linear logistic-regression fusion in the BOSARIS/FoCal tradition:
  ``llr = b + Σ w_i s_i`` is fitted on labelled VALIDATION trials (prior-weighted: both classes
  count equally, with a small L2 penalty on ``w``) and applied to test trials; the fused
  distance is ``-llr``. A system that carries no information gets a weight near 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from modalink.errors import InputError

__all__ = ["zscore", "mean_fusion", "LinearFusion", "fit_linear_fusion", "FUSIONS"]

#: Fusion methods: ``mean`` (of z-normalised scores) and ``logreg`` (weights learned on validation).
FUSIONS = ("mean", "logreg")


def _matrix(scores: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Systems' scores as an ``[n_trials, n_systems]`` float64 matrix (a list holds one array per system)."""
    if isinstance(scores, np.ndarray) and scores.ndim == 2:
        x = scores.astype(np.float64)
    else:
        cols = [np.asarray(s, dtype=np.float64).reshape(-1) for s in scores]
        if not cols:
            raise InputError("fusion needs at least one system's scores")
        if len({len(c) for c in cols}) != 1:
            raise InputError(f"the systems score different numbers of trials: {[len(c) for c in cols]}")
        x = np.stack(cols, axis=1)
    if not np.all(np.isfinite(x)):
        raise InputError("fusion input holds non-finite scores")
    return x


def zscore(scores: Any) -> np.ndarray:
    """Scores minus their mean, divided by their standard deviation (1 when constant)."""
    s = np.asarray(scores, dtype=np.float64)
    sd = float(s.std())
    return (s - s.mean()) / (sd if sd > 0 else 1.0)


def mean_fusion(scores: Sequence[Any] | np.ndarray) -> np.ndarray:
    """The mean over systems of each system's z-normalised scores (one trial list)."""
    x = _matrix(scores)
    return np.mean([zscore(x[:, j]) for j in range(x.shape[1])], axis=0)


@dataclass
class LinearFusion:
    """``llr = bias + scores @ weights``; :meth:`apply` returns the fused DISTANCE ``-llr``."""

    weights: np.ndarray
    bias: float

    def llr(self, scores: Sequence[Any] | np.ndarray) -> np.ndarray:
        x = _matrix(scores)
        if x.shape[1] != len(self.weights):
            raise InputError(f"fusion learned for {len(self.weights)} systems, given {x.shape[1]}")
        return self.bias + x @ self.weights

    def apply(self, scores: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Fused distances (lower = same person) of the systems' distances."""
        return -self.llr(scores)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": [float(w) for w in self.weights], "bias": float(self.bias)}


def fit_linear_fusion(scores: Sequence[Any] | np.ndarray, labels: Any, l2: float = 1e-4,
                      prior: float = 0.5, iterations: int = 50) -> LinearFusion:
    """Prior-weighted logistic regression of ``labels`` (1 = same person) on the systems' scores
    (Newton / IRLS). Targets and non-targets weigh ``prior`` and ``1 - prior`` in total, and the
    log-odds offset ``logit(prior)`` is taken out of the bias, as in BOSARIS/FoCal."""
    x = _matrix(scores)
    y = np.asarray(labels).astype(np.float64).reshape(-1)
    if len(y) != len(x):
        raise InputError(f"{len(y)} labels for {len(x)} trials")
    n_tar, n_non = float((y == 1).sum()), float((y == 0).sum())
    if n_tar == 0 or n_non == 0 or n_tar + n_non != len(y):
        raise InputError("fusion training needs labels 0/1 with both classes present")
    # standardise for a well-conditioned Newton step, map back at the end
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    sample_w = np.where(y == 1, prior / n_tar, (1 - prior) / n_non)
    offset = np.log(prior / (1 - prior))
    theta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ theta + offset)))
        grad = z.T @ (sample_w * (p - y)) + reg * theta
        hess = (z * (sample_w * p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-12 * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    w = theta[:-1] / sd
    b = float(theta[-1] - np.sum(theta[:-1] * mu / sd))
    return LinearFusion(weights=w, bias=b)
