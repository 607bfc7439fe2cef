"""Extraction of face and voice features from the raw MAV-Celeb release into the official CSV layout
(:func:`prepare_features`, the work of ``recipes/fame/prepare.py``).

Writes, under ``output`` (FEATS_ROOT), exactly the files the FAME training recipe reads:

* ``feats/<ver>/<Lang>_feats/<Lang>_{faces,voices}_train.csv`` — one row per (face, voice)
  pair, identity label in the last column (``idNNNN`` → NNNN);
* ``preExtracted_vggFace_utteranceLevel_Features/<ver>/<HeardLang>/<TestLang>_{faces,voices}_test.csv``
  for both test languages in each heard-language folder, rows aligned with the pair lists;
* ``face_voice_association_splits/<ver>/<Lang>_test.txt`` (copies of the pair lists);
* ``feats/<ver>/feature_info.json`` and ``preExtracted_.../<ver>/feature_info.json`` — feature
  dimensions (512 face / 192 voice with the default encoders, unlike the official 4096/512),
  the encoders (name, weights, arguments, contracts), the label map and the pairing rule;
  the raw-media verifier (:mod:`modalink.face_voice.verify`) reads them to embed raw files the same way.

Pairing rule for training rows: see :mod:`modalink.face_voice.raw` (each voice clip is paired
with a face image of the same identity and language, same video first, deterministic).

Audio files of every format the audio loader decodes are used (wav, flac, mp3, ogg ...; see
``modalink.audio.AUDIO_EXTENSIONS``). Resumable and incremental through the shared embedding
cache (:mod:`modalink.data.embedding_cache`, the one used by SRMM and the recommendation
catalogue): ``<cache>/<encoder-tag>/<part>_{faces,voices}.npy`` with a manifest that names every
file (path, size, mtime, digest of its bytes) and records failed files and fallbacks, so a rerun
copies what it already has and only embeds new or changed files, and a killed run resumes from
its last shard of files; CSVs are rebuilt from the cache and written atomically. Failed test
items get a zero row (the lists must stay aligned); failed training voices drop their pair;
training faces that cannot be used are left out of the pairing. Counts go to the run log and
``summary.json``, which accounts for every file under the raw root (used, skipped or ignored, by
reason); every file that is not used or was replaced is named, with the reason, in the run
folder's ``report.csv``. ``--output`` is locked while the run lasts: a second job is refused.
Under ``accelerate launch --num_processes N`` (one machine or several sharing ``--output``) the
processes split the files to embed, each writes its own cache shards, and the main process
merges them and writes everything else (the lock, the log, the CSVs): the same outputs as one
process.
Everything (layout, pair lists, device, the weights of BOTH encoders) is checked before the run
folder is created: a failed check leaves nothing behind.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from modalink.face_voice.layout import (FAME_VERSIONS, SPLITS_DIR, TEST_DIR, TRAIN_DIR, FameLayout, FeatureInfoError,
                                        list_file_name, load_feature_info, write_feature_info)
from modalink.face_voice.raw import (
    FileVerdict,
    RawEncoderSettings,
    RawEntry,
    RawLayout,
    TrainClip,
    TrainPair,
    build_raw_encoders,
    find_raw_layout,
    identity_labels,
    pair_train_clips,
    read_test_pairs,
    scan_train_split,
    walk_raw_files,
    why_not_used,
)
from modalink.data.embedding_cache import CacheKey, EmbeddingCache, EncodedRows, RowProblem, file_row_id
from modalink.encoders.embed_files import MediaProblem, embed_files, printable_path, unreadable_file
from modalink.data.processes import Processes
from modalink.engine.run_folder import LOCK_FILE, hold_lock
from modalink.errors import UserError
from modalink.io import atomic_path, atomic_write_text

if TYPE_CHECKING:  # torch: imported when the arguments are parsed, so --help answers at once
    from modalink.encoders import Encoder

log = logging.getLogger(__name__)

__all__ = ["PrepareConfig", "ExtractedFiles", "ProblemReport", "PeerStoppedError", "check_config", "prepare_features",
           "encoder_tag", "write_csv", "write_train_csvs"]

REPORT_NAME = "report.csv"
REPORT_FIELDS = ("part", "modality", "file", "problem", "action", "detail")
PAIRING_RULE = (
    "one row per voice clip; paired with a usable face image of the same identity and language: the "
    "k-th voice clip of a video takes face k mod n of that video's faces (sorted), else the j-th voice "
    "clip of the identity takes face j mod N of all its faces in that language"
)
#: counts key for items embedded through a fallback (the encoder's flag → summary key)
FALLBACK_COUNTS = {"no_face": "no_face_center_crop"}


@dataclass(kw_only=True)
class PrepareConfig(RawEncoderSettings):
    """Resolved settings of one prepare run (saved as the run folder's config.yaml): the encoder
    settings that ``feature_info.json`` records for the verifier (the base class), plus these."""

    raw_root: str
    output: str
    ver: str = "v1"
    offline: bool = False
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    parts: list[str] = field(default_factory=lambda: ["train", "test"])
    train_root: str | None = None
    test_root: str | None = None
    splits: str | None = None
    cache_dir: str | None = None
    run_dir: str | None = None
    retry_failed: bool = False
    float_format: str = "%.8g"
    # seconds a process of a launched job waits for the others (the slowest block of files, the
    # main process merging the shards) before the job ends naming the lost process
    collective_timeout_s: float = 3600.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "PrepareConfig":
        """The config of ``prepare.py``'s parsed options (``vars(args)``): ``--face-arg``/``--voice-arg``
        pairs become dicts, ``--parts`` a list, ``--collective-timeout`` ``collective_timeout_s``;
        options that are not settings (``--debug``) are left out."""
        kw = {_OPTION_FIELDS.get(k, k): v for k, v in options.items()}
        kw.update(face_args=dict(kw["face_args"]), voice_args=dict(kw["voice_args"]),
                  parts=[s.strip() for s in kw["parts"].split(",") if s.strip()])
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in names})


#: prepare.py options whose setting has another name
_OPTION_FIELDS = {"face_arg": "face_args", "voice_arg": "voice_args", "collective_timeout": "collective_timeout_s"}


# ----------------------------------------------------------------------------- cache
#: rows per cache shard: an interrupted extraction resumes from the last finished shard
SHARD_SIZE = 512


@dataclass
class ExtractedFiles:
    """One part's files of one modality as held by the shared embedding cache
    (:mod:`modalink.data.embedding_cache`): a row per file, failed files as zero rows with
    their :class:`RowProblem`, files embedded through a fallback (``no_face``) flagged too."""

    index: dict[str, int]
    array: np.ndarray
    problems: dict[int, RowProblem]

    def get(self, relpath: str) -> np.ndarray | None:
        """The file's embedding; ``None`` when it failed."""
        r = self.index[relpath]
        p = self.problems.get(r)
        return None if p is not None and not p.embedded else np.asarray(self.array[r], dtype=np.float32)

    def status(self, relpath: str) -> str:
        """``ok``, the fallback it was embedded through (``no_face``), or its failure reason."""
        p = self.problems.get(self.index[relpath])
        return "ok" if p is None else p.problem

    def usable(self, relpath: str) -> bool:
        p = self.problems.get(self.index[relpath])
        return p is None or p.embedded

    def detail(self, relpath: str) -> str:
        p = self.problems.get(self.index[relpath])
        return "" if p is None else p.detail




def encoder_tag(identity: dict[str, Any]) -> str:
    """Cache folder of one encoder identity: its name + a hash of the rest (switching encoders
    back and forth keeps both caches)."""
    blob = json.dumps({k: v for k, v in identity.items() if k != "name"}, sort_keys=True)
    return f"{identity['name'].replace('/', '_')}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- extraction


def source_row_ids(root: Path, relpaths: Sequence[str],
                   procs: Processes | None = None) -> tuple[list[str], dict[int, RowProblem]]:
    """The cache row identity of each file (path, size, mtime and a digest of its bytes:
    :func:`file_row_id`) and, for the files that cannot be read (a symlink loop, a broken link,
    no permission), their problem; their identity names the problem, so they are tried again
    once they change. With ``procs`` (collective), each process reads one block of the files."""
    procs = procs or Processes.single()
    n = len(relpaths)
    lo, hi = n * procs.index // procs.count, n * (procs.index + 1) // procs.count
    ids: list[str] = []
    unreadable: dict[int, RowProblem] = {}
    for i in range(lo, hi):
        rel = relpaths[i]
        try:
            ids.append(file_row_id(root / rel, root))
        except OSError as e:
            bad = unreadable_file(root / rel) or MediaProblem("unreadable_file", e.strerror or type(e).__name__)
            unreadable[i] = RowProblem(bad.reason, bad.detail)
            ids.append(f"{rel}\t{bad.reason}")
    if not procs.distributed:
        return ids, unreadable
    all_ids: list[str] = []
    all_bad: dict[int, RowProblem] = {}
    for block_ids, block_bad in procs.gather((ids, unreadable)):
        all_ids.extend(block_ids)
        all_bad.update(block_bad)
    return all_ids, all_bad


def _relative_detail(detail: str, root: Path, relpath: str) -> str:
    """A problem's detail with the file named by its path relative to the split root, so a cache
    shared between raw roots holds no root."""
    return " ".join(detail.replace(str(root / relpath), relpath).split())


def extract(enc: Encoder, identity: dict[str, Any], root: Path, relpaths: Sequence[str], cache: EmbeddingCache,
            part: str, modality: str, cfg: PrepareConfig, desc: str,
            procs: Processes | None = None) -> tuple[ExtractedFiles, dict[str, Any]]:
    """Embed ``relpaths`` (faces or voices, by the encoder's input kind) through the shared cache:
    files the cache of this encoder already holds (same path, size, mtime and content digest)
    are copied, the others embedded in batches of ``cfg.batch_size`` by one data loader (per
    process: with ``procs``, a collective call, each process embeds one block of the files);
    files that cannot be read are failed rows. Returns the files and this call's counts (of
    every process)."""
    procs = procs or Processes.single()
    if not relpaths:
        raise UserError(f"{root}: no {modality} files to embed for the {part} part")
    ids, unreadable = source_row_ids(root, relpaths, procs)
    key = CacheKey.for_rows(part, modality, identity, ids)
    mine: dict[str, int] = {"asked": 0, "extracted": 0}  # this process's counts

    def count(name: str) -> None:
        mine[name] = mine.get(name, 0) + 1

    def encode(rows: np.ndarray) -> Iterator[tuple[np.ndarray, EncodedRows]]:
        mine["asked"] += len(rows)
        where = {relpaths[r]: int(r) for r in rows}
        problems: dict[int, RowProblem] = {}  # the files that cannot be read: zero rows
        for r in rows:
            bad = unreadable.get(int(r))
            if bad is not None:
                problems[int(r)] = bad
                count(bad.problem)
                del where[relpaths[r]]
        if problems:
            done = np.array(sorted(problems), dtype=np.int64)
            yield done, EncodedRows(np.zeros((len(done), enc.output_dim), dtype=np.float32), problems)
        for results in embed_files(enc, list(where), root=root, batch_size=cfg.batch_size, workers=cfg.workers,
                                   min_seconds=cfg.min_seconds, progress=False):
            if not results:
                continue
            done = np.array([where[res.relpath] for res in results], dtype=np.int64)
            out = np.zeros((len(done), enc.output_dim), dtype=np.float32)
            problems = {}
            for k, res in enumerate(results):
                r = int(done[k])
                detail = _relative_detail(res.detail, root, res.relpath)
                if res.embedding is None:
                    reason = res.problem or "failed"
                    problems[r] = RowProblem(reason, detail)
                    count(reason)
                    continue
                out[k] = res.embedding
                mine["extracted"] += 1
                if res.problem:
                    problems[r] = RowProblem(res.problem, detail, embedded=True)
                    count(FALLBACK_COUNTS.get(res.problem, res.problem))
            yield done, EncodedRows(out, problems)

    array, _ = cache.get_or_build(key, encode, shard_size=SHARD_SIZE, desc=desc, retry_failed=cfg.retry_failed,
                                  streaming=True, processes=procs)
    counts = _sum_counts(procs.gather(mine), len(relpaths))
    files = ExtractedFiles({r: i for i, r in enumerate(relpaths)}, array, cache.problems(key))
    status: dict[str, int] = {}
    for r in relpaths:
        s = files.status(r)
        status[s] = status.get(s, 0) + 1
    counts["status"] = status
    return files, counts


def _sum_counts(per_process: Sequence[dict[str, int]], files: int) -> dict[str, Any]:
    """One part's counts from every process's: ``cached`` = files no process was asked to embed."""
    total: dict[str, int] = {}
    for counts in per_process:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    asked = total.pop("asked", 0)
    return {"files": files, "cached": files - asked, **total}


# ----------------------------------------------------------------------------- problem report


#: when a file is claimed twice, the stronger status wins (a face used in one pair is used)
_STATUS_RANK = {"ignored": 0, "skipped": 1, "used": 2}


class ProblemReport:
    """Rows of ``report.csv`` — every file that was skipped, ignored or replaced, and why — and
    the status of every file (``used`` / ``skipped`` / ``ignored``) for ``summary.json``."""

    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []
        self.status: dict[str, tuple[str, str]] = {}

    def mark(self, file: Path | str, status: str, reason: str = "") -> None:
        """Record what became of ``file`` (see :data:`_STATUS_RANK`)."""
        key = str(file)
        old = self.status.get(key)
        if old is None or _STATUS_RANK[status] > _STATUS_RANK[old[0]]:
            self.status[key] = (status, reason)

    def add(self, part: str, modality: str, file: Path | str, problem: str, action: str, detail: str = "",
            status: str | None = None) -> None:
        """A row of ``report.csv``; with ``status``, the file is also marked with it."""
        self.rows.append({"part": part, "modality": modality, "file": printable_path(file), "problem": problem,
                          "action": action, "detail": detail})
        if status is not None:
            self.mark(file, status, problem)

    def account_for(self, entries: Sequence[RawEntry], verdict: Callable[[RawEntry], FileVerdict]) -> dict[str, Any]:
        """Rows for the files under the raw root that nothing claimed (``verdict`` says why they
        are left out), then the counts of ``summary.json``: every file used, skipped or ignored."""
        for entry in entries:
            if str(entry.path) not in self.status:
                v = verdict(entry)
                self.add(v.part, v.modality, entry.path, v.reason, v.status, v.detail, status=v.status)
        counts: dict[str, Any] = {"total": len(entries), "used": 0, "skipped": {}, "ignored": {}}
        for entry in entries:
            status, reason = self.status[str(entry.path)]
            if status == "used":
                counts["used"] += 1
            else:
                counts[status][reason] = counts[status].get(reason, 0) + 1
        for status in ("skipped", "ignored"):
            counts[status] = dict(sorted(counts[status].items()))
        return counts

    def add_extracted(self, files: ExtractedFiles, part: str, modality: str, root: Path, relpaths: Sequence[str],
                      failed_action: str | dict[str, str]) -> None:
        """A row for every file of ``relpaths`` that failed (marked ``skipped``) or was embedded
        through a fallback; the detail names the file under ``root``, whichever raw root the
        cache row was made from."""
        for r in relpaths:
            status = files.status(r)
            if status == "ok":
                continue
            detail = re.sub(r"[^\s'\"]*" + re.escape(r), lambda _: str(root / r), files.detail(r))
            if status == "no_face":
                self.add(part, modality, root / r, "no_face", "embedded the centre of the image instead (--no-face "
                         "center_crop)", "no face detected")
            elif files.usable(r):
                self.add(part, modality, root / r, status, "embedded through a fallback", detail)
            else:
                action = failed_action.get(r, "left out") if isinstance(failed_action, dict) else failed_action
                self.add(part, modality, root / r, status, action, detail, status="skipped")

    def write(self, path: Path) -> Path:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(self.rows, key=lambda d: (d["part"], d["modality"], d["file"])))
        return atomic_write_text(path, buf.getvalue())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row["problem"]] = out.get(row["problem"], 0) + 1
        return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- CSV writing


