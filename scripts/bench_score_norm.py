#!/usr/bin/env python
"""Time S-norm / AS-norm (``modalink.score_norm.s_norm``) on many cross-modal trials.

``--trials`` random trials, each with its own face and voice row (as in a FAME pair list, where
every line has its own files), 128-D embeddings, a cohort of ``--cohort`` entries per modality;
S-norm and AS-norm (``--top-k``) are timed, best of ``--repeats``. ``--check`` first compares
the vectorised result with a per-trial loop on 200 trials.

    python scripts/bench_score_norm.py                      # 10^6 trials, cohort 45 and 1800
    OMP_NUM_THREADS=1 python scripts/bench_score_norm.py --trials 1000000 --cohort 1800 --repeats 1
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from modalink.score_norm import s_norm


def naive(d, faces, voices, fc, vc, top_k):
    out = []
    for t in range(len(d)):
        df = np.sort(np.linalg.norm(vc - faces[t], axis=1))[:top_k]
        dv = np.sort(np.linalg.norm(fc - voices[t], axis=1))[:top_k]
        out.append(((d[t] - df.mean()) / df.std() + (d[t] - dv.mean()) / dv.std()) / 2)
    return np.array(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=1_000_000)
    p.add_argument("--cohort", type=int, nargs="+", default=[45, 1800],
                   help="cohort sizes (45: the synthetic set's identity means; 1800: all its training rows)")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--block-size", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--check", action="store_true", help="compare with a per-trial loop on 200 trials first")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    faces = rng.standard_normal((args.trials, args.dim), dtype=np.float32)
    voices = rng.standard_normal((args.trials, args.dim), dtype=np.float32)
    d = np.linalg.norm(faces - voices, axis=1)
    print(f"{args.trials} trials, {args.dim}-D, torch threads {torch.get_num_threads()}, block {args.block_size}",
          flush=True)
    print(f"{'method':<8} {'cohort':>7} {'top_k':>6} {'wall s':>8} {'CPU s':>8} {'trials/s (wall)':>16}")
    for n in args.cohort:
        fc = rng.standard_normal((n, args.dim), dtype=np.float32)
        vc = rng.standard_normal((n, args.dim), dtype=np.float32)
        for method, k in (("snorm", None), ("asnorm", min(args.top_k, n))):
            if args.check:
                m = min(200, args.trials)
                ref = naive(d[:m], faces[:m], voices[:m], fc, vc, k)
                got = s_norm(d[:m], faces[:m], voices[:m], fc, vc, top_k=k)
                if not np.allclose(ref, got, rtol=1e-3, atol=1e-3):
                    raise SystemExit(f"{method}: vectorised result differs from the per-trial loop")
            best, cpu = float("inf"), float("inf")
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                s_norm(d, faces, voices, fc, vc, top_k=k, block_size=args.block_size)
                best = min(best, time.perf_counter() - t0)
                cpu = min(cpu, time.process_time() - c0)
            print(f"{method:<8} {n:>7} {str(k or '-'):>6} {best:>8.2f} {cpu:>8.2f} {args.trials / best:>16,.0f} trials/s",
                  flush=True)


if __name__ == "__main__":
    main()
