#!/usr/bin/env python
"""Face–voice verification on raw media with a trained FAME run: no CSVs to extract by hand.

    # one face image against one voice clip: the distance under each training language's model
    python recipes/fame/verify.py --run-dir runs/fame_v1 --face photo.jpg --voice clip.wav

    # a whole pair list of raw files (lines `key voices/<Lang>/x.wav faces/<Lang>/y.jpg`, paths relative
    # to --raw-root): one FAME score file per (training language, pair list), then validate them
    python recipes/fame/verify.py --run-dir runs/fame_v1 --raw-root /data/mavceleb_v1_test \\
        --pairs /data/mavceleb_v1_test/English_test.txt /data/mavceleb_v1_test/Urdu_test.txt \\
        --output-dir runs/fame_v1_raw
    python -m challenge validate runs/fame_v1_raw/submission --pairs /data/mavceleb_v1_test

The run (``train.py --output-dir``) must have been trained on features made by
``recipes/fame/prepare.py``: its ``feature_info.json`` (found under the run's ``--feats-root``)
names the encoders, their weights and options, and the files are embedded exactly as prepare.py
embeds them (same MTCNN crops, resampling, minimum length; an unusable file in a pair list gets
prepare.py's zero row and is named in ``<output-dir>/report.csv``). A run trained on other
features (the official 4096-D VGGFace / 512-D voices, or the synthetic set) is refused, and so
are encoders other than the ones each exported model records (name, arguments, weights by
content, random or not) — ``--allow-encoder-mismatch`` scores anyway, with a warning. Features
made with ``prepare.py --random-weights`` give meaningless distances: the verifier says so on
screen and records ``"random_weights": true`` in ``summary.json`` and the submission manifest.
Scores are L2 distances: lower = same person. Score files are written as one set
(``<output-dir>/submission/``, staged then swapped in, with a manifest).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from modalink.cli import command_parser
from modalink.errors import UserError, run_cli

REPORT_FIELDS = ("pair_list", "modality", "file", "problem", "action", "detail")


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(__doc__, prog="recipes/fame/verify.py")
    p.add_argument("--run-dir", required=True, help="a finished train.py run folder (config.yaml, <ver>_<Lang>/best_model.pt)")
    p.add_argument("--face", help="one face image (with --voice)")
    p.add_argument("--voice", help="one voice clip (with --face); any format soundfile reads: wav, flac, mp3, ogg ...")
    p.add_argument("--pairs", nargs="+", metavar="LIST", help="pair list(s) <TestLang>_test.txt of raw files")
    p.add_argument("--raw-root", help="folder the pair-list paths are relative to (default: each list's folder)")
    p.add_argument("--output-dir", help="where submission/ and report.csv go (required with --pairs)")
    p.add_argument("--train-lang", default="all", help="score with this training language's model only (default: all of the run)")
    p.add_argument("--feats-root", help="folder holding feats/<ver>/feature_info.json (default: the run's --feats-root)")
    p.add_argument("--face-weights", help="face weights file, instead of the path recorded in feature_info.json")
    p.add_argument("--voice-weights", help="voice weights folder/file, instead of the recorded path")
    p.add_argument("--allow-encoder-mismatch", action="store_true",
                   help="score even when the encoders (name, weights, arguments) differ from the ones the model was "
                        "trained on, with a warning; without it such a run is refused")
    p.add_argument("--offline", action="store_true", help="never download weights (also MODALINK_OFFLINE=1)")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU when there is one, else cpu), cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=32, help="files per batch (MTCNN and the encoders)")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("--edition", default="2026", help="score file names: 2026 sub_score_<Test>_<cond>.txt or 2024")
    return p


def _check_args(args: argparse.Namespace) -> None:
    single = args.face is not None or args.voice is not None
    if single and (args.face is None or args.voice is None):
        raise UserError("--face and --voice go together (one face image and one voice clip)")
    if single == bool(args.pairs):
        raise UserError("give either --face FILE --voice FILE, or --pairs LIST [LIST ...] (with --output-dir)")
    if args.pairs and not args.output_dir:
        raise UserError("--pairs needs --output-dir (where the score files and report.csv go)")
    if args.batch_size < 1 or args.workers < 0:
        raise UserError("--batch-size must be >= 1 and --workers >= 0")
    for opt in ("face", "voice"):
        path = getattr(args, opt)
        if path is not None and not Path(path).is_file():
            from modalink.face_voice.raw import unreadable_file

            bad = unreadable_file(path)  # a symlink loop or a broken link is named as such
            raise UserError(f"--{opt} {path}: {bad.detail if bad else 'file not found'}")


def open_run(run_dir: Path, train_lang: str, feats_root: str | None) -> tuple[Any, list[str], Path]:
    """The run, its training languages to score with and its feature root (checks only, nothing built)."""
    from modalink.face_voice.runs import load_run
    from modalink.face_voice.verify import FeatureMismatchError

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


def _test_language(path: Path, ver: str) -> str:
    from modalink.face_voice.layout import LIST_SUFFIX, normalize_language

    if not path.name.endswith(LIST_SUFFIX):
        raise UserError(f"--pairs {path}: the test language comes from the name <Lang>_test.txt; rename the list")
    try:
        return normalize_language(ver, path.name[: -len(LIST_SUFFIX)])
    except (KeyError, ValueError) as e:
        raise UserError(f"--pairs {path}: {e}") from None


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports: --help answers at once
    _check_args(args)
    t0 = time.time()
    from modalink.encoders.base import MissingWeightsError, resolve_device
    from modalink.face_voice.layout import feature_dims
    from modalink.face_voice.raw import TestPair, read_test_pairs
    from modalink.face_voice.verify import (RANDOM_WEIGHTS_NOTE, FeatureMismatchError, RawMediaEmbedder,
                                            check_model_inputs, require_feature_info, score_raw_pairs)

    run_dir = Path(args.run_dir)
    run, langs, feats_root = open_run(run_dir, args.train_lang, args.feats_root)
    ver = run.ver
    info, info_path = require_feature_info(feats_root, ver)
    # what train.py built the model for
    face_dim, voice_dim = feature_dims(feats_root, ver, run.config.data.face_dim, run.config.data.voice_dim)
    if (face_dim, voice_dim) != (int(info["face_dim"]), int(info["voice_dim"])):
        raise FeatureMismatchError(
            f"run {run_dir} was trained on {face_dim}-D face / {voice_dim}-D voice features, but {info_path} "
            f"describes {info['face_dim']}-D / {info['voice_dim']}-D features; verify with the run trained on them")
    # every pair list is read (and its language checked) before any model is built
    lists: list[tuple[Path, str, Path, list[TestPair]]] = []
    for item in args.pairs or []:
        path = Path(item)
        if not path.is_file():
            raise UserError(f"--pairs {path}: file not found")
        root = Path(args.raw_root) if args.raw_root else path.parent
        if not root.is_dir():
            raise UserError(f"--raw-root {root}: folder not found")
        pairs = read_test_pairs(path)
        missing = sum(not (root / p).exists() for p in {q.face for q in pairs} | {q.voice for q in pairs})
        if pairs and missing == len({q.face for q in pairs} | {q.voice for q in pairs}):
            raise UserError(f"none of the files listed in {path} exist under {root}; pass the folder the list's "
                            "paths are relative to with --raw-root")
        lists.append((path, _test_language(path, ver), root, pairs))
    from challenge.naming import get_edition

    get_edition(args.edition)
    device = resolve_device(args.device)
    try:
        embedder = RawMediaEmbedder.from_feature_info(
            info, face_weights=args.face_weights, voice_weights=args.voice_weights, where=str(info_path),
            offline=True if args.offline else None, device=device, face_weights_option="--face-weights",
            voice_weights_option="--voice-weights", batch_size=args.batch_size, workers=args.workers)
    except MissingWeightsError as e:  # several lines (one block per encoder), printed once
        print(f"error: {e}", file=sys.stderr)
        return 2
    models = {}
    accepted: list[str] = []
    for lang in langs:
        folder = run_dir / f"{ver}_{lang}"
        try:  # version, language and widths here; the encoders against the embedder's just below
            models[lang] = run.load_model(lang, face_dim, voice_dim).to(device)
        except RuntimeError as e:  # a state dict of other widths
            raise FeatureMismatchError(f"{folder / 'best_model.pt'} does not fit {face_dim}-D face / "
                                       f"{voice_dim}-D voice features ({' '.join(str(e).split())[:300]})") from None
        accepted += check_model_inputs(models[lang], embedder, str(folder / "model"),
                                       allow_mismatch=args.allow_encoder_mismatch)
    for line in accepted:
        print(f"warning: {line}; used anyway (--allow-encoder-mismatch)", file=sys.stderr)
    if embedder.random_weights:
        print(f"warning: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)

    if args.face is not None:
        scores = score_raw_pairs(models, embedder, [TestPair("pair", args.voice, args.face)])
        for modality, r in scores.problems:
            if r.embedding is None:
                raise UserError(f"{r.relpath}: {modality} file cannot be used: {r.problem} ({r.detail})")
            print(f"note: {r.relpath}: {r.detail}", file=sys.stderr)
        note = "; RANDOM encoder weights: meaningless" if embedder.random_weights else ""
        for lang, dist in scores.distances.items():
            print(f"{lang} model: distance {float(dist[0]):.6f} (L2; lower = same person{note})")
        return 0
    return _score_lists(args, lists, models, embedder, ver, run_dir, info_path, t0, accepted)


def _score_lists(args: argparse.Namespace, lists: list, models: dict, embedder: Any, ver: str, run_dir: Path,
                 info_path: Path, t0: float, accepted: list[str]) -> int:
    from challenge import write_submission
    from modalink.face_voice.verify import RANDOM_WEIGHTS_NOTE, score_raw_pairs
    from modalink.io import atomic_write_text

    out = Path(args.output_dir)
    entries: dict[tuple[str, str], tuple[list[str], Any]] = {}
    report_rows: list[dict[str, str]] = []
    summary: dict[str, Any] = {"run_dir": str(run_dir.absolute()), "feature_info": str(info_path.absolute()),
                               "ver": ver, "random_weights": embedder.random_weights,
                               "encoder_mismatch_accepted": accepted, "lists": {}}
    if embedder.random_weights:
        summary["warning"] = RANDOM_WEIGHTS_NOTE
    for path, test_lang, root, pairs in lists:
        print(f"{path}: {len(pairs)} pairs ({test_lang}), files under {root}", file=sys.stderr)
        scores = score_raw_pairs(models, embedder, pairs, root)
        for train_lang, dist in scores.distances.items():
            if (train_lang, test_lang) in entries:
                raise UserError(f"--pairs: two lists for test language {test_lang}")
            entries[(train_lang, test_lang)] = (scores.keys, dist)
        lines: dict[tuple[str, str], int] = {}
        for p in pairs:
            lines[("face", p.face)] = lines.get(("face", p.face), 0) + 1
            lines[("voice", p.voice)] = lines.get(("voice", p.voice), 0) + 1
        for modality, r in scores.problems:
            n = lines.get((modality, r.relpath), 0)
            action = (f"zero {modality} features on {n} line(s)" if r.embedding is None
                      else "embedded the centre of the image instead")
            report_rows.append({"pair_list": str(path), "modality": modality, "file": str(root / r.relpath),
                                "problem": r.problem or "", "action": action, "detail": r.detail})
        summary["lists"][test_lang] = {"pair_list": str(path.absolute()), "pairs": len(pairs),
                                       "problem_files": len(scores.problems)}
    written = write_submission(out / "submission", entries, edition=args.edition,
                               info={"source": "recipes/fame/verify.py", "run_dir": str(run_dir.absolute()),
                                     "random_weights": embedder.random_weights})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report_rows)
    atomic_write_text(out / "report.csv", buf.getvalue())
    summary["files"] = sorted(p.name for p in written.values())
    summary["seconds"] = round(time.time() - t0, 2)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    for entry, p in sorted(written.items()):
        print(f"{p}  ({entry.train_lang} model on {entry.test_lang} pairs, {entry.condition})")
    if report_rows:
        print(f"{len(report_rows)} file(s) replaced by zero features or a centre crop: see {out / 'report.csv'}",
              file=sys.stderr)
    pairs_dir = Path(lists[0][0]).parent
    partial = "" if len(written) == 4 else " --partial"
    print(f"check: python -m challenge validate {out / 'submission'} --pairs {pairs_dir}{partial}", file=sys.stderr)
    if embedder.random_weights:
        print(f"warning: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: exit code 0, or 2 with one ``error:`` message (``--debug``: traceback)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
