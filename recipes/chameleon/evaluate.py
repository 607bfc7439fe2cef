#!/usr/bin/env python
"""Evaluate the models a Chameleon run exported under missing-modality conditions (complete
data, missing text, missing images).

    python recipes/chameleon/evaluate.py --run-dir runs/chameleon_synthetic
    python recipes/chameleon/evaluate.py --run-dir runs/cham_food101 \\
        --conditions complete text=70% text=30% text=0% image=30%

Reads ``<run-dir>/config.yaml`` (the resolved training config) and each method's exported model
``<run-dir>/<method>/model`` (:func:`modalink.hub.from_pretrained`); rebuilds the test split and
the same deterministic masks (``missing.seed``) and writes ``<run-dir>/<stem>.json`` /
``<stem>.md`` (default stem ``eval``) and ``<run-dir>/masks/``. ``key=value`` overrides change
the config (e.g. ``data.root=/new/place`` when the data moved).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modalink.cli import command_parser
from modalink.errors import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = command_parser(__doc__)
    p.add_argument("--run-dir", required=True, help="output folder of train.py (has config.yaml)")
    p.add_argument("--methods", help="comma-separated methods to evaluate (default: those of the run)")
    p.add_argument("--conditions", nargs="+", help="conditions, e.g. complete text=30%% image=30%% "
                                                   "'text=65%%,image=65%%' (default: missing.eval of the run)")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    p.add_argument("--stem", default="eval", help="output file stem in the run folder (default: eval)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)  # before the heavy imports: --help answers at once
    from modalink.classification import chameleon as cham
    from modalink.classification.evaluation import evaluate_conditions, format_table, write_results
    from modalink.classification.runs import load_run

    run_dir = Path(a.run_dir).absolute()
    overrides = [f"output_dir={run_dir}"]
    if a.data_root:
        overrides.append(f"data.root={a.data_root}")
    if a.methods:
        overrides.append(f"methods=[{a.methods}]")
    if a.conditions:
        overrides.append(f"missing.eval={json.dumps(list(a.conditions))}")
    run = load_run(run_dir, overrides + list(a.overrides), recipe="chameleon", flag="--run-dir")
    cfg = run.config
    cfg.engine.progress = False
    data = cham.load_data(cfg, progress=True)
    cache: dict = {}
    models = {}
    for kind in cfg.methods:
        _, collate, _ = cham.method_collates(kind, cfg, cache)
        models[kind] = (cham.wrap(kind, run.load_network(kind), data.multilabel, cfg.chameleon.aux_weight).eval(),
                        collate)
    info = cham.results_info(data, cfg)
    results = evaluate_conditions(models, {"test": data.test}, cfg.missing.eval, task=data.task, metrics=data.metrics,
                                  seed=cfg.missing.seed, batch_size=a.batch_size, mask_dir=run_dir / "masks", info=info)
    if (ceiling := cham.ceiling_table(data, cfg.missing.eval)) is not None:
        results["ceiling"] = ceiling
    write_results(results, run_dir, a.stem, titles=cham.METHOD_TITLES)
    print(format_table(results, cham.METHOD_TITLES))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
