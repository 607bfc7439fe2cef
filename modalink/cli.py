"""One command line for every command: the same flags, one precedence order, one error style.

Every command builds its parser from the same pieces: :func:`command_parser` (the shared help
layout, :class:`HelpFormatter`, and the flags every command takes, :func:`add_common_flags`:
``--debug``), and for a command with subcommands (``python -m challenge``)
:func:`add_subcommands` / :func:`add_subcommand`, which give each subcommand the same layout and
flags, so ``cmd --debug sub ...`` and ``cmd sub ... --debug`` both work.

Every recipe's ``train.py`` builds its parser with :func:`recipe_parser` (the above plus
``--config``, ``--output-dir``, ``--overwrite``/``--resume``, ``--print-config`` and ``key=value``
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
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from modalink.config import ConfigError, load_config, parse_overrides, read_yaml, to_dict

__all__ = ["HelpFormatter", "reflow", "DefaultsHelpFormatter", "command_parser", "add_common_flags", "add_subcommands", "add_subcommand",
           "recipe_parser", "parse_recipe_args", "check_config_path", "load_recipe_config", "resume_mode", "print_config"]

T = TypeVar("T")

#: ``--debug``'s help; :func:`modalink.errors.run_cli` acts on the flag wherever it is given.
DEBUG_HELP = "show tracebacks instead of one-line errors"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The help layout of every command: a description or epilog (a module docstring) is reflowed
    by paragraph to the terminal's width, so no sentence breaks where the source line did; lines
    indented by 4 or more spaces (command examples) are kept as written, and a bullet (``*``,
    ``-``, ``1.``) keeps its hanging indent."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(reflow(text, width, indent))


def _bullet_width(line: str) -> int:
    """Width of a bullet marker at the start of ``line`` (``* ``, ``- ``, ``1. ``), else 0."""
    head = line.split(" ", 1)[0]
    if " " in line and (head in ("*", "-") or (head[:-1].isdigit() and head.endswith((".", ")")))):
        return len(head) + 1
    return 0


def reflow(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` as lines of at most ``width`` characters: paragraphs (and bullets) joined and
    refilled, blank lines kept, lines indented by 4+ spaces kept verbatim."""
    out: list[str] = []
    para: list[str] = []
    hang = ""

    def flush() -> None:
        nonlocal para, hang
        if para:
            out.extend(textwrap.wrap(" ".join(para), width, initial_indent=indent,
                                     subsequent_indent=indent + hang, break_on_hyphens=False) or [""])
        para, hang = [], ""

    for line in textwrap.dedent(text.strip("\n")).splitlines():
        lead = len(line) - len(line.lstrip())
        body = line.strip()
        if not body:
            flush()
            out.append("")
        elif lead >= 4 and not (para and hang and lead <= len(hang)):
            flush()
            out.append(indent + line.rstrip())
        elif _bullet_width(body):
            flush()
            hang = " " * (lead + _bullet_width(body))
            para = [" " * lead + body] if lead else [body]
        elif para and hang and lead:
            para.append(body)
        else:
            if para and (hang or lead):
                flush()
            para.append(body)
    flush()
    return out


