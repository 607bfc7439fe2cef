"""Small constructor arguments and matching inputs for EVERY registered model, shared by the
model and export tests: a model added to the registry without an entry here fails
``test_every_registered_model_is_covered`` (tests/test_hub.py)."""
from __future__ import annotations

from typing import Any, Callable

import torch

ARCH = "test_resnet"  # a tiny timm ResNet, random weights

_FOP = dict(face_dim=24, voice_dim=12, embed_dim=8, num_classes=5)

SMALL: dict[str, dict[str, Any]] = {
    "fop": _FOP, "fop_linear": _FOP, "fop_enhanced": _FOP,
    "sbnet": dict(input_dims={"face": 24, "voice": 12}, embed_dim=8, num_classes=5),
    "sbnet_stems": dict(input_dims={"face": 24, "voice": 12}, embed_dim=8, stem_dim=16, trunk_hidden=(16,),
                        num_classes=5),
    "single_branch": dict(input_dims={"a": 10, "b": 6}, embed_dim=8),
    "srmm": dict(input_dims={"image": 10, "text": 6}, embed_dim=8, stem_dim=16, trunk_hidden=(16,), num_classes=4),
    "late_fusion": dict(input_dims={"image": 10, "text": 6}, embed_dim=8, hidden=(16,), num_classes=4),
    "image_classifier": dict(num_classes=3, backbone=ARCH),
    "chameleon": dict(num_classes=3, backbone=ARCH),
    "multi_branch_classifier": dict(num_classes=3, text_dim=8, backbone=ARCH),
    "recsys_item_tower": dict(dense_dims={"text": 10}, bag_sizes={"genre": 5}, num_ids=7, embed_dim=8, stem_dim=16,
                              bag_dim=4, trunk_hidden=(16,)),
    "embedding_ensemble": dict(members=[{"name": "fop_enhanced", "kwargs": _FOP}, {"name": "fop_enhanced",
                                                                                   "kwargs": _FOP}]),
}


def _item_batch(n: int, g: torch.Generator) -> tuple:
    from modalink.recsys.data import BagBatch, ItemBatch

    per_row = 2
    bag = BagBatch(indices=torch.randint(0, 5, (n * per_row,), generator=g), offsets=torch.arange(n) * per_row,
                   weights=torch.full((n * per_row,), 1.0 / per_row), nonempty=torch.ones(n, dtype=torch.bool))
    present = {m: torch.ones(n, dtype=torch.bool) for m in ("text", "genre", "id")}
    batch = ItemBatch(ids=torch.randint(0, 7, (n,), generator=g), dense={"text": torch.randn(n, 10, generator=g)},
                      bags={"genre": bag}, present=present)
    return (batch,), {}


def _dense(dims: dict[str, int]) -> Callable[[int, torch.Generator], tuple]:
    def make(n: int, g: torch.Generator) -> tuple:
        return ({m: torch.randn(n, d, generator=g) for m, d in dims.items()},), {}
    return make


def _images(text: tuple | None) -> Callable[[int, torch.Generator], tuple]:
    def make(n: int, g: torch.Generator) -> tuple:
        image = torch.rand(n, 3, 32, 32, generator=g)
        if text is None:
            return (image,), {}
        return (image, torch.rand(n, *text, generator=g)), {}
    return make


INPUTS: dict[str, Callable[[int, torch.Generator], tuple]] = {
    **{n: (lambda n_, g: ((torch.randn(n_, 24, generator=g), torch.randn(n_, 12, generator=g)), {}))
       for n in ("fop", "fop_linear", "fop_enhanced", "embedding_ensemble")},
    "sbnet": _dense({"face": 24, "voice": 12}),
    "sbnet_stems": _dense({"face": 24, "voice": 12}),
    "single_branch": _dense({"a": 10, "b": 6}),
    "srmm": _dense({"image": 10, "text": 6}),
    "late_fusion": _dense({"image": 10, "text": 6}),
    "image_classifier": _images(None),
    "chameleon": _images((3, 32, 32)),
    "multi_branch_classifier": _images((8,)),
    "recsys_item_tower": _item_batch,
}


def model_inputs(name: str, n: int, seed: int = 0) -> tuple[tuple, dict]:
    """Positional and keyword inputs of ``n`` rows for model ``name`` built with ``SMALL[name]``."""
    return INPUTS[name](n, torch.Generator().manual_seed(seed))
