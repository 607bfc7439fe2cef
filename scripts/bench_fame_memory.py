#!/usr/bin/env python
"""Peak memory (RSS) of the default FAME training job against the size of its features.

For each ``--scales`` factor s, a synthetic MAV-Celeb-like v3 set with s × the default rows
(``rows_per_id = 40·s`` training rows per identity, ``n_test_pairs = 1000·s`` pairs per test
set) is generated once under ``--data-dir``, then ``recipes/fame/train.py --feats-root`` runs
twice in fresh run folders, each as its own process whose peak RSS is read with ``os.wait4``:

* **cold** — the feature cache is removed first: the job parses every CSV and writes the cache;
* **warm** — the cache is there: the job reads the ``.npy`` files.

Memory does not depend on the number of epochs, so the job runs with ``engine.epochs=1``
(``--epochs``) and otherwise the default config. "features" is the float32 size of every
feature array the job reads (both languages' training files and the four test sets: the sum
of the cache's ``.npy`` files); "torch" is the peak RSS of a process that imports what
train.py imports and builds nothing. The last columns give (peak − torch) / features and
whether peak ≤ 1.1 × features + torch.

    python scripts/bench_fame_memory.py --scales 1 4 16 --data-dir /tmp/fame_mem
    python scripts/bench_fame_memory.py --repo /path/to/other/checkout   # the same table for other code

Prints a markdown table (``--json`` writes it as JSON too).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORTS = ("import torch, accelerate, numpy; import modalink.engine; "
           "import modalink.face_voice.config, modalink.face_voice.scoring, modalink.face_voice.features")


def run_peak(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """``(peak RSS bytes, wall s, CPU s)`` of ``cmd`` (and the children it waited for)."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return ru.ru_maxrss * 1024, time.perf_counter() - t0, ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4], help="data size factors (default 1 4)")
    ap.add_argument("--data-dir", type=Path, required=True, help="folder for the synthetic sets (kept, reused)")
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose train.py and modalink to measure")
    ap.add_argument("--epochs", type=int, default=1, help="engine.epochs of the job (default 1)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    repo = args.repo.resolve()
    env = {**os.environ, "PYTHONPATH": str(repo)}
    sys.path[:0] = [str(repo)]
    from modalink.face_voice import generate_synthetic_fame

    args.data_dir.mkdir(parents=True, exist_ok=True)
    torch_rss, _, _ = run_peak([sys.executable, "-c", IMPORTS], env, args.data_dir / "imports.log")
    rows = []
    for s in args.scales:
        root = args.data_dir / f"x{s}"
        t0 = time.perf_counter()
        generate_synthetic_fame(root, "v3", seed=0, rows_per_id=40 * s, n_test_pairs=1000 * s)
        print(f"x{s}: synthetic set in {root} ({time.perf_counter() - t0:.0f} s)", flush=True)
        cache = root / ".modalink_cache"
        for kind in ("cold", "warm"):
            if kind == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            out = args.data_dir / f"run_x{s}_{kind}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, str(repo / "recipes" / "fame" / "train.py"), "--feats-root", str(root),
                   "--output-dir", str(out), f"engine.epochs={args.epochs}"]
            peak, wall, cpu = run_peak(cmd, env, args.data_dir / f"run_x{s}_{kind}.log")
            feats = sum(p.stat().st_size for p in cache.glob("*.npy") if not p.name.endswith(".labels.npy"))
            row = {"scale": s, "run": kind, "features_gb": feats / 1e9, "peak_gb": peak / 1e9,
                   "torch_gb": torch_rss / 1e9, "per_feature": (peak - torch_rss) / feats,
                   "within_goal": peak <= 1.1 * feats + torch_rss, "wall_s": wall, "cpu_s": cpu}
            rows.append(row)
            print(f"x{s} {kind}: peak {peak / 1e9:.2f} GB, features {feats / 1e9:.2f} GB "
                  f"({wall:.0f} s wall, {cpu:.0f} CPU-s)", flush=True)
    print(f"\ncode: {repo}; torch baseline (imports only): {torch_rss / 1e9:.2f} GB\n")
    print("| scale | run | features (float32) GB | peak RSS GB | (peak − torch) / features | "
          "≤ 1.1 × features + torch | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scale']}x | {r['run']} | {r['features_gb']:.2f} | {r['peak_gb']:.2f} | "
              f"{r['per_feature']:.2f} | {'yes' if r['within_goal'] else 'no'} | {r['cpu_s']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"repo": str(repo), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
