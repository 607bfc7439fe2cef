#!/usr/bin/env python
"""Benchmark data-parallel extraction: ``recipes/fame/prepare.py`` with 1 and with N processes
(``accelerate launch``, CPU processes on a CPU-only machine, one GPU per process on a GPU one).

Writes a raw MAV-Celeb v1-like layout of real photos (scikit-image) and speech-like audio (the
one of ``scripts/device_check.py``), then runs prepare.py (``--random-weights --offline``) on it
once per process count, each into a fresh ``--output``, and prints the files embedded per
second: over the extraction itself (``seconds`` of ``summary.json``: from the scan to the last
CSV, start-up and model building excluded) and over the whole command. On the CPU each process
gets ``cores / N`` torch threads (``OMP_NUM_THREADS``; ``--threads`` to fix it), so the runs use
the same cores.

    python scripts/bench_extraction.py                       # 1 and 2 processes, default encoders
    python scripts/bench_extraction.py --ids 2 --clips 3 --tiny --processes 1,2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the test-sized encoders (tests/recipes/test_fame_prepare.py): a plumbing-speed figure, not a model's
TINY = ["--face-arg", "image_size=80", "--voice-arg", "channels=[16,16,16,16,48]", "--voice-arg",
        "attention_channels=8", "--voice-arg", "se_channels=8"]
ACCELERATE_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_CPU
num_machines: 1
num_processes: {n}
machine_rank: 0
mixed_precision: 'no'
use_cpu: true
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(n: int, work: Path, argv: list[str]) -> list[str]:
    """prepare.py with ``argv`` in ``n`` processes (a temporary accelerate config, never the user's)."""
    script = [str(ROOT / "recipes" / "fame" / "prepare.py"), *argv]
    if n == 1:
        return [sys.executable, *script]
    cfg = work / f"accelerate_{n}.yaml"
    cfg.write_text(ACCELERATE_CONFIG.format(n=n))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--multi_gpu",
            "--num_processes", str(n), "--num_machines", "1", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), *script]


def run(n: int, raw: Path, work: Path, args: argparse.Namespace, k: int = 0) -> dict[str, Any]:
    out = work / f"feats_{k}_{n}"  # a fresh output (and cache) per run
    argv = ["--raw-root", str(raw), "--ver", "v1", "--output", str(out), "--run-dir", str(out / "run"),
            "--random-weights", "--offline", "--device", args.device, "--workers", str(args.workers),
            "--batch-size", str(args.batch_size), *(TINY if args.tiny else [])]
    threads = args.threads or max(1, (os.cpu_count() or 1) // n)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    res = subprocess.run(command(n, work, argv), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=args.timeout)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stderr[-3000:], file=sys.stderr)
        return {"processes": n, "rc": res.returncode}
    summary = json.loads((out / "run" / "summary.json").read_text())
    files = sum(v["files"] for v in summary["extraction"].values())
    return {"processes": n, "rc": 0, "threads_each": threads, "files": files, "extract_s": summary["seconds"],
            "files_per_s": round(files / summary["seconds"], 2), "wall_s": round(wall, 1),
            "files_per_s_wall": round(files / wall, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ids", type=int, default=4, help="training identities (x 2 languages)")
    p.add_argument("--clips", type=int, default=4, help="face images and voice clips per identity and language")
    p.add_argument("--test", type=int, default=4, help="test pairs per language")
    p.add_argument("--processes", default="1,2", help="comma-separated process counts")
    p.add_argument("--device", default="cpu", help="prepare.py --device (auto: a GPU per process when there are)")
    p.add_argument("--workers", type=int, default=0, help="prepare.py --workers (per process)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads per process (OMP_NUM_THREADS; 0: the cores divided by the process count)")
    p.add_argument("--tiny", action="store_true", help="the test-sized encoders instead of the default ones")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--work", help="folder for the raw layout and the outputs (default: a temporary one, removed)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    from device_check import write_raw_layout

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_extraction_"))
    try:
        raw = work / "raw"
        counts = write_raw_layout(raw, args.ids, args.clips, args.test)
        print(f"raw layout: {counts['faces']} face images, {counts['voices']} voice clips ({raw})", flush=True)
        rows = []
        for k, n in enumerate(int(x) for x in args.processes.split(",")):
            rows.append(run(n, raw, work, args, k))
            print(json.dumps(rows[-1]), flush=True)
        print("\n| processes | files | extraction s | files/s | files/s (whole command) |")
        print("|---|---|---|---|---|")
        for r in rows:
            if r["rc"] == 0:
                print(f"| {r['processes']} | {r['files']} | {r['extract_s']} | {r['files_per_s']} | "
                      f"{r['files_per_s_wall']} |")
            else:
                print(f"| {r['processes']} | failed (exit {r['rc']}) | | | |")
        return 0 if all(r["rc"] == 0 for r in rows) else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
