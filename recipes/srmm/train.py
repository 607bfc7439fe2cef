#!/usr/bin/env python
"""Train SRMM (one shared branch, modality switching) and a two-branch late-fusion baseline on
cached image/text embeddings, then evaluate both with complete and missing text.

    python recipes/srmm/train.py                          # synthetic default, a few CPU minutes
    python recipes/srmm/train.py --data-root /data/food101 --output-dir runs/srmm_food101
    accelerate launch recipes/srmm/train.py --data-root /data/food101 engine.batch_size=256

Without ``--config`` the defaults are ``hparams/default.yaml`` (synthetic data) or
``hparams/food101.yaml`` (with ``--data-root``). Writes, under the output folder:
``srmm/`` and ``late_fusion/`` run folders (config, log, metrics, checkpoints, best model),
``results.json`` and ``results.md`` (the accuracy table).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import numpy as np  # noqa: E402

from modalink.config import load_config  # noqa: E402
from modalink.errors import run_cli  # noqa: E402
from modalink.engine import Trainer, process_state, start_run  # noqa: E402
from modalink.metrics import accuracy  # noqa: E402

from srmm_core import (SRMMConfig, absolute_paths, build_late_fusion, build_srmm, collate_batch,  # noqa: E402
                       predict_logits)
from srmm_data import PreparedData, build_encoders, check_data_root, prepare_all  # noqa: E402
from srmm_eval import evaluate_models, format_table, write_results  # noqa: E402


def parse_args(argv: list[str] | None = None, description: str | None = None
               ) -> tuple[argparse.Namespace, list[str]]:
    """The recipe's common command line: --data-root, --output-dir, --config, --cpu, key=value."""
    p = argparse.ArgumentParser(description=description or __doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="UPMC Food-101 folder (images/, texts/); default: synthetic data")
    p.add_argument("--output-dir", help="run folder (default: output_dir from the config)")
    p.add_argument("--config", help="hparams YAML (default: hparams/default.yaml or hparams/food101.yaml)")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. engine.epochs=5 model.switching=alternate")
    a = p.parse_intermixed_args(argv)  # flags and key=value overrides in any order
    return a, list(a.overrides)


def load_recipe_config(args: argparse.Namespace, overrides: list[str]) -> SRMMConfig:
    """hparams file (default by data source) ← command-line flags ← key=value overrides; relative
    paths (``--data-root``, ``--output-dir``, ``data.cache_dir=``, ``image_encoder.weights=`` ...)
    are made absolute from the current folder (:func:`srmm_core.absolute_paths`)."""
    path = args.config or str(_HERE / "hparams" / ("food101.yaml" if args.data_root else "default.yaml"))
    extra = list(overrides)
    if args.data_root:
        extra.insert(0, f"data.root={args.data_root}")
    if args.output_dir:
        extra.insert(0, f"output_dir={args.output_dir}")
    if args.cpu:
        extra.insert(0, "engine.cpu=true")
    return absolute_paths(load_config(SRMMConfig, path, extra))


def train_one(name: str, cfg: SRMMConfig, data: PreparedData, out_dir: Path):
    """Fit one model (``srmm`` or ``late_fusion``) in ``out_dir/name``; returns the Trainer."""
    build = build_srmm if name == "srmm" else build_late_fusion
    module = build(cfg, data.dims, data.num_classes)
    train_set, val_set = data.train_set(cfg), data.val_set(cfg)
    eval_every = val_set is not None and len(val_set) > 0

    def evaluate(trainer: Trainer) -> dict[str, float]:
        logits = predict_logits(trainer.model, val_set, trainer=trainer)
        res = {"acc": accuracy(val_set.label.numpy(), logits)}
        img_only = val_set.with_text_mask(np.zeros(len(val_set), dtype=bool))
        res["acc_image_only"] = accuracy(img_only.label.numpy(), predict_logits(trainer.model, img_only,
                                                                                 trainer=trainer))
        return res

    engine = dataclasses.replace(cfg.engine)
    if not eval_every:  # nothing to select on: keep the last epoch
        engine.eval_every_epochs = 0
    trainer = Trainer(module, train_set, engine, out_dir / name, evaluate_fn=evaluate if eval_every else None,
                      collate_fn=collate_batch)
    trainer.logger.info("%s: %d train / %d val samples, %d classes, dims %s", name, len(train_set),
                        len(val_set) if val_set is not None else 0, data.num_classes, data.dims)
    trainer.fit()
    return trainer


def main(argv: list[str] | None = None) -> dict:
    args, overrides = parse_args(argv)
    cfg = load_recipe_config(args, overrides)
    check_data_root(cfg)  # a wrong --data-root or missing weights end here, before the run folder is written
    state = process_state(cfg.engine)  # same CPU decision as the Trainers (one gloo group on CPU)
    t0 = time.time()
    # every process looks for the weights itself (hub downloads are file-locked), so missing
    # weights end every process at once instead of leaving the others waiting at a barrier
    encoders = build_encoders(cfg)
    out_dir = Path(cfg.output_dir)
    logger = start_run(out_dir, cfg, is_main=state.is_main_process, argv=sys.argv if argv is None else argv,
                       log_name="modalink.srmm")  # own logger: the Trainers reopen "modalink" in their folders
    with state.main_process_first():  # the main process extracts; the others then read valid caches
        data = prepare_all(cfg, out_dir, progress=cfg.prepare.progress and state.is_main_process,
                           encoders=encoders)
    logger.info("embeddings ready in %.1f s (image %s %s, text %s %s)", time.time() - t0,
                data.image_encoder.get("name"), data.dims["image"], data.text_encoder.get("name"),
                data.dims["text"])
    trainers = {"srmm": train_one("srmm", cfg, data, out_dir)}
    if cfg.baseline.enabled:
        trainers["late_fusion"] = train_one("late_fusion", cfg, data, out_dir)
    results = evaluate_models({k: t.model for k, t in trainers.items()}, data, cfg, trainers=trainers)
    results["wall_time_s"] = round(time.time() - t0, 1)
    if state.is_main_process:
        write_results(results, out_dir)
        print(format_table(results))
        logger.info("results written to %s (%.1f s in all)", out_dir / "results.md", results["wall_time_s"])
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
