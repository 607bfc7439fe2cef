"""The one Accelerate training engine: ``Trainer``, ``EngineConfig``, run folders."""
from modalink.engine.run import append_jsonl, setup_logging, start_run
from modalink.engine.trainer import (EngineConfig, FitResult, Trainer, TrainState, list_checkpoints, process_state,
                                     runs_on_cpu)

__all__ = ["Trainer", "EngineConfig", "FitResult", "TrainState", "list_checkpoints", "process_state", "runs_on_cpu", "start_run",
           "setup_logging", "append_jsonl"]
