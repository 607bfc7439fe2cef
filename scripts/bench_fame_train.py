#!/usr/bin/env python
"""End-to-end FAME training throughput: an official-style FOP loop against modalink's.

Both pipelines train the same FOP model (``create_model("fop")``: two branches Linear → BN →
ReLU → Dropout(0.5) → L2, gated fusion, identity logits; xavier init) with the same loss
(CE + 1.0 · OPL(γ=0.7) on the fused vector) and optimiser (Adam, lr 1e-2, weight decay 0.01)
on the same training CSVs of one language, for the same number of epochs, and each is timed
from reading the CSVs to the last checkpoint.

* **official-style** re-states what the FAME baseline (mavceleb_baseline ``main.py``) does:
  ``pandas.read_csv(header=None)`` of ``<Lang>_{faces,voices}_train.csv``, label-encode the
  last column, shuffle ONCE with ``random.shuffle`` over ``list(zip(rows...))``, float64
  arrays; per epoch ``len // batch`` in-order numpy slices (batch 32), per batch
  ``torch.from_numpy(...).float()``, forward, loss, backward, Adam step, ``loss.item()`` every
  step, and ``torch.save`` of a checkpoint every epoch.
* **modalink** loads with ``load_fame_train`` through the binary ``.npy`` feature cache (cold:
  the first load parses the CSVs and builds the cache; warm: the cache is hit), wraps the rows
  in ``PairDataset`` and trains with the engine ``Trainer`` and the recipe's
  ``FaceVoiceObjective`` (fop loss config), reshuffling every epoch and saving an Accelerate
  checkpoint every epoch. It runs at ``--batch-sizes`` (default 256 and 32: the second
  separates the loading/engine gain from the batch-size gain). Neither side evaluates per
  epoch (the official loop does not), and library imports happen before the clocks start.

Data: a synthetic MAV-Celeb-like set (``generate_synthetic_fame``, official CSV layout and
widths, ~``--n-train-ids`` × ``--rows-per-id`` rows per language; kept in ``--data-dir`` when
given, so later runs skip generating it) or real features with ``--feats-root``.

    python scripts/bench_fame_train.py                              # v3-sized synthetic, 5 epochs
    python scripts/bench_fame_train.py --repeats 2 --json bench.json
    python scripts/bench_fame_train.py --feats-root /data/mavceleb --ver v1 --lang Urdu

Prints a markdown table (load / train / total seconds, samples/s, official ÷ modalink ratios)
and writes it with ``--json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import random
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence


import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from modalink.face_voice import fame_languages, generate_synthetic_fame, load_fame_train, normalize_language
from modalink.face_voice.layout import FameLayout
from modalink.face_voice.cache import FeatureCache, cache_name_for
from modalink.engine import EngineConfig, Trainer
from modalink.face_voice import (FaceVoiceLossConfig, FaceVoiceModelConfig, FaceVoiceObjective,
                                 PairDataset, build_face_voice_model, collate_pairs)
from modalink.io import atomic_write_text
from modalink.losses import OrthogonalProjectionLoss

#: The FOP baseline's model, loss and optimiser settings (recipes/fame/hparams/fop.yaml).
FOP_MODEL = FaceVoiceModelConfig(name="fop", embed_dim=128, dropout=0.5, init="xavier")
FOP_LOSS = FaceVoiceLossConfig(ce=1.0, opl=1.0, opl_gamma=0.7, opl_on="fused")
FOP_LR = 1e-2
FOP_WEIGHT_DECAY = 0.01


@dataclass
class RunResult:
    """Timings of one pipeline run (seconds)."""

    pipeline: str  # "official-style" | "modalink"
    batch_size: int
    cache: str  # "-" (official), "cold" (cache built) or "warm" (cache hit)
    load_s: float
    train_s: float
    epochs: int
    rows: int  # training rows read
    samples: int  # rows trained on over all epochs (len // batch * batch * epochs)
    final_loss: float  # mean training loss of the last epoch
    repeat: int = 1

    @property
    def total_s(self) -> float:
        return self.load_s + self.train_s

    @property
    def train_samples_per_s(self) -> float:
        return self.samples / self.train_s if self.train_s > 0 else math.inf

    @property
    def end_to_end_samples_per_s(self) -> float:
        return self.samples / self.total_s if self.total_s > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_s": self.total_s, "train_samples_per_s": self.train_samples_per_s,
                "end_to_end_samples_per_s": self.end_to_end_samples_per_s}


# -- official-style pipeline ---------------------------------------------------------------

def official_style_load(feats_root: str | Path, ver: str, lang: str, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one language's training CSVs the way the FAME baseline does.

    ``pandas.read_csv(header=None)`` → numpy; last column label-encoded; rows shuffled once
    with ``random.shuffle`` over a list of row tuples; float64 feature arrays. Returns
    ``(faces float64, voices float64, labels int64)`` in the shuffled order.
    """
    import pandas as pd
    from sklearn.preprocessing import LabelEncoder

    layout = FameLayout(Path(feats_root), ver)
    face_table = pd.read_csv(layout.train_csv(lang, "face"), header=None).to_numpy()
    voice_table = pd.read_csv(layout.train_csv(lang, "voice"), header=None).to_numpy()
    if len(face_table) != len(voice_table):
        raise ValueError(f"{layout.train_csv(lang, 'face')} has {len(face_table)} rows but "
                         f"{layout.train_csv(lang, 'voice')} has {len(voice_table)}")
    labels = LabelEncoder().fit_transform(face_table[:, -1])
    rows = list(zip(face_table[:, :-1], voice_table[:, :-1], labels))
    random.Random(seed).shuffle(rows)
    faces, voices, shuffled = zip(*rows)
    return (np.asarray(faces, dtype=np.float64), np.asarray(voices, dtype=np.float64),
            np.asarray(shuffled, dtype=np.int64))


