"""Validation split by identity and balanced face–voice verification trials.

The official FAME baseline has no validation split (checkpoints end up chosen on the test
set). :func:`split_train_val` holds out whole TRAINING identities, so validation mimics the
test protocol (identities never seen in training); :func:`make_verification_trials` turns the
held-out rows into balanced same/different face–voice trials for EER-based model selection.
"""
from __future__ import annotations

import numpy as np

from modalink.errors import InputError

__all__ = ["split_train_val", "make_verification_trials"]


def split_train_val(labels: np.ndarray, val_fraction: float = 0.1, n_val_ids: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices by identity: ``(train_idx, val_idx)``, sorted int64 arrays.

    ``n_val_ids`` identities (default ``round(val_fraction * C)``, at least 2 so that
    different-identity trials exist) are drawn with ``seed``; every row of a validation
    identity goes to ``val_idx``, so no validation identity is seen in training.
    """
    labels = np.asarray(labels).reshape(-1)
    classes = np.unique(labels)
    n_classes = len(classes)
    if n_val_ids is None:
        if not 0.0 < val_fraction < 1.0:
            raise InputError(f"val_fraction must be in (0, 1), got {val_fraction}")
        n_val_ids = max(2, int(round(val_fraction * n_classes)))
    if not 1 <= n_val_ids < n_classes:
        raise InputError(f"cannot hold out {n_val_ids} of {n_classes} identities "
                         f"(need at least 1 held out and 1 left for training)")
    rng = np.random.default_rng(seed)
    val_classes = classes[rng.permutation(n_classes)[:n_val_ids]]
    is_val = np.isin(labels, val_classes)
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def make_verification_trials(labels: np.ndarray, n_trials: int, seed: int = 0,
                             rows: np.ndarray | None = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced face–voice trials: ``(face_idx, voice_idx, is_same)``.

    ``n_trials // 2`` same-identity trials and the rest different-identity, shuffled. Indices
    refer to positions in ``labels``, or, when ``rows`` is given (e.g. ``val_idx``), trials are
    drawn among those rows only and the returned indices are the row numbers themselves.
    A same-identity trial pairs a face with the voice of ANOTHER row of that identity when the
    identity has more than one row. Face rows are drawn uniformly; the voice of a different
    trial uniformly among rows of the other identities.
    """
    labels = np.asarray(labels).reshape(-1)
    pool = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if n_trials < 2:
        raise InputError(f"n_trials must be at least 2, got {n_trials}")
    if len(pool) == 0:
        raise InputError("no rows to draw trials from")
    pool_labels = labels[pool]
    classes, codes = np.unique(pool_labels, return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"need at least 2 identities for different-identity trials, got {len(classes)}")
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")          # pool positions grouped by identity
    counts = np.bincount(codes, minlength=len(classes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(pool), dtype=np.int64)        # position of each pool row inside its group
    rank[order] = np.arange(len(pool)) - starts[codes[order]]
    n_same = n_trials // 2
    n_diff = n_trials - n_same

    # Same identity: face row f, voice row = another member of f's group (f itself if alone).
    f_same = rng.integers(0, len(pool), n_same)
    c = codes[f_same]
    k = counts[c]
    shift = rng.integers(1, np.maximum(k, 2), n_same)  # 1..k-1, or 1 for a single-row identity
    v_rank = np.where(k > 1, (rank[f_same] + shift) % k, 0)
    v_same = order[starts[c] + v_rank]

    # Different identity: voice drawn uniformly from the rows outside the face's group.
    f_diff = rng.integers(0, len(pool), n_diff)
    c = codes[f_diff]
    r = (rng.random(n_diff) * (len(pool) - counts[c])).astype(np.int64)
    r = np.where(r >= starts[c], r + counts[c], r)
    v_diff = order[r]

    face = np.concatenate([f_same, f_diff])
    voice = np.concatenate([v_same, v_diff])
    same = np.concatenate([np.ones(n_same, bool), np.zeros(n_diff, bool)])
    perm = rng.permutation(n_trials)
    return pool[face[perm]], pool[voice[perm]], same[perm]
