"""SRMM (one shared branch, modality switching) and the two-branch late-fusion baseline on cached
image/text embeddings: config, encoders and models.

``recipes/srmm`` wires these with :mod:`modalink.classification.embeddings` (extraction and
cache), :mod:`modalink.classification.evaluation` and the shared run-folder, export and
command-line helpers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, get_args

from modalink.classification.conditions import MissingConfig, missing_config_errors
from modalink.classification.image_features import check_image_encoder_name, create_image_features
from modalink.classification.trainer_module import MODALITIES, MissingModalityModule
from modalink.config import absolute_path, bounded, make_paths_absolute, path_field
from modalink.engine import EngineConfig
from modalink.errors import UserError
from modalink.models import create_model
from modalink.models.modality_sampling import SubsetSampler
from modalink.text.encoders import TextEncoder, create_text_encoder, text_encoder_name

if TYPE_CHECKING:
    from modalink.classification.training import MethodPlan

log = logging.getLogger(__name__)

METHODS = ("srmm", "late_fusion")
Switching = Literal["per_sample", "per_batch", "alternate", "none"]  # SubsetSampler.MODES and none
SWITCHING: tuple[str, ...] = get_args(Switching)
Norm = Literal["layer", "batch", "none"]
METHOD_TITLES = {"srmm": "SRMM (single branch, switching)", "late_fusion": "Late fusion (two branches)"}

# UPMC Food-101 test accuracy (%) reported in SRMM (arXiv 2408.07445) and, for ViLT, in Ma et al.
# (CVPR 2022) as quoted there: complete data / 30 % of the test samples with text.
PUBLISHED = {
    "SRMM (arXiv 2408.07445)": {"complete": 94.6, "text=30%": 84.8},
    "ViLT (Ma et al. 2022)": {"complete": 91.9, "text=30%": 65.9},
}


@dataclass
class SyntheticConfig:
    """Arguments of :func:`modalink.classification.synthetic_food101.generate_synthetic_food101` (the data
    used without --data-root): class = (visual group, text group). Without ``options`` the image
    shows only the visual group and the title only the text group; ``options`` such as
    ``title_visual_hint``, ``image_text_cue`` and ``image_difficulty`` make each modality alone
    (nearly) sufficient, as in real Food-101 (see ``hparams/default.yaml``)."""

    n_classes: int = 10
    n_train_per_class: int = 100
    n_test_per_class: int = 30
    image_size: int = 64
    seed: int = 0
    n_text_groups: int = 2
    words_per_group: int = 6
    options: dict[str, Any] = field(default_factory=dict)  # further generator arguments, passed as is


@dataclass
class DataConfig:
    root: str | None = path_field()  # Food-101 layout; None: generate the synthetic default
    cache_dir: str | None = path_field()  # default: <output_dir>/cache
    val_fraction: float | None = bounded(None, ge=0.0, lt=1.0)  # val share of the train file; None: load_food101's (6846/67988)
    val_seed: int = 0  # load_food101's split seed
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ImageEncoderConfig:
    name: str = "pixel-stats"  # a registered image encoder: pixel-stats, timm/<arch>, facenet_vggface2, ...
    pretrained: bool = True  # false: random weights (seeded); pixel-stats has no weights
    weights: str | None = path_field()  # local weights file
    options: dict[str, Any] = field(default_factory=dict)  # the encoder's own arguments, e.g. {size: 32}
    seed: int = 0
    batch_size: int = 64
    num_workers: int = 0
    device: str | None = None


@dataclass
class TextEncoderConfig:
    name: str = "hashed-bow"  # a text encoder name (hashed-bow, word-vectors, sentence-transformers/<model>,
    #                           st:<path>) or auto
    options: dict[str, Any] = field(default_factory=dict)  # constructor arguments, e.g. {dim: 1024}
    batch_size: int = 256


@dataclass
class PrepareConfig:
    shard_size: int = 1024
    force: bool = False  # rebuild caches even when valid
    progress: bool = True


@dataclass
class ModelConfig:
    embed_dim: int = 128
    stem_dim: int = 256
    trunk_hidden: list[int] = field(default_factory=lambda: [256])
    norm: Norm = "layer"
    dropout: float = bounded(0.2, ge=0.0, lt=1.0)
    switching: Switching = "per_sample"
    modality_subsets: dict[str, float] = field(
        default_factory=lambda: {"image": 1.0, "text": 1.0, "image+text": 1.0})
    aux_weight: float = 0.0  # extra CE on each kept modality's own logits


@dataclass
class BaselineConfig:
    enabled: bool = True
    embed_dim: int = 128
    hidden: list[int] = field(default_factory=lambda: [256])
    norm: Norm = "layer"
    dropout: float = bounded(0.2, ge=0.0, lt=1.0)
    fusion: Literal["mlp", "concat", "mean"] = "mlp"  # mlp: concat -> MLP -> classifier (the standard head);
    #                                                   concat: linear; mean: mean of per-branch logits


@dataclass
class SRMMConfig:
    """The whole recipe (``hparams/*.yaml``, ``key=value`` overrides)."""

    output_dir: str = path_field("runs/srmm")
    data: DataConfig = field(default_factory=DataConfig)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    missing: MissingConfig = field(default_factory=lambda: MissingConfig(splits=["test", "train"]))
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(
        epochs=30, batch_size=64, lr=1e-3, weight_decay=1e-4, scheduler="cosine", monitor="acc",
        monitor_mode="max", cpu=False))

    def validate_config(self) -> None:
        """Registry checks and the missing-modality conditions, run by
        :func:`modalink.config.load_config` before any data is read."""
        try:
            check_image_encoder_name(self.image_encoder.name)
        except KeyError as e:
            raise ValueError(f"image_encoder.name: {e.args[0]}") from None
        if self.text_encoder.name != "auto":
            try:
                text_encoder_name(self.text_encoder.name)
            except KeyError as e:
                raise ValueError(f"text_encoder.name: {e.args[0]}; or auto (sentence-transformers when "
                                 "installed, else hashed-bow)") from None
        for error in missing_config_errors(self.missing):
            raise ValueError(error)


def absolute_paths(cfg: SRMMConfig, base: str | os.PathLike | None = None) -> SRMMConfig:
    """Make every file setting of ``cfg`` absolute, in place (relative ones are taken from ``base``,
    default the current folder): ``output_dir``, ``data.root``, ``data.cache_dir``,
    ``image_encoder.weights``, ``text_encoder.options.path`` and a local ``st:<folder>`` text
    encoder. The run's ``config.yaml`` then names the same files from any working directory, so
    ``evaluate.py RUN`` works wherever it is started."""
    b = Path(os.path.abspath(base if base is not None else os.getcwd()))
    _absolute = absolute_path
    make_paths_absolute(cfg, b)
    opts = cfg.text_encoder.options
    if isinstance(opts, dict) and isinstance(opts.get("path"), str) and opts["path"]:
        opts["path"] = _absolute(opts["path"], b)
    name = cfg.text_encoder.name
    if name.startswith("st:") and (b / Path(name[3:]).expanduser()).exists():
        cfg.text_encoder.name = "st:" + str(_absolute(name[3:], b))
    return cfg


def switching_sampler(cfg: SRMMConfig) -> SubsetSampler | None:
    """SRMM's modality switching (``model.switching``, ``model.modality_subsets``) as the trainer
    module's sampler; ``None`` for ``none``. The subsets are drawn with the CPU generator wherever
    the model runs, as they always were, so seeded runs keep their numbers on every device."""
    m = cfg.model
    if m.switching == "none":
        return None
    return SubsetSampler(m.modality_subsets, MODALITIES, m.switching, draw_on_cpu=True)


def build_srmm(cfg: SRMMConfig, dims: Mapping[str, int], num_classes: int) -> MissingModalityModule:
    """The single-branch SRMM network with the configured switching schedule."""
    m = cfg.model
    net = create_model("srmm", input_dims=dict(dims), embed_dim=m.embed_dim, stem_dim=m.stem_dim,
                       trunk_hidden=list(m.trunk_hidden), norm=m.norm, dropout=m.dropout,
                       num_classes=num_classes, modality_subsets=None)
    return MissingModalityModule(net, "embeddings", aux_weight=m.aux_weight, sampler=switching_sampler(cfg))


def build_late_fusion(cfg: SRMMConfig, dims: Mapping[str, int], num_classes: int) -> MissingModalityModule:
    """The two-branch late-fusion baseline (no switching: a missing text is a zero vector)."""
    b = cfg.baseline
    net = create_model("late_fusion", input_dims=dict(dims), embed_dim=b.embed_dim, hidden=list(b.hidden),
                       norm=b.norm, dropout=b.dropout, num_classes=num_classes, fusion=b.fusion)
    return MissingModalityModule(net, "embeddings")


def build_text_encoder(cfg: SRMMConfig) -> TextEncoder:
    """The configured text encoder; ``auto`` = sentence-transformers when installed, else hashed-bow."""
    name, opts = cfg.text_encoder.name, dict(cfg.text_encoder.options)
    if name == "auto":
        try:
            import sentence_transformers  # noqa: F401

            name = "sentence-transformers/all-MiniLM-L6-v2"
        except ImportError:
            name = "hashed-bow"
        log.info("text encoder 'auto' → %s", name)
    if name.startswith(("st:", "sentence-transformers")):
        opts.setdefault("name_option", "text_encoder.name")  # named in the message when the model is missing
    return create_text_encoder(name, **opts)


def build_image_encoder(cfg: SRMMConfig) -> Any:
    """The configured image feature extractor; missing timm weights raise one message that names
    the file, where to put it and ``image_encoder.weights=`` (the setting that points at a file)."""
    c = cfg.image_encoder
    return create_image_features(c.name, pretrained=c.pretrained, weights=c.weights, device=c.device,
                                 num_workers=c.num_workers, seed=c.seed, weights_option="image_encoder.weights",
                                 **c.options)


def build_encoders(cfg: SRMMConfig) -> tuple[Any, TextEncoder]:
    """(image, text) encoders: built before a run folder is written, so that missing weights or a
    bad encoder setting end the command before anything is created. An unknown name, a bad
    option or an optional package that is not installed is the user's to fix: a
    :class:`modalink.errors.UserError` naming the setting."""
    built = []
    for key, build in (("image_encoder", build_image_encoder), ("text_encoder", build_text_encoder)):
        try:
            built.append(build(cfg))
        except (KeyError, ValueError, TypeError, ImportError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise UserError(f"{key}: {msg} (settings {key}.name / {key}.options)") from e
    return built[0], built[1]


def wrap(name: str, net: Any, cfg: SRMMConfig) -> MissingModalityModule:
    """A trained network (e.g. from :func:`modalink.hub.from_pretrained`) inside its trainer module."""
    if name == "srmm":
        return MissingModalityModule(net, "embeddings", aux_weight=cfg.model.aux_weight,
                                     sampler=switching_sampler(cfg))
    return MissingModalityModule(net, "embeddings")


def results_info(data: Any, cfg: SRMMConfig) -> dict[str, Any]:
    """What ``results.json`` records besides the table: data, encoders, training condition and
    the published Food-101 figures (references, not measured here)."""
    return {"dataset": data.description, "num_classes": data.num_classes, "image_encoder": data.image_encoder,
            "text_encoder": data.text_encoder, "train_condition": cfg.missing.train, "references": PUBLISHED}


def method_plans(cfg: SRMMConfig, data: Any) -> list["MethodPlan"]:
    """SRMM (seeded: its initial weights come from ``engine.seed`` whatever the process) and, with
    ``baseline.enabled``, late fusion (built after SRMM's training), selected on validation accuracy
    with the image-only accuracy logged beside it."""
    import numpy as np

    from modalink.classification.datasets import collate_embeddings
    from modalink.classification.evaluation import predict_logits
    from modalink.classification.training import MethodPlan
    from modalink.metrics import accuracy

    train_set, val_set = data.train_set(cfg), data.val_set(cfg)

    def evaluate(trainer: Any) -> dict[str, float]:
        logits = predict_logits(trainer.model, val_set, collate_embeddings, batch_size=1024, trainer=trainer)
        res = {"acc": accuracy(val_set.labels, logits)}
        img_only = val_set.with_mask(has_text=np.zeros(len(val_set), dtype=bool))
        res["acc_image_only"] = accuracy(img_only.labels, predict_logits(
            trainer.model, img_only, collate_embeddings, batch_size=1024, trainer=trainer))
        return res

    def describe(module: Any) -> str:
        return (f"{len(train_set)} train / {len(val_set) if val_set is not None else 0} val samples, "
                f"{data.num_classes} classes, dims {data.dims}")

    def plan(name: str, build: Any, seed: int | None) -> MethodPlan:
        return MethodPlan(name, lambda: build(cfg, data.dims, data.num_classes), train_set, cfg.engine,
                          collate_embeddings, evaluate if val_set is not None else None, seed=seed, describe=describe)

    plans = [plan("srmm", build_srmm, cfg.engine.seed)]
    if cfg.baseline.enabled:
        plans.append(plan("late_fusion", build_late_fusion, None))
    return plans


def model_contract(data: Any) -> dict[str, Any]:
    """What an exported model reads: embeddings of these encoders and widths."""
    return {"inputs": "embeddings", "dims": dict(data.dims), "image_encoder": data.image_encoder,
            "text_encoder": data.text_encoder}
