"""Deterministic synthetic MAV-Celeb-like features in the official FAME CSV layout.

Data model (per version, seed-determined):

* every identity has latent parts ``z_shared`` (``shared_dim``), ``z_face`` and ``z_voice``
  (``private_dim`` each); only ``z_shared`` links a face to a voice;
* a row ("clip") perturbs the latents with within-identity noise ``clip_noise``;
* face = ``face_scale * ReLU(A_f [z_shared; z_face] + b_f + noise)`` (non-negative, like
  VGGFace fc7), ``face_dim`` wide;
* voice = ``A_v^L [z_shared; z_voice] + c^L + noise`` where the language ``L`` both shifts
  (``c^L``) and slightly re-mixes (``A_v^L = A_v + language_shift * R^L``) the voice, so the
  unheard language is harder than the heard one; ``voice_dim`` wide;
* test identities are disjoint from training identities; test pairs are balanced
  same/different; both languages' training files hold the same training identities.

Difficulty with the defaults (measured at full width, seeds 0–1, heard / unheard): a linear
CCA fitted on the training identities scores 11–22 % EER, a FOP two-branch model (CE + OPL,
5–30 epochs) 23–33 %, random projections ~50 %. ``tests/unit/test_fame_data.py`` keeps a CCA check.

Files written under ``root`` (official names, see :mod:`modalink.face_voice.layout`)::

    feats/<ver>/<L>_feats/<L>_{faces,voices}_train.csv                      (label column)
    preExtracted_vggFace_utteranceLevel_Features/<ver>/<A>/<A>_{faces,voices}_test.csv
    preExtracted_vggFace_utteranceLevel_Features/<ver>/<A>/<B>_{faces,voices}_unheard_test.csv
    preExtracted_vggFace_utteranceLevel_Features/<ver>/<B>/<B>_{faces,voices}_test.csv
    preExtracted_vggFace_utteranceLevel_Features/<ver>/<B>/<A>_{faces,voices}_test.csv
    face_voice_association_splits/<ver>/<L>_test.txt                       (key voice face)
    ground_truth/<ver>/<L>_test.txt                                        (key 0/1)
    synthetic_fame_<ver>.json                                              (manifest, last)

(``A``/``B`` = the version's two languages; both unheard naming variants appear.) Same
arguments → byte-identical files on the same platform; a second call with the same arguments
finds the manifest and does nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from modalink.face_voice.layout import (FACE_DIM, FAME_IDENTITY_COUNTS, GROUND_TRUTH_DIR, SPLITS_DIR, TEST_DIR,
                                        VOICE_DIM, FameLayout, fame_languages, list_file_name)
from modalink.errors import InputError, failpoint
from modalink.io import atomic_path, atomic_write_text
from modalink.progress import progress_bar

__all__ = ["SyntheticFameSpec", "SyntheticFame", "generate_synthetic_fame", "main"]

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SyntheticFameSpec:
    """All knobs of the generator (the manifest stores them; equal spec → same files)."""

    ver: str = "v3"
    seed: int = 0
    n_train_ids: int = 50
    n_test_ids: int = 8
    rows_per_id: int = 40          # mean rows per identity and language (±25 %)
    n_test_pairs: int = 1000       # per test language, half same / half different
    face_dim: int = FACE_DIM
    voice_dim: int = VOICE_DIM
    shared_dim: int = 12
    private_dim: int = 16
    clip_noise: float = 0.6
    obs_noise: float = 0.5
    language_shift: float = 0.5
    face_scale: float = 2.0
    decimals: int = 5              # significant digits written

    def validate(self) -> None:
        fame_languages(self.ver)
        if self.n_train_ids < 2 or self.n_test_ids < 2:
            raise InputError("need at least 2 training and 2 test identities")
        if self.rows_per_id < 1 or self.n_test_pairs < 2:
            raise InputError("rows_per_id must be >= 1 and n_test_pairs >= 2")
        if min(self.face_dim, self.voice_dim, self.shared_dim) < 1 or self.private_dim < 0:
            raise InputError("dimensions must be positive")


@dataclass
class SyntheticFame:
    """What :func:`generate_synthetic_fame` made (or found): paths are absolute."""

    root: Path
    spec: SyntheticFameSpec
    manifest: Path
    files: list[str] = field(default_factory=list)   # relative to root
    generated: bool = True                            # False: an up-to-date set was found

    @property
    def languages(self) -> tuple[str, str]:
        return fame_languages(self.spec.ver)

    def ground_truth(self, lang: str) -> Path:
        return self.root / GROUND_TRUTH_DIR / self.spec.ver / list_file_name(lang)


class _Generator:
    def __init__(self, spec: SyntheticFameSpec) -> None:
        self.s = spec
        root_seq = np.random.SeedSequence([spec.seed, GENERATOR_VERSION, int(spec.ver.lstrip("v") or 0)])
        world, ids, clips = (np.random.default_rng(q) for q in root_seq.spawn(3))
        self.clip_rng = clips
        s, p = spec.shared_dim, spec.private_dim
        k = s + p
        self.a_face = world.standard_normal((k, spec.face_dim)) / np.sqrt(k)
        self.b_face = world.normal(-0.3, 0.5, spec.face_dim)
        a_voice = world.standard_normal((k, spec.voice_dim)) / np.sqrt(k)
        self.a_voice, self.c_voice = {}, {}
        for lang in fame_languages(spec.ver):
            self.a_voice[lang] = a_voice + spec.language_shift * world.standard_normal(a_voice.shape) / np.sqrt(k)
            self.c_voice[lang] = world.normal(0.0, 1.0, spec.voice_dim)
        n_ids = spec.n_train_ids + spec.n_test_ids
        self.z_shared = ids.standard_normal((n_ids, s))
        self.z_face = ids.standard_normal((n_ids, p))
        self.z_voice = ids.standard_normal((n_ids, p))
        perm = ids.permutation(n_ids)
        self.test_ids = np.sort(perm[:spec.n_test_ids])
        self.train_ids = np.sort(perm[spec.n_test_ids:])
        self.ids_rng = ids

    def _latent(self, ident: np.ndarray, private: np.ndarray) -> np.ndarray:
        n = len(ident)
        z = np.concatenate([self.z_shared[ident], private[ident]], axis=1)
        return z + self.s.clip_noise * self.clip_rng.standard_normal((n, z.shape[1]))

    def faces(self, ident: np.ndarray) -> np.ndarray:
        h = self._latent(ident, self.z_face) @ self.a_face + self.b_face
        h += self.s.obs_noise * self.clip_rng.standard_normal(h.shape)
        return self.s.face_scale * np.maximum(h, 0.0)

    def voices(self, ident: np.ndarray, lang: str) -> np.ndarray:
        h = self._latent(ident, self.z_voice) @ self.a_voice[lang] + self.c_voice[lang]
        return h + self.s.obs_noise * self.clip_rng.standard_normal(h.shape)


def _format_rows(x: np.ndarray, decimals: int, labels: np.ndarray | None = None) -> Iterable[str]:
    fmt = ",".join([f"%.{decimals}g"] * x.shape[1])
    for i, row in enumerate(x):
        line = fmt % tuple(row.tolist())
        yield (f"{line},{int(labels[i])}\n" if labels is not None else line + "\n")


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())


def _manifest_path(root: Path, ver: str) -> Path:
    return root / f"synthetic_fame_{ver}.json"


def _up_to_date(root: Path, spec: SyntheticFameSpec) -> list[str] | None:
    try:
        meta = json.loads(_manifest_path(root, spec.ver).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("generator_version") != GENERATOR_VERSION or meta.get("spec") != asdict(spec):
        return None
    files = meta.get("files", {})
    for rel, size in files.items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != size:
            return None
    return sorted(files)


def generate_synthetic_fame(root: str | os.PathLike, ver: str = "v3", seed: int = 0, *,
                            n_train_ids: int | None = None, n_test_ids: int | None = None,
                            rows_per_id: int = 40, n_test_pairs: int = 1000,
                            face_dim: int = FACE_DIM, voice_dim: int = VOICE_DIM,
                            overwrite: bool = False, progress: bool = False,
                            **knobs) -> SyntheticFame:
    """Write a synthetic FAME feature set for ``ver`` under ``root`` (official layout).

    ``n_train_ids`` / ``n_test_ids`` default to the real version's counts (v3: 50 / 8).
    Extra ``knobs`` are :class:`SyntheticFameSpec` fields (``shared_dim``, ``clip_noise``,
    ``obs_noise``, ``language_shift``, ...). Returns immediately (``generated=False``) when
    ``root`` already holds a set with the same spec and intact files, unless ``overwrite``.
    """
    counts = FAME_IDENTITY_COUNTS.get(ver, (58, 50, 8))
    spec = SyntheticFameSpec(ver=ver, seed=seed,
                             n_train_ids=counts[1] if n_train_ids is None else n_train_ids,
                             n_test_ids=counts[2] if n_test_ids is None else n_test_ids,
                             rows_per_id=rows_per_id, n_test_pairs=n_test_pairs,
                             face_dim=face_dim, voice_dim=voice_dim, **knobs)
    spec.validate()
    root = Path(root)
    manifest = _manifest_path(root, ver)
    if not overwrite:
        existing = _up_to_date(root, spec)
        if existing is not None:
            return SyntheticFame(root, spec, manifest, existing, generated=False)

    failpoint("synthetic_fame.generate")
    manifest.unlink(missing_ok=True)   # the set is incomplete until the manifest is rewritten
    gen = _Generator(spec)
    lang_a, lang_b = fame_languages(ver)
    written: dict[str, int] = {}
    bar = progress_bar(total=16, desc=f"synthetic FAME {ver}", unit="file", enabled=progress)

    def emit(rel: str, lines: Iterable[str]) -> None:
        path = root / rel
        _write_lines(path, lines)
        written[rel] = path.stat().st_size
        bar.update(1)

    names = FameLayout(Path(), ver)  # the official names, relative to root
    # Row counts per (identity, language): rows_per_id ± 25 %.
    lo, hi = max(1, int(round(0.75 * rows_per_id))), int(round(1.25 * rows_per_id))
    n_rows = {lang: gen.ids_rng.integers(lo, hi + 1, len(gen.train_ids)) for lang in (lang_a, lang_b)}
    with bar:
        for lang in (lang_a, lang_b):
            ident = np.repeat(gen.train_ids, n_rows[lang])
            emit(names.train_csv(lang, "face").as_posix(), _format_rows(gen.faces(ident), spec.decimals, ident))
            emit(names.train_csv(lang, "voice").as_posix(),
                 _format_rows(gen.voices(ident, lang), spec.decimals, ident))

        for lang in (lang_a, lang_b):
            other = lang_b if lang == lang_a else lang_a
            n = spec.n_test_pairs
            same = np.zeros(n, dtype=bool)
            same[: n // 2] = True
            same = same[gen.ids_rng.permutation(n)]
            face_id = gen.test_ids[gen.ids_rng.integers(0, len(gen.test_ids), n)]
            shift = gen.ids_rng.integers(1, len(gen.test_ids), n)
            pos = np.searchsorted(gen.test_ids, face_id)
            voice_id = np.where(same, face_id, gen.test_ids[(pos + shift) % len(gen.test_ids)])
            keys = _unique_keys(gen.ids_rng, n)
            face_rows = list(_format_rows(gen.faces(face_id), spec.decimals))
            voice_rows = list(_format_rows(gen.voices(voice_id, lang), spec.decimals))
            # Unheard copies: <A>/<B>_*_unheard_test.csv and <B>/<A>_*_test.csv.
            unheard_suffix = "unheard_test" if other == lang_a else "test"
            for heard_folder, suffix in ((lang, "test"), (other, unheard_suffix)):
                folder = f"{TEST_DIR}/{ver}/{heard_folder}"
                emit(f"{folder}/{lang}_faces_{suffix}.csv", face_rows)
                emit(f"{folder}/{lang}_voices_{suffix}.csv", voice_rows)
            emit(f"{SPLITS_DIR}/{ver}/{list_file_name(lang)}",
                 (f"{k} voices/{lang}/{i:05d}.wav faces/{lang}/{i:05d}.jpg\n" for i, k in enumerate(keys)))
            emit(f"{GROUND_TRUTH_DIR}/{ver}/{list_file_name(lang)}",
                 (f"{k} {int(s)}\n" for k, s in zip(keys, same)))

    meta = {"generator_version": GENERATOR_VERSION, "spec": asdict(spec),
            "train_identities": [int(i) for i in gen.train_ids],
            "test_identities": [int(i) for i in gen.test_ids],
            "files": dict(sorted(written.items()))}
    atomic_write_text(manifest, json.dumps(meta, indent=1) + "\n")
    return SyntheticFame(root, spec, manifest, sorted(written), generated=True)


def _unique_keys(rng: np.random.Generator, n: int) -> list[str]:
    keys: list[str] = []
    seen: set[str] = set()
    while len(keys) < n:
        for v in rng.integers(0, 16 ** 10, n - len(keys)):
            k = f"{int(v):010x}"
            if k not in seen:
                seen.add(k)
                keys.append(k)
    return keys


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m modalink.face_voice.synthetic ROOT [--ver v3] [--seed 0] ...``."""
    d = SyntheticFameSpec()
    ap = argparse.ArgumentParser(
        prog="python -m modalink.face_voice.synthetic",
        description="Write a deterministic synthetic MAV-Celeb-like feature set in the official "
                    "FAME CSV layout (train/test CSVs, pair lists, ground truth).")
    ap.add_argument("root", type=Path, help="output folder (the FEATS_ROOT the loaders read)")
    ap.add_argument("--ver", default="v3", choices=sorted(FAME_IDENTITY_COUNTS), help="version (default v3)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--train-ids", type=int, default=None, help="training identities (default: real count)")
    ap.add_argument("--test-ids", type=int, default=None, help="test identities (default: real count)")
    ap.add_argument("--rows-per-id", type=int, default=d.rows_per_id, help="mean rows per identity and language")
    ap.add_argument("--test-pairs", type=int, default=d.n_test_pairs, help="test pairs per language")
    ap.add_argument("--face-dim", type=int, default=d.face_dim, help="face feature width (default 4096)")
    ap.add_argument("--voice-dim", type=int, default=d.voice_dim, help="voice feature width (default 512)")
    ap.add_argument("--shared-dim", type=int, default=d.shared_dim, help="latent dims shared by face and voice")
    ap.add_argument("--clip-noise", type=float, default=d.clip_noise, help="within-identity latent noise")
    ap.add_argument("--language-shift", type=float, default=d.language_shift, help="voice change between languages")
    ap.add_argument("--overwrite", action="store_true", help="regenerate even if an up-to-date set exists")
    a = ap.parse_args(argv)
    out = generate_synthetic_fame(
        a.root, a.ver, a.seed, n_train_ids=a.train_ids, n_test_ids=a.test_ids,
        rows_per_id=a.rows_per_id, n_test_pairs=a.test_pairs, face_dim=a.face_dim,
        voice_dim=a.voice_dim, shared_dim=a.shared_dim, clip_noise=a.clip_noise,
        language_shift=a.language_shift, overwrite=a.overwrite, progress=True)
    state = "wrote" if out.generated else "up to date, kept"
    print(f"{state} {len(out.files)} files of synthetic FAME {a.ver} under {out.root} "
          f"(manifest {out.manifest.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
