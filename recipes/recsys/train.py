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
read. ``item_model.path`` adds an exported modalink model as an item encoder. The settings
(``modalink.recsys.config``) are checked before anything is read or written.

Writes, under the output folder: ``run.json`` (the run contract), ``config.yaml`` and ``log.txt``;
``tower/`` and ``mf/`` engine run folders; ``split.json``; ``item_index.npz`` (catalogue vectors
and ids); ``tower_model/`` (the exported item tower: ``modalink.hub.from_pretrained``, used by
``query.py`` for new items; ``modalink.recsys.runs.load_run`` opens the whole run); ``results.json``
and ``results.md``. The same command again resumes; another config is refused before anything is
written (new ``--output-dir`` or ``--overwrite``).
Errors end in one line (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from modalink.cli import load_recipe_config, parse_recipe_args, print_config, recipe_parser, resume_mode
from modalink.errors import InputError, run_cli

DEFAULT_CONFIG = Path(__file__).resolve().parent / "hparams" / "default.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = recipe_parser(__doc__, default_config=DEFAULT_CONFIG, output_default=None)
    p.add_argument("--data-root", help="a catalogue folder (items.csv + interactions.csv) or MovieLens-100K / "
                                       "ML-1M; default: synthetic catalogue")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    return parse_recipe_args(p, argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from modalink.engine.session import run_session
    from modalink.recsys.config import RecsysConfig
    from modalink.recsys.runs import MEDIA_CACHE, RECIPE, RESUME_IGNORE, RUN_ENTRIES

    out = Path(args.output_dir).absolute() if args.output_dir else None
    cfg = load_recipe_config(RecsysConfig, args, flags={
        "data.root": str(Path(args.data_root).expanduser().absolute()) if args.data_root else None,
        "output_dir": str(out) if out else None, "engine.cpu": True if args.cpu else None})
    if args.print_config:
        print_config(cfg)
        return {}
    out = Path(cfg.output_dir).absolute()
    # another run in the folder is refused before anything is written; the media cache is reused
    with run_session(out, cfg, recipe=RECIPE, mode=resume_mode(args), entries=RUN_ENTRIES, ignore=RESUME_IGNORE,
                     reusable=(MEDIA_CACHE,), argv=argv) as run:
        return _train(cfg, run, out)


def _train(cfg: Any, run: Any, out: Path) -> dict[str, Any]:
    import torch

    from modalink.recsys import Popularity, evaluate_all, evaluate_modality_subsets, export_item_index, split_recsys
    from modalink.recsys import report, runs, sources, training

    t0, k, d = time.time(), cfg.eval.k, cfg.data
    cat = sources.read_source_catalogue(cfg)
    run.bind_data(sources.data_fingerprint(cfg, cat))  # other data than the run's is refused before media
    data, info = sources.load_data(cfg, log=run.logger, cache_dir=out / runs.MEDIA_CACHE,
                                   catalogue=cat)
    log = run.start()
    torch.manual_seed(cfg.engine.seed)
    split = split_recsys(data.interactions, cold_item_frac=d.cold_item_frac, cold_user_frac=d.cold_user_frac,
                         val_frac=d.val_frac, test_frac=d.test_frac, fold_in_frac=d.fold_in_frac, seed=d.split_seed)
    summary = report.split_summary(data, split)
    report.write_data_reports(out, summary, info)
    log.info("data %s: %s", data.name, summary)
    for m, r in info.get("media", {}).items():
        log.info("item %s: %d/%d items embedded with %s (%d missing file(s), %d unreadable)", m, r["embedded"],
                 r["items"], r["encoder"], r.get("missing_files", 0), r["unreadable"])
    if not split.train.users.size:
        raise InputError(f"{d.root or 'the synthetic catalogue'}: no training interactions after the split")

    objective, feats, t_tower = training.train_tower(cfg, data, split, info, out / runs.TOWER_RUN, log)
    results = {"modalink tower": evaluate_all(objective, split, "test", k)}
    export_item_index(objective.item_vectors().cpu(),
                      list(data.item_names) if "media" in info else list(range(feats.n_items)), out / runs.INDEX_FILE)
    results["popularity"] = evaluate_all(Popularity(split.train), split, "test", k)
    t_mf = 0.0
    if cfg.mf.enabled:
        mf, t_mf = training.train_mf(cfg, data, split, out / runs.MF_RUN)
        results["BPR-MF"] = evaluate_all(mf, split, "test", k)
    subsets = training.modality_subsets(cfg, feats, info)
    missing = evaluate_modality_subsets(objective, feats, split, subsets, "item_cold", "test", k) if subsets else {}
    seconds = {"tower": t_tower, "mf": t_mf, "total": time.time() - t0}
    payload, table = report.write_results(out, summary, k, results, missing, info, seconds)
    run.export(objective, out / runs.TOWER_FOLDER, **runs.tower_export(cfg, objective.item_tower, data, info, results))
    run.finish(**{f"item_cold_ndcg@{k}": results["modalink tower"].get("item_cold", {}).get(f"ndcg@{k}")})
    print(table)
    log.info("results written to %s; item tower exported to %s", out / report.RESULTS_TABLE_FILE, out / runs.TOWER_FOLDER)
    return payload


if __name__ == "__main__":
    sys.exit(run_cli(main))