def official_style_train(faces: np.ndarray, voices: np.ndarray, labels: np.ndarray, epochs: int,
                         batch_size: int, checkpoint_dir: str | Path, device: torch.device,
                         seed: int = 0) -> tuple[int, float]:
    """The baseline's loop: in-order numpy slices, ``from_numpy().float()`` per batch, CE + OPL,
    Adam, ``loss.item()`` every step, a checkpoint every epoch. Returns ``(samples, last loss)``
    where ``last loss`` is the mean loss of the final epoch."""
    torch.manual_seed(seed)
    n_classes = int(labels.max()) + 1
    model = build_face_voice_model(FOP_MODEL, faces.shape[1], voices.shape[1], n_classes).to(device)
    opl = OrthogonalProjectionLoss(gamma=FOP_LOSS.opl_gamma)
    optimizer = torch.optim.Adam(model.parameters(), lr=FOP_LR, weight_decay=FOP_WEIGHT_DECAY)
    n_batches = len(labels) // batch_size
    if n_batches == 0:
        raise ValueError(f"{len(labels)} training rows give no batch of {batch_size}")
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    epoch_loss = float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        running = 0.0
        for i in range(n_batches):
            s = slice(i * batch_size, (i + 1) * batch_size)
            face = torch.from_numpy(faces[s]).float().to(device)
            voice = torch.from_numpy(voices[s]).float().to(device)
            y = torch.from_numpy(labels[s]).to(device)
            optimizer.zero_grad()
            out = model(face, voice)
            loss = F.cross_entropy(out["logits"], y) + FOP_LOSS.opl * opl(out["fused"], y)
            loss.backward()
            optimizer.step()
            running += loss.item()
        epoch_loss = running / n_batches
        torch.save({"epoch": epoch, "state_dict": model.state_dict()},
                   checkpoint_dir / f"checkpoint_{epoch:04d}.pth.tar")
    return n_batches * batch_size * epochs, epoch_loss


# -- modalink pipeline ---------------------------------------------------------------------

def cache_status(feats_root: str | Path, ver: str, lang: str, cache_dir: str | Path,
                 face_dim: int, voice_dim: int) -> str:
    """``"warm"`` when both training CSVs hit the cache, ``"cold"`` otherwise."""
    layout, cache = FameLayout(Path(feats_root), ver), FeatureCache(Path(cache_dir))
    states = [cache.lookup(layout.train_csv(lang, m), d, True, name=cache_name_for(layout.train_csv(lang, m),
                                                                                   layout.root))
              for m, d in (("face", face_dim), ("voice", voice_dim))]
    return "warm" if all(s == "hit" for s in states) else "cold"


def modalink_load(feats_root: str | Path, ver: str, lang: str, cache_dir: str | Path,
                  face_dim: int, voice_dim: int) -> tuple[PairDataset, int]:
    """``load_fame_train`` through the ``.npy`` cache (memory-mapped like the recipe), then the
    in-memory ``PairDataset``. Returns ``(dataset, n_classes)``."""
    train = load_fame_train(feats_root, ver, lang, cache_dir=cache_dir, face_dim=face_dim,
                            voice_dim=voice_dim, mmap=True, progress=False)
    with warnings.catch_warnings():  # a warm cache gives read-only memmaps (as in the recipe); never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return PairDataset(train.faces, train.voices, train.labels), train.n_classes


