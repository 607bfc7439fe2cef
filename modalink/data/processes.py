"""The processes of a launched job, as data-preparation code sees them: who am I, how many are
we, and the few collectives that split work and merge its results (a barrier, a broadcast from
the main process, a gather of small Python objects, and a split of rows into per-process blocks
gathered back in order).

A plain ``python`` run is :meth:`Processes.single` and every collective is a no-op. Under
``accelerate launch`` / ``torchrun`` (``WORLD_SIZE`` > 1), :meth:`Processes.launched` joins the
job's process group through accelerate's ``PartialState`` (gloo on the CPU, the accelerator's
backend otherwise), with a bounded collective timeout, so a lost peer ends the job with
:class:`modalink.errors.LostProcessError` instead of a silent wait.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
__all__ = ["Processes", "launched_world_size"]


def launched_world_size() -> int:
    """``WORLD_SIZE`` as set by ``accelerate launch`` / ``torchrun`` (1 for a plain run)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
    except ValueError:
        return 1


@dataclass(frozen=True)
class Processes:
    """This process's place in the job: ``index`` (0 is the main process) of ``count``, and
    ``local_index`` on its machine (which accelerator it uses)."""

    index: int = 0
    count: int = 1
    local_index: int = 0

    @classmethod
    def single(cls) -> "Processes":
        """A job of one process (every collective is a no-op)."""
        return cls()

    @classmethod
    def launched(cls, cpu: bool, timeout_s: float = 300.0) -> "Processes":
        """The launched job's processes (:meth:`single` when not launched). ``cpu``: form the
        group with gloo (every process of a job must decide the same way, see
        :func:`modalink.engine.trainer.runs_on_cpu`)."""
        import torch.distributed as dist

        if not dist.is_available() or (launched_world_size() < 2 and not dist.is_initialized()):
            return cls.single()
        from accelerate import PartialState

        state = PartialState(cpu=cpu, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(state.process_index, state.num_processes, state.local_process_index)

    @classmethod
    def current(cls) -> "Processes":
        """The processes of the process group already formed in this process (e.g. by a
        recipe's ``process_state``); :meth:`single` when there is none."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return cls.single()
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()) or 0)
        return cls(dist.get_rank(), dist.get_world_size(), local)

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.count > 1

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """The main process's ``value`` (picklable), on every process."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), in process order, on every process."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.count
        dist.all_gather_object(out, value)
        return out

    def share(self, n: int) -> np.ndarray:
        """The indices of this process's contiguous block of ``n`` rows (blocks in process order,
        sizes differing by at most one). With fewer rows than processes every process takes all."""
        if not self.distributed or n < self.count:
            return np.arange(n)
        bounds = _block_bounds(n, self.count)
        return np.arange(bounds[self.index], bounds[self.index + 1])

    def gather_rows(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Every process's block (:meth:`share` of ``n``) of a per-row tensor, concatenated in row
        order, on every process: what one process computing all ``n`` rows would hold."""
        if not self.distributed or n < self.count:
            return x
        import torch
        import torch.distributed as dist

        sizes = np.diff(_block_bounds(n, self.count))
        if x.shape[0] != sizes[self.index]:
            raise ValueError(f"process {self.index} holds {x.shape[0]} rows, its share of {n} is {sizes[self.index]}")
        buf = torch.cat([x, x.new_zeros((int(sizes.max()) - x.shape[0], *x.shape[1:]))]).contiguous()
        parts = [torch.empty_like(buf) for _ in range(self.count)]
        dist.all_gather(parts, buf)
        return torch.cat([p[:s] for p, s in zip(parts, sizes.tolist())])

    def first_error(self, error: str | None) -> str | None:
        """Collective: the first process's error message (by process order) when any process
        has one, so every process can stop together instead of waiting for a lost peer."""
        errors = [e for e in self.gather(error) if e]
        return errors[0] if errors else None


def _block_bounds(n: int, count: int) -> np.ndarray:
    """Start of each of ``count`` contiguous blocks of ``n`` rows, and ``n``."""
    return np.array([n * i // count for i in range(count + 1)], dtype=np.int64)
