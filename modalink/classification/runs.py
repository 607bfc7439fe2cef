"""Open a finished classification run (Chameleon or SRMM ``train.py --output-dir``) from the library:
its recipe, resolved config, results and each method's exported network."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modalink.errors import InputError, UserError
from modalink.io import read_json_object

__all__ = ["ClassificationRun", "load_run", "RECIPES"]

#: recipe name (``run.json``) → (config module, config class)
RECIPES = {"srmm": ("modalink.classification.srmm", "SRMMConfig"),
           "chameleon": ("modalink.classification.chameleon", "ChameleonRecipeConfig")}


@dataclass
class ClassificationRun:
    """A classification run folder: ``recipe`` (``srmm`` or ``chameleon``), its config and results."""

    path: Path
    recipe: str
    config: Any
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        """The methods the run trained, each with a ``<run>/<method>/model`` export."""
        if self.recipe == "srmm":
            return ["srmm"] + (["late_fusion"] if self.config.baseline.enabled else [])
        return list(self.config.methods)

    def model_dir(self, method: str) -> Path:
        return self.path / method / "model"

    def load_network(self, method: str, device: str | None = None) -> Any:
        """``method``'s exported network (:func:`modalink.hub.from_pretrained`), in eval mode."""
        from modalink.hub import from_pretrained

        if method not in self.methods:
            raise InputError(f"{self.path} holds no {method!r} model; this {self.recipe} run trained "
                             f"{', '.join(self.methods)}")
        folder = self.model_dir(method)
        if not (folder / "config.json").is_file():
            raise UserError(f"no exported {method} model in {folder}: the run has not finished (run the same "
                            f"train.py command again to resume and export it)")
        return from_pretrained(folder, device=device)


def load_run(run_dir: str | os.PathLike, overrides: list[str] | tuple[str, ...] = (), *,
             recipe: str | None = None, flag: str = "run folder") -> ClassificationRun:
    """Open the classification run in ``run_dir``: its recipe (``recipe``, or the one ``run.json``
    names), its ``config.yaml`` (with ``key=value`` ``overrides``; relative paths made absolute from
    the current folder) and ``results.json`` when written. A folder of another recipe is refused in
    one line naming ``flag``."""
    import importlib

    from modalink.config import load_config, make_paths_absolute
    from modalink.engine.run_folder import CONTRACT_FILE

    path = Path(run_dir).expanduser().absolute()
    if not (path / "config.yaml").is_file():
        what = "does not exist" if not path.exists() else "has no config.yaml"
        raise UserError(f"{flag} {run_dir} {what}: pass the --output-dir of a finished train.py run")
    contract = read_json_object(path / CONTRACT_FILE) if (path / CONTRACT_FILE).is_file() else {}
    recorded = contract.get("recipe")
    if recipe is not None and recorded is not None and recorded != recipe:
        raise UserError(f"{flag} {run_dir} holds a run of the {recorded} recipe, not {recipe}")
    recipe = recipe or recorded
    if recipe not in RECIPES:
        raise UserError(f"{flag} {run_dir} holds a run of the {recipe!r} recipe, not a classification run "
                        f"({' or '.join(RECIPES)})")
    module = importlib.import_module(RECIPES[recipe][0])
    cfg = load_config(getattr(module, RECIPES[recipe][1]), path / "config.yaml", list(overrides))
    (getattr(module, "absolute_paths", None) or make_paths_absolute)(cfg)  # SRMM also resolves encoder paths
    results = read_json_object(path / "results.json") if (path / "results.json").is_file() else {}
    return ClassificationRun(path, recipe, cfg, results)
