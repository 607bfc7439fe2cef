"""Chameleon and the multi-branch baseline: config, data (photos + texts), models, collates.

Methods (``methods:`` in the config):

* ``chameleon`` — :class:`modalink.models.image_classifier.ChameleonClassifier`: the text is
  rendered as an image (:class:`modalink.text.render.TextToImage`) and ONE visual backbone
  reads both the photo and the text image.
* ``multi_branch`` — :class:`modalink.models.image_classifier.MultiBranchClassifier`: an image
  network and a text network (MLP over mean word vectors or a hashed bag of words) fused late;
  a missing text is a zero vector.

``recipes/chameleon`` wires these with :mod:`modalink.classification.evaluation` and the shared
run-folder, export and command-line helpers.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np

from modalink.classification.batches import BatchBuilder
from modalink.classification.conditions import MissingConfig, condition_mask, missing_config_errors
from modalink.classification.datasets import PhotoTextSet, PhotoTransform
from modalink.classification.evaluation import predict_logits, score
from modalink.classification.trainer_module import MissingModalityModule
from modalink.config import bounded, path_field
from modalink.engine import EngineConfig
from modalink.errors import InputError, UserError

if TYPE_CHECKING:
    from modalink.classification.training import MethodPlan

Method = Literal["chameleon", "multi_branch"]
METHODS: tuple[str, ...] = typing.get_args(Method)
METHOD_TITLES = {"chameleon": "Chameleon (text as image, one network)",
                 "multi_branch": "Multi-branch (image net + text net, late fusion)"}
METRIC_TITLES = {"accuracy": "accuracy", "auroc": "AUROC", "f1_macro": "macro F1", "f1_micro": "micro F1"}

# ----------------------------------------------------------------------------- config
@dataclass
class SyntheticConfig:
    """Arguments of the synthetic Food-101 generator (used when ``data.root`` is unset)."""

    n_classes: int = 10
    n_train_per_class: int = 100
    n_test_per_class: int = 30
    image_size: int = 64
    seed: int = 0
    n_text_groups: int = 2  # class = (visual group, text group)
    words_per_group: int = 6
    title_visual_hint: float = 0.0  # P(title also names the visual group): redundancy real titles have
    image_difficulty: float = 0.0  # photo clutter (0-1): the photo is harder to read than the title
    image_text_cue: float = 0.0  # P(photo also shows the text group): the image alone can decide
    evidence: Literal["complementary"] | None = None  # neither modality alone decides (hint and cue stay 0)
    preset: Literal["complementary"] | None = None  # "complementary": the generator's COMPLEMENTARY preset (neither modality
    #                            decides alone); when the config is loaded it replaces every field above
    #                            except ``seed`` and those given as key=value overrides (apply_synthetic_preset)


@dataclass
class DataConfig:
    dataset: str = "food101"  # a name of modalink.classification.records.list_datasets()
    root: str | None = path_field()  # dataset folder; None: generate synthetic Food-101 data
    synthetic_dir: str | None = path_field()  # where the synthetic data goes (default <output_dir>/data)
    train_split: str = "train"
    val_split: str | None = "val"  # None: hold out val_fraction of the training split
    test_split: str = "test"
    val_fraction: float = bounded(0.1, ge=0.0, lt=1.0)
    split_seed: int = 0
    loader_options: dict[str, Any] = field(default_factory=dict)  # extra loader arguments
    image_size: int = bounded(64, ge=8)  # photos are resized (shorter side) and centre-cropped to this
    resize_ratio: float = bounded(1.0, ge=1.0)  # shorter side = image_size * resize_ratio before the crop
    hflip: bool = False  # random horizontal flips of training photos
    in_memory: bool | None = None  # decode photos once into RAM (None: only for synthetic data)
    max_train: int = 0  # use at most this many training samples (0: all)
    max_test: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class TextImageConfig:
    """Text → image rendering (Chameleon): word vectors quantised to RGB superpixels."""

    mode: Literal["joint", "fused"] = "joint"  # joint: photo and text image, same network; fused: text band on the photo
    word_vectors: str | None = path_field()  # word2vec/GloVe file; None: built-in hashed vectors
    dim: int = 300  # dimension of the hashed vectors (ignored with a file)
    superpixel: int = bounded(3, ge=1)
    max_words: int | None = None  # default: what fits on the canvas
    band_height: int | None = None  # fused mode: text band rows (default image_size // 4)
    layout: Literal["flow", "tiles"] = "flow"  # flow: words back to back (the paper); tiles: one block per word
    word_gap: int = 0  # tiles layout: blank cells between word blocks
    repeat: bool = False  # repeat the words cyclically to fill the canvas
    seed: int = 0


@dataclass
class ChameleonConfig:
    backbone: str = "resnet18"
    pretrained: bool = False
    weights: str | None = path_field()  # local weights file for the backbone
    drop_text: float = 0.3  # training-time modality dropout
    drop_image: float = 0.1
    dropout: float = 0.0
    aux_weight: float = 0.5  # joint mode: weight of the per-input losses (photo alone, text image alone)
    timm_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {img_size: 64} for ViTs


@dataclass
class BaselineConfig:
    backbone: str | None = None  # default: chameleon.backbone
    pretrained: bool | None = None  # default: chameleon.pretrained
    weights: str | None = path_field()  # default: chameleon.weights
    text_encoder: str = "word-vectors"  # a text encoder name: word-vectors (Chameleon's vectors), hashed-bow, ...
    text_options: dict[str, Any] = field(default_factory=dict)  # e.g. {dim: 1024} for hashed-bow
    embed_dim: int = 256
    hidden: list[int] = field(default_factory=lambda: [256])
    fusion: Literal["concat", "mean"] = "concat"
    norm: Literal["layer", "batch", "none"] = "layer"
    dropout: float = 0.1
    drop_text: float = 0.0  # 0: trained on complete data, the usual multi-branch practice
    drop_image: float = 0.0
    epochs: int | None = None  # default: engine.epochs
    timm_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChameleonRecipeConfig:
    """The whole recipe (``hparams/*.yaml`` plus ``key=value`` overrides)."""

    output_dir: str = path_field("runs/chameleon")
    methods: list[Method] = field(default_factory=lambda: list(METHODS))
    data: DataConfig = field(default_factory=DataConfig)
    text_image: TextImageConfig = field(default_factory=TextImageConfig)
    chameleon: ChameleonConfig = field(default_factory=ChameleonConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    missing: MissingConfig = field(default_factory=lambda: MissingConfig(
        eval=["complete", "text=70%", "text=30%", "text=0%"], splits=["test"]))
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(
        epochs=10, batch_size=64, lr=1e-3, weight_decay=1e-4, scheduler="cosine", monitor="auto",
        monitor_mode="max"))

    def validate_config(self) -> None:
        """Cross-field and registry checks, run by :func:`modalink.config.load_config` before any
        data is read: methods, dataset, backbones, the baseline's text encoder, missing conditions."""
        from modalink.classification.records import dataset_name
        from modalink.encoders.image import check_timm_architecture
        from modalink.text.encoders import text_encoder_name

        if not self.methods:
            raise ValueError(f"methods: choose at least one of {', '.join(METHODS)}")
        checks = [("data.dataset", dataset_name, self.data.dataset),
                  ("chameleon.backbone", check_timm_architecture, self.chameleon.backbone),
                  ("baseline.text_encoder", text_encoder_name, self.baseline.text_encoder)]
        if self.baseline.backbone is not None:
            checks.append(("baseline.backbone", check_timm_architecture, self.baseline.backbone))
        for key, check, value in checks:
            try:
                check(value)
            except KeyError as e:
                raise ValueError(f"{key}: {e.args[0] if e.args else e}") from None
        for error in missing_config_errors(self.missing):
            raise ValueError(error)


def build_word_vectors(cfg: ChameleonRecipeConfig) -> Any:
    from modalink.text.word_vectors import WordVectors

    t = cfg.text_image
    if t.word_vectors:
        return WordVectors.load(Path(t.word_vectors).expanduser(), seed=t.seed)
    return WordVectors.hashed(t.dim, seed=t.seed)


def build_text_to_image(cfg: ChameleonRecipeConfig, vectors: Any = None) -> Any:
    """The text renderer: ``text`` mode canvas of the photo size (joint) or a band (fused)."""
    from modalink.text.render import TextToImage

    t = cfg.text_image
    size = cfg.data.image_size
    vectors = vectors if vectors is not None else build_word_vectors(cfg)
    if t.mode == "fused":
        band = t.band_height or size // 4
        return TextToImage(vectors, image_size=(band, size), superpixel=t.superpixel, max_words=t.max_words,
                           mode="text", output="uint8", layout=t.layout, word_gap=t.word_gap, repeat=t.repeat)
    return TextToImage(vectors, image_size=size, superpixel=t.superpixel, max_words=t.max_words,
                       mode="text", output="uint8", layout=t.layout, word_gap=t.word_gap, repeat=t.repeat)


def build_text_encoder(cfg: ChameleonRecipeConfig) -> Any:
    """The baseline's text features: mean word vectors (the vectors Chameleon paints) or hashed BoW."""
    from modalink.text.encoders import create_text_encoder

    b, t = cfg.baseline, cfg.text_image
    opts = dict(b.text_options)
    if b.text_encoder == "word-vectors":
        opts.setdefault("path", t.word_vectors)
        opts.setdefault("dim", t.dim)
        opts.setdefault("seed", t.seed)
    return create_text_encoder(b.text_encoder, **opts)


INPUTS = {"chameleon": "text_image", "multi_branch": "text_vector"}
#: constructor arguments that only say where initial weights come from: not part of an exported
#: architecture (the export holds the trained weights)
_INIT_ONLY = ("pretrained", "weights", "offline", "weights_option")


def build_network(kind: str, cfg: ChameleonRecipeConfig, num_classes: int, text_dim: int | None = None) -> Any:
    """A method's registered network (``modalink.models.create_model``, so it can be exported).
    Missing backbone weights raise one message naming ``chameleon.weights=`` / ``baseline.weights=``."""
    from modalink.models import create_model

    c = cfg.chameleon
    if kind == "chameleon":
        band = (cfg.text_image.band_height or cfg.data.image_size // 4) if cfg.text_image.mode == "fused" else None
        net = create_model("chameleon", num_classes=num_classes, backbone=c.backbone, pretrained=c.pretrained,
                           weights=c.weights, mode=cfg.text_image.mode, band_height=band, drop_text=c.drop_text,
                           drop_image=c.drop_image, dropout=c.dropout, weights_option="chameleon.weights",
                           **c.timm_kwargs)
    elif kind == "multi_branch":
        b = cfg.baseline
        if text_dim is None:
            raise InputError("multi_branch needs text_dim")
        pre = c.pretrained if b.pretrained is None else b.pretrained
        weights = (b.weights or c.weights) if pre else None
        net = create_model("multi_branch_classifier", num_classes=num_classes, text_dim=text_dim,
                           backbone=b.backbone or c.backbone, pretrained=pre, weights=weights,
                           embed_dim=b.embed_dim, hidden=list(b.hidden), fusion=b.fusion, norm=b.norm,
                           dropout=b.dropout, drop_text=b.drop_text, drop_image=b.drop_image,
                           weights_option="baseline.weights" if b.weights or not c.weights else "chameleon.weights",
                           **(b.timm_kwargs or c.timm_kwargs))
    else:
        raise InputError(f"unknown method {kind!r}; use {', '.join(METHODS)}")
    spec = net.model_spec["kwargs"]
    for k in _INIT_ONLY:
        spec.pop(k, None)
    return net


def wrap(kind: str, net: Any, multilabel: bool, aux_weight: float = 0.0) -> MissingModalityModule:
    """The trainer module of a method around its network."""
    return MissingModalityModule(net, INPUTS[kind], multilabel, aux_weight if kind == "chameleon" else 0.0)


def build_model(kind: str, cfg: ChameleonRecipeConfig, num_classes: int, multilabel: bool,
                text_dim: int | None = None) -> MissingModalityModule:
    """A method's network inside its :class:`MissingModalityModule`."""
    return wrap(kind, build_network(kind, cfg, num_classes, text_dim), multilabel, cfg.chameleon.aux_weight)


# ----------------------------------------------------------------------------- data
@dataclass
class RecipeData:
    """The three splits, class names and the task."""

    train: PhotoTextSet
    val: PhotoTextSet | None
    test: PhotoTextSet
    classes: list[str]
    task: str  # multiclass | multilabel | binary
    metrics: tuple[str, ...]
    description: str
    ceiling: Callable[..., float] | None = None  # synthetic data: best accuracy at (text, image) shares

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"


def synthetic_root(cfg: ChameleonRecipeConfig) -> Path:
    """Where the synthetic data goes: ``data.synthetic_dir``, default ``<output_dir>/synthetic_data``."""
    if cfg.data.synthetic_dir:
        return Path(cfg.data.synthetic_dir).expanduser()
    return Path(cfg.output_dir) / "synthetic_data"


def _presets() -> dict[str, dict[str, Any]]:
    """The generator presets ``data.synthetic.preset`` names."""
    from modalink.classification.synthetic_food101 import COMPLEMENTARY

    return {"complementary": COMPLEMENTARY}


def synthetic_kwargs(s: SyntheticConfig) -> dict[str, Any]:
    """Generator arguments of ``data.synthetic``: its fields, or a named preset (plus ``seed``)."""
    if s.preset is None:
        return {k: v for k, v in dataclasses.asdict(s).items() if k != "preset"}
    return {**_presets()[s.preset], "seed": s.seed}


def apply_synthetic_preset(s: SyntheticConfig, overrides: Sequence[str] = ()) -> SyntheticConfig:
    """Resolve ``s.preset`` into the fields, in place: the preset's values replace the fields of
    the config file, while ``seed`` and the ``data.synthetic.*`` fields set by key=value
    ``overrides`` win over the preset (so ``preset=complementary data.synthetic.n_classes=4`` is a
    smaller complementary set). The preset is then cleared, so the saved config says what was
    generated. Returns ``s``."""
    from modalink.config import parse_overrides

    if s.preset is None:
        return s
    given = parse_overrides(list(overrides)).get("data", {}).get("synthetic", {})
    values = {k: v for k, v in dataclasses.asdict(SyntheticConfig()).items() if k != "preset"}
    values.update(_presets()[s.preset])
    for name in values:
        if name == "seed" or name in given:
            values[name] = getattr(s, name)
    for name, value in values.items():
        setattr(s, name, value)
    s.preset = None
    return s


def ensure_synthetic(cfg: ChameleonRecipeConfig) -> Any:
    """Generate (once; the generator skips existing data) the synthetic Food-101 layout."""
    from modalink.classification.synthetic_food101 import generate_synthetic_food101

    return generate_synthetic_food101(synthetic_root(cfg), **synthetic_kwargs(cfg.data.synthetic))


def _take(ds: PhotoTextSet, limit: int, seed: int) -> PhotoTextSet:
    if limit and len(ds) > limit:
        idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit])
        return ds.subset(idx)
    return ds


def load_data(cfg: ChameleonRecipeConfig, progress: bool = True) -> RecipeData:
    """Load (or generate) the dataset, make train/val/test :class:`PhotoTextSet` s and apply the
    training missing-modality condition (``missing.train``)."""
    from modalink.classification.records import load_dataset

    d = cfg.data
    if d.root:
        root, synthetic = Path(d.root).expanduser(), False
        if not root.is_dir():
            raise UserError(f"--data-root {root} (data.root) is not a folder")
        dataset = d.dataset
    else:
        made = ensure_synthetic(cfg)
        root, synthetic, dataset = made.root, True, "food101"
    transform = PhotoTransform(d.image_size, d.resize_ratio)
    opts = dict(d.loader_options)

    def load(split: str) -> Any:
        return load_dataset(dataset, root, split, transform=transform, **opts)

    train_ds = load(d.train_split)
    test_ds = load(d.test_split)
    val_ds = load(d.val_split) if d.val_split else None
    if train_ds.classes != test_ds.classes:
        raise InputError(f"{root}: the {d.train_split} and {d.test_split} splits have different class lists")
    train = PhotoTextSet.from_dataset(train_ds, d.image_size).labelled()
    test = PhotoTextSet.from_dataset(test_ds, d.image_size).labelled()
    val = PhotoTextSet.from_dataset(val_ds, d.image_size).labelled() if val_ds is not None else None
    if val is None and d.val_fraction > 0:
        order = np.random.default_rng(d.split_seed).permutation(len(train))
        n_val = max(1, int(round(d.val_fraction * len(train))))
        val, train = train.subset(np.sort(order[:n_val])), train.subset(np.sort(order[n_val:]))
    train = _take(train, d.max_train, d.split_seed)
    test = _take(test, d.max_test, d.split_seed + 1)
    for split, part in ((d.train_split, train), (d.test_split, test)):
        if len(part) == 0:  # e.g. every image file of the split missing: the loader skipped every sample
            raise UserError(f"{root}: the {split} split has no usable labelled samples (every sample was skipped: "
                            f"see the warnings above, e.g. missing image files); fix the data or choose another "
                            f"split (data.train_split / data.test_split)")
    in_memory = synthetic if d.in_memory is None else d.in_memory
    if in_memory:
        for part in (train, val, test):
            if part is not None:
                part.load_into_memory(cfg.engine.num_workers, progress)
    if cfg.missing.train != "complete":
        m = condition_mask(len(train), "train", cfg.missing.train, cfg.missing.seed)
        train = train.with_mask(m.image, m.text)
    ceilings = None
    if synthetic:
        s = made.params
        setting = f"{s['evidence']} evidence, " if "evidence" in s else ""
        desc = (f"synthetic Food-101 layout ({setting}{s['n_classes']} classes = "
                f"{s['n_classes'] // s['n_text_groups']} visual x {s['n_text_groups']} text groups, "
                f"{s['n_train_per_class']}+{s['n_test_per_class']} per class, {s['words_per_group']} words per "
                f"text group, title_visual_hint {s.get('title_visual_hint', 0):g}, image_text_cue "
                f"{s.get('image_text_cue', 0):g}, image_difficulty {s.get('image_difficulty', 0):g}, seed "
                f"{s['seed']}; the photo alone can reach {100 * made.image_only_ceiling:.0f}%)")
        ceilings = made.ceiling
    else:
        desc = f"{dataset} at {root}"
    return RecipeData(train, val, test, list(train_ds.classes), train_ds.task, tuple(train_ds.metrics), desc,
                      ceilings)


def data_fingerprint(data: RecipeData) -> dict[str, str]:
    """Content fingerprint of what a run reads: per split, the texts, labels and image files
    (relative path, size, mtime) — bound to the run folder (:meth:`RunFolder.bind_data`)."""
    import hashlib

    from modalink.data.embedding_cache import file_list_hash, texts_hash

    out: dict[str, str] = {}
    for split, part in (("train", data.train), ("val", data.val), ("test", data.test)):
        if part is None:
            continue
        out[f"{split}/texts"] = texts_hash(part.texts)
        out[f"{split}/labels"] = hashlib.sha256(np.ascontiguousarray(part.labels).tobytes()).hexdigest()[:32]
        paths = [str(p) for p in (getattr(part.base, "image_paths", None) or []) if p] if part.base is not None else []
        if paths:  # named relative to their common folder: a moved dataset keeps its fingerprint
            out[f"{split}/images"] = file_list_hash(paths, os.path.commonpath(paths), ordered=True)
    return out


def method_collates(kind: str, cfg: ChameleonRecipeConfig, cache: dict[str, Any]) -> tuple[BatchBuilder, BatchBuilder, int | None]:
    """(train collate, eval collate, text_dim) of a method; ``cache`` shares word vectors."""
    if kind == "chameleon":
        if "t2i" not in cache:
            cache["t2i"] = build_text_to_image(cfg, cache.get("vectors"))
        t2i = cache["t2i"]
        return (BatchBuilder(kind, text_to_image=t2i, hflip=cfg.data.hflip),
                BatchBuilder(kind, text_to_image=t2i), None)
    if "text_encoder" not in cache:
        cache["text_encoder"] = build_text_encoder(cfg)
    enc = cache["text_encoder"]
    return (BatchBuilder(kind, text_encoder=enc, hflip=cfg.data.hflip), BatchBuilder(kind, text_encoder=enc),
            int(enc.dim))


def resolve_monitor(engine: EngineConfig, data: RecipeData) -> EngineConfig:
    """``engine.monitor: auto`` → the dataset's main metric on complete validation data (max)."""
    if engine.monitor != "auto":
        return dataclasses.replace(engine)
    return dataclasses.replace(engine, monitor=data.metrics[0] if data.metrics else "accuracy", monitor_mode="max")


def make_evaluate_fn(data: RecipeData, collate: BatchBuilder) -> Callable[[Any], dict[str, float]] | None:
    """Validation metrics on complete data and with all texts missing (for the log)."""
    val = data.val
    if val is None or len(val) == 0:
        return None

    def evaluate(trainer: Any) -> dict[str, float]:
        logits = predict_logits(trainer.model, val, collate, batch_size=trainer.cfg.batch_size, trainer=trainer)
        res = score(val.labels, logits, data.task)
        no_text = val.with_mask(has_text=np.zeros(len(val), dtype=bool))
        logits = predict_logits(trainer.model, no_text, collate, batch_size=trainer.cfg.batch_size, trainer=trainer)
        res.update({f"{k}_no_text": v for k, v in score(val.labels, logits, data.task).items()})
        return res

    return evaluate


def model_contract(kind: str, cfg: ChameleonRecipeConfig) -> dict[str, Any]:
    """What an exported model reads: uint8 photos of ``image_size``, and the text as a rendered
    image (Chameleon: ``text_image`` settings) or as vectors (multi-branch: the text encoder)."""
    out: dict[str, Any] = {"inputs": INPUTS[kind], "image_size": cfg.data.image_size, "pixels": "uint8 RGB 0-255",
                           "resize_ratio": cfg.data.resize_ratio}
    if kind == "chameleon":
        out["text_image"] = dataclasses.asdict(cfg.text_image)
    else:
        out["text_encoder"] = {"name": cfg.baseline.text_encoder, "options": dict(cfg.baseline.text_options)}
    return out


def results_info(data: Any, cfg: Any) -> dict[str, Any]:
    """What a results.json says about the data it was measured on (train.py and evaluate.py)."""
    counts = {"train": len(data.train), **({"val": len(data.val)} if data.val is not None else {})}
    return {"dataset": data.description, "num_classes": data.num_classes, "counts": counts,
            "train_condition": cfg.missing.train}


def method_plans(cfg: ChameleonRecipeConfig, data: RecipeData) -> tuple[list[MethodPlan], dict[str, BatchBuilder]]:
    """One plan per method of ``cfg.methods`` (Chameleon and/or the multi-branch baseline, which
    share the word vectors), selected on ``engine.monitor`` (``auto``: the dataset's main metric),
    and each method's evaluation collate."""
    from modalink.classification.training import MethodPlan

    cache: dict[str, Any] = {}
    plans, eval_collates = [], {}
    for kind in cfg.methods:
        train_collate, eval_collates[kind], text_dim = method_collates(kind, cfg, cache)
        engine = resolve_monitor(cfg.engine, data)
        if kind == "multi_branch" and cfg.baseline.epochs:
            engine.epochs = cfg.baseline.epochs

        def build(kind: str = kind, text_dim: int | None = text_dim) -> Any:
            return build_model(kind, cfg, data.num_classes, data.multilabel, text_dim)

        def describe(module: Any) -> str:
            return (f"{len(data.train)} train / {len(data.val) if data.val is not None else 0} val / "
                    f"{len(data.test)} test samples, {data.num_classes} classes, "
                    f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f}M parameters")

        plans.append(MethodPlan(kind, build, data.train, engine, train_collate,
                                make_evaluate_fn(data, eval_collates[kind]), seed=cfg.engine.seed, describe=describe))
    return plans, eval_collates


def ceiling_table(data: RecipeData, conditions: Sequence[str]) -> dict[str, float] | None:
    """The Bayes accuracy ceiling (%) of each test condition, for synthetic data that knows it."""
    if data.ceiling is None:
        return None
    from modalink.classification.conditions import condition_shares

    return {c: round(100 * data.ceiling(*condition_shares(c)), 2) for c in conditions}
