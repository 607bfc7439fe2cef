"""Command-line pieces of the FAME scripts that need no torch: parsers are built from these before
anything heavy is imported, so ``--help`` answers at once."""
from __future__ import annotations

import argparse
from typing import Any

import yaml

from modalink.face_voice.layout import FAME_VERSIONS, SPLITS_DIR, TEST_DIR, TRAIN_DIR

__all__ = ["add_data_arguments", "key_value", "split_seeds"]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options shared by the training, evaluation and ensemble scripts."""
    parser.add_argument("--feats-root", default=None,
                        help=f"folder holding {TRAIN_DIR}/, {TEST_DIR}/ and "
                             f"{SPLITS_DIR}/ (default: generate a synthetic MAV-Celeb-like "
                             "set under <output-dir>/synthetic_data)")
    parser.add_argument("--ver", default="v3", choices=sorted(FAME_VERSIONS), help="MAV-Celeb version")
    parser.add_argument("--train-lang", default="all",
                        help="training language, or 'all' for both languages of the version (the full "
                             "4-condition FAME protocol)")
    parser.add_argument("--ground-truth", default=None,
                        help="folder of <Lang>_test.txt files with 'key label' lines, to compute EERs "
                             "(default: <feats-root>/ground_truth/<ver> when it exists)")
    parser.add_argument("--edition", default="2026", help="submission naming: 2026 or 2024")


def key_value(text: str) -> tuple[str, Any]:
    """An argparse ``type`` for ``KEY=VALUE`` (the value read as YAML)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k.strip(), yaml.safe_load(v)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: value is not valid YAML ({e})") from None


def split_seeds(tokens: list[str]) -> tuple[list[int], list[str]]:
    """``--seeds`` tokens → the seeds and the ``key=value`` overrides written after them (``nargs="+"``
    takes those too); :class:`ValueError` unless there are at least 2 different integer seeds."""
    seeds, extra = [], []
    for tok in tokens:
        if "=" in tok:
            extra.append(tok)
            continue
        try:
            seeds.append(int(tok))
        except ValueError:
            raise ValueError(f"--seeds: {tok!r} is not an integer seed") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: give at least 2 different seeds, got {tokens}")
    return seeds, extra