def _fmt_row(vec: np.ndarray, fmt: str, label: Any = None) -> str:
    cells = [fmt % float(x) for x in vec]
    if label is not None:
        cells.append(str(label))
    return ",".join(cells) + "\n"


def write_csv(path: Path, rows: list[np.ndarray], fmt: str, labels: Sequence[Any] | None = None) -> None:
    """Headerless CSV (optional trailing label column), written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for i, vec in enumerate(rows):
                fh.write(_fmt_row(vec, fmt, None if labels is None else labels[i]))


def write_train_csvs(out: Path, ver: str, lang: str, pairs: list[TrainPair], faces: ExtractedFiles,
                     voices: ExtractedFiles, labels: dict[str, Any], fmt: str) -> dict[str, int]:
    """``feats/<ver>/<Lang>_feats/<Lang>_{faces,voices}_train.csv``; pairs missing a side are dropped."""
    face_rows, voice_rows, labs = [], [], []
    dropped = 0
    for p in pairs:
        f = faces.get(p.face.relpath)
        v = voices.get(p.voice.relpath)
        if f is None or v is None:
            dropped += 1
            continue
        face_rows.append(f)
        voice_rows.append(v)
        labs.append(labels[p.identity])
    layout = FameLayout(out, ver)
    write_csv(layout.train_csv(lang, "face"), face_rows, fmt, labs)
    write_csv(layout.train_csv(lang, "voice"), voice_rows, fmt, labs)
    return {"rows": len(face_rows), "pairs_dropped": dropped,
            "identities": len({p.identity for p in pairs})}


# ----------------------------------------------------------------------------- main flow


def build_encoders(cfg: PrepareConfig) -> tuple[Encoder, Encoder]:
    """Face and voice encoders (random weights seeded by ``cfg.seed`` / ``cfg.seed + 1``); missing
    weights of both are reported in one :class:`MissingWeightsError`."""
    return build_raw_encoders(cfg, offline=True if cfg.offline else None)


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def check_config(cfg: PrepareConfig) -> tuple[tuple[str, str], RawLayout]:
    """Every check that needs no model: settings, paths (made absolute), layout, pair lists.
    Raises :class:`UserError` / :class:`RawLayoutError`; writes nothing."""
    if cfg.ver not in FAME_VERSIONS:
        raise UserError(f"--ver must be one of {sorted(FAME_VERSIONS)}, got {cfg.ver!r}")
    unknown = set(cfg.parts) - {"train", "test"}
    if unknown or not cfg.parts:
        raise UserError(f"--parts must be a subset of train,test, got {','.join(cfg.parts)}")
    if cfg.no_face not in ("skip", "center_crop"):
        raise UserError(f"--no-face must be skip or center_crop, got {cfg.no_face!r}")
    if cfg.batch_size < 1 or cfg.workers < 0 or cfg.min_seconds < 0:
        raise UserError("--batch-size must be >= 1, --workers >= 0 and --min-seconds >= 0")
    if not cfg.collective_timeout_s > 0:
        raise UserError(f"--collective-timeout must be > 0 seconds, got {cfg.collective_timeout_s}")
    for name in ("raw_root", "output", "train_root", "test_root", "splits", "cache_dir", "run_dir",
                 "face_weights", "voice_weights"):
        setattr(cfg, name, _absolute(getattr(cfg, name)))
    langs = FAME_VERSIONS[cfg.ver]
    layout = find_raw_layout(cfg.raw_root, langs, train_root=cfg.train_root, test_root=cfg.test_root,
                             splits_dir=cfg.splits)
    if "train" in cfg.parts and layout.train_root is None:
        raise UserError(f"{cfg.raw_root}: no training folder found ({{faces,voices}}/<id>/<Language>/<video>/<clip>); "
                        "use --train-root or --parts test")
    if "test" in cfg.parts:
        if layout.test_root is None:
            raise UserError(f"{cfg.raw_root}: no test folder found ({{faces,voices}}/<Language>/NNNNN); use "
                            "--test-root or --parts train")
        missing = [lang for lang in langs if lang not in layout.pair_lists]
        if missing:
            raise UserError(f"pair list(s) {', '.join(list_file_name(m) for m in missing)} not found under "
                            f"{cfg.splits or cfg.raw_root}; use --splits DIR or --parts train")
    return langs, layout


def _log_to_file_only(logger: logging.Logger, message: str) -> None:
    """The error line in the run log, without printing it a second time on the console."""
    for h in logger.handlers:
        if isinstance(h, logging.FileHandler):
            h.emit(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, (), None))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def lock_output(folder: Path, made: list[Path], option: str) -> int:
    """Hold ``folder/.lock`` (the lock of run folders, :func:`~modalink.engine.run_folder.hold_lock`)
    for this process, so a second job on the same folder is refused at once (``option`` names the
    setting to change); the folders and the lock file it creates are appended to ``made``.
    Release with ``os.close`` (or let the process end)."""
    missing = [folder, *folder.parents]
    missing = [p for p in missing if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    made.extend(reversed(missing))
    lock = folder / LOCK_FILE
    if not lock.exists():
        made.append(lock)  # hold_lock creates it
    return hold_lock(folder, option=option, holder="prepare.py, ")


def prepare_features(cfg: PrepareConfig) -> dict[str, Any]:
    """Run the whole extraction; returns the summary (also written to ``<run_dir>/summary.json``).

    Settings, layout and device are checked first; then ``--output`` (and a ``--cache-dir``
    outside it) is locked, so a second job on the same folder is refused at once; then the
    weights of both encoders are loaded. A failed check leaves nothing behind.

    Under ``accelerate launch`` / ``torchrun`` the processes split the files to embed (see
    :meth:`EmbeddingCache.build`): the main process takes the lock, logs and writes every
    output; the others wait for it (a refused lock ends them too), embed their block of files
    into shards of the cache and log warnings only.
    """
    from modalink.encoders.base import resolve_device
    from modalink.engine.run import start_run

    langs, layout = check_config(cfg)
    device = resolve_device(cfg.device)
    # gloo for the few small messages between processes, whatever device embeds the files
    procs = Processes.launched(cpu=True, timeout_s=cfg.collective_timeout_s)
    if procs.distributed and device.type == "cuda" and device.index is None:  # one GPU per process
        import torch

        device = torch.device("cuda", procs.local_index % torch.cuda.device_count())
    out = Path(cfg.output)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else out / ".cache" / "embeddings"
    cfg.cache_dir = str(cache_root)
    made: list[Path] = []
    locks: list[int] = []
    try:
        try:
            error = None
            if procs.is_main:
                try:
                    locks.append(lock_output(out, made, "--output"))
                    if not _inside(cache_root, out):  # a cache shared between outputs: one writer at a time too
                        locks.append(lock_output(cache_root, made, "--cache-dir"))
                except Exception as e:  # noqa: BLE001 - told to the other processes, then raised
                    error = e
            _stop_together(procs, error)
            error = None
            try:
                face_enc, voice_enc = build_encoders(cfg)
            except Exception as e:  # noqa: BLE001 - told to the other processes, then raised
                error = e
            _stop_together(procs, error)
        except BaseException:
            for path in reversed(made):  # what this attempt created: a failed check leaves nothing behind
                path.unlink() if path.name == LOCK_FILE else path.rmdir()
            raise
        face_enc.to(device)
        voice_enc.to(device)
        run_dir = Path(cfg.run_dir) if cfg.run_dir else out / "prepare_runs" / f"{cfg.ver}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = procs.broadcast(run_dir)
        cfg.run_dir = str(run_dir)
        logger = start_run(run_dir, cfg, is_main=procs.is_main)
        try:
            return _prepare(cfg, langs, layout, device, face_enc, voice_enc, out, run_dir, cache_root, logger, procs)
        except BaseException as e:
            _log_to_file_only(logger, f"error: {type(e).__name__}: {e}")
            raise
    finally:
        for fd in locks:
            os.close(fd)


class PeerStoppedError(UserError):
    """Another process of the job stopped with an error (the main process prints it)."""


def _stop_together(procs: Processes, error: BaseException | None) -> None:
    """Collective: raise ``error`` here and end every other process too when any process has one
    (a refused lock, missing weights), so none waits at a barrier for a process that gave up."""
    first = procs.first_error(None if error is None else str(error))
    if error is not None:
        raise error
    if first is not None:
        raise PeerStoppedError(first)


@dataclass
class _Extraction:
    """What one prepare run works with: settings, layout, encoders and their caches, outputs."""

    cfg: PrepareConfig
    langs: tuple[str, str]
    layout: RawLayout
    face_enc: Encoder
    voice_enc: Encoder
    out: Path
    run_dir: Path
    logger: logging.Logger
    procs: Processes
    face_id: dict[str, Any] = field(default_factory=dict)
    voice_id: dict[str, Any] = field(default_factory=dict)
    face_cache: EmbeddingCache | None = None
    voice_cache: EmbeddingCache | None = None
    report: ProblemReport = field(default_factory=ProblemReport)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def feats(self) -> FameLayout:
        return FameLayout(self.out, self.cfg.ver)  # what is written: the official layout under --output

    def extract(self, modality: str, part: str, root: Path, relpaths: Sequence[str]) -> ExtractedFiles:
        """:func:`extract` of one part's faces or voices; its counts go to ``summary["extraction"]``."""
        face = modality == "faces"
        files, self.summary["extraction"][f"{part}_{modality}"] = extract(
            self.face_enc if face else self.voice_enc, self.face_id if face else self.voice_id, root, relpaths,
            self.face_cache if face else self.voice_cache, part, modality, self.cfg, f"{part} {modality}", self.procs)
        return files


