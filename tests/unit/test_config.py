"""Config system: YAML + key=value overrides, unknown/required keys, no code execution."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dataclasses

import pytest

from modalink.config import (ConfigError, load_config, make_paths_absolute, optional, parse_overrides, path_field,
                             save_config, to_dict)
from modalink.engine import EngineConfig


@dataclass
class Data:
    root: str
    langs: list[str] = field(default_factory=lambda: ["English", "German"])


@dataclass
class Cfg:
    data: Data
    engine: EngineConfig = field(default_factory=EngineConfig)
    name: str = "run"
    dropout: float | None = None


def test_yaml_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  root: /x\nengine:\n  lr: 1e-3\n  epochs: 3\n")
    cfg = load_config(Cfg, p, ["engine.epochs=5", "name=abc", "data.langs=[A, B]", "dropout=0.5"])
    assert cfg.engine.epochs == 5 and cfg.engine.lr == pytest.approx(1e-3)
    assert cfg.data.langs == ["A", "B"] and cfg.name == "abc" and cfg.dropout == 0.5
    out = tmp_path / "resolved.yaml"
    save_config(cfg, out)
    again = load_config(Cfg, out)
    assert to_dict(again) == to_dict(cfg)


def test_unknown_key_names_file_and_known_keys(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  root: /x\n  rot: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*unknown key\(s\) 'rot'.*known keys: root, langs"):
        load_config(Cfg, p)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(Cfg, None, ["data.root=/x", "engine.lrr=3"])


def test_required_key_message() -> None:
    with pytest.raises(ConfigError, match="required key 'root' is missing.*root=VALUE"):
        load_config(Cfg)


def test_type_errors_and_bad_overrides() -> None:
    with pytest.raises(ConfigError, match="engine.epochs: expected an integer"):
        load_config(Cfg, None, ["data.root=/x", "engine.epochs=many"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_overrides(["epochs"])


def test_yaml_never_executes_code(tmp_path: Path) -> None:
    p = tmp_path / "evil.yaml"
    p.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Cfg, p)


@dataclass
class _Unset:
    root: str | None = None
    dim: int | None = optional(ge=1)
    mods: list[str] | None = optional()
    flag: bool | None = None


def test_unset_has_one_spelling(tmp_path: Path) -> None:
    """One spelling of "not set": None (YAML null, key=null or key= on the command line); the
    values that might look like "not set" (0, [], '') are values and are checked as such."""
    unset = {"root": None, "dim": None, "mods": None, "flag": None}
    assert to_dict(load_config(_Unset)) == unset
    assert to_dict(load_config(_Unset, None, ["root=null", "dim=null", "mods=null", "flag=null"])) == unset
    assert to_dict(load_config(_Unset, None, ["root=", "dim=", "mods=", "flag="])) == unset
    cfg = load_config(_Unset, None, ["root=/d", "dim=8", "mods=[a]", "flag=false"])
    assert (cfg.root, cfg.dim, cfg.mods, cfg.flag) == ("/d", 8, ["a"], False)
    old = tmp_path / "old.yaml"
    save_config(load_config(_Unset), old)
    assert "root: null" in old.read_text() and to_dict(load_config(_Unset, old)) == unset
    old.write_text("dim: 0\n")
    with pytest.raises(ConfigError, match=r"dim: 0 is out of range; it must be >= 1"):
        load_config(_Unset, old)
    old.write_text("root: ''\nmods: []\n")
    assert (load_config(_Unset, old).root, load_config(_Unset, old).mods) == ("", [])
    with pytest.raises(ConfigError, match="dim: expected an integer"):
        load_config(_Unset, None, ["dim=false"])
    # a plain str field has no "not set": an empty key= is the empty string
    name = load_config(Cfg, None, ["data.root=/x", "name="]).name
    assert name == "" and type(name) is str


@dataclasses.dataclass
class _Run:
    root: str = ""


@dataclasses.dataclass
class _Train:
    lr: float = 0.1
    epochs: int = 1


@dataclasses.dataclass
class _Cfg:
    train: _Train = dataclasses.field(default_factory=_Train)
    run: _Run = dataclasses.field(default_factory=_Run)


def test_recipe_cli_precedence_flag_only_sections_and_print_config(tmp_path, capsys):
    """defaults < YAML < flags < key=value; a flag-only section is refused in YAML and overrides."""
    from modalink.cli import load_recipe_config, parse_recipe_args, print_config, recipe_parser, resume_mode

    yml = tmp_path / "c.yaml"
    yml.write_text("train:\n  lr: 0.2\n  epochs: 5\n")
    p = recipe_parser("demo", default_config=yml, output_default="runs/x")
    p.add_argument("--data-root")
    args = parse_recipe_args(p, ["train.epochs=7", "--data-root", "/d", "--overwrite"])
    cfg = load_recipe_config(_Cfg, args, flags={"run.root": args.data_root, "train.lr": None}, flag_only=("run",))
    assert (cfg.train.lr, cfg.train.epochs, cfg.run.root) == (0.2, 7, "/d") and resume_mode(args) == "overwrite"
    args = parse_recipe_args(p, ["run.root=/x"])
    with pytest.raises(ConfigError, match="set by the command's flags"):
        load_recipe_config(_Cfg, args, flag_only=("run",))
    yml.write_text("run:\n  root: /y\n")
    with pytest.raises(ConfigError, match="'run' section is set from the command line"):
        load_recipe_config(_Cfg, parse_recipe_args(p, []), flag_only=("run",))
    print_config(cfg)
    assert "epochs: 7" in capsys.readouterr().out


def test_recipe_config_file_is_read_once(tmp_path, monkeypatch):
    """The flag-only check and the load share one read of --config (one per section before)."""
    import modalink.cli as cli
    import modalink.config as config

    reads: list[str] = []
    real = config.read_yaml

    def counting(path):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(config, "read_yaml", counting)
    monkeypatch.setattr(cli, "read_yaml", counting)
    yml = tmp_path / "c.yaml"
    yml.write_text("train:\n  lr: 0.2\n")
    p = cli.recipe_parser("demo", default_config=yml)
    args = cli.parse_recipe_args(p, ["train.epochs=3"])
    cfg = cli.load_recipe_config(_Cfg, args, flags={"run.root": "/d"}, flag_only=("run", "other"))
    assert (cfg.train.lr, cfg.train.epochs, cfg.run.root) == (0.2, 3, "/d") and reads == [str(yml)]
    yml.unlink()
    with pytest.raises(ConfigError, match="config file not found"):
        cli.load_recipe_config(_Cfg, args, flag_only=("run",))


def test_help_layout_keeps_line_breaks_and_wraps_long_lines():
    from modalink.cli import HelpFormatter

    text = "One line.\n\n    python train.py --x   # indented, as written\n" + "word " * 30
    lines = HelpFormatter("prog", width=60)._fill_text(text, 60, "  ").splitlines()
    assert lines[:3] == ["  One line.", "", "      python train.py --x   # indented, as written"]
    assert len(lines) > 4 and all(len(line) <= 60 and line.startswith("  word") for line in lines[3:])


def test_unquoted_no_is_the_choice_not_a_bool(tmp_path: Path) -> None:
    """``engine.mixed_precision=no`` (the documented value) reaches a Literal field as YAML's
    False; it must load as the choice "no", from the command line and from a file alike."""
    from modalink.config import load_config, parse_overrides
    from modalink.engine import EngineConfig

    @dataclasses.dataclass
    class Cfg:
        engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)

    cfg = load_config(Cfg, overrides=["engine.mixed_precision=no"])
    assert cfg.engine.mixed_precision == "no"
    assert parse_overrides(["engine.mixed_precision=no"]) == {"engine": {"mixed_precision": False}}
    f = tmp_path / "c.yaml"
    f.write_text("engine:\n  mixed_precision: bf16\n")
    assert load_config(Cfg, f, overrides=["engine.mixed_precision=no"]).engine.mixed_precision == "no"
    with pytest.raises(ConfigError):  # a bool where no choice is spelled like it stays an error
        load_config(Cfg, overrides=["engine.monitor_mode=yes"])


@dataclasses.dataclass
class _Files:
    out: str = path_field("runs/x")
    data: str | None = path_field()
    name: str = "keep/me"


@dataclasses.dataclass
class _Outer:
    files: _Files = dataclasses.field(default_factory=_Files)
    weights: str | None = path_field()


def test_path_fields_are_made_absolute_and_nothing_else(tmp_path: Path) -> None:
    cfg = load_config(_Outer, None, ["files.data=~/d", "weights=w.pt"])
    make_paths_absolute(cfg, tmp_path)
    assert cfg.files.out == str(tmp_path / "runs" / "x") and cfg.weights == str(tmp_path / "w.pt")
    assert cfg.files.data == str(Path("~/d").expanduser()) and cfg.files.name == "keep/me"
    unset = make_paths_absolute(load_config(_Outer), tmp_path)
    assert unset.files.data is None and unset.weights is None
