"""The FAME recipe's command-line pieces that need no torch: train.py and evaluate.py build their
parsers from these before importing anything heavy, so ``--help`` answers at once.
Found because Python puts a script's own folder first on ``sys.path``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "hparams" / "default.yaml"


def add_data_arguments(parser: Any) -> None:
    """The data/output options shared by train.py and evaluate.py."""
    parser.add_argument("--feats-root", default=None,
                        help="folder holding feats/, preExtracted_vggFace_utteranceLevel_Features/ and "
                             "face_voice_association_splits/ (default: generate a synthetic MAV-Celeb-like "
                             "set under <output-dir>/synthetic_data)")
    parser.add_argument("--ver", default="v3", choices=["v1", "v2", "v3"], help="MAV-Celeb version")
    parser.add_argument("--train-lang", default="all",
                        help="training language, or 'all' for both languages of the version (the full "
                             "4-condition FAME protocol)")
    parser.add_argument("--ground-truth", default=None,
                        help="folder of <Lang>_test.txt files with 'key label' lines, to compute EERs "
                             "(default: <feats-root>/ground_truth/<ver> when it exists)")
    parser.add_argument("--edition", default="2026", help="submission naming: 2026 or 2024")


__all__ = ["HERE", "DEFAULT_CONFIG", "add_data_arguments"]
