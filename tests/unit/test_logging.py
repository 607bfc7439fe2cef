"""Logging is configured once per command: every modalink module logs by its own name, nothing
logged before the run folder exists is lost, and each Trainer also keeps its own log."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from modalink.engine import EngineConfig, Trainer, start_run


class _Mean(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def forward(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(self.w(x).squeeze(-1), y)}


def test_one_log_holds_early_messages_and_every_trainer(tmp_path: Path) -> None:
    early = logging.getLogger("modalink.classification.embeddings")
    from modalink.engine.run import configure_logging

    configure_logging(new_command=True)
    early.info("cache built before the run folder")  # e.g. SRMM's embeddings, before start_run
    out = tmp_path / "run"
    log = start_run(out, {"a": 1}, argv=["train.py"])
    log.info("after the start")
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(2, generator=g), torch.randn((), generator=g)) for _ in range(8)]
    cfg = EngineConfig(epochs=2, batch_size=4, cpu=True, num_threads=1, checkpoint_every_epochs=0)
    for name in ("a", "b"):
        Trainer(_Mean(), data, cfg, out / name).fit()
    logging.getLogger("modalink.recsys.towers").info("after training")
    text = (out / "log.txt").read_text()
    assert [ln.split(": ", 1)[1] for ln in text.splitlines()[:1]] == ["cache built before the run folder"]
    assert "modalink.classification.embeddings" in text.splitlines()[0]
    assert text.count("epoch 2/2") == 2 and "after training" in text
    for name in ("a", "b"):
        own = (out / name / "log.txt").read_text()
        assert own.count("epoch 2/2") == 1 and "before the run folder" not in own and "after training" not in own
