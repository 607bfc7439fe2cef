"""Shared test set-up: tiers, isolation, the one script loader and the two-process launcher.

Tests live in three tiers: ``tests/unit`` (library units), ``tests/recipes`` (commands on tiny
data) and ``tests/consistency`` (invariance across batch, process and thread counts, multi-process
launches, README commands, kill-and-resume matrices). The consistency tier is the slow one: it is
chosen by folder, not by decorator. ``python -m pytest -q`` runs the fast tiers; ``--slow`` adds
the consistency tier (CI runs ``python -m pytest -q --slow``); naming a slow folder or file on the
command line runs it too.

Every test runs isolated (an autouse fixture): empty weight caches in a temporary home, downloads
forbidden, no connection leaving the machine, and modalink's logging reset afterwards.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

import pytest

ACCELERATE_2PROC = """\
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_CPU
num_machines: 1
num_processes: 2
machine_rank: 0
mixed_precision: 'no'
use_cpu: true
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the slow tier, tests/consistency (multi-process, invariance, README commands)")


TIERS = ("unit", "recipes", "consistency")
SLOW_TIERS = ("consistency",)
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# a slow test reuses the fixtures and helpers of the fast test module it extends (test_<name> names are unique)
for _tier in TIERS:
    if str(TESTS / _tier) not in sys.path:
        sys.path.insert(0, str(TESTS / _tier))


def _in_slow_tier(path: Path) -> bool:
    try:
        return path.resolve().relative_to(TESTS).parts[0] in SLOW_TIERS
    except (ValueError, IndexError):
        return False


def _asked(config: pytest.Config) -> list[Path]:
    return [Path(a.split("::")[0]).resolve() for a in config.args]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without ``--slow`` the slow tier is not even imported, unless named on the command line."""
    if config.getoption("--slow") or not _in_slow_tier(collection_path):
        return None
    named = any(a == collection_path or collection_path in a.parents or a in collection_path.parents and a != TESTS
                and a != REPO for a in _asked(config))
    return None if named else True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    asked = [Path(a.split("::")[0]).resolve() for a in config.args]
    skip = pytest.mark.skip(reason="slow tier (tests/consistency): run with --slow (CI does)")
    for item in items:
        path = Path(str(item.fspath))
        chosen = any(a != TESTS and a in (path, *path.parents) and _in_slow_tier(a if a.suffix else a / "x")
                     for a in asked)
        if _in_slow_tier(path) and not chosen:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No real weight cache, no download, no connection beyond this machine; logging reset after."""
    import logging

    home = tmp_path_factory.mktemp("home")
    for var, sub in (("MODALINK_HOME", "modalink"), ("TORCH_HOME", "torch"), ("HF_HOME", "hf"),
                     ("HF_HUB_CACHE", "hf/hub"), ("XDG_CACHE_HOME", "cache")):
        monkeypatch.setenv(var, str(home / sub))
    for var in ("MODALINK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    real_connect = socket.socket.connect

    def local_only(sock: socket.socket, address) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
            raise AssertionError(f"a test tried to connect to {address}: tests never use the network")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    yield
    logger = logging.getLogger("modalink")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate, logger.level = True, logging.NOTSET


def load_script(path: str | Path, name: str | None = None):
    """The one way tests import a recipe or script: ``load_script("recipes/fame/prepare.py")``
    (relative to the repository). The module is registered in ``sys.modules`` under ``name``
    (default: from its path, e.g. ``script_recipes_fame_prepare``) because dataclasses look their
    module up; loading the same path again returns the same module."""
    import importlib.util

    path = Path(path)
    full = path if path.is_absolute() else REPO / path
    name = name or "script_" + "_".join(full.resolve().relative_to(REPO).with_suffix("").parts)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, full)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@contextlib.contextmanager
def lock_held_elsewhere(folder: Path, holder: str = "pid 4242 on elsewhere"):
    """Hold ``folder/.lock`` as another job would (flock on an open file, its holder record
    written), for tests of the refusal every modalink command gives a busy output folder."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    lock.write_text(holder + "\n")
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield lock
    finally:
        os.close(fd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_2proc(tmp: Path) -> list[str]:
    """``accelerate launch`` with a temporary config file (never the user's) and 2 CPU processes.

    Accelerate's ``--cpu`` launcher starts ONE process unless MPI is used; the torchrun-based
    launcher (``--multi_gpu``) runs N processes with the gloo backend on a CPU-only machine.
    """
    cfg = tmp / "accelerate_2proc.yaml"
    cfg.write_text(ACCELERATE_2PROC)
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--multi_gpu",
            "--num_processes", "2", "--num_machines", "1", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port())]


@pytest.fixture()
def two_process_launcher(tmp_path: Path) -> list[str]:
    """The command prefix that runs a script in two CPU processes."""
    return launch_2proc(tmp_path)