@dataclass
class _TrainPart:
    """The training split's files and their embeddings."""

    root: Path
    faces: list[TrainClip]
    voices: list[TrainClip]
    ignored: dict[str, list[str]]
    face_files: list[str]
    voice_files: list[str]
    tfaces: ExtractedFiles
    tvoices: ExtractedFiles


@dataclass
class _TestPart:
    """The test split's pair lists, files and their embeddings."""

    root: Path
    lists: dict[str, list[Any]]
    face_files: list[str]
    voice_files: list[str]
    sfaces: ExtractedFiles
    svoices: ExtractedFiles


def _prepare(cfg: PrepareConfig, langs: tuple[str, str], layout: RawLayout, device: Any, face_enc: Encoder,
             voice_enc: Encoder, out: Path, run_dir: Path, cache_root: Path, logger: logging.Logger,
             procs: Processes) -> dict[str, Any]:
    t0 = time.time()
    x = _Extraction(cfg, langs, layout, face_enc, voice_enc, out, run_dir, logger, procs)
    _start(x, device, cache_root)
    # extraction: every process of a launched job takes part (one block of files each)
    train = _extract_train(x) if "train" in cfg.parts else None
    test = _extract_test(x) if "test" in cfg.parts else None
    if not procs.is_main:  # the CSVs, the report and the summary are the main process's
        return x.summary
    label_map: dict[str, Any] = {}
    if train is not None:
        label_map = _write_train_part(x, train)
    if test is not None:
        _write_test_part(x, test)
    for key, counts in x.summary["extraction"].items():
        logger.info("%s: %s", key, {k: v for k, v in counts.items()})
    _write_feature_infos(x, label_map)
    _account_for_files(x, cache_root)
    x.summary["seconds"] = round(time.time() - t0, 2)
    atomic_write_text(run_dir / "summary.json", json.dumps(x.summary, indent=2) + "\n")
    logger.info("done in %.1f s; summary: %s%s", x.summary["seconds"], run_dir / "summary.json",
                " (--random-weights: the features mean nothing)" if cfg.random_weights else "")
    return x.summary


