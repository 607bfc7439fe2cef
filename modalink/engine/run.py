"""Run folders: the resolved config, a log file and a metrics stream for every command."""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from modalink.config import save_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(run_dir: str | Path | None, is_main: bool = True, name: str = "modalink",
                  filename: str = "log.txt") -> logging.Logger:
    """Log to stderr and (main process) to ``run_dir/<filename>``; safe to call twice."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    for h in list(logger.handlers):
        if getattr(h, "_modalink", False):
            logger.removeHandler(h)
            h.close()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
    stream._modalink = True  # type: ignore[attr-defined]
    logger.addHandler(stream)
    if run_dir is not None and is_main:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(Path(run_dir) / filename, encoding="utf-8")
        fh.setFormatter(logging.Formatter(LOG_FORMAT))
        fh._modalink = True  # type: ignore[attr-defined]
        logger.addHandler(fh)
    return logger


def start_run(run_dir: str | Path, config: Any, is_main: bool = True, argv: list[str] | None = None,
              log_name: str = "modalink") -> logging.Logger:
    """Create ``run_dir``, write ``config.yaml`` (the resolved config) and start the log."""
    run_dir = Path(run_dir)
    logger = setup_logging(run_dir, is_main, log_name)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        logger.info("run folder: %s", run_dir.resolve())
        logger.info("command: %s", " ".join(argv if argv is not None else sys.argv))
    return logger


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line (a whole line per write; readers skip a torn last line)."""
    record = {"time": round(time.time(), 3), **record}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
