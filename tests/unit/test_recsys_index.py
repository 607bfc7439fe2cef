"""Bounded-memory exact search: block sizes from a memory budget, identical results at any block."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modalink.recsys import InnerProductIndex
from modalink.recsys.data import Interactions
from modalink.recsys.evaluate import rank_metrics
from modalink.recsys.index import rows_per_block


def test_rows_per_block_follows_the_budget():
    assert rows_per_block(1_000_000, 8.0, 256) == 33  # 256 MiB / 8 MB per query row
    assert rows_per_block(1000, 8.0, 1) == 131
    assert rows_per_block(10**9, 8.0, 1) == 1  # never zero: one query at a time
    with pytest.raises(ValueError):
        rows_per_block(10, 8.0, 0)


def test_index_block_size_comes_from_the_budget_and_never_changes_results():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((500, 16)).astype(np.float32)
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    exclude = [list(rng.choice(500, 5, replace=False)) for _ in range(40)]
    big = InnerProductIndex(items, use_faiss=False, device="cpu")
    assert big.chunk_size == rows_per_block(500, 8.0, 256)
    tiny = InnerProductIndex(items, use_faiss=False, memory_budget_mb=0.01, device="cpu")
    assert tiny.chunk_size == 2  # 0.01 MiB / (500 items x 8 bytes)
    s1, p1 = big.search(queries, 7, exclude)
    s2, p2 = tiny.search(queries, 7, exclude)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)  # another block size may pick another BLAS kernel
    brute = queries @ items.T
    for q, e in enumerate(exclude):
        brute[q, e] = -np.inf
    np.testing.assert_array_equal(p1, np.argsort(-brute, axis=1, kind="stable")[:, :7])
    with pytest.raises(ValueError):
        InnerProductIndex(items, use_faiss=False, chunk_size=0)


def test_rank_metrics_same_at_any_block_and_only_users_with_relevant_candidates():
    rng = np.random.default_rng(1)
    n_users, n_items = 30, 60
    user_vecs = torch.from_numpy(rng.standard_normal((n_users, 8)).astype(np.float32))
    item_vecs = torch.from_numpy(rng.standard_normal((n_items, 8)).astype(np.float32))
    pairs = rng.integers(0, [n_users, n_items], size=(200, 2))
    relevant = Interactions(pairs[:150, 0], pairs[:150, 1], n_users, n_items)
    seen = Interactions(pairs[150:, 0], pairs[150:, 1], n_users, n_items)
    users = np.arange(n_users)
    cand = np.arange(0, n_items, 2)
    ref = rank_metrics(user_vecs, users, item_vecs, relevant, cand, [seen], k=5, batch_size=n_users)
    for kw in ({"batch_size": 1}, {"batch_size": 7}, {"memory_budget_mb": 1e-3}, {}):
        got = rank_metrics(user_vecs, users, item_vecs, relevant, cand, [seen], k=5, **kw)
        assert got == pytest.approx(ref, abs=1e-12), kw
    expected_users = {u for u, i in zip(relevant.users, relevant.items) if i % 2 == 0}
    assert ref["users"] == len(expected_users)


def test_bench_recsys_search_smoke(capsys):
    from conftest import load_script

    mod = load_script("scripts/bench_recsys_search.py")
    mod.main(["--items", "3000", "--queries", "50", "--dim", "8", "--budget-mb", "0.1"])
    out = capsys.readouterr().out
    assert "| 3,000 | budget 0.1 MiB | 4 |" in out and "| yes |" in out