def _start(x: _Extraction, device: Any, cache_root: Path) -> None:
    """The encoders' identities and caches, the first log lines and the summary's header."""
    cfg, logger, face_enc, voice_enc = x.cfg, x.logger, x.face_enc, x.voice_enc
    logger.info("layout: train=%s test=%s pair lists=%s", x.layout.train_root, x.layout.test_root,
                {k: str(v) for k, v in x.layout.pair_lists.items()})
    # what decides a file's embedding: the encoder, and the settings applied outside its options
    x.face_id = face_enc.identity(cfg.seed, extra={"no_face": cfg.no_face})
    x.voice_id = voice_enc.identity(cfg.seed + 1, extra={"min_seconds": cfg.min_seconds})
    x.face_cache = EmbeddingCache(cache_root / encoder_tag(x.face_id))
    x.voice_cache = EmbeddingCache(cache_root / encoder_tag(x.voice_id))
    logger.info("device %s; batch size %d%s", device, cfg.batch_size,
                f"; {x.procs.count} processes, each embeds its own block of files" if x.procs.distributed else "")
    if cfg.random_weights and x.procs.is_main:
        logger.warning("--random-weights: both encoders have random weights; the features mean nothing (a "
                       "plumbing check only), and summary.json and feature_info.json say so")
    logger.info("face encoder %s (%d-D, weights %s) → cache %s", cfg.face_encoder, face_enc.output_dim,
                face_enc.weights_path or "random", x.face_cache.root)
    logger.info("voice encoder %s (%d-D, weights %s) → cache %s", cfg.voice_encoder, voice_enc.output_dim,
                voice_enc.weights_path or "random", x.voice_cache.root)
    x.summary.update({"ver": cfg.ver, "languages": list(x.langs), "random_weights": cfg.random_weights,
                      "device": str(device), "face_dim": face_enc.output_dim, "voice_dim": voice_enc.output_dim,
                      "extraction": {}, "train": {}, "test": {}})


