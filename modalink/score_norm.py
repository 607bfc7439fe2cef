"""Score normalisation for cross-modal (face–voice) trials: S-norm and adaptive S-norm.

A trial compares a face ``f`` and a voice ``v`` by a DISTANCE ``d`` (lower = same person). The
face is compared with a cohort of voices and the voice with a cohort of faces (cohort = the
training identities' embeddings, or their per-identity means); with ``μ_f, σ_f`` the mean and
standard deviation of ``d(f, voice cohort)`` and ``μ_v, σ_v`` those of ``d(v, face cohort)``::

    s_norm(d) = ((d - μ_f) / σ_f + (d - μ_v) / σ_v) / 2

Adaptive S-norm (AS-norm) takes the statistics over the ``top_k`` cohort entries CLOSEST to the
trial's side only. The result is still a distance (lower = same person), so FAME's scorer reads
it unchanged. Everything is vectorised over blocks of rows (memory bounded by
``block_size × cohort size``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from modalink.errors import InputError

__all__ = ["METHODS", "COHORTS", "NormSpec", "NormConfig", "cohort_distance_stats", "identity_means", "build_cohort",
           "s_norm", "normalise_trials", "candidate_specs", "choose_on_validation"]

#: Normalisation methods: none, S-norm (whole cohort), adaptive S-norm (top-k closest entries).
METHODS = ("none", "snorm", "asnorm")
#: Cohort kinds: every training row, or one mean embedding per training identity.
COHORTS = ("identity_means", "all")
_EPS = 1e-8


@dataclass(frozen=True)
class NormSpec:
    """One normalisation setting: ``method`` (:data:`METHODS`), ``cohort`` (:data:`COHORTS`) and
    ``top_k`` (AS-norm only)."""

    method: str = "none"
    cohort: str = "identity_means"
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"normalisation method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.cohort not in COHORTS:
            raise InputError(f"cohort {self.cohort!r}; use one of {', '.join(COHORTS)}")
        if self.method == "asnorm" and (self.top_k is None or self.top_k < 1):
            raise InputError(f"asnorm needs top_k >= 1, got {self.top_k!r}")

    @property
    def name(self) -> str:
        """Short label, e.g. ``none``, ``snorm/identity_means``, ``asnorm/all/k=50``."""
        if self.method == "none":
            return "none"
        k = f"/k={self.top_k}" if self.method == "asnorm" else ""
        return f"{self.method}/{self.cohort}{k}"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "cohort": self.cohort, "top_k": self.top_k}


def _tensor(x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.detach().to(torch.float32)


@torch.no_grad()
def cohort_distance_stats(query: Any, cohort: Any, top_k: int | None = None,
                          block_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (population) of the L2 distances from each ``query`` row to the
    ``cohort`` rows, over the ``top_k`` closest cohort rows (all when ``top_k`` is None or not
    smaller than the cohort). Returns two tensors of ``len(query)``."""
    q, c = _tensor(query), _tensor(cohort)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise InputError(f"query {tuple(q.shape)} and cohort {tuple(c.shape)} must be 2-D of the same width")
    if len(c) < 2:
        raise InputError(f"the cohort has {len(c)} entr{'y' if len(c) == 1 else 'ies'}; score normalisation "
                         "needs at least 2")
    k = None if top_k is None or top_k >= len(c) else int(top_k)
    if k is not None and k < 2:
        raise InputError(f"top_k={top_k}: at least 2 cohort entries are needed for a standard deviation")
    c_sq = (c * c).sum(1)
    means, stds = [], []
    for s in range(0, len(q), block_size):
        qb = q[s:s + block_size]
        # |q - c|^2 = |q|^2 + |c|^2 - 2 q.c, clamped against rounding below zero
        d2 = (qb * qb).sum(1, keepdim=True) + c_sq[None, :] - 2.0 * (qb @ c.T)
        d = d2.clamp_min_(0).sqrt_()
        if k is not None:
            d = torch.topk(d, k, dim=1, largest=False, sorted=False).values
        means.append(d.mean(1))
        stds.append(d.std(1, unbiased=False))
    if not means:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(means), torch.cat(stds)


