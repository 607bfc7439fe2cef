"""FAME results: ground-truth checks, EER rows, ``results.{json,md}`` of a run and of a seed
ensemble (the fusion of its members' scores). Submission files are written by the caller
(``challenge.write_submission``); this module writes everything else."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from modalink.errors import InputError
from modalink.face_voice.layout import SCORING_FILE, FameLayout, FeatureFileError, list_file_name
from modalink.face_voice.lists import read_ground_truth
from modalink.io import atomic_write_bytes, atomic_write_text
from modalink.metrics import fame_eer, fast_eer
from modalink.score_fusion import fit_linear_fusion, mean_fusion

__all__ = ["default_ground_truth", "check_ground_truth", "eer_rows", "norm_summary", "write_fame_results",
           "format_results", "format_norm", "fuse_scores", "fuse_members", "write_ensemble_results",
           "format_ensemble"]

Scores = dict[tuple[str, str], tuple[list[str], np.ndarray]]


def default_ground_truth(root: Path, ver: str, given: str | None) -> Path | None:
    """``given`` (the ``--ground-truth`` value) when set, else ``<root>/ground_truth/<ver>`` when it
    exists, else None."""
    if given:  # a command-line value: an empty --ground-truth "" is not given
        p = Path(given)
        if not p.is_dir():
            raise FileNotFoundError(f"--ground-truth {p} is not a folder")
        return p
    p = FameLayout(root, ver).ground_truth_dir
    return p if p.is_dir() else None


def check_ground_truth(gt_dir: Path | None, test_sets: list[Any]) -> None:
    """Before training: every pair-list key of ``test_sets`` (:class:`~modalink.face_voice.features.FameTestSet`)
    has a ground-truth label and vice versa."""
    if gt_dir is None:
        return
    for t in test_sets:
        gt_path = gt_dir / list_file_name(t.test_language)
        if not gt_path.is_file():
            raise FileNotFoundError(f"ground truth {gt_path} is missing (--ground-truth {gt_dir} has no file for "
                                    f"{t.test_language}); add it or drop --ground-truth")
        gt = read_ground_truth(gt_path)
        keys = t.keys
        missing = [k for k in keys if k not in gt]
        extra = set(gt) - set(keys)
        if missing or extra:
            example = missing[0] if missing else sorted(extra)[0]
            raise FeatureFileError(gt_path, f"does not match the pair list {t.pair_file}: {len(missing)} pair-list "
                                   f"key(s) have no label and {len(extra)} label(s) have no pair (e.g. "
                                   f"{example!r}); use the ground truth of the same release")


def eer_rows(scores: Scores, gt_dir: Path | None) -> list[dict]:
    """Test EER rows ``{train, test, condition, eer}`` of ``scores`` (distances) against the
    ground truth in ``gt_dir`` (none without); a scored key without a label is an error."""
    if gt_dir is None:
        return []
    rows = []
    for (train, test), (keys, dist) in sorted(scores.items()):
        gt_path = gt_dir / list_file_name(test)
        gt = read_ground_truth(gt_path)
        lacking = [k for k in keys if k not in gt]
        if lacking:
            raise FeatureFileError(gt_path, f"has no label for {len(lacking)} scored key(s), e.g. {lacking[0]!r}")
        labels = np.array([gt[k] for k in keys])
        rows.append({"train": train, "test": test, "condition": "heard" if train == test else "unheard",
                     "eer": fame_eer(labels, dist)})
    return rows


def norm_summary(records: dict[str, dict[str, Any]], raw_rows: list[dict]) -> dict[str, Any]:
    """The ``norm`` entry of results.json: per training language the choice and its validation
    EERs, and the test EERs without normalisation (for comparison only; never used to choose)."""
    out: dict[str, Any] = {"per_language": records}
    if raw_rows:
        out["test_eer_raw"] = raw_rows
        out["mean_eer_raw"] = float(np.mean([r["eer"] for r in raw_rows]))
    return out


def write_fame_results(output_dir: Path, ver: str, scores: Scores, files: list[str], gt_dir: Path | None,
                       extra: dict[str, Any] | None = None, timings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``results.{json,md}`` and ``timings.json`` for ``scores`` whose submission ``files``
    (names under ``<output_dir>/submission``) are written. ``results.json`` holds no wall times, so
    the same run gives the same file byte for byte (a resumed run included)."""
    results: dict[str, Any] = {"ver": ver, "submission": "submission", "files": sorted(files), **(extra or {})}
    if gt_dir is not None:
        rows = eer_rows(scores, gt_dir)
        results["eer"] = rows
        results["mean_eer"] = float(np.mean([r["eer"] for r in rows]))
    atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(output_dir / "results.md", format_results(results))
    if timings:
        atomic_write_text(output_dir / "timings.json", json.dumps(timings, indent=2) + "\n")
        results = {**results, **timings}
    return results