def _extract_train(x: _Extraction) -> _TrainPart:
    """Scan the training split and embed its faces and voices."""
    assert x.layout.train_root is not None
    troot = x.layout.train_root
    ignored: dict[str, list[str]] = {"faces": [], "voices": []}
    faces = scan_train_split(troot, "faces", x.langs, ignored=ignored["faces"])
    voices = scan_train_split(troot, "voices", x.langs, ignored=ignored["voices"])
    x.logger.info("train: %d face images, %d voice clips", len(faces), len(voices))
    face_files = sorted({c.relpath for c in faces})
    voice_files = sorted({c.relpath for c in voices})
    tfaces = x.extract("faces", "train", troot, face_files)
    tvoices = x.extract("voices", "train", troot, voice_files)
    return _TrainPart(troot, faces, voices, ignored, face_files, voice_files, tfaces, tvoices)


def _extract_test(x: _Extraction) -> _TestPart:
    """Read the pair lists and embed every face and voice they name."""
    assert x.layout.test_root is not None
    lists = {lang: read_test_pairs(x.layout.pair_lists[lang]) for lang in x.langs}
    test_faces = sorted({p.face for pairs in lists.values() for p in pairs})
    test_voices = sorted({p.voice for pairs in lists.values() for p in pairs})
    sfaces = x.extract("faces", "test", x.layout.test_root, test_faces)
    svoices = x.extract("voices", "test", x.layout.test_root, test_voices)
    return _TestPart(x.layout.test_root, lists, test_faces, test_voices, sfaces, svoices)


