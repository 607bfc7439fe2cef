"""The one Accelerate training engine: ``Trainer``, ``EngineConfig``, run folders."""
from modalink.engine.run import append_jsonl, setup_logging, start_run
from modalink.engine.trainer import EngineConfig, FitResult, Trainer, TrainState, list_checkpoints

__all__ = ["Trainer", "EngineConfig", "FitResult", "TrainState", "list_checkpoints", "start_run",
           "setup_logging", "append_jsonl"]
