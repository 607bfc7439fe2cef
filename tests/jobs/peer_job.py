"""A 2-process job for the lost-peer tests: one all-reduce per step; at step 3 process 1 stops
(SIGSTOP, a frozen peer) or dies (SIGKILL), as ``argv[0]`` says; ``argv[1]`` is the collective
timeout in seconds."""
from __future__ import annotations

import os
import signal
import sys
from typing import Sequence

from modalink.errors import run_cli


def main(argv: Sequence[str] | None) -> int:
    import torch
    import torch.distributed as dist

    from modalink.engine import EngineConfig
    from modalink.engine.trainer import process_state

    mode, timeout = argv[0], float(argv[1])
    state = process_state(EngineConfig(cpu=True, collective_timeout_s=timeout))
    for step in range(6):
        if step == 3 and state.process_index == 1:
            print(f"process 1: {mode}", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP if mode == "stop" else signal.SIGKILL)
        t = torch.ones(1)
        dist.all_reduce(t)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