def _write_train_part(x: _Extraction, part: _TrainPart) -> dict[str, Any]:
    """The training CSVs of each language (pairing rule, failed files dropped), the report rows of the
    training files; returns the label map."""
    cfg, report, logger, ex = x.cfg, x.report, x.logger, x.summary["extraction"]
    troot, faces, voices, tfaces, tvoices = part.root, part.faces, part.voices, part.tfaces, part.tvoices
    face_files, voice_files = part.face_files, part.voice_files
    for modality, files in part.ignored.items():
        if files:
            ex[f"train_{modality}"]["unsupported_format"] = len(files)
        for rel in files:
            report.add("train", modality[:-1], troot / rel, "unsupported_format", "ignored",
                       f"{Path(rel).suffix or 'no extension'} is not a format the "
                       f"{'image' if modality == 'faces' else 'audio'} loader reads", status="ignored")
    label_map = identity_labels(c.identity for c in [*faces, *voices])
    usable = {r for r in face_files if tfaces.usable(r)}
    report.add_extracted(tfaces, "train", "face", troot, face_files,
                         "left out of the pairing (the identity's other face images are used)")
    unpaired: list[TrainClip] = []
    for lang in x.langs:
        lf = [c for c in faces if c.language == lang and c.relpath in usable]
        lv = [c for c in voices if c.language == lang]
        pairing = pair_train_clips(lf, lv)
        unpaired.extend(pairing.unpaired_voices)
        for pair in pairing.pairs:
            if tfaces.usable(pair.face.relpath) and tvoices.usable(pair.voice.relpath):  # a CSV row
                report.mark(troot / pair.face.relpath, "used")
                report.mark(troot / pair.voice.relpath, "used")
        stats = write_train_csvs(x.out, cfg.ver, lang, pairing.pairs, tfaces, tvoices, label_map, cfg.float_format)
        stats.update(unpaired_voices=len(pairing.unpaired_voices),
                     identities_without_faces=[f"{i}/{lg}" for i, lg in pairing.groups_without_faces],
                     cross_video_pairs=pairing.cross_video_pairs)
        x.summary["train"][lang] = stats
        logger.info("train %s: %d rows (%d identities), %d pairs dropped for failed files, "
                    "%d voice clips without any usable face image", lang, stats["rows"], stats["identities"],
                    stats["pairs_dropped"], stats["unpaired_voices"])
    lang_of = {c.relpath: c.language for c in voices}
    report.add_extracted(tvoices, "train", "voice", troot, voice_files,
                         {r: f"pair dropped from {lang_of[r]}_{{faces,voices}}_train.csv" for r in voice_files})
    for v in unpaired:
        if tvoices.status(v.relpath) == "ok":
            report.add("train", "voice", troot / v.relpath, "no_face_image", "not in the training CSVs",
                       f"identity {v.identity} has no usable face image in {v.language}", status="skipped")
    for r in face_files:
        if r in usable and str(troot / r) not in report.status:
            report.add("train", "face", troot / r, "unpaired_face", "not in the training CSVs",
                       "the pairing rule (feature_info.json) paired no voice clip with it", status="ignored")
    return label_map