def format_results(results: dict[str, Any]) -> str:
    """results.md of a run: the EER per condition and their mean, the normalisation, the files."""
    lines = [f"# FAME {results['ver']} results", ""]
    if "eer" in results:
        lines += ["| train | test | condition | EER (%) |", "|---|---|---|---|"]
        lines += [f"| {r['train']} | {r['test']} | {r['condition']} | {r['eer']:.2f} |" for r in results["eer"]]
        lines += ["", f"**mean EER: {results['mean_eer']:.2f} %** (lower is better)"]
    else:
        lines.append("(no ground truth given: EERs not computed)")
    lines += format_norm(results)
    if "seconds" in results:
        lines += ["", f"wall time: {results['seconds']:.1f} s"]
    lines += ["", f"submission files in `{results['submission']}/`: " + ", ".join(results["files"]), ""]
    return "\n".join(lines)


def format_norm(results: dict[str, Any]) -> list[str]:
    """results.md lines: validation and test EER with and without normalisation."""
    norm = results.get("norm")
    if not norm:
        return []
    lines = ["", "## Score normalisation (chosen on validation)", "",
             "| train | chosen | val. EER raw | val. EER chosen |", "|---|---|---|---|"]
    for lang, r in norm["per_language"].items():
        lines.append(f"| {lang} | {r['chosen']['name']} | {r['val_eer_raw']:.2f} | {r['val_eer']:.2f} |")
    if "test_eer_raw" in norm and "eer" in results:
        lines += ["", "| train | test | test EER raw | test EER submitted |", "|---|---|---|---|"]
        sub = {(r["train"], r["test"]): r["eer"] for r in results["eer"]}
        for r in norm["test_eer_raw"]:
            lines.append(f"| {r['train']} | {r['test']} | {r['eer']:.2f} | {sub[(r['train'], r['test'])]:.2f} |")
        lines.append(f"| mean | | {norm['mean_eer_raw']:.2f} | {results['mean_eer']:.2f} |")
    return lines


def fuse_scores(method: str, val: np.ndarray, y: np.ndarray, tests: dict[str, np.ndarray]
          ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Fuse members' score columns (``val``: trials × members, ``tests``: per test language):
    ``logreg`` fitted on the validation labels ``y``, else their mean. Returns the fused
    validation scores, the fused test scores and the fitted weights."""
    if method == "logreg":
        model = fit_linear_fusion(val, y)
        return model.apply(val), {t: model.apply(x) for t, x in tests.items()}, model.to_dict()
    return mean_fusion(val), {t: mean_fusion(x) for t, x in tests.items()}, {}


def fuse_members(out: Path, members: list[Path], seeds: list[int], method: str, ver: str,
                 gt_dir: Path | None) -> tuple[dict[str, Any], Scores]:
    """Fuse the members' scores per training language (as submitted and before normalisation);
    writes each language's fused ``out/<ver>_<Lang>/scoring.npz`` and returns the results (see
    :func:`write_ensemble_results`) and the fused scores to submit."""
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
            fused_val, fused_test, w = fuse_scores(method, val, y, tx)
            val_eer[variant][lang] = float(fast_eer(y, fused_val))
            weights[variant][lang] = w
            for t in tests:
                variants[variant][(lang, t)] = (list(z[0][f"test_{t}_keys"]), fused_test[t])
            if variant == "submitted":
                buf = io.BytesIO()
                np.savez(buf, val_label=y, val_score=fused_val)
                atomic_write_bytes(out / f"{ver}_{lang}" / SCORING_FILE, buf.getvalue())
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
    return results, variants["submitted"]


def write_ensemble_results(out: Path, results: dict[str, Any], seconds: float) -> None:
    """An ensemble's ``results.{json,md}`` and ``timings.json``."""
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", format_ensemble(results, seconds))
    atomic_write_text(out / "timings.json", json.dumps({"seconds": seconds}, indent=2) + "\n")


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
