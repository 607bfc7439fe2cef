"""modalink: shared-encoder multimodal learning (face–voice association, missing-modality
classification, item towers)."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "__version__"]


def __getattr__(name: str) -> Any:
    # lazy: torch-free parts (metrics, config, challenge tooling) import without loading torch
    if name in ("create_model", "list_models"):
        from modalink import models

        return getattr(models, name)
    raise AttributeError(f"module 'modalink' has no attribute {name!r}")
