"""The one Accelerate training loop every modalink recipe uses.

Pattern (Accelerate examples): ``Accelerator(...)`` → seed → module → optimizer → one
``prepare()``; ``accumulate()`` with the accumulation set on the Accelerator; evaluation with
``gather_for_metrics``; ``save_state``/``load_state`` checkpoints in
``run_dir/checkpoints/step_N``; collective calls on every process, file writes on the main one.

The trained object is an ``nn.Module`` whose ``forward(batch)`` returns a dict with a scalar
``"loss"`` (other scalar entries are logged). Going through the module's own ``forward`` keeps
DDP's gradient synchronisation intact.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from modalink.config import ConfigError, bounded
from modalink.engine.run import append_jsonl, configure_logging, log_also_to
from modalink.errors import InputError, UserError, failpoint
from modalink.io import DamagedFileError, atomic_torch_save, atomic_write_text, file_digest, load_torch_weights
from modalink.progress import progress_bar


class DivergedError(UserError, FloatingPointError):
    """The training loss became nan or inf (a learning rate too high, or non-finite data)."""


@dataclass
class EngineConfig:
    """Training-loop settings shared by every recipe (the ``engine:`` section of a config)."""

    epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(128, ge=1)  # GLOBAL batch: split across processes, so 1 or N processes see the same batches
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    fused_optimizer: bool = True  # torch's fused Adam/AdamW kernels
    momentum: float = bounded(0.9, ge=0, lt=1)
    scheduler: Literal["none", "cosine", "step"] = "none"
    warmup_steps: int = bounded(0, ge=0)
    step_size_epochs: int = bounded(10, ge=1)  # for scheduler=step
    gamma: float = bounded(0.1, gt=0)  # for scheduler=step
    grad_accum: int = bounded(1, ge=1)
    max_grad_norm: float = bounded(0.0, ge=0)  # 0 disables clipping
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = 0
    num_workers: int = bounded(0, ge=0)
    drop_last: bool = True
    checkpoint_every_epochs: int = bounded(1, ge=0)
    checkpoint_every_steps: int = bounded(0, ge=0)  # 0: only at epoch ends
    keep_checkpoints: int = bounded(2, ge=1)
    eval_every_epochs: int = bounded(1, ge=0)
    monitor: str = "loss"  # key of the evaluation dict used for model selection
    monitor_mode: Literal["min", "max"] = "min"
    log_with: list[str] = field(default_factory=list)  # accelerate trackers, e.g. ["tensorboard"]
    log_every_steps: int = bounded(50, ge=0)
    resume: bool = True  # continue from the latest checkpoint in run_dir/checkpoints
    cpu: bool = False
    progress: bool = True
    # threads of torch's CPU kernels (torch.set_num_threads), 0: torch's default (one per core). A fixed
    # count makes CPU results independent of the machine's core count (float sums split differently)
    num_threads: int = bounded(0, ge=0)
    # seconds a collective (all-reduce, broadcast, barrier) waits for the other processes before the
    # job fails with a one-line error naming the lost process (torch's own default is 30 minutes)
    collective_timeout_s: float = bounded(300.0, gt=0)


@dataclass
class FitResult:
    """What ``Trainer.fit`` returns."""

    best_metric: float | None
    best_epoch: int | None
    history: list[dict[str, Any]]
    run_dir: Path
    resumed_from: str | None = None


class TrainState:
    """Loop counters saved with every checkpoint (as ``train_state.json``: plain JSON, so loading a
    checkpoint never unpickles Python objects)."""

    def __init__(self) -> None:
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # completed batches of the current epoch (mid-epoch checkpoints)
        self.global_step = 0  # optimizer steps
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict[str, Any]] = []
        self.best_digest: str | None = None  # BLAKE2b of best_model.pt, checked on resume

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)


def _keep_history(path: Path, history: list[dict[str, Any]]) -> None:
    """Make ``metrics.jsonl`` hold exactly the epochs of ``history`` (the run being continued):
    records of epochs a resumed checkpoint does not know (a fallback to an older checkpoint, a
    kill before the next checkpoint) are dropped; lines that match are kept as written."""
    if not path.is_file():
        if history:
            atomic_write_text(path, "".join(json.dumps(r, default=float) + "\n" for r in history))
        return
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept: list[str] = []
    for i, record in enumerate(history):
        line = lines[i] if i < len(lines) else None
        try:
            old = json.loads(line) if line is not None else None
        except ValueError:
            old = None
        same = isinstance(old, dict) and all(old.get(k) == record.get(k) for k in ("epoch", "step"))
        kept.append(line if same else json.dumps(record, default=float))  # type: ignore[arg-type]
    if len(kept) == len(lines) and kept == lines:
        return
    if kept:
        atomic_write_text(path, "\n".join(kept) + "\n")
    else:
        path.unlink()


_STEP_DIR = re.compile(r"^step_(\d+)$")
_MARKER = "modalink_complete"
_STATE_FILE = "train_state.json"


def verify_checkpoint(ckpt: Path) -> str | None:
    """``None`` when every file listed in the checkpoint's manifest is present with its size and
    digest, else what is wrong (the manifest is written last, when the save completed)."""
    try:
        manifest = json.loads((ckpt / _MARKER).read_text())
    except (OSError, ValueError):
        return f"{_MARKER} is missing or unreadable"
    if not isinstance(manifest, dict) or "files" not in manifest:
        return f"{_MARKER} lists no files (written by an older modalink)"
    for name, (size, digest) in manifest["files"].items():
        f = ckpt / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} were written"
        if file_digest(f) != digest:
            return f"{name} was changed after it was written"
    return None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints under ``run_dir/checkpoints`` sorted by step (temp dirs ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / _MARKER).exists()]
    return [p for _, p in sorted(found)]


def runs_on_cpu(cfg: EngineConfig) -> bool:
    """Whether training runs on the CPU: asked for, or no CUDA/MPS device. Every process of a job
    must decide the same way: on a CPU-only machine, an ``accelerate launch --multi_gpu`` job
    forms one gloo process group only when its state is created with ``cpu=True``."""
    return cfg.cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())


def process_state(cfg: EngineConfig) -> Any:
    """The process group (accelerate ``PartialState``) a recipe creates before its Trainers, with
    the same CPU decision as :class:`Trainer`."""
    from accelerate import PartialState

    apply_num_threads(cfg)
    return PartialState(cpu=runs_on_cpu(cfg), timeout=datetime.timedelta(seconds=cfg.collective_timeout_s))


def apply_num_threads(cfg: EngineConfig) -> None:
    """Set torch's CPU thread count to ``cfg.num_threads`` (0: leave torch's default)."""
    if cfg.num_threads and torch.get_num_threads() != cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)


def _allow_new_precision(mixed_precision: str) -> None:
    """Let a second Trainer in the same single process use another ``mixed_precision``.

    Accelerate keeps one ``AcceleratorState`` per process and refuses a new precision once it
    is set (e.g. a bf16 run followed by an fp32 one in the same Python session). With one
    process nothing else depends on it, so it is reset; the process group (``PartialState``)
    is kept. Distributed runs keep accelerate's check.
    """
    from accelerate.state import AcceleratorState, PartialState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", mixed_precision) != mixed_precision \
            and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=False)


class Trainer:
    """Fit ``module`` on ``train_dataset`` with Accelerate, checkpoints, resume and model selection.

    Args:
        module: ``forward(batch) -> {"loss": scalar, ...}``.
        train_dataset: map-style dataset (or a ready ``DataLoader``).
        cfg: ``EngineConfig``.
        run_dir: the run folder (``checkpoints/``, ``best_model.pt``, ``metrics.jsonl``, log).
        evaluate_fn: ``evaluate_fn(trainer) -> dict[str, float]`` run every ``eval_every_epochs``
            on every process (use ``trainer.predict`` for gathered outputs). Without it, and with
            a ``val_dataset``, the mean validation loss is the metric ``loss``.
        collate_fn: DataLoader collate function.
        callbacks: objects with optional ``on_step_end(trainer)`` / ``on_epoch_end(trainer, logs)``.
        tracker_config: config dict passed to the trackers (``log_with``).
    """

    def __init__(self, module: nn.Module, train_dataset: Dataset | DataLoader, cfg: EngineConfig,
                 run_dir: str | Path, *, val_dataset: Dataset | None = None,
                 evaluate_fn: Callable[["Trainer"], dict[str, float]] | None = None,
                 collate_fn: Callable | None = None, callbacks: Iterable[Any] = (),
                 tracker_config: Mapping[str, Any] | None = None,
                 param_groups: Callable[[nn.Module], list[dict[str, Any]]] | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, set_seed

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        apply_num_threads(cfg)
        mp = cfg.mixed_precision
        use_cpu = runs_on_cpu(cfg)
        if use_cpu and mp == "fp16":
            mp = "bf16"  # fp16 autocast is GPU-only; bf16 is the CPU equivalent
        _allow_new_precision(mp)
        self.accelerator = Accelerator(
            mixed_precision=mp, cpu=use_cpu, gradient_accumulation_steps=cfg.grad_accum,
            log_with=list(cfg.log_with) or None, project_dir=str(self.run_dir),
            dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True,
                                                      data_seed=cfg.seed, non_blocking=not use_cpu),
            kwargs_handlers=[InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=cfg.collective_timeout_s))],
        )
        acc = self.accelerator
        on_accelerator = not use_cpu and torch.cuda.is_available()  # pinned host memory, non-blocking copies
        configure_logging(acc.is_main_process)
        self.logger = logging.getLogger(__name__)
        if cfg.batch_size % acc.num_processes:
            raise InputError(f"engine.batch_size={cfg.batch_size} must be divisible by the number of "
                             f"processes ({acc.num_processes}): it is the global batch")
        set_seed(cfg.seed)
        self.collate_fn = collate_fn
        self.evaluate_fn = evaluate_fn
        self.val_dataset = val_dataset
        self.callbacks = list(callbacks)
        self.state = TrainState()
        if isinstance(train_dataset, DataLoader):
            loader = train_dataset
        else:
            g = torch.Generator()
            g.manual_seed(cfg.seed)
            loader = DataLoader(train_dataset, batch_size=cfg.batch_size, shuffle=True,
                                drop_last=cfg.drop_last, num_workers=cfg.num_workers,
                                collate_fn=collate_fn, generator=g, pin_memory=on_accelerator)
        if len(loader) == 0:
            raise InputError(f"the training set gives no batch of size {cfg.batch_size} "
                             f"(dataset too small or batch too large; drop_last={cfg.drop_last})")
        groups = param_groups(module) if param_groups else [p for p in module.parameters() if p.requires_grad]
        optimizer = self._make_optimizer(groups)
        steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
        scheduler = self._make_scheduler(optimizer, steps_per_epoch * cfg.epochs, steps_per_epoch)
        self.module, self.optimizer, self.train_loader, self.scheduler = acc.prepare(
            module, optimizer, loader, scheduler)
        if cfg.log_with:
            acc.init_trackers("modalink", config=dict(tracker_config or {}))

    # -- construction helpers ------------------------------------------------------------
    def _make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        c = self.cfg
        # fused kernels (CPU and CUDA) cut the per-step optimizer cost; fall back where unsupported
        fused = {"fused": True} if c.fused_optimizer else {}
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, **fused)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, **fused)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        raise InputError(f"engine.optimizer={c.optimizer!r}; use adamw, adam or sgd")

    def _make_scheduler(self, opt: torch.optim.Optimizer, total: int, per_epoch: int) -> Any:
        c = self.cfg
        warm = max(0, c.warmup_steps)

        if c.scheduler == "none":
            fn = lambda s: min(1.0, (s + 1) / warm) if warm else 1.0  # noqa: E731
        elif c.scheduler == "cosine":
            def fn(s: int) -> float:
                if s < warm:
                    return (s + 1) / warm
                t = (s - warm) / max(1, total - warm)
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
        elif c.scheduler == "step":
            fn = lambda s: c.gamma ** ((s // per_epoch) // max(1, c.step_size_epochs))  # noqa: E731
        else:
            raise InputError(f"engine.scheduler={c.scheduler!r}; use none, cosine or step")
        return torch.optim.lr_scheduler.LambdaLR(opt, fn)

    # -- properties ----------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The unwrapped module (no DDP wrapper)."""
        return self.accelerator.unwrap_model(self.module)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # -- evaluation ----------------------------------------------------------------------
    def predict(self, dataset: Dataset, fn: Callable[[nn.Module, Any], Mapping[str, torch.Tensor]],
                batch_size: int | None = None, collate_fn: Callable | None = None,
                desc: str = "predict") -> dict[str, np.ndarray]:
        """Run ``fn(unwrapped_module, batch) -> dict of tensors`` over ``dataset`` on every process,
        gather with ``gather_for_metrics`` (duplicates from padding dropped) and return numpy
        arrays in dataset order on every process."""
        acc = self.accelerator
        bs = batch_size or self.cfg.batch_size
        bs = max(acc.num_processes, bs - bs % acc.num_processes)
        loader = acc.prepare_data_loader(
            DataLoader(dataset, batch_size=bs, shuffle=False, collate_fn=collate_fn or self.collate_fn,
                       num_workers=self.cfg.num_workers))
        model = self.model
        was = model.training
        model.eval()
        parts: dict[str, list[np.ndarray]] = {}
        try:
            with torch.no_grad():
                for batch in progress_bar(loader, desc=desc, leave=False,
                                  enabled=self.cfg.progress and self.is_main):
                    out = fn(model, batch)
                    gathered = acc.gather_for_metrics({k: v.contiguous() for k, v in out.items()})
                    for k, v in gathered.items():
                        parts.setdefault(k, []).append(v.float().cpu().numpy() if v.is_floating_point()
                                                       else v.cpu().numpy())
        finally:
            model.train(was)
        return {k: np.concatenate(v) for k, v in parts.items()}

    def _val_loss(self) -> dict[str, float]:
        def loss_fn(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
            out = model(batch)
            n = len(next(iter(batch.values()))) if isinstance(batch, Mapping) else len(batch[0])
            return {"loss": out["loss"].detach().float().reshape(1).repeat(n)}

        res = self.predict(self.val_dataset, loss_fn, desc="val loss")  # type: ignore[arg-type]
        return {"loss": float(res["loss"].mean())}

    def evaluate(self) -> dict[str, float]:
        """Run the evaluation (``evaluate_fn`` or validation loss); ``{}`` when there is neither."""
        if self.evaluate_fn is not None:
            return {k: float(v) for k, v in self.evaluate_fn(self).items()}
        if self.val_dataset is not None:
            return self._val_loss()
        return {}

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """``save_state`` into a temporary folder, then rename to ``checkpoints/step_N`` (atomic)."""
        acc = self.accelerator
        root = self.run_dir / "checkpoints"
        final = root / f"step_{self.state.global_step}"
        tmp = root / f".step_{self.state.global_step}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            atomic_write_text(tmp / _STATE_FILE, json.dumps(self.state.state_dict(), default=float) + "\n")
            best = self.run_dir / "best_model.pt"
            if best.is_file():  # the best weights as of this checkpoint (a hard link: no copy)
                try:
                    os.link(best, tmp / "best_model.pt")
                except OSError:
                    shutil.copy2(best, tmp / "best_model.pt")
            failpoint("checkpoint.before_marker")
            files = {p.relative_to(tmp).as_posix(): [p.stat().st_size, file_digest(p)]
                     for p in sorted(tmp.rglob("*")) if p.is_file()}
            atomic_write_text(tmp / _MARKER, json.dumps({"step": self.state.global_step, "files": files}) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in list_checkpoints(self.run_dir)[:-max(1, self.cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def _resume(self) -> str | None:
        """Load the newest intact checkpoint; damaged ones are set aside (``damaged_step_N``) with
        a warning that says why. Every process makes the same choice (the main one verifies)."""
        from modalink.engine.run_folder import _broadcast

        acc = self.accelerator
        if self.is_main:  # a killed save leaves a temp folder: never reused, removed here
            for tmp in (self.run_dir / "checkpoints").glob(".step_*.tmp"):
                shutil.rmtree(tmp, ignore_errors=True)
        if not self.cfg.resume:
            return None
        for ckpt in reversed(list_checkpoints(self.run_dir)):
            problem = verify_checkpoint(ckpt) if self.is_main else None
            problem = _broadcast(problem)
            if problem is None:
                try:
                    acc.load_state(str(ckpt))
                    state = json.loads((ckpt / _STATE_FILE).read_text())
                except Exception as exc:  # noqa: BLE001 - any unreadable part makes the checkpoint unusable
                    problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            if problem is None:
                self.state.load_state_dict(state)
                acc.wait_for_everyone()
                if self.is_main:
                    self._restore_best_model(ckpt)
                acc.wait_for_everyone()
                self.logger.info("resumed from %s (epoch %d, step %d)", ckpt, self.state.epoch,
                                 self.state.global_step)
                return str(ckpt)
            self.logger.warning("skipping damaged checkpoint %s: %s", ckpt, problem)
            acc.wait_for_everyone()
            if self.is_main:
                aside = ckpt.with_name(f"damaged_{ckpt.name}")
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(ckpt, aside)
            acc.wait_for_everyone()
        return None

    def _restore_best_model(self, ckpt: Path) -> None:
        """Make ``best_model.pt`` the best model AS OF the resumed checkpoint: a run killed after
        saving a new best but before its checkpoint, a fallback to an older checkpoint, or a
        damaged file would otherwise pair the resumed state with other weights."""
        path = self.run_dir / "best_model.pt"
        want = self.state.best_digest
        if want is None:  # no best model yet at this checkpoint: a later one is retrained
            if path.is_file():
                path.unlink()
            return
        if path.is_file() and file_digest(path) == want:
            return
        copy = ckpt / "best_model.pt"
        if not copy.is_file() or file_digest(copy) != want:
            raise DamagedFileError(
                f"{path} is missing or damaged and {ckpt} holds no intact copy of the best model (epoch "
                f"{self.state.best_epoch}); rerun with --overwrite to retrain")
        tmp = path.with_name(".best_model.pt.restore.tmp")
        shutil.copyfile(copy, tmp)
        os.replace(tmp, path)
        self.logger.warning("restored best_model.pt (epoch %s) from %s", self.state.best_epoch, ckpt)

    def _save_best(self) -> None:
        state = self.accelerator.get_state_dict(self.module)
        if self.is_main:
            path = atomic_torch_save({"state_dict": state, "epoch": self.state.epoch,
                                      "metric": self.state.best_metric, "monitor": self.cfg.monitor},
                                     self.run_dir / "best_model.pt")
            self.state.best_digest = file_digest(path)

    def _is_better(self, value: float) -> bool:
        best = self.state.best_metric
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        return value < best if self.cfg.monitor_mode == "min" else value > best

    # -- the loop ------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train for ``cfg.epochs`` (resuming if a checkpoint exists); keep the best model. What is
        logged meanwhile also goes to this trainer's ``log.txt``."""
        with log_also_to(self.run_dir / "log.txt", self.accelerator.is_main_process):
            return self._fit()

    def _fit(self) -> FitResult:
        cfg, acc, st = self.cfg, self.accelerator, self.state
        if cfg.monitor_mode not in ("min", "max"):
            raise InputError(f"engine.monitor_mode={cfg.monitor_mode!r}; use min or max")
        resumed = self._resume()
        metrics_path = self.run_dir / "metrics.jsonl"
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _keep_history(metrics_path, st.history)
        n_batches = len(self.train_loader)
        # fp16 with a gradient scaler: a step whose loss overflows is skipped by the scaler (counted in
        # the epoch's record as skipped_steps); in fp32/bf16 a non-finite loss means divergence
        skips_nonfinite = getattr(acc, "scaler", None) is not None
        while st.epoch < cfg.epochs:
            epoch = st.epoch
            self.module.train()
            self.train_loader.set_epoch(epoch)
            loader = self.train_loader
            if st.step_in_epoch:
                loader = acc.skip_first_batches(self.train_loader, st.step_in_epoch)
            sums: dict[str, torch.Tensor] = {}
            count = 0
            # non-finite losses are counted on the device and read back only when the loss is shown,
            # before a checkpoint and at the epoch's end: no host sync per step on an accelerator
            nonfinite = torch.zeros((), dtype=torch.int64, device=acc.device)
            finite_steps = torch.zeros((), dtype=torch.float32, device=acc.device)
            checked_step = st.global_step
            bar = progress_bar(loader, total=n_batches, initial=st.step_in_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       enabled=cfg.progress and acc.is_main_process, leave=False)
            for batch in bar:
                with acc.accumulate(self.module):
                    out = self.module(batch)
                    loss = out["loss"]
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm > 0:
                        acc.clip_grad_norm_(self.module.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                st.step_in_epoch += 1
                if acc.sync_gradients:
                    st.global_step += 1
                    failpoint("train.step")
                finite = torch.isfinite(loss.detach())
                nonfinite += ~finite
                finite_steps += finite
                for k, v in out.items():  # running sums stay tensors: no per-term conversion per step
                    if isinstance(v, torch.Tensor) and v.numel() == 1:
                        v = torch.where(finite, v.detach().float(), 0.0) if skips_nonfinite else v.detach().float()
                        sums[k] = sums[k] + v if k in sums else v
                count += 1
                log_now = bool(cfg.log_every_steps) and acc.sync_gradients and \
                    st.global_step % cfg.log_every_steps == 0
                checkpoint_now = bool(cfg.checkpoint_every_steps and acc.sync_gradients
                                      and st.global_step % cfg.checkpoint_every_steps == 0
                                      and st.step_in_epoch < n_batches)
                if log_now or checkpoint_now or st.step_in_epoch >= n_batches:
                    self._check_finite(int(nonfinite), skips_nonfinite, epoch, checked_step, st.global_step)
                    checked_step = st.global_step
                if log_now and acc.is_main_process:
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
                if log_now and cfg.log_with:
                    acc.log({f"train/{k}": float(v.detach()) for k, v in out.items()
                             if isinstance(v, torch.Tensor) and v.numel() == 1}, step=st.global_step)
                for cb in self.callbacks:
                    if hasattr(cb, "on_step_end"):
                        cb.on_step_end(self)
                if checkpoint_now:
                    self.save_checkpoint()
            bar.close()
            st.epoch += 1
            st.step_in_epoch = 0
            record: dict[str, Any] = {"epoch": st.epoch, "step": st.global_step,
                                      "lr": self.scheduler.get_last_lr()[0]}
            if sums:  # mean over every process's batches (collective: all processes call it)
                keys = sorted(sums)
                steps = finite_steps.clamp_min(1) if skips_nonfinite else max(1, count)
                local = torch.stack([sums[k].reshape(()) for k in keys]).to(acc.device) / steps
                means = acc.reduce(local, reduction="mean").tolist()
                record.update({f"train/{k}": v for k, v in zip(keys, means)})
            skipped = int(nonfinite)
            if skipped:
                record["skipped_steps"] = skipped
            if cfg.eval_every_epochs and (st.epoch % cfg.eval_every_epochs == 0 or st.epoch == cfg.epochs):
                metrics = self.evaluate()
                record.update({f"val/{k}": v for k, v in metrics.items()})
                if metrics:
                    if cfg.monitor not in metrics:
                        raise ConfigError(f"engine.monitor: {cfg.monitor!r} is not among the evaluation metrics; "
                                          f"valid monitors: {', '.join(sorted(metrics))}")
                    value = metrics[cfg.monitor]
                    if self._is_better(value):
                        st.best_metric, st.best_epoch = value, st.epoch
                        self._save_best()
                        record["best"] = True
            st.history.append(record)
            if acc.is_main_process:
                append_jsonl(metrics_path, record)
                shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                                  if isinstance(v, float) and k != "lr")
                self.logger.info("epoch %d/%d: %s", st.epoch, cfg.epochs, shown)
            if cfg.log_with:
                acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=st.global_step)
            for cb in self.callbacks:
                if hasattr(cb, "on_epoch_end"):
                    cb.on_epoch_end(self, record)
            if cfg.checkpoint_every_epochs and (st.epoch % cfg.checkpoint_every_epochs == 0
                                                or st.epoch == cfg.epochs):
                self.save_checkpoint()
        self.load_best()
        if cfg.log_with:
            acc.end_training()
        return FitResult(st.best_metric, st.best_epoch, list(st.history), self.run_dir, resumed)

    def _check_finite(self, nonfinite: int, skips_nonfinite: bool, epoch: int, since: int, step: int) -> None:
        """Raise :class:`DivergedError` when a loss of steps ``since+1..step`` was NaN or inf (fp32/bf16),
        or when every step of an fp16 epoch so far was skipped for one."""
        if not nonfinite:
            return
        if skips_nonfinite and nonfinite < max(1, self.state.step_in_epoch):
            return
        where = f"step {step}" if step - since <= 1 else f"steps {since + 1}-{step}"
        raise DivergedError(f"the loss became NaN or inf at epoch {epoch + 1}, {where}; lower engine.lr "
                            "or check the data")

    def load_best(self) -> bool:
        """Load ``best_model.pt`` into the module if it exists (every process)."""
        path = self.run_dir / "best_model.pt"
        self.accelerator.wait_for_everyone()
        if not path.is_file():
            return False
        ckpt = load_torch_weights(path, "best model")
        self.model.load_state_dict(ckpt["state_dict"])
        return True
