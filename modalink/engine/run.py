"""Run folders: the resolved config, a log file and a metrics stream for every command."""
from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from modalink.config import save_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ROOT_LOGGER = "modalink"
_BUFFER_LIMIT = 10_000  # records kept for the command's log file until it is attached


class _EarlyRecords(logging.Handler):
    """Keeps the records logged before the command's log file exists (settings, data, cache
    building), so that ``log.txt`` holds them too once :func:`attach_log_file` opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < _BUFFER_LIMIT:
            self.records.append(record)


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (it may be replaced after logging
    is configured, e.g. by a test's output capture)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401 - the current stderr
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _handlers(logger: logging.Logger, kind: str) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "_modalink", None) == kind]


def _add(logger: logging.Logger, handler: logging.Handler, kind: str) -> logging.Handler:
    handler._modalink = kind  # type: ignore[attr-defined]
    logger.addHandler(handler)
    return handler


def configure_logging(is_main: bool = True, *, new_command: bool = False) -> logging.Logger:
    """Configure modalink's logging for this command, once: every ``modalink.*`` logger (modules
    log as ``getLogger(__name__)``) reaches stderr (INFO on the main process, WARNING on the others
    under ``accelerate launch``), and records are kept until :func:`attach_log_file` writes them.
    Calling it again only updates the level; ``new_command=True`` (a command started in the same
    process, e.g. from Python) first detaches the previous command's log file. Returns the
    ``modalink`` logger."""
    logger = logging.getLogger(ROOT_LOGGER)
    if new_command:
        for h in _handlers(logger, "file") + _handlers(logger, "early") + _handlers(logger, "stream"):
            logger.removeHandler(h)
            h.close()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    if not _handlers(logger, "stream"):
        stream = _Stderr()
        stream.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        _add(logger, stream, "stream")
        if is_main and not _handlers(logger, "file"):
            _add(logger, _EarlyRecords(), "early")
    return logger


def attach_log_file(run_dir: str | Path, is_main: bool = True, filename: str = "log.txt") -> Path | None:
    """Write the command's log to ``run_dir/<filename>`` (main process only), starting with the
    records kept since :func:`configure_logging`; a second call moves the log to the new file."""
    logger = configure_logging(is_main)
    for h in _handlers(logger, "file"):
        logger.removeHandler(h)
        h.close()
    early = _handlers(logger, "early")
    for h in early:
        logger.removeHandler(h)
    if not is_main:
        return None
    path = Path(run_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter(LOG_FORMAT))
    for h in early:
        for record in h.records:
            fh.handle(record)
    _add(logger, fh, "file")
    return path


@contextmanager
def log_also_to(path: str | Path, is_main: bool = True) -> Iterator[None]:
    """While the block runs, also write modalink's log to ``path`` (a trainer's own ``log.txt``)."""
    logger = configure_logging(is_main)
    if not is_main:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter(LOG_FORMAT))
    _add(logger, fh, "also")
    try:
        yield
    finally:
        logger.removeHandler(fh)
        fh.close()


def start_run(run_dir: str | Path, config: Any, is_main: bool = True, argv: list[str] | None = None) -> logging.Logger:
    """Create ``run_dir``, write ``config.yaml`` (the resolved config) and start its ``log.txt``
    (with what was logged since the command began); returns the ``modalink`` logger."""
    run_dir = Path(run_dir)
    logger = configure_logging(is_main)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    attach_log_file(run_dir, is_main)
    if is_main:
        logger.info("run folder: %s", run_dir.resolve())
        logger.info("command: %s", " ".join(argv if argv is not None else sys.argv))
    return logger


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line (a whole line per write; readers skip a torn last line)."""
    record = {"time": round(time.time(), 3), **record}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
