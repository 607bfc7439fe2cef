"""Engine: 1 vs 2 processes give the same result; a killed run resumes to the same weights."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

JOB = Path(__file__).resolve().parents[1] / "jobs" / "engine_job.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

from conftest import launch_2proc  # noqa: E402


def _run(args: list[str], launcher: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + [str(JOB)] + args
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def _load(p: Path) -> dict:
    return torch.load(p, weights_only=True)


def test_two_processes_match_one(tmp_path: Path) -> None:
    _run(["--run-dir", str(tmp_path / "one"), "--out", str(tmp_path / "one.pt")])
    _run(["--run-dir", str(tmp_path / "two"), "--out", str(tmp_path / "two.pt")], launch_2proc(tmp_path))
    one, two = _load(tmp_path / "one.pt"), _load(tmp_path / "two.pt")
    assert (tmp_path / "two" / "checkpoints").is_dir()
    assert any(p.name == "random_states_1.pkl" for p in (tmp_path / "two").rglob("*")), "not 2 processes"
    assert one["final_mse"] == pytest.approx(two["final_mse"], rel=1e-5, abs=1e-6)
    for k in one["weights"]:
        torch.testing.assert_close(one["weights"][k], two["weights"][k], rtol=1e-5, atol=1e-6)
    for a, b in zip(one["history"], two["history"]):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-5)
    assert (tmp_path / "one" / "config.yaml").exists() is False  # the engine does not own config.yaml
    assert (tmp_path / "one" / "log.txt").read_text().count("epoch 3/3") == 1


def test_killed_run_resumes_to_same_weights(tmp_path: Path) -> None:
    _run(["--run-dir", str(tmp_path / "ref"), "--out", str(tmp_path / "ref.pt"), "--checkpoint-every-steps", "5"])
    res = _run(["--run-dir", str(tmp_path / "cut"), "--out", str(tmp_path / "cut.pt"),
                "--checkpoint-every-steps", "5", "--kill-after-step", "13"], check=False)
    assert res.returncode != 0 and not (tmp_path / "cut.pt").exists()
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert "step_10" in ckpts and not any(n.endswith(".tmp") and "10" in n for n in ckpts)
    _run(["--run-dir", str(tmp_path / "cut"), "--out", str(tmp_path / "cut.pt"), "--checkpoint-every-steps", "5"])
    ref, cut = _load(tmp_path / "ref.pt"), _load(tmp_path / "cut.pt")
    assert cut["resumed"] is not None and cut["resumed"].endswith("step_10")
    for k in ref["weights"]:
        torch.testing.assert_close(ref["weights"][k], cut["weights"][k], rtol=0, atol=1e-6)
    assert ref["best"] == pytest.approx(cut["best"], abs=1e-7)


class _Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, batch: dict) -> dict:
        return {"loss": torch.nn.functional.mse_loss(self.lin(batch["x"]).squeeze(-1), batch["y"])}


class _Rows(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 4, generator=g)
        self.y = self.x.sum(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def _fit(run_dir: Path, epochs: int = 3) -> list[int]:
    import json

    from modalink.engine import EngineConfig, Trainer

    torch.manual_seed(0)
    cfg = EngineConfig(epochs=epochs, batch_size=8, cpu=True, progress=False, keep_checkpoints=5,
                       eval_every_epochs=0, fused_optimizer=False)
    Trainer(_Regression(), _Rows(), cfg, run_dir).fit()
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metrics_after_a_checkpoint_fallback_hold_only_the_resumed_history(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _fit(run) == [1, 2, 3]
    first = (run / "metrics.jsonl").read_text().splitlines()
    latest = run / "checkpoints" / "step_12" / "model.safetensors"
    latest.write_bytes(latest.read_bytes()[:40])  # damaged: set aside, epoch 3 is trained again from step_8
    assert _fit(run) == [1, 2, 3]
    assert (run / "checkpoints" / "damaged_step_12").is_dir()
    assert (run / "metrics.jsonl").read_text().splitlines()[:2] == first[:2]  # earlier lines kept as written
