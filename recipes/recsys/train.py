#!/usr/bin/env python
"""Train a modalink item tower (SiBraR-style single branch) and compare it with popularity and
BPR matrix factorisation on warm, item-cold-start and user-cold-start splits.

    python recipes/recsys/train.py --output-dir runs/recsys          # synthetic catalogue, CPU minutes
    python recipes/recsys/train.py --data-root MY_CATALOGUE --output-dir runs/mine   # items.csv + media
    python recipes/recsys/train.py --data-root /data/ml-1m --output-dir runs/recsys_ml1m
    python recipes/recsys/train.py --output-dir runs/sm tower.loss=softmax tower.user_mode=profile

Without ``--data-root`` a synthetic multimodal catalogue is generated (``data.synthetic.*``).
A folder with ``items.csv`` is a catalogue (``modalink.recsys.catalogue``): photos, audio clips
and texts are embedded by modalink encoders (``media.*``) through the embedding cache; missing
or unreadable files are counted in ``media_report.json``. Otherwise MovieLens-100K or ML-1M is
read. ``item_model.path`` adds an exported modalink model as an item encoder.

Writes, under the output folder: ``run.json`` (the run contract), ``config.yaml`` and ``log.txt``;
``tower/`` and ``mf/`` engine run folders; ``split.json``; ``item_index.npz`` (catalogue vectors
and ids); ``tower_model/`` (the exported item tower: ``modalink.hub.from_pretrained``, used by
``query.py`` for new items); ``results.json`` and ``results.md``. The same command again resumes;
another config is refused before anything is written (new ``--output-dir`` or ``--overwrite``).
Errors end in one line (``--debug`` shows the traceback).
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

from modalink.cli import load_recipe_config, parse_recipe_args, print_config, recipe_parser, resume_mode

_HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = _HERE / "hparams" / "default.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = recipe_parser(__doc__, default_config=DEFAULT_CONFIG, output_default=None)
    p.add_argument("--data-root", help="a catalogue folder (items.csv + interactions.csv) or MovieLens-100K / "
                                       "ML-1M; default: synthetic catalogue")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    return parse_recipe_args(p, argv)


if __name__ == "__main__" and any(a in ("-h", "--help") for a in sys.argv[1:]):
    parse_args()  # answers --help (and exits) before the config classes below import torch

from modalink.config import optional  # noqa: E402
from modalink.engine import EngineConfig  # noqa: E402
from modalink.errors import InputError, run_cli  # noqa: E402
from modalink.recsys.catalogue import MediaConfig  # noqa: E402
from modalink.recsys.raw_items import INDEX_FILE, TOWER_FOLDER, ItemModelConfig  # noqa: E402


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
    root: str | None = None  # catalogue folder (items.csv) or MovieLens folder; None: synthetic
    unknown_items: str = "skip"  # catalogue interactions naming an unknown item: skip (counted) | error
    cache_dir: str | None = None  # media embedding cache; None: <output_dir>/media_cache
    min_rating: float = 0.0  # MovieLens ratings >= this are positives
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    cold_item_frac: float = 0.2
    cold_user_frac: float = 0.1
    val_frac: float = 0.1
    test_frac: float = 0.2
    fold_in_frac: float = 0.5
    split_seed: int = 0


@dataclass
class TowerConfig:
    modalities: list[str] | None = optional(legacy=[])  # None: every modality of the data
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
    input_norm: str = "center"  # dense inputs minus the training items' mean, one scale | standardize | none
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
    epochs: int | None = optional(legacy=0, ge=1)  # None: engine.epochs


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
    media: MediaConfig = field(default_factory=MediaConfig)
    item_model: ItemModelConfig = field(default_factory=ItemModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    output_dir: str = "runs/recsys"


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
def read_source_catalogue(cfg: RecsysConfig) -> Any:
    """The catalogue ``data.root`` names (``items.csv`` + ``interactions.csv``, read and checked,
    no media embedded yet), or ``None`` for MovieLens and the synthetic set."""
    from modalink.recsys.catalogue import is_catalogue, read_catalogue

    d = cfg.data
    if d.root is None or not is_catalogue(d.root):
        return None
    return read_catalogue(d.root, min_rating=d.min_rating, unknown_items=d.unknown_items)


def load_data(cfg: RecsysConfig, log: Any = None, cache_dir: str | Path | None = None,
              catalogue: Any = None) -> tuple[Any, dict[str, Any]]:
    """``(RecsysData, info)``: a catalogue folder (media through modalink encoders; ``catalogue``:
    the one :func:`read_source_catalogue` already read), MovieLens when ``data.root`` is set,
    else the synthetic catalogue. ``info`` holds the reports, the media encoders' configs and,
    with ``item_model.path``, the item model's settings."""
    from modalink.recsys import make_synthetic, read_movielens
    from modalink.recsys.catalogue import catalogue_data, extract_media
    from modalink.recsys.raw_items import apply_item_model

    d = cfg.data
    info: dict[str, Any] = {}
    raw: dict[str, Any]
    cat = catalogue if catalogue is not None else read_source_catalogue(cfg)
    if cat is not None:
        info["catalogue"] = cat.report
        if log is not None and cat.report["skipped_unknown_items"]:
            log.warning("%d interaction(s) name items that are not in items.csv and were skipped (e.g. %s)",
                        cat.report["skipped_unknown_items"], cat.report["unknown_item_examples"][0])
        cache = Path(d.cache_dir) if d.cache_dir is not None else Path(cache_dir or cat.root / ".modalink_cache")
        vectors, media_report, configs = extract_media(cat, cfg.media, cache, progress=cfg.engine.progress, log=log)
        info.update(media=media_report, media_configs=configs)
        data = catalogue_data(cat, vectors)
        raw = vectors
    elif d.root is not None:
        from modalink.recsys.catalogue import media_encoders

        # MovieLens titles go through the same text encoder as catalogue texts (media.text_*)
        data = read_movielens(d.root, min_rating=d.min_rating,
                              text_encoder=media_encoders(cfg.media, ["text"])["text"])
        raw = dict(data.item_dense)
    else:
        s = d.synthetic
        data = make_synthetic(n_users=s.n_users, n_items=s.n_items, latent_dim=s.latent_dim, n_genres=s.n_genres,
                              text_dim=s.text_dim, image_dim=s.image_dim,
                              interactions_per_user=(s.interactions_min, s.interactions_max),
                              content_noise=s.content_noise, missing={"text": s.missing_text, "image": s.missing_image},
                              temperature=s.temperature, seed=s.seed)
        raw = dict(data.item_dense)
    if cfg.item_model.path is not None:
        info["item_model"] = apply_item_model(cfg.item_model, raw, data.item_dense, info.get("media_configs"))
    return data, info


