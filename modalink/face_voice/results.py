"""ensemble.py's fusion of its members and its results.{json,md} (wiring: the fusion itself is
:mod:`modalink.score_fusion`, the submission :func:`challenge.write_submission`)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from challenge import write_submission
from challenge.combine import SCORING_FILE
from modalink.errors import InputError
from modalink.io import atomic_write_bytes, atomic_write_text
from modalink.metrics import fast_eer
from modalink.score_fusion import fit_linear_fusion, mean_fusion


def _fuse(method: str, val: np.ndarray, y: np.ndarray, tests: dict[str, np.ndarray]
          ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    if method == "logreg":
        model = fit_linear_fusion(val, y)
        return model.apply(val), {t: model.apply(x) for t, x in tests.items()}, model.to_dict()
    return mean_fusion(val), {t: mean_fusion(x) for t, x in tests.items()}, {}


def fuse_members(out: Path, members: list[Path], seeds: list[int], method: str, ver: str, edition: str,
                 feats_root: Path, ground_truth: str | None, seconds: float) -> dict[str, Any]:
    """Fuse the members' scores per training language (as submitted and before normalisation),
    write ``out/submission`` (the submitted variant) and ``out/results.{json,md}``."""
    from fame_scoring import eer_rows

    gt_dir = Path(ground_truth) if ground_truth else feats_root / "ground_truth" / ver
    gt_dir = gt_dir if gt_dir.is_dir() else None
    runs = [json.loads((m / "results.json").read_text()) for m in members]
    langs = sorted(runs[0]["norm"]["per_language"])
    variants: dict[str, dict] = {"submitted": {}, "raw": {}}
    val_eer: dict[str, dict] = {"submitted": {}, "raw": {}}
    weights: dict[str, dict] = {"submitted": {}, "raw": {}}
    member_val: dict[str, dict] = {}
    for lang in langs:
        z = []
        for m in members:
            with np.load(m / f"{ver}_{lang}" / SCORING_FILE, allow_pickle=False) as f:
                z.append({k: f[k] for k in f.files})
        y = z[0]["val_label"]
        for m, zi in zip(members, z):
            if len(zi["val_label"]) != len(y) or np.any(zi["val_label"] != y):
                raise InputError(f"{m}: other validation trials than {members[0]}; the members must read the same data")
        tests = sorted(k[len("test_"):-len("_keys")] for k in z[0] if k.startswith("test_") and k.endswith("_keys"))
        for t in tests:
            for m, zi in zip(members, z):
                if list(zi[f"test_{t}_keys"]) != list(z[0][f"test_{t}_keys"]):
                    raise InputError(f"{m}: other {t} pair keys than {members[0]}; the members must read the same data")
        member_val[lang] = {"submitted": [float(fast_eer(y, zi["val_score"])) for zi in z],
                            "raw": [float(fast_eer(y, zi["val_raw"])) for zi in z]}
        for variant, field in (("submitted", "score"), ("raw", "raw")):
            val = np.stack([zi[f"val_{field}"] for zi in z], axis=1)
            tx = {t: np.stack([zi[f"test_{t}_{field}"] for zi in z], axis=1) for t in tests}
            fused_val, fused_test, w = _fuse(method, val, y, tx)
            val_eer[variant][lang] = float(fast_eer(y, fused_val))
            weights[variant][lang] = w
            for t in tests:
                variants[variant][(lang, t)] = (list(z[0][f"test_{t}_keys"]), fused_test[t])
            if variant == "submitted":
                buf = io.BytesIO()
                np.savez(buf, val_label=y, val_score=fused_val)
                atomic_write_bytes(out / f"{ver}_{lang}" / SCORING_FILE, buf.getvalue())
    pairs_dir = feats_root / "face_voice_association_splits" / ver
    write_submission(out / "submission", variants["submitted"], edition=edition, pairs_dir=pairs_dir,
                     info={"combined": {"operation": "ensemble", "method": method,
                                        "inputs": [str(m) for m in members]}})
    results: dict[str, Any] = {"ver": ver, "fusion": method, "seeds": seeds, "members": []}
    for i, (seed, m, r) in enumerate(zip(seeds, members, runs)):
        results["members"].append({
            "seed": seed, "run": m.name, "val_eer": {lang: member_val[lang]["submitted"][i] for lang in langs},
            "val_eer_raw": {lang: member_val[lang]["raw"][i] for lang in langs},
            "norm": {lang: r["norm"]["per_language"][lang]["chosen"]["name"] for lang in langs},
            "mean_eer": r.get("mean_eer"), "mean_eer_raw": r["norm"].get("mean_eer_raw")})
    for variant in ("submitted", "raw"):
        rows = eer_rows(variants[variant], gt_dir)
        results[f"fused_{variant}"] = {"val_eer": val_eer[variant], "weights": weights[variant],
                                       "eer": rows, "mean_eer": float(np.mean([r["eer"] for r in rows])) if rows
                                       else None}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", format_ensemble(results, seconds))
    atomic_write_text(out / "timings.json", json.dumps({"seconds": seconds}, indent=2) + "\n")
    return results


def format_ensemble(r: dict[str, Any], seconds: float | None = None) -> str:
    """results.md of an ensemble: members and fused system, validation and test EER."""
    langs = sorted(r["fused_submitted"]["val_eer"])
    head = "| system | " + " | ".join(f"val. EER {lang}" for lang in langs) + " | test mean EER |"
    lines = [f"# FAME {r['ver']} seed ensemble ({r['fusion']} fusion)", "",
             "Members' scores as submitted (with the normalisation each chose on validation) and before "
             "normalisation (raw); validation EERs chose everything, test EERs are reported only.", "",
             head, "|" + "---|" * (len(langs) + 2)]

    def cell(x: Any) -> str:
        return "–" if x is None else f"{x:.2f}"

    for m in r["members"]:
        lines.append(f"| seed {m['seed']} ({m['run']}, norm {', '.join(m['norm'][lang] for lang in langs)}) | "
                     + " | ".join(cell(m["val_eer"][lang]) for lang in langs) + f" | {cell(m['mean_eer'])} |")
        lines.append(f"| seed {m['seed']} raw | " + " | ".join(cell(m["val_eer_raw"][lang]) for lang in langs)
                     + f" | {cell(m['mean_eer_raw'])} |")
    for variant, label in (("submitted", "**fused** (submitted)"), ("raw", "fused raw")):
        f = r[f"fused_{variant}"]
        lines.append(f"| {label} | " + " | ".join(cell(f["val_eer"][lang]) for lang in langs)
                     + f" | {cell(f['mean_eer'])} |")
    rows = r["fused_submitted"]["eer"]
    if rows:
        lines += ["", "| train | test | condition | fused EER (%) |", "|---|---|---|---|"]
        lines += [f"| {x['train']} | {x['test']} | {x['condition']} | {x['eer']:.2f} |" for x in rows]
    if seconds is not None:
        lines += ["", f"wall time: {seconds:.1f} s"]
    lines += ["", "fused submission in `submission/`", ""]
    return "\n".join(lines)
