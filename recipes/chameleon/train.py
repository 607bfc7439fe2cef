#!/usr/bin/env python
"""Train Chameleon (text rendered as an image, ONE visual network for photo and text) and a
multi-branch baseline (image network + text network, late fusion), then evaluate both with
complete data and with missing text (e.g. 70 %, 30 %, 0 % of test samples keep their text).

    python recipes/chameleon/train.py                     # synthetic default, a few CPU minutes
    python recipes/chameleon/train.py --dataset food101 --data-root /data/food101 --output-dir runs/cham_food101
    accelerate launch recipes/chameleon/train.py --dataset mmimdb --data-root /data/mmimdb engine.batch_size=128

Without ``--config`` the defaults are ``hparams/default.yaml`` (synthetic data) or
``hparams/<dataset>.yaml`` (with ``--data-root``). Writes, under the output folder:
``run.json`` (the run contract), ``config.yaml`` and ``log.txt``; ``chameleon/`` and
``multi_branch/`` run folders (log, metrics.jsonl, checkpoints/, best_model.pt) with the exported
model in ``<method>/model``; ``masks/`` (the test masks); ``results.json`` and ``results.md``
(the tables) and ``timings.json``. The same command again resumes (or re-scores a finished run);
another config or other data is refused before anything is written — use a new ``--output-dir``
or ``--overwrite``. Errors end in one line (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from modalink.cli import load_recipe_config, parse_recipe_args, print_config, recipe_parser, resume_mode
from modalink.errors import UserError, run_cli
from modalink.progress import announce

HPARAMS = Path(__file__).resolve().parent / "hparams"
DATASETS = ("food101", "mmimdb", "hateful_memes", "ferramenta")
# what this recipe writes besides the shared run files (one folder per method)
ENTRIES = ("masks", "eval.json", "eval.md", "chameleon", "multi_branch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = recipe_parser(__doc__, hparams_dir=HPARAMS)
    p.add_argument("--dataset", choices=DATASETS, help="dataset of --data-root (default: food101)")
    p.add_argument("--data-root", help="dataset folder; default: synthetic Food-101-layout data")
    p.add_argument("--methods", help="comma-separated subset of chameleon,multi_branch")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    args = parse_recipe_args(p, argv)
    if args.config is None:  # the default config follows the data source
        args.config = str(HPARAMS / (f"{args.dataset or 'food101'}.yaml" if args.data_root else "default.yaml"))
    return args


def load_config(args: argparse.Namespace):
    """hparams file ← command-line flags ← key=value overrides; relative paths made absolute."""
    from modalink.classification.chameleon import ChameleonRecipeConfig, apply_synthetic_preset
    from modalink.config import make_paths_absolute

    if args.dataset and not args.data_root and args.dataset != "food101":
        raise UserError(f"--dataset {args.dataset} needs --data-root (only the Food-101 layout is synthesised)")
    cfg = load_recipe_config(ChameleonRecipeConfig, args, flags={
        "data.root": args.data_root, "data.dataset": args.dataset, "output_dir": args.output_dir,
        "methods": args.methods.split(",") if args.methods else None, "engine.cpu": True if args.cpu else None})
    apply_synthetic_preset(cfg.data.synthetic, args.overrides)
    return make_paths_absolute(cfg)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.print_config:
        announce(f"Chameleon train.py: {'data in ' + args.data_root if args.data_root else 'synthetic Food-101 set'}, "
                 f"config {args.config}; loading torch ...")
    cfg = load_config(args)
    if args.print_config:
        print_config(cfg)
        return {}
    from modalink.engine import run_session

    # the run contract: refused here, before anything is written, if the folder holds another run
    with run_session(cfg.output_dir, cfg, recipe="chameleon", mode=resume_mode(args), entries=ENTRIES,
                     ignore=("output_dir",), argv=argv) as run:
        return _train(cfg, run)


def _train(cfg, run) -> dict:
    from modalink.classification import chameleon as cham
    from modalink.classification.evaluation import evaluate_conditions
    from modalink.classification.training import finish_methods, train_methods

    out, state = run.path, run.state
    t0 = time.time()
    with state.main_process_first():  # the main process generates the synthetic data; the others reuse it
        data = cham.load_data(cfg, progress=cfg.engine.progress and state.is_main_process)
    run.bind_data(cham.data_fingerprint(data))
    logger = run.start()
    logger.info("data: %s (%.1f s)", data.description, time.time() - t0)
    plans, eval_collates = cham.method_plans(cfg, data)
    trainers, timings = train_methods(plans, out)
    results = evaluate_conditions({k: (t.model, eval_collates[k]) for k, t in trainers.items()}, {"test": data.test},
                                  cfg.missing.eval, task=data.task, metrics=data.metrics, seed=cfg.missing.seed,
                                  batch_size=max(cfg.engine.batch_size, 128), trainers=trainers,
                                  mask_dir=out / "masks" if state.is_main_process else None,
                                  info=cham.results_info(data, cfg))
    if (ceiling := cham.ceiling_table(data, cfg.missing.eval)) is not None:
        results["ceiling"] = ceiling
    finish_methods(run, results, trainers, timings, t0, titles=cham.METHOD_TITLES,
                   contract=lambda kind: cham.model_contract(kind, cfg),
                   card_rows=lambda kind: {f"{m} ({c})": v for c, vals in results["results"][kind].items()
                                           for m, v in vals.items()})
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
