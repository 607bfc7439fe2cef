"""Training-time modality sampling: ONE pluggable strategy for which modalities a sample keeps.

A :class:`ModalitySampler` maps the availability of a batch to the modalities each sample keeps::

    kept = sampler(available, step=0, generator=None)   # B×M bool → B×M bool, kept ⊆ available

and a row that had something available never ends with nothing kept. Strategies:

* :class:`SubsetSampler` — a subset drawn from named probabilities (``{"image": 1, "text": 1,
  "image+text": 1}``): per sample (SRMM's modality switching), once per batch, or in turn
  (``alternate``, one subset per step);
* :class:`CountSampler` — a size ``k`` drawn from ``sample_sizes`` (SiBraR: 1 or 2), clipped to
  what the sample has, and ``k`` of its available modalities kept at random;
* :class:`DropSampler` — modality dropout: exclusive events that hide one modality of a complete
  sample (Chameleon, the multi-branch baseline);
* :class:`KeepAll` — no sampling.

Models that sample (:class:`modalink.models.SingleBranch`, the image classifiers, the recsys item
tower) hold their strategy as ``model.sampler`` and call it in training mode only;
:class:`modalink.classification.trainer_module.MissingModalityModule` applies one before its
network. Any of them takes another strategy by assignment (``model.sampler = CountSampler(...)``)
or, where the constructor has a ``sampler`` argument, a spec (:func:`build_sampler`). Samplers are
``nn.Module`` s whose tensors are NON-persistent buffers: they move with the model and leave state
dicts and checkpoints unchanged. Strategies are registered by name (:func:`register_sampler`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from modalink.errors import InputError
from modalink.registry import Registry

__all__ = ["ModalitySampler", "SubsetSampler", "CountSampler", "DropSampler", "KeepAll", "parse_subsets",
           "SAMPLERS", "register_sampler", "create_sampler", "list_samplers", "build_sampler"]

SAMPLERS: Registry["ModalitySampler"] = Registry("modality sampler")
register_sampler = SAMPLERS.register


def parse_subsets(spec: Mapping[str, float], modalities: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``{"face": 1, "face+voice": 2}`` → (K×M bool matrix of subsets, K probabilities)."""
    rows, probs = [], []
    for name, p in spec.items():
        parts = [s.strip() for s in name.split("+")]
        unknown = [s for s in parts if s not in modalities]
        if unknown:
            raise InputError(f"modality subset {name!r} names unknown modality {unknown}; "
                             f"known: {list(modalities)}")
        if p < 0:
            raise InputError(f"modality subset {name!r} has a negative probability {p}")
        rows.append([m in parts for m in modalities])
        probs.append(float(p))
    if not rows or sum(probs) <= 0:
        raise InputError("modality_subsets needs at least one subset with a positive probability")
    p = torch.tensor(probs)
    return torch.tensor(rows, dtype=torch.bool), p / p.sum()


class ModalitySampler(nn.Module):
    """Base strategy: ``sampler(available, step=0, generator=None)`` → kept modalities.

    Args:
        modalities: the column names of ``available``, in order; ``None`` for a strategy that does
            not name modalities (it then works with any columns).

    ``available`` is a B×M bool tensor; the result is a B×M bool tensor on its device, a subset
    of it, with at least one modality kept in every row that had one. ``step`` counts training
    steps (for schedules); ``generator`` is an optional ``torch.Generator`` for the draws.
    """

    def __init__(self, modalities: Sequence[str] | None = None) -> None:
        super().__init__()
        self.modalities = tuple(modalities) if modalities is not None else None

    def forward(self, available: torch.Tensor, step: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, available: torch.Tensor) -> None:
        if available.ndim != 2 or available.dtype != torch.bool:
            raise ValueError(f"available must be a B×M bool tensor, got {available.dtype} of shape "
                             f"{tuple(available.shape)}")
        if self.modalities is not None and available.shape[1] != len(self.modalities):
            raise ValueError(f"available has {available.shape[1]} columns; this sampler's modalities are "
                             f"{list(self.modalities)}")

    def extra_repr(self) -> str:
        return f"modalities={list(self.modalities)}" if self.modalities is not None else ""


