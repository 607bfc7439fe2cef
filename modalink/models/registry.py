"""The model registry: ``create_model(name, **kw)`` and ``list_models()``."""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from modalink.registry import Registry

# modalink.models registers the core models; the task packages register theirs
MODELS: Registry[nn.Module] = Registry("model", providers=("modalink.models", "modalink.recsys.towers"))
register_model = MODELS.register


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; unknown names raise ``KeyError`` listing the known ones.

    The name and arguments are recorded as ``model.model_spec``, so that
    :func:`modalink.hub.save_pretrained` can export any registered model."""
    model = MODELS.create(name, **kwargs)
    model.model_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally filtered by a glob ``pattern``."""
    return MODELS.list(pattern)
