#!/usr/bin/env python
"""Train a FAME seed ensemble of separate runs and write their score-level fused submission.

    python recipes/fame/ensemble.py --seeds 0 10 20 --output-dir runs/fame_ens model.members=1
    python recipes/fame/ensemble.py --seeds 0 10 20 --fusion logreg norm.method=auto model.members=1 \
        --output-dir runs/fame_ens_norm
    python recipes/fame/ensemble.py --feats-root DATA --ver v3 --seeds 0 10 20 --output-dir runs/fame_v3_ens

train.py's default is already a seed ensemble exported as ONE model (``model.members: 3``); this
command fuses the SCORES of separate runs instead (mean of z-normalised scores, or weights
learned on validation), e.g. of single models (``model.members=1``, as above) or of ensembles.

Each member is a normal train.py run folder ``<output-dir>/seed_<N>`` (trained with
``engine.seed=N``, the other settings and ``key=value`` overrides shared), so the same command
again resumes the members that did not finish and re-fuses. All members read the SAME data:
without ``--feats-root`` one synthetic set is generated in ``<output-dir>/synthetic_data`` from
``--data-seed`` (default: the first seed), so member N differs from a plain
``train.py engine.seed=N`` run only when N is not the data seed. The members' submissions are fused
file by file (``--fusion mean``: mean of z-normalised scores; ``logreg``: weights learned on the
validation trials) into ``<output-dir>/submission/``; ``results.md`` lists each member's and the
fused system's validation EER (and test EER with ground truth), with and without the members'
score normalisation.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from modalink.cli import parse_recipe_args, recipe_parser
from modalink.errors import run_cli
from modalink.face_voice.cli import add_data_arguments, split_seeds
from modalink.progress import announce

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "hparams" / "default.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = recipe_parser(__doc__, default_config=DEFAULT_CONFIG, output_default="runs/fame_ensemble")
    add_data_arguments(p)
    p.add_argument("--seeds", nargs="+", default=["0", "10", "20"], metavar="N",
                   help="training seeds, one member each (default: 0 10 20)")
    p.add_argument("--data-seed", type=int, default=None,
                   help="seed of the synthetic set every member reads (default: the first of --seeds; "
                        "not used with --feats-root)")
    p.add_argument("--fusion", choices=("mean", "logreg"), default="mean",
                   help="mean of z-normalised scores, or linear fusion with weights learned on validation trials")
    args = parse_recipe_args(p, argv)
    try:
        args.seeds, extra = split_seeds(args.seeds)
    except ValueError as e:
        p.error(str(e))
    args.overrides = list(args.overrides or []) + extra
    if any(o.split("=", 1)[0] == "engine.seed" for o in args.overrides):
        p.error("engine.seed= is set per member from --seeds; remove the override")
    if args.data_seed is None:
        args.data_seed = args.seeds[0]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    announce(f"FAME ensemble.py: {len(args.seeds)} members (seeds {', '.join(map(str, args.seeds))}) in "
             f"{args.output_dir}; loading torch ...")
    from challenge import write_submission
    from modalink.engine.run_folder import hold_lock
    from modalink.face_voice.layout import FameLayout
    from modalink.face_voice.results import fuse_members, write_ensemble_results
    from modalink.face_voice.runs import open_ensemble_folder
    from modalink.face_voice.synthetic import generate_synthetic_fame

    train = _train_script()

    t0 = time.time()
    out = Path(args.output_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    lock = hold_lock(out)
    try:
        contract = {"config": str(Path(args.config).absolute()), "overrides": list(args.overrides),
                    "feats_root": str(Path(args.feats_root).absolute()) if args.feats_root else None,
                    "ver": args.ver, "train_lang": args.train_lang, "edition": args.edition,
                    "data_seed": None if args.feats_root else args.data_seed,
                    "seeds": args.seeds, "fusion": args.fusion}
        open_ensemble_folder(out, contract, args.overwrite)
        if args.feats_root:
            root = Path(args.feats_root).absolute()
        else:
            root = out / "synthetic_data"
            announce(f"synthetic MAV-Celeb-like {args.ver} set (data seed {args.data_seed}) in {root} ...")
            generate_synthetic_fame(root, ver=args.ver, seed=args.data_seed, progress=True)
        common = ["--feats-root", str(root), "--ver", args.ver, "--train-lang", args.train_lang,
                  "--edition", args.edition, "--config", str(args.config)]
        if args.ground_truth:
            common += ["--ground-truth", args.ground_truth]
        if args.overwrite:
            common.append("--overwrite")
        elif args.resume:
            common.append("--resume")
        members = []
        for seed in args.seeds:
            announce(f"member seed {seed}: {out / f'seed_{seed}'}")
            train.main([*common, "--output-dir", str(out / f"seed_{seed}"), *args.overrides, f"engine.seed={seed}"])
            members.append(out / f"seed_{seed}")
        layout = FameLayout(root, args.ver)
        gt_dir = Path(args.ground_truth) if args.ground_truth else layout.ground_truth_dir
        results, fused = fuse_members(out, members, args.seeds, args.fusion, args.ver,
                                      gt_dir if gt_dir.is_dir() else None)
        write_submission(out / "submission", fused, edition=args.edition, pairs_dir=layout.splits_dir,
                         info={"combined": {"operation": "ensemble", "method": args.fusion,
                                            "inputs": [str(m) for m in members]}})
        write_ensemble_results(out, results, seconds=round(time.time() - t0, 2))
    finally:
        os.close(lock)
    print((out / "results.md").read_text())
    return results


def _train_script() -> Any:
    """The recipe's train.py (next to this file) as a module."""
    spec = importlib.util.spec_from_file_location("fame_train", HERE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


if __name__ == "__main__":
    sys.exit(run_cli(main))
