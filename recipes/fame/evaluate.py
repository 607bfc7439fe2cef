#!/usr/bin/env python
"""Score FAME test pairs with a trained modalink run or an official FOP checkpoint.

    python recipes/fame/evaluate.py --run-dir runs/fame                 # models of train.py
    python recipes/fame/evaluate.py --official-checkpoint v3_models/English_fop_model/checkpoint.pth.tar \\
        --train-lang English --feats-root DATA --ver v3 --output-dir runs/fop_official

Writes ``<output-dir>/submission/sub_score_<TestLang>_<heard|unheard>.txt`` (L2 distances, lower =
same person) and, with ground truth, the EER per condition and their mean (``results.{json,md}``).
An official checkpoint is scored exactly as the official code does: L2 distance between the
outputs of its fusion layer for face and voice (tanh of the branch embeddings for gated fusion).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cli_common import add_data_arguments

from modalink.cli import command_parser
from modalink.errors import InputError, UserError, run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = command_parser(__doc__)
    add_data_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="output folder of train.py (holds config.yaml and <ver>_<Lang>/best_model.pt)")
    src.add_argument("--official-checkpoint", help="an official FOP checkpoint.pth.tar (one training language)")
    p.add_argument("--fusion", default="gated", choices=["gated", "linear"], help="fusion of the official checkpoint")
    p.add_argument("--embed-dim", type=int, default=128, help="embedding width of the official checkpoint")
    p.add_argument("--output-dir", default=None, help="where to write submission/ and results (default: --run-dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    from fame_common import FameConfig, resolve_languages

    from modalink.config import load_config

    t0 = time.time()
    if args.run_dir:
        run_dir = Path(args.run_dir).absolute()
        if not run_dir.is_dir():
            raise UserError(f"no run folder at {run_dir}: pass --run-dir the --output-dir of a train.py run "
                            f"(default runs/fame)")
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"{run_dir} is not a train.py run folder (it has no config.yaml): pass --run-dir the "
                            f"--output-dir of a train.py run")
        cfg = load_config(FameConfig, run_dir / "config.yaml")
        feats_root = args.feats_root or cfg.run.feats_root
        ver = args.ver if args.feats_root else cfg.run.ver
        out = Path(args.output_dir or run_dir).absolute()
        langs = resolve_languages(ver, args.train_lang) if args.train_lang != "all" else cfg.run.train_langs
    else:
        if args.train_lang == "all":
            raise InputError("--official-checkpoint needs --train-lang (the language it was trained on)")
        cfg = FameConfig()
        ver = args.ver
        out = Path(args.output_dir or "runs/fame_official").absolute()
        feats_root = args.feats_root
        langs = resolve_languages(ver, args.train_lang)
    from modalink.engine.run_folder import lock_folder

    lock = lock_folder(out)  # a training job writing this run folder is not raced
    try:
        return _score(args, cfg, out, feats_root, ver, langs, t0)
    finally:
        if lock is not None:
            os.close(lock)


def _score(args, cfg, out: Path, feats_root, ver: str, langs: list[str], t0: float) -> dict:
    from fame_common import (default_ground_truth, feature_dims, format_results, load_model_from_run,
                             prepare_feats_root, read_feature_info, score_test_sets, write_fame_results)
    from modalink.data import FameFeatures
    from modalink.models import create_model

    root, _ = prepare_feats_root(feats_root, out, ver)
    face_dim, voice_dim = feature_dims(root, ver, cfg.data)
    scores = {}
    for lang in langs:
        data = FameFeatures.load(root, ver, lang, cache_dir=cfg.data.cache_dir, load_train=False,
                                 face_dim=face_dim, voice_dim=voice_dim, mmap=True)
        if args.run_dir:
            model = load_model_from_run(Path(args.run_dir) / f"{ver}_{lang}", face_dim, voice_dim,
                                        feature_info=read_feature_info(root, ver))
        else:
            model = create_model(f"fop_{args.fusion}", face_dim=face_dim, voice_dim=voice_dim,
                                 embed_dim=args.embed_dim)
            meta = model.load_official_checkpoint(args.official_checkpoint)
            print(f"loaded {args.official_checkpoint} (epoch {meta.get('epoch', '?')})")
            model.eval()
        scores.update(score_test_sets(model, [data.heard, data.unheard], lang))
    gt_dir = default_ground_truth(root, ver, args.ground_truth)
    results = write_fame_results(out, ver, scores, root / "face_voice_association_splits" / ver, gt_dir, args.edition,
                            extra={"source": args.run_dir or args.official_checkpoint},
                            timings={"seconds": round(time.time() - t0, 2)})
    print(format_results(results))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
