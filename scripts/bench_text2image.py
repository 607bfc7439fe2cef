#!/usr/bin/env python
"""Benchmark the vectorised Chameleon text → image encoder against the naive reference loop.

Generates Food-101-like titles from a fixed random vocabulary (Zipf-distributed words), then
measures texts/second for:

* ``naive``        — :func:`modalink.text.render.naive_text_to_image`, one text at a time,
                     per word and per pixel in Python (the baseline);
* ``vectorised``   — :class:`modalink.text.render.TextToImage` on batches (uint8 and float
                     outputs; with the word cache cold/disabled and warm; and float into a
                     reused output buffer).

CPU-time throughput is printed too: on a busy machine it is the fairer single-thread figure.
It also checks that both implementations agree pixel for pixel on the naive texts, and can
write the results as JSON. Example::

    python scripts/bench_text2image.py --n-texts 8192 --batch-size 256 --json bench.json
    python scripts/bench_text2image.py --image-size 64 --superpixel 4 --dim 48 --layout tiles --repeat
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


from modalink.io import atomic_write_text
from modalink.text.word_vectors import WordVectors
from modalink.text.render import TextToImage, naive_text_to_image


def make_texts(n: int, words_per_text: int, vocab_size: int, seed: int) -> list[str]:
    """``n`` texts of about ``words_per_text`` words drawn Zipf-like from a synthetic vocabulary."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:05d}" for i in range(vocab_size)])
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    lengths = rng.integers(max(1, words_per_text // 2), words_per_text * 3 // 2 + 1, size=n)
    words = rng.choice(vocab, size=int(lengths.sum()), p=p)
    out, start = [], 0
    for k in lengths:
        out.append(" ".join(words[start:start + k]))
        start += k
    return out


def time_vectorised(enc: TextToImage, texts: list[str], batch: int, reuse: bool,
                    desc: str) -> tuple[float, float]:
    """(texts per wall-clock second, texts per CPU second of this process)."""
    buf = None
    if reuse:
        buf = torch.empty((batch, 3, enc.grid.height, enc.grid.width), dtype=enc._dtype())
    t0, c0 = time.perf_counter(), time.process_time()
    for i in tqdm(range(0, len(texts), batch), desc=desc, leave=False):
        chunk = texts[i:i + batch]
        out = buf if (buf is not None and len(chunk) == batch) else None
        enc.encode_text(chunk, out=out)
    return len(texts) / (time.perf_counter() - t0), len(texts) / (time.process_time() - c0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--n-texts", type=int, default=4096, help="texts for the vectorised runs")
    ap.add_argument("--naive-texts", type=int, default=64, help="texts for the (slow) naive baseline")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--words-per-text", type=int, default=12, help="mean words per text (Food-101 titles: ~10)")
    ap.add_argument("--vocab-size", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=300, help="word-vector dimension (hashed vectors)")
    ap.add_argument("--image-size", type=int, default=227)
    ap.add_argument("--superpixel", type=int, default=3)
    ap.add_argument("--layout", choices=("flow", "tiles"), default="flow", help="word layout on the canvas")
    ap.add_argument("--word-gap", type=int, default=0, help="blank cells between word tiles (tiles layout)")
    ap.add_argument("--repeat", action="store_true", help="repeat the words to fill the canvas")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    texts = make_texts(args.n_texts, args.words_per_text, args.vocab_size, args.seed)
    vectors = WordVectors.hashed(args.dim, seed=args.seed)
    kw = dict(image_size=args.image_size, superpixel=args.superpixel, layout=args.layout, word_gap=args.word_gap,
              repeat=args.repeat)
    enc_u8 = TextToImage(vectors, output="uint8", **kw)
    print(enc_u8)

    # naive baseline + equality check
    naive_texts = texts[: args.naive_texts]
    t0, c0 = time.perf_counter(), time.process_time()
    naive = [naive_text_to_image(t, vectors, height=args.image_size, width=args.image_size,
                                 superpixel=args.superpixel, max_words=enc_u8.max_words,
                                 value_range=enc_u8.value_range, layout=args.layout, word_gap=args.word_gap,
                                 repeat=args.repeat)
             for t in tqdm(naive_texts, desc="naive", leave=False)]
    naive_tps = len(naive_texts) / (time.perf_counter() - t0)
    naive_cpu = len(naive_texts) / (time.process_time() - c0)
    same = bool(np.array_equal(np.stack(naive), enc_u8.encode_text(naive_texts).numpy()))

    results = {"naive": (naive_tps, naive_cpu)}
    results["uint8_nocache"] = time_vectorised(TextToImage(vectors, output="uint8", cache_size=0, **kw),
                                               texts, args.batch_size, False, "uint8 no cache")
    warm = TextToImage(vectors, output="uint8", **kw)
    warm.encode_text(texts)  # fill the word cache
    results["uint8_warm"] = time_vectorised(warm, texts, args.batch_size, False, "uint8 warm")
    results["float_nocache"] = time_vectorised(TextToImage(vectors, output="float", cache_size=0, **kw),
                                               texts, args.batch_size, False, "float no cache")
    warm_f = TextToImage(vectors, output="float", **kw)
    warm_f.encode_text(texts[: args.batch_size * 4])
    results["float_warm"] = time_vectorised(warm_f, texts, args.batch_size, False, "float warm")
    results["float_warm_reused_buffer"] = time_vectorised(warm_f, texts, args.batch_size, True, "float reuse")

    report = {
        "device": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "max_words": enc_u8.max_words,
        "naive_equals_vectorised": same,
        "texts_per_second": {k: round(v[0], 1) for k, v in results.items()},
        "texts_per_cpu_second": {k: round(v[1], 1) for k, v in results.items()},
        "speedup_vs_naive": {k: round(v[0] / naive_tps, 1) for k, v in results.items() if k != "naive"},
    }
    print(f"pixel-for-pixel equal to naive on {len(naive_texts)} texts: {same}")
    print(f"{'variant':28s} {'texts/s':>10s} {'x naive':>9s} {'texts/cpu-s':>12s}")
    for k, (v, c) in results.items():
        print(f"{k:28s} {v:10.1f} {v / naive_tps:9.1f} {c:12.1f}")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=1) + "\n")
    if not same:
        raise SystemExit("vectorised output differs from the naive reference")
    return report


if __name__ == "__main__":
    main()
