"""A tiny training job for the engine tests (run directly or with ``accelerate launch``)."""
from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from modalink.engine import EngineConfig, Trainer


class Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, batch):
        x, y = batch
        loss = ((self.net(x).squeeze(1) - y) ** 2).mean()
        return {"loss": loss}


class KillAfter:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.state.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--kill-after-step", type=int, default=0)
    p.add_argument("--checkpoint-every-steps", type=int, default=0)
    a = p.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 8, generator=g)
    w = torch.randn(8, generator=g)
    y = x @ w + 0.1 * torch.randn(320, generator=g)
    train, val = TensorDataset(x[:256], y[:256]), TensorDataset(x[256:], y[256:])
    torch.manual_seed(0)
    cfg = EngineConfig(epochs=a.epochs, batch_size=32, lr=0.01, optimizer="sgd", scheduler="cosine",
                       seed=1, cpu=True, progress=False, monitor="mse", monitor_mode="min",
                       checkpoint_every_steps=a.checkpoint_every_steps, keep_checkpoints=3)

    def evaluate(trainer: Trainer) -> dict[str, float]:
        res = trainer.predict(val, lambda m, b: {"err": (m.net(b[0]).squeeze(1) - b[1]) ** 2,
                                                 "n": torch.ones_like(b[1])})
        assert len(res["err"]) == len(val), len(res["err"])
        return {"mse": float(res["err"].mean())}

    cbs = [KillAfter(a.kill_after_step)] if a.kill_after_step else []
    trainer = Trainer(Regression(), train, cfg, a.run_dir, evaluate_fn=evaluate, callbacks=cbs)
    result = trainer.fit()
    last = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    if trainer.is_main:
        torch.save({"weights": last, "history": result.history, "best": result.best_metric,
                    "resumed": result.resumed_from, "final_mse": evaluate(trainer)["mse"]}, a.out)
    else:
        evaluate(trainer)


if __name__ == "__main__":
    sys.exit(main())
