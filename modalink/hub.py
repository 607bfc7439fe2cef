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

__all__ = ["save_pretrained", "from_pretrained", "read_model_config", "ModelConfigError", "EXPORT_FORMAT"]

EXPORT_FORMAT = 1


class ModelConfigError(DamagedFileError):
    """An exported model's ``config.json`` that does not describe the model next to it (unknown
    architecture, arguments its constructor does not take, dimensions other than the weights')."""


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




def _accepted_arguments(name: str) -> set[str] | None:
    """The keyword arguments ``create_model(name, ...)`` takes: the factory's own, or (for a
    factory that forwards ``**kw``) its model class's constructor's; ``None`` when any name goes."""
    import inspect
    import typing

    from modalink.models.registry import MODELS

    target: Any = MODELS.get(name)
    for _ in range(2):
        params = inspect.signature(target).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        try:
            target = typing.get_type_hints(target).get("return")
        except Exception:  # noqa: BLE001 - an annotation that does not resolve: no check possible
            return None
        if not isinstance(target, type):
            return None
    return None


def _check_config(body: Mapping[str, Any], path: Path) -> None:
    """Refuse a ``config.json`` naming an unknown model or arguments its constructor does not take."""
    from modalink.models.registry import MODELS, list_models

    name, kwargs = body["name"], body["kwargs"]
    if not isinstance(name, str) or name not in MODELS:
        raise ModelConfigError(f"{path}: 'name' is {name!r}, which is not a registered model (known: "
                               f"{', '.join(list_models())}); restore the name the model was exported with")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ModelConfigError(f"{path}: 'kwargs' must map argument names to values, got {kwargs!r}")
    accepted = _accepted_arguments(name)
    unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unknown:
        raise ModelConfigError(f"{path}: 'kwargs' key {unknown[0]!r} is not an argument of model {name!r} (it takes "
                               f"{', '.join(sorted(accepted))}); remove it")


def _check_shapes(model: nn.Module, weights: Path, path: Path, body: Mapping[str, Any]) -> None:
    """Refuse weights whose tensor shapes differ from the ones ``config.json``'s arguments build."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DamagedFileError(f"{weights} cannot be read ({str(exc).splitlines()[0][:200]})") from None
    for key, tensor in model.state_dict().items():
        if key in shapes and shapes[key] != tuple(tensor.shape):
            raise ModelConfigError(
                f"{path}: the dimensions in config.json do not match the shapes in {weights.name} ({key} is "
                f"{list(shapes[key])} there, {list(tensor.shape)} with config.json's kwargs "
                f"{json.dumps(body['kwargs'], sort_keys=True)[:200]}); restore config.json or re-export the model")


def from_pretrained(folder: str | os.PathLike, *, device: str | None = None) -> nn.Module:
    """Rebuild and load an exported model (strict: every weight must match), in eval mode.
    ``config.json`` is checked against the registry, the constructor's arguments and the weights'
    shapes first (:class:`ModelConfigError` naming the key). The parsed ``config.json`` is
    attached as ``model.export_config``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from modalink.models import create_model

    body = read_model_config(folder)
    path = Path(folder) / "config.json"
    _check_config(body, path)
    try:
        model = create_model(body["name"], **body["kwargs"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelConfigError(f"{path}: 'kwargs' do not build model {body['name']!r} "
                               f"({' '.join(str(exc).split())[:200]}); restore the exported arguments") from None
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing")
    _check_shapes(model, weights, path, body)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=device or "cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DamagedFileError(f"{weights} cannot be read ({str(exc).splitlines()[0][:200]})") from None
    if missing or unexpected:
        raise ModelConfigError(f"{path}: the model config.json describes does not fit the weights in {weights.name}: "
                               f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}; restore "
                               f"config.json or re-export the model")
    model.export_config = body
    return model.eval()
