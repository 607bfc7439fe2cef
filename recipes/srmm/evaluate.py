#!/usr/bin/env python
"""Re-evaluate a finished SRMM run: both models at every text-availability rate, train and test.

    python recipes/srmm/evaluate.py runs/srmm
    python recipes/srmm/evaluate.py runs/srmm "missing.eval_text=[1.0, 0.5, 0.1, 0.0]"

Reads ``<run>/config.yaml``, the embedding caches (rebuilt if stale) and
``<run>/{srmm,late_fusion}/best_model.pt``; writes ``results.json``/``results.md`` again
(or to ``--out DIR``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import torch  # noqa: E402

from modalink.config import load_config  # noqa: E402
from modalink.errors import run_cli  # noqa: E402
from modalink.io import load_torch_weights  # noqa: E402

from srmm_core import SRMMConfig, absolute_paths, build_late_fusion, build_srmm  # noqa: E402
from srmm_data import prepare_all  # noqa: E402
from srmm_eval import evaluate_models, format_table, write_results  # noqa: E402


def load_trained(run_dir: Path, name: str, cfg: SRMMConfig, dims: dict[str, int], num_classes: int):
    """Rebuild model ``name`` and load ``<run_dir>/<name>/best_model.pt``."""
    path = run_dir / name / "best_model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train first (python recipes/srmm/train.py ...)")
    module = (build_srmm if name == "srmm" else build_late_fusion)(cfg, dims, num_classes)
    ckpt = load_torch_weights(path, "trained model")
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="output folder of train.py (holds config.yaml)")
    p.add_argument("--out", help="where to write results.{json,md} (default: run_dir)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the run's config")
    a = p.parse_args(argv)
    run_dir = Path(a.run_dir).expanduser()
    if not (run_dir / "config.yaml").is_file():
        what = "does not exist" if not run_dir.exists() else "has no config.yaml"
        raise FileNotFoundError(f"run folder {run_dir} {what}: pass the --output-dir of a finished "
                                "train.py run (default runs/srmm)")
    # train.py records absolute paths; a relative one (older runs, hand edits) is read from here
    cfg = absolute_paths(load_config(SRMMConfig, run_dir / "config.yaml", a.overrides))
    data = prepare_all(cfg, run_dir, progress=cfg.prepare.progress)
    names = ["srmm"] + (["late_fusion"] if cfg.baseline.enabled else [])
    models = {n: load_trained(run_dir, n, cfg, data.dims, data.num_classes) for n in names}
    results = evaluate_models(models, data, cfg)
    write_results(results, Path(a.out) if a.out else run_dir)
    print(format_table(results))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
