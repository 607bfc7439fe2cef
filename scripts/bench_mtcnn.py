#!/usr/bin/env python
"""Benchmark MTCNN face cropping: modalink's batched detector vs a per-file loop.

Real photos shipped with scikit-image (``astronaut`` and ``camera`` hold a face, ``chelsea``
and ``coffee`` do not) are cut into ``--images`` same-size frames (random crops that keep the
face, flips, resized to ``--size`` px), so a batch mixes face and no-face frames as MAV-Celeb
frames do. Timed, with facenet-pytorch's real MTCNN weights (shipped in its wheel):

* ``loop``        — ``mtcnn(image)`` one file at a time (one image per call);
* ``batched``     — :class:`modalink.encoders.MTCNNDetector` on batches of ``--batch-size``
                    (batched detection, per-image selection and crop);
* ``upstream``    — facenet-pytorch's own batched ``mtcnn(images)`` on the face frames only
                    (it crashes on batches that mix face and no-face frames), for reference,
                    beside ``batched_faces``: modalink's detector on those same frames.

Every batched crop is checked against the loop's crop of the same image (they must be equal).
The modes take turns batch by batch; throughput is images (and faces found) per wall-clock
second; CPU seconds are printed too (the fairer figure on a machine shared with other jobs). Example::

    python scripts/bench_mtcnn.py --images 256 --batch-size 32 --size 224 --threads 1
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm


from modalink.encoders.base import resolve_device
from modalink.encoders.face import MTCNNDetector
from modalink.io import atomic_write_text

FACE_PHOTOS = ("astronaut", "camera")
NO_FACE_PHOTOS = ("chelsea", "coffee")


def make_frames(n: int, size: int, seed: int = 0) -> tuple[list[Image.Image], list[bool]]:
    """``n`` same-size RGB frames cut from scikit-image's photos; second list: from a face photo."""
    from skimage import data

    photos = {name: Image.fromarray(getattr(data, name)()).convert("RGB")
              for name in (*FACE_PHOTOS, *NO_FACE_PHOTOS)}
    names = [FACE_PHOTOS[i % 2] if i % 4 < 2 else NO_FACE_PHOTOS[i % 2] for i in range(n)]
    rng = np.random.default_rng(seed)
    frames, has_face = [], []
    for name in names:
        im = photos[name]
        w, h = im.size
        side = int(min(w, h) * rng.uniform(0.8, 1.0))  # a crop of 80–100 % keeps the face inside
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        frame = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            frame = frame.transpose(Image.FLIP_LEFT_RIGHT)
        frames.append(frame)
        has_face.append(name in FACE_PHOTOS)
    return frames, has_face


def _batches(items: Sequence, size: int) -> list:
    return [items[s:s + size] for s in range(0, len(items), size)]


class Timer:
    """Wall-clock and CPU seconds accumulated over calls."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __call__(self, fn: Callable[[list[Image.Image]], list], chunk: list[Image.Image]) -> list:
        t0, c0 = time.perf_counter(), time.process_time()
        out = list(fn(chunk))
        self.wall += time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        return out


def same_crop(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a.float().cpu(), b.float().cpu())


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    frames, has_face = make_frames(args.images, args.size, args.seed)
    det = MTCNNDetector(image_size=160, device=device)
    mtcnn = det.mtcnn
    det([frames[0]])  # warm-up (allocations, kernel choice)
    results: dict = {"images": len(frames), "size": args.size, "batch_size": args.batch_size,
                     "threads": args.threads, "device": str(device), "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(), "modes": {}}

    def loop_fn(chunk: list[Image.Image]) -> list:
        with torch.no_grad():
            return [mtcnn(im) for im in chunk]

    def upstream_fn(chunk: list[Image.Image]) -> list:
        with torch.no_grad():
            return list(mtcnn(chunk))

    modes = {"loop": loop_fn, "batched": det}
    if not args.skip_upstream:
        modes["upstream"] = upstream_fn
        modes["batched_faces"] = det  # the same frames as upstream, for a like-for-like figure
    best: dict[str, Timer] = {}
    outputs: dict[str, list] = {}
    for rep in range(args.repeats):
        # the modes take turns batch by batch, so a busy moment of a shared machine hits all of them
        timers = {mode: Timer() for mode in modes}
        outs: dict[str, list] = {mode: [] for mode in modes}
        for chunk, flags in tqdm(list(zip(_batches(frames, args.batch_size), _batches(has_face, args.batch_size))),
                                 desc=f"repeat {rep + 1}/{args.repeats}", unit="batch", leave=False):
            for mode, fn in modes.items():
                # facenet-pytorch's batched call only survives batches without no-face frames
                imgs = [f for f, h in zip(chunk, flags) if h] if mode in ("upstream", "batched_faces") else chunk
                if imgs:
                    outs[mode].extend(timers[mode](fn, imgs))
        for mode, t in timers.items():
            if mode not in best or t.wall < best[mode].wall:
                best[mode], outputs[mode] = t, outs[mode]
    for mode, t in best.items():
        n = len(outputs[mode])
        faces = sum(o is not None for o in outputs[mode])
        results["modes"][mode] = {"images": n, "faces": faces, "seconds": round(t.wall, 3),
                                  "cpu_seconds": round(t.cpu, 3), "images_per_s": round(n / t.wall, 2),
                                  "faces_per_s": round(faces / t.wall, 2)}
    mismatches = sum(not same_crop(a, b) for a, b in zip(outputs["loop"], outputs["batched"]))
    results["batched_vs_loop_mismatches"] = mismatches
    results["speedup_batched_vs_loop"] = round(best["loop"].wall / best["batched"].wall, 2)
    return results


def format_table(r: dict) -> str:
    lines = [f"MTCNN on {r['images']} real-photo frames of {r['size']} px, batch {r['batch_size']}, "
             f"{r['threads']} thread(s), {r['device']} (torch {r['torch']})",
             "| mode | images | faces | wall s | CPU s | images/s | faces/s |", "|---|---|---|---|---|---|---|"]
    for mode, m in r["modes"].items():
        lines.append(f"| {mode} | {m['images']} | {m['faces']} | {m['seconds']} | {m['cpu_seconds']} | {m['images_per_s']} | "
                     f"{m['faces_per_s']} |")
    lines.append(f"batched vs loop: {r['speedup_batched_vs_loop']}x; crops that differ: "
                 f"{r['batched_vs_loop_mismatches']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=128, help="number of frames (half with a face)")
    p.add_argument("--size", type=int, default=224, help="frame side in pixels")
    p.add_argument("--batch-size", type=int, default=32, help="images per batched call (prepare.py's default)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=2, help="best of N")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-upstream", action="store_true", help="do not time facenet-pytorch's batched call")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
    except ValueError as e:  # e.g. an unavailable --device
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(results))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
