"""One export format for trained models, laid out like a model-hub folder.

Every recipe ends a run by exporting each trained model with :func:`save_pretrained`; every
``evaluate.py``, the raw-media verifier and the recommender's item towers load it with
:func:`from_pretrained`. A folder holds

* ``config.json`` — the registry name and constructor arguments (``create_model(name, **kwargs)``
  rebuilds the architecture), the input contract (what the model reads: feature widths, image
  size and normalisation, modalities, ...), the run's resolved config and its fingerprint;
* ``model.safetensors`` — the weights (no pickle: loading never runs code);
* ``README.md`` — a generated model card with the results of the run that trained it.

``create_model`` records the name and arguments on the model (``model.model_spec``), so any
registered model can be exported without knowing its class.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch.nn as nn

from modalink.config import to_dict
from modalink.io import DamagedFileError, atomic_dir

__all__ = ["save_pretrained", "from_pretrained", "read_model_config", "EXPORT_FORMAT"]

EXPORT_FORMAT = 1


def _card(name: str, kwargs: Mapping[str, Any], contract: Mapping[str, Any], results: Mapping[str, Any] | None,
          title: str | None) -> str:
    lines = [f"# {title or name}", "", "A modalink model. Load it with", "", "```python",
             "from modalink.hub import from_pretrained", "model = from_pretrained(\"path/to/this/folder\")", "```",
             "", f"- architecture: `{name}` (`modalink.models.create_model`)",
             f"- arguments: `{json.dumps(to_dict(kwargs), sort_keys=True)}`"]
    if contract:
        lines.append("- input contract: " + ", ".join(f"{k} = `{v}`" for k, v in contract.items()))
    if results:
        lines += ["", "## Results of the run that trained it", "", "| metric | value |", "|---|---|"]
        for k, v in results.items():
            shown = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"| {k} | {shown} |")
    return "\n".join(lines) + "\n"


def save_pretrained(model: nn.Module, folder: str | os.PathLike, *, contract: Mapping[str, Any] | None = None,
                    config: Mapping[str, Any] | None = None, results: Mapping[str, Any] | None = None,
                    title: str | None = None) -> Path:
    """Export ``model`` (built by ``create_model``) to ``folder`` atomically (staged, then swapped in)."""
    from safetensors.torch import save_model

    spec = getattr(model, "model_spec", None)
    if not spec:
        raise ValueError(f"{type(model).__name__} was not built by modalink.models.create_model, so its "
                         f"architecture cannot be recorded; build it with create_model(name, **kwargs)")
    body = {"format": EXPORT_FORMAT, "name": spec["name"], "kwargs": to_dict(spec["kwargs"]),
            "contract": to_dict(contract or {}), "results": to_dict(results or {}), "config": to_dict(config or {})}
    if config:
        from modalink.engine.run_folder import config_fingerprint
        body["config_fingerprint"] = config_fingerprint(body["config"])
    was = model.training
    model.eval()
    try:
        with atomic_dir(folder) as stage:
            save_model(model, str(stage / "model.safetensors"), metadata={"format": "pt"})
            (stage / "config.json").write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
            (stage / "README.md").write_text(_card(spec["name"], spec["kwargs"], body["contract"], body["results"],
                                                   title), encoding="utf-8")
    finally:
        model.train(was)
    return Path(folder)


def read_model_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of an exported model folder (errors name the folder)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {folder} ({path.name} is missing); an exported model folder "
                                f"holds config.json and model.safetensors")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DamagedFileError(f"{path} is damaged ({exc})") from None
    if not isinstance(body, dict) or "name" not in body or "kwargs" not in body:
        raise DamagedFileError(f"{path} is not a modalink model config (needs 'name' and 'kwargs')")
    return body


def from_pretrained(folder: str | os.PathLike, *, device: str | None = None) -> nn.Module:
    """Rebuild and load an exported model (strict: every weight must match), in eval mode.
    The parsed ``config.json`` is attached as ``model.export_config``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from modalink.models import create_model

    body = read_model_config(folder)
    model = create_model(body["name"], **body["kwargs"])
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing")
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=device or "cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DamagedFileError(f"{weights} cannot be read ({str(exc).splitlines()[0][:200]})") from None
    if missing or unexpected:
        raise DamagedFileError(f"{weights} does not fit {body['name']}{body['kwargs']}: missing {sorted(missing)[:5]}, "
                               f"unexpected {sorted(unexpected)[:5]}")
    model.export_config = body
    return model.eval()
