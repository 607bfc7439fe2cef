"""The loss base class, the loss registry and a gather-with-gradient helper."""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from modalink.registry import Registry

__all__ = ["ModalinkLoss", "LOSSES", "register_loss", "create_loss", "list_losses",
           "distributed_world", "all_gather_rows"]


class ModalinkLoss(nn.Module):
    """Base class for modalink objectives: ``forward(...)`` returns a scalar tensor.

    Subclasses keep the forward pass of the model apart from the objective (SpeechBrain
    style): they take embeddings/logits and labels, never inputs.
    """

    @staticmethod
    def check_embeddings(x: torch.Tensor, name: str = "embeddings") -> None:
        """Raise ``ValueError`` unless ``x`` is a floating (B, D) tensor with B >= 1."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (batch, dim) matrix, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {x.dtype}")

    @staticmethod
    def check_labels(labels: torch.Tensor, n: int, name: str = "labels") -> None:
        """Raise ``ValueError`` unless ``labels`` is an integer vector of length ``n``."""
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"{name} must hold integer class ids, got {labels.dtype}")


LOSSES: Registry[nn.Module] = Registry("loss", providers=("modalink.losses",))
register_loss = LOSSES.register


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered loss; unknown names raise ``KeyError`` listing the known ones."""
    return LOSSES.create(name, **kwargs)


def list_losses(pattern: str | None = None) -> list[str]:
    """Sorted names of registered losses, optionally filtered by a glob ``pattern``."""
    return LOSSES.list(pattern)


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` when not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_rows(x: torch.Tensor, with_grad: bool = True) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` (rows) from every process; return ``(gathered, offset)``.

    ``offset`` is where this process's rows start in ``gathered``. Per-process row counts
    may differ (rows are padded for the collective and the padding is dropped). With
    ``with_grad`` the local shard keeps its gradient path and, in backward, receives the
    gradients every process computed for it (``torch.distributed.nn.functional.all_gather``).
    Without an initialised process group this returns ``(x, 0)``. Every process must call it.
    """
    rank, world = distributed_world()
    if world == 1:
        return x, 0
    n_local = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes_t = [torch.zeros_like(n_local) for _ in range(world)]
    dist.all_gather(sizes_t, n_local)
    sizes = [int(s.item()) for s in sizes_t]
    longest = max(sizes)
    padded = x
    if x.shape[0] < longest:
        pad_shape = (longest - x.shape[0],) + tuple(x.shape[1:])
        padded = torch.cat([x, x.new_zeros(pad_shape)], dim=0)
    padded = padded.contiguous()
    if with_grad:
        from torch.distributed.nn.functional import all_gather as all_gather_autograd
        parts = list(all_gather_autograd(padded))
    else:
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
    gathered = torch.cat([p[:s] for p, s in zip(parts, sizes)], dim=0)
    return gathered, sum(sizes[:rank])


def normalize_if(x: torch.Tensor, flag: bool) -> torch.Tensor:
    """L2-normalise rows when ``flag`` is set."""
    return F.normalize(x, p=2, dim=1) if flag else x
