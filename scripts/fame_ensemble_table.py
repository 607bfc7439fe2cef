#!/usr/bin/env python
"""The FAME README's ensemble/normalisation table from finished ``recipes/fame/ensemble.py`` runs.

    python scripts/fame_ensemble_table.py runs/ens_d0 runs/ens_d1 runs/ens_d2

Each folder is one ensemble (members trained with ``norm.method=auto``, so every member holds its
raw and its normalised scores). Rows: the member whose training seed is the data seed (= the
plain ``train.py engine.seed=N`` run) raw and normalised, the members' scoring embeddings
concatenated (what one exported model holding every member would score), and the fused members
raw and normalised, by mean and by logistic-regression fusion; cells are mean ± standard deviation over
the folders of the mean test EER, the validation EERs (English / German) and the wall time.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from modalink.metrics import fast_eer


def _members(folder: Path, res: dict):
    """The ensemble's ground-truth folder, and per training language its members' ``scoring.npz``."""
    from modalink.face_voice.layout import FameLayout

    ver = res["ver"]
    contract = json.loads((folder / "ensemble.json").read_text())
    root = Path(contract["feats_root"]) if contract["feats_root"] else folder / "synthetic_data"
    per_lang = {lang: [dict(np.load(folder / m["run"] / f"{ver}_{lang}" / "scoring.npz")) for m in res["members"]]
                for lang in sorted(res["fused_submitted"]["val_eer"])}
    return FameLayout(root, ver).ground_truth_dir, per_lang


def _test_langs(z: dict) -> list[str]:
    return sorted(k[5:-5] for k in z if k.startswith("test_") and k.endswith("_keys"))


def _fused(folder: Path, res: dict, variant: str, method: str) -> tuple[float, list[float]]:
    """(mean test EER, [val EER per language]) of the members fused by ``method``."""
    from modalink.face_voice.results import eer_rows, fuse_scores

    field = "score" if variant == "submitted" else "raw"
    gt_dir, per_lang = _members(folder, res)
    scores, vals = {}, []
    for lang, z in per_lang.items():
        y, tests = z[0]["val_label"], _test_langs(z[0])
        val, tx = np.stack([zi[f"val_{field}"] for zi in z], 1), {t: np.stack([zi[f"test_{t}_{field}"] for zi in z], 1)
                                                                   for t in tests}
        fv, ft, _ = fuse_scores(method, val, y, tx)
        vals.append(float(fast_eer(y, fv)))
        scores.update({(lang, t): (list(z[0][f"test_{t}_keys"]), ft[t]) for t in tests})
    rows = eer_rows(scores, gt_dir)
    return float(np.mean([r["eer"] for r in rows])), vals


def _concatenated(folder: Path, res: dict) -> tuple[float, list[float]]:
    """(mean test EER, [val EER per language]) of the members' raw scoring embeddings concatenated:
    the L2 distance one model holding every member would give (no score-level fusion)."""
    from modalink.face_voice.results import eer_rows

    gt_dir, per_lang = _members(folder, res)
    scores, vals = {}, []
    for lang, z in per_lang.items():

        def cat(key: str) -> np.ndarray:
            return np.concatenate([zi[key] for zi in z], axis=1)

        fi, vi = z[0]["val_trial_face"], z[0]["val_trial_voice"]
        vals.append(float(fast_eer(z[0]["val_label"], np.linalg.norm(cat("val_face")[fi] - cat("val_voice")[vi],
                                                                       axis=1))))
        scores.update({(lang, t): (list(z[0][f"test_{t}_keys"]),
                                   np.linalg.norm(cat(f"test_{t}_face") - cat(f"test_{t}_voice"), axis=1))
                       for t in _test_langs(z[0])})
    rows = eer_rows(scores, gt_dir)
    return float(np.mean([r["eer"] for r in rows])), vals


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+")
    args = p.parse_args(argv)
    table: dict[str, list[tuple[float, list[float], float]]] = {}
    for folder in args.folders:
        res = json.loads((folder / "results.json").read_text())
        data_seed = json.loads((folder / "ensemble.json").read_text())["data_seed"]
        m = next(x for x in res["members"] if x["seed"] == data_seed)
        langs = sorted(m["val_eer"])
        t_single = json.loads((folder / m["run"] / "timings.json").read_text())["seconds"]
        t_all = sum(json.loads((folder / x["run"] / "timings.json").read_text())["seconds"] for x in res["members"])
        table.setdefault("single model", []).append((m["mean_eer_raw"], [m["val_eer_raw"][x] for x in langs], t_single))
        table.setdefault("single model + norm (auto)", []).append((m["mean_eer"], [m["val_eer"][x] for x in langs],
                                                                   t_single))
        test, val = _concatenated(folder, res)
        table.setdefault(f"{len(res['members'])}-seed ensemble, concatenated embeddings (raw)", []).append(
            (test, val, t_all))
        for method in ("mean", "logreg"):
            for variant, label in (("raw", ""), ("submitted", " + norm (auto)")):
                test, val = _fused(folder, res, variant, method)
                table.setdefault(f"{len(res['members'])}-seed ensemble, {method} fusion{label}", []).append(
                    (test, val, t_all))
    print("| system | mean test EER | val. EER En / De | wall time (s) |")
    print("|---|---|---|---|")
    for name, rows in table.items():
        test = np.array([r[0] for r in rows])
        val = np.array([r[1] for r in rows])
        t = np.array([r[2] for r in rows])
        print(f"| {name} | {test.mean():.2f} ± {test.std(ddof=1) if len(rows) > 1 else 0:.2f} | "
              f"{val[:, 0].mean():.2f} / {val[:, 1].mean():.2f} | {t.mean():.0f} |")
        print(f"|   per folder | {' · '.join(f'{x:.2f}' for x in test)} | "
              f"{' · '.join(f'{a:.2f}/{b:.2f}' for a, b in val)} | |")


if __name__ == "__main__":
    main()
