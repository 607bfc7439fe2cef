"""The training loop reads the loss back only when it shows it, before a checkpoint and at the end
of an epoch (no host sync per step), yet a NaN/inf loss still stops the run before anything is
saved from it, naming the steps."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from modalink.engine import EngineConfig, Trainer
from modalink.engine.trainer import DivergedError


class Regression(nn.Module):
    """MSE regression whose loss is NaN from training step ``nan_from`` on (1-based)."""

    def __init__(self, nan_from: int | None = None) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.nan_from = nan_from
        self.steps = 0

    def forward(self, batch):
        x, y = batch
        loss = ((self.lin(x).squeeze(1) - y) ** 2).mean()
        if self.training:
            self.steps += 1
            if self.nan_from is not None and self.steps >= self.nan_from:
                loss = loss * float("nan")
        return {"loss": loss}


def _data(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(1))


def _cfg(**kw) -> EngineConfig:
    base = dict(epochs=2, batch_size=8, lr=1e-2, cpu=True, progress=False, eval_every_epochs=0,
                log_every_steps=50, checkpoint_every_epochs=1)
    return EngineConfig(**{**base, **kw})


def test_a_nan_loss_stops_the_run_before_the_epoch_is_checkpointed(tmp_path):
    trainer = Trainer(Regression(nan_from=3), _data(), _cfg(), tmp_path / "run")
    with pytest.raises(DivergedError, match=r"NaN or inf at epoch 1, steps 1-8"):
        trainer.fit()
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_a_nan_loss_is_caught_at_the_next_shown_loss_or_checkpoint(tmp_path):
    trainer = Trainer(Regression(nan_from=3), _data(), _cfg(log_every_steps=2), tmp_path / "a")
    with pytest.raises(DivergedError, match=r"epoch 1, steps 3-4"):
        trainer.fit()
    trainer = Trainer(Regression(nan_from=6), _data(), _cfg(checkpoint_every_steps=3), tmp_path / "b")
    with pytest.raises(DivergedError, match=r"epoch 1, steps 4-6"):
        trainer.fit()
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step_3"]


def test_finite_training_records_no_skipped_steps(tmp_path):
    result = Trainer(Regression(), _data(), _cfg(), tmp_path / "ok").fit()
    assert len(result.history) == 2 and all("skipped_steps" not in r for r in result.history)
    assert result.history[1]["train/loss"] < result.history[0]["train/loss"]
