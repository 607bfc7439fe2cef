"""The run-folder contract every recipe uses.

A run folder belongs to ONE run: its config (and the content fingerprint of its data) is fixed
in ``run.json`` when the run starts. Running a command again into the same folder

* resumes when the config and the data are the same (a finished run is simply re-scored);
* is refused, **before anything is written**, when they differ — the message names the
  differing keys and the two ways out (another ``--output-dir``, or ``--overwrite``);
* is refused when another job holds the folder (an exclusive ``flock`` on ``.lock``, released
  by the OS when the process dies, so a killed run never leaves a stale lock);
* is refused when the process count differs (N processes do not reproduce a 1-process run's
  random streams; resuming would silently mix two runs).

``--overwrite`` empties only a folder whose ``run.json`` says it holds a run of the same recipe,
and deletes only the names that recipe writes (recorded in ``run.json``); a folder without a
contract, a run of another recipe, or anything else in the folder is refused with a message
naming what is there. Nothing modalink did not write is deleted.

A new run that fails before it has recorded any training (no epoch in a ``metrics.jsonl``, no
checkpoint) leaves no contract behind: used as a context manager (``with RunFolder.open(...) as
folder:``), the folder removes ``run.json`` and what this attempt wrote, so the corrected command
simply runs in the same folder.

Keys that do not change results (progress bars, logging cadence, data-loader workers) are left
out of the comparison.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from modalink.errors import UserError
from modalink.io import atomic_write_text, foreign_entries, remove_stale_temps

__all__ = ["RunFolder", "RunFolderError", "lock_folder", "ResumeMode", "config_diff",
           "config_fingerprint", "VOLATILE_KEYS", "CONTRACT_FILE"]

CONTRACT_FILE = "run.json"
LOCK_FILE = ".lock"
ResumeMode = Literal["auto", "resume", "overwrite"]

#: Config keys that may change between a run and its resumption (they do not change results).
VOLATILE_KEYS = frozenset({
    "engine.progress", "engine.num_workers", "engine.log_every_steps", "engine.log_with",
    "engine.keep_checkpoints", "run.output_dir",
})
#: The names every run may write at the top of its folder (a recipe adds its own with ``entries``).
_RUN_ENTRIES = {CONTRACT_FILE, LOCK_FILE, "config.yaml", "log.txt", "checkpoints", "best_model.pt",
                "metrics.jsonl", "results.json", "results.md", "timings.json", "submission", "synthetic_data",
                "model", "exported_model"}


def config_fingerprint(config: Mapping[str, Any], ignore: Iterable[str] = VOLATILE_KEYS) -> str:
    """A short SHA-256 of a config's result-relevant keys (for manifests and model cards)."""
    import hashlib

    skip = set(ignore)
    flat = {k: v for k, v in _flatten(config).items() if k not in skip}
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunFolderError(UserError):
    """The run folder cannot be used as asked (other config, other data, locked, ...)."""


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """``["engine.lr: 0.001 -> 0.5", ...]`` for the keys whose values differ (``ignore`` skipped)."""
    skip = set(ignore)
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in skip:
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
            lines.append(f"{key}: {va!r} -> {vb!r}")
    return lines


def _names(names: list[str], shown: int = 5) -> str:
    """``a, b, c`` (at most ``shown`` names, then how many more)."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _broadcast(message: str | None) -> str | None:
    """The main process's verdict, seen by every process of a distributed job."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return message
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def lock_folder(path: str | os.PathLike) -> int | None:
    """Take the run folder's lock for a command that only writes into an existing run (an
    evaluate or verify script re-scoring it); ``None`` when ``path`` is no run folder. Refuses,
    like :meth:`RunFolder.open`, while another job holds it. Release with ``os.close(fd)`` (or let
    the process end)."""
    path = Path(path)
    if not (path / LOCK_FILE).is_file():
        return None
    return _flock(path, create=False)


