#!/usr/bin/env python
"""Evaluate trained Chameleon / multi-branch models of a run folder under missing-modality
conditions (complete data, missing text, missing images).

    python recipes/chameleon/evaluate.py --run-dir runs/chameleon_synthetic
    python recipes/chameleon/evaluate.py --run-dir runs/cham_food101 \\
        --conditions complete text=70% text=30% text=0% image=30%

Reads ``<run-dir>/config.yaml`` (the resolved training config) and each method's
``<run-dir>/<method>/best_model.pt``; rebuilds the test split and the same deterministic masks
(``missing.seed``) and writes ``<run-dir>/<stem>.json`` / ``<stem>.md`` (default stem
``eval``) and ``<run-dir>/masks/``. ``key=value`` overrides change the config (e.g.
``data.root=/new/place`` when the data moved).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from modalink.config import ConfigError, load_config  # noqa: E402

from chameleon_core import (ChameleonRecipeConfig, evaluate_methods, format_table, load_data,  # noqa: E402
                            load_trained, method_collates, write_results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="output folder of train.py (has config.yaml)")
    p.add_argument("--methods", help="comma-separated methods to evaluate (default: those of the run)")
    p.add_argument("--conditions", nargs="+", help="conditions, e.g. complete text=30%% image=30%% "
                                                   "'text=65%%,image=65%%' (default: missing.eval of the run)")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    p.add_argument("--stem", default="eval", help="output file stem in the run folder (default: eval)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    run_dir = Path(a.run_dir)
    cfg_path = run_dir / "config.yaml"
    overrides = [f"output_dir={run_dir}"]
    if a.data_root:
        overrides.append(f"data.root={a.data_root}")
    if a.methods:
        overrides.append(f"methods=[{a.methods}]")
    try:
        cfg = load_config(ChameleonRecipeConfig, cfg_path, overrides + list(a.overrides))
        if a.conditions:
            cfg.missing.eval = list(a.conditions)
        cfg.check()
    except (ConfigError, ValueError) as e:
        raise SystemExit(f"config error: {e}")
    cfg.engine.progress = False
    t0 = time.time()
    data = load_data(cfg, progress=True)
    cache: dict = {}
    models = {}
    for kind in cfg.methods:
        _, collate, text_dim = method_collates(kind, cfg, cache)
        models[kind] = (load_trained(kind, cfg, data, run_dir / kind, text_dim), collate)
    results = evaluate_methods(models, data, cfg, mask_dir=run_dir / "masks", batch_size=a.batch_size)
    results["wall_time_s"] = round(time.time() - t0, 1)
    write_results(results, run_dir, a.stem)
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
