#!/usr/bin/env python
"""Re-evaluate a finished SRMM run: both exported models under every condition, on every split.

    python recipes/srmm/evaluate.py runs/srmm
    python recipes/srmm/evaluate.py runs/srmm "missing.eval=[complete, text=50%, text=10%, text=0%]"

Reads ``<run>/config.yaml``, the embedding caches (rebuilt if stale) and the exported models
``<run>/{srmm,late_fusion}/model`` (:func:`modalink.hub.from_pretrained`); writes
``results.json``/``results.md`` again (or to ``--out DIR``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from modalink.cli import command_parser
from modalink.errors import UserError, run_cli


def main(argv: list[str] | None = None) -> dict:
    p = command_parser(__doc__)
    p.add_argument("run_dir", help="output folder of train.py (holds config.yaml)")
    p.add_argument("--out", help="where to write results.{json,md} (default: run_dir)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the run's config")
    a = p.parse_intermixed_args(argv)  # before the heavy imports: --help answers at once
    from modalink.classification import embeddings, srmm
    from modalink.classification.datasets import collate_embeddings
    from modalink.classification.evaluation import evaluate_conditions, format_table, write_results
    from modalink.config import load_config

    run_dir = Path(a.run_dir).expanduser().absolute()
    if not (run_dir / "config.yaml").is_file():
        what = "does not exist" if not run_dir.exists() else "has no config.yaml"
        raise UserError(f"run folder {a.run_dir} {what}: pass the --output-dir of a finished "
                        "train.py run (default runs/srmm)")
    # train.py records absolute paths; a relative one (older runs, hand edits) is read from here
    cfg = srmm.absolute_paths(load_config(srmm.SRMMConfig, run_dir / "config.yaml", a.overrides))
    data = embeddings.prepare_all(cfg, run_dir, progress=cfg.prepare.progress)
    names = ["srmm"] + (["late_fusion"] if cfg.baseline.enabled else [])
    models = {n: (srmm.load_trained(run_dir, n, cfg), collate_embeddings) for n in names}
    out = Path(a.out).absolute() if a.out else run_dir
    results = evaluate_conditions(models, {s: data.eval_set(s) for s in cfg.missing.splits}, cfg.missing.eval,
                                  task="multiclass", metrics=("accuracy",), seed=cfg.missing.seed, batch_size=1024,
                                  mask_dir=out / "masks", info=srmm.results_info(data, cfg))
    write_results(results, out, titles=srmm.METHOD_TITLES)
    print(format_table(results, srmm.METHOD_TITLES))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
