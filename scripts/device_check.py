#!/usr/bin/env python
"""One prepared accelerator check: FAME training and raw-media extraction on 1 GPU, fp32 and bf16.

Meant for a lent GPU machine, run once in one go (every stage has its own time limit, writes its
figures as soon as it ends, and a failed stage does not stop the next one):

1. ``env`` — torch / CUDA / GPU name, CPU count.
2. ``train_step`` — training-step throughput (pairs/s: forward + backward + AdamW step of the
   FAME objective on 4096-D faces / 512-D voices already on the device) of ``fop``,
   ``fop_enhanced`` (the default) and ``sbnet_stems``, fp32 and bf16 autocast, a few batch sizes.
3. ``fame_default`` — the main job exactly as the README gives it (``python recipes/fame/train.py``,
   synthetic data), with ``engine.mixed_precision=no`` and ``=bf16``: wall time and mean EER.
4. ``encoders`` — embedding throughput of the two default raw-media encoders at their real sizes
   (random weights; FaceNet InceptionResnetV1 on 160 px crops, ECAPA-TDNN on 4 s clips), fp32 and
   bf16 autocast, with the largest relative deviation of bf16 from fp32.
5. ``extraction`` — ``recipes/fame/prepare.py`` end to end (``--random-weights --offline``) on a
   raw MAV-Celeb-like layout of real photos (scikit-image) and speech-like audio written here,
   on the GPU (1 process, and ``--extract-processes`` processes sharing it) and on the machine's
   CPU: files/s.
6. ``recsys`` — the item tower embedding a catalogue kept in host memory (batches streamed to
   the GPU) and the exact top-k search on the GPU, each against the CPU: items/s, queries/s, and
   whether the GPU gives the same vectors (max abs difference) and the same items.

    python scripts/device_check.py --out results/device           # everything (~6 min on an H200)
    python scripts/device_check.py --stages env,train_step --out /tmp/x

Writes ``<out>/device_check.json`` (all figures) and ``<out>/device_check.md`` (tables).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("env", "train_step", "fame_default", "encoders", "extraction", "recsys")


def _now() -> float:
    return time.perf_counter()


def stage_env(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    return info


def _sync(device: Any) -> None:  # encoders stage
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def stage_train_step(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_train_step import bench

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for name in ("fop", "fop_enhanced", "sbnet_stems"):
        for precision in ("fp32", "bf16"):
            for batch in args.batch_sizes:
                pairs_per_s = bench(name, batch, args.steps, device=device, precision=precision)
                rows.append({"model": name, "precision": precision, "batch": batch, "pairs_per_s": round(pairs_per_s, 1),
                             "ms_per_step": round(1000 * batch / pairs_per_s, 3)})
                print(f"  train_step {rows[-1]}", flush=True)
    return {"device": device, "steps": args.steps, "rows": rows}


def _run(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> tuple[int, float]:
    t0 = _now()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout,
                                env={**os.environ, **(env or {})}).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, round(_now() - t0, 1)


def stage_fame_default(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work) / "fame"
    rows = []
    for precision in ("no", "bf16"):
        out = work / f"run_{precision}"
        cmd = [sys.executable, "recipes/fame/train.py", "--output-dir", str(out), f"engine.mixed_precision={precision}"]
        rc, wall = _run(cmd, Path(args.out) / f"fame_{precision}.log", timeout=args.fame_timeout)
        row: dict[str, Any] = {"mixed_precision": precision, "rc": rc, "wall_s": wall}
        results = out / "results.json"
        if results.is_file():
            res = json.loads(results.read_text())
            row["mean_eer"] = res.get("mean_eer", res.get("mean"))
            row["results"] = res
        rows.append(row)
        print(f"  fame_default {precision}: rc {rc}, {wall} s, mean EER {row.get('mean_eer')}", flush=True)
    return {"command": "python recipes/fame/train.py --output-dir RUN engine.mixed_precision=<no|bf16>", "rows": rows}


def stage_encoders(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from modalink.encoders import create_encoder

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    face = create_encoder("facenet_vggface2", pretrained=False).to(device).eval()
    voice = create_encoder("ecapa_voxceleb", pretrained=False).to(device).eval()
    g = torch.Generator().manual_seed(0)
    cases: list[tuple[str, torch.nn.Module, Callable[[int], tuple], int]] = [
        ("facenet InceptionResnetV1 (160 px crops)", face,
         lambda b: (torch.rand(b, 3, 160, 160, generator=g).to(device) * 2 - 1,), args.face_batch),
        ("ECAPA-TDNN (4 s clips, 16 kHz)", voice,
         lambda b: (0.1 * torch.randn(b, 64000, generator=g).to(device),), args.voice_batch),
    ]
    for label, enc, make, batch in cases:
        x = make(batch)
        ref = None
        for precision in ("fp32", "bf16"):
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                for _ in range(2):
                    y = enc(*x)
                _sync(device)
                t0 = _now()
                for _ in range(args.encoder_iters):
                    y = enc(*x)
                _sync(device)
                dt = _now() - t0
            y = y.float()
            dev = None
            if ref is None:
                ref = y
            else:
                dev = float(((y - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-12)).max())
            rows.append({"encoder": label, "precision": precision, "batch": batch,
                         "items_per_s": round(batch * args.encoder_iters / dt, 1), "max_rel_dev_vs_fp32": dev})
            print(f"  encoders {rows[-1]}", flush=True)
    return {"device": str(device), "rows": rows}


def write_raw_layout(root: Path, n_ids: int, clips: int, n_test: int, seed: int = 0) -> dict[str, int]:
    """A raw MAV-Celeb v1-like layout: real photos (scikit-image; some without a face) and
    speech-like audio (harmonic voiced segments with pauses, 2–6 s, 16 and 44.1 kHz)."""
    import numpy as np
    import soundfile as sf
    from PIL import Image
    from skimage import data as skd

    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(skd.astronaut()), Image.fromarray(skd.camera()).convert("RGB"),
              Image.fromarray(skd.chelsea()), Image.fromarray(skd.coffee())]

    def photo(path: Path) -> None:
        img = photos[int(rng.integers(len(photos)))]
        w, h = img.size
        s = float(rng.uniform(0.7, 1.0))
        x0, y0 = int(rng.integers(0, int(w * (1 - s)) + 1)), int(rng.integers(0, int(h * (1 - s)) + 1))
        crop = img.crop((x0, y0, x0 + int(w * s), y0 + int(h * s))).resize((int(rng.integers(180, 320)),) * 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)

    def speech(path: Path) -> None:
        sr = 44100 if rng.random() < 0.25 else 16000
        n = int(sr * rng.uniform(2.0, 6.0))
        t = np.arange(n) / sr
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum((0.3 / k) * np.sin(k * phase) for k in range(1, 8))
        envelope = (np.sin(2 * np.pi * rng.uniform(2, 5) * t) > -0.3).astype(np.float32)
        x = (x * envelope + 0.01 * rng.standard_normal(n)).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x, sr)

    train, test = root / "mavceleb_v1_train", root / "mavceleb_v1_test"
    counts = {"faces": 0, "voices": 0}
    for i in range(n_ids):
        for lang in ("English", "Urdu"):
            for c in range(clips):
                photo(train / "faces" / f"id{i + 1:04d}" / lang / "vid1" / f"{c:05d}.jpg")
                speech(train / "voices" / f"id{i + 1:04d}" / lang / "vid1" / f"{c:05d}.wav")
                counts["faces"] += 1
                counts["voices"] += 1
    for lang in ("English", "Urdu"):
        lines = []
        for k in range(n_test):
            photo(test / "faces" / lang / f"{k:05d}.jpg")
            speech(test / "voices" / lang / f"{k:05d}.wav")
            counts["faces"] += 1
            counts["voices"] += 1
            lines.append(f"{lang[:2]}{k:05d} voices/{lang}/{k:05d}.wav faces/{lang}/{k:05d}.jpg")
        (root / f"{lang}_test.txt").write_text("\n".join(lines) + "\n")
    return counts


def stage_extraction(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    runs = []
    if torch.cuda.is_available():
        runs.append(("cuda", args.raw_ids, args.raw_clips, args.raw_test))
        if args.extract_processes > 1:
            runs.append((f"cuda x{args.extract_processes} processes", args.raw_ids, args.raw_clips, args.raw_test))
    # the CPU gets a smaller layout (same files per identity) so the stage stays short
    runs.append(("cpu", max(1, args.raw_ids // 5), args.raw_clips, max(1, args.raw_test // 5)))
    rows = []
    for device, n_ids, clips, n_test in runs:
        tag = device.split()[0] + (f"_x{args.extract_processes}" if "processes" in device else "")
        raw = Path(args.work) / f"raw_{device.split()[0]}"
        t0 = _now()
        if not raw.is_dir():
            write_raw_layout(raw, n_ids, clips, n_test)
        n_files = sum(1 for p in raw.rglob("*") if p.suffix in (".jpg", ".wav"))
        print(f"  extraction: raw layout of {n_files} files ready in {_now() - t0:.1f} s", flush=True)
        out = Path(args.work) / f"feats_{tag}"
        launcher = [sys.executable]
        if "processes" in device:
            launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                        str(args.extract_processes), "--num_machines", "1", "--dynamo_backend", "no",
                        "--mixed_precision", "no"]
        cmd = [*launcher, "recipes/fame/prepare.py", "--raw-root", str(raw), "--ver", "v1", "--output", str(out),
               "--random-weights", "--offline", "--device", device.split()[0],
               "--workers", str(args.workers // (args.extract_processes if "processes" in device else 1))]
        rc, wall = _run(cmd, Path(args.out) / f"extraction_{tag}.log", timeout=args.extract_timeout)
        rows.append({"device": device, "rc": rc, "wall_s": wall, "files": n_files,
                     "files_per_s": round(n_files / wall, 1) if rc == 0 else None})
        print(f"  extraction {rows[-1]}", flush=True)
    return {"workers": args.workers, "note": "wall time of the whole command (start-up and model building included)",
            "rows": rows}


def stage_recsys(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from modalink.recsys import Bags, InnerProductIndex, ItemFeatures, ItemTower

    n, n_queries, k = args.recsys_items, args.recsys_queries, 10
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    feats = ItemFeatures(n, {"text": torch.randn(n, 384, generator=g), "image": torch.randn(n, 512, generator=g)},
                         {"genres": Bags.from_lists([rng.choice(20, size=rng.integers(1, 4), replace=False)
                                                     for _ in range(n)], 20)})
    torch.manual_seed(0)
    tower = ItemTower.from_features(feats, embed_dim=64).eval()
    rows = []
    vecs: dict[str, Any] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        tower.to(device)
        dev = torch.device(device)
        tower.embed_catalogue(feats, batch_size=4096)  # warm-up
        _sync(dev)
        t0 = _now()
        v = tower.embed_catalogue(feats, batch_size=4096)
        _sync(dev)
        embed_s = _now() - t0
        vecs[device] = v.cpu()
        users = torch.nn.functional.normalize(torch.randn(n_queries, 64, generator=torch.Generator().manual_seed(1)), dim=1)
        index = InnerProductIndex(vecs["cpu"], use_faiss=False, device=device)
        index.search(users[:16], k)
        t0 = _now()
        _, pos = index.search(users, k)
        search_s = _now() - t0
        vecs[f"{device}_pos"] = pos
        row = {"device": device, "items": n, "embed_items_per_s": round(n / embed_s, 1), "queries": n_queries,
               "search_queries_per_s": round(n_queries / search_s, 1), "search_block": index.chunk_size}
        if device != "cpu":
            row["max_abs_diff_vs_cpu"] = float((vecs[device] - vecs["cpu"]).abs().max())
            row["same_items_as_cpu"] = float((vecs[f"{device}_pos"] == vecs["cpu_pos"]).all(axis=1).mean())
        rows.append(row)
        print(f"  recsys {row}", flush=True)
    return {"rows": rows}


def markdown(results: dict[str, Any]) -> str:
    lines = ["# device check", ""]
    env = results.get("env", {})
    lines.append(f"{env.get('gpu', 'no GPU')}, torch {env.get('torch')}, CUDA {env.get('cuda')}, {env.get('cpus')} CPUs")
    for stage, key_cols in (("train_step", ("model", "precision", "batch", "pairs_per_s", "ms_per_step")),
                            ("fame_default", ("mixed_precision", "rc", "wall_s", "mean_eer")),
                            ("encoders", ("encoder", "precision", "batch", "items_per_s", "max_rel_dev_vs_fp32")),
                            ("extraction", ("device", "rc", "wall_s", "files", "files_per_s")),
                            ("recsys", ("device", "items", "embed_items_per_s", "queries", "search_queries_per_s",
                                        "search_block", "max_abs_diff_vs_cpu", "same_items_as_cpu"))):
        block = results.get(stage)
        if not block:
            continue
        lines += ["", f"## {stage}", ""]
        if "error" in block:
            lines.append(f"failed: {block['error']}")
            continue
        lines.append("| " + " | ".join(key_cols) + " |")
        lines.append("|" + "---|" * len(key_cols))
        for row in block.get("rows", []):
            lines.append("| " + " | ".join(str(row.get(k)) for k in key_cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/device_check", help="folder for device_check.{json,md} and logs")
    p.add_argument("--work", default=None, help="scratch folder (default: OUT/work)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per case")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024, 8192])
    p.add_argument("--encoder-iters", type=int, default=10)
    p.add_argument("--face-batch", type=int, default=256, help="face crops per encoder batch")
    p.add_argument("--voice-batch", type=int, default=64, help="4 s clips per encoder batch")
    p.add_argument("--raw-ids", type=int, default=20, help="training identities of the raw layout")
    p.add_argument("--raw-clips", type=int, default=10, help="clips per identity and language")
    p.add_argument("--raw-test", type=int, default=50, help="test pairs per language")
    p.add_argument("--workers", type=int, default=8, help="prepare.py data-loading workers")
    p.add_argument("--extract-processes", type=int, default=2, help="processes sharing the GPU in a second extraction run")
    p.add_argument("--recsys-items", type=int, default=200_000)
    p.add_argument("--recsys-queries", type=int, default=10_000)
    p.add_argument("--fame-timeout", type=float, default=240)
    p.add_argument("--extract-timeout", type=float, default=180)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.work = args.work or str(out / "work")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    results: dict[str, Any] = {}
    for name in [s.strip() for s in args.stages.split(",") if s.strip()]:
        if name not in STAGES:
            p.error(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        print(f"[{name}]", flush=True)
        t0 = _now()
        try:
            results[name] = globals()[f"stage_{name}"](args)
        except Exception as exc:  # noqa: BLE001 - one stage's failure must not stop the others
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        results[name]["stage_s"] = round(_now() - t0, 1)
        (out / "device_check.json").write_text(json.dumps(results, indent=1))
        (out / "device_check.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
