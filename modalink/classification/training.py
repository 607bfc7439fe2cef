"""Train a classification run's methods one after the other, evaluate them under every
missing-modality condition and finish the run (results, timings, exported networks): the loop the
Chameleon and SRMM commands share. Each recipe says what its methods are (:class:`MethodPlan`)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import torch.nn as nn

    from modalink.engine import EngineConfig, Trainer
    from modalink.engine.session import RunSession

__all__ = ["MethodPlan", "train_methods", "finish_methods"]

log = logging.getLogger(__name__)


@dataclass
class MethodPlan:
    """One method of a run: how to build its trainer module and train it."""

    name: str
    build: Callable[[], "nn.Module"]  # called after seeding (when ``seed`` is set)
    train_set: Any
    engine: "EngineConfig"
    collate_fn: Callable[[list], Any]
    evaluate_fn: Callable[["Trainer"], dict[str, float]] | None = None  # None: keep the last epoch
    seed: int | None = None  # torch seed set right before ``build`` (the same initial weights whatever ran before)
    describe: Callable[["nn.Module"], str] | None = None  # the log line about the method


def train_methods(plans: list[MethodPlan], out: Path) -> tuple[dict[str, "Trainer"], dict[str, dict[str, float]]]:
    """Train each plan in ``out/<name>`` (checkpoints, resume, best epoch on validation); returns the
    trainers and each method's training seconds."""
    import dataclasses

    import torch

    from modalink.engine import Trainer

    trainers: dict[str, Trainer] = {}
    timings: dict[str, dict[str, float]] = {}
    for plan in plans:
        t0 = time.time()
        if plan.seed is not None:
            torch.manual_seed(plan.seed)
        module = plan.build()
        engine = dataclasses.replace(plan.engine)
        if plan.evaluate_fn is None:  # nothing to select on: keep the last epoch
            engine.eval_every_epochs = 0
        trainer = Trainer(module, plan.train_set, engine, out / plan.name, evaluate_fn=plan.evaluate_fn,
                          collate_fn=plan.collate_fn)
        if plan.describe is not None:
            log.info("%s: %s", plan.name, plan.describe(module))
        trainer.fit()
        trainers[plan.name] = trainer
        timings[plan.name] = {"seconds": round(time.time() - t0, 1)}
    return trainers, timings


def finish_methods(run: "RunSession", results: dict[str, Any], trainers: Mapping[str, "Trainer"],
                   timings: Mapping[str, Any], t0: float, *, titles: Mapping[str, str],
                   contract: Callable[[str], Mapping[str, Any]], card_rows: Callable[[str], Mapping[str, Any]]) -> None:
    """Write ``results.{json,md}`` and ``timings.json``, export each method's network to
    ``<run>/<name>/model`` with its card rows, print the table and mark the run finished."""
    from modalink.classification.evaluation import format_table, write_results, write_timings

    out = run.path
    if run.is_main:
        write_results(results, out, titles=titles)
        write_timings({"seconds": round(time.time() - t0, 1), "training": dict(timings)}, out)
        for name, trainer in trainers.items():
            run.export(trainer.model, out / name / "model", contract=contract(name), results=card_rows(name),
                       title=f"modalink {titles[name]}")
        print(format_table(results, titles))
        run.logger.info("results written to %s (%.1f s in all)", out / "results.md", time.time() - t0)
    run.finish()