@register_sampler("keep_all")
class KeepAll(ModalitySampler):
    """No sampling: every available modality is kept (no random draw)."""

    def forward(self, available: torch.Tensor, step: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(available)
        return available


@register_sampler("subsets")
class SubsetSampler(ModalitySampler):
    """Keep a subset drawn from ``subsets`` probabilities (SRMM's modality switching).

    Args:
        subsets: probability (any positive scale) of each subset, keys like ``"image"``,
            ``"text"``, ``"image+text"``.
        modalities: the column names of ``available``.
        mode: ``per_sample`` (a subset per sample), ``per_batch`` (one subset for the whole
            batch) or ``alternate`` (the subsets of positive probability in turn, one per
            ``step``: image, text, image+text, image, ...).
        draw_on_cpu: draw the subsets with the CPU generator wherever the model lives (what
            SRMM's trainer module has always done, so its seeded GPU runs are unchanged);
            otherwise the draw happens on the sampler's device.

    A row whose subset keeps none of its available modalities keeps what it has.
    """

    MODES = ("per_sample", "per_batch", "alternate")

    def __init__(self, subsets: Mapping[str, float], modalities: Sequence[str], mode: str = "per_sample",
                 draw_on_cpu: bool = False) -> None:
        if mode not in self.MODES:
            raise InputError(f"subset sampling mode={mode!r}; use one of {', '.join(self.MODES)}")
        super().__init__(modalities)
        self.mode, self.draw_on_cpu = mode, bool(draw_on_cpu)
        self.names = list(subsets)
        subset_rows, probs = parse_subsets(subsets, self.modalities or ())
        self.register_buffer("subsets", subset_rows, persistent=False)
        self.register_buffer("probs", probs, persistent=False)

    def forward(self, available: torch.Tensor, step: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(available)
        b = available.shape[0]
        probs = self.probs.cpu() if self.draw_on_cpu else self.probs
        if self.mode == "per_sample":
            k = torch.multinomial(probs, b, replacement=True, generator=generator)
        elif self.mode == "per_batch":
            k = torch.multinomial(probs, 1, generator=generator).expand(b)
        else:
            active = (probs > 0).nonzero().flatten()
            k = active[step % len(active)].expand(b)
        keep = self.subsets[k.to(self.subsets.device)].to(available.device) & available
        empty = ~keep.any(dim=1)
        return torch.where(empty.unsqueeze(1), available, keep)

    def extra_repr(self) -> str:
        return f"{dict(zip(self.names, self.probs.tolist()))}, mode={self.mode!r}, {super().extra_repr()}"


@register_sampler("count")
class CountSampler(ModalitySampler):
    """Keep ``k`` random modalities of each sample's AVAILABLE ones (SiBraR's sampling).

    Args:
        modalities: optional column names (any columns when ``None``).
        sample_sizes: ``k`` is drawn uniformly from these, then clipped to the number the sample
            has; empty or ``None``: keep every available modality (no random draw).
        keep_all_prob: probability that a sample keeps ALL its modalities instead.
    """

    def __init__(self, modalities: Sequence[str] | None = None, sample_sizes: Sequence[int] | None = (1, 2),
                 keep_all_prob: float = 0.0) -> None:
        super().__init__(modalities)
        sizes = sorted(set(int(k) for k in (sample_sizes or ())))
        if any(k < 1 for k in sizes):
            raise InputError(f"sample_sizes must be positive, got {list(sample_sizes or ())}")
        if not 0.0 <= keep_all_prob < 1.0:
            raise InputError(f"keep_all_prob must lie in [0, 1), got {keep_all_prob}")
        self.register_buffer("sample_sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        self.keep_all_prob = float(keep_all_prob)

    def forward(self, available: torch.Tensor, step: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(available)
        if not self.sample_sizes.numel():
            return available
        n, m = available.shape
        dev = available.device
        n_avail = available.sum(1)
        sizes = self.sample_sizes.to(dev)
        k = sizes[torch.randint(sizes.numel(), (n,), device=dev, generator=generator)]
        k = torch.minimum(k, n_avail)
        if self.keep_all_prob > 0:
            k = torch.where(torch.rand(n, device=dev, generator=generator) < self.keep_all_prob, n_avail, k)
        # a random order of the available modalities; the first k are kept
        noise = torch.rand(n, m, device=dev, generator=generator).masked_fill(~available, -1.0)
        rank = noise.argsort(dim=1, descending=True).argsort(dim=1)
        return available & (rank < k.unsqueeze(1))

    def extra_repr(self) -> str:
        return (f"sample_sizes={self.sample_sizes.tolist()}, keep_all_prob={self.keep_all_prob}, "
                f"{super().extra_repr()}")


@register_sampler("drop")
class DropSampler(ModalitySampler):
    """Modality dropout: hide one modality of a COMPLETE sample (every modality available).

    Args:
        drop: probability of hiding each modality, e.g. ``{"text": 0.3, "image": 0.1}``. The
            events are exclusive (one uniform draw per sample, intervals in this order), so no
            sample loses more than one modality; the probabilities must sum to at most 1.
        modalities: the column names of ``available`` (at least two).

    Samples that already miss a modality are left as they are.
    """

    def __init__(self, drop: Mapping[str, float], modalities: Sequence[str]) -> None:
        super().__init__(modalities)
        names = self.modalities or ()
        if len(names) < 2:
            raise InputError(f"DropSampler needs at least two modalities, got {list(names)}")
        unknown = [m for m in drop if m not in names]
        if unknown:
            raise InputError(f"modality dropout names unknown modality {unknown}; known: {list(names)}")
        p = [float(v) for v in drop.values()]
        if any(v < 0 for v in p) or sum(p) > 1:
            keys = [f"drop_{m}" for m in drop]
            raise InputError(f"need {', '.join(keys)} >= 0 and {' + '.join(keys)} <= 1, "
                             f"got {', '.join(str(v) for v in drop.values())}")
        self.drop = {m: float(v) for m, v in drop.items()}

    def forward(self, available: torch.Tensor, step: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(available)
        if not any(self.drop.values()):
            return available
        r = torch.rand(available.shape[0], device=available.device, generator=generator)
        full = available.all(dim=1)
        hidden = torch.zeros_like(available)
        lo = 0.0
        for m, p in self.drop.items():
            j = self.modalities.index(m)  # type: ignore[union-attr]
            hidden[:, j] |= full & (r >= lo) & (r < lo + p)
            lo += p
        return available & ~hidden

    def extra_repr(self) -> str:
        return f"drop={self.drop}, {super().extra_repr()}"


def create_sampler(name: str, **kwargs: Any) -> ModalitySampler:
    """Build a registered strategy; unknown names raise ``KeyError`` listing the known ones."""
    return SAMPLERS.create(name, **kwargs)


def list_samplers(pattern: str | None = None) -> list[str]:
    """Sorted names of registered strategies, optionally filtered by a glob ``pattern``."""
    return SAMPLERS.list(pattern)


def build_sampler(spec: ModalitySampler | str | Mapping[str, Any] | None,
                  modalities: Sequence[str] | None = None) -> ModalitySampler:
    """A strategy from a config value: a :class:`ModalitySampler` (returned as is), a registered
    name (``"keep_all"``), ``{"name": ..., "kwargs": {...}}`` or ``None`` (keep all).

    ``modalities`` (the model's) are passed to the strategy unless the spec names its own."""
    if isinstance(spec, ModalitySampler):
        return spec
    if spec is None:
        spec = "keep_all"
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping) or "name" not in spec or set(spec) - {"name", "kwargs"}:
        raise InputError(f"a modality sampler spec is a name or {{'name': ..., 'kwargs': {{...}}}}, got {spec!r}")
    kwargs = dict(spec.get("kwargs") or {})
    if modalities is not None:
        kwargs.setdefault("modalities", tuple(modalities))
    return create_sampler(spec["name"], **kwargs)
