"""Face–voice verification on raw media: face images and voice clips → FAME distances.

A trained face–voice model scores features; this module makes those features from raw files
with exactly the encoders and preprocessing ``recipes/fame/prepare.py`` used for the training
features (it reads them back from the ``feature_info.json`` prepare.py wrote, and embeds with
:func:`modalink.encoders.embed_files.embed_files`), then scores with the model the way
``train.py`` scores its test pairs (:func:`modalink.face_voice.objective.embed_pairs`). So scoring a raw
pair list gives the numbers train.py gives on prepare.py's CSVs of the same files, including
the policy for unusable files (a zero feature row).

Scores are DISTANCES: lower = same person, what the FAME scorer expects.

    from modalink.face_voice.verify import RawMediaEmbedder, FaceVoiceVerifier
    embedder = RawMediaEmbedder.from_feature_info(info)            # info: feature_info.json as a dict
    verifier = FaceVoiceVerifier(model, embedder)                   # model: the trained nn.Module
    d = verifier.distance("face.jpg", "voice.wav")
    scores = verifier.score_pairs(read_test_pairs("English_test.txt"), root="mavceleb_v1_test")
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from modalink.face_voice.raw import RawEncoderSettings, TestPair, build_raw_encoders
from modalink.encoders.base import Encoder, resolve_device
from modalink.encoders.embed_files import FileEmbedding, embed_files
from modalink.errors import UserError
from modalink.face_voice.layout import (FEATURE_INFO, LIST_SUFFIX, FameLayout, feature_dims, normalize_language,
                                        read_feature_info)
from modalink.face_voice.scoring import ScoreNorm, pair_scores

__all__ = ["FeatureMismatchError", "MediaFileError", "require_feature_info",
           "check_model_dims", "recorded_input_identities", "embedder_input_identities", "check_model_inputs",
           "RANDOM_WEIGHTS_NOTE", "RawMediaEmbedder", "PairScores", "FaceVoiceVerifier", "score_raw_pairs", "score_one_pair",
           "REPORT_FIELDS", "open_verify_run", "run_feature_dims", "RawPairList", "read_raw_pair_lists",
           "load_run_models", "ListScores", "score_pair_lists", "write_verify_report"]

log = logging.getLogger(__name__)

#: what a verifier says when its encoders have random weights (prepare.py --random-weights)
RANDOM_WEIGHTS_NOTE = ("the face/voice encoders have RANDOM weights (features made with prepare.py --random-weights): "
                       "these distances mean nothing; use them only to check the plumbing")
Modality = Literal["face", "voice"]
#: columns of the verifier's ``report.csv``: every file replaced by a zero row or a fallback
REPORT_FIELDS = ("pair_list", "modality", "file", "problem", "action", "detail")


class FeatureMismatchError(UserError, ValueError):
    """The model expects other features than the raw-media encoders produce."""


class MediaFileError(UserError, ValueError):
    """A raw face image or voice clip that cannot be used (named, with the reason)."""


def require_feature_info(feats_root: str | os.PathLike, ver: str) -> tuple[dict[str, Any], Path]:
    """The ``feature_info.json`` prepare.py wrote for ``ver`` under ``feats_root`` and its path
    (:func:`modalink.face_voice.layout.read_feature_info`).

    Raises :class:`FeatureMismatchError` when there is none: such features (e.g. the official
    4096-D VGGFace / 512-D utterance-level ones, or the synthetic set) come from encoders this
    toolkit does not have, so raw media cannot be turned into them.
    """
    found = read_feature_info(feats_root, ver)
    if found is None:
        raise FeatureMismatchError(
            f"{FameLayout(Path(feats_root), ver).feature_info_files[0]} not found: the features under {feats_root} "
            "were not made by recipes/fame/prepare.py (e.g. the official 4096-D VGGFace / 512-D utterance features "
            "or the synthetic set), so raw faces and voices cannot be embedded like them; extract features with "
            "prepare.py, train on them, then verify with that run")
    return found


def check_model_dims(model: nn.Module, face_dim: int, voice_dim: int, what: str = "the model") -> None:
    """Refuse a model whose input widths (``model.input_dims``) differ from the features' widths."""
    dims = getattr(model, "input_dims", None)
    if not isinstance(dims, Mapping):
        return
    want = {"face": int(face_dim), "voice": int(voice_dim)}
    got = {m: int(dims[m]) for m in want if m in dims}
    if got and got != {m: want[m] for m in got}:
        raise FeatureMismatchError(
            f"{what} was trained on {got.get('face', '?')}-D face / {got.get('voice', '?')}-D voice features, but the "
            f"raw-media encoders give {face_dim}-D / {voice_dim}-D; use a model trained on the features of "
            "recipes/fame/prepare.py with the same encoders")


