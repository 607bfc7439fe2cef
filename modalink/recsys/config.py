"""The recsys run config (``recipes/recsys/train.py``; ``load_config(RecsysConfig, ...)``).

Choices are ``Literal`` types and numeric fields carry their ranges; :meth:`RecsysConfig.validate_config`
checks what spans fields or needs a registry (media encoder and text encoder names), so a bad
config is refused when it is loaded, before any data is read or a run folder is opened.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modalink.config import bounded, optional, path_field
from modalink.engine import EngineConfig

__all__ = ["SyntheticConfig", "DataConfig", "TowerConfig", "MFConfig", "EvalConfig", "MediaConfig",
           "ItemModelConfig", "RecsysConfig", "check_image_encoder", "check_audio_encoder", "check_text_encoder"]

MediaModality = Literal["text", "image", "audio"]
_TIMM_SOURCES = ("hf-hub:", "hf_hub:", "local-dir:")


@dataclass
class SyntheticConfig:
    """``data.synthetic.*``: the generated catalogue (:func:`modalink.recsys.make_synthetic`)."""

    n_users: int = bounded(1000, ge=1)
    n_items: int = bounded(2000, ge=1)
    latent_dim: int = bounded(16, ge=1)
    n_genres: int = bounded(18, ge=1)
    text_dim: int = bounded(64, ge=1)
    image_dim: int = bounded(96, ge=1)
    interactions_min: int = bounded(20, ge=1)
    interactions_max: int = bounded(60, ge=1)
    content_noise: float = bounded(0.5, ge=0)
    temperature: float = bounded(0.5, gt=0)
    missing_text: float = bounded(0.1, ge=0, lt=1)
    missing_image: float = bounded(0.2, ge=0, lt=1)
    seed: int = 0


@dataclass
class DataConfig:
    """``data.*``: where interactions and item content come from, and the split."""

    root: str | None = path_field()  # catalogue folder (items.csv) or MovieLens folder; None: synthetic
    unknown_items: Literal["skip", "error"] = "skip"  # catalogue interactions naming an unknown item
    cache_dir: str | None = None  # media embedding cache; None: <output_dir>/media_cache
    min_rating: float = 0.0  # MovieLens and catalogue ratings >= this are positives
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    cold_item_frac: float = bounded(0.2, ge=0, lt=1)
    cold_user_frac: float = bounded(0.1, ge=0, lt=1)
    val_frac: float = bounded(0.1, ge=0, lt=1)
    test_frac: float = bounded(0.2, ge=0, lt=1)
    fold_in_frac: float = bounded(0.5, ge=0, lt=1)
    split_seed: int = 0


@dataclass
class TowerConfig:
    """``tower.*``: the item tower (single branch over item modalities), the user tower and the loss."""

    modalities: list[str] | None = optional()  # None: every modality of the data
    use_profile: bool = True  # item interaction profile (users of the item) as a modality
    use_id: bool = True  # item ID embedding (warm items only)
    embed_dim: int = bounded(64, ge=1)
    stem_dim: int = bounded(128, ge=1)
    bag_dim: int = bounded(64, ge=1)
    trunk_hidden: list[int] = field(default_factory=lambda: [128])
    norm: Literal["layer", "batch", "none"] = "layer"
    dropout: float = bounded(0.0, ge=0, lt=1)
    sample_sizes: list[int] = field(default_factory=lambda: [1, 2])  # SiBraR modality sampling; [] = off
    keep_all_prob: float = bounded(0.0, ge=0, le=1)
    bag_dropout: float = bounded(0.0, ge=0, lt=1)
    # item vector = normalised mean of per-modality unit vectors | raw: of the trunk outputs
    combine: Literal["normalized", "raw"] = "normalized"
    # dense inputs minus the training items' mean, one scale | per-feature standardised | as they are
    input_norm: Literal["center", "standardize", "none"] = "center"
    user_mode: Literal["item_mean", "profile", "id"] = "item_mean"
    share_trunk: bool = True  # profile mode: the user profile goes through the item trunk (CoBraR)
    profile_dropout: float = bounded(0.2, ge=0, lt=1)
    loss: Literal["bpr", "softmax"] = "bpr"
    num_negatives: int = bounded(4, ge=1)
    temperature: float = bounded(0.1, gt=0)
    logq_correction: bool = True
    infonce_weight: float = bounded(0.0, ge=0)
    infonce_pair: list[str] = field(default_factory=lambda: ["text", "profile"])
    infonce_temperature: float = bounded(0.1, gt=0)
    # the catalogue's features go to the training device whole up to this size; a larger one streams by batch
    device_budget_mb: float = bounded(256.0, ge=0)


@dataclass
class MFConfig:
    """``mf.*``: the BPR matrix-factorisation baseline."""

    enabled: bool = True
    dim: int = bounded(64, ge=1)
    num_negatives: int = bounded(4, ge=1)
    l2: float = bounded(1.0e-4, ge=0)
    lr: float = bounded(1.0e-2, gt=0)
    epochs: int | None = optional(ge=1)  # None: engine.epochs


@dataclass
class EvalConfig:
    """``eval.*``: the cut-off and the missing-modality evaluation on item-cold-start items."""

    k: int = bounded(10, ge=1)
    # subsets absent from the data are skipped; a catalogue uses each content modality alone, then all
    modality_subsets: dict[str, list[str]] = field(default_factory=lambda: {
        "text": ["text"], "image": ["image"], "genres": ["genres"], "text+image": ["text", "image"],
        "all content": ["text", "image", "genres"]})


@dataclass
class MediaConfig:
    """``media.*``: which modalink encoders turn item media into vectors."""

    modalities: list[MediaModality] = field(default_factory=lambda: ["text", "image", "audio"])
    image_encoder: str = "timm/resnet18"  # a registered image encoder or timm/<architecture>
    audio_encoder: str = "ecapa_voxceleb"  # a registered encoder
    audio_kwargs: dict[str, Any] = field(default_factory=dict)  # architecture overrides (must match weights)
    text_encoder: str = "hashed-bow"  # a registered text encoder (or sentence-transformers/<model>, st:<model>)
    text_kwargs: dict[str, Any] = field(default_factory=lambda: {"dim": 256})
    pretrained: bool = True  # false = random weights (seeded by encoder_seed): tests, offline demos
    image_weights: str | None = None  # explicit weights file/folder (None: local caches, else the hub)
    audio_weights: str | None = None
    encoder_seed: int = 0
    audio_min_seconds: float = bounded(0.1, ge=0)
    batch_size: int = bounded(32, ge=1)
    shard_size: int = bounded(256, ge=1)
    device: str = "cpu"


@dataclass
class ItemModelConfig:
    """``item_model.*``: an exported modalink model used as an item encoder."""

    path: str | None = None  # exported model folder (config.json + model.safetensors); None: no item model
    # {model modality: item media modality}; None: the model's modalities the items have, same names
    inputs: dict[str, str] | None = optional()
    finetune: bool = False  # false: frozen embeddings; true: the model is trained inside the tower
    # true: use item vectors from other encoders than the model's input contract names (warned, not refused)
    allow_encoder_mismatch: bool = False


def check_image_encoder(name: str, key: str = "media.image_encoder") -> None:
    """Refuse (``ValueError("key: why")``) a name that is neither a registered encoder nor
    ``timm/<architecture>`` with an architecture timm knows."""
    from modalink.encoders import list_encoders

    known = list_encoders()
    if name in known:
        return
    if name.startswith("timm/") and name != "timm/":
        arch = name[len("timm/"):]
        if arch.startswith(_TIMM_SOURCES):
            return
        import timm

        if timm.is_model(arch):
            return
        raise ValueError(f"{key}: {name!r}: timm has no architecture {arch!r} (timm.list_models() lists them)")
    raise ValueError(f"{key}: {name!r} is not a registered encoder; known encoders: "
                     f"{', '.join(n for n in known if n != 'timm')}, timm/<architecture>")


def check_audio_encoder(name: str, key: str = "media.audio_encoder") -> None:
    """Refuse (``ValueError("key: why")``) a name that is not a registered encoder."""
    from modalink.encoders import list_encoders

    known = list_encoders()
    if name not in known:
        raise ValueError(f"{key}: {name!r} is not a registered encoder; known encoders: {', '.join(known)}")


def check_text_encoder(name: str, key: str = "media.text_encoder") -> None:
    """Refuse (``ValueError("key: why")``) a name :func:`modalink.text.encoders.create_text_encoder`
    does not take."""
    from modalink.text.encoders import list_text_encoders

    known = list_text_encoders()
    if name in known or (name.startswith(("sentence-transformers/", "st:")) and name.rstrip("/:") not in
                         ("sentence-transformers", "st")):
        return
    raise ValueError(f"{key}: {name!r} is not a registered text encoder; known text encoders: {', '.join(known)}, "
                     f"sentence-transformers/<model>, st:<model or folder>")


@dataclass
class RecsysConfig:
    """The whole recsys run: data, towers, baselines, evaluation, media encoders, engine."""

    data: DataConfig = field(default_factory=DataConfig)
    tower: TowerConfig = field(default_factory=TowerConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    item_model: ItemModelConfig = field(default_factory=ItemModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    output_dir: str = path_field("runs/recsys")

    def validate_config(self) -> None:
        """Cross-field and registry checks, run when the config is loaded (before any data)."""
        s, d, t = self.data.synthetic, self.data, self.tower
        if s.interactions_min > s.interactions_max:
            raise ValueError(f"data.synthetic.interactions_min: {s.interactions_min} is above "
                             f"data.synthetic.interactions_max={s.interactions_max}")
        if d.val_frac + d.test_frac >= 1:
            raise ValueError(f"data.val_frac: {d.val_frac} + data.test_frac={d.test_frac} leaves no training "
                             f"interactions; their sum must be < 1")
        if any(n < 1 for n in t.trunk_hidden):
            raise ValueError(f"tower.trunk_hidden: {t.trunk_hidden}: every width must be >= 1")
        if any(n < 1 for n in t.sample_sizes):
            raise ValueError(f"tower.sample_sizes: {t.sample_sizes}: every size must be >= 1 ([] keeps all)")
        if t.infonce_weight > 0 and len(t.infonce_pair) != 2:
            raise ValueError(f"tower.infonce_pair: {t.infonce_pair}: name two item modalities")
        for name, mods in self.eval.modality_subsets.items():
            if not mods:
                raise ValueError(f"eval.modality_subsets.{name}: an empty subset; name at least one modality")
        check_image_encoder(self.media.image_encoder)
        check_audio_encoder(self.media.audio_encoder)
        check_text_encoder(self.media.text_encoder)
