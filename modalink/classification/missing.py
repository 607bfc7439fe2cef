"""Missing-modality masks (the protocol of Ma et al. 2022 and Lee et al. 2023).

Convention. A *missing rate* η is the fraction of samples that LOSE a modality:

* ``mode="text"``  — ``round(η·n)`` samples lose their text;
* ``mode="image"`` — ``round(η·n)`` samples lose their image;
* ``mode="both"``  — ``round(η·n)`` samples are affected and each loses exactly ONE
  modality: half of them (``round(η·n/2)``) the text, the others the image (Lee et al.'s
  "missing-both" with η/2 each). Explicit ``rates={"text": a, "image": b}`` gives ``a`` and
  ``b`` on disjoint samples (``a + b <= 1``). A sample never loses both.

Papers label conditions by availability instead: "30 % text" / ``text=30%`` means text is
AVAILABLE for 30 % of samples, i.e. η = 0.7 in mode "text". :func:`condition_name` and
:func:`parse_condition` convert between the two; ``"complete"`` is η = 0.

Masks are deterministic given ``(n, rates, mode, seed)`` (NumPy PCG64 permutation), exact in
their counts, and saved with the run (:meth:`MissingModalityMask.save`: JSON with missing
indices, or ``.npz``) so results can be reproduced. Use :func:`derive_seed` to give the train
and test masks different, stable seeds from one run seed.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from modalink.errors import InputError
from modalink.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "MODALITIES",
    "MissingModalityMask",
    "make_missing_mask",
    "apply_mask",
    "condition_name",
    "parse_condition",
    "mask_for_condition",
    "derive_seed",
]

MODALITIES = ("image", "text")
MaskMode = Literal["none", "text", "image", "both"]
_FORMAT_VERSION = 1


def _count(rate: float, n: int) -> int:
    """round-half-up(rate·n): the exact number of affected samples."""
    return int(math.floor(rate * n + 0.5))


@dataclass
class MissingModalityMask:
    """Per-modality availability for ``n`` samples: ``image[i]``/``text[i]`` True = present."""

    image: np.ndarray
    text: np.ndarray
    mode: MaskMode = "none"
    rates: dict[str, float] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=bool).reshape(-1)
        self.text = np.asarray(self.text, dtype=bool).reshape(-1)
        if len(self.image) != len(self.text):
            raise InputError(f"image mask has {len(self.image)} entries, text mask {len(self.text)}")
        if self.mode not in ("none", "text", "image", "both"):
            raise InputError(f"mode must be 'none', 'text', 'image' or 'both', got {self.mode!r}")
        if (~self.image & ~self.text).any():
            i = int(np.flatnonzero(~self.image & ~self.text)[0])
            raise InputError(f"sample {i} has neither image nor text: a mask never removes both")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def complete(cls, n: int) -> "MissingModalityMask":
        """Every modality present for every sample."""
        return cls(np.ones(n, bool), np.ones(n, bool), "none", {}, None)

    # -- views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.image)

    def present(self, modality: str) -> np.ndarray:
        """Boolean array (True = present) for ``"image"`` or ``"text"``."""
        if modality not in MODALITIES:
            raise KeyError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
        return getattr(self, modality)

    def availability(self) -> dict[str, float]:
        """Fraction of samples that keep each modality."""
        n = max(len(self), 1)
        return {m: float(self.present(m).sum()) / n for m in MODALITIES}

    @property
    def name(self) -> str:
        """The condition in availability terms, e.g. ``"complete"``, ``"text=30%"``."""
        return condition_name(self.mode, self.rates)

    def subset(self, indices: np.ndarray | list[int]) -> "MissingModalityMask":
        """The mask of the selected samples (same mode/rates/seed metadata)."""
        idx = np.asarray(indices, dtype=np.int64)
        return MissingModalityMask(self.image[idx], self.text[idx], self.mode, dict(self.rates), self.seed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MissingModalityMask):
            return NotImplemented
        return (np.array_equal(self.image, other.image) and np.array_equal(self.text, other.text)
                and self.mode == other.mode and self.rates == other.rates and self.seed == other.seed)

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "modalink.missing_mask",
            "version": _FORMAT_VERSION,
            "n": len(self),
            "mode": self.mode,
            "rates": {k: float(v) for k, v in sorted(self.rates.items())},
            "seed": self.seed,
            "condition": self.name,
            "missing": {m: np.flatnonzero(~self.present(m)).tolist() for m in MODALITIES},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "mask") -> "MissingModalityMask":
        try:
            if d.get("format") != "modalink.missing_mask":
                raise InputError("not a modalink missing-modality mask")
            if d.get("version") != _FORMAT_VERSION:
                raise InputError(f"unsupported version {d.get('version')!r}")
            n = int(d["n"])
            present = {}
            for m in MODALITIES:
                idx = np.asarray(d["missing"][m], dtype=np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise InputError(f"missing.{m} has an index outside 0..{n - 1}")
                keep = np.ones(n, dtype=bool)
                keep[idx] = False
                present[m] = keep
            seed = d.get("seed")
            return cls(present["image"], present["text"], d["mode"],
                       {k: float(v) for k, v in d.get("rates", {}).items()},
                       None if seed is None else int(seed))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where}: bad missing-modality mask: {e}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the mask atomically: ``.npz`` (bool arrays + metadata) or JSON (anything else)."""
        path = Path(path)
        d = self.to_dict()
        if path.suffix == ".npz":
            meta = {k: v for k, v in d.items() if k != "missing"}
            buf = io.BytesIO()
            np.savez(buf, image=self.image, text=self.text, meta=np.array(json.dumps(meta)))
            return atomic_write_bytes(path, buf.getvalue())
        return atomic_write_text(path, json.dumps(d, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MissingModalityMask":
        """Read a mask written by :meth:`save` (format chosen by the file suffix)."""
        path = Path(path)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                meta["missing"] = {m: np.flatnonzero(~z[m].astype(bool)).tolist() for m in MODALITIES}
            return cls.from_dict(meta, str(path))
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        return cls.from_dict(d, str(path))


# ---------------------------------------------------------------------------------------------
def _normalise_rates(rates: float | Mapping[str, float], mode: str | None) -> tuple[str, dict[str, float]]:
    if isinstance(rates, (int, float)):
        if mode is None:
            raise InputError("a single missing rate needs mode='text', 'image' or 'both'")
        rates = {mode if mode != "none" else "text": float(rates)}
    rates = {str(k): float(v) for k, v in rates.items()}
    for k, v in rates.items():
        if k not in ("text", "image", "both"):
            raise InputError(f"unknown rate key {k!r}; use 'text', 'image' or 'both'")
        if not 0.0 <= v <= 1.0:
            raise InputError(f"missing rate {k}={v} is outside [0, 1]")
    if "both" in rates:
        if len(rates) != 1:
            raise InputError("rates={'both': eta} cannot be combined with other keys")
        if mode not in (None, "both"):
            raise InputError(f"rates={{'both': ...}} needs mode='both', got {mode!r}")
        return "both", rates
    keys = set(rates)
    inferred = "both" if keys == {"text", "image"} else (keys.pop() if len(keys) == 1 else "none")
    mode = mode or inferred
    if mode in ("text", "image") and set(rates) != {mode}:
        raise InputError(f"mode={mode!r} takes rates={{'{mode}': eta}}, got {rates}")
    if mode == "both" and set(rates) == {"text"} | {"image"}:
        if rates["text"] + rates["image"] > 1.0 + 1e-12:
            raise InputError(f"text and image missing rates sum to more than 1: {rates}")
    elif mode == "both":
        raise InputError(f"mode='both' takes rates={{'both': eta}} or {{'text': a, 'image': b}}, got {rates}")
    if all(v == 0 for v in rates.values()):
        return "none", {}
    return mode, rates


def make_missing_mask(
    n: int,
    rates: float | Mapping[str, float] | None = None,
    seed: int = 0,
    mode: MaskMode | None = None,
) -> MissingModalityMask:
    """Draw a deterministic mask for ``n`` samples with missing rates η (see module docstring).

    ``rates``: ``{"text": η}``, ``{"image": η}``, ``{"both": η}`` or ``{"text": a, "image": b}``,
    or one float with ``mode``. Counts are exact: ``round(η·n)`` samples are affected.
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    mode, rates = _normalise_rates({} if rates is None else rates, mode)
    image = np.ones(n, dtype=bool)
    text = np.ones(n, dtype=bool)
    perm = np.random.default_rng(seed).permutation(n)
    if mode == "text":
        text[perm[: _count(rates["text"], n)]] = False
    elif mode == "image":
        image[perm[: _count(rates["image"], n)]] = False
    elif mode == "both":
        if "both" in rates:
            k = _count(rates["both"], n)
            k_text = _count(rates["both"] / 2.0, n)
            k_text = min(k_text, k)
            k_image = k - k_text
        else:
            k_text, k_image = _count(rates["text"], n), _count(rates["image"], n)
            k_image = min(k_image, n - k_text)
        text[perm[:k_text]] = False
        image[perm[k_text:k_text + k_image]] = False
    return MissingModalityMask(image, text, mode, rates, int(seed))


def apply_mask(dataset: Any, mask: MissingModalityMask | None) -> Any:
    """Return a copy of ``dataset`` whose samples honour ``mask`` (``None`` = complete)."""
    if mask is not None and len(mask) != len(dataset):
        raise InputError(f"mask has {len(mask)} entries but the dataset has {len(dataset)} samples")
    return dataset.with_mask(mask)


# ---------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    s = f"{x * 100:.4f}".rstrip("0").rstrip(".")
    return f"{s}%"


def condition_name(mode: str, rates: Mapping[str, float] | None = None) -> str:
    """Availability label: ``"complete"``, ``"text=30%"`` (text kept by 30 %: η=0.7),
    ``"image=30%"``, or for mode "both" ``"text=65%,image=65%"`` (η=0.7 split evenly)."""
    rates = dict(rates or {})
    if mode == "none" or not rates or all(v == 0 for v in rates.values()):
        return "complete"
    if mode in ("text", "image"):
        return f"{mode}={_pct(1.0 - rates[mode])}"
    if "both" in rates:
        eta = rates["both"]
        return f"text={_pct(1.0 - eta / 2)},image={_pct(1.0 - eta / 2)}"
    return f"text={_pct(1.0 - rates['text'])},image={_pct(1.0 - rates['image'])}"


_COND_RE = re.compile(r"^(text|image)=([0-9]*\.?[0-9]+)%$")


def parse_condition(name: str) -> tuple[MaskMode, dict[str, float]]:
    """Inverse of :func:`condition_name`: ``"text=30%"`` → ``("text", {"text": 0.7})``.

    Accepted: ``complete``; ``text=P%``; ``image=P%``; ``text=P%,image=Q%`` (mode "both";
    the missing parts are disjoint, so (100-P) + (100-Q) <= 100).
    """
    s = name.strip().lower().replace(" ", "")
    if s in ("complete", "full", "none"):
        return "none", {}
    parts = s.split(",")
    rates: dict[str, float] = {}
    for part in parts:
        m = _COND_RE.match(part)
        if not m:
            raise InputError(f"bad condition {name!r}: use 'complete', 'text=30%', 'image=30%' "
                             f"or 'text=65%,image=65%'")
        mod, pct = m.group(1), float(m.group(2))
        if not 0 <= pct <= 100:
            raise InputError(f"bad condition {name!r}: {pct}% is outside 0..100")
        if mod in rates:
            raise InputError(f"bad condition {name!r}: {mod} given twice")
        rates[mod] = round(1.0 - pct / 100.0, 12)
    mode: MaskMode = "both" if len(rates) == 2 else next(iter(rates))  # type: ignore[assignment]
    mode, rates = _normalise_rates(rates, mode)
    return mode, rates  # type: ignore[return-value]


def mask_for_condition(n: int, condition: str, seed: int = 0) -> MissingModalityMask:
    """``make_missing_mask`` from an availability label such as ``"text=30%"``."""
    mode, rates = parse_condition(condition)
    if mode == "none":
        m = MissingModalityMask.complete(n)
        m.seed = int(seed)
        return m
    return make_missing_mask(n, rates, seed=seed, mode=mode)


def derive_seed(seed: int, *names: str) -> int:
    """A stable 31-bit seed from a run seed and names, e.g. ``derive_seed(0, "test", "text=30%")``."""
    h = hashlib.blake2b(repr((int(seed),) + tuple(names)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF
