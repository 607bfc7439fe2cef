#!/usr/bin/env python
"""Benchmark FAME feature-CSV loading: pandas vs modalink's reader vs the .npy cache.

Writes a synthetic headerless CSV shaped like a VGGFace fc7 training file (``--rows`` rows of
``--dim`` non-negative floats + an identity label column), then times, best of
``--repeats``:

* ``pandas.read_csv(header=None)`` — what the official baseline does (skipped without pandas);
* ``read_feature_csv`` — modalink's strict chunked parser;
* ``FeatureCache.load`` — first call (parse + write ``.npy``), then cache hits with the default
  content check (BLAKE2b of the CSV and of the ``.npy``), in memory and as a memory map
  (``mmap``; touches every page so the timing is honest), and with ``verify='stat'``.

Example: ``python scripts/bench_fame_loading.py --rows 5000``
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from modalink.face_voice.cache import FeatureCache
from modalink.face_voice.feature_csv import read_feature_csv


def write_csv(path: Path, rows: int, dim: int, seed: int = 0, signed: bool = False) -> None:
    """Write ``rows`` lines of ``dim`` post-ReLU-like floats (``signed``: half of them negative,
    like speaker embeddings) plus an integer label."""
    rng = np.random.default_rng(seed)
    fmt = ",".join(["%.6g"] * dim)
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, rows, 500):
            block = rng.standard_normal((min(500, rows - start), dim))
            block = block * 3.0 if signed else np.maximum(block, 0.0) * 3.0
            labels = rng.integers(0, 50, len(block))
            fh.writelines(f"{fmt % tuple(r.tolist())},{lab}\n" for r, lab in zip(block, labels))


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--rows", type=int, default=5000, help="CSV rows (default 5000)")
    ap.add_argument("--dim", type=int, default=4096, help="feature columns (default 4096, faces)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method, best kept (default 3)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="folder for the CSV and cache (default: a temporary folder, removed after)")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas reference")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_fame_"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "faces_train.csv"
    cache_dir = work / "cache"
    try:
        t0 = time.perf_counter()
        write_csv(csv, args.rows, args.dim)
        size_mb = csv.stat().st_size / 1e6
        print(f"wrote {csv} ({args.rows} x {args.dim + 1}, {size_mb:.1f} MB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        results: list[tuple[str, float]] = []

        ref = None
        if not args.no_pandas:
            try:
                import pandas as pd
            except ImportError:
                print("pandas not installed: skipping the pandas reference")
            else:
                t, df = best_of(lambda: pd.read_csv(csv, header=None), args.repeats)
                ref = np.asarray(df.iloc[:, :-1], dtype=np.float32)
                results.append(("pandas.read_csv(header=None)", t))

        t, (feats, labels) = best_of(lambda: read_feature_csv(csv, args.dim, True), args.repeats)
        results.append(("modalink read_feature_csv", t))
        if ref is not None and not np.array_equal(ref, feats):
            print("WARNING: modalink and pandas arrays differ", file=sys.stderr)

        shutil.rmtree(cache_dir, ignore_errors=True)
        cache = FeatureCache(cache_dir)
        t0 = time.perf_counter()
        cache.load(csv, args.dim, True)
        results.append(("cache: first load (parse + write .npy)", time.perf_counter() - t0))
        t, (cached, _) = best_of(lambda: cache.load(csv, args.dim, True), args.repeats)
        results.append(("cache: hit, in memory", t))
        assert cache.last_status == "hit" and np.array_equal(cached, feats)
        t, _ = best_of(lambda: float(cache.load(csv, args.dim, True, mmap=True)[0].sum()), args.repeats)
        results.append(("cache: hit, mmap + full read", t))
        stat_only = FeatureCache(cache_dir, verify="stat")
        t, _ = best_of(lambda: stat_only.load(csv, args.dim, True), args.repeats)
        results.append(("cache: hit, verify='stat' (blind to edits)", t))

        base = results[0][1]
        base_name = results[0][0].split("(")[0]
        print(f"\n{'method':<42} {'seconds':>9} {'speed-up vs ' + base_name:>24}")
        print("-" * 77)
        for name, sec in results:
            print(f"{name:<42} {sec:>9.3f} {base / sec:>23.1f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