def modalink_train(dataset: PairDataset, n_classes: int, epochs: int, batch_size: int,
                   run_dir: str | Path, device: torch.device, seed: int = 0, progress: bool = False,
                   quiet: bool = False, mixed_precision: str = "no") -> tuple[int, float]:
    """The recipe's training: ``FaceVoiceObjective`` (fop loss) in the engine ``Trainer``
    with a checkpoint every epoch. Returns ``(samples, mean loss of the final epoch)``."""
    cfg = EngineConfig(epochs=epochs, batch_size=batch_size, lr=FOP_LR, weight_decay=FOP_WEIGHT_DECAY,
                       optimizer="adam", scheduler="none", seed=seed, resume=False, progress=progress,
                       checkpoint_every_epochs=1, log_every_steps=0, cpu=device.type == "cpu",
                       mixed_precision=mixed_precision)
    torch.manual_seed(seed)
    face_dim, voice_dim = dataset.faces.shape[1], dataset.voices.shape[1]
    model = build_face_voice_model(FOP_MODEL, face_dim, voice_dim, n_classes)
    objective = FaceVoiceObjective(model, FOP_LOSS, n_classes)
    trainer = Trainer(objective, dataset, cfg, run_dir, collate_fn=collate_pairs)
    if quiet:  # keep the run's log file, drop the per-epoch lines on stderr
        for h in trainer.logger.handlers:
            if type(h) is logging.StreamHandler:
                h.setLevel(logging.WARNING)
    result = trainer.fit()
    samples = len(dataset) // batch_size * batch_size * epochs
    return samples, float(result.history[-1]["train/loss"])


# -- driver --------------------------------------------------------------------------------

def warm_up(face_dim: int, voice_dim: int, batch_sizes: Sequence[int], work: Path, device: torch.device,
            mixed_precision: str = "no") -> None:
    """Pay one-off process costs before any clock starts: lazy imports (pandas, scikit-learn,
    accelerate, ``torch._dynamo`` on the first optimiser), kernel selection per batch size, the
    first ``torch.save`` and the first ``Accelerator``. Both pipelines then start equally warm."""
    import accelerate  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    g = torch.Generator().manual_seed(0)
    n = max(batch_sizes)
    faces = torch.rand(n, face_dim, generator=g).numpy().astype(np.float64)
    voices = torch.randn(n, voice_dim, generator=g).numpy().astype(np.float64)
    labels = np.arange(n, dtype=np.int64) % 4
    for bs in sorted(set(batch_sizes)):
        official_style_train(faces, voices, labels, 1, bs, work / "warm_up_official", device)
    modalink_train(PairDataset(faces, voices, labels), 4, 1, min(batch_sizes), work / "warm_up_modalink", device,
                   quiet=True, mixed_precision=mixed_precision)
    shutil.rmtree(work / "warm_up_official", ignore_errors=True)
    shutil.rmtree(work / "warm_up_modalink", ignore_errors=True)


def prepare_data(args: argparse.Namespace, work: Path) -> Path:
    """The feature root: ``--feats-root``, or a synthetic set in ``--data-dir`` / ``work``."""
    if args.feats_root:
        root = Path(args.feats_root)
        if not root.is_dir():
            raise SystemExit(f"--feats-root {root} does not exist")
        return root
    root = Path(args.data_dir) if args.data_dir else work / "synthetic_data"
    made = generate_synthetic_fame(root, ver=args.ver, seed=args.seed, n_train_ids=args.n_train_ids,
                                   rows_per_id=args.rows_per_id, n_test_pairs=2, face_dim=args.face_dim,
                                   voice_dim=args.voice_dim, progress=not args.quiet)
    if not args.quiet:
        print(f"{'generated' if made.generated else 'reusing'} synthetic FAME {args.ver} in {root}",
              file=sys.stderr)
    return root


