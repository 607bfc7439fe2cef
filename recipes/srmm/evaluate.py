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
from modalink.errors import run_cli


def main(argv: list[str] | None = None) -> dict:
    p = command_parser(__doc__)
    p.add_argument("run_dir", help="output folder of train.py (holds config.yaml)")
    p.add_argument("--out", help="where to write results.{json,md} (default: run_dir)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the run's config")
    a = p.parse_intermixed_args(argv)  # before the heavy imports: --help answers at once
    from modalink.classification import embeddings, srmm
    from modalink.classification.datasets import collate_embeddings
    from modalink.classification.evaluation import evaluate_conditions, format_table, write_results
    from modalink.classification.runs import load_run

    run = load_run(a.run_dir, a.overrides, recipe="srmm")
    cfg, run_dir = run.config, run.path
    data = embeddings.prepare_all(cfg, run_dir, progress=cfg.prepare.progress)
    models = {n: (srmm.wrap(n, run.load_network(n), cfg).eval(), collate_embeddings) for n in run.methods}
    out = Path(a.out).absolute() if a.out else run_dir
    results = evaluate_conditions(models, {s: data.eval_set(s) for s in cfg.missing.splits}, cfg.missing.eval,
                                  task="multiclass", metrics=("accuracy",), seed=cfg.missing.seed, batch_size=1024,
                                  mask_dir=out / "masks", info=srmm.results_info(data, cfg))
    write_results(results, out, titles=srmm.METHOD_TITLES)
    print(format_table(results, srmm.METHOD_TITLES))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
