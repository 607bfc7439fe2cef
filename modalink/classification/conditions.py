"""The one condition vocabulary of missing-modality classification.

A *condition* names how many samples keep each modality, in availability terms (the papers'
"30 % text" columns): ``complete``, ``text=30%`` (text kept by 30 % of the samples),
``image=0%``, ``text=65%,image=65%`` (disjoint losses). :mod:`modalink.classification.missing` does the
arithmetic; this module fixes the protocol every method shares:

* the mask of condition ``c`` on split ``s`` is drawn with ``derive_seed(seed, s, c)``, so every
  method (Chameleon, multi-branch, SRMM, late fusion) sees exactly the same missing inputs;
* :func:`text_condition` turns a text-availability rate (``0.3``) into its label (``text=30%``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

from modalink.classification.missing import (MissingModalityMask, condition_name, derive_seed, mask_for_condition,
                                             parse_condition)
from modalink.errors import InputError

__all__ = ["MissingConfig", "missing_config_errors", "parse_condition", "check_conditions", "condition_mask", "condition_shares",
           "text_condition", "mask_file_name"]


@dataclass
class MissingConfig:
    """Missing-modality protocol of a run (``missing:`` in the recipes' YAML files)."""

    train: str = "complete"  # e.g. "text=70%": the training set itself misses 30 % of its texts
    eval: list[str] = field(default_factory=lambda: ["complete", "text=70%", "text=30%", "text=0%"])
    seed: int = 0  # masks use derive_seed(seed, split, condition)
    splits: list[Literal["train", "val", "test"]] = field(default_factory=lambda: ["test"])  # evaluated splits
    #                                                                                  (the first is the main one)


def missing_config_errors(m: MissingConfig, key: str = "missing") -> list[str]:
    """``"<key>.<field>: why"`` for each condition label that is not in the vocabulary and for an
    empty ``splits`` list (a config's ``validate_config`` raises the first)."""
    errors = []
    for name, labels in (("train", [m.train]), ("eval", list(m.eval))):
        for label in labels:
            try:
                parse_condition(label)
            except ValueError as e:
                errors.append(f"{key}.{name}: {e}")
    if not m.splits:
        errors.append(f"{key}.splits: name at least one of train, val, test")
    return errors


def check_conditions(conditions: Sequence[str]) -> None:
    """Raise ``ValueError`` on the first label that is not in the vocabulary."""
    for c in conditions:
        parse_condition(c)


def condition_mask(n: int, split: str, condition: str, seed: int) -> MissingModalityMask:
    """The mask of ``condition`` on ``split`` (``n`` samples) under the shared protocol."""
    return mask_for_condition(n, condition, seed=derive_seed(seed, split, condition))


def condition_shares(condition: str) -> tuple[float, float]:
    """(share of samples with text, share with an image) of a condition label."""
    _, rates = parse_condition(condition)  # missing rates
    return 1.0 - rates.get("text", 0.0), 1.0 - rates.get("image", 0.0)


def text_condition(rate: float) -> str:
    """Text availability → condition label (1.0 → ``complete``, 0.3 → ``text=30%``)."""
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"text availability {rate} is outside [0, 1]")
    return condition_name("text", {"text": round(1.0 - rate, 12)})


def mask_file_name(split: str, condition: str) -> str:
    """``test_text30pct.json``: where a run saves the mask of ``condition`` on ``split``."""
    return f"{split}_{condition.replace('=', '').replace('%', 'pct').replace(',', '_')}.json"