def add_common_flags(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> argparse.ArgumentParser:
    """Add the flags every command takes (``--debug``) to ``parser``; returns it.

    A subcommand's copy (``subcommand=True``) has no default, so a flag given before the
    subcommand's name is not reset to its default by the subcommand's parser."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if subcommand else False,
                        help=DEBUG_HELP)
    return parser


class DefaultsHelpFormatter(HelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """:class:`HelpFormatter` that also shows each option's default."""


def command_parser(description: str | None, *, prog: str | None = None, epilog: str | None = None,
                   show_defaults: bool = False) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the help layout and the flags every command shares
    (``show_defaults``: each option's help ends with its default)."""
    return add_common_flags(argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog,
        formatter_class=DefaultsHelpFormatter if show_defaults else HelpFormatter))


def add_subcommands(parser: argparse.ArgumentParser, *, dest: str = "command",
                    metavar: str | None = None) -> argparse._SubParsersAction:
    """The (required) subcommands of ``parser``; add each with :func:`add_subcommand`."""
    return parser.add_subparsers(dest=dest, required=True, metavar=metavar)


def add_subcommand(subcommands: argparse._SubParsersAction, name: str, *, help: str,
                   description: str | None = None, epilog: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand ``name``, with the same help layout and common flags as every command."""
    return add_common_flags(subcommands.add_parser(name, help=help, description=description or help, epilog=epilog,
                                                   formatter_class=HelpFormatter), subcommand=True)


def recipe_parser(description: str | None, *, default_config: str | Path | None = None,
                  output_default: str | None = None, hparams_dir: str | Path | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the flags every recipe command shares (:func:`command_parser`'s too).

    ``hparams_dir`` (default: the folder of ``default_config``) is where a ``--config`` name that
    is not found is looked up, to suggest the recipe's file of that name."""
    p = command_parser(description)
    if hparams_dir is None and default_config is not None:
        hparams_dir = Path(default_config).parent
    p.set_defaults(hparams_dir=None if hparams_dir is None else str(hparams_dir))
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
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. engine.lr=3e-4")
    return p


def parse_recipe_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse with flags and ``key=value`` overrides in any order."""
    return parser.parse_intermixed_args(None if argv is None else list(argv))


def resume_mode(args: argparse.Namespace) -> str:
    """``overwrite`` / ``resume`` / ``auto`` from the shared flags."""
    return "overwrite" if getattr(args, "overwrite", False) else "resume" if getattr(args, "resume", False) else "auto"


def check_config_path(path: str | Path, hparams_dir: str | Path | None) -> None:
    """Refuse a ``--config`` file that does not exist in one line, suggesting the recipe's
    ``hparams/`` file of the same name (or listing the recipe's files)."""
    given = Path(path)
    if given.is_file():
        return
    what = f"config file not found: {path}"
    if hparams_dir is None or not Path(hparams_dir).is_dir():
        raise ConfigError(f"{what}; give the path of a YAML file")
    folder = Path(hparams_dir)
    names = [given.name, given.name + ".yaml"] if given.suffix not in (".yaml", ".yml") else [given.name]
    for name in names:
        if (folder / name).is_file():
            raise ConfigError(f"{what}; did you mean {_shown(folder / name)}?")
    known = ", ".join(sorted(p.name for p in folder.glob("*.yaml")))
    raise ConfigError(f"{what}; the recipe's configs in {_shown(folder)}/ are: {known}")


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is below it, else absolute."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def load_recipe_config(cls: type[T], args: argparse.Namespace, *, flags: Mapping[str, Any] | None = None,
                       flag_only: Sequence[str] = ()) -> T:
    """Load ``cls`` with the one precedence order (see the module docstring).

    ``flags`` maps dotted keys to values from the recipe's own flags (``None`` values are
    skipped); ``flag_only`` names sections that only flags may set."""
    path = getattr(args, "config", None)
    if path is not None:
        check_config_path(path, getattr(args, "hparams_dir", None))
    overrides = list(getattr(args, "overrides", []) or [])
    file_data = None if path is None else read_yaml(path)  # read once: checked here, loaded below
    set_by_overrides = parse_overrides(overrides) if flag_only else {}
    for section in flag_only:
        if file_data is not None and section in file_data:
            raise ConfigError(f"{path}: the {section!r} section is set from the command line, not from config "
                              f"files; remove it")
        if section in set_by_overrides:
            raise ConfigError(f"{section}.* is set by the command's flags, not by key=value overrides")
    flag_items = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                  for k, v in (flags or {}).items() if v is not None]
    return load_config(cls, path, [*flag_items, *overrides], file_data=file_data)


def print_config(cfg: Any, stream: Any = None) -> None:
    """The resolved config as YAML (what ``--print-config`` shows)."""
    yaml.safe_dump(to_dict(cfg), stream or sys.stdout, sort_keys=False)
