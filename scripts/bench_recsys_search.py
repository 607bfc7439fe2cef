#!/usr/bin/env python
"""Memory and time of exact top-k search as the catalogue grows: fixed query blocks vs a memory budget.

For each catalogue size, random unit item vectors (``--dim``) and ``--queries`` random queries are
searched with :class:`modalink.recsys.InnerProductIndex` (exact torch search, CPU) twice: with
the old fixed block of 1,024 queries (``chunk_size=1024``) and with the block the memory budget
allows (``memory_budget_mb``, default 256). Peak memory is the resident set size sampled every 5 ms
during the search, minus the size before it (the catalogue and the queries are already in
memory). Both searches must return the same items.

    python scripts/bench_recsys_search.py                          # 10^4, 10^5, 10^6 items
    python scripts/bench_recsys_search.py --items 1000000 --queries 4000 --budget-mb 128
"""
from __future__ import annotations

import argparse
import threading
import time


def _peak_rss_during(fn) -> tuple[float, float, object]:
    """(seconds, peak RSS above the starting RSS in MiB, result) of ``fn()``."""
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - t0
        done.set()
        t.join()
    return seconds, (max(peak[0], proc.memory_info().rss) - base) / 2**20, out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--budget-mb", type=float, default=256.0, help="memory_budget_mb of the bounded search")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    a = p.parse_args(argv)
    import numpy as np
    import torch

    from modalink.recsys import InnerProductIndex

    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.queries} queries, dim {a.dim}, top-{a.k}")
    print("| items | search | block (queries) | seconds | peak extra RSS MiB | same items |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in a.items:
        items = rng.standard_normal((n, a.dim)).astype(np.float32)
        items /= np.linalg.norm(items, axis=1, keepdims=True)
        queries = rng.standard_normal((a.queries, a.dim)).astype(np.float32)
        ref = None
        for label, kw in (("fixed 1,024-query blocks", {"chunk_size": 1024}),
                          (f"budget {a.budget_mb:g} MiB", {"memory_budget_mb": a.budget_mb})):
            index = InnerProductIndex(items, use_faiss=False, device="cpu", **kw)
            seconds, extra, (_, pos) = _peak_rss_during(lambda: index.search(queries, a.k))
            same = "–" if ref is None else ("yes" if np.array_equal(ref, pos) else "NO")
            ref = pos if ref is None else ref
            print(f"| {n:,} | {label} | {index.chunk_size:,} | {seconds:.2f} | {extra:,.0f} | {same} |", flush=True)
            del index


if __name__ == "__main__":
    main()
