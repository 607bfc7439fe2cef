"""A recsys run folder: what it holds, the exported item tower, and :func:`load_run` to open a
finished run without the recipe (its config, item tower, catalogue index and results).

Layout (``recipes/recsys/train.py --output-dir RUN``): ``run.json`` (the run contract: config and
data fingerprint), ``config.yaml``, ``log.txt``; ``tower/`` and ``mf/`` (engine run folders with
``best_model.pt``); ``split.json``; ``media_report.json`` and ``media_cache/`` (catalogue runs);
``item_index.npz`` (catalogue vectors and ids); ``tower_model/`` (the exported item tower, a
:func:`modalink.hub.from_pretrained` folder); ``results.json`` and ``results.md``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch.nn as nn

from modalink.config import load_config, to_dict
from modalink.errors import InputError
from modalink.io import read_json_object
from modalink.recsys.config import RecsysConfig
from modalink.recsys.data import RecsysData
from modalink.recsys.report import MEDIA_REPORT_FILE, RESULTS_FILE, SPLIT_FILE

__all__ = ["RECIPE", "TOWER_FOLDER", "INDEX_FILE", "TOWER_RUN", "MF_RUN", "MEDIA_CACHE", "RUN_ENTRIES",
           "RESUME_IGNORE", "tower_contract", "tower_export", "RecsysRun", "load_run"]

RECIPE = "recsys"
TOWER_FOLDER = "tower_model"
INDEX_FILE = "item_index.npz"
TOWER_RUN = "tower"
MF_RUN = "mf"
MEDIA_CACHE = "media_cache"
# what a run writes besides the shared run files, and the settings a resumed run may change
RUN_ENTRIES = (TOWER_RUN, MF_RUN, SPLIT_FILE, INDEX_FILE, TOWER_FOLDER, MEDIA_REPORT_FILE, MEDIA_CACHE)
RESUME_IGNORE = ("output_dir", "data.cache_dir", "media.device", "media.batch_size", "media.shard_size")


def tower_contract(cfg: RecsysConfig, item_tower: nn.Module, data: RecsysData, info: Mapping[str, Any]
                   ) -> dict[str, Any]:
    """The exported tower's contract: its modalities, the tag vocabulary, the index file and, for a
    catalogue, the media encoders (what :class:`~modalink.recsys.raw_items.ColdItemEncoder` rebuilds)."""
    contract: dict[str, Any] = {"task": "recsys item tower", "modalities": list(item_tower.modalities),
                                "tag_vocab": data.tag_vocab, "embed_dim": cfg.tower.embed_dim, "index": INDEX_FILE}
    if "media" in info:
        contract["media"] = {"config": to_dict(cfg.media), "modalities": list(info["media"]),
                             "encoders": info["media_configs"]}
    if "item_model" in info:
        contract["item_model"] = {n: v for n, v in info["item_model"].items() if n not in ("state_dict", "tower_kwargs")}
    return contract


def tower_export(cfg: RecsysConfig, item_tower: nn.Module, data: RecsysData, info: Mapping[str, Any],
                 results: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the item tower's export (``RunSession.export`` /
    :func:`modalink.hub.save_pretrained`): its contract, the item-cold-start test results for
    the model card, and the card's title."""
    cold = results["modalink tower"].get("item_cold", {})
    return {"contract": tower_contract(cfg, item_tower, data, info),
            "results": {f"item_cold_{n}": v for n, v in cold.items() if n != "users"},
            "title": f"modalink recsys item tower ({data.name})"}


@dataclass
class RecsysRun:
    """A finished recsys run, opened by :func:`load_run`."""

    path: Path
    config: RecsysConfig
    item_tower: nn.Module  # the exported ItemTower, in eval mode
    index: Any  # InnerProductIndex over the catalogue's item vectors
    results: dict[str, Any] = field(default_factory=dict)  # results.json ({} when absent)
    contract: dict[str, Any] = field(default_factory=dict)  # run.json

    @property
    def tower_contract(self) -> dict[str, Any]:
        """The exported tower's contract (modalities, tag vocabulary, media encoders)."""
        return dict(getattr(self.item_tower, "export_config", {}).get("contract", {}))

    def checkpoint(self, part: str = TOWER_RUN) -> Path:
        """The best checkpoint of ``part`` (``"tower"``: user + item towers; ``"mf"``: BPR-MF)."""
        return self.path / part / "best_model.pt"


def load_run(run_dir: str | os.PathLike, *, device: str | None = None) -> RecsysRun:
    """Open the finished recsys run in ``run_dir``: its config (from ``run.json``), the exported
    item tower, the catalogue index and ``results.json``. A folder that is not a recsys run, or a
    run that has not exported its tower yet, is refused in one line."""
    from modalink.engine.run_folder import CONTRACT_FILE
    from modalink.hub import from_pretrained
    from modalink.recsys.index import InnerProductIndex

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    contract_path = run_dir / CONTRACT_FILE
    if not contract_path.is_file():
        raise InputError(f"{run_dir} is not a modalink run folder (no {CONTRACT_FILE})")
    contract = read_json_object(contract_path)
    if contract.get("recipe") != RECIPE or not isinstance(contract.get("config"), dict):
        raise InputError(f"{run_dir} holds a run of the {contract.get('recipe')!r} recipe, not a recsys run")
    config = load_config(RecsysConfig, defaults=contract["config"])
    folder = run_dir / TOWER_FOLDER
    index_path = run_dir / INDEX_FILE
    if not (folder / "config.json").is_file() or not index_path.is_file():
        missing = folder if not (folder / "config.json").is_file() else index_path
        raise InputError(f"{missing} is missing: the run in {run_dir} has not finished (run the same train.py "
                         f"command again to resume and export it)")
    tower = from_pretrained(folder, device=device)
    results_path = run_dir / RESULTS_FILE
    results = read_json_object(results_path) if results_path.is_file() else {}
    return RecsysRun(run_dir, config, tower, InnerProductIndex.load(index_path), results, contract)
