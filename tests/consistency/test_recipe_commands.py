"""Every user-facing command of every recipe answers ``--help`` and takes the common flags of
modalink.cli (built with command_parser / recipe_parser, so they cannot drift apart)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the recipes' commands: scripts with a ``__main__`` block
COMMANDS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "recipes").glob("*/*.py")
                  if '__name__ == "__main__"' in p.read_text(encoding="utf-8"))


def test_the_command_list_is_complete():
    assert "recipes/fame/prepare.py" in COMMANDS and "recipes/recsys/query.py" in COMMANDS
    assert len(COMMANDS) >= 12


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_lists_the_common_flags(cmd):
    res = subprocess.run([sys.executable, cmd, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("usage:") and "--debug" in res.stdout, res.stdout[:500]
