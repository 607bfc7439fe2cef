"""Open any modalink run folder by itself: ``open_run(path)`` reads the recipe its ``run.json``
records and returns that task's run object (config, results, exported models)."""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from modalink.errors import FileFormatError, UserError

__all__ = ["open_run", "RUN_LOADERS"]

#: recipe name in run.json → the module whose ``load_run(path)`` opens it
RUN_LOADERS = {"fame": "modalink.face_voice.runs", "srmm": "modalink.classification.runs",
               "chameleon": "modalink.classification.runs", "recsys": "modalink.recsys.runs"}


def open_run(run_dir: str | os.PathLike) -> Any:
    """The run in ``run_dir``: a :class:`~modalink.face_voice.runs.FameRun`,
    :class:`~modalink.classification.runs.ClassificationRun` or :class:`~modalink.recsys.runs.RecsysRun`."""
    from modalink.engine.run_folder import CONTRACT_FILE

    path = Path(run_dir)
    contract_path = path / CONTRACT_FILE
    if not contract_path.is_file():
        what = "does not exist" if not path.exists() else f"has no {CONTRACT_FILE}"
        raise UserError(f"{path} {what}: it is not a modalink run folder (pass a train.py --output-dir)")
    try:
        recipe = json.loads(contract_path.read_text(encoding="utf-8")).get("recipe")
    except (ValueError, AttributeError) as exc:
        raise FileFormatError(contract_path, f"not a run contract ({exc})") from None
    if recipe not in RUN_LOADERS:
        raise UserError(f"{path} holds a run of the {recipe!r} recipe; modalink opens runs of "
                        f"{', '.join(sorted(RUN_LOADERS))}")
    return importlib.import_module(RUN_LOADERS[recipe]).load_run(path)
