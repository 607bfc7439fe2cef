"""Combine FAME systems: normalise one run's submission, fuse several runs' submissions.

A *run* here is a folder holding ``submission/`` (score files + ``manifest.json``) and, per
training language, ``<ver>_<Lang>/scoring.npz`` (written by the FAME recipe's train.py:
scoring embeddings of the test pairs, the training cohort and the validation trials, with the
validation scores). A bare submission folder can be fused by ``mean`` (no labels needed);
normalisation and ``logreg`` fusion need the run's ``scoring.npz`` files. Every choice that
uses labels uses the VALIDATION trials only.

The output is a folder of the same shape (``submission/`` written as a set with a manifest that
names every input run, ``<ver>_<Lang>/scoring.npz`` with the validation scores of the combined
system, and ``combine.json``), so it can be validated, packed, scored, or fused again.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from challenge.files import ChallengeError
from challenge.manifest import MANIFEST_NAME, read_manifest
from challenge.naming import VERSIONS
from modalink.face_voice.layout import SCORING_FILE

__all__ = ["RunScores", "load_run", "fuse_runs", "normalise_run", "write_combined", "CombineError",
           "SCORING_FILE", "RECORD_FILE"]

RECORD_FILE = "combine.json"


class CombineError(ChallengeError):
    """Inputs that cannot be combined (other keys, other version, missing validation scores)."""


@dataclass
class RunScores:
    """One input: its submission's scores per file and, when present, its ``scoring.npz`` per
    training language."""

    path: Path
    submission: Path
    ver: str | None
    files: dict[str, dict[str, Any]]  # file name -> manifest record + "keys", "scores"
    info: dict[str, Any]  # the manifest's non-file entries (model, config fingerprint, ...)
    scoring: dict[str, Path] = field(default_factory=dict)  # train_lang -> scoring.npz

    def load_scoring(self, train_lang: str, what: str) -> dict[str, np.ndarray]:
        """The arrays of ``<ver>_<train_lang>/scoring.npz`` (``what`` says why they are needed)."""
        path = self.scoring.get(train_lang)
        if path is None:
            raise CombineError(f"{self.path}: no {self.ver or '<ver>'}_{train_lang}/{SCORING_FILE} (the validation "
                               f"scores and embeddings a FAME train.py run writes); {what} needs it — give the run "
                               f"folder, not a copy of its submission")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def _read_score_file(path: Path) -> tuple[list[str], np.ndarray]:
    from challenge.files import read_score_values

    keys = [line.split()[0] for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    return keys, read_score_values(path, keys)


def _version_of(langs: set[str]) -> str | None:
    lower = {x.lower() for x in langs}
    fits = [v for v, pair in VERSIONS.items() if lower <= {x.lower() for x in pair}]
    return fits[0] if len(fits) == 1 else None


def load_run(path: str | os.PathLike) -> RunScores:
    """Read a run folder (``submission/`` inside) or a submission folder; its manifest is needed
    (it says which training language each file belongs to)."""
    path = Path(path)
    sub = path / "submission" if (path / "submission" / MANIFEST_NAME).is_file() else path
    if not sub.is_dir():
        raise CombineError(f"{path}: not a folder; give a run folder (holding submission/) or a submission folder")
    manifest = read_manifest(sub)
    if manifest is None:
        raise CombineError(f"{sub} has no {MANIFEST_NAME}: it says which model wrote each file; write the "
                           f"submission with the recipe or `python -m challenge write`")
    from challenge.manifest import check_manifest

    present = {p.name: p.read_bytes() for p in sub.iterdir() if p.is_file() and p.name in manifest["files"]}
    problems = check_manifest(manifest, present)
    if problems:
        name, _, why = problems[0]
        raise CombineError(f"{sub / name}: {why}")
    files = {}
    for name, rec in sorted(manifest["files"].items()):
        keys, scores = _read_score_file(sub / name)
        files[name] = {**rec, "keys": keys, "scores": scores}
    langs = {r["train_lang"] for r in files.values()} | {r["test_lang"] for r in files.values()}
    ver = _version_of(langs)
    run_root = sub.parent if sub != path else path
    for cfg_ver in _run_versions(run_root):
        ver = cfg_ver
    scoring = {}
    if ver is not None:
        for lang in {r["train_lang"] for r in files.values()}:
            p = run_root / f"{ver}_{lang}" / SCORING_FILE
            if p.is_file():
                scoring[lang] = p
    info = {k: v for k, v in manifest.items() if k not in ("files", "format")}
    return RunScores(path, sub, ver, files, info, scoring)


def _run_versions(run_root: Path) -> list[str]:
    """The version a run folder's ``config.yaml`` records (``run.ver``), if any."""
    cfg = run_root / "config.yaml"
    if not cfg.is_file():
        return []
    import yaml

    try:
        ver = (yaml.safe_load(cfg.read_text()) or {}).get("run", {}).get("ver")
    except (yaml.YAMLError, AttributeError):
        return []
    return [ver] if isinstance(ver, str) and ver in VERSIONS else []