def measure(args: argparse.Namespace, root: Path, lang: str, work: Path, repeat: int,
            device: torch.device) -> list[RunResult]:
    """One official-style run and the modalink runs (cold load, warm load, each batch size)."""
    face_dim, voice_dim = args.face_dim, args.voice_dim
    results: list[RunResult] = []
    rep_dir = work / f"repeat_{repeat}"
    shutil.rmtree(rep_dir, ignore_errors=True)  # leftovers of a kept earlier run
    cache_dir = rep_dir / "cache"  # fresh per repeat: the first modalink load is cold
    steps = ["official-style load", "official-style train", "modalink load (cold cache)",
             "modalink load (warm cache)"] + [f"modalink train batch {b}" for b in args.batch_sizes]
    bar = tqdm(total=len(steps), desc=f"repeat {repeat}", unit="phase", disable=args.quiet, leave=False)

    def phase(i: int) -> None:
        bar.set_postfix_str(steps[i])

    phase(0)
    t0 = time.perf_counter()
    faces, voices, labels = official_style_load(root, args.ver, lang, seed=args.seed)
    load_s = time.perf_counter() - t0
    bar.update()
    phase(1)
    t0 = time.perf_counter()
    samples, loss = official_style_train(faces, voices, labels, args.epochs, args.official_batch_size,
                                         rep_dir / "official_checkpoints", device, seed=args.seed)
    train_s = time.perf_counter() - t0
    bar.update()
    results.append(RunResult("official-style", args.official_batch_size, "-", load_s, train_s, args.epochs,
                             len(labels), samples, loss, repeat))
    del faces, voices, labels

    loads: dict[str, float] = {}
    dataset, n_classes = None, 0
    for i, expect in ((2, "cold"), (3, "warm")):
        phase(i)
        found = cache_status(root, args.ver, lang, cache_dir, face_dim, voice_dim)
        if found != expect:
            raise RuntimeError(f"feature cache in {cache_dir} is {found}, expected {expect}")
        t0 = time.perf_counter()
        dataset, n_classes = modalink_load(root, args.ver, lang, cache_dir, face_dim, voice_dim)
        loads[expect] = time.perf_counter() - t0
        bar.update()
    assert dataset is not None
    for j, bs in enumerate(args.batch_sizes):
        phase(4 + j)
        t0 = time.perf_counter()
        samples, loss = modalink_train(dataset, n_classes, args.epochs, bs, rep_dir / f"modalink_b{bs}",
                                       device, seed=args.seed, progress=args.progress, quiet=args.quiet,
                                       mixed_precision=args.mixed_precision)
        train_s = time.perf_counter() - t0
        bar.update()
        for cache in ("cold", "warm"):
            name = "modalink" if args.mixed_precision == "no" else f"modalink {args.mixed_precision}"
            results.append(RunResult(name, bs, cache, loads[cache], train_s, args.epochs, len(dataset),
                                     samples, loss, repeat))
    bar.close()
    if not args.keep_outputs:
        shutil.rmtree(rep_dir, ignore_errors=True)
    return results


def ratios(official: RunResult, other: RunResult) -> dict[str, float]:
    """official-style ÷ modalink for load, train and total seconds (> 1: modalink faster)."""
    def r(a: float, b: float) -> float:
        return a / b if b > 0 else math.inf
    return {"load": r(official.load_s, other.load_s), "train": r(official.train_s, other.train_s),
            "total": r(official.total_s, other.total_s)}


