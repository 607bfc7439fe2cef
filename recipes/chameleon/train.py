#!/usr/bin/env python
"""Train Chameleon (text rendered as an image, ONE visual network for photo and text) and a
multi-branch baseline (image network + text network, late fusion), then evaluate both with
complete data and with missing text (e.g. 70 %, 30 %, 0 % of test samples keep their text).

    python recipes/chameleon/train.py                     # synthetic default, a few CPU minutes
    python recipes/chameleon/train.py --dataset food101 --data-root /data/food101 --output-dir runs/cham_food101
    accelerate launch recipes/chameleon/train.py --dataset mmimdb --data-root /data/mmimdb engine.batch_size=128

Without ``--config`` the defaults are ``hparams/default.yaml`` (synthetic data) or
``hparams/<dataset>.yaml`` (with ``--data-root``). Writes, under the output folder:
``config.yaml`` and ``log.txt``; ``chameleon/`` and ``multi_branch/`` run folders (log,
metrics.jsonl, checkpoints/, best_model.pt); ``masks/`` (the test masks); ``results.json`` and
``results.md`` (the tables). A run that is started again resumes from its checkpoints.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import torch  # noqa: E402

from modalink.config import ConfigError, load_config  # noqa: E402
from modalink.engine import Trainer, process_state, start_run  # noqa: E402

from chameleon_core import (ChameleonRecipeConfig, RecipeData, build_model, evaluate_methods,  # noqa: E402
                            format_table, load_data, make_evaluate_fn, method_collates, resolve_monitor,
                            write_results)

DATASETS = ("food101", "mmimdb", "hateful_memes", "ferramenta")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, help="dataset of --data-root (default: food101)")
    p.add_argument("--data-root", help="dataset folder; default: synthetic Food-101-layout data")
    p.add_argument("--output-dir", help="run folder (default: output_dir from the config)")
    p.add_argument("--config", help="hparams YAML (default: hparams/default.yaml or hparams/<dataset>.yaml)")
    p.add_argument("--methods", help="comma-separated subset of chameleon,multi_branch")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. engine.epochs=5 chameleon.backbone=resnet50")
    a = p.parse_args(argv)
    return a, list(a.overrides)


def load_recipe_config(args: argparse.Namespace, overrides: list[str]) -> ChameleonRecipeConfig:
    """hparams file (default by data source) ← command-line flags ← key=value overrides."""
    dataset = args.dataset or "food101"
    default = f"{dataset}.yaml" if args.data_root else "default.yaml"
    path = args.config or str(_HERE / "hparams" / default)
    extra = []
    if args.data_root:
        extra += [f"data.root={args.data_root}", f"data.dataset={dataset}"]
    elif args.dataset:
        extra.append(f"data.dataset={dataset}")
    if args.output_dir:
        extra.append(f"output_dir={args.output_dir}")
    if args.methods:
        extra.append(f"methods=[{args.methods}]")
    if args.cpu:
        extra.append("engine.cpu=true")
    cfg = load_config(ChameleonRecipeConfig, path, extra + list(overrides))
    cfg.check()
    if args.dataset and not args.data_root and args.dataset != "food101":
        raise ConfigError(f"--dataset {args.dataset} needs --data-root (only the Food-101 layout is synthesised)")
    return cfg


def train_one(kind: str, cfg: ChameleonRecipeConfig, data: RecipeData, out_dir: Path, cache: dict) -> tuple:
    """Fit one method in ``out_dir/kind``; returns (trainer, eval collate)."""
    train_collate, eval_collate, text_dim = method_collates(kind, cfg, cache)
    torch.manual_seed(cfg.engine.seed)  # the same initial weights whatever ran before
    module = build_model(kind, cfg, data.num_classes, data.multilabel, text_dim)
    engine = resolve_monitor(cfg.engine, data)
    if kind == "multi_branch" and cfg.baseline.epochs:
        engine.epochs = cfg.baseline.epochs
    evaluate = make_evaluate_fn(data, eval_collate)
    if evaluate is None:  # nothing to select on: keep the last epoch
        engine.eval_every_epochs = 0
    trainer = Trainer(module, data.train, engine, out_dir / kind, evaluate_fn=evaluate, collate_fn=train_collate)
    n_params = sum(p.numel() for p in module.parameters())
    trainer.logger.info("%s: %d train / %d val / %d test samples, %d classes, %.2fM parameters", kind,
                        len(data.train), len(data.val) if data.val is not None else 0, len(data.test),
                        data.num_classes, n_params / 1e6)
    t0 = time.time()
    trainer.fit()
    trainer.logger.info("%s: trained in %.1f s", kind, time.time() - t0)
    return trainer, eval_collate


def main(argv: list[str] | None = None) -> dict:
    args, overrides = parse_args(argv)
    try:
        cfg = load_recipe_config(args, overrides)
    except (ConfigError, ValueError) as e:
        raise SystemExit(f"config error: {e}")
    state = process_state(cfg.engine)  # same CPU decision as the Trainers (one gloo group on CPU)
    out_dir = Path(cfg.output_dir)
    logger = start_run(out_dir, cfg, is_main=state.is_main_process, argv=sys.argv if argv is None else argv,
                       log_name="modalink.chameleon")  # own logger: the Trainers reopen "modalink" in their folders
    t0 = time.time()
    with state.main_process_first():  # the main process generates the synthetic data; the others reuse it
        data = load_data(cfg, progress=cfg.engine.progress and state.is_main_process)
    logger.info("data: %s (%.1f s)", data.description, time.time() - t0)
    cache: dict = {}
    models, trainers = {}, {}
    for kind in cfg.methods:
        trainer, collate = train_one(kind, cfg, data, out_dir, cache)
        trainers[kind] = trainer
        models[kind] = (trainer.model, collate)
    results = evaluate_methods(models, data, cfg, trainers=trainers,
                               mask_dir=out_dir / "masks" if state.is_main_process else None,
                               batch_size=max(cfg.engine.batch_size, 128))
    results["wall_time_s"] = round(time.time() - t0, 1)
    if state.is_main_process:
        write_results(results, out_dir)
        print(format_table(results))
        logger.info("results written to %s (%.1f s in all)", out_dir / "results.md", results["wall_time_s"])
    return results


if __name__ == "__main__":
    main()
