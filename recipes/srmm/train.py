#!/usr/bin/env python
"""Train SRMM (one shared branch, modality switching) and a two-branch late-fusion baseline on
cached image/text embeddings, then evaluate both with complete and missing text.

    python recipes/srmm/train.py                          # synthetic default (run time: README.md)
    python recipes/srmm/train.py --data-root /data/food101 --output-dir runs/srmm_food101
    accelerate launch recipes/srmm/train.py --data-root /data/food101 engine.batch_size=256

Without ``--config`` the defaults are ``hparams/default.yaml`` (synthetic data) or
``hparams/food101.yaml`` (with ``--data-root``). Writes, under the output folder: ``run.json``
(the run contract), ``config.yaml``, ``log.txt``; ``srmm/`` and ``late_fusion/`` run folders
(log, metrics, checkpoints, best model) with the exported model in ``<method>/model``;
``cache/`` (embeddings), ``masks/``, ``results.json`` / ``results.md`` (the accuracy tables) and
``timings.json``. The same command again resumes (or re-scores a finished run); another config
or other data is refused before anything is written — use a new ``--output-dir`` or
``--overwrite``. Errors end in one line (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from modalink.cli import load_recipe_config, parse_recipe_args, print_config, recipe_parser, resume_mode
from modalink.errors import run_cli
from modalink.progress import announce

HPARAMS = Path(__file__).resolve().parent / "hparams"
ENTRIES = ("cache", "masks", "srmm", "late_fusion")  # what this recipe writes besides the shared run files


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    p = recipe_parser(description or __doc__, hparams_dir=HPARAMS)
    p.add_argument("--data-root", help="UPMC Food-101 folder (images/, texts/); default: synthetic data")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    args = parse_recipe_args(p, argv)
    if args.config is None:
        args.config = str(HPARAMS / ("food101.yaml" if args.data_root else "default.yaml"))
    return args


def load_config(args: argparse.Namespace):
    """hparams file ← flags ← key=value overrides; relative paths made absolute from the current folder."""
    from modalink.classification import srmm

    cfg = load_recipe_config(srmm.SRMMConfig, args, flags={
        "data.root": args.data_root, "output_dir": args.output_dir, "engine.cpu": True if args.cpu else None})
    return srmm.absolute_paths(cfg)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    if not args.print_config:
        announce(f"SRMM train.py: {'data in ' + args.data_root if args.data_root else 'synthetic set'}, config "
                 f"{args.config}; loading torch, then the data and the encoders ...")
    from modalink.classification import embeddings, srmm
    from modalink.engine import process_state, run_session

    cfg = load_config(args)
    if args.print_config:
        print_config(cfg)
        return {}
    embeddings.check_data_root(cfg)  # a wrong --data-root ends here, before the run folder is written
    process_state(cfg.engine)
    # every process looks for the weights itself (hub downloads are file-locked), so missing
    # weights end every process at once instead of leaving the others waiting at a barrier
    encoders = srmm.build_encoders(cfg)
    with run_session(cfg.output_dir, cfg, recipe="srmm", mode=resume_mode(args), entries=ENTRIES, argv=argv,
                     ignore=("output_dir", "prepare.progress"), reusable=("cache",)) as run:
        return _train(cfg, run, encoders)


def _train(cfg, run, encoders) -> dict:
    from modalink.classification import embeddings, srmm
    from modalink.classification.datasets import collate_embeddings
    from modalink.classification.evaluation import evaluate_conditions
    from modalink.classification.training import finish_methods, train_methods
    from modalink.data.processes import Processes

    out, state = run.path, run.state
    t0 = time.time()
    with state.main_process_first():  # the main process generates the synthetic data, if any
        plan = embeddings.plan_all(cfg, out, encoders=encoders)
    run.bind_data(plan.fingerprint())  # other data than the run's is refused before any extraction
    # every process embeds one block of the rows still to embed; the main process merges the cache
    data = embeddings.prepare_all(cfg, out, progress=cfg.prepare.progress and state.is_main_process, plan=plan,
                                  processes=Processes.current())
    logger = run.start()
    logger.info("embeddings ready in %.1f s (image %s %s, text %s %s)", time.time() - t0,
                data.image_encoder.get("name"), data.dims["image"], data.text_encoder.get("name"), data.dims["text"])
    trainers, timings = train_methods(srmm.method_plans(cfg, data), out)
    results = evaluate_conditions({n: (t.model, collate_embeddings) for n, t in trainers.items()},
                                  {s: data.eval_set(s) for s in cfg.missing.splits}, cfg.missing.eval,
                                  task="multiclass", metrics=("accuracy",), seed=cfg.missing.seed, batch_size=1024,
                                  trainers=trainers, mask_dir=out / "masks" if state.is_main_process else None,
                                  info=srmm.results_info(data, cfg))
    finish_methods(run, results, trainers, timings, t0, titles=srmm.METHOD_TITLES,
                   contract=lambda name: srmm.model_contract(data),
                   card_rows=lambda name: {f"accuracy ({c})": v["accuracy"]
                                           for c, v in results["results"][name].items()})
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
