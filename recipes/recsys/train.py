#!/usr/bin/env python
"""Train a modalink item tower (SiBraR-style single branch) and compare it with popularity and
BPR matrix factorisation on warm, item-cold-start and user-cold-start splits.

    python recipes/recsys/train.py                                   # synthetic catalogue, CPU minutes
    python recipes/recsys/train.py --data-root /data/ml-1m --output-dir runs/recsys_ml1m
    python recipes/recsys/train.py tower.loss=softmax tower.user_mode=profile engine.epochs=20

Without ``--data-root`` a synthetic multimodal catalogue is generated (``data.synthetic.*``).
With it, MovieLens-100K (``u.data``/``u.item``/``u.user``) or ML-1M
(``ratings.dat``/``movies.dat``/``users.dat``) is read: item modalities are the title (hashed
bag of words, no download), the genres, the interaction profile and the item ID.

Writes, under the output folder: ``config.yaml`` and ``log.txt``; ``tower/`` and ``mf/`` engine
run folders (checkpoints, best model, metrics.jsonl); ``split.json``; ``item_index.npz`` (the
tower's catalogue vectors for serving); ``results.json`` and ``results.md`` (the tables).
Any ``key=value`` argument overrides the YAML config.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modalink.engine import EngineConfig

_HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = _HERE / "hparams" / "default.yaml"


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class SyntheticConfig:
    n_users: int = 1000
    n_items: int = 2000
    latent_dim: int = 16
    n_genres: int = 18
    text_dim: int = 64
    image_dim: int = 96
    interactions_min: int = 20
    interactions_max: int = 60
    content_noise: float = 0.5
    temperature: float = 0.5
    missing_text: float = 0.1
    missing_image: float = 0.2
    seed: int = 0


@dataclass
class DataConfig:
    root: str = ""  # MovieLens folder; empty = synthetic
    min_rating: float = 0.0  # MovieLens ratings >= this are positives
    text_dim: int = 256  # hashed bag-of-words width for MovieLens titles
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    cold_item_frac: float = 0.2
    cold_user_frac: float = 0.1
    val_frac: float = 0.1
    test_frac: float = 0.2
    fold_in_frac: float = 0.5
    split_seed: int = 0


@dataclass
class TowerConfig:
    modalities: list[str] = field(default_factory=list)  # empty = every modality of the data
    use_profile: bool = True  # item interaction profile (users of the item) as a modality
    use_id: bool = True  # item ID embedding (warm items only)
    embed_dim: int = 64
    stem_dim: int = 128
    bag_dim: int = 64
    trunk_hidden: list[int] = field(default_factory=lambda: [128])
    norm: str = "layer"
    dropout: float = 0.0
    sample_sizes: list[int] = field(default_factory=lambda: [1, 2])  # SiBraR modality sampling; [] = off
    keep_all_prob: float = 0.0
    bag_dropout: float = 0.0
    combine: str = "normalized"  # item vector = mean of per-modality unit vectors | raw: of trunk outputs
    user_mode: str = "item_mean"  # item_mean | profile | id
    share_trunk: bool = True  # profile mode: the user profile goes through the item trunk (CoBraR)
    profile_dropout: float = 0.2
    loss: str = "bpr"  # bpr | softmax
    num_negatives: int = 4
    temperature: float = 0.1
    logq_correction: bool = True
    infonce_weight: float = 0.0
    infonce_pair: list[str] = field(default_factory=lambda: ["text", "profile"])
    infonce_temperature: float = 0.1


@dataclass
class MFConfig:
    enabled: bool = True
    dim: int = 64
    num_negatives: int = 4
    l2: float = 1.0e-4
    lr: float = 1.0e-2
    epochs: int = 0  # 0 = engine.epochs


@dataclass
class EvalConfig:
    k: int = 10
    # missing-modality evaluation on the item-cold-start split (subsets absent from the data are skipped)
    modality_subsets: dict[str, list[str]] = field(default_factory=lambda: {
        "text": ["text"], "image": ["image"], "genres": ["genres"], "text+image": ["text", "image"],
        "all content": ["text", "image", "genres"]})


@dataclass
class RecsysConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tower: TowerConfig = field(default_factory=TowerConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    output_dir: str = "runs/recsys"


def load_recipe_config(path: str | Path | None, overrides: list[str]) -> RecsysConfig:
    """hparams YAML ← key=value overrides; unknown keys are errors naming the file."""
    from modalink.config import load_config

    return load_config(RecsysConfig, path, overrides)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="MovieLens-100K or ML-1M folder; default: synthetic catalogue")
    p.add_argument("--output-dir", help="run folder (default: output_dir from the config; resumes if it "
                                        "holds checkpoints)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="hparams YAML (default: %(default)s)")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. engine.epochs=5 tower.loss=softmax")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
class PairDataset:
    """Training (user, item) pairs as dict samples for the engine."""

    def __init__(self, inter: Any) -> None:
        import torch

        self.users = torch.from_numpy(inter.users)
        self.items = torch.from_numpy(inter.items)

    def __len__(self) -> int:
        return int(self.users.numel())

    def __getitem__(self, k: int) -> dict[str, Any]:
        return {"user": self.users[k], "item": self.items[k]}


def load_data(cfg: RecsysConfig) -> Any:
    """The dataset (MovieLens when ``data.root`` is set, else synthetic)."""
    from modalink.recsys import make_synthetic, read_movielens

    d = cfg.data
    if d.root:
        return read_movielens(d.root, min_rating=d.min_rating, text_dim=d.text_dim)
    s = d.synthetic
    return make_synthetic(n_users=s.n_users, n_items=s.n_items, latent_dim=s.latent_dim, n_genres=s.n_genres,
                          text_dim=s.text_dim, image_dim=s.image_dim,
                          interactions_per_user=(s.interactions_min, s.interactions_max),
                          content_noise=s.content_noise, missing={"text": s.missing_text, "image": s.missing_image},
                          temperature=s.temperature, seed=s.seed)


def build_tower_objective(cfg: RecsysConfig, data: Any, split: Any) -> tuple[Any, Any]:
    """(RecsysObjective, ItemFeatures) for the configured tower."""
    import torch

    from modalink.recsys import ItemTower, RecsysObjective, UserTower, build_item_features

    t = cfg.tower
    feats = build_item_features(data, split, use_profile=t.use_profile, use_id=t.use_id,
                                modalities=t.modalities or None)
    item = ItemTower.from_features(feats, embed_dim=t.embed_dim, stem_dim=t.stem_dim, bag_dim=t.bag_dim,
                                   trunk_hidden=tuple(t.trunk_hidden), norm=t.norm, dropout=t.dropout,
                                   sample_sizes=tuple(t.sample_sizes), keep_all_prob=t.keep_all_prob,
                                   bag_dropout=t.bag_dropout, combine=t.combine)
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
                          infonce_temperature=t.infonce_temperature)
    return obj, feats


def _val_fn(split: Any, k: int, cold: bool) -> Any:
    from modalink.recsys import evaluate_split

    def evaluate(trainer: Any) -> dict[str, float]:
        model = trainer.model
        warm = evaluate_split(model, split, "warm", "val", k)
        out = {f"ndcg@{k}": warm[f"ndcg@{k}"], f"recall@{k}": warm[f"recall@{k}"]}
        if cold and split.cold_val_items.size:
            c = evaluate_split(model, split, "item_cold", "val", k)
            if c:
                out[f"cold_ndcg@{k}"] = c[f"ndcg@{k}"]
        out[f"mean_ndcg@{k}"] = sum(v for n, v in out.items() if "ndcg" in n) / sum("ndcg" in n for n in out)
        return out

    return evaluate


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.data_root:
        overrides.insert(0, f"data.root={args.data_root}")
    if args.output_dir:
        overrides.insert(0, f"output_dir={args.output_dir}")
    if args.cpu:
        overrides.append("engine.cpu=true")
    cfg = load_recipe_config(args.config, overrides)

    import torch

    from modalink.engine import Trainer, start_run
    from modalink.io import atomic_write_text
    from modalink.recsys import (MatrixFactorization, Popularity, evaluate_all, evaluate_modality_subsets,
                                 export_item_index, format_table, split_recsys)

    t0 = time.time()
    out = Path(cfg.output_dir)
    log = start_run(out, cfg, log_name="modalink.recsys", argv=sys.argv if argv is None else ["train.py", *argv])
    k = cfg.eval.k
    torch.manual_seed(cfg.engine.seed)

    data = load_data(cfg)
    d = cfg.data
    split = split_recsys(data.interactions, cold_item_frac=d.cold_item_frac, cold_user_frac=d.cold_user_frac,
                         val_frac=d.val_frac, test_frac=d.test_frac, fold_in_frac=d.fold_in_frac, seed=d.split_seed)
    summary = {"dataset": data.name, "n_users": data.interactions.n_users, "n_items": data.interactions.n_items,
               "interactions": len(data.interactions), **split.summary()}
    atomic_write_text(out / "split.json", json.dumps(summary, indent=2) + "\n")
    log.info("data %s: %s", data.name, summary)

    # -- the item tower ---------------------------------------------------------------------
    objective, feats = build_tower_objective(cfg, data, split)
    log.info("item modalities: %s; user tower: %s; loss: %s", list(objective.item_tower.modalities),
             cfg.tower.user_mode, cfg.tower.loss)
    tower_engine = dataclasses.replace(cfg.engine, monitor=f"mean_ndcg@{k}", monitor_mode="max")
    t_tower = time.time()
    Trainer(objective, PairDataset(split.train), tower_engine, out / "tower",
            evaluate_fn=_val_fn(split, k, cold=True)).fit()
    t_tower = time.time() - t_tower
    objective.eval()
    results: dict[str, dict[str, dict[str, float]]] = {}
    results["modalink tower"] = evaluate_all(objective, split, "test", k)
    item_vecs = objective.item_vectors()
    export_item_index(item_vecs.cpu(), list(range(feats.n_items)), out / "item_index.npz")

    # -- baselines --------------------------------------------------------------------------
    results["popularity"] = evaluate_all(Popularity(split.train), split, "test", k)
    t_mf = 0.0
    if cfg.mf.enabled:
        m = cfg.mf
        mf = MatrixFactorization(data.interactions.n_users, data.interactions.n_items,
                                 torch.from_numpy(split.warm_items), torch.from_numpy(split.warm_users),
                                 dim=m.dim, num_negatives=m.num_negatives, l2=m.l2)
        mf_engine = dataclasses.replace(cfg.engine, lr=m.lr, epochs=m.epochs or cfg.engine.epochs,
                                        monitor=f"ndcg@{k}", monitor_mode="max")
        t_mf = time.time()
        Trainer(mf, PairDataset(split.train), mf_engine, out / "mf", evaluate_fn=_val_fn(split, k, cold=False)).fit()
        t_mf = time.time() - t_mf
        mf.eval()
        results["BPR-MF"] = evaluate_all(mf, split, "test", k)

    # -- missing-modality evaluation of the tower on cold items ------------------------------
    subsets = {n: mods for n, mods in cfg.eval.modality_subsets.items()
               if all(m in feats.modalities for m in mods)}
    missing = evaluate_modality_subsets(objective, feats, split, subsets, "item_cold", "test", k) if subsets else {}

    table = format_table(results, k)
    lines = [f"# Recsys results ({data.name}, test split, K={k})", "", table, ""]
    if missing:
        lines += ["## Item-cold-start, tower with a subset of the content modalities", "",
                  f"| item modalities | NDCG@{k} | Recall@{k} | Cov@{k} |", "|---|---|---|---|"]
        lines += [f"| {n} | {r[f'ndcg@{k}']:.4f} | {r[f'recall@{k}']:.4f} | {r[f'coverage@{k}']:.3f} |"
                  for n, r in missing.items()]
        lines.append("")
    lines.append(f"Training time: tower {t_tower:.0f} s, BPR-MF {t_mf:.0f} s; total {time.time() - t0:.0f} s.")
    report = "\n".join(lines) + "\n"
    payload = {"dataset": data.name, "k": k, "split": summary, "results": results,
               "missing_modalities_item_cold": missing,
               "seconds": {"tower": round(t_tower, 1), "mf": round(t_mf, 1), "total": round(time.time() - t0, 1)}}
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out / "results.md", report)
    print(report)
    log.info("results written to %s", out / "results.md")
    return payload


if __name__ == "__main__":
    main()
