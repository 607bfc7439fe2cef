"""The encoder contract, the encoder base class, the registry and offline-first weight lookup.

Weight lookup order (:func:`resolve_weights`):

1. an explicit local file/folder (``weights=...``) — used as is, must exist;
2. local caches: ``$MODALINK_HOME/weights/<encoder>/...`` (default ``~/.cache/modalink``),
   then the library's own cache (torch hub checkpoints, Hugging Face hub cache);
3. the remote source — only when not offline.

Offline mode (``offline=True``, or ``MODALINK_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` in the
environment), an unreachable server or a failed download turn step 3 into a
:class:`WeightsNotFoundError` that names the missing file, the absolute place to put it and the
program's setting that points at a file; :func:`build_all` gathers the misses of several
encoders into one :class:`MissingWeightsError`, so a run reports all of them at once.
``pretrained=False`` skips all of this: random weights, no file system or network access.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
import torch.nn as nn

from modalink.errors import UserError
from modalink.registry import Registry

Modality = Literal["face", "voice", "image"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class EncoderContract:
    """What an encoder expects and returns; data code reads preprocessing from here.

    Image encoders fill ``image_size`` (H, W), ``mean``/``std`` (applied to pixels scaled to
    [0, 1]), ``interpolation`` and ``crop_pct``. Audio encoders fill ``sample_rate`` and
    ``features`` (a short description of the front end the encoder applies itself).
    """

    name: str
    modality: Modality
    input_kind: Literal["image", "audio"]
    output_dim: int
    l2_normalized: bool
    weight_source: str
    weight_url: str | None = None
    licence: str = "unknown"
    image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    sample_rate: int | None = None
    features: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.input_kind == "image":
            if self.image_size is None or self.mean is None or self.std is None:
                raise ValueError(f"image contract {self.name!r} needs image_size, mean and std")
        elif self.input_kind == "audio":
            if not self.sample_rate:
                raise ValueError(f"audio contract {self.name!r} needs sample_rate")
        else:
            raise ValueError(f"contract {self.name!r}: unknown input_kind {self.input_kind!r}")
        if self.output_dim <= 0:
            raise ValueError(f"contract {self.name!r}: output_dim must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


class PreprocessError(UserError, ValueError):
    """A raw input the encoder cannot turn into a tensor under its policy. ``reason`` counts it."""

    reason = "preprocess_error"


class NoFaceError(PreprocessError):
    """No face was detected and the policy is ``no_face="skip"``."""

    reason = "no_face"


@dataclass
class EncoderBatch:
    """Preprocessed inputs for :meth:`Encoder.embed_batch`.

    ``kept[i]`` is the position, in the raw list given to ``preprocess_batch``, of row ``i`` of
    ``inputs``. ``dropped`` maps raw positions that produced no row to a reason; ``flagged`` maps
    raw positions that produced a row through a fallback (e.g. centre crop) to a note.
    ``lengths`` holds relative lengths (0–1] for padded audio, else ``None``.
    """

    inputs: torch.Tensor | None
    kept: list[int]
    lengths: torch.Tensor | None = None
    dropped: dict[int, str] = field(default_factory=dict)
    flagged: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kept)


class Encoder(nn.Module):
    """Base class: a pretrained modality encoder with its :class:`EncoderContract`.

    Uniform methods: ``preprocess(raw) -> Tensor`` (one raw input), ``preprocess_batch(raws)
    -> EncoderBatch`` (never raises for one bad item), ``embed(inputs) -> Tensor`` (no grad,
    (B, output_dim)) and ``embed_batch(batch)``. ``forward`` is the differentiable path.
    :func:`create_encoder` returns encoders in eval mode; call ``.eval()`` on one built directly.
    """

    contract: EncoderContract
    #: The weights file/folder actually loaded (``None`` for random weights).
    weights_path: str | None = None
    #: How :func:`create_encoder` built it: ``{"name": ..., "options": {...}}`` (``None`` when built directly).
    build_spec: dict[str, Any] | None = None

    def identity(self, seed: int | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What decides this encoder's embeddings, JSON-safe: the name it was created under, its
        options and contract (preprocessing, output width) and its weights — a content digest of
        the file it loaded, ``"random (seed N)"`` for random weights built under ``seed``, or
        ``"none"`` for an encoder without parameters — plus, under ``extra``, settings a caller
        applies outside the encoder's options (e.g. FAME's no-face policy set after creation).
        The one cache key of embeddings and the record an exported model keeps of its inputs."""
        import json

        from modalink.encoders.contract_check import weights_identity

        spec = self.build_spec or {"name": self.contract.name, "options": {}}
        if not any(True for _ in self.parameters()):
            weights = "none"
        elif self.weights_path:
            weights = weights_identity(self.weights_path) or str(self.weights_path)
        else:
            weights = weights_identity(random=True, seed=seed)
        body = {"name": spec["name"], "options": spec["options"], "contract": self.contract.to_dict(),
                "output_dim": self.output_dim, "weights": weights}
        if extra:
            body["extra"] = dict(extra)
        return json.loads(json.dumps(body, sort_keys=True, default=str))

    @property
    def output_dim(self) -> int:
        return self.contract.output_dim

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def preprocess(self, raw: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def collate(self, items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stack preprocessed items into a batch; returns (inputs, lengths or None)."""
        return torch.stack(list(items)), None

    def preprocess_batch(self, raws: Sequence[Any]) -> EncoderBatch:
        """Preprocess each raw input; items raising :class:`PreprocessError` are dropped, not fatal."""
        items, kept, dropped = [], [], {}
        for i, raw in enumerate(raws):
            try:
                items.append(self.preprocess(raw))
                kept.append(i)
            except PreprocessError as e:
                dropped[i] = e.reason
        if not items:
            return EncoderBatch(None, [], None, dropped)
        inputs, lengths = self.collate(items)
        return EncoderBatch(inputs, kept, lengths, dropped)

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, ...) preprocessed inputs → (B, output_dim) embeddings, without gradients."""
        with torch.no_grad():
            inputs = inputs.to(self.device)
            if lengths is not None:
                return self.forward(inputs, lengths.to(self.device))
            return self.forward(inputs)

    def embed_batch(self, batch: EncoderBatch) -> torch.Tensor:
        """Embed an :class:`EncoderBatch`; an empty batch gives a (0, output_dim) tensor."""
        if batch.inputs is None or len(batch) == 0:
            return torch.zeros(0, self.output_dim)
        return self.embed(batch.inputs, batch.lengths)


# ----------------------------------------------------------------------------- devices


class DeviceNotAvailableError(UserError, ValueError):
    """A requested device (``cuda``, ``cuda:N``, ``mps``) is not usable on this machine."""


def resolve_device(name: str | torch.device | None = "auto", option: str = "--device") -> torch.device:
    """``auto`` (or ``None``) → ``cuda`` when a CUDA device is usable, else ``cpu``; any other
    name is checked: an absent device raises :class:`DeviceNotAvailableError` with one line
    naming ``option`` and what to use instead (never torch's "Found no NVIDIA driver")."""
    if name is None or (isinstance(name, str) and name.strip().lower() in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name.strip() if isinstance(name, str) else name)
    except (RuntimeError, ValueError):
        raise DeviceNotAvailableError(
            f"{option} {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceNotAvailableError(
                f"{option} {name}: no CUDA GPU is usable on this machine (no NVIDIA driver/GPU, or a CPU-only "
                f"torch build); use {option} cpu or {option} auto")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceNotAvailableError(
                f"{option} {name}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceNotAvailableError(f"{option} {name}: Apple MPS is not available here; use {option} cpu")
    elif dev.type != "cpu":
        raise DeviceNotAvailableError(f"{option} {name}: unsupported device type {dev.type!r}; use auto, cpu, "
                                      "cuda, cuda:N or mps")
    return dev


# ----------------------------------------------------------------------------- registry

ENCODERS: Registry[Encoder] = Registry("encoder", providers=("modalink.encoders",))
register_encoder = ENCODERS.register


def create_encoder(name: str, pretrained: bool = False, weights: str | os.PathLike | None = None,
                   offline: bool | None = None, **kwargs: Any) -> Encoder:
    """Build a registered encoder in eval mode.

    ``name`` is a registered name (see :func:`list_encoders`) or ``"timm/<architecture>"`` for
    any timm backbone. ``pretrained=False`` gives random weights and never touches disk or
    network; ``weights`` is an explicit local file/folder (implies ``pretrained=True``);
    ``offline`` (default: from the environment) forbids downloads.
    """
    asked = name
    options = dict(kwargs)
    if name.startswith("timm/"):
        kwargs["model_name"] = name[len("timm/"):]
        name = "timm"
    if weights is not None:
        pretrained = True
    enc = ENCODERS.create(name, pretrained=pretrained, weights=weights, offline=offline, **kwargs)
    enc.build_spec = {"name": asked, "options": {k: v for k, v in options.items() if k not in _NOT_IDENTITY}}
    return enc.eval()


#: create_encoder options that change where an encoder runs or how a missing file is named, not what it computes
_NOT_IDENTITY = frozenset({"device", "num_workers", "progress", "weights_option"})


def list_encoders(pattern: str | None = None) -> list[str]:
    """Sorted registered encoder names (``"timm"`` accepts ``"timm/<arch>"`` in create_encoder)."""
    return ENCODERS.list(pattern)


# ----------------------------------------------------------------------------- weights


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not available locally and may not (or could not) be downloaded."""


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else true when MODALINK_OFFLINE, HF_HUB_OFFLINE or
    TRANSFORMERS_OFFLINE is set to 1/true/yes/on."""
    if offline is not None:
        return bool(offline)
    return any(os.environ.get(k, "").strip().lower() in _TRUE
               for k in ("MODALINK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def modalink_home() -> Path:
    """``$MODALINK_HOME`` or ``$XDG_CACHE_HOME/modalink`` or ``~/.cache/modalink``."""
    env = os.environ.get("MODALINK_HOME")
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    return Path(os.path.abspath(os.path.expanduser(os.environ.get("XDG_CACHE_HOME", "~/.cache")))) / "modalink"


def weights_cache_dir(encoder: str) -> Path:
    """Where modalink looks for (and downloads) an encoder's weights: ``<home>/weights/<encoder>``."""
    return modalink_home() / "weights" / encoder


def torch_checkpoint_dirs() -> list[Path]:
    """torch's checkpoint caches: ``$TORCH_HOME/checkpoints`` (where facenet-pytorch caches) and
    ``<torch.hub.get_dir()>/checkpoints`` (``load_state_dict_from_url``)."""
    torch_home = Path(os.environ.get(
        "TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch")).expanduser()
    dirs = [torch_home / "checkpoints", Path(torch.hub.get_dir()).expanduser() / "checkpoints"]
    return list(dict.fromkeys(dirs))


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file already in the Hugging Face hub cache, or ``None`` (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm/speechbrain
        return None
    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, (str, os.PathLike)) and Path(found).is_file() else None


def _short_reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def missing_weights_text(what: str, reason: str, *, filename: str, put_at: Path, url: str | None = None,
                         weights_option: str | None = None, point_at: str | None = None,
                         searched: Sequence[Path] = (), extra: Sequence[str] = ()) -> str:
    """The message for one encoder's absent weights: what is missing, where to put it, how to point at it.

    Same layout as the timm/sentence-transformers messages, so a program that misses several
    encoders' weights can print the blocks one after the other (:class:`MissingWeightsError`).
    """
    opt = weights_option or "weights"
    point = point_at or f"/path/to/{filename}"
    lines = [f"{what}: pretrained weights not found locally, and {reason}.",
             f"  missing file:   {filename}" + (f" ({url})" if url else ""),
             f"  put it at:      {os.path.abspath(put_at)}",
             f"  or point at it: {opt}={point}",
             *(f"                  {e}" for e in extra)]
    others = [os.path.abspath(p) for p in searched if os.path.abspath(p) != os.path.abspath(put_at)]
    if others:
        lines.append("  also searched:  " + ", ".join(others))
    return "\n".join(lines)


def resolve_weights(what: str, *, weights: str | os.PathLike | None, candidates: Sequence[Path | None],
                    offline: bool | None, download: Callable[[], Path] | None, filename: str,
                    url: str | None = None, weights_option: str | None = None, point_at: str | None = None,
                    probe: Callable[[], str | None] | None = None, extra: Sequence[str] = (),
                    is_valid: Callable[[Path], bool] = Path.is_file) -> Path:
    """Find weights: explicit ``weights`` → first existing ``candidates`` → ``download()``.

    ``is_valid`` decides whether a path is usable (default: an existing file). When nothing is
    local and the run is offline (see :func:`is_offline`), the source does not answer ``probe()``
    (a quick check returning ``None`` or why not, so an unreachable server costs seconds, not a
    minute of retries), or the download fails, :class:`WeightsNotFoundError` carries
    :func:`missing_weights_text`: the missing ``filename`` (and ``url``), the absolute place to put
    it (the first candidate), and ``weights_option`` (the calling program's setting, e.g.
    ``--face-weights``) to point at a file.
    """
    opt = weights_option or "weights"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"{what}: weights path {os.path.abspath(path)} ({opt}={weights}) does not exist")
        if not is_valid(path):
            raise WeightsNotFoundError(f"{what}: {os.path.abspath(path)} ({opt}={weights}) is not usable weights; "
                                       f"expected {point_at or filename}")
        return path
    searched = [Path(os.path.abspath(c)) for c in candidates if c is not None]
    for c in searched:
        if c.exists() and is_valid(c):
            return c
    put_at = searched[0] if searched else Path(os.path.abspath(filename))

    def missing(reason: str) -> WeightsNotFoundError:
        return WeightsNotFoundError(missing_weights_text(
            what, reason, filename=filename, put_at=put_at, url=url, weights_option=weights_option,
            point_at=point_at, searched=searched, extra=extra))

    if is_offline(offline) or download is None:
        raise missing("offline mode forbids downloading (offline=True, --offline or MODALINK_OFFLINE=1)")
    why = probe() if probe is not None else None
    if why is not None:
        raise missing(f"the download server cannot be reached ({why})")
    try:
        return download()
    except Exception as e:  # noqa: BLE001 - network errors come in many types
        raise missing(f"the download failed ({_short_reason(e)})") from e


class MissingWeightsError(WeightsNotFoundError):
    """The weights of several encoders are missing: one message listing them all."""

    def __init__(self, errors: Sequence[WeightsNotFoundError], note: str = "") -> None:
        self.errors = list(errors)
        n = len(self.errors)
        head = (f"pretrained weights are missing for {n} encoders" if n > 1 else "pretrained weights are missing")
        head += f"{'; ' + note if note else ''}:"
        super().__init__("\n".join([head, *(str(e) for e in self.errors)]))


def build_all(builders: Sequence[Callable[[], Any]], note: str = "") -> list[Any]:
    """Call every builder; when some raise :class:`WeightsNotFoundError`, raise one
    :class:`MissingWeightsError` naming all of them (instead of one per run)."""
    built, errors = [], []
    for build in builders:
        try:
            built.append(build())
        except WeightsNotFoundError as e:
            errors.extend(e.errors if isinstance(e, MissingWeightsError) else [e])
    if errors:
        raise MissingWeightsError(errors, note)
    return built
