#!/usr/bin/env python
"""Score FAME test pairs with a trained modalink run or an official FOP checkpoint.

    python recipes/fame/evaluate.py --run-dir runs/fame                 # models of train.py
    python recipes/fame/evaluate.py --official-checkpoint v3_models/English_fop_model/checkpoint.pth.tar \\
        --train-lang English --feats-root DATA --ver v3 --output-dir runs/fop_official

Writes ``<output-dir>/submission/sub_score_<TestLang>_<heard|unheard>.txt`` (L2 distances, lower =
same person; a run that chose a score normalisation on validation is re-scored with it, as it
submitted) and, with ground truth, the EER per condition and their mean (``results.{json,md}``).
An official checkpoint is scored exactly as the official code does: L2 distance between the
outputs of its fusion layer for face and voice (tanh of the branch embeddings for gated fusion).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from modalink.cli import command_parser
from modalink.errors import InputError, run_cli
from modalink.face_voice.cli import add_data_arguments

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = command_parser(__doc__)
    add_data_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="output folder of train.py (holds config.yaml and <ver>_<Lang>/model)")
    src.add_argument("--official-checkpoint", help="an official FOP checkpoint.pth.tar (one training language)")
    p.add_argument("--fusion", default="gated", choices=("gated", "linear"), help="fusion of the official checkpoint")
    p.add_argument("--embed-dim", type=int, default=128, help="embedding width of the official checkpoint")
    p.add_argument("--output-dir", default=None, help="where to write submission/ and results (default: --run-dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    from modalink.engine.run_folder import lock_folder
    from modalink.face_voice.config import FameConfig, resolve_languages
    from modalink.face_voice.runs import load_run

    t0 = time.time()
    run = None
    if args.run_dir:
        run = load_run(args.run_dir)
        cfg = run.config
        feats_root = args.feats_root or cfg.run.feats_root
        ver = args.ver if args.feats_root else cfg.run.ver
        out = Path(args.output_dir or run.path).absolute()
        langs = resolve_languages(ver, args.train_lang) if args.train_lang != "all" else run.languages
    else:
        if args.train_lang == "all":
            raise InputError("--official-checkpoint needs --train-lang (the language it was trained on)")
        cfg = FameConfig()
        ver = args.ver
        out = Path(args.output_dir or "runs/fame_official").absolute()
        feats_root = args.feats_root
        langs = resolve_languages(ver, args.train_lang)
    lock = lock_folder(out)  # a training job writing this run folder is not raced
    try:
        return _score(args, run, cfg, out, feats_root, ver, langs, t0)
    finally:
        if lock is not None:
            os.close(lock)


def _score(args, run, cfg, out: Path, feats_root, ver: str, langs: list[str], t0: float) -> dict:
    from challenge import write_submission
    from modalink.face_voice.layout import FameLayout, feature_dims, read_feature_info
    from modalink.face_voice.results import default_ground_truth, format_results, write_fame_results
    from modalink.face_voice.runs import load_official_checkpoint, prepare_feats_root
    from modalink.face_voice.scoring import score_models

    root, _ = prepare_feats_root(feats_root, out, ver)
    face_dim, voice_dim = feature_dims(root, ver, cfg.data.face_dim, cfg.data.voice_dim)
    feature_info = (read_feature_info(root, ver) or (None, None))[0]

    def model_of(lang: str):
        if run is not None:
            return run.load_model(lang, face_dim, voice_dim, ver=ver, feature_info=feature_info)
        model, meta = load_official_checkpoint(args.official_checkpoint, args.fusion, face_dim, voice_dim,
                                               args.embed_dim)
        print(f"loaded {args.official_checkpoint} (epoch {meta.get('epoch', '?')})")
        return model

    # a run is re-scored with its own normalisation (chosen on validation in training), as it submitted
    norm = {lang: run.score_norm(lang) for lang in langs} if run is not None else {}
    scores = score_models(root, ver, langs, model_of, cache_dir=cfg.data.cache_dir, face_dim=face_dim,
                          voice_dim=voice_dim, norm_of=norm.get)
    norms = {lang: n.spec.name if n else "none" for lang, n in norm.items()}
    gt_dir = default_ground_truth(root, ver, args.ground_truth)
    written = write_submission(out / "submission", scores, edition=args.edition,
                               pairs_dir=FameLayout(root, ver).splits_dir)
    results = write_fame_results(out, ver, scores, [p.name for p in written.values()], gt_dir,
                                 extra={"source": args.run_dir or args.official_checkpoint,
                                        **({"score_norm": norms} if norms else {})},
                                 timings={"seconds": round(time.time() - t0, 2)})
    print(format_results(results))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
