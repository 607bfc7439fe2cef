"""FAME run folders: the feature root a run reads, its data fingerprint, the contract and export of
its models (``<ver>_<Lang>/model``), and :func:`load_run`, which opens a finished run folder
(config, training languages, each language's exported model)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modalink.errors import InputError, UserError
from modalink.face_voice.contract import trained_for
from modalink.face_voice.layout import (GROUND_TRUTH_DIR, LIST_SUFFIX, SCORING_FILE, check_fame_layout,
                                        read_feature_info)

if TYPE_CHECKING:
    import torch.nn as nn

    from modalink.engine.session import RunSession
    from modalink.face_voice.config import FameConfig
    from modalink.face_voice.scoring import ScoreNorm


__all__ = ["OFFICIAL_MODELS", "load_official_checkpoint", "prepare_feats_root", "data_fingerprint", "model_contract",
           "export_models", "load_model_from_run", "FameRun", "load_run", "ENSEMBLE_CONTRACT", "open_ensemble_folder"]

CONFIG_FILE = "config.yaml"
#: the settings of a seed ensemble (recipes/fame/ensemble.py), in its output folder
ENSEMBLE_CONTRACT = "ensemble.json"
#: settings a resumed ensemble must share with the one in its folder (seeds and fusion may change)
ENSEMBLE_FIXED = ("config", "overrides", "feats_root", "ver", "train_lang", "data_seed", "edition")


def prepare_feats_root(feats_root: str | None, output_dir: Path, ver: str, seed: int = 0) -> tuple[Path, bool]:
    """The feature root to use (its layout checked); with none given, a deterministic synthetic set
    under ``<output_dir>/synthetic_data`` (made once, with a progress bar on a terminal)."""
    from modalink.face_voice.synthetic import generate_synthetic_fame
    from modalink.progress import announce

    if feats_root:  # a command-line value: an empty --feats-root "" is not given
        root = Path(feats_root)
        check_fame_layout(root, ver)
        announce(f"reading {ver} features from {root} (cached as .npy after the first read) ...")
        return root, False
    root = output_dir / "synthetic_data"
    announce(f"synthetic MAV-Celeb-like {ver} set in {root} (generated once, about a minute; reused after) ...")
    generate_synthetic_fame(root, ver=ver, seed=seed, progress=True)
    return root, True


def data_fingerprint(feats: dict[str, Any], gt_dir: Path | None) -> dict[str, str]:
    """Content digests of every file a run reads: the features and pair lists of ``feats``
    (:class:`~modalink.face_voice.features.FameFeatures` per language) and the ground truth."""
    from modalink.io import file_digest

    out: dict[str, str] = {}
    for f in feats.values():
        out.update(f.digests)
    if gt_dir is not None:
        for p in sorted(gt_dir.glob(f"*{LIST_SUFFIX}")):
            out[f"{GROUND_TRUTH_DIR}/{p.name}"] = file_digest(p)
    return dict(sorted(out.items()))


def model_contract(root: Path, ver: str, face_dim: int, voice_dim: int) -> dict[str, Any]:
    """What a FAME model reads and was trained for: version, feature widths, the features' source
    (prepare.py's ``feature_info.json`` when present) and the score direction; :func:`export_models`
    adds the training language."""
    found = read_feature_info(root, ver)
    info = None if found is None else found[0]
    contract: dict[str, Any] = {**trained_for(ver, None, face_dim, voice_dim, info),
                                "score": "L2 distance of the scoring embeddings (lower = same person)"}
    if info is not None:
        contract["feature_info"] = info
    return contract


def export_models(run: "RunSession", ver: str, models: dict[str, nn.Module], contract: dict[str, Any],
                  results: dict[str, Any]) -> None:
    """Export each language's model to ``<run>/<ver>_<Lang>/model`` (:meth:`RunSession.export`) with
    its EERs on the model card and its training language in its contract."""
    for lang, model in models.items():
        rows = {f"EER {r['train']}->{r['test']} ({r['condition']})": r["eer"]
                for r in results.get("eer", []) if r["train"] == lang}
        title = f"modalink FAME {ver} face-voice model trained on {lang}"
        if (contract.get("feature_info") or {}).get("random_weights"):
            title += " (on features from RANDOM-WEIGHT encoders: a plumbing check, its scores mean nothing)"
        run.export(model, run.path / f"{ver}_{lang}" / "model", contract={**contract, "train_lang": lang},
                   results=rows, title=title)


def load_model_from_run(lang_dir: Path, face_dim: int | None = None, voice_dim: int | None = None, *,
                        feature_info: dict[str, Any] | None | bool = False) -> nn.Module:
    """The model a training run exported to ``<lang_dir>/model`` (:func:`modalink.hub.from_pretrained`),
    refused (:class:`~modalink.face_voice.contract.ModelMismatchError`) when it was trained for another
    version or language than its ``<ver>_<Lang>`` folder says, or, with ``face_dim``/``voice_dim``/
    ``feature_info`` given, on other features."""
    from modalink.face_voice.contract import check_trained_for
    from modalink.hub import from_pretrained

    folder = lang_dir / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no exported model in {folder}: the run has not finished (run the same train.py "
                                f"command again to resume and export it)")
    model = from_pretrained(folder)
    ver, _, lang = lang_dir.name.partition("_")
    check_trained_for(model.export_config.get("contract", {}), where=folder, ver=ver or None, train_lang=lang or None,
                      face_dim=face_dim, voice_dim=voice_dim, feature_info=feature_info)
    return model


#: the registered model of an official FOP checkpoint, by its fusion
OFFICIAL_MODELS = {"gated": "fop", "linear": "fop_linear"}


def load_official_checkpoint(path: str | Path, fusion: str, face_dim: int, voice_dim: int,
                             embed_dim: int = 128) -> tuple["nn.Module", dict[str, Any]]:
    """An official FOP ``checkpoint.pth.tar`` as a modalink model in eval mode, and the
    checkpoint's metadata (e.g. its epoch). ``fusion``: ``gated`` or ``linear``."""
    from modalink.models import create_model

    if fusion not in OFFICIAL_MODELS:
        raise InputError(f"fusion {fusion!r}; use one of {', '.join(OFFICIAL_MODELS)}")
    model = create_model(OFFICIAL_MODELS[fusion], face_dim=face_dim, voice_dim=voice_dim, embed_dim=embed_dim)
    meta = model.load_official_checkpoint(path)
    return model.eval(), meta


@dataclass
class FameRun:
    """A FAME training run folder (``train.py --output-dir``) and its saved config."""

    path: Path
    config: FameConfig

    @property
    def ver(self) -> str:
        return self.config.run.ver

    @property
    def languages(self) -> list[str]:
        """The run's training languages."""
        return list(self.config.run.train_langs)

    def lang_dir(self, lang: str, ver: str | None = None) -> Path:
        """``<run>/<ver>_<Lang>``: one training language's checkpoints, scores and exported model."""
        return self.path / f"{ver or self.ver}_{lang}"

    def load_model(self, lang: str, face_dim: int | None = None, voice_dim: int | None = None, *,
                   ver: str | None = None, feature_info: dict[str, Any] | None | bool = False) -> nn.Module:
        """The exported model of ``lang`` (:func:`load_model_from_run`, with its checks)."""
        return load_model_from_run(self.lang_dir(lang, ver), face_dim, voice_dim, feature_info=feature_info)

    def score_norm(self, lang: str) -> "ScoreNorm | None":
        """The score normalisation training chose for ``lang`` on validation (``results.json``'s
        ``norm`` record) with its cohort from ``<ver>_<Lang>/scoring.npz``; ``None`` when the run
        submits plain distances. Re-scoring a run applies it, so the scores are the run's own."""
        import numpy as np

        from modalink.face_voice.scoring import ScoreNorm
        from modalink.io import read_json_object
        from modalink.score_norm import NormSpec

        if self.config.norm.method == "none":
            return None
        results = self.path / "results.json"
        if not results.is_file():
            raise UserError(f"{results} not found: this run chooses a score normalisation on validation "
                            f"(norm.method={self.config.norm.method}) and records it there; finish the run with "
                            "train.py first")
        record = read_json_object(results)
        try:
            chosen = record["norm"]["per_language"][lang]["chosen"]
            spec = NormSpec(chosen["method"], chosen["cohort"], chosen["top_k"])
        except (KeyError, TypeError) as e:
            raise UserError(f"{results}: no normalisation recorded for {lang} (norm.per_language.{lang}.chosen: "
                            f"missing {e})") from None
        if spec.method == "none":
            return None
        scoring = self.lang_dir(lang) / SCORING_FILE
        try:
            with np.load(scoring, allow_pickle=False) as z:
                return ScoreNorm(spec, z["cohort_face"], z["cohort_voice"], z["cohort_label"])
        except FileNotFoundError:
            raise UserError(f"{scoring} not found: it holds the training cohort of the {spec.name} normalisation "
                            f"this run chose for {lang}") from None
        except (KeyError, ValueError, OSError) as e:
            raise UserError(f"{scoring}: cannot read the normalisation cohort ({e})") from None

    def trained_languages(self, train_lang: str = "all", flag: str = "--train-lang") -> list[str]:
        """The run's training languages (``all``) or the one ``train_lang`` names, each with an exported
        model (``<ver>_<Lang>/model``); :class:`UserError` naming ``flag`` otherwise."""
        from modalink.face_voice.config import resolve_languages

        langs = self.languages
        if train_lang != "all":
            try:
                (lang,) = resolve_languages(self.ver, train_lang)
            except (KeyError, ValueError) as e:
                raise UserError(f"{flag} {train_lang}: {e}") from None
            if lang not in langs:
                raise UserError(f"{flag} {train_lang}: run {self.path} was trained on {', '.join(langs)} only")
            langs = [lang]
        for lang in langs:
            if not (self.lang_dir(lang) / "model" / "config.json").is_file():
                raise UserError(f"{self.lang_dir(lang) / 'model'} not found: the {lang} model of this run "
                                "is not exported yet; finish the run with train.py first")
        return langs

    def load_models(self, face_dim: int | None = None, voice_dim: int | None = None, *,
                    feature_info: dict[str, Any] | None | bool = False) -> dict[str, nn.Module]:
        """Every training language's exported model."""
        return {lang: self.load_model(lang, face_dim, voice_dim, feature_info=feature_info)
                for lang in self.languages}


def load_run(run_dir: str | Path, flag: str = "--run-dir") -> FameRun:
    """Open a FAME run folder: its ``config.yaml`` as a :class:`~modalink.face_voice.config.FameConfig`
    (``flag`` names the option the folder came from in the errors)."""
    from modalink.config import load_config
    from modalink.face_voice.config import FameConfig

    path = Path(run_dir).absolute()
    if not path.is_dir():
        raise UserError(f"no run folder at {path}: pass {flag} the --output-dir of a train.py run (default runs/fame)")
    if not (path / CONFIG_FILE).is_file():
        raise UserError(f"{path} is not a train.py run folder (it has no {CONFIG_FILE}): pass {flag} the "
                        f"--output-dir of a train.py run")
    return FameRun(path, load_config(FameConfig, path / CONFIG_FILE))


def open_ensemble_folder(out: Path, contract: dict[str, Any], overwrite: bool) -> None:
    """Record ``contract`` in ``out/ensemble.json``; refused (:class:`InputError`) when ``out`` holds an
    ensemble of other :data:`ENSEMBLE_FIXED` settings (unless ``overwrite``) or files that are not
    an ensemble's."""
    import json

    from modalink.io import atomic_write_text

    path = out / ENSEMBLE_CONTRACT
    if path.is_file():
        old = json.loads(path.read_text())
        diff = [f"{k}: {old.get(k)!r} -> {contract[k]!r}" for k in ENSEMBLE_FIXED if old.get(k) != contract[k]]
        if diff and not overwrite:
            raise InputError(f"{out} holds an ensemble with other settings ({'; '.join(diff)}); use another "
                            f"--output-dir, or --overwrite to retrain its members")
    else:
        names = sorted(p.name for p in out.iterdir() if p.name != ".lock")
        if names:
            raise InputError(f"{out} is not empty and holds no {ENSEMBLE_CONTRACT} ({', '.join(names[:5])}); use a "
                            f"new or empty --output-dir")
    atomic_write_text(path, json.dumps(contract, indent=2) + "\n")
