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
Scores are L2 distances, lower = same person (normalised as the run chose on validation, when it
chose a score normalisation: the scores its own submission holds). Score files are written as one set
(``<output-dir>/submission/``, staged then swapped in, with a manifest).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from modalink.cli import command_parser
from modalink.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(__doc__, prog="recipes/fame/verify.py")
    p.add_argument("--run-dir", required=True, help="a finished train.py run folder (config.yaml, <ver>_<Lang>/model)")
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
            from modalink.encoders.embed_files import unreadable_file

            bad = unreadable_file(path)  # a symlink loop or a broken link is named as such
            raise UserError(f"--{opt} {path}: {bad.detail if bad else 'file not found'}")


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports: --help answers at once
    _check_args(args)
    t0 = time.time()
    from challenge.naming import get_edition
    from modalink.encoders.base import MissingWeightsError, resolve_device
    from modalink.face_voice.verify import (RANDOM_WEIGHTS_NOTE, RawMediaEmbedder, load_run_models, open_verify_run,
                                            read_raw_pair_lists, require_feature_info, run_feature_dims,
                                            score_one_pair)

    run, langs, feats_root = open_verify_run(args.run_dir, args.train_lang, args.feats_root)
    info, info_path = require_feature_info(feats_root, run.ver)
    face_dim, voice_dim = run_feature_dims(run, feats_root, info, info_path)  # what train.py built the model for
    lists = read_raw_pair_lists(args.pairs or [], args.raw_root, run.ver)  # before any model is built
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
    models, accepted = load_run_models(run, langs, face_dim, voice_dim, device, embedder,
                                       allow_mismatch=args.allow_encoder_mismatch)
    for line in accepted:
        print(f"warning: {line}; used anyway (--allow-encoder-mismatch)", file=sys.stderr)
    if embedder.random_weights:
        print(f"warning: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)

    norms = {lang: run.score_norm(lang) for lang in langs}  # the run's own, as its submission was scored
    if args.face is not None:
        scores, notes = score_one_pair(models, embedder, args.face, args.voice, norms)
        print("".join(f"note: {line}\n" for line in notes), end="", file=sys.stderr)
        note = "; RANDOM encoder weights: meaningless" if embedder.random_weights else ""
        for lang, score in scores.items():
            what = f"score {score:.6f} ({norms[lang].spec.name}-normalised L2" if norms[lang] else \
                f"distance {score:.6f} (L2"
            print(f"{lang} model: {what}; lower = same person{note})")
        return 0
    return _score_lists(args, lists, models, embedder, run.ver, run.path, info_path, t0, accepted, norms)


def _score_lists(args: argparse.Namespace, lists: list, models: dict, embedder: Any, ver: str, run_dir: Path,
                 info_path: Path, t0: float, accepted: list[str], norms: dict) -> int:
    from challenge import write_submission
    from modalink.face_voice.verify import RANDOM_WEIGHTS_NOTE, score_pair_lists, write_verify_report

    out = Path(args.output_dir)
    scored = score_pair_lists(lists, models, embedder, norms)
    written = write_submission(out / "submission", scored.entries, edition=args.edition,
                               info={"source": "recipes/fame/verify.py", "run_dir": str(run_dir),
                                     "random_weights": embedder.random_weights})
    write_verify_report(out, scored, run_dir=run_dir, info_path=info_path, ver=ver,
                        random_weights=embedder.random_weights, accepted=accepted,
                        files=sorted(p.name for p in written.values()), seconds=round(time.time() - t0, 2))
    for entry, p in sorted(written.items()):
        print(f"{p}  ({entry.train_lang} model on {entry.test_lang} pairs, {entry.condition})")
    if scored.report_rows:
        print(f"{len(scored.report_rows)} file(s) replaced by zero features or a centre crop: see "
              f"{out / 'report.csv'}", file=sys.stderr)
    partial = "" if len(written) == 4 else " --partial"
    print(f"check: python -m challenge validate {out / 'submission'} --pairs {lists[0].path.parent}{partial}",
          file=sys.stderr)
    if embedder.random_weights:
        print(f"warning: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: exit code 0, or 2 with one ``error:`` message (``--debug``: traceback)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
