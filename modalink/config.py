"""One config style: dataclasses, filled from YAML files and ``key=value`` overrides.

* YAML is read with ``yaml.safe_load``: configs never execute code.
* Unknown keys are errors that name the file (or override) and list the known keys.
* Fields without a default are required; a missing one names the key and how to set it.
* Nested dataclasses are addressed with dots: ``engine.lr=3e-4``.
* Values are checked when the config is loaded, before any data is read: ``Literal`` types
  are choices, :func:`bounded` fields carry ranges (``epochs >= 1``, ``0 <= dropout < 1``), and
  a dataclass may define ``validate_config(self)`` raising ``ValueError("key: why")`` for
  checks across fields or against a registry.
* "Not set" has one spelling: ``None`` (YAML ``null``; ``key=null`` or an empty ``key=`` on the
  command line), typed ``X | None = None``; the code then derives the value.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from modalink.errors import InputError
from modalink.io import atomic_write_text

T = TypeVar("T")


class ConfigError(InputError):
    """A config file or override that does not match its schema."""


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Any:
    """A dataclass field with a numeric range, checked by :func:`load_config`:
    ``epochs: int = bounded(10, ge=1)``."""
    return dataclasses.field(default=default, metadata={"range": (ge, gt, le, lt)})


def optional(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
             lt: float | None = None) -> Any:
    """A ``X | None`` field whose ``None`` means "not set" (the code derives the value), with an
    optional range for set values: ``face_dim: int | None = optional(ge=1)``."""
    return dataclasses.field(default=None, metadata={"range": (ge, gt, le, lt)})


class _Empty(str):
    """The value of an empty ``key=`` override: "not set" for a ``X | None`` field, ``""`` for a string."""


EMPTY = _Empty("")


def path_field(default: str | None = None) -> Any:
    """A file or folder setting (``str | None``): :func:`make_paths_absolute` resolves it against
    the folder the command runs in, so a run's ``config.yaml`` names the same files from anywhere."""
    return dataclasses.field(default=default, metadata={"path": True})


def absolute_path(path: str | os.PathLike | None, base: str | os.PathLike | None = None) -> str | None:
    """``path`` as an absolute, normalised string (a relative one taken from ``base``, default the
    current folder, ``~`` expanded); ``None`` and ``""`` are returned as they are."""
    if path is None or str(path) == "":
        return None if path is None else str(path)
    b = Path(os.path.abspath(base if base is not None else os.getcwd()))
    p = Path(path).expanduser()
    return os.path.normpath(p if p.is_absolute() else b / p)


def make_paths_absolute(cfg: T, base: str | os.PathLike | None = None) -> T:
    """Make every :func:`path_field` of ``cfg`` (and of its sections) absolute, in place; returns ``cfg``."""
    for f in dataclasses.fields(cfg):  # type: ignore[arg-type]
        value = getattr(cfg, f.name)
        if f.metadata.get("path") and isinstance(value, str):
            setattr(cfg, f.name, absolute_path(value, base))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            make_paths_absolute(value, base)
    return cfg


def _check_range(value: Any, rng: tuple, where: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    ge, gt, le, lt = rng
    parts = []
    if ge is not None:
        parts.append(f">= {ge}")
    if gt is not None:
        parts.append(f"> {gt}")
    if le is not None:
        parts.append(f"<= {le}")
    if lt is not None:
        parts.append(f"< {lt}")
    ok = ((ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
          and (lt is None or value < lt))
    if not ok:
        raise ConfigError(f"{where}: {value!r} is out of range; it must be {' and '.join(parts)}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the annotated type; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(value, _Empty) and not (origin in (typing.Union, types.UnionType) and type(None) in args):
        value = ""  # an empty key= for a field that cannot be "not set"
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if (value is None or isinstance(value, _Empty)) and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in args):
            # YAML 1.1 reads an unquoted no/off/yes/on as a bool: take the choice the user spelled
            spelled = [a for a in (("yes", "on", "true", "y") if value else ("no", "off", "false", "n")) if a in args]
            value = spelled[0] if spelled else value
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if _is_dataclass_type(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return _build(tp, dict(value), where)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args and args[-1] is not Ellipsis or (args and len(args) == 2) else Any
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        out = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple or tp is tuple else out
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-3" as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(types_)}"
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where and not where.endswith(":") else f"{where} {f.name}"
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = _coerce(value, types_[f.name], key)
            if "range" in f.metadata:
                _check_range(kwargs[f.name], f.metadata["range"], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if _is_dataclass_type(types_[f.name]):
                kwargs[f.name] = _build(types_[f.name], {}, key)
            else:
                raise ConfigError(
                    f"required key {f.name!r} is missing ({where}); set it in the YAML file or "
                    f"on the command line as {f.name}=VALUE"
                )
    obj = cls(**kwargs)
    check = getattr(obj, "validate_config", None)
    if callable(check):
        try:
            check()
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"{where.rstrip(':')}: {e}") from None
    return obj


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` → ``{"a": {"b": 3}, "c": [1, 2]}`` (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else EMPTY
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from None
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return tree


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping (safe loader); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    defaults: Mapping[str, Any] | None = None,
    *,
    file_data: Mapping[str, Any] | None = None,
) -> T:
    """Build a ``cls`` dataclass from ``defaults`` ← YAML ``path`` ← ``overrides`` (later wins).

    ``file_data``: the contents of ``path`` when the caller has read it already (with
    :func:`read_yaml`); ``path`` then only names the file in messages."""
    data: dict[str, Any] = dict(defaults or {})
    where = cls.__name__
    if path is not None:
        data = _merge(data, read_yaml(path) if file_data is None else file_data)
        where = str(path)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        where = f"{where} + command-line overrides" if path is not None else "command-line overrides"
    return _build(cls, data, where + ":")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain-YAML-safe dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically."""
    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