def _flock(folder: Path, create: bool, option: str = "--output-dir", holder: str | None = None) -> int:
    """An open descriptor of ``folder/.lock`` holding an exclusive lock; refuses while another
    job holds it (naming that job, as the lock file records it, and ``option``, the setting to
    change). With ``holder`` the lock file then records this job: ``<holder>pid N on HOST``."""
    import fcntl

    fd = os.open(folder / LOCK_FILE, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder_text = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunFolderError(f"{folder} is in use by another job ({holder_text}); wait for it to finish or use "
                             f"another {option}") from None
    if holder is not None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def hold_lock(folder: str | os.PathLike, option: str = "--output-dir", holder: str | None = None) -> int:
    """Take (creating it) the run-folder lock of ``folder`` for a command that writes there without a
    :class:`RunFolder` (FAME ``prepare.py``, ``ensemble.py``); refuses in one line naming ``option``
    while another job holds it. ``holder`` is recorded as in :func:`_flock`. Release with ``os.close``."""
    return _flock(Path(folder), create=True, option=option, holder=holder)


log = logging.getLogger(__name__)


class RunFolder:
    """One run's folder under the contract above. Create with :meth:`open`."""

    def __init__(self, path: Path, is_main: bool) -> None:
        self.path = path
        self.is_main = is_main
        self.contract: dict[str, Any] = {}
        self.resumed = False
        self._lock_fd: int | None = None
        self._created = False
        self._ignore: set[str] = set(VOLATILE_KEYS)
        self._started = False
        self._recipe: str | None = None
        self._entries: set[str] = set(_RUN_ENTRIES)
        self._before: set[str] = set()  # names in the folder before this run wrote anything
        self._new = False  # the contract is created by this invocation (not resumed)
        self._made_lock = False
        self._reusable: set[str] = {"synthetic_data"}  # content-checked caches a failed run leaves for the next

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, config: Mapping[str, Any], *, mode: ResumeMode = "auto",
             processes: int = 1, is_main: bool = True, ignore: Iterable[str] = (),
             entries: Iterable[str] = (), recipe: str | None = None, reusable: Iterable[str] = ()) -> "RunFolder":
        """Lock ``path`` and check ``config`` (a plain dict, e.g. ``modalink.config.to_dict(cfg)``)
        against the folder's contract. Nothing is written on refusal (a folder this call created
        is removed again). ``entries`` names further files/folders the recipe writes (that
        ``--overwrite`` may delete); ``recipe`` names the recipe, so a folder of another recipe is
        refused as such; ``reusable`` names entries among them that are content-checked caches (kept when a
        failed run is rolled back, like ``synthetic_data``). Collective under ``accelerate launch``: call it
        on every process."""
        if mode not in ("auto", "resume", "overwrite"):
            raise RunFolderError(f"resume mode {mode!r}; use auto, resume or overwrite")
        folder = cls(Path(path).absolute(), is_main)
        folder._ignore |= set(ignore)
        folder._entries = _RUN_ENTRIES | set(entries)
        folder._recipe = recipe
        folder._reusable |= set(reusable)
        error = None
        if is_main:
            try:
                folder._open_main(dict(config), mode, processes)
            except RunFolderError as exc:
                error = str(exc)
        error = _broadcast(error)
        if error is not None:
            folder.close()
            raise RunFolderError(error)
        if not is_main:
            folder.contract = {"config": dict(config), "processes": processes}
        return folder

    def _open_main(self, config: dict[str, Any], mode: ResumeMode, processes: int) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--output-dir {path} is a file, not a folder; choose a folder")
        self._created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._lock()
            old = self._read_contract()
            if mode == "overwrite" and (old is not None or self._has_run_files()):
                self._empty(old)
                old = None
            elif old is not None and mode == "auto" and self._never_trained(old, config, processes):
                # a run stopped (killed) before it recorded any training holds nothing to resume
                log.warning("%s holds a run of other settings that was stopped before it trained anything; "
                            "replacing it", path)
                self._empty(old)
                old = None
            if old is None:
                if mode == "resume":
                    raise RunFolderError(f"--resume: {path} holds no run to resume ({CONTRACT_FILE} is missing); "
                                         f"drop --resume to start a new run there")
                if self._has_run_files():
                    raise RunFolderError(
                        f"{path} holds {_names(self._user_entries())} but no {CONTRACT_FILE}, so it is not a modalink "
                        f"run whose config can be checked; nothing was changed there. Use a new --output-dir")
                self._before = {p.name for p in path.iterdir()}
                self._new = True
                self.contract = {"recipe": self._recipe, "config": config, "processes": processes, "data": None,
                                 "entries": sorted(self._entries - _RUN_ENTRIES),
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "new"}
                return
            if old.get("recipe") and self._recipe and old["recipe"] != self._recipe:
                raise RunFolderError(f"{path} holds a run of the {old['recipe']} recipe, not {self._recipe}; use a new "
                                     f"--output-dir")
            diffs = config_diff(old.get("config", {}), config, self._ignore)
            if diffs:
                shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs)} keys)" if len(diffs) > 8 else "")
                raise RunFolderError(
                    f"{path} holds a run with another config ({shown}); nothing was changed there. Use a new "
                    f"--output-dir for the new settings, or --overwrite to discard the old run")
            if int(old.get("processes", 1)) != processes:
                raise RunFolderError(
                    f"{path} was started with {old.get('processes', 1)} process(es) and this launch has "
                    f"{processes}; resuming would mix two different random streams. Launch with "
                    f"{old.get('processes', 1)} process(es) to resume, or use a new --output-dir / --overwrite")
            self.contract = old
            self.contract["entries"] = sorted((set(old.get("entries") or ()) | self._entries) - _RUN_ENTRIES)
            self.resumed = True
        except BaseException:
            self.close()
            if self._created:
                shutil.rmtree(path, ignore_errors=True)
            raise

    def _never_trained(self, old: dict[str, Any], config: dict[str, Any], processes: int) -> bool:
        """``old`` is another run (settings or process count) of this recipe that never finished nor
        recorded training: nothing in the folder would be lost by replacing it."""
        other = bool(config_diff(old.get("config", {}), config, self._ignore)) or \
            int(old.get("processes", 1)) != processes
        same_recipe = not self._recipe or old.get("recipe") == self._recipe
        return other and same_recipe and old.get("status") != "finished" and not self.has_training_record()

    def _lock(self) -> None:
        self._made_lock = not (self.path / LOCK_FILE).exists()
        self._lock_fd = _flock(self.path, create=True, holder="")

    def close(self, failed: bool = False) -> None:
        """Release the lock (also released by the OS when the process ends). A folder this run
        created is removed again when the run never started (an error before training). With
        ``failed``, a new run that has recorded no training yet is rolled back: its ``run.json``
        and what it wrote are removed, so the folder is as it was before."""
        if self.is_main and self._created and not self._started and self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)
            self._created = False
        elif failed and self.is_main and self._started and self._new and not self.has_training_record():
            self._roll_back()
        if self._lock_fd is not None:
            if self.is_main and self._made_lock and not (self.path / CONTRACT_FILE).exists():
                (self.path / LOCK_FILE).unlink(missing_ok=True)  # a folder that holds no run keeps no trace
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(failed=exc_type is not None)

    def has_training_record(self) -> bool:
        """Whether a run in this folder (or a sub-run folder one level down) has recorded training:
        an epoch in ``metrics.jsonl`` or a checkpoint."""
        for d in [self.path, *(p for p in self.path.iterdir() if p.is_dir() and not p.is_symlink())]:
            if (d / "metrics.jsonl").is_file() or any((d / "checkpoints").glob("step_*")):
                return True
        return False

    def _roll_back(self) -> None:
        """Remove what this run wrote (it failed before recording any training); reusable caches stay."""
        if self._created and not any((self.path / n).exists() for n in self._reusable):
            shutil.rmtree(self.path, ignore_errors=True)
            self._created = False
            return
        for p in self.path.iterdir():
            if (p.name in self._before or p.name == LOCK_FILE or p.name not in self._entries
                    or p.name in self._reusable):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def _read_contract(self) -> dict[str, Any] | None:
        p = self.path / CONTRACT_FILE
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{p} is damaged ({exc}), so what its run wrote is unknown; use a new "
                                 f"--output-dir") from None
        if not isinstance(data, dict) or "config" not in data:
            raise RunFolderError(f"{p} is not a modalink run contract; use a new --output-dir")
        return data

    def _has_run_files(self) -> bool:
        # a synthetic data set and other reusable caches are checked by content: a run killed while
        # making them has not started yet
        return bool(self._user_entries())

    def _user_entries(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir()
                      if p.name != LOCK_FILE and p.name not in self._reusable and not p.name.endswith(".tmp"))

    def _empty(self, old: dict[str, Any] | None) -> None:
        """``--overwrite``: delete what the run recorded in ``old`` wrote, after checking that it is
        a run of this recipe and that the folder holds nothing else."""
        path = self.path
        there = _names(self._user_entries())
        if old is None:
            raise RunFolderError(f"--overwrite: {path} holds {there} but no {CONTRACT_FILE}, so it is not a modalink "
                                 f"run; refusing to delete anything. Choose another --output-dir")
        recipe = old.get("recipe")
        if self._recipe and recipe != self._recipe:
            what = f"a run of the {recipe} recipe" if recipe else "a run that does not record its recipe"
            raise RunFolderError(f"--overwrite: {path} holds {what}, not of {self._recipe}; refusing to delete it. "
                                 f"Choose another --output-dir")
        allowed = self._entries | set(old.get("entries") or ())
        foreign = foreign_entries(path, allowed | self._reusable | {LOCK_FILE})
        if foreign:
            raise RunFolderError(f"--overwrite: {path} also holds {_names(foreign)}, which a {self._recipe or 'modalink'} "
                                 f"run does not write; refusing to delete anything. Move them away or choose another "
                                 f"--output-dir")
        for p in path.iterdir():
            if p.name == LOCK_FILE or p.name not in allowed:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    # -- after the data is known ---------------------------------------------------------
    def bind_data(self, fingerprint: Mapping[str, Any]) -> None:
        """Check (resumed run) or record (new run) the data's content fingerprint, then write the
        contract. Collective; refuses with the files that changed."""
        error = None
        if self.is_main:
            old = self.contract.get("data")
            if self.resumed and old is not None:
                diffs = config_diff(old, dict(fingerprint))
                if diffs:
                    shown = "; ".join(d.split(":")[0] for d in diffs[:6])
                    error = (f"the data changed since the run in {self.path} started ({shown}); use a new "
                             f"--output-dir, or --overwrite to retrain on the new data")
            if error is None:
                self.contract["data"] = dict(fingerprint)
        error = _broadcast(error)
        if error is not None:
            raise RunFolderError(error)

    def start(self) -> None:
        """Write the contract (first start) and clean what a killed writer left; main process only."""
        self._started = True
        if not self.is_main:
            return
        remove_stale_temps(self.path, recursive=True)
        self.contract.setdefault("data", None)
        self.contract["status"] = "running"
        self.contract["last_start"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._write_contract()

    def finish(self, **info: Any) -> None:
        """Mark the run finished (main process)."""
        if not self.is_main:
            return
        self.contract["status"] = "finished"
        self.contract.update(info)
        self._write_contract()

    def _write_contract(self) -> None:
        atomic_write_text(self.path / CONTRACT_FILE, json.dumps(self.contract, indent=1, default=str) + "\n")
