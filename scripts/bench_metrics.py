#!/usr/bin/env python
"""Time modalink's O(N log N) EER/minDCF against the organisers' scorer and naive baselines.

Random verification trials (half targets, Gaussian distance scores) are scored with:

* ``fast_eer`` / ``min_dcf`` (modalink, one sort + cumulative sums) at ``--n`` and ``--n-small``;
* ``fame_eer`` (the FAME organisers' roc_curve + brentq) at both sizes;
* a naive thresholds × trials EER and minDCF (what O(N²) scorers do) at ``--n-small``;
* SpeechBrain's ``EER``/``minDCF`` at ``--n-small`` unless ``--no-speechbrain``.

Prints a table (best of ``--repeats`` runs) and optionally writes it as JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm


from modalink import metrics as M
from modalink.io import atomic_write_text


def make_trials(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random trials: labels 0/1 and distance scores (targets shifted lower by 1)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = (0, 1)
    return labels, rng.normal(size=n) - labels


def naive_eer(labels: np.ndarray, scores: np.ndarray, chunk: int = 512) -> float:
    """EER (%) by scanning every distinct threshold over every trial (thresholds × N work)."""
    y = labels.astype(bool)
    pos, neg = scores[y], scores[~y]
    thresholds = np.unique(scores)
    best_gap, eer = np.inf, np.nan
    for i in range(0, thresholds.size, chunk):
        t = thresholds[i:i + chunk, None]
        frr = (pos[None, :] > t).mean(axis=1)
        far = (neg[None, :] <= t).mean(axis=1)
        j = int(np.argmin(np.abs(frr - far)))
        if abs(frr[j] - far[j]) < best_gap:
            best_gap, eer = abs(frr[j] - far[j]), (frr[j] + far[j]) / 2
    return float(100 * eer)


def naive_min_dcf(labels: np.ndarray, scores: np.ndarray, p_target: float = 0.01, chunk: int = 512) -> float:
    """Normalised minDCF by building the thresholds × trials decision matrix chunk by chunk."""
    y = labels.astype(bool)
    pos, neg = scores[y], scores[~y]
    thresholds = np.concatenate([[-np.inf], np.unique(scores)])
    best = np.inf
    for i in range(0, thresholds.size, chunk):
        t = thresholds[i:i + chunk, None]
        dcf = p_target * (pos[None, :] > t).mean(axis=1) + (1 - p_target) * (neg[None, :] <= t).mean(axis=1)
        best = min(best, float(dcf.min()))
    return best / min(p_target, 1 - p_target)


def speechbrain_fns() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """SpeechBrain's EER (percent) and minDCF (normalised here) on distance scores."""
    import torch
    from speechbrain.utils.metric_stats import EER, minDCF

    def split(labels: np.ndarray, scores: np.ndarray):
        sim = torch.from_numpy(-scores)  # SpeechBrain expects similarities
        y = torch.from_numpy(labels.astype(bool))
        return sim[y], sim[~y]

    return {
        "speechbrain EER": lambda y, s: 100 * EER(*split(y, s))[0],
        "speechbrain minDCF": lambda y, s: minDCF(*split(y, s), p_target=0.01)[0] / 0.01,
    }


def best_time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(best wall time in seconds, value) over ``repeats`` calls."""
    best, value = np.inf, np.nan
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, float(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="trials for the fast metrics")
    ap.add_argument("--n-small", type=int, default=10_000, help="trials for the naive/SpeechBrain baselines")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-speechbrain", action="store_true", help="skip SpeechBrain's EER/minDCF")
    ap.add_argument("--json", type=Path, default=None, help="also write the table to this JSON file")
    args = ap.parse_args(argv)
    if args.n < 2 or args.n_small < 2 or args.repeats < 1:
        ap.error("--n and --n-small must be >= 2 and --repeats >= 1")

    big, small = make_trials(args.n, args.seed), make_trials(args.n_small, args.seed + 1)
    jobs: list[tuple[str, tuple[np.ndarray, np.ndarray], Callable, int]] = [
        ("fast_eer", big, M.fast_eer, args.repeats),
        ("min_dcf", big, M.min_dcf, args.repeats),
        ("fame_eer (organisers)", big, M.fame_eer, args.repeats),
        ("fast_eer", small, M.fast_eer, args.repeats),
        ("min_dcf", small, M.min_dcf, args.repeats),
        ("fame_eer (organisers)", small, M.fame_eer, args.repeats),
        ("naive EER (thresholds x N)", small, naive_eer, 1),
        ("naive minDCF (thresholds x N)", small, naive_min_dcf, 1),
    ]
    if not args.no_speechbrain:
        try:
            jobs += [(name, small, fn, 1) for name, fn in speechbrain_fns().items()]
        except ImportError as exc:
            print(f"(SpeechBrain baselines skipped: {exc})", file=sys.stderr)

    rows = []
    for name, (y, s), fn, reps in tqdm(jobs, desc="benchmarks", unit="job"):
        seconds, value = best_time(lambda: fn(y, s), reps)
        rows.append({"method": name, "n": int(y.shape[0]), "seconds": seconds, "value": value})
    ref = {(r["method"], r["n"]): r["seconds"] for r in rows if r["method"] in ("fast_eer", "min_dcf")}
    for r in rows:
        kind = "min_dcf" if "dcf" in r["method"].lower() else "fast_eer"
        r["x_slower_than_fast"] = r["seconds"] / ref[(kind, r["n"])]

    print(f"\n{'method':32s} {'N':>10s} {'seconds':>10s} {'value':>12s} {'vs fast':>9s}")
    for r in rows:
        print(f"{r['method']:32s} {r['n']:>10,d} {r['seconds']:>10.4f} {r['value']:>12.5f} "
              f"{r['x_slower_than_fast']:>8.1f}x")
    print("EER values are percent; minDCF is normalised (p_target=0.01, c_miss=c_fa=1).")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
