#!/usr/bin/env python
"""Benchmark the one embedding-extraction-and-cache pipeline on a growing image folder.

Writes ``--images`` small RGB images (blocks of colour and stripes), then times, with a real
encoder of the registry (``pixel-stats`` by default; any image encoder works, e.g.
``timm/resnet18`` with random weights):

* **cold**: the first extraction (every row encoded, shards written, array + manifest);
* **hit**: the same key again (the manifest checks and the array's content digest only);
* **grown**: ``--new`` images added and ``--touched`` images rewritten: only those are encoded,
  every other row is copied from the earlier cache (row identity = path, size, mtime);
* **full rebuild**: the same grown folder with ``force=True`` — what a cache without row
  identities (the previous FAME/SRMM behaviour on any change) would cost.

Example: ``python scripts/bench_embedding_cache.py --images 2000 --new 100 --touched 50``
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from modalink.classification.image_features import create_image_features
from modalink.data.embedding_cache import CacheKey, EmbeddingCache, file_row_ids


def write_images(folder: Path, start: int, count: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + count):
        x = np.zeros((48, 48, 3), np.uint8)
        x[:] = rng.integers(0, 255, 3)
        x[rng.integers(0, 40):, :: rng.integers(2, 6)] = rng.integers(0, 255, 3)
        p = folder / f"img_{i:06d}.png"
        Image.fromarray(x).save(p)
        out.append(p)
    return out


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000, help="images at first (default 2000)")
    ap.add_argument("--new", type=int, default=100, help="images added before the grown run (default 100)")
    ap.add_argument("--touched", type=int, default=50, help="images rewritten before the grown run (default 50)")
    ap.add_argument("--encoder", default="pixel-stats", help="registered image encoder (default pixel-stats)")
    ap.add_argument("--shard-size", type=int, default=256, help="rows per shard (default 256)")
    ap.add_argument("--workdir", type=Path, default=None, help="folder to use (default: a temporary one, removed)")
    a = ap.parse_args(argv)

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        images = work / "images"
        paths = write_images(images, 0, a.images, seed=0)
        enc = create_image_features(a.encoder, pretrained=False)
        cache = EmbeddingCache(work / "cache")

        def run(force: bool = False) -> tuple[np.ndarray, dict]:
            key = CacheKey.for_rows("train", "image", enc.config(), file_row_ids(paths, images))
            arr, _ = cache.get_or_build(key, lambda rows: enc.encode_paths([paths[r] for r in rows]),
                                        shard_size=a.shard_size, progress=False, force=force)
            return np.asarray(arr), cache.read_manifest(key)["last_build"]

        rows = []
        t, (arr, stats) = timed(run)
        rows.append(("cold", len(paths), t, stats))
        t, _ = timed(run)
        rows.append(("hit", len(paths), t, {"copied": 0, "encoded": 0}))
        paths += write_images(images, a.images, a.new, seed=1)
        time.sleep(0.01)  # a new mtime for the rewritten files
        write_images(images, 0, a.touched, seed=2)
        t_grown, (grown, stats) = timed(run)
        rows.append(("grown", len(paths), t_grown, stats))
        t_full, (full, stats_full) = timed(lambda: run(force=True))
        rows.append(("full rebuild", len(paths), t_full, stats_full))
        assert np.array_equal(grown, full), "incremental and full rebuild differ"

        print(f"encoder {a.encoder} ({enc.dim}-D), shard {a.shard_size}; {a.new} new + {a.touched} rewritten images")
        print("| run | images | encoded | copied | wall s | images/s |")
        print("|---|---|---|---|---|---|")
        for name, n, t, st in rows:
            print(f"| {name} | {n} | {st.get('encoded', 0)} | {st.get('copied', 0)} | {t:.2f} | {n / t:.0f} |")
        print(f"grown vs full rebuild: {t_full / t_grown:.1f}x faster, identical arrays")
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
