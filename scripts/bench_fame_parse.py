#!/usr/bin/env python
"""Benchmark the first parse of a FAME feature CSV: strict parser vs pyarrow's multi-threaded reader.

Writes a headerless CSV shaped like a VGGFace fc7 training file (``--rows`` rows of ``--dim``
post-ReLU-like floats + an identity label, the generator of ``bench_fame_loading.py``), then
times ``read_feature_csv(engine="strict")`` (NumPy ``loadtxt`` in chunks) and
``read_feature_csv()`` (the default: pyarrow's number parser on a thread pool,
:mod:`modalink.face_voice.feature_arrow`), best of ``--repeats``, as wall seconds and
CPU seconds of the process (all threads), checks that both give the same float32 bits and
labels, and prints MB/s and the speed-up.

Example: ``python scripts/bench_fame_parse.py --rows 2000`` (``--signed`` for values of both signs)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fame_loading import write_csv  # noqa: E402

from modalink.face_voice.feature_arrow import arrow_available  # noqa: E402
from modalink.face_voice.feature_csv import read_feature_csv  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall and CPU seconds of ``repeats`` calls, and the last result."""
    best_wall = best_cpu = float("inf")
    out = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--rows", type=int, default=2000, help="CSV rows (default 2000)")
    ap.add_argument("--dim", type=int, default=4096, help="feature columns (default 4096, + 1 label column)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per reader, best kept (default 2)")
    ap.add_argument("--signed", action="store_true",
                    help="values of both signs, like speaker embeddings (default: non-negative, like VGGFace fc7)")
    ap.add_argument("--workdir", type=Path, default=None, help="folder for the CSV (default: temporary)")
    args = ap.parse_args(argv)
    if not arrow_available():
        print("pyarrow is not installed: nothing to compare (pip install pyarrow)")
        return 1
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_fame_parse_"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "faces_train.csv"
    try:
        write_csv(csv, args.rows, args.dim, signed=args.signed)
        mb = csv.stat().st_size / 1e6
        print(f"{csv.name}: {args.rows} rows x {args.dim + 1} columns, {mb:.1f} MB; {os.cpu_count()} CPU cores; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        w_s, c_s, (f_s, l_s) = timed(lambda: read_feature_csv(csv, args.dim, True, engine="strict"), args.repeats)
        w_a, c_a, (f_a, l_a) = timed(lambda: read_feature_csv(csv, args.dim, True), args.repeats)
        same = f_s.view(np.uint32).tobytes() == f_a.view(np.uint32).tobytes() and np.array_equal(l_s, l_a)
        print("\n| reader | wall s | CPU s | MB/s (wall) | speed-up (wall) | speed-up (CPU) |\n|---|---|---|---|---|---|")
        print(f"| strict (loadtxt) | {w_s:.2f} | {c_s:.2f} | {mb / w_s:.1f} | 1.0x | 1.0x |")
        print(f"| pyarrow (default) | {w_a:.2f} | {c_a:.2f} | {mb / w_a:.1f} | {w_s / w_a:.1f}x | {c_s / c_a:.1f}x |")
        print(f"\nbit-identical float32 and labels: {'yes' if same else 'NO'}")
        return 0 if same else 2
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
