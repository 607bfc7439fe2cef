"""One error style for every modalink command.

A *user error* (bad setting, bad or missing file, full disk, refused run folder) ends a
command with ONE line on stderr — ``error: <what>, <where>, <what to do>`` — and exit code 2.
The traceback is shown only with ``MODALINK_DEBUG=1`` (or a command's ``--debug`` flag).
Under ``accelerate launch`` only the main process prints the line, so the real message is
not buried under N copies; every process still exits non-zero.

Which errors are the user's is decided by class alone (:func:`is_user_error`): a
:class:`UserError` — :class:`InputError` (a setting or argument that does not fit; also a
``ValueError``), :class:`FileFormatError` (a malformed input file, with path / line / column),
:class:`UnknownNameError` (a name no registry knows; also a ``KeyError``) or a subclass defined
where it is raised — or an ``OSError`` (missing file, permission, full disk). Anything else is a
bug: one line as well, exit code 1, and a hint to rerun with ``MODALINK_DEBUG=1`` for the
traceback. This module imports nothing from modalink, so every module can import it.

:func:`failpoint` is a test hook: ``MODALINK_FAILPOINTS="name:N,..."`` kills the process
(SIGKILL, like an out-of-memory kill or a power cut) the N-th time ``name`` is reached. It
costs one dictionary look-up when unset.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["UserError", "InputError", "FileFormatError", "UnknownNameError", "LostProcessError", "is_user_error",
           "run_cli", "failpoint", "debug_enabled"]


class UserError(Exception):
    """An error the user can fix (input, settings, environment); printed as one line."""


class InputError(UserError, ValueError):
    """A value the user gave (setting, option, argument) that does not fit; says which and why."""


class FileFormatError(UserError, ValueError):
    """A malformed input file; ``path``, ``line`` and ``column`` (1-based, when known) say where.

    The message reads ``<path>, line <n>, column <c>: <message>``; subclasses may lay out the
    location differently by overriding :meth:`location`.
    """

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None,
                 column: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.detail = message
        super().__init__(f"{self.location()}: {message}")

    def location(self) -> str:
        """Where the problem is, as the message shows it."""
        where = str(self.path)
        if self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column {self.column}"
        return where


class UnknownNameError(UserError, KeyError):
    """A name that no registry (model, encoder, dataset, ...) knows; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class LostProcessError(UserError):
    """Another process of a distributed job was killed, crashed or stopped answering: not a bug of
    this process, and the run folder keeps its last checkpoint."""


# what torch.distributed's backends (gloo, NCCL, the TCP store) say when a peer is gone or silent
_PEER_SIGNS = ("connection reset by peer", "connection closed by peer", "broken pipe", "timed out", "timeout",
               "socket closed", "connection refused", "watchdog", "nccl error")


def lost_process_error(exc: BaseException) -> LostProcessError | None:
    """A :class:`LostProcessError` for an exception raised by a collective of a distributed job
    whose peer is gone or unresponsive, else ``None``. Only inside a job of several processes
    (``WORLD_SIZE`` > 1) and only for torch's own distributed errors or a ``RuntimeError`` that
    names a lost connection or a timeout; reads torch from ``sys.modules`` (never imports it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        return None
    if world < 2 or isinstance(exc, UserError):
        return None
    module = type(exc).__module__ or ""
    text = " ".join(str(exc).split())
    from_torch = module.startswith("torch.distributed") or type(exc).__name__.startswith("Dist")
    if not (from_torch or (isinstance(exc, RuntimeError) and any(k in text.lower() for k in _PEER_SIGNS))):
        return None
    rank = os.environ.get("RANK", "?")
    others = "process 1" if (world == 2 and rank == "0") else "process 0" if (world == 2 and rank == "1") \
        else f"one of the other {world - 1} processes"
    silent = "time" in text.lower()
    what = (f"{others} (of {world}) stopped answering for longer than the collective timeout "
            "(engine.collective_timeout_s; prepare.py --collective-timeout)" if silent
            else f"lost {others} (of {world}): it was killed or crashed")
    detail = text if len(text) <= 160 else text[:157] + "..."
    return LostProcessError(f"{what} (seen by process {rank}: {detail}); the run folder keeps its last checkpoint: "
                            "run the same command to resume once every process can run")


def debug_enabled() -> bool:
    """Whether tracebacks are shown (``MODALINK_DEBUG`` set to anything but 0/false/no)."""
    return os.environ.get("MODALINK_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def is_user_error(exc: BaseException) -> bool:
    """Errors caused by input or environment rather than by a bug: decided by class alone."""
    return isinstance(exc, (UserError, OSError))


def _is_main_process() -> bool:
    # set by torchrun / accelerate launch; a plain `python` run is the main process
    return os.environ.get("RANK", "0") in ("", "0")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and "no space" not in text.lower():
        text = f"no space left on the device ({text}); free some space and run again"
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    return " ".join(text.split())


def run_cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main(argv)`` with the one error style; returns the exit code.

    ``--debug`` anywhere in ``argv`` (or ``MODALINK_DEBUG=1``) re-raises instead, so the full
    traceback is shown.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" not in args:
        return _run_cli(main, args)
    args.remove("--debug")
    before = os.environ.get("MODALINK_DEBUG")
    os.environ["MODALINK_DEBUG"] = "1"
    try:
        return _run_cli(main, args)
    finally:  # a --debug call in a long-lived process (a test session) does not outlive it
        if before is None:
            os.environ.pop("MODALINK_DEBUG", None)
        else:
            os.environ["MODALINK_DEBUG"] = before


def _run_cli(main: Callable[[Sequence[str] | None], Any], args: list[str]) -> int:
    try:
        result = main(args)
    except KeyboardInterrupt:
        print("error: interrupted; the run folder keeps its last checkpoint, run the same command to resume",
              file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        if debug_enabled():
            traceback.print_exc()
        lost = lost_process_error(exc)
        exc = lost or exc
        user = is_user_error(exc)
        line = _one_line(exc)
        text = (f"error: {line}" if user else f"error: internal error ({type(exc).__name__}: {line}); rerun with "
                f"MODALINK_DEBUG=1 for the traceback and report it")
        if _is_main_process() or lost is not None:  # the main process may be the one that was lost
            print(text, file=sys.stderr)
        _tell_launcher(text)
        sys.stderr.flush()
        return 2 if user else 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _tell_launcher(text: str) -> None:
    """Under ``accelerate launch``/``torchrun`` the launcher prints a failure summary after the
    processes end; its error file puts our one line there (as the 'traceback'), so the real
    message is also the last thing shown instead of ``error_file: <N/A>``."""
    import json
    import time

    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"message": {"message": text, "extraInfo": {"py_callstack": text,
                                                                 "timestamp": str(int(time.time()))}}}, fh)
    except OSError:
        pass


_FAILPOINTS: dict[str, int] | None = None
_HITS: dict[str, int] = {}


def _parse_failpoints() -> dict[str, int]:
    spec = os.environ.get("MODALINK_FAILPOINTS", "")
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, count = item.partition(":")
        out[name] = int(count or 1)
    return out


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL the N-th time ``name`` is reached (``MODALINK_FAILPOINTS``)."""
    global _FAILPOINTS
    if _FAILPOINTS is None:
        _FAILPOINTS = _parse_failpoints()
    if name not in _FAILPOINTS:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] == _FAILPOINTS[name]:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
