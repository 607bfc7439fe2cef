"""The run sequence every training command follows, as one context manager.

    with run_session(out, cfg, recipe="srmm", mode=resume_mode(args), entries=ENTRIES) as run:
        data = ...                        # read and check the data
        run.bind_data(fingerprint)        # another run's data is refused here
        log = run.start()                 # run.json, config.yaml, log.txt (with what was logged so far)
        ...                               # the recipe's own loop of Trainers
        run.export(objective, out / "model", contract=..., results=...)
        run.finish(mean_eer=...)

The order is fixed here, once: process group (the Trainers' CPU decision) → folder locked and its
contract checked (refused before anything is written) → data bound → started → trained → exported
→ finished. A run that fails before it records any training is rolled back (see
:class:`~modalink.engine.run_folder.RunFolder`). Every trained objective exposes the network it
exports as ``.network``; :meth:`RunSession.export` is the one export call.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from modalink.engine.run_folder import ResumeMode, RunFolder

__all__ = ["RunSession", "run_session", "exported_network"]


def exported_network(trained: Any) -> Any:
    """The network to export: a trained objective's ``.network`` (unwrapped from Accelerate/DDP), or
    the network itself when ``trained`` is one built by :func:`modalink.models.create_model`."""
    inner = getattr(trained, "module", trained)  # DistributedDataParallel keeps the objective in .module
    network = getattr(inner, "network", None)
    if network is None and getattr(inner, "model_spec", None):
        return inner
    if network is None:
        raise TypeError(f"{type(inner).__name__} has no .network: a trained objective names the network it "
                        f"exports as .network")
    return network


@dataclass
class RunSession:
    """One command's run: its folder (:class:`RunFolder`), process state and resolved config."""

    path: Path
    config: Any
    state: Any
    folder: RunFolder
    argv: list[str] | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("modalink"))

    @property
    def is_main(self) -> bool:
        return bool(self.state.is_main_process)

    @property
    def resumed(self) -> bool:
        return self.folder.resumed

    @property
    def contract_config(self) -> dict[str, Any]:
        """The config recorded in ``run.json`` (what exported models carry)."""
        return self.folder.contract["config"]

    def bind_data(self, fingerprint: Mapping[str, Any]) -> None:
        """Record (new run) or check (resumed run) the data's fingerprint; collective."""
        self.folder.bind_data(fingerprint)

    def start(self) -> logging.Logger:
        """Write ``run.json``, ``config.yaml`` and start ``log.txt``; returns the ``modalink`` logger."""
        from modalink.engine.run import start_run

        self.folder.start()
        self.logger = start_run(self.path, self.config, self.is_main, argv=self.argv)
        if self.folder.resumed:
            self.logger.info("resuming the run in %s (same config and data)", self.path)
        return self.logger

    def export(self, trained: Any, folder: str | os.PathLike, *, contract: Mapping[str, Any] | None = None,
               results: Mapping[str, Any] | None = None, title: str | None = None) -> Path | None:
        """Export a trained objective's ``.network`` (or a network itself, see :func:`exported_network`)
        with :func:`modalink.hub.save_pretrained` and the run's config (main process; others return ``None``)."""
        if not self.is_main:
            return None
        from modalink.hub import save_pretrained

        return save_pretrained(exported_network(trained), folder, contract=contract, config=self.contract_config,
                               results=results, title=title)

    def finish(self, **summary: Any) -> None:
        """Mark the run finished in ``run.json`` (main process), then wait for every process."""
        self.folder.finish(**summary)
        self.state.wait_for_everyone()


@contextmanager
def run_session(path: str | os.PathLike, config: Any, *, recipe: str, mode: ResumeMode = "auto",
                engine: Any = None, entries: Iterable[str] = (), ignore: Iterable[str] = (),
                reusable: Iterable[str] = (), argv: list[str] | None = None) -> Iterator[RunSession]:
    """Open ``path`` as the run folder of ``recipe`` for ``config`` (a config dataclass with an
    ``engine`` section, or pass ``engine``), under the run contract: another config, other data or
    another process count is refused before anything is written. Collective under ``accelerate
    launch``. ``argv`` (the command's arguments) is logged; default ``sys.argv``."""
    from modalink.config import to_dict
    from modalink.engine.trainer import process_state

    from modalink.engine.run import configure_logging

    state = process_state(engine if engine is not None else config.engine)
    configure_logging(state.is_main_process, new_command=True)  # log.txt gets what follows at start()
    with RunFolder.open(path, to_dict(config), mode=mode, processes=state.num_processes,
                        is_main=state.is_main_process, ignore=ignore, entries=entries, recipe=recipe,
                        reusable=reusable) as folder:
        yield RunSession(Path(path).absolute(), config, state, folder,
                         argv=list(sys.argv) if argv is None else [sys.argv[0], *argv])