def format_table(results: Sequence[RunResult]) -> str:
    """Markdown table of every run with official ÷ modalink ratios per repeat."""
    lines = ["| repeat | pipeline | batch | cache | load s | train s | total s | train samples/s | "
             "end-to-end samples/s | last-epoch loss | load × | train × | total × |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_repeat: dict[int, RunResult] = {r.repeat: r for r in results if r.pipeline == "official-style"}
    for r in results:
        x = ratios(by_repeat[r.repeat], r)
        lines.append(f"| {r.repeat} | {r.pipeline} | {r.batch_size} | {r.cache} | {r.load_s:.2f} | "
                     f"{r.train_s:.2f} | {r.total_s:.2f} | {r.train_samples_per_s:,.0f} | "
                     f"{r.end_to_end_samples_per_s:,.0f} | {r.final_loss:.3f} | {x['load']:.1f} | "
                     f"{x['train']:.1f} | {x['total']:.1f} |")
    return "\n".join(lines)


def format_summary(ratio_rows: Sequence[dict[str, Any]]) -> str:
    """One line per modalink setting: end-to-end speed-up of every repeat."""
    lines = []
    keys = sorted({(r["batch_size"], r["cache"]) for r in ratio_rows}, key=lambda k: (-k[0], k[1] != "warm"))
    for bs, cache in keys:
        got = [f"{r['total']:.1f}×" for r in ratio_rows if (r["batch_size"], r["cache"]) == (bs, cache)]
        lines.append(f"- modalink batch {bs}, {cache} cache: end to end {', '.join(got)} the official-style speed")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feats-root", default=None, help="real FAME features (official layout); default: synthetic")
    p.add_argument("--ver", default="v3", choices=["v1", "v2", "v3"], help="MAV-Celeb version (default v3)")
    p.add_argument("--lang", default=None, help="training language (default: the version's first, e.g. English)")
    p.add_argument("--data-dir", default=None,
                   help="where the synthetic set is written and reused across runs (default: a temp folder)")
    p.add_argument("--n-train-ids", type=int, default=None,
                   help="synthetic training identities (default: the version's real count, v3: 50)")
    p.add_argument("--rows-per-id", type=int, default=100,
                   help="synthetic mean rows per identity and language (default 100: ~5,000 rows for v3)")
    p.add_argument("--face-dim", type=int, default=4096, help="face feature width (default 4096, VGGFace fc7)")
    p.add_argument("--voice-dim", type=int, default=512, help="voice feature width (default 512)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs of every run (default 5)")
    p.add_argument("--official-batch-size", type=int, default=32, help="official-style batch (default 32)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 32],
                   help="modalink batch sizes (default 256 32)")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"],
                   help="modalink runs' engine.mixed_precision (bf16 autocast uses AVX512-BF16/AMX on CPUs "
                        "that have it; fp16 on CUDA) (default no)")
    p.add_argument("--repeats", type=int, default=1, help="measure everything this many times (default 1)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where both pipelines train (auto: cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, shuffles and init (default 0)")
    p.add_argument("--work-dir", default=None, help="folder for caches and checkpoints (default: a temp folder)")
    p.add_argument("--keep-outputs", action="store_true", help="keep caches and checkpoints in --work-dir")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--progress", action="store_true", help="show the engine's per-step bars (slightly slower)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")
    a = p.parse_args(argv)
    for name in ("epochs", "official_batch_size", "repeats", "rows_per_id", "face_dim", "voice_dim"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(b < 1 for b in a.batch_sizes):
        p.error("--batch-sizes must be >= 1")
    if a.threads < 0:
        p.error("--threads must be >= 0")
    return a


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns what ``--json`` writes."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    lang = normalize_language(args.ver, args.lang) if args.lang else fame_languages(args.ver)[0]
    tmp = None
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_fame_train_")
        work = Path(tmp.name)
    try:
        root = prepare_data(args, work)
        layout = FameLayout(root, args.ver)
        csv_mb = sum(layout.train_csv(lang, m).stat().st_size for m in ("face", "voice")) / 1e6
        warm_up(args.face_dim, args.voice_dim, [args.official_batch_size, *args.batch_sizes], work, device,
                args.mixed_precision)
        results: list[RunResult] = []
        for rep in range(1, args.repeats + 1):
            results += measure(args, root, lang, work, rep, device)
    finally:
        if tmp is not None:
            tmp.cleanup()
    official = {r.repeat: r for r in results if r.pipeline == "official-style"}
    env = {"torch": torch.__version__, "numpy": np.__version__, "threads": torch.get_num_threads(),
           "device": str(device), "python": platform.python_version(), "machine": platform.machine()}
    setup = {"data": str(args.feats_root or "synthetic"), "ver": args.ver, "lang": lang, "epochs": args.epochs,
             "rows": results[0].rows, "face_dim": args.face_dim, "voice_dim": args.voice_dim,
             "train_csv_mb": round(csv_mb, 1), "official_batch_size": args.official_batch_size,
             "modalink_batch_sizes": list(args.batch_sizes)}
    report = {"setup": setup, "environment": env, "runs": [r.as_dict() for r in results],
              "ratios": [{"repeat": r.repeat, "batch_size": r.batch_size, "cache": r.cache,
                          **ratios(official[r.repeat], r)} for r in results if r.pipeline.startswith("modalink")]}
    head = (f"FAME training end to end: {setup['rows']:,} rows of {lang} ({args.ver}, {setup['data']}), "
            f"{args.face_dim}-D face + {args.voice_dim}-D voice, {csv_mb:.0f} MB of CSV, {args.epochs} epochs; "
            f"torch {env['torch']}, {env['threads']} threads, {device}")
    print(head + "\n\n" + format_table(results) + "\n\n× = official-style seconds ÷ modalink seconds "
          "(> 1: modalink faster). A warm-cache load only opens memory maps; the\n"
          "pages are read during the first epoch and counted in its train seconds.\n\n" + format_summary(report["ratios"]))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
