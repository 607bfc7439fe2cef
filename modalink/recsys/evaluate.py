"""Full-ranking evaluation of vector recommenders on warm, item-cold and user-cold splits.

Every model is reduced to two matrices: user vectors and item vectors; the score of a
(user, item) pair is their inner product. Each user ranks ALL candidate items; the items the
user interacted with in training (or in the fold-in history) are masked out. Metrics come
from :mod:`modalink.metrics` (Recall@K truncated at min(K, n_relevant), NDCG@K with binary
gains, catalogue coverage of the top-K lists over the candidates).

Protocols (see :class:`modalink.recsys.data.RecsysSplit`):

* ``warm`` — warm users rank the warm items; relevant = their held-out pairs; seen = train
  (and val, at test time) pairs.
* ``item_cold`` — warm users rank ONLY the cold items (never seen in training; they embed
  from content); relevant = their pairs with cold items (DropoutNet / SiBraR protocol).
* ``user_cold`` — users never seen in training rank the warm items; their fold-in history
  builds the profile and is masked; relevant = the rest of their pairs.
"""
from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np
import torch

from modalink import metrics
from modalink.data.processes import Processes
from modalink.errors import InputError
from modalink.recsys.data import Bags, Interactions, ItemFeatures, RecsysSplit
from modalink.recsys.index import DEFAULT_MEMORY_BUDGET_MB, rows_per_block

SPLITS = ("warm", "item_cold", "user_cold")


class Recommender(Protocol):
    """What the evaluation needs from a model."""

    def item_vectors(self, features: ItemFeatures | None = None) -> torch.Tensor: ...

    def user_vectors(self, users: torch.Tensor, history: Bags | None = None) -> torch.Tensor: ...


def rank_metrics(user_vecs: torch.Tensor, users: np.ndarray, item_vecs: torch.Tensor, relevant: Interactions,
                 candidates: np.ndarray | None = None, seen: Sequence[Interactions] = (), k: int = 10,
                 batch_size: int | None = None, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                 processes: Processes | None = None) -> dict[str, float]:
    """Recall@k, NDCG@k and coverage@k of full ranking over ``candidates`` (default: all items).

    ``user_vecs[r]`` is the vector of user ``users[r]``; ``item_vecs`` covers the whole
    catalogue. Only users with at least one relevant candidate are evaluated (``users`` in
    the result counts them). Pairs in ``seen`` are removed from the ranking. Users are scored
    in blocks of ``batch_size`` (default: as many as ``memory_budget_mb`` allows for this
    many candidates), so memory does not grow with the number of users. With ``processes`` of a
    launched job, each process ranks its block of the users and the sums are gathered: every
    process returns the metrics of all users (coverage's random tie-breaks follow the blocks).
    """
    users = np.asarray(users, dtype=np.int64)
    if user_vecs.shape[0] != users.size:
        raise ValueError(f"user_vecs has {user_vecs.shape[0]} rows for {users.size} users")
    cand = np.arange(item_vecs.shape[0]) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if cand.size == 0:
        raise InputError("no candidate items to rank")
    in_cand = np.zeros(relevant.n_items, dtype=bool)
    in_cand[cand] = True
    users_with_rel = np.unique(relevant.users[in_cand[relevant.items]])
    rows = np.flatnonzero(np.isin(users, users_with_rel))
    if rows.size == 0:
        raise InputError("no evaluated user has a relevant candidate item")
    # scores, seen mask, relevance and the top-k's random tie-breakers: ~32 bytes per cell
    block = int(batch_size) if batch_size else rows_per_block(cand.size, 32.0, memory_budget_mb)
    item_c = item_vecs[torch.from_numpy(cand).to(item_vecs.device)].float()
    procs = processes or Processes.single()
    split = procs.distributed and rows.size >= procs.count
    mine = rows[procs.share(rows.size)]
    sums = {"recall": 0.0, "ndcg": 0.0}
    top_all = []  # every process has at least one user (split only with as many users as processes)
    for start in range(0, mine.size, block):
        r = mine[start:start + block]
        scores = (user_vecs[torch.from_numpy(r).to(user_vecs.device)].float() @ item_c.T).cpu().numpy()
        mask = np.zeros(scores.shape, dtype=bool)
        for s in seen:
            mask |= s.matrix(users[r], cand)
        rel = relevant.matrix(users[r], cand)
        sums["recall"] += metrics.recall_at_k(scores, rel, k, seen=mask) * r.size
        sums["ndcg"] += metrics.ndcg_at_k(scores, rel, k, seen=mask) * r.size
        top_all.append(metrics.topk_items(scores, k, seen=mask))
    if split:
        parts = procs.gather((sums, np.concatenate(top_all)))
        sums = {m: sum(p[0][m] for p in parts) for m in sums}
        top_all = [p[1] for p in parts]
    n = rows.size
    return {f"recall@{k}": sums["recall"] / n, f"ndcg@{k}": sums["ndcg"] / n,
            f"coverage@{k}": metrics.coverage(np.concatenate(top_all), cand.size), "users": float(n)}


