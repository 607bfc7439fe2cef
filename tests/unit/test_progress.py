"""Progress bars only on a terminal: a log file gets one line per epoch, not thousands of \\r."""
from __future__ import annotations

import io
import sys

from modalink.progress import bars_enabled, progress_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("MODALINK_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not bars_enabled(True)
    for _ in progress_bar(range(50), desc="x"):
        pass
    assert "\r" not in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert bars_enabled(True) and not bars_enabled(False)
    monkeypatch.setenv("MODALINK_PROGRESS", "0")
    assert not bars_enabled(True)
    monkeypatch.setenv("MODALINK_PROGRESS", "1")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert bars_enabled(True)
