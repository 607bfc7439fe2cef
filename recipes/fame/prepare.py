#!/usr/bin/env python
"""Extract face and voice features from the raw MAV-Celeb release into the official CSV layout.

    python recipes/fame/prepare.py --raw-root /data/mavceleb_v1 --ver v1 --output data/fame \\
        --face-weights ~/weights/20180402-114759-vggface2.pt \\
        --voice-weights ~/weights/spkrec-ecapa-voxceleb --offline

Writes, under ``--output``, exactly the files ``train.py --feats-root`` reads (training and
test CSVs, pair lists, ``feature_info.json``), resumable and incremental through the shared
embedding cache; every file not used is named, with the reason, in ``<run-dir>/report.csv``.
Under ``accelerate launch --num_processes N`` the processes split the files to embed. What it
does, file by file: :mod:`modalink.face_voice.extraction`.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from modalink.cli import command_parser
from modalink.errors import run_cli
from modalink.face_voice.cli import key_value
from modalink.face_voice.layout import FAME_VERSIONS, SPLITS_DIR, TEST_DIR, TRAIN_DIR


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "Extract face/voice features from raw MAV-Celeb into the official FAME CSV layout (resumable and "
        "incremental through the shared embedding cache; problem files listed in <run-dir>/report.csv).",
        prog="recipes/fame/prepare.py", show_defaults=True)
    p.add_argument("--raw-root", required=True, help="raw MAV-Celeb folder (train and test folders, pair lists)")
    p.add_argument("--ver", default="v1", choices=sorted(FAME_VERSIONS), help="MAV-Celeb version")
    p.add_argument("--output", required=True, help=f"FEATS_ROOT: where {TRAIN_DIR}/, {TEST_DIR}/ and {SPLITS_DIR}/ go")
    p.add_argument("--face-encoder", default="facenet_vggface2", help="registered face/image encoder")
    p.add_argument("--voice-encoder", default="ecapa_voxceleb", help="registered voice encoder")
    p.add_argument("--face-weights", help="local face weights file (e.g. 20180402-114759-vggface2.pt)")
    p.add_argument("--voice-weights", help="local folder with embedding_model.ckpt (spkrec-ecapa-voxceleb)")
    p.add_argument("--face-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="extra face-encoder argument (YAML value), repeatable")
    p.add_argument("--voice-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="extra voice-encoder argument (YAML value), e.g. channels=[32,32,32,32,96]")
    p.add_argument("--offline", action="store_true", help="never download weights (also MODALINK_OFFLINE=1)")
    p.add_argument("--random-weights", action="store_true", help="random encoder weights: a plumbing check, the features mean nothing (recorded in "
                   "summary.json and feature_info.json)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    p.add_argument("--no-face", default="center_crop", choices=["center_crop", "skip"],
                   help="when MTCNN finds no face: centre crop the image, or skip it")
    p.add_argument("--min-seconds", type=float, default=0.5, help="shorter clips count as bad audio")
    p.add_argument("--batch-size", type=int, default=32, help="files per batch (MTCNN and the encoders)")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU when there is one, else cpu), cpu, cuda, cuda:1 ...")
    p.add_argument("--parts", default="train,test", help="comma-separated subset of train,test")
    p.add_argument("--train-root", help="training folder (default: found under --raw-root)")
    p.add_argument("--test-root", help="test folder (default: found under --raw-root)")
    p.add_argument("--splits", help="folder with <Lang>_test.txt (default: searched under --raw-root)")
    p.add_argument("--cache-dir", help="embedding cache (default: OUTPUT/.cache/embeddings)")
    p.add_argument("--run-dir", help="run folder (default: OUTPUT/prepare_runs/<ver>-<time>)")
    p.add_argument("--retry-failed", action="store_true", help="retry files that failed before")
    p.add_argument("--collective-timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="under accelerate launch: how long a process waits for the others (the slowest block of "
                        "files, the merge) before the job ends naming the lost process")
    return p


def _main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports: --help answers at once
    from modalink.encoders.base import MissingWeightsError
    from modalink.face_voice.extraction import PrepareConfig, prepare_features

    try:
        prepare_features(PrepareConfig.from_options(vars(args)))
    except MissingWeightsError as e:  # several lines (one block per encoder), printed once
        if os.environ.get("RANK", "0") in ("", "0"):  # by the main process of a launched job
            print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: exit code 0, or 2 with one ``error:`` message (``--debug``: traceback)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
