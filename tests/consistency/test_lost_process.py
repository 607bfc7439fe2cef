"""A distributed job whose peer is killed or frozen ends with one clear line, within the
collective timeout (engine.collective_timeout_s), instead of hanging for torch's 30 minutes or
printing 'internal error'."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import launch_2proc  # noqa: E402

from modalink.errors import LostProcessError, is_user_error, lost_process_error  # noqa: E402

JOB = Path(__file__).resolve().parents[1] / "jobs" / "peer_job.py"
ROOT = Path(__file__).resolve().parents[2]


def test_lost_process_error_only_for_a_distributed_peer(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    err = lost_process_error(RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:5"))
    assert isinstance(err, LostProcessError) and is_user_error(err)
    assert "lost process 1 (of 2)" in str(err) and "run the same command to resume" in str(err)
    err = lost_process_error(RuntimeError("[gloo] Timed out waiting 5000ms for recv operation to complete"))
    assert "process 1 (of 2) stopped answering" in str(err)
    assert lost_process_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    assert lost_process_error(ValueError("Connection closed by peer")) is None  # not from a collective
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert lost_process_error(RuntimeError("Connection closed by peer")) is None  # one process: no peer


def _run_until_error_line(cmd: list[str], deadline_s: float) -> tuple[str, float]:
    """Start the job in its own session, wait for its one error line (or the deadline), then stop
    every process of it (a frozen peer would otherwise keep the launcher waiting)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    try:
        assert proc.stdout is not None
        while time.monotonic() - t0 < deadline_s:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("error:"):
                break
    finally:
        elapsed = time.monotonic() - t0
        _kill_tree(proc)
    return "".join(lines), elapsed


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it: the workers run in process groups of their
    own, and a stopped (frozen) worker would otherwise outlive the test."""
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in [*tree, proc]:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


@pytest.mark.parametrize("mode,expect", [("kill", "lost process 1 (of 2)"),
                                         ("stop", "process 1 (of 2) stopped answering")])
def test_killed_or_frozen_peer_ends_with_one_line(tmp_path, mode, expect):
    out, elapsed = _run_until_error_line([*launch_2proc(tmp_path), str(JOB), mode, "8"], deadline_s=240)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    if not errors and mode == "kill":
        # a race modalink cannot win every time: the launcher saw process 1 die and stopped process 0
        # before its collective failed; then the launcher's own summary names the lost process
        import re

        assert re.search(r"rank\s*:\s*1\b.*?exitcode\s*:\s*-9", out, re.S), out[-3000:]
        return
    assert errors, out[-3000:]
    assert expect in errors[0], errors[0]
    assert "internal error" not in errors[0]


def test_frozen_peer_on_another_node_ends_with_one_line(tmp_path):
    """Two nodes on localhost (one process each, as the FAME README's multi-machine commands): the
    node whose peer freezes reports it within the collective timeout."""
    from conftest import ACCELERATE_2PROC, _free_port

    cfg = tmp_path / "accelerate_2nodes.yaml"
    cfg.write_text(ACCELERATE_2PROC)
    port = str(_free_port())

    def node(rank: int) -> list[str]:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--multi_gpu",
                "--num_processes", "2", "--num_machines", "2", "--machine_rank", str(rank),
                "--main_process_ip", "127.0.0.1", "--main_process_port", port, "--dynamo_backend", "no",
                str(JOB), "stop", "8"]

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    other = subprocess.Popen(node(1), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        out, _ = _run_until_error_line(node(0), deadline_s=240)
    finally:
        _kill_tree(other)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors, out[-3000:]
    assert "process 1 (of 2) stopped answering" in errors[0], errors[0]


def test_no_worker_of_these_tests_outlives_them():
    """Runs after the launches above (file order): no stopped peer_job worker is left behind."""
    import psutil

    left = [p for p in psutil.process_iter(["cmdline"]) if any(str(JOB) == c for c in (p.info["cmdline"] or []))]
    assert not left, [p.pid for p in left]