_MODALITIES: tuple[Modality, Modality] = ("face", "voice")


def recorded_input_identities(contract: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What made the face and voice inputs of an exported FAME model, from its ``config.json``
    ``contract`` (as :func:`modalink.encoders.contract_check.input_identity` builds them): the
    encoders of the ``feature_info`` recorded at training, their weights (content digest when the
    recorded file is on this machine; random weights and seed), arguments and widths."""
    from modalink.encoders.contract_check import input_identity, weights_identity

    info = contract.get("feature_info")
    source = contract.get("features")
    out: dict[str, dict[str, Any]] = {}
    for m in _MODALITIES:
        dim = contract.get(f"{m}_dim")
        entry = info.get(f"{m}_encoder") if isinstance(info, Mapping) else None
        if isinstance(entry, Mapping):
            random = bool(entry.get("random_weights"))
            weights = weights_identity(random=True, seed=entry.get("seed")) if random else \
                weights_identity(entry.get("weights"))
            out[m] = input_identity(entry.get("name"), dim, weights, random_weights=random,
                                    args=dict(entry.get("args") or {}))
        elif isinstance(source, Mapping) and source.get("source") == "csv":
            out[m] = input_identity("CSV features without a prepare.py feature_info.json", dim)
        else:  # an export that records no feature origin: only the width is known
            out[m] = input_identity(None, dim)
    return out


def embedder_input_identities(embedder: "RawMediaEmbedder") -> dict[str, dict[str, Any]]:
    """The identities of the encoders ``embedder`` embeds raw files with (same keys as
    :func:`recorded_input_identities`)."""
    from modalink.encoders.contract_check import encoder_input_identity

    s = embedder.settings
    out: dict[str, dict[str, Any]] = {}
    for m, enc in (("face", embedder.face_encoder), ("voice", embedder.voice_encoder)):
        if s is None:
            out[m] = encoder_input_identity(enc, random_weights=enc.weights_path is None)
            continue
        name, args = (s.face_encoder, s.face_args) if m == "face" else (s.voice_encoder, s.voice_args)
        out[m] = encoder_input_identity(enc, name, seed=s.seed + (m == "voice"), random_weights=s.random_weights,
                                        args=dict(args))
    for m, enc in (("face", embedder.face_encoder), ("voice", embedder.voice_encoder)):
        if not any(True for _ in enc.parameters()):  # no weights to compare: its name says it all
            out[m].pop("weights", None)
            out[m].pop("random_weights", None)
    return out


def check_model_inputs(model: nn.Module, embedder: "RawMediaEmbedder", what: str = "the model",
                       allow_mismatch: bool = False, override_hint: str = "--allow-encoder-mismatch") -> list[str]:
    """Refuse a model fed by other encoders than it was trained on: its widths
    (:func:`check_model_dims`), then the encoder name, weights, arguments and random-weights flag
    its exported contract (``model.export_config``) records against ``embedder``'s
    (:func:`modalink.encoders.contract_check.check_input_contract`: one line naming both sides and
    ``override_hint``). With ``allow_mismatch`` nothing is raised: the returned list holds one
    line per input that differs (the caller says it on screen)."""
    from modalink.encoders.contract_check import InputContractError, check_input_contract

    check_model_dims(model, embedder.face_dim, embedder.voice_dim, what)
    export = getattr(model, "export_config", None)
    contract = export.get("contract") if isinstance(export, Mapping) else None
    if not isinstance(contract, Mapping):
        return []
    expected, actual = recorded_input_identities(contract), embedder_input_identities(embedder)
    accepted: list[str] = []
    for m in _MODALITIES:
        try:
            check_input_contract(expected[m], actual[m], f"{what} ({m} input)", override_hint=override_hint)
        except InputContractError as e:
            if not allow_mismatch:
                raise
            accepted.append(str(e).split("; make them with")[0])
    return accepted


@dataclass
class RawMediaEmbedder:
    """Raw face images and voice clips → the feature rows prepare.py writes for them.

    Unusable files (unreadable, empty, too short, silent, no face under ``no_face=skip``) give a
    zero row, prepare.py's policy for test rows; :meth:`embed` also returns what happened to
    every file.
    """

    face_encoder: Encoder
    voice_encoder: Encoder
    min_seconds: float = 0.5
    batch_size: int = 32
    workers: int = 0
    progress: bool = True
    #: the settings the encoders were built from (names, arguments, seeds), when known
    settings: RawEncoderSettings | None = None

    @classmethod
    def from_settings(cls, settings: RawEncoderSettings, *, offline: bool | None = None,
                      device: str | torch.device | None = "auto", face_weights_option: str = "face_weights",
                      voice_weights_option: str = "voice_weights", **kwargs: Any) -> "RawMediaEmbedder":
        """Build both encoders (missing weights of both reported together) on ``device``."""
        dev = resolve_device(device)
        face, voice = build_raw_encoders(settings, offline=offline, face_weights_option=face_weights_option,
                                         voice_weights_option=voice_weights_option)
        return cls(face.to(dev), voice.to(dev), min_seconds=settings.min_seconds, settings=settings, **kwargs)

    @classmethod
    def from_feature_info(cls, info: Mapping[str, Any], *, face_weights: str | os.PathLike | None = None,
                          voice_weights: str | os.PathLike | None = None, where: str = FEATURE_INFO,
                          **kwargs: Any) -> "RawMediaEmbedder":
        """The encoders recorded in a prepare.py ``feature_info.json`` (``face_weights`` /
        ``voice_weights`` replace the recorded weights paths, e.g. on another machine)."""
        settings = RawEncoderSettings.from_info(dict(info), where)
        if face_weights is not None:
            settings.face_weights = str(face_weights)
        if voice_weights is not None:
            settings.voice_weights = str(voice_weights)
        emb = cls.from_settings(settings, **kwargs)
        for modality, enc in (("face", emb.face_encoder), ("voice", emb.voice_encoder)):
            recorded = int(info[f"{modality}_dim"])
            if enc.output_dim != recorded:
                raise FeatureMismatchError(f"{where}: {modality}_dim is {recorded} but the recorded {modality} "
                                           f"encoder gives {enc.output_dim}-D features")
        return emb

    @property
    def random_weights(self) -> bool:
        """True when an encoder with parameters loaded no weights file (prepare.py ``--random-weights``)."""
        return any(enc.weights_path is None and any(True for _ in enc.parameters())
                   for enc in (self.face_encoder, self.voice_encoder))

    @property
    def face_dim(self) -> int:
        return self.face_encoder.output_dim

    @property
    def voice_dim(self) -> int:
        return self.voice_encoder.output_dim

    def embed(self, modality: Modality, paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None,
              desc: str | None = None) -> tuple[np.ndarray, list[FileEmbedding]]:
        """Feature rows for ``paths`` (in order; zeros for unusable files) and one
        :class:`FileEmbedding` per distinct path. Each distinct file is embedded once."""
        enc = self.face_encoder if modality == "face" else self.voice_encoder
        paths = [os.fspath(p) for p in paths]
        unique = list(dict.fromkeys(paths))
        done: dict[str, FileEmbedding] = {}
        for results in embed_files(enc, unique, root=root, batch_size=self.batch_size, workers=self.workers,
                                   min_seconds=self.min_seconds, desc=desc or f"{modality}s", progress=self.progress):
            done.update((r.relpath, r) for r in results)
        rows = np.zeros((len(paths), enc.output_dim), dtype=np.float32)
        for i, p in enumerate(paths):
            e = done[p].embedding
            if e is not None:
                rows[i] = e
        return rows, [done[p] for p in unique]


@dataclass
class PairScores:
    """Distances for the lines of a pair list, and every file that was replaced by a zero row or a fallback."""

    keys: list[str]
    distances: dict[str, np.ndarray]  # one array per model name, aligned with ``keys``
    problems: list[tuple[Modality, FileEmbedding]] = field(default_factory=list)


def score_raw_pairs(models: Mapping[str, nn.Module], embedder: RawMediaEmbedder, pairs: Sequence[TestPair],
                    root: str | os.PathLike | None = None, norms: Mapping[str, ScoreNorm | None] | None = None
                    ) -> PairScores:
    """Embed every distinct face and voice file of ``pairs`` once, then score each line with each
    model: the L2 distance between the model's face and voice scoring embeddings, normalised as
    ``norms[name]`` says (a run's own choice, :meth:`~modalink.face_voice.runs.FameRun.score_norm`)."""
    for name, model in models.items():
        check_model_dims(model, embedder.face_dim, embedder.voice_dim, f"model {name!r}")
    faces, face_info = embedder.embed("face", [p.face for p in pairs], root, desc="faces")
    voices, voice_info = embedder.embed("voice", [p.voice for p in pairs], root, desc="voices")
    dist = {}
    for name, model in models.items():
        was = model.training
        model.eval()
        try:
            dist[name] = np.asarray(pair_scores(model, faces, voices, (norms or {}).get(name))[3], dtype=np.float64)
        finally:
            model.train(was)
    problems: list[tuple[Modality, FileEmbedding]] = [("face", r) for r in face_info if r.problem]
    problems += [("voice", r) for r in voice_info if r.problem]
    return PairScores([p.key for p in pairs], dist, problems)


def score_one_pair(models: Mapping[str, nn.Module], embedder: RawMediaEmbedder, face: str | os.PathLike,
                   voice: str | os.PathLike, norms: Mapping[str, ScoreNorm | None] | None = None
                   ) -> tuple[dict[str, float], list[str]]:
    """The distance between one face image and one voice clip under each model, and a note per file
    embedded through a fallback (a face in which no face is found: the centre crop, unless the
    features were made with ``--no-face skip``). Raises :class:`MediaFileError` naming a file that
    cannot be used: a single pair has no list to keep aligned, so there is no zero-row fallback."""
    scores = score_raw_pairs(models, embedder, [TestPair("pair", str(voice), str(face))], norms=norms)
    notes = []
    for modality, r in scores.problems:
        if r.embedding is None:
            raise MediaFileError(f"{r.relpath}: {modality} file cannot be used: {r.problem}"
                                 f"{' (' + r.detail + ')' if r.detail else ''}")
        notes.append(f"{r.relpath}: {r.detail}")
    return {name: float(d[0]) for name, d in scores.distances.items()}, notes


class FaceVoiceVerifier:
    """One trained model + the raw-media encoders: ``distance(face, voice)`` and ``score_pairs``.

    The model's exported input contract is checked against the encoders
    (:func:`check_model_inputs`); ``allow_encoder_mismatch=True`` accepts other encoders with a
    warning. ``random_weights`` says whether the encoders have random weights (distances then
    mean nothing)."""

    def __init__(self, model: nn.Module, embedder: RawMediaEmbedder, name: str = "model",
                 allow_encoder_mismatch: bool = False) -> None:
        for line in check_model_inputs(model, embedder, f"model {name!r}", allow_mismatch=allow_encoder_mismatch,
                                       override_hint="allow_encoder_mismatch=True"):
            log.warning("%s; used anyway (allow_encoder_mismatch=True)", line)
        if embedder.random_weights:
            log.warning(RANDOM_WEIGHTS_NOTE)
        self.model, self.embedder, self.name = model.eval(), embedder, name

    @property
    def random_weights(self) -> bool:
        return self.embedder.random_weights

    def distance(self, face: str | os.PathLike, voice: str | os.PathLike) -> float:
        """L2 distance (lower = same person) between a face image and a voice clip.

        Raises :class:`MediaFileError` naming the file when either cannot be used
        (:func:`score_one_pair`).
        """
        return score_one_pair({self.name: self.model}, self.embedder, face, voice)[0][self.name]

    def score_pairs(self, pairs: Sequence[TestPair], root: str | os.PathLike | None = None) -> PairScores:
        """Distances for every line of a pair list (paths relative to ``root``)."""
        return score_raw_pairs({self.name: self.model}, self.embedder, pairs, root)


# ----------------------------------------------------------------------------- a trained run on raw pair lists


def open_verify_run(run_dir: str | os.PathLike, train_lang: str, feats_root: str | None) -> tuple[Any, list[str], Path]:
    """The run (:func:`~modalink.face_voice.runs.load_run`), its training languages to score with and
    its feature root (the run's ``--feats-root`` unless ``feats_root`` is given); checks only."""
    from modalink.face_voice.runs import load_run

    run = load_run(run_dir)
    langs = run.trained_languages(train_lang)
    if feats_root is None:
        if run.config.run.synthetic or run.config.run.feats_root is None:
            raise FeatureMismatchError(
                f"run {run_dir} was trained on the synthetic feature set (random 4096-D / 512-D vectors), not on "
                "features of raw media; train on the output of recipes/fame/prepare.py to verify raw files")
        feats_root = run.config.run.feats_root
    root = Path(feats_root)
    if not root.is_dir():
        raise UserError(f"feature folder {root} (the run's --feats-root) not found; pass --feats-root DIR")
    return run, langs, root


def run_feature_dims(run: Any, feats_root: Path, info: Mapping[str, Any], info_path: Path) -> tuple[int, int]:
    """The feature widths the run's models were built for, refused when ``info`` (the
    ``feature_info.json`` at ``info_path``) describes other ones."""
    face_dim, voice_dim = feature_dims(feats_root, run.ver, run.config.data.face_dim, run.config.data.voice_dim)
    if (face_dim, voice_dim) != (int(info["face_dim"]), int(info["voice_dim"])):
        raise FeatureMismatchError(
            f"run {run.path} was trained on {face_dim}-D face / {voice_dim}-D voice features, but {info_path} "
            f"describes {info['face_dim']}-D / {info['voice_dim']}-D features; verify with the run trained on them")
    return face_dim, voice_dim


@dataclass
class RawPairList:
    """A pair list of raw files: its path, test language, the folder its paths are relative to, its lines."""

    path: Path
    test_lang: str
    root: Path
    pairs: list[TestPair]


def _pair_list_language(path: Path, ver: str) -> str:
    if not path.name.endswith(LIST_SUFFIX):
        raise UserError(f"--pairs {path}: the test language comes from the name <Lang>_test.txt; rename the list")
    try:
        return normalize_language(ver, path.name[: -len(LIST_SUFFIX)])
    except (KeyError, ValueError) as e:
        raise UserError(f"--pairs {path}: {e}") from None


def read_raw_pair_lists(paths: Sequence[str | os.PathLike], raw_root: str | os.PathLike | None,
                        ver: str) -> list[RawPairList]:
    """Read every pair list (``--pairs``) and check its language and that its files are found under
    ``raw_root`` (default: the list's folder), before any model is built."""
    from modalink.face_voice.raw import read_test_pairs

    lists: list[RawPairList] = []
    for item in paths:
        path = Path(item)
        if not path.is_file():
            raise UserError(f"--pairs {path}: file not found")
        root = Path(raw_root) if raw_root else path.parent
        if not root.is_dir():
            raise UserError(f"--raw-root {root}: folder not found")
        pairs = read_test_pairs(path)
        missing = sum(not (root / p).exists() for p in {q.face for q in pairs} | {q.voice for q in pairs})
        if pairs and missing == len({q.face for q in pairs} | {q.voice for q in pairs}):
            raise UserError(f"none of the files listed in {path} exist under {root}; pass the folder the list's "
                            "paths are relative to with --raw-root")
        lists.append(RawPairList(path, _pair_list_language(path, ver), root, pairs))
    return lists


def load_run_models(run: Any, langs: Sequence[str], face_dim: int, voice_dim: int, device: torch.device,
                    embedder: RawMediaEmbedder, allow_mismatch: bool = False) -> tuple[dict[str, nn.Module], list[str]]:
    """Each training language's exported model (``<ver>_<Lang>/model``) on ``device``, checked against
    the feature widths and ``embedder``'s encoders (:func:`check_model_inputs`); returns the models and
    the encoder differences ``allow_mismatch`` accepted."""
    models: dict[str, nn.Module] = {}
    accepted: list[str] = []
    for lang in langs:
        folder = run.lang_dir(lang) / "model"
        try:  # version, language and widths here; the encoders against the embedder's just below
            models[lang] = run.load_model(lang, face_dim, voice_dim).to(device)
        except RuntimeError as e:  # a state dict of other widths
            raise FeatureMismatchError(f"{folder} does not fit {face_dim}-D face / {voice_dim}-D voice features "
                                       f"({' '.join(str(e).split())[:300]})") from None
        accepted += check_model_inputs(models[lang], embedder, str(folder), allow_mismatch=allow_mismatch)
    return models, accepted


@dataclass
class ListScores:
    """What :func:`score_pair_lists` gives: the distances per (training, test) language, the rows
    of ``report.csv`` and the per-list part of ``summary.json``."""

    entries: dict[tuple[str, str], tuple[list[str], np.ndarray]]
    report_rows: list[dict[str, str]]
    lists: dict[str, dict[str, Any]]


def score_pair_lists(lists: Sequence[RawPairList], models: Mapping[str, nn.Module],
                     embedder: RawMediaEmbedder, norms: Mapping[str, ScoreNorm | None] | None = None
                     ) -> ListScores:
    """Score every pair list with every model (:func:`score_raw_pairs`); a file replaced by a zero row
    (or embedded through a fallback) gets a ``report.csv`` row naming the lines it is on."""
    from modalink.progress import announce

    entries: dict[tuple[str, str], tuple[list[str], np.ndarray]] = {}
    report_rows: list[dict[str, str]] = []
    summary: dict[str, dict[str, Any]] = {}
    for lst in lists:
        announce(f"{lst.path}: {len(lst.pairs)} pairs ({lst.test_lang}), files under {lst.root}")
        scores = score_raw_pairs(models, embedder, lst.pairs, lst.root, norms)
        for train_lang, dist in scores.distances.items():
            if (train_lang, lst.test_lang) in entries:
                raise UserError(f"--pairs: two lists for test language {lst.test_lang}")
            entries[(train_lang, lst.test_lang)] = (scores.keys, dist)
        lines: dict[tuple[str, str], int] = {}
        for p in lst.pairs:
            lines[("face", p.face)] = lines.get(("face", p.face), 0) + 1
            lines[("voice", p.voice)] = lines.get(("voice", p.voice), 0) + 1
        for modality, r in scores.problems:
            n = lines.get((modality, r.relpath), 0)
            action = (f"zero {modality} features on {n} line(s)" if r.embedding is None
                      else "embedded the centre of the image instead")
            report_rows.append({"pair_list": str(lst.path), "modality": modality, "file": str(lst.root / r.relpath),
                                "problem": r.problem or "", "action": action, "detail": r.detail})
        summary[lst.test_lang] = {"pair_list": str(lst.path.absolute()), "pairs": len(lst.pairs),
                                  "problem_files": len(scores.problems)}
    return ListScores(entries, report_rows, summary)


def write_verify_report(out: Path, scored: ListScores, *, run_dir: Path, info_path: Path, ver: str,
                        random_weights: bool, accepted: list[str], files: list[str], seconds: float) -> None:
    """``<out>/report.csv`` (:data:`REPORT_FIELDS`) and ``<out>/summary.json`` (the run, its
    ``feature_info.json``, the encoder differences accepted, each list, the score files written),
    each written atomically."""
    from modalink.io import atomic_write_text

    summary: dict[str, Any] = {"run_dir": str(run_dir), "feature_info": str(info_path.absolute()), "ver": ver,
                               "random_weights": random_weights, "encoder_mismatch_accepted": accepted,
                               "lists": scored.lists}
    if random_weights:
        summary["warning"] = RANDOM_WEIGHTS_NOTE
    summary.update(files=files, seconds=seconds)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(scored.report_rows)
    atomic_write_text(out / "report.csv", buf.getvalue())
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
