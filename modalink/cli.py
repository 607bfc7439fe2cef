"""One command line for every recipe: the same flags, one precedence order, one error style.

Every recipe's ``train.py`` builds its parser with :func:`recipe_parser` (``--config``,
``--output-dir``, ``--overwrite``/``--resume``, ``--print-config``, ``--debug`` and ``key=value``
overrides, in any order), adds its own data flags, and loads its config with :func:`load_recipe_config`:

    dataclass defaults  <  YAML file (--config)  <  the recipe's flags  <  key=value overrides

Flags become overrides of named keys (``--data-root`` → ``data.root``), so a flag and the key it
sets can never disagree and ``config.yaml`` records what was used. Sections a recipe fills only
from flags (e.g. FAME's ``run:``) are refused in YAML files and overrides instead of being
silently replaced. ``--print-config`` prints the resolved config as YAML and exits.
Errors end in one line (:func:`modalink.errors.run_cli`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from modalink.config import ConfigError, load_config, parse_overrides, read_yaml, to_dict

__all__ = ["recipe_parser", "parse_recipe_args", "load_recipe_config", "resume_mode", "print_config"]

T = TypeVar("T")


def recipe_parser(description: str | None, *, default_config: str | Path | None = None,
                  output_default: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the flags every recipe command shares."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None if default_config is None else str(default_config),
                   help=f"YAML config (default: {default_config})" if default_config else "YAML config")
    p.add_argument("--output-dir", default=output_default,
                   help="run folder; the same command again resumes it, another config is refused"
                        + (f" (default: {output_default})" if output_default else ""))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="discard the run already in --output-dir and start again")
    mode.add_argument("--resume", action="store_true",
                      help="require a compatible run in --output-dir to resume (error if there is none)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. engine.lr=3e-4")
    return p


def parse_recipe_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse with flags and ``key=value`` overrides in any order."""
    return parser.parse_intermixed_args(None if argv is None else list(argv))


def resume_mode(args: argparse.Namespace) -> str:
    """``overwrite`` / ``resume`` / ``auto`` from the shared flags."""
    return "overwrite" if getattr(args, "overwrite", False) else "resume" if getattr(args, "resume", False) else "auto"


def load_recipe_config(cls: type[T], args: argparse.Namespace, *, flags: Mapping[str, Any] | None = None,
                       flag_only: Sequence[str] = ()) -> T:
    """Load ``cls`` with the one precedence order (see the module docstring).

    ``flags`` maps dotted keys to values from the recipe's own flags (``None`` values are
    skipped); ``flag_only`` names sections that only flags may set."""
    path = getattr(args, "config", None)
    overrides = list(getattr(args, "overrides", []) or [])
    for section in flag_only:
        if path is not None and section in read_yaml(path):
            raise ConfigError(f"{path}: the {section!r} section is set from the command line, not from config "
                              f"files; remove it")
        if section in parse_overrides(overrides):
            raise ConfigError(f"{section}.* is set by the command's flags, not by key=value overrides")
    flag_items = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                  for k, v in (flags or {}).items() if v is not None]
    return load_config(cls, path, [*flag_items, *overrides])


def print_config(cfg: Any, stream: Any = None) -> None:
    """The resolved config as YAML (what ``--print-config`` shows)."""
    yaml.safe_dump(to_dict(cfg), stream or sys.stdout, sort_keys=False)