def evaluate_split(model: Recommender, split: RecsysSplit, which: str, stage: str = "test", k: int = 10,
                   features: ItemFeatures | None = None, item_vecs: torch.Tensor | None = None,
                   batch_size: int | None = None, processes: Processes | None = None) -> dict[str, float]:
    """Metrics of ``model`` on one protocol (``warm``, ``item_cold``, ``user_cold``) at
    ``stage`` ``val`` or ``test`` (user-cold-start has a test stage only); the ranking is split
    across ``processes`` (:func:`rank_metrics`)."""
    if which not in SPLITS:
        raise InputError(f"unknown split {which!r}; use one of {SPLITS}")
    if stage not in ("val", "test"):
        raise InputError(f"stage must be 'val' or 'test', got {stage!r}")
    with torch.no_grad():
        items = model.item_vectors(features) if item_vecs is None else item_vecs
        if which == "user_cold":
            users, history = split.cold_users, split.cold_user_history
            relevant, seen, cand = split.cold_user_test, [split.cold_user_history], split.warm_items
        else:
            users, history = split.warm_users, split.train
            if which == "warm":
                relevant = split.val if stage == "val" else split.test
                seen = [split.train] if stage == "val" else [split.train, split.val]
                cand = split.warm_items
            else:
                relevant = split.val_cold if stage == "val" else split.test_cold
                seen, cand = [], (split.cold_val_items if stage == "val" else split.cold_test_items)
        # only users with something to rank
        users = np.intersect1d(users, np.unique(relevant.users))
        if users.size == 0 or cand.size == 0:
            return {}
        uv = model.user_vectors(torch.from_numpy(users), history.user_bags())
        return rank_metrics(uv, users, items, relevant, cand, seen, k=k, batch_size=batch_size, processes=processes)


def evaluate_all(model: Recommender, split: RecsysSplit, stage: str = "test", k: int = 10,
                 features: ItemFeatures | None = None, which: Sequence[str] = SPLITS) -> dict[str, dict[str, float]]:
    """``{protocol: metrics}`` for each protocol in ``which`` (empty protocols are skipped)."""
    items = None
    with torch.no_grad():
        items = model.item_vectors(features)
    out = {}
    for w in which:
        if stage == "val" and w == "user_cold":
            continue
        res = evaluate_split(model, split, w, stage, k, item_vecs=items)
        if res:
            out[w] = res
    return out


def evaluate_modality_subsets(model: Recommender, features: ItemFeatures, split: RecsysSplit,
                              subsets: Mapping[str, Sequence[str]], which: str = "item_cold",
                              stage: str = "test", k: int = 10) -> dict[str, dict[str, float]]:
    """Missing-modality evaluation: the item vectors are built from each subset of modalities
    only (e.g. ``{"text": ["text"], "text+image": ["text", "image"]}``). Items without any
    modality of the subset get a zero vector (they score 0)."""
    out = {}
    for name, mods in subsets.items():
        restricted = features.restrict(list(mods))
        items = model.item_vectors(restricted, missing="zero")  # type: ignore[call-arg]
        out[name] = evaluate_split(model, split, which, stage, k, item_vecs=items)
    return out


def format_table(results: Mapping[str, Mapping[str, Mapping[str, float]]], k: int = 10) -> str:
    """Markdown table: one row per model, NDCG@k / Recall@k / coverage@k per protocol."""
    protos = [p for p in SPLITS if any(p in r for r in results.values())]
    protos += sorted({p for r in results.values() for p in r} - set(protos))
    head = "| model | " + " | ".join(f"{p} NDCG@{k} | {p} Recall@{k} | {p} Cov@{k}" for p in protos) + " |"
    sep = "|---|" + "---|" * (3 * len(protos))
    lines = [head, sep]
    for name, res in results.items():
        cells = []
        for p in protos:
            m = res.get(p)
            cells += ([f"{m[f'ndcg@{k}']:.4f}", f"{m[f'recall@{k}']:.4f}", f"{m[f'coverage@{k}']:.3f}"]
                      if m else ["–", "–", "–"])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def content_neighbours(vectors: np.ndarray | torch.Tensor, groups: Sequence[object],
                       queries: Sequence[int] | np.ndarray | None = None) -> dict[str, float]:
    """How well item vectors keep content apart: for each query row (default: every row), is
    its nearest other row (cosine) of the same content group? Returns ``neighbour_accuracy``
    (that fraction), ``mean_cosine`` (mean pairwise cosine among the query rows; near 1 = the
    vectors collapsed to one direction) and ``n`` (queries). Zero rows must be left out by the
    caller. Used to compare single-modality item vectors with their raw input features."""
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    x = torch.nn.functional.normalize(x, dim=1)
    g = np.asarray(list(groups), dtype=object)
    q = np.arange(x.shape[0]) if queries is None else np.asarray(queries, dtype=np.int64)
    if x.shape[0] < 2 or q.size < 2:
        raise ValueError("content_neighbours needs at least two rows and two queries")
    sims = x[q] @ x.T
    sims[torch.arange(q.size), torch.as_tensor(q)] = -float("inf")  # never its own neighbour
    nearest = sims.argmax(1).numpy()
    qx = x[q]
    pair = qx @ qx.T
    n = q.size
    mean_cos = float((pair.sum() - pair.diagonal().sum()) / (n * (n - 1)))
    return {"neighbour_accuracy": float((g[nearest] == g[q]).mean()), "mean_cosine": mean_cos, "n": int(n)}
