"""Shared test fixtures: the two-process launcher and the ``slow`` switch.

``python -m pytest -q`` runs the fast suite (about a minute on 2 cores); tests marked ``slow``
(multi-process launches, end-to-end runs of recipes and README commands, kill-and-resume
matrices) run with ``--slow`` — CI runs everything: ``python -m pytest -q --slow``.
"""
from __future__ import annotations

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
                     help="also run tests marked slow (multi-process, end-to-end, README commands)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def load_script(name: str, path: Path):
    """Import a recipe or benchmark script as module ``name`` (unique: every recipe has a
    train.py); registered in ``sys.modules`` because dataclasses look their module up."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


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