def data_fingerprint(cfg: RecsysConfig, cat: Any = None) -> dict[str, str]:
    """Content digests of the files a run reads (``cat``: the catalogue of :func:`read_source_catalogue`;
    the synthetic set is fixed by its config)."""
    from modalink.data.embedding_cache import file_list_hash
    from modalink.data.fame_cache import file_digest

    root = cfg.data.root
    if root is None:
        return {"synthetic": "generated from data.synthetic.*"}
    root_p = Path(root)
    if cat is not None:
        media = [p for p in [*cat.images, *cat.audio] if p is not None]
        out = {p.name: file_digest(p) for p in cat.files()}
        out["media files (path, size, mtime)"] = file_list_hash(media, cat.root)
        return out
    return {str(p.relative_to(root_p)): file_digest(p) for p in sorted(root_p.rglob("*"))
            if p.is_file() and (p.suffix in (".dat", ".data", ".item", ".user") or p.name.startswith("u."))}


def build_tower_objective(cfg: RecsysConfig, data: Any, split: Any,
                          item_model: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(RecsysObjective, ItemFeatures) for the configured tower."""
    import torch

    from modalink.recsys import ID, RecsysObjective, UserTower, build_item_features

    t = cfg.tower
    feats = build_item_features(data, split, use_profile=t.use_profile, use_id=t.use_id,
                                modalities=t.modalities)
    extra = dict((item_model or {}).get("tower_kwargs") or {})
    dims = {m: int(x.shape[1]) for m, x in feats.dense.items()}
    dims.update(extra.pop("dense_dims", {}))
    extra["encoder_inputs"] = {m: v for m, v in extra.get("encoder_inputs", {}).items() if m in dims}
    if not extra["encoder_inputs"]:
        extra = {}
    from modalink.models import create_model
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
    from modalink.config import to_dict
    from modalink.engine import process_state
    from modalink.engine.run_folder import RunFolder

    out = Path(args.output_dir).absolute() if args.output_dir else None
    cfg = load_recipe_config(RecsysConfig, args, flags={
        "data.root": str(Path(args.data_root).expanduser().absolute()) if args.data_root else None,
        "output_dir": str(out) if out else None, "engine.cpu": True if args.cpu else None})
    if args.print_config:
        print_config(cfg)
        return {}
    out = Path(cfg.output_dir).absolute()
    state = process_state(cfg.engine)
    # the run contract: refused here, before anything is written, if the folder holds another run
    # (a run that fails before it records any training leaves no contract; the media cache stays)
    with RunFolder.open(out, to_dict(cfg), mode=resume_mode(args), processes=state.num_processes,
                        is_main=state.is_main_process, ignore=("output_dir", "data.cache_dir", "media.device",
                                                               "media.batch_size", "media.shard_size"),
                        entries=("tower", "mf", "split.json", INDEX_FILE, TOWER_FOLDER, "media_report.json",
                                 "media_cache"), recipe="recsys", reusable=("media_cache",)) as folder:
        return _train(cfg, folder, out, argv)


def _train(cfg: RecsysConfig, folder: Any, out: Path, argv: list[str] | None) -> dict[str, Any]:
    import torch

    from modalink.config import to_dict
    from modalink.engine import Trainer, start_run
    from modalink.hub import save_pretrained
    from modalink.io import atomic_write_text
    from modalink.recsys import (InteractionPairs, MatrixFactorization, Popularity, evaluate_all,
                                 evaluate_modality_subsets, export_item_index, format_table, split_recsys)

    t0 = time.time()
    k = cfg.eval.k
    import logging
    cat = read_source_catalogue(cfg)
    folder.bind_data(data_fingerprint(cfg, cat))  # other data than the run's is refused before media are embedded
    data, info = load_data(cfg, log=logging.getLogger("modalink.recsys"), cache_dir=out / "media_cache", catalogue=cat)
    if len(data.interactions) == 0:
        raise InputError(f"{cfg.data.root or 'the synthetic catalogue'}: no interactions to train on "
                         f"(check data.min_rating={cfg.data.min_rating})")
    folder.start()
    log = start_run(out, cfg, log_name="modalink.recsys", argv=sys.argv if argv is None else ["train.py", *argv])
    if folder.resumed:
        log.info("resuming the run in %s (same config and data)", out)
    torch.manual_seed(cfg.engine.seed)
    d = cfg.data
    split = split_recsys(data.interactions, cold_item_frac=d.cold_item_frac, cold_user_frac=d.cold_user_frac,
                         val_frac=d.val_frac, test_frac=d.test_frac, fold_in_frac=d.fold_in_frac, seed=d.split_seed)
    summary = {"dataset": data.name, "n_users": data.interactions.n_users, "n_items": data.interactions.n_items,
               "interactions": len(data.interactions), **split.summary()}
    atomic_write_text(out / "split.json", json.dumps(summary, indent=2) + "\n")
    log.info("data %s: %s", data.name, summary)
    if "media" in info:
        media_report = {"catalogue": info["catalogue"], "media": info["media"]}
        atomic_write_text(out / "media_report.json", json.dumps(media_report, indent=2) + "\n")
        for m, r in info["media"].items():
            log.info("item %s: %d/%d items embedded with %s (%d missing file(s), %d unreadable)", m, r["embedded"],
                     r["items"], r["encoder"], r.get("missing_files", 0), r["unreadable"])
    if not split.train.users.size:
        raise InputError(f"{cfg.data.root or 'the synthetic catalogue'}: no training interactions after the split")

    # -- the item tower ---------------------------------------------------------------------
    objective, feats = build_tower_objective(cfg, data, split, info.get("item_model"))
    log.info("item modalities: %s; user tower: %s; loss: %s", list(objective.item_tower.modalities),
             cfg.tower.user_mode, cfg.tower.loss)
    tower_engine = dataclasses.replace(cfg.engine, monitor=f"mean_ndcg@{k}", monitor_mode="max")
    t_tower = time.time()
    Trainer(objective, InteractionPairs(split.train), tower_engine, out / "tower",
            evaluate_fn=_val_fn(split, k, cold=True)).fit()
    t_tower = time.time() - t_tower
    objective.eval()
    results: dict[str, dict[str, dict[str, float]]] = {}
    results["modalink tower"] = evaluate_all(objective, split, "test", k)
    item_vecs = objective.item_vectors()
    export_item_index(item_vecs.cpu(), list(data.item_names) if "media" in info else list(range(feats.n_items)),
                      out / INDEX_FILE)

    # -- baselines --------------------------------------------------------------------------
    results["popularity"] = evaluate_all(Popularity(split.train), split, "test", k)
    t_mf = 0.0
    if cfg.mf.enabled:
        m = cfg.mf
        mf = MatrixFactorization(data.interactions.n_users, data.interactions.n_items,
                                 torch.from_numpy(split.warm_items), torch.from_numpy(split.warm_users),
                                 dim=m.dim, num_negatives=m.num_negatives, l2=m.l2)
        mf_epochs = cfg.engine.epochs if m.epochs is None else m.epochs
        mf_engine = dataclasses.replace(cfg.engine, lr=m.lr, epochs=mf_epochs,
                                        monitor=f"ndcg@{k}", monitor_mode="max")
        t_mf = time.time()
        Trainer(mf, InteractionPairs(split.train), mf_engine, out / "mf", evaluate_fn=_val_fn(split, k, cold=False)).fit()
        t_mf = time.time() - t_mf
        mf.eval()
        results["BPR-MF"] = evaluate_all(mf, split, "test", k)

    # -- missing-modality evaluation of the tower on cold items ------------------------------
    subsets = dict(cfg.eval.modality_subsets)
    content = [m for m in feats.modalities if m not in ("profile", "id")]
    if "media" in info or cfg.item_model.path is not None:  # a catalogue: each content modality alone, then all
        subsets = {m: [m] for m in content}
        if len(content) > 1:
            subsets["all content"] = content
    subsets = {n: mods for n, mods in subsets.items() if all(m in feats.modalities for m in mods)}
    missing = evaluate_modality_subsets(objective, feats, split, subsets, "item_cold", "test", k) if subsets else {}

    table = format_table(results, k)
    lines = [f"# Recsys results ({data.name}, test split, K={k})", "", table, ""]
    if missing:
        lines += ["## Item-cold-start, tower with a subset of the content modalities", "",
                  f"| item modalities | NDCG@{k} | Recall@{k} | Cov@{k} |", "|---|---|---|---|"]
        lines += [f"| {n} | {r[f'ndcg@{k}']:.4f} | {r[f'recall@{k}']:.4f} | {r[f'coverage@{k}']:.3f} |"
                  for n, r in missing.items() if r]
        lines.append("")
    if "media" in info:
        lines += ["## Item media", "", "| modality | encoder | items with a file/text | embedded | missing files | "
                  "unreadable |", "|---|---|---|---|---|---|"]
        lines += [f"| {m} | {r['encoder']} | {r['with_source']} | {r['embedded']} | {r.get('missing_files', 0)} | "
                  f"{r['unreadable']} |" for m, r in info["media"].items()]
        c = info["catalogue"]
        lines += ["", f"Interactions skipped: {c['skipped_unknown_items']} naming unknown items, "
                      f"{c['skipped_below_min_rating']} below data.min_rating (details: media_report.json).", ""]
    lines.append(f"Training time: tower {t_tower:.0f} s, BPR-MF {t_mf:.0f} s; total {time.time() - t0:.0f} s.")
    report = "\n".join(lines) + "\n"
    payload = {"dataset": data.name, "k": k, "split": summary, "results": results,
               "missing_modalities_item_cold": missing,
               "seconds": {"tower": round(t_tower, 1), "mf": round(t_mf, 1), "total": round(time.time() - t0, 1)}}
    if "media" in info:
        payload["media"] = info["media"]
        payload["catalogue"] = info["catalogue"]
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out / "results.md", report)

    # -- the exported item tower (raw-file queries load it: modalink.recsys.ColdItemEncoder) --
    contract: dict[str, Any] = {"task": "recsys item tower", "modalities": list(objective.item_tower.modalities),
                                "tag_vocab": data.tag_vocab, "embed_dim": cfg.tower.embed_dim, "index": INDEX_FILE}
    if "media" in info:
        contract["media"] = {"config": to_dict(cfg.media), "modalities": list(info["media"]),
                             "encoders": info["media_configs"]}
    if "item_model" in info:
        contract["item_model"] = {k2: v for k2, v in info["item_model"].items() if k2 not in ("state_dict", "tower_kwargs")}
    cold = results["modalink tower"].get("item_cold", {})
    save_pretrained(objective.item_tower, out / TOWER_FOLDER, contract=contract, config=folder.contract["config"],
                    results={f"item_cold_{n}": v for n, v in cold.items() if n != "users"},
                    title=f"modalink recsys item tower ({data.name})")
    folder.finish(**{f"item_cold_ndcg@{k}": cold.get(f"ndcg@{k}")})
    print(report)
    log.info("results written to %s; item tower exported to %s", out / "results.md", out / TOWER_FOLDER)
    return payload


if __name__ == "__main__":
    sys.exit(run_cli(main))
