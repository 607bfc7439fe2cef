#!/usr/bin/env python
"""Extract and cache image and text embeddings for the SRMM recipe (batched, resumable).

    python recipes/srmm/prepare.py                                   # synthetic default
    python recipes/srmm/prepare.py --data-root /data/food101 --output-dir runs/srmm_food101 \\
        image_encoder.weights=/models/vit_clip/model.safetensors

Writes ``<cache>/<split>_{image,text}.npy`` and a JSON manifest per array (encoder config,
count, shape, source hash) for the train and test files; a valid cache is reused, a stale one
(other encoder, changed files, wrong shape) rebuilt, an interrupted extraction resumed from its
shards. ``train.py`` calls the same code, so running this first is optional.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from modalink.engine import start_run  # noqa: E402
from modalink.errors import run_cli  # noqa: E402

from srmm_data import build_encoders, check_data_root, prepare_all  # noqa: E402
from train import load_recipe_config, parse_args  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_args(argv, description=__doc__)
    cfg = load_recipe_config(args, overrides)
    check_data_root(cfg)  # a wrong --data-root or missing weights end here, before the run folder is written
    t0 = time.time()
    encoders = build_encoders(cfg)
    out_dir = Path(cfg.output_dir)
    logger = start_run(out_dir, cfg, argv=sys.argv if argv is None else argv, log_name="modalink")
    data = prepare_all(cfg, out_dir, progress=cfg.prepare.progress, encoders=encoders)
    for split, (part, idx) in data.rows.items():
        logger.info("%s: %d samples (rows of the %s file)", split, len(idx), part)
    logger.info("caches in %s: image %s (%d-D), text %s (%d-D); %.1f s", data.cache_dir,
                data.image_encoder.get("name"), data.dims["image"], data.text_encoder.get("name"),
                data.dims["text"], time.time() - t0)


if __name__ == "__main__":
    sys.exit(run_cli(main))
