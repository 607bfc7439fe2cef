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
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fame_common import (DEFAULT_CONFIG, FameConfig, add_data_arguments, default_ground_truth,  # noqa: E402
                         feature_dims, format_results, prepare_feats_root, resolve_languages,
                         score_test_sets, write_results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help="YAML config (hparams/default.yaml: strongest; fop.yaml: the official baseline; "
                        "sbnet.yaml: single branch)")
    p.add_argument("--output-dir", default="runs/fame", help="run folder (resumes if it holds checkpoints)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import numpy as np
    import torch

    from modalink.config import load_config
    from modalink.data import FameFeatures, make_verification_trials, split_train_val
    from modalink.engine import Trainer, process_state, start_run
    from modalink.face_voice import FaceVoiceObjective, PairDataset, build_face_voice_model, \
        collate_pairs, model_summary, trial_distances
    from modalink.metrics import fast_eer

    t0 = time.time()
    cfg = load_config(FameConfig, args.config, args.overrides)
    state = process_state(cfg.engine)  # same CPU decision as the Trainers (one gloo group on CPU)
    out = Path(args.output_dir)
    with state.main_process_first():  # the synthetic set and the feature cache are built once
        root, synthetic = prepare_feats_root(args.feats_root, out, args.ver, seed=cfg.engine.seed)
        langs = resolve_languages(args.ver, args.train_lang)
        face_dim, voice_dim = feature_dims(root, args.ver, cfg.data)
        cache = cfg.data.cache_dir or None
        feats = {lang: FameFeatures.load(root, args.ver, lang, cache_dir=cache, face_dim=face_dim,
                                         voice_dim=voice_dim, mmap=True) for lang in langs}
    cfg.run.feats_root, cfg.run.ver, cfg.run.train_langs = str(root), args.ver, langs
    cfg.run.output_dir, cfg.run.edition, cfg.run.synthetic = str(out), args.edition, synthetic
    gt_dir = default_ground_truth(root, args.ver, args.ground_truth)
    cfg.run.ground_truth = str(gt_dir or "")
    logger = start_run(out, cfg, state.is_main_process, log_name="modalink.fame")
    scores = {}
    timings = {}
    for lang in langs:
        t_lang = time.time()
        data = feats[lang]
        train = data.train
        tr_idx, va_idx = split_train_val(train.labels, val_fraction=cfg.data.val_fraction,
                                         n_val_ids=cfg.data.val_ids or None, seed=cfg.data.split_seed)
        # identities of the training part, remapped to 0..C-1 for the classifier
        _, y_train = np.unique(train.labels[tr_idx], return_inverse=True)
        n_classes = int(y_train.max()) + 1
        faces, voices = train.faces, train.voices
        train_ds = PairDataset(faces[tr_idx], voices[tr_idx], y_train)
        vf, vv, vl = faces[va_idx], voices[va_idx], train.labels[va_idx]
        fi, vi, same = make_verification_trials(vl, cfg.data.val_trials, seed=cfg.data.split_seed)
        logger.info("%s: %d training rows (%d identities), %d validation rows (%d identities, %d trials); "
                    "features %d-D face / %d-D voice", lang, len(tr_idx), n_classes, len(va_idx),
                    len(set(vl.tolist())), len(same), face_dim, voice_dim)

        def evaluate(trainer: Trainer) -> dict[str, float]:
            model = trainer.model.model
            d = trial_distances(model, vf, vv, fi, vi)
            return {"eer": fast_eer(same, d)}

        torch.manual_seed(cfg.engine.seed)
        model = build_face_voice_model(cfg.model, face_dim, voice_dim, n_classes)
        objective = FaceVoiceObjective(model, cfg.loss, n_classes)
        logger.info("model %s: %s", cfg.model.name, model_summary(model))
        trainer = Trainer(objective, train_ds, cfg.engine, out / f"{args.ver}_{lang}", evaluate_fn=evaluate,
                          collate_fn=collate_pairs, tracker_config={"lang": lang, "config": args.config})
        result = trainer.fit()
        logger.info("%s: best validation EER %.2f %% at epoch %s", lang, result.best_metric or float("nan"),
                    result.best_epoch)
        if state.is_main_process:
            model = trainer.model.model.eval()
            scores.update(score_test_sets(model, [data.heard, data.unheard], lang))
        timings[lang] = {"seconds": round(time.time() - t_lang, 2), "best_val_eer": result.best_metric,
                         "best_epoch": result.best_epoch}
        state.wait_for_everyone()
    results: dict = {}
    if state.is_main_process:
        pairs_dir = root / "face_voice_association_splits" / args.ver
        results = write_results(out, args.ver, scores, pairs_dir, gt_dir, args.edition,
                                extra={"config": args.config, "model": cfg.model.name, "training": timings,
                                       "seconds": round(time.time() - t0, 2),
                                       "processes": state.num_processes})
        print(format_results(results))
        logger.info("results written to %s", out / "results.md")
    state.wait_for_everyone()
    return results


if __name__ == "__main__":
    main()