def _write_test_part(x: _Extraction, part: _TestPart) -> None:
    """The test CSVs of every heard-language folder (a zero row for an unusable file, so rows stay
    aligned with the pair lists), the copies of the pair lists, the report rows of the test files."""
    cfg, report, logger, feats = x.cfg, x.report, x.logger, x.feats
    sroot, sfaces, svoices = part.root, part.sfaces, part.svoices
    uses: dict[tuple[str, str], list[str]] = {}
    for test_lang, pairs in part.lists.items():
        frows, vrows, zero_f, zero_v = [], [], 0, 0
        for p in pairs:
            uses.setdefault(("face", p.face), []).append(test_lang)
            uses.setdefault(("voice", p.voice), []).append(test_lang)
            f = sfaces.get(p.face)
            v = svoices.get(p.voice)
            if f is not None:
                report.mark(sroot / p.face, "used")
            if v is not None:
                report.mark(sroot / p.voice, "used")
            if f is None:
                f, zero_f = np.zeros(x.face_enc.output_dim, np.float32), zero_f + 1
            if v is None:
                v, zero_v = np.zeros(x.voice_enc.output_dim, np.float32), zero_v + 1
            frows.append(f)
            vrows.append(v)
        for heard in x.langs:
            folder = feats.test_csv_dir(heard)
            write_csv(folder / feats.test_csv_name(test_lang, "face"), frows, cfg.float_format)
            write_csv(folder / feats.test_csv_name(test_lang, "voice"), vrows, cfg.float_format)
        dst = feats.pair_list(test_lang)
        src = x.layout.pair_lists[test_lang]
        report.mark(src, "used")
        if not (dst.exists() and dst.resolve() == src.resolve()):
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        x.summary["test"][test_lang] = {"rows": len(pairs), "zero_face_rows": zero_f,
                                        "zero_voice_rows": zero_v, "pair_list": str(src)}
        if zero_f or zero_v:
            logger.warning("test %s: %d face and %d voice rows are zeros (unusable files, see %s)",
                           test_lang, zero_f, zero_v, x.run_dir / REPORT_NAME)
        logger.info("test %s: %d rows aligned with %s", test_lang, len(pairs), src)

    def zero_action(modality: str, files: Sequence[str]) -> dict[str, str]:
        out_actions = {}
        for r in files:
            by_lang: dict[str, int] = {}
            for lang in uses.get((modality, r), []):
                by_lang[lang] = by_lang.get(lang, 0) + 1
            out_actions[r] = "; ".join(f"zero row on {n} line(s) of {list_file_name(lang)} "
                                       f"({feats.test_csv_name(lang, modality)})"
                                       for lang, n in sorted(by_lang.items()))
        return out_actions

    report.add_extracted(sfaces, "test", "face", sroot, part.face_files, zero_action("face", part.face_files))
    report.add_extracted(svoices, "test", "voice", sroot, part.voice_files, zero_action("voice", part.voice_files))


