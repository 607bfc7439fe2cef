#!/usr/bin/env python
"""What the content digest in a raw file's cache identity costs, next to embedding the file.

Writes ``--files`` voice clips (``--seconds`` of 16 kHz 16-bit mono wav, like MAV-Celeb's
utterances) and as many 160 px JPEG face frames, then times per file, on the page-cached files:

* ``file_row_ids(..., content=False)``: path, size, mtime (stat only);
* ``file_row_ids(...)``: the same plus a BLAKE2b digest of the file's bytes (the cache identity);
* embedding a batch of ``--embed`` of them with the default encoders (``ecapa_voxceleb`` and
  ``facenet_vggface2`` with MTCNN, random weights: the same work as real weights) on the CPU.

Example: ``python scripts/bench_file_row_ids.py --files 500 --seconds 8 --embed 32``
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _per_file_ms(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=500, help="clips and frames each (default 500)")
    ap.add_argument("--seconds", type=float, default=8.0, help="clip length (default 8 s)")
    ap.add_argument("--embed", type=int, default=32, help="files embedded for the comparison (default 32; 0: none)")
    a = ap.parse_args(argv)

    import soundfile as sf
    from PIL import Image

    from modalink.data.embedding_cache import file_row_ids

    work = Path(tempfile.mkdtemp(prefix="bench_row_ids_"))
    try:
        rng = np.random.default_rng(0)
        wavs, jpgs = [], []
        for i in range(a.files):
            w = work / f"{i:05d}.wav"
            sf.write(w, 0.1 * rng.standard_normal(int(16000 * a.seconds)), 16000, subtype="PCM_16")
            j = work / f"{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(j, quality=90)
            wavs.append(w)
            jpgs.append(j)
        rows = []
        for kind, paths in (("voice clip", wavs), ("face frame", jpgs)):
            size = sum(p.stat().st_size for p in paths) / len(paths) / 1024
            stat_ms = _per_file_ms(lambda: file_row_ids(paths, work, content=False), len(paths))
            digest_ms = _per_file_ms(lambda: file_row_ids(paths, work), len(paths))
            embed_ms = float("nan")
            if a.embed > 0:
                import torch

                from modalink.encoders import create_encoder
                from modalink.encoders.embed_files import embed_files

                torch.manual_seed(0)
                enc = create_encoder("ecapa_voxceleb" if kind == "voice clip" else "facenet_vggface2",
                                     pretrained=False)
                part = [p.name for p in paths[: a.embed]]
                embed_ms = _per_file_ms(
                    lambda: list(embed_files(enc, part, root=work, batch_size=a.embed, progress=False)), len(part),
                    repeats=1)
            rows.append((kind, size, stat_ms, digest_ms, embed_ms))
        print(f"{a.files} files each; best of 3 (embedding: 1 run of {a.embed}, {os.cpu_count()} CPUs)")
        print("| file | KiB | stat id ms/file | + digest ms/file | embed ms/file | digest / embed |")
        print("|---|---|---|---|---|---|")
        for kind, size, s, d, e in rows:
            print(f"| {kind} | {size:.0f} | {s:.3f} | {d:.3f} | {e:.1f} | {100 * (d - s) / e:.2f} % |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
