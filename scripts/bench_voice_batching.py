#!/usr/bin/env python
"""Benchmark the batch-invariant voice encoder against one forward pass of the padded batch.

``VoiceEncoder`` embeds every clip of a padded batch without its padding (clips of equal length
together), so a clip's embedding does not depend on its batch. This measures what that costs
on the CPU against a single forward of the zero-padded batch (``padded``: the front end and
ECAPA-TDNN on the whole batch with relative lengths, the batch-dependent way), and how far each
is from embedding every clip alone (relative L2; ``padded`` is off by about 1 %).

Clips are sentences spoken by espeak-ng when it is installed (else speech-like synthetic audio),
cut or repeated to lengths spread over ``--min-seconds``–``--max-seconds`` and sorted by length,
as ``embed_raw_files`` sorts them. Weights are random (the architecture sets the cost; the full
one has channels [1024, 1024, 1024, 1024, 3072]). Modes take turns batch by batch; CPU seconds
are printed next to wall seconds (the fairer figure on a shared machine). Example::

    python scripts/bench_voice_batching.py --clips 32 --batch-size 32 --threads 1
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
             "A face and a voice of the same person.", "Good morning, this is a test of the system."]


def make_clips(n: int, lo: float, hi: float, sr: int = 16000, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``n`` 16 kHz speech clips of lengths spread over [lo, hi] s, sorted; and their source."""
    from modalink.audio import resample

    rng = np.random.default_rng(seed)
    base: list[np.ndarray] = []
    if shutil.which("espeak-ng"):
        import soundfile as sf

        with tempfile.TemporaryDirectory() as tmp:
            for i, text in enumerate(SENTENCES):
                path = Path(tmp) / f"{i}.wav"
                subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
                wave, rate = sf.read(path, dtype="float32")
                base.append(resample(wave, int(rate), sr))
        source = "espeak-ng"
    else:
        for _ in SENTENCES:
            t = np.arange(int(3 * sr)) / sr
            f0 = 120 + 20 * np.sin(2 * np.pi * 2 * t)
            voiced = np.sin(2 * np.pi * np.cumsum(f0) / sr) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
            base.append((0.2 * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
        source = "synthetic"
    clips = []
    for i, seconds in enumerate(np.linspace(lo, hi, n)):
        src = base[i % len(base)]
        want = int(seconds * sr)
        clips.append(np.resize(src, want).astype(np.float32))  # repeats the sentence when it is too short
    return sorted(clips, key=len), source


def padded_forward(enc, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The whole padded batch through the front end and ECAPA-TDNN with relative lengths, the
    frames past each clip's end set to the clip's mean after normalisation (the best a padded
    forward does: pooling and normalisation skip the padding, the convolutions still see it)."""
    lens = lengths.to(torch.float32)
    feats = enc.mean_norm(enc.compute_features(wavs), lens)
    n = feats.shape[1]
    valid = torch.arange(n, device=feats.device)[None, :] < torch.round(lens * n)[:, None]
    feats = feats * valid.unsqueeze(-1).to(feats.dtype)
    return enc.model(feats, lens).squeeze(1)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--arch", choices=["full", "small"], default="full",
                   help="full: channels [1024]*4+[3072] (the pretrained model); small: [32]*4+[96]")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (wall seconds are the figure on a GPU)")
    p.add_argument("--output", help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.clips < 1 or args.batch_size < 1 or not 0 < args.min_seconds <= args.max_seconds:
        p.error("--clips and --batch-size must be >= 1, 0 < --min-seconds <= --max-seconds")
    if args.threads:
        torch.set_num_threads(args.threads)
    from modalink.encoders import create_encoder

    torch.manual_seed(0)
    arch = {} if args.arch == "full" else dict(channels=[32, 32, 32, 32, 96], attention_channels=16, se_channels=16)
    device = torch.device(args.device)
    enc = create_encoder("ecapa_voxceleb", **arch).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    clips, source = make_clips(args.clips, args.min_seconds, args.max_seconds)
    batches = [clips[i:i + args.batch_size] for i in range(0, len(clips), args.batch_size)]
    times = {m: [0.0, 0.0] for m in ("padded", "invariant")}
    out: dict[str, list[torch.Tensor]] = {m: [] for m in times}
    with torch.no_grad():
        warm = torch.from_numpy(clips[0]).unsqueeze(0).to(device)
        padded_forward(enc, warm, torch.ones(1, device=device))  # first calls allocate: keep them out of both timings
        enc.embed(warm)
        for b in batches:
            wavs, lengths = enc.collate([torch.from_numpy(c) for c in b])
            wavs = wavs.to(device)
            for mode in times:
                sync()
                w0, c0 = time.perf_counter(), time.process_time()
                emb = (padded_forward(enc, wavs, lengths.to(device)) if mode == "padded"
                       else enc.embed(wavs, lengths))
                sync()
                times[mode][0] += time.perf_counter() - w0
                times[mode][1] += time.process_time() - c0
                out[mode].append(emb.cpu())
        alone = torch.cat([enc.embed(torch.from_numpy(c).unsqueeze(0).to(device)).cpu() for c in clips])
    result = {"source": source, "clips": len(clips), "batch_size": args.batch_size, "arch": args.arch,
              "seconds_of_audio": round(sum(len(c) for c in clips) / 16000, 1), "threads": torch.get_num_threads(),
              "device": str(device)}
    for mode, (wall, cpu) in times.items():
        emb = torch.cat(out[mode])
        rel = ((emb - alone).norm(dim=1) / alone.norm(dim=1))
        result[mode] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "max_rel_diff_vs_alone": float(rel.max())}
    result["cpu_ratio_invariant_over_padded"] = round(times["invariant"][1] / max(times["padded"][1], 1e-9), 3)
    result["wall_ratio_invariant_over_padded"] = round(times["invariant"][0] / max(times["padded"][0], 1e-9), 3)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        from modalink.io import atomic_write_text

        atomic_write_text(Path(args.output), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
