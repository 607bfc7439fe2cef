"""Progress bars on a terminal, nothing in log files.

tqdm redraws its bar with carriage returns; written to a file (``> log.txt 2>&1``, a batch
scheduler's log) that becomes thousands of partial lines. :func:`progress_bar` shows a bar only
when ``enabled`` AND stderr is a terminal; the per-epoch log lines carry the progress in files.
``MODALINK_PROGRESS=1`` forces bars, ``=0`` turns them off.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar", "bars_enabled", "announce"]


def bars_enabled(enabled: bool = True) -> bool:
    """Whether a bar asked for with ``enabled`` is shown."""
    forced = os.environ.get("MODALINK_PROGRESS", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return bool(enabled)
    try:
        return bool(enabled) and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(*args: Any, enabled: bool = True, **kwargs: Any) -> Any:
    """``tqdm(*args, **kwargs)``, shown only where :func:`bars_enabled` says so."""
    kwargs.pop("disable", None)
    return tqdm(*args, disable=not bars_enabled(enabled), **kwargs)


def announce(message: str) -> None:
    """Print ``message`` on stderr at once, from the main process only (``RANK`` unset or 0): what a
    command is doing before its log starts (imports, a synthetic set, reading features)."""
    if os.environ.get("RANK", "0") in ("", "0"):
        print(message, file=sys.stderr, flush=True)