def _write_feature_infos(x: _Extraction, label_map: dict[str, Any]) -> None:
    """``feature_info.json`` of each prepared side (the test side alone gets the training side's label map)."""
    cfg = x.cfg
    train_info, test_info = x.feats.feature_info_files
    if "train" not in cfg.parts:
        label_map = _label_map_of(train_info, x.logger)
    info = {
        "ver": cfg.ver, "languages": list(x.langs),
        "face_dim": x.face_enc.output_dim, "voice_dim": x.voice_enc.output_dim,
        **cfg.to_info(x.face_enc, x.voice_enc),
        "train_label": "last column of *_train.csv; identity folder idNNNN → NNNN (see label_map)",
        "label_map": label_map,
        "random_weights": cfg.random_weights,
        "pairing_rule": PAIRING_RULE,
        "test_missing_rows": "zeros",
    }
    if "train" in cfg.parts:
        write_feature_info(train_info, info)
    if "test" in cfg.parts:
        write_feature_info(test_info, info)
    elif test_info.is_file():  # a test side prepared before the train side: give it the label map
        _fill_label_map(test_info, info, x.logger)


def _account_for_files(x: _Extraction, cache_root: Path) -> None:
    """Every file under the raw root used, skipped or ignored (``summary["files"]``), and ``report.csv``."""
    out, layout = x.out, x.layout
    raw = Path(x.cfg.raw_root)
    entries = walk_raw_files([raw, *(r for r in (layout.train_root, layout.test_root) if r is not None)],
                             exclude=[out / TRAIN_DIR, out / TEST_DIR, out / SPLITS_DIR, out / "prepare_runs",
                                      out / LOCK_FILE, cache_root, x.run_dir])
    files = x.report.account_for(entries, lambda e: why_not_used(e, layout, x.langs, x.cfg.parts))
    x.summary["files"] = {"root": str(raw), **files}
    report_path = x.report.write(x.run_dir / REPORT_NAME)
    x.summary["problems"] = x.report.counts()
    x.summary["report"] = str(report_path)
    x.logger.info("%d file(s) under %s: %d used, %d skipped %s, %d ignored %s; each file not used is named, with "
                  "the reason, in %s", files["total"], raw, files["used"], sum(files["skipped"].values()),
                  files["skipped"] or "", sum(files["ignored"].values()), files["ignored"] or "", report_path)


def _read_info(path: Path) -> dict[str, Any] | None:
    """A ``feature_info.json`` written earlier, or ``None`` when it is missing or damaged."""
    try:
        return load_feature_info(path)
    except FeatureInfoError:
        return None


def _label_map_of(train_info: Path, logger: logging.Logger) -> dict[str, Any]:
    """The label map of the training side (``--parts test`` alone), or ``{}`` with a warning
    that says why and how it gets filled."""
    info = _read_info(train_info) if train_info.is_file() else None
    label_map = info.get("label_map") if info is not None else None
    if isinstance(label_map, dict) and label_map:
        logger.info("label map: %d identities, read from %s", len(label_map), train_info)
        return label_map
    why = "does not exist yet" if not train_info.exists() else "holds no label map"
    logger.warning("the test-side feature_info.json gets an empty label_map: %s %s (it comes from the training "
                   "identities); a run with --parts train on this --output fills it in", train_info, why)
    return {}


#: entries of feature_info.json that must agree before the train side's label map is copied to the test side
_SAME_FEATURES = ("ver", "languages", "face_dim", "voice_dim", "face_encoder", "voice_encoder")


def _fill_label_map(test_info: Path, info: dict[str, Any], logger: logging.Logger) -> None:
    """Put the label map of ``info`` (the training side's) into ``test_info`` when that one has
    none and describes the same features; else leave it as it is and say why."""
    old = _read_info(test_info)
    if old is None or old.get("label_map") == info["label_map"]:
        return
    if old.get("label_map"):
        logger.warning("%s keeps its own label map (it differs from the training side's)", test_info)
        return
    if any(old.get(k) != info.get(k) for k in _SAME_FEATURES):
        logger.warning("%s keeps its empty label_map: its features come from other encoders or settings than "
                       "this training side (run --parts test again to prepare it the same way)", test_info)
        return
    write_feature_info(test_info, {**old, "label_map": info["label_map"]})
    logger.info("label map of the training side copied to %s", test_info)
