"""Training a recsys run: the item/user tower objective from the config, the BPR-MF baseline, and
the validation score both are selected on."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from modalink.recsys.baselines import MatrixFactorization
from modalink.recsys.config import RecsysConfig
from modalink.recsys.data import ID, InteractionPairs, ItemFeatures, RecsysData, RecsysSplit, build_item_features
from modalink.recsys.evaluate import evaluate_split
from modalink.recsys.towers import RecsysObjective, UserTower

__all__ = ["build_tower_objective", "validation_fn", "train_tower", "train_mf", "modality_subsets"]


def build_tower_objective(cfg: RecsysConfig, data: RecsysData, split: RecsysSplit,
                          item_model: Mapping[str, Any] | None = None) -> tuple[RecsysObjective, ItemFeatures]:
    """``(RecsysObjective, ItemFeatures)`` for the configured towers (``item_model``: the settings
    :func:`~modalink.recsys.raw_items.apply_item_model` returned, for a fine-tuned item model)."""
    from modalink.models import create_model

    t = cfg.tower
    feats = build_item_features(data, split, use_profile=t.use_profile, use_id=t.use_id,
                                modalities=t.modalities)
    extra = dict((item_model or {}).get("tower_kwargs") or {})
    dims = {m: int(x.shape[1]) for m, x in feats.dense.items()}
    dims.update(extra.pop("dense_dims", {}))
    extra["encoder_inputs"] = {m: v for m, v in extra.get("encoder_inputs", {}).items() if m in dims}
    if not extra["encoder_inputs"]:
        extra = {}
    item = create_model("recsys_item_tower", dense_dims=dims,
                        bag_sizes={m: b.num_embeddings for m, b in feats.bags.items()},
                        num_ids=feats.n_items if ID in feats.available else 0, embed_dim=t.embed_dim,
                        stem_dim=t.stem_dim, bag_dim=t.bag_dim, trunk_hidden=list(t.trunk_hidden), norm=t.norm,
                        dropout=t.dropout, sample_sizes=list(t.sample_sizes), keep_all_prob=t.keep_all_prob,
                        bag_dropout=t.bag_dropout, combine=t.combine, input_norm=t.input_norm, **extra)
    item.fit_input_stats(feats, torch.from_numpy(split.warm_items))
    if extra and item_model and "state_dict" in item_model:  # start the fine-tuned item model from its weights
        item.item_encoder.load_state_dict(item_model["state_dict"])
    n_users, n_items = data.interactions.n_users, data.interactions.n_items
    if t.user_mode == "profile" and t.share_trunk:
        user = UserTower.sharing(item, num_items=n_items, bag_dim=t.bag_dim, norm=t.norm, dropout=t.dropout,
                                 profile_dropout=t.profile_dropout)
    else:
        user = UserTower(t.user_mode, num_users=n_users, num_items=n_items, embed_dim=t.embed_dim,
                         bag_dim=t.bag_dim, stem_dim=t.stem_dim, hidden=tuple(t.trunk_hidden), norm=t.norm,
                         dropout=t.dropout, profile_dropout=t.profile_dropout)
    obj = RecsysObjective(item, user, feats, torch.from_numpy(split.warm_items), split.train.user_bags(),
                          loss=t.loss, num_negatives=t.num_negatives, temperature=t.temperature,
                          logq_correction=t.logq_correction, item_counts=torch.from_numpy(split.train.item_counts()),
                          infonce_weight=t.infonce_weight, infonce_pair=tuple(t.infonce_pair),
                          infonce_temperature=t.infonce_temperature, device_budget_mb=t.device_budget_mb)
    return obj, feats


def validation_fn(split: RecsysSplit, k: int, cold: bool) -> Callable[[Any], dict[str, float]]:
    """The Trainer's ``evaluate_fn``: warm NDCG/Recall@k on the validation split, with ``cold`` also
    the item-cold-start NDCG, and ``mean_ndcg@k`` over them (what the tower is selected on)."""

    from modalink.data.processes import Processes

    def evaluate(trainer: Any) -> dict[str, float]:
        model, procs = trainer.model, Processes.current()  # the users' ranking is split across processes
        warm = evaluate_split(model, split, "warm", "val", k, processes=procs)
        out = {f"ndcg@{k}": warm[f"ndcg@{k}"], f"recall@{k}": warm[f"recall@{k}"]}
        if cold and split.cold_val_items.size:
            c = evaluate_split(model, split, "item_cold", "val", k, processes=procs)
            if c:
                out[f"cold_ndcg@{k}"] = c[f"ndcg@{k}"]
        out[f"mean_ndcg@{k}"] = sum(v for n, v in out.items() if "ndcg" in n) / sum("ndcg" in n for n in out)
        return out

    return evaluate


def train_tower(cfg: RecsysConfig, data: RecsysData, split: RecsysSplit, info: Mapping[str, Any],
                run_dir: str | Path, log: logging.Logger | None = None
                ) -> tuple[RecsysObjective, ItemFeatures, float]:
    """Train the towers in ``run_dir`` (an engine run folder: resumed if it holds a checkpoint),
    keeping the epoch with the best validation ``mean_ndcg@k``. Returns ``(objective in eval mode,
    item features, seconds)``."""
    from modalink.engine import Trainer

    k = cfg.eval.k
    objective, feats = build_tower_objective(cfg, data, split, info.get("item_model"))
    if log is not None:
        log.info("item modalities: %s; user tower: %s; loss: %s", list(objective.item_tower.modalities),
                 cfg.tower.user_mode, cfg.tower.loss)
    engine = dataclasses.replace(cfg.engine, monitor=f"mean_ndcg@{k}", monitor_mode="max")
    t0 = time.time()
    Trainer(objective, InteractionPairs(split.train), engine, Path(run_dir),
            evaluate_fn=validation_fn(split, k, cold=True)).fit()
    seconds = time.time() - t0
    objective.eval()
    return objective, feats, seconds


def train_mf(cfg: RecsysConfig, data: RecsysData, split: RecsysSplit, run_dir: str | Path
             ) -> tuple[MatrixFactorization, float]:
    """Train the BPR-MF baseline (``mf.*``) in ``run_dir``, keeping the epoch with the best warm
    validation NDCG@k. Returns ``(model in eval mode, seconds)``."""
    from modalink.engine import Trainer

    k, m = cfg.eval.k, cfg.mf
    mf = MatrixFactorization(data.interactions.n_users, data.interactions.n_items,
                             torch.from_numpy(split.warm_items), torch.from_numpy(split.warm_users),
                             dim=m.dim, num_negatives=m.num_negatives, l2=m.l2)
    engine = dataclasses.replace(cfg.engine, lr=m.lr, epochs=cfg.engine.epochs if m.epochs is None else m.epochs,
                                 monitor=f"ndcg@{k}", monitor_mode="max")
    t0 = time.time()
    Trainer(mf, InteractionPairs(split.train), engine, Path(run_dir), evaluate_fn=validation_fn(split, k, cold=False)).fit()
    seconds = time.time() - t0
    mf.eval()
    return mf, seconds


def modality_subsets(cfg: RecsysConfig, feats: ItemFeatures, info: Mapping[str, Any]) -> dict[str, list[str]]:
    """The content-modality subsets the tower is evaluated with on cold items: ``eval.modality_subsets``,
    or for a catalogue (or an item model) each content modality alone, then all; subsets naming a
    modality the data lacks are left out."""
    subsets = dict(cfg.eval.modality_subsets)
    if "media" in info or cfg.item_model.path is not None:
        content = [m for m in feats.modalities if m not in ("profile", ID)]
        subsets = {m: [m] for m in content}
        if len(content) > 1:
            subsets["all content"] = content
    return {n: mods for n, mods in subsets.items() if all(m in feats.modalities for m in mods)}