def _check_same(runs: Sequence[RunScores]) -> None:
    first = runs[0]
    for other in runs[1:]:
        if other.ver != first.ver:
            raise CombineError(f"{other.path} is a {other.ver or 'unknown-version'} submission but {first.path} is "
                               f"{first.ver or 'unknown-version'}: only submissions of one FAME version can be fused")
        if set(other.files) != set(first.files):
            raise CombineError(f"{other.path} holds files {sorted(other.files)} but {first.path} holds "
                               f"{sorted(first.files)}: fuse submissions of the same files")
        for name, rec in first.files.items():
            o = other.files[name]
            if (o["train_lang"], o["test_lang"]) != (rec["train_lang"], rec["test_lang"]):
                raise CombineError(f"{other.path}: {name} is for {o['train_lang']}->{o['test_lang']}, in {first.path} "
                                   f"for {rec['train_lang']}->{rec['test_lang']}")
            if o["keys"] != rec["keys"]:
                diff = sorted(set(o["keys"]) ^ set(rec["keys"]))
                what = f"e.g. key {diff[0]!r} is in one only" if diff else "the same keys in another order"
                raise CombineError(f"{other.path}: {name} holds other pair keys than {first.path} ({what}); fuse "
                                   f"submissions of the same pair lists")


def _val_scores(runs: Sequence[RunScores], lang: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validation labels and the ``[n_trials, n_runs]`` validation scores of one training language."""
    labels, cols = None, []
    for r in runs:
        z = r.load_scoring(lang, what)
        if labels is not None and (len(z["val_label"]) != len(labels) or np.any(z["val_label"] != labels)):
            raise CombineError(f"{r.path}: its {lang} validation trials differ from {runs[0].path}'s (other data, "
                               f"data.val_* settings or split seed); validation-based fusion needs the same trials")
        labels = z["val_label"]
        cols.append(z["val_score"])
    return np.asarray(labels), np.stack(cols, axis=1)


def fuse_runs(paths: Sequence[str | os.PathLike], method: str = "mean") -> dict[str, Any]:
    """Fuse several runs' submissions file by file. ``mean``: mean of each system's z-normalised
    scores; ``logreg``: linear logistic-regression fusion, weights learned per training language
    on the validation trials (their ``scoring.npz``). Inputs with other files, pair keys or
    versions are refused. Returns what :func:`write_combined` writes."""
    from modalink.metrics import fast_eer
    from modalink.score_fusion import FUSIONS, fit_linear_fusion, mean_fusion

    if method not in FUSIONS:
        raise CombineError(f"fusion method {method!r}; use one of {', '.join(FUSIONS)}")
    if len(paths) < 2:
        raise CombineError(f"fusion needs at least 2 inputs, got {len(paths)}")
    runs = [load_run(p) for p in paths]
    _check_same(runs)
    first = runs[0]
    langs = sorted({r["train_lang"] for r in first.files.values()})
    have_val = all(lang in r.scoring for r in runs for lang in langs)
    models, val_rows, val_out = {}, {}, {}
    for lang in langs:
        if method == "logreg":
            y, x = _val_scores(runs, lang, "logreg fusion")
            models[lang] = fit_linear_fusion(x, y)
            fused_val = models[lang].apply(x)
        elif have_val:
            y, x = _val_scores(runs, lang, "fusion")
            fused_val = mean_fusion(x)
        else:
            continue
        val_rows[lang] = {"members": [float(fast_eer(y, x[:, j])) for j in range(x.shape[1])],
                          "fused": float(fast_eer(y, fused_val))}
        val_out[lang] = {"val_label": y, "val_score": fused_val}
    entries = {}
    for name, rec in first.files.items():
        x = np.stack([r.files[name]["scores"] for r in runs], axis=1)
        fused = models[rec["train_lang"]].apply(x) if method == "logreg" else mean_fusion(x)
        entries[(rec["train_lang"], rec["test_lang"], rec["condition"])] = (rec["keys"], fused)
    record = {"operation": "fuse", "method": method, "ver": first.ver,
              "inputs": [{"run": str(Path(r.path).resolve()), **{k: r.info[k] for k in ("model", "config_fingerprint")
                                                                   if k in r.info}} for r in runs],
              "weights": {lang: m.to_dict() for lang, m in models.items()}, "validation_eer": val_rows}
    return {"ver": first.ver, "entries": entries, "record": record, "validation": val_out}


def normalise_run(path: str | os.PathLike, spec: Any) -> dict[str, Any]:
    """(AS-)normalise a run's submission with its own training cohort (``spec``: a
    :class:`modalink.score_norm.NormSpec`). The run's submitted scores must be the raw distances of
    its ``scoring.npz`` embeddings (they are refused otherwise: normalising twice, or another run's
    embeddings). Returns what :func:`write_combined` writes."""
    from modalink.metrics import fast_eer
    from modalink.score_norm import normalise_trials

    run = load_run(path)
    entries, val_out, val_rows = {}, {}, {}
    for lang in sorted({r["train_lang"] for r in run.files.values()}):
        z = run.load_scoring(lang, "normalisation")
        if "cohort_face" not in z:
            raise CombineError(f"{run.scoring[lang]} holds no cohort embeddings (the output of a fusion or an earlier "
                               f"normalisation?); normalise the train.py run folder itself")
        cohort = (z["cohort_face"], z["cohort_voice"], z["cohort_label"])
        fi, vi = z["val_trial_face"], z["val_trial_voice"]
        val = normalise_trials(spec, z["val_raw"], z["val_face"], z["val_voice"], *cohort, fi, vi)
        val_out[lang] = {"val_label": z["val_label"], "val_score": val}
        val_rows[lang] = {"raw": float(fast_eer(z["val_label"], z["val_raw"])),
                          "normalised": float(fast_eer(z["val_label"], val))}
        for name, rec in run.files.items():
            if rec["train_lang"] != lang:
                continue
            p = f"test_{rec['test_lang']}_"
            if p + "keys" not in z or list(z[p + "keys"]) != rec["keys"]:
                raise CombineError(f"{run.scoring[lang]} holds no embeddings for the keys of {name} (other pair "
                                   f"list?); give the run folder that wrote this submission")
            d = np.linalg.norm(z[p + "face"].astype(np.float64) - z[p + "voice"], axis=1)
            if not np.allclose(rec["scores"], d, rtol=1e-5, atol=1e-5):
                raise CombineError(f"{run.submission / name}: its scores are not the raw distances of "
                                   f"{run.scoring[lang]} (already normalised, or another run's file); normalise a run "
                                   f"whose submission is not normalised (norm.method=none)")
            entries[(lang, rec["test_lang"], rec["condition"])] = (
                rec["keys"], normalise_trials(spec, rec["scores"], z[p + "face"], z[p + "voice"], *cohort))
    record = {"operation": "norm", "norm": spec.to_dict() | {"name": spec.name}, "ver": run.ver,
              "inputs": [{"run": str(Path(run.path).resolve()), **{k: run.info[k] for k in ("model", "config_fingerprint")
                                                                     if k in run.info}}],
              "validation_eer": val_rows}
    return {"ver": run.ver, "entries": entries, "record": record, "validation": val_out}


#: The names :func:`write_combined` writes at the top of its output folder (besides ``<ver>_<Lang>``).
_OWN = {"submission", RECORD_FILE}


def write_combined(out: str | os.PathLike, combined: dict[str, Any], edition: str = "2026",
                   pairs_dir: str | os.PathLike | None = None) -> Path:
    """Write ``out/submission/`` (a set, with a manifest naming the inputs), ``out/combine.json``
    and ``out/<ver>_<Lang>/scoring.npz`` (validation labels and scores of the combined system).
    ``out`` must be new, empty, or an earlier output of this function (only its own names are
    replaced)."""
    import io

    from challenge.writer import write_submission
    from modalink.io import atomic_write_bytes, atomic_write_text, foreign_entries

    out = Path(out)
    ver = combined["ver"]
    if out.exists():
        if not out.is_dir():
            raise CombineError(f"{out} exists and is not a folder; choose another output")
        own = _OWN | {f"{v}_{lang}" for v, pair in VERSIONS.items() for lang in pair}
        extra = foreign_entries(out, own)
        if extra or (any(out.iterdir()) and not (out / RECORD_FILE).exists()):
            foreign = ", ".join(extra) or f"no {RECORD_FILE}"
            raise CombineError(f"{out} holds files this command did not write ({foreign}); choose a new or empty "
                               f"output folder")
    record = combined["record"]
    info = {"combined": {"operation": record["operation"], "inputs": [i["run"] for i in record["inputs"]],
                         **{k: record[k] for k in ("method", "norm") if k in record}}}
    write_submission(out / "submission", combined["entries"], edition=edition, pairs_dir=pairs_dir, info=info)
    if ver is not None:
        for lang, arrays in combined["validation"].items():
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            atomic_write_bytes(out / f"{ver}_{lang}" / SCORING_FILE, buf.getvalue())
    atomic_write_text(out / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return out