def identity_means(embeddings: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """One mean embedding per identity (``labels`` sorted): ``(means, identities)``."""
    e = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(labels)
    if len(e) != len(y):
        raise InputError(f"{len(e)} embeddings but {len(y)} labels")
    ids, inv = np.unique(y, return_inverse=True)
    sums = np.zeros((len(ids), e.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, e)
    counts = np.bincount(inv, minlength=len(ids)).astype(np.float64)
    return (sums / counts[:, None]).astype(np.float32), ids


def build_cohort(embeddings: Any, labels: Any, kind: str) -> np.ndarray:
    """The cohort of one modality: every row (``all``) or the per-identity means."""
    if kind == "all":
        return np.asarray(embeddings, dtype=np.float32)
    if kind == "identity_means":
        return identity_means(embeddings, labels)[0]
    raise InputError(f"cohort {kind!r}; use one of {', '.join(COHORTS)}")


@torch.no_grad()
def s_norm(distances: Any, faces: Any, voices: Any, face_cohort: Any, voice_cohort: Any,
           top_k: int | None = None, face_idx: Any = None, voice_idx: Any = None,
           block_size: int = 8192) -> np.ndarray:
    """(AS-)normalised distances of trials ``(faces[face_idx[t]], voices[voice_idx[t]])`` with
    distance ``distances[t]``.

    ``faces``/``voices`` are the trial rows' scoring embeddings (without ``*_idx``: row ``t`` is
    trial ``t``); the face side is compared with ``voice_cohort``, the voice side with
    ``face_cohort``. Each row's statistics are computed once, however many trials use it.
    ``top_k`` None is S-norm; an integer is AS-norm over the ``top_k`` closest cohort entries.
    Lower is still the same person.
    """
    d = torch.as_tensor(np.asarray(distances, dtype=np.float64))
    mu_f, sd_f = cohort_distance_stats(faces, voice_cohort, top_k, block_size)
    mu_v, sd_v = cohort_distance_stats(voices, face_cohort, top_k, block_size)
    fi = torch.arange(len(mu_f)) if face_idx is None else torch.as_tensor(np.asarray(face_idx), dtype=torch.long)
    vi = torch.arange(len(mu_v)) if voice_idx is None else torch.as_tensor(np.asarray(voice_idx), dtype=torch.long)
    if not len(d) == len(fi) == len(vi):
        raise InputError(f"{len(d)} distances, {len(fi)} face rows and {len(vi)} voice rows: one per trial needed")
    mf, sf = mu_f.double()[fi], sd_f.double()[fi].clamp_min(_EPS)
    mv, sv = mu_v.double()[vi], sd_v.double()[vi].clamp_min(_EPS)
    return (0.5 * ((d - mf) / sf + (d - mv) / sv)).numpy()


def normalise_trials(spec: NormSpec, distances: Any, faces: Any, voices: Any,
                     cohort_faces: Any, cohort_voices: Any, cohort_labels: Any,
                     face_idx: Any = None, voice_idx: Any = None) -> np.ndarray:
    """Apply one :class:`NormSpec` to trials; ``cohort_*`` are the training rows' embeddings and
    identities (the cohort is built from them as the spec says). ``none`` returns the distances."""
    if spec.method == "none":
        return np.asarray(distances, dtype=np.float64)
    fc = build_cohort(cohort_faces, cohort_labels, spec.cohort)
    vc = build_cohort(cohort_voices, cohort_labels, spec.cohort)
    k = spec.top_k if spec.method == "asnorm" else None
    return s_norm(distances, faces, voices, fc, vc, top_k=k, face_idx=face_idx, voice_idx=voice_idx)


def candidate_specs(method: str, cohort: str, top_k: list[int] | tuple[int, ...]) -> list[NormSpec]:
    """The settings a config asks to compare on validation: ``method`` one of :data:`METHODS` or
    ``auto`` (all three), ``cohort`` one of :data:`COHORTS` or ``auto`` (both), every ``top_k``
    for AS-norm. ``none`` comes first, so it wins a tie."""
    methods = list(METHODS) if method == "auto" else [method]
    cohorts = list(COHORTS) if cohort == "auto" else [cohort]
    if any(m not in METHODS for m in methods):
        raise InputError(f"normalisation method {method!r}; use one of {', '.join(METHODS)} or auto")
    specs: list[NormSpec] = []
    if "none" in methods:
        specs.append(NormSpec("none"))
    for c in cohorts:
        if "snorm" in methods:
            specs.append(NormSpec("snorm", c))
        if "asnorm" in methods:
            specs += [NormSpec("asnorm", c, int(k)) for k in top_k]
    return specs


def choose_on_validation(specs: list[NormSpec], labels: Any, distances: Any, faces: Any, voices: Any,
                         cohort_faces: Any, cohort_voices: Any, cohort_labels: Any,
                         face_idx: Any = None, voice_idx: Any = None) -> tuple[NormSpec, list[dict[str, Any]]]:
    """The setting with the lowest EER on labelled VALIDATION trials (the first on a tie) and a
    row ``{name, method, cohort, top_k, val_eer}`` per setting tried."""
    from modalink.metrics import fast_eer

    rows = []
    best: tuple[float, NormSpec] | None = None
    for spec in specs:
        s = normalise_trials(spec, distances, faces, voices, cohort_faces, cohort_voices, cohort_labels,
                             face_idx, voice_idx)
        eer = float(fast_eer(labels, s))
        rows.append({"name": spec.name, **spec.to_dict(), "val_eer": eer})
        if best is None or eer < best[0]:
            best = (eer, spec)
    if best is None:
        raise InputError("no normalisation setting to choose from")
    return best[1], rows


@dataclass
class NormConfig:
    """A recipe's ``norm:`` section: what to compare on validation and apply to the test trials.

    ``method``: none | snorm | asnorm | auto (the lowest validation EER of all three);
    ``cohort``: identity_means | all | auto (both); ``top_k``: AS-norm cohort sizes to try."""

    method: str = "none"
    cohort: str = "identity_means"
    top_k: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100, 200])

    def validate_config(self) -> None:
        """Checked when the config is loaded."""
        if self.method not in (*METHODS, "auto"):
            raise ValueError(f"method: {self.method!r}; use one of {', '.join(METHODS)} or auto")
        if self.cohort not in (*COHORTS, "auto"):
            raise ValueError(f"cohort: {self.cohort!r}; use one of {', '.join(COHORTS)} or auto")
        if self.method in ("asnorm", "auto") and not self.top_k:
            raise ValueError("top_k: give at least one cohort size for asnorm")
        if any(k < 2 for k in self.top_k):
            raise ValueError(f"top_k: {self.top_k}: every size must be >= 2")

    def candidates(self) -> list[NormSpec]:
        """The settings to compare on validation (:func:`candidate_specs`)."""
        return candidate_specs(self.method, self.cohort, self.top_k)
