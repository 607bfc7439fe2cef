#!/usr/bin/env python
"""Extract and cache image and text embeddings for the SRMM recipe (batched, resumable).

    python recipes/srmm/prepare.py                                   # synthetic default
    python recipes/srmm/prepare.py --data-root /data/food101 --output-dir runs/srmm_food101 \\
        image_encoder.weights=/models/vit_clip/model.safetensors

Writes ``<cache>/<split>_{image,text}.npy`` and a JSON manifest per array (encoder config,
count, shape, source hash) for the train and test files; a valid cache is reused, a stale one
(other encoder, changed files, wrong shape) rebuilt, an interrupted extraction resumed from its
shards. ``train.py`` calls the same code, so running this first is optional. Takes the same
arguments as ``train.py``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from modalink.cli import parse_recipe_args, print_config, recipe_parser
from modalink.errors import run_cli
from modalink.progress import announce

HPARAMS = Path(__file__).resolve().parent / "hparams"


def main(argv: list[str] | None = None) -> None:
    p = recipe_parser(__doc__, hparams_dir=HPARAMS)
    p.add_argument("--data-root", help="UPMC Food-101 folder (images/, texts/); default: synthetic data")
    p.add_argument("--cpu", action="store_true", help="force CPU (engine.cpu=true)")
    args = parse_recipe_args(p, argv)  # before the heavy imports: --help answers at once
    if not args.print_config:
        announce(f"SRMM prepare.py: {'data in ' + args.data_root if args.data_root else 'synthetic set'}; loading "
                 f"torch, then the encoders ...")
    from modalink.classification import embeddings, srmm
    from modalink.cli import load_recipe_config, resume_mode

    if args.config is None:
        args.config = str(HPARAMS / ("food101.yaml" if args.data_root else "default.yaml"))
    cfg = load_recipe_config(srmm.SRMMConfig, args, flags={
        "data.root": args.data_root, "output_dir": args.output_dir, "engine.cpu": True if args.cpu else None})
    srmm.absolute_paths(cfg)
    if args.print_config:
        print_config(cfg)
        return
    embeddings.check_data_root(cfg)  # a wrong --data-root or missing weights end here, before anything is written
    t0 = time.time()
    encoders = srmm.build_encoders(cfg)
    from modalink.engine import run_session

    # the caches belong to the run: train.py with the same settings resumes this folder
    with run_session(cfg.output_dir, cfg, recipe="srmm", mode=resume_mode(args), entries=("cache", "masks"),
                     ignore=("output_dir", "prepare.progress"), argv=argv) as run:
        data = embeddings.prepare_all(cfg, run.path, progress=cfg.prepare.progress, encoders=encoders)
        run.bind_data(data.fingerprint())
        log = run.start()
    for split, (part, idx) in data.rows.items():
        log.info("%s: %d samples (rows of the %s file)", split, len(idx), part)
    log.info("caches in %s: image %s (%d-D), text %s (%d-D); %.1f s", data.cache_dir, data.image_encoder.get("name"),
             data.dims["image"], data.text_encoder.get("name"), data.dims["text"], time.time() - t0)

if __name__ == "__main__":
    sys.exit(run_cli(main))
