"""The one Accelerate training engine: ``Trainer``, ``EngineConfig``, run folders.

Names are imported on first use, so the torch-free parts (``modalink.engine.run``,
``modalink.engine.run_folder``) load without torch and a command's ``--help`` answers at once."""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    **{name: "modalink.engine.run" for name in ("append_jsonl", "attach_log_file", "configure_logging", "log_also_to",
                                                "start_run")},
    **{name: "modalink.engine.session" for name in ("RunSession", "run_session", "exported_network")},
    **{name: "modalink.engine.trainer" for name in ("EngineConfig", "FitResult", "Trainer", "TrainState",
                                                    "list_checkpoints", "process_state", "runs_on_cpu")},
}

__all__ = ["Trainer", "EngineConfig", "FitResult", "TrainState", "list_checkpoints", "process_state", "runs_on_cpu", "start_run",
           "configure_logging", "attach_log_file", "log_also_to", "append_jsonl", "RunSession", "run_session",
           "exported_network"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modalink.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
