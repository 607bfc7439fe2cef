#!/usr/bin/env python
"""Extract face and voice features from the raw MAV-Celeb release into the official CSV layout.

Writes, under ``--output`` (FEATS_ROOT), exactly the files the FAME training recipe reads:

* ``feats/<ver>/<Lang>_feats/<Lang>_{faces,voices}_train.csv`` — one row per (face, voice)
  pair, identity label in the last column (``idNNNN`` → NNNN);
* ``preExtracted_vggFace_utteranceLevel_Features/<ver>/<HeardLang>/<TestLang>_{faces,voices}_test.csv``
  for both test languages in each heard-language folder, rows aligned with the pair lists;
* ``face_voice_association_splits/<ver>/<Lang>_test.txt`` (copies of the pair lists);
* ``feats/<ver>/feature_info.json`` and ``preExtracted_.../<ver>/feature_info.json`` — feature
  dimensions (512 face / 192 voice with the default encoders, unlike the official 4096/512),
  the encoders' contracts, the label map and the pairing rule.

Pairing rule for training rows: see :mod:`modalink.data.raw_mavceleb` (each voice clip is paired
with a face image of the same identity and language, same video first, deterministic).

Resumable: every source file's embedding is cached as ``<cache>/<encoder-tag>/<split>/<relpath>.npy``
(failures as ``.fail`` markers), so a rerun only extracts new files; CSVs are rebuilt from the
cache and written atomically. Failed test items get a zero row (the lists must stay aligned);
failed training items drop their pairs. Counts go to the run log and ``summary.json``.

Example::

    python recipes/fame/prepare.py --raw-root /data/mavceleb_v1 --ver v1 --output data/fame \\
        --face-weights ~/weights/20180402-114759-vggface2.pt \\
        --voice-weights ~/weights/spkrec-ecapa-voxceleb --offline --device cuda
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import yaml
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from modalink.audio import AudioError, audio_num_frames, load_audio
from modalink.data.fame import FAME_VERSIONS
from modalink.data.raw_mavceleb import (
    RawLayout,
    TrainPair,
    find_raw_layout,
    identity_labels,
    pair_train_clips,
    read_test_pairs,
    scan_train_split,
)
from modalink.encoders import Encoder, create_encoder
from modalink.engine.run import start_run
from modalink.io import atomic_path, atomic_write_text

log = logging.getLogger("modalink.prepare")

TRAIN_DIR = "feats"
TEST_DIR = "preExtracted_vggFace_utteranceLevel_Features"
SPLITS_DIR = "face_voice_association_splits"
PAIRING_RULE = (
    "one row per voice clip; paired with a face image of the same identity and language: the k-th "
    "voice clip of a video takes face k mod n of that video's faces (sorted), else the j-th voice "
    "clip of the identity takes face j mod N of all its faces in that language"
)


@dataclass
class PrepareConfig:
    """Resolved settings of one prepare run (saved as the run folder's config.yaml)."""

    raw_root: str
    output: str
    ver: str = "v1"
    face_encoder: str = "facenet_vggface2"
    voice_encoder: str = "ecapa_voxceleb"
    face_weights: str | None = None
    voice_weights: str | None = None
    face_args: dict[str, Any] = field(default_factory=dict)
    voice_args: dict[str, Any] = field(default_factory=dict)
    offline: bool = False
    random_weights: bool = False
    seed: int = 0
    no_face: str = "center_crop"
    min_seconds: float = 0.5
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    parts: list[str] = field(default_factory=lambda: ["train", "test"])
    train_root: str | None = None
    test_root: str | None = None
    splits: str | None = None
    cache_dir: str | None = None
    run_dir: str | None = None
    retry_failed: bool = False
    float_format: str = "%.8g"


# ----------------------------------------------------------------------------- loading


class _ImageFiles(Dataset):
    def __init__(self, root: Path, relpaths: Sequence[str]) -> None:
        self.root, self.relpaths = root, list(relpaths)

    def __len__(self) -> int:
        return len(self.relpaths)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        path = self.root / self.relpaths[i]
        try:
            with Image.open(path) as im:
                return i, im.convert("RGB")
        except FileNotFoundError:
            return i, "missing_image"
        except (UnidentifiedImageError, OSError, ValueError):
            return i, "unreadable_image"


class _AudioFiles(Dataset):
    def __init__(self, root: Path, relpaths: Sequence[str], sample_rate: int, min_seconds: float) -> None:
        self.root, self.relpaths = root, list(relpaths)
        self.sample_rate, self.min_seconds = sample_rate, min_seconds

    def __len__(self) -> int:
        return len(self.relpaths)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        try:
            return i, load_audio(self.root / self.relpaths[i], self.sample_rate, min_seconds=self.min_seconds)
        except AudioError as e:
            return i, e.reason


def _as_list(batch: list) -> list:
    return batch


# ----------------------------------------------------------------------------- cache


class EmbeddingCache:
    """One ``.npy`` per source file under ``root/<split>/<relpath>.npy``; ``.fail`` / ``.noface`` markers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _base(self, split: str, relpath: str) -> Path:
        return self.root / split / relpath

    def npy(self, split: str, relpath: str) -> Path:
        b = self._base(split, relpath)
        return b.with_name(b.name + ".npy")

    def fail(self, split: str, relpath: str) -> Path:
        b = self._base(split, relpath)
        return b.with_name(b.name + ".fail")

    def noface(self, split: str, relpath: str) -> Path:
        b = self._base(split, relpath)
        return b.with_name(b.name + ".noface")

    def done(self, split: str, relpath: str, retry_failed: bool) -> bool:
        return self.npy(split, relpath).exists() or (not retry_failed and self.fail(split, relpath).exists())

    def put(self, split: str, relpath: str, emb: np.ndarray, no_face: bool = False) -> None:
        path = self.npy(split, relpath)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(emb, dtype=np.float32))
        fail = self.fail(split, relpath)
        if fail.exists():
            fail.unlink()
        if no_face:
            atomic_write_text(self.noface(split, relpath), "")

    def put_failure(self, split: str, relpath: str, reason: str) -> None:
        atomic_write_text(self.fail(split, relpath), reason + "\n")

    def get(self, split: str, relpath: str) -> np.ndarray | None:
        path = self.npy(split, relpath)
        return np.load(path) if path.exists() else None

    def status(self, split: str, relpath: str) -> str:
        """``ok``, ``no_face`` (kept with a fallback), a failure reason, or ``missing``."""
        if self.npy(split, relpath).exists():
            return "no_face" if self.noface(split, relpath).exists() else "ok"
        fail = self.fail(split, relpath)
        if fail.exists():
            return fail.read_text(encoding="utf-8").strip() or "failed"
        return "missing"


def encoder_tag(name: str, enc: Encoder, cfg: PrepareConfig, extra: dict[str, Any]) -> str:
    """Cache folder name: encoder name + a hash of contract, weights identity and options."""
    if enc.weights_path:
        p = Path(enc.weights_path)
        st = p.stat() if p.exists() else None
        weights = [str(p.resolve()) if p.exists() else str(p), st.st_size if st else None,
                   int(st.st_mtime) if st else None]
    else:
        weights = ["random", cfg.seed]
    blob = json.dumps({"contract": enc.contract.to_dict(), "weights": weights, **extra},
                      sort_keys=True, default=str)
    return f"{name.replace('/', '_')}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- extraction


def extract_faces(enc: Encoder, root: Path, relpaths: Sequence[str], cache: EmbeddingCache, split: str,
                  cfg: PrepareConfig) -> dict[str, int]:
    """Embed the not-yet-cached images; returns counts for this call."""
    todo = [r for r in relpaths if not cache.done(split, r, cfg.retry_failed)]
    counts = {"files": len(relpaths), "cached": len(relpaths) - len(todo), "extracted": 0}
    if not todo:
        return counts
    files = _ImageFiles(root, todo)
    return _embed_files(enc, files, todo, cache, split, cfg, counts, f"{split} faces", "img",
                        flag_reason="no_face_center_crop")


def extract_voices(enc: Encoder, root: Path, relpaths: Sequence[str], cache: EmbeddingCache, split: str,
                   cfg: PrepareConfig) -> dict[str, int]:
    """Embed the not-yet-cached wavs (sorted by length so batches pad little)."""
    todo = [r for r in relpaths if not cache.done(split, r, cfg.retry_failed)]
    counts = {"files": len(relpaths), "cached": len(relpaths) - len(todo), "extracted": 0}
    if not todo:
        return counts
    todo.sort(key=lambda r: (audio_num_frames(root / r), r))
    sr = int(enc.contract.sample_rate)  # type: ignore[arg-type]
    files = _AudioFiles(root, todo, sr, cfg.min_seconds)
    return _embed_files(enc, files, todo, cache, split, cfg, counts, f"{split} voices", "wav",
                        raw=lambda wave: (wave, sr))


def _embed_files(enc: Encoder, files: Dataset, todo: Sequence[str], cache: EmbeddingCache, split: str,
                 cfg: PrepareConfig, counts: dict[str, int], desc: str, unit: str,
                 raw: Callable[[Any], Any] = lambda item: item, flag_reason: str | None = None
                 ) -> dict[str, int]:
    """Load ``files`` in batches, embed what loaded, cache embeddings and failure reasons.

    An item the dataset could not load arrives as its failure reason (a string). Items the
    encoder flags (faces: no face found, centre crop used) are cached with ``no_face`` and
    counted under ``flag_reason``.
    """
    loader = DataLoader(files, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=_as_list)
    with tqdm(total=len(todo), desc=desc, unit=unit) as bar:
        for batch in loader:
            items, idx = [], []
            for i, item in batch:
                if isinstance(item, str):
                    cache.put_failure(split, todo[i], item)
                    counts[item] = counts.get(item, 0) + 1
                else:
                    items.append(raw(item))
                    idx.append(i)
            if items:
                eb = enc.preprocess_batch(items)
                embs = enc.embed_batch(eb).cpu().numpy()
                flagged = eb.flagged if flag_reason else {}
                for row, k in enumerate(eb.kept):
                    cache.put(split, todo[idx[k]], embs[row], no_face=k in flagged)
                    counts["extracted"] += 1
                for k, reason in eb.dropped.items():
                    cache.put_failure(split, todo[idx[k]], reason)
                    counts[reason] = counts.get(reason, 0) + 1
                if flagged:
                    counts[flag_reason] = counts.get(flag_reason, 0) + len(flagged)  # type: ignore[index]
            bar.update(len(batch))
    return counts


def status_counts(cache: EmbeddingCache, split: str, relpaths: Sequence[str]) -> dict[str, int]:
    """Counts of cache states (ok / no_face / failure reasons) over ``relpaths``."""
    out: dict[str, int] = {}
    for r in relpaths:
        s = cache.status(split, r)
        out[s] = out.get(s, 0) + 1
    return out


# ----------------------------------------------------------------------------- CSV writing


def _fmt_row(vec: np.ndarray, fmt: str, label: Any = None) -> str:
    cells = [fmt % float(x) for x in vec]
    if label is not None:
        cells.append(str(label))
    return ",".join(cells) + "\n"


def write_csv(path: Path, rows: list[np.ndarray], fmt: str, labels: Sequence[Any] | None = None) -> None:
    """Headerless CSV (optional trailing label column), written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for i, vec in enumerate(rows):
                fh.write(_fmt_row(vec, fmt, None if labels is None else labels[i]))


def write_train_csvs(out: Path, ver: str, lang: str, pairs: list[TrainPair], face_cache: EmbeddingCache,
                     voice_cache: EmbeddingCache, labels: dict[str, Any], fmt: str) -> dict[str, int]:
    """``feats/<ver>/<Lang>_feats/<Lang>_{faces,voices}_train.csv``; pairs missing a side are dropped."""
    faces, voices, labs = [], [], []
    dropped = 0
    for p in pairs:
        f = face_cache.get("train", p.face.relpath)
        v = voice_cache.get("train", p.voice.relpath)
        if f is None or v is None:
            dropped += 1
            continue
        faces.append(f)
        voices.append(v)
        labs.append(labels[p.identity])
    folder = out / TRAIN_DIR / ver / f"{lang}_feats"
    write_csv(folder / f"{lang}_faces_train.csv", faces, fmt, labs)
    write_csv(folder / f"{lang}_voices_train.csv", voices, fmt, labs)
    return {"rows": len(faces), "pairs_dropped": dropped,
            "identities": len({p.identity for p in pairs})}


# ----------------------------------------------------------------------------- main flow


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_encoders(cfg: PrepareConfig) -> tuple[Encoder, Encoder]:
    """Face and voice encoders (random weights seeded by ``cfg.seed`` / ``cfg.seed + 1``)."""
    offline = True if cfg.offline else None
    pretrained = not cfg.random_weights
    torch.manual_seed(cfg.seed)
    face = create_encoder(cfg.face_encoder, pretrained=pretrained,
                          weights=None if cfg.random_weights else cfg.face_weights,
                          offline=offline, **cfg.face_args)
    if hasattr(face, "no_face"):  # face detectors only; plain image encoders have no policy
        if cfg.no_face not in ("skip", "center_crop"):
            raise ValueError(f"--no-face must be skip or center_crop, got {cfg.no_face!r}")
        face.no_face = cfg.no_face
    torch.manual_seed(cfg.seed + 1)
    voice = create_encoder(cfg.voice_encoder, pretrained=pretrained,
                           weights=None if cfg.random_weights else cfg.voice_weights,
                           offline=offline, **cfg.voice_args)
    if face.contract.input_kind != "image":
        raise ValueError(f"--face-encoder {cfg.face_encoder!r} is not an image encoder")
    if voice.contract.input_kind != "audio":
        raise ValueError(f"--voice-encoder {cfg.voice_encoder!r} is not an audio encoder")
    return face, voice


def prepare(cfg: PrepareConfig) -> dict[str, Any]:
    """Run the whole extraction; returns the summary (also written to ``<run_dir>/summary.json``)."""
    if cfg.ver not in FAME_VERSIONS:
        raise ValueError(f"--ver must be one of {sorted(FAME_VERSIONS)}, got {cfg.ver!r}")
    unknown = set(cfg.parts) - {"train", "test"}
    if unknown or not cfg.parts:
        raise ValueError(f"--parts must be a subset of train,test, got {cfg.parts}")
    langs = FAME_VERSIONS[cfg.ver]
    out = Path(cfg.output)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else out / "prepare_runs" / f"{cfg.ver}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg.run_dir = str(run_dir)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else out / ".cache" / "embeddings"
    cfg.cache_dir = str(cache_root)
    logger = start_run(run_dir, cfg, log_name="modalink")
    t0 = time.time()

    layout: RawLayout = find_raw_layout(cfg.raw_root, langs, train_root=cfg.train_root,
                                        test_root=cfg.test_root, splits_dir=cfg.splits)
    logger.info("layout: train=%s test=%s pair lists=%s", layout.train_root, layout.test_root,
                {k: str(v) for k, v in layout.pair_lists.items()})
    if "train" in cfg.parts and layout.train_root is None:
        raise FileNotFoundError(f"{cfg.raw_root}: no training folder found (use --train-root or --parts test)")
    if "test" in cfg.parts:
        if layout.test_root is None:
            raise FileNotFoundError(f"{cfg.raw_root}: no test folder found (use --test-root or --parts train)")
        missing = [lang for lang in langs if lang not in layout.pair_lists]
        if missing:
            raise FileNotFoundError(f"pair list(s) {', '.join(f'{m}_test.txt' for m in missing)} not found "
                                    f"under {cfg.splits or cfg.raw_root} (use --splits DIR)")

    device = _resolve_device(cfg.device)
    face_enc, voice_enc = build_encoders(cfg)
    face_enc.to(device)
    voice_enc.to(device)
    face_tag = encoder_tag(cfg.face_encoder, face_enc, cfg, {"no_face": cfg.no_face, "args": cfg.face_args})
    voice_tag = encoder_tag(cfg.voice_encoder, voice_enc, cfg,
                            {"min_seconds": cfg.min_seconds, "args": cfg.voice_args})
    face_cache, voice_cache = EmbeddingCache(cache_root / face_tag), EmbeddingCache(cache_root / voice_tag)
    logger.info("face encoder %s (%d-D, weights %s) → cache %s", cfg.face_encoder, face_enc.output_dim,
                face_enc.weights_path or "random", face_cache.root)
    logger.info("voice encoder %s (%d-D, weights %s) → cache %s", cfg.voice_encoder, voice_enc.output_dim,
                voice_enc.weights_path or "random", voice_cache.root)

    summary: dict[str, Any] = {"ver": cfg.ver, "languages": list(langs), "device": str(device),
                               "face_dim": face_enc.output_dim, "voice_dim": voice_enc.output_dim,
                               "extraction": {}, "train": {}, "test": {}}
    label_map: dict[str, Any] = {}

    # ---- training split
    if "train" in cfg.parts:
        assert layout.train_root is not None
        faces = scan_train_split(layout.train_root, "faces", langs)
        voices = scan_train_split(layout.train_root, "voices", langs)
        logger.info("train: %d face images, %d voice clips", len(faces), len(voices))
        face_files = sorted({c.relpath for c in faces})
        voice_files = sorted({c.relpath for c in voices})
        summary["extraction"]["train_faces"] = extract_faces(face_enc, layout.train_root, face_files,
                                                             face_cache, "train", cfg)
        summary["extraction"]["train_voices"] = extract_voices(voice_enc, layout.train_root, voice_files,
                                                               voice_cache, "train", cfg)
        summary["extraction"]["train_faces"]["status"] = status_counts(face_cache, "train", face_files)
        summary["extraction"]["train_voices"]["status"] = status_counts(voice_cache, "train", voice_files)
        label_map = identity_labels(c.identity for c in [*faces, *voices])
        for lang in langs:
            lf = [c for c in faces if c.language == lang]
            lv = [c for c in voices if c.language == lang]
            pairing = pair_train_clips(lf, lv)
            stats = write_train_csvs(out, cfg.ver, lang, pairing.pairs, face_cache, voice_cache,
                                     label_map, cfg.float_format)
            stats.update(unpaired_voices=len(pairing.unpaired_voices),
                         identities_without_faces=[f"{i}/{lg}" for i, lg in pairing.groups_without_faces],
                         cross_video_pairs=pairing.cross_video_pairs)
            summary["train"][lang] = stats
            logger.info("train %s: %d rows (%d identities), %d pairs dropped for failed files, "
                        "%d voice clips without any face image", lang, stats["rows"], stats["identities"],
                        stats["pairs_dropped"], stats["unpaired_voices"])

    # ---- test split
    if "test" in cfg.parts:
        assert layout.test_root is not None
        lists = {lang: read_test_pairs(layout.pair_lists[lang]) for lang in langs}
        face_files = sorted({p.face for pairs in lists.values() for p in pairs})
        voice_files = sorted({p.voice for pairs in lists.values() for p in pairs})
        summary["extraction"]["test_faces"] = extract_faces(face_enc, layout.test_root, face_files,
                                                            face_cache, "test", cfg)
        summary["extraction"]["test_voices"] = extract_voices(voice_enc, layout.test_root, voice_files,
                                                              voice_cache, "test", cfg)
        summary["extraction"]["test_faces"]["status"] = status_counts(face_cache, "test", face_files)
        summary["extraction"]["test_voices"]["status"] = status_counts(voice_cache, "test", voice_files)
        for test_lang, pairs in lists.items():
            frows, vrows, zero_f, zero_v = [], [], 0, 0
            for p in pairs:
                f = face_cache.get("test", p.face)
                v = voice_cache.get("test", p.voice)
                if f is None:
                    f, zero_f = np.zeros(face_enc.output_dim, np.float32), zero_f + 1
                if v is None:
                    v, zero_v = np.zeros(voice_enc.output_dim, np.float32), zero_v + 1
                frows.append(f)
                vrows.append(v)
            for heard in langs:
                folder = out / TEST_DIR / cfg.ver / heard
                write_csv(folder / f"{test_lang}_faces_test.csv", frows, cfg.float_format)
                write_csv(folder / f"{test_lang}_voices_test.csv", vrows, cfg.float_format)
            dst = out / SPLITS_DIR / cfg.ver / f"{test_lang}_test.txt"
            src = layout.pair_lists[test_lang]
            if not (dst.exists() and dst.resolve() == src.resolve()):
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
            summary["test"][test_lang] = {"rows": len(pairs), "zero_face_rows": zero_f,
                                          "zero_voice_rows": zero_v, "pair_list": str(src)}
            if zero_f or zero_v:
                logger.warning("test %s: %d face and %d voice rows are zeros (unusable files)",
                               test_lang, zero_f, zero_v)
            logger.info("test %s: %d rows aligned with %s", test_lang, len(pairs), src)

    for key, counts in summary["extraction"].items():
        logger.info("%s: %s", key, {k: v for k, v in counts.items()})
    info = {
        "ver": cfg.ver, "languages": list(langs),
        "face_dim": face_enc.output_dim, "voice_dim": voice_enc.output_dim,
        "face_encoder": {"name": cfg.face_encoder, "weights": face_enc.weights_path,
                         "contract": face_enc.contract.to_dict(), "no_face": cfg.no_face},
        "voice_encoder": {"name": cfg.voice_encoder, "weights": voice_enc.weights_path,
                          "contract": voice_enc.contract.to_dict(), "min_seconds": cfg.min_seconds},
        "train_label": "last column of *_train.csv; identity folder idNNNN → NNNN (see label_map)",
        "label_map": label_map,
        "pairing_rule": PAIRING_RULE,
        "test_missing_rows": "zeros",
    }
    if "train" in cfg.parts:
        atomic_write_text(out / TRAIN_DIR / cfg.ver / "feature_info.json", json.dumps(info, indent=2) + "\n")
    if "test" in cfg.parts:
        atomic_write_text(out / TEST_DIR / cfg.ver / "feature_info.json", json.dumps(info, indent=2) + "\n")
    summary["seconds"] = round(time.time() - t0, 2)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    logger.info("done in %.1f s; summary: %s", summary["seconds"], run_dir / "summary.json")
    return summary


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k.strip(), yaml.safe_load(v)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: value is not valid YAML ({e})") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recipes/fame/prepare.py",
        description="Extract face/voice features from raw MAV-Celeb into the official FAME CSV layout "
                    "(resumable; per-file embeddings are cached).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--raw-root", required=True, help="raw MAV-Celeb folder (train and test folders, pair lists)")
    p.add_argument("--ver", default="v1", choices=sorted(FAME_VERSIONS), help="MAV-Celeb version")
    p.add_argument("--output", required=True, help="FEATS_ROOT: where feats/, preExtracted_.../ and splits go")
    p.add_argument("--face-encoder", default="facenet_vggface2", help="registered face/image encoder")
    p.add_argument("--voice-encoder", default="ecapa_voxceleb", help="registered voice encoder")
    p.add_argument("--face-weights", help="local face weights file (e.g. 20180402-114759-vggface2.pt)")
    p.add_argument("--voice-weights", help="local folder with embedding_model.ckpt (spkrec-ecapa-voxceleb)")
    p.add_argument("--face-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="extra face-encoder argument (YAML value), repeatable")
    p.add_argument("--voice-arg", action="append", type=_kv, default=[], metavar="KEY=VALUE",
                   help="extra voice-encoder argument (YAML value), e.g. channels=[32,32,32,32,96]")
    p.add_argument("--offline", action="store_true", help="never download weights (also MODALINK_OFFLINE=1)")
    p.add_argument("--random-weights", action="store_true", help="random encoder weights (testing only)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    p.add_argument("--no-face", default="center_crop", choices=["center_crop", "skip"],
                   help="when MTCNN finds no face: centre crop the image, or skip it")
    p.add_argument("--min-seconds", type=float, default=0.5, help="shorter clips count as bad audio")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--parts", default="train,test", help="comma-separated subset of train,test")
    p.add_argument("--train-root", help="training folder (default: found under --raw-root)")
    p.add_argument("--test-root", help="test folder (default: found under --raw-root)")
    p.add_argument("--splits", help="folder with <Lang>_test.txt (default: searched under --raw-root)")
    p.add_argument("--cache-dir", help="embedding cache (default: OUTPUT/.cache/embeddings)")
    p.add_argument("--run-dir", help="run folder (default: OUTPUT/prepare_runs/<ver>-<time>)")
    p.add_argument("--retry-failed", action="store_true", help="retry files that failed before")
    return p


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    """The :class:`PrepareConfig` for parsed command-line arguments."""
    return PrepareConfig(
        raw_root=args.raw_root, output=args.output, ver=args.ver, face_encoder=args.face_encoder,
        voice_encoder=args.voice_encoder, face_weights=args.face_weights, voice_weights=args.voice_weights,
        face_args=dict(args.face_arg), voice_args=dict(args.voice_arg), offline=args.offline,
        random_weights=args.random_weights, seed=args.seed, no_face=args.no_face,
        min_seconds=args.min_seconds, batch_size=args.batch_size, workers=args.workers, device=args.device,
        parts=[s.strip() for s in args.parts.split(",") if s.strip()], train_root=args.train_root,
        test_root=args.test_root, splits=args.splits, cache_dir=args.cache_dir, run_dir=args.run_dir,
        retry_failed=args.retry_failed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        prepare(cfg)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
