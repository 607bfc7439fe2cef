#!/usr/bin/env python
"""Train a face–voice model on MAV-Celeb features and write FAME submission files.

    accelerate launch recipes/fame/train.py                      # synthetic data, default config
    accelerate launch recipes/fame/train.py --feats-root DATA --ver v3 --train-lang all
    python recipes/fame/train.py --config recipes/fame/hparams/fop.yaml engine.epochs=10

For each training language: hold out validation identities of the TRAINING set, train with the
modalink engine (checkpoints, resume, 1..N processes), keep the epoch with the lowest validation
EER, then score the heard and unheard test pairs (L2 distances, lower = same person) and write
``<output-dir>/submission/sub_score_<TestLang>_<heard|unheard>.txt``. With ground truth the EER
per condition and the mean of the four are printed and saved to ``results.{json,md}``.
Any ``key=value`` argument overrides the YAML config (e.g. ``engine.lr=3e-4 model.dropout=0.2``).

The output folder is a run contract: the same command again resumes (or re-scores a finished
run); another config, other data or another process count is refused before anything is
written — use a new ``--output-dir`` or ``--overwrite``. Errors end in one line
(``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from modalink.cli import parse_recipe_args, recipe_parser
from modalink.errors import run_cli
from modalink.face_voice.cli import add_data_arguments
from modalink.progress import announce

DEFAULT_CONFIG = Path(__file__).resolve().parent / "hparams" / "default.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = recipe_parser(__doc__, default_config=DEFAULT_CONFIG, output_default="runs/fame")
    add_data_arguments(p)
    return parse_recipe_args(p, argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    if not args.print_config:
        announce(f"FAME train.py: run folder {args.output_dir}, MAV-Celeb {args.ver} "
                 f"({'features in ' + args.feats_root if args.feats_root else 'synthetic set'}); loading torch ...")
    from modalink.cli import load_recipe_config, print_config, resume_mode
    from modalink.engine import run_session
    from modalink.face_voice.config import RUN_ENTRIES, FameConfig, resolve_languages

    t0 = time.time()
    langs = resolve_languages(args.ver, args.train_lang)
    from challenge.naming import get_edition
    get_edition(args.edition)
    out = Path(args.output_dir).absolute()
    # settings checked before any data; the run: section comes from the flags only
    cfg = load_recipe_config(FameConfig, args, flag_only=("run",), flags={
        "run.ver": args.ver, "run.train_langs": langs, "run.output_dir": str(out), "run.edition": args.edition,
        "run.synthetic": not args.feats_root,
        "run.feats_root": str(Path(args.feats_root).absolute()) if args.feats_root else None})
    if args.print_config:
        print_config(cfg)
        return {}
    with run_session(out, cfg, recipe="fame", mode=resume_mode(args), entries=RUN_ENTRIES, argv=argv,
                     ignore=("run.feats_root", "run.ground_truth", "run.edition")) as run:
        return _train(args, cfg, run, t0)


def _train(args, cfg, run, t0: float) -> dict:
    from challenge import write_submission
    from modalink.engine.run_folder import config_fingerprint
    from modalink.face_voice.features import FameFeatures
    from modalink.face_voice.layout import FameLayout, feature_dims, read_feature_info
    from modalink.face_voice.results import (check_ground_truth, default_ground_truth, eer_rows, format_results,
                                             norm_summary, write_fame_results)
    from modalink.face_voice.runs import data_fingerprint, export_models, model_contract, prepare_feats_root
    from modalink.face_voice.training import train_languages

    out, state, langs = run.path, run.state, list(cfg.run.train_langs)
    with state.main_process_first():  # the synthetic set and the feature cache are built once
        root, synthetic = prepare_feats_root(args.feats_root, out, args.ver, seed=cfg.engine.seed)
        face_dim, voice_dim = feature_dims(root, args.ver, cfg.data.face_dim, cfg.data.voice_dim)
        feats = {lang: FameFeatures.load(root, args.ver, lang, cache_dir=cfg.data.cache_dir, face_dim=face_dim,
                                         voice_dim=voice_dim, mmap=True) for lang in langs}
    cfg.run.feats_root = str(root)
    gt_dir = default_ground_truth(root, args.ver, args.ground_truth)
    cfg.run.ground_truth = None if gt_dir is None else str(gt_dir)
    check_ground_truth(gt_dir, [t for f in feats.values() for t in (f.heard, f.unheard)])
    run.bind_data(data_fingerprint(feats, gt_dir))
    logger = run.start()
    feature_info = (read_feature_info(root, args.ver) or ({}, None))[0]
    random_features = bool(feature_info and feature_info.get("random_weights"))
    if random_features:
        logger.warning("these features come from RANDOM-WEIGHT encoders (prepare.py --random-weights): a plumbing "
                       "check only, the EERs mean nothing; results.json, the submission manifest and the model "
                       "cards say so")
    done = train_languages(cfg, feats, out, args.ver, face_dim, voice_dim, logger, state, args.config)
    results: dict = {}
    if run.is_main:
        fingerprint = config_fingerprint(run.contract_config)
        random_mark = {"random_weight_features": True} if random_features else {}
        written = write_submission(out / "submission", done.scores, edition=args.edition,
                                   pairs_dir=FameLayout(root, args.ver).splits_dir,
                                   info={"model": cfg.model.name, "config_fingerprint": fingerprint, **random_mark})
        results = write_fame_results(out, args.ver, done.scores, [p.name for p in written.values()], gt_dir,
                                     extra={"config": Path(args.config).name, "model": cfg.model.name,
                                            "config_fingerprint": fingerprint, "selection": done.selection,
                                            "processes": state.num_processes,
                                            "norm": norm_summary(done.norm, eer_rows(done.raw_scores, gt_dir)),
                                            **random_mark},
                                     timings={"seconds": round(time.time() - t0, 2), "training": done.timings})
        export_models(run, args.ver, done.models, model_contract(root, args.ver, face_dim, voice_dim), results)
        print(format_results(results))
        logger.info("results written to %s", out / "results.md")
    run.finish(mean_eer=results.get("mean_eer"))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
