"""Item and user towers (SiBraR / CoBraR style) and the training objective.

The item tower is a :class:`modalink.models.SingleBranch`: every item modality gets a small
stem (dense vectors directly; tags and interaction profiles first through a mean
``nn.EmbeddingBag``; the item ID through an ``nn.Embedding``), then ONE shared trunk. Training
can keep a random 1–2 of each item's modalities; inference averages over the available ones, so
a cold item (no ID, no interaction profile) embeds from its content alone. Scores are inner
products of L2-normalised user and item vectors.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.models import SingleBranch
from modalink.models.blocks import fc_block, mlp
from modalink.models.modality_sampling import CountSampler
from modalink.models.registry import register_model
from modalink.progress import progress_bar
from modalink.recsys.data import ID, BagBatch, Bags, ItemBatch, ItemFeatures
from modalink.recsys.index import DEFAULT_MEMORY_BUDGET_MB


class SampledBranch(SingleBranch):
    """``SingleBranch`` whose training-time modality sampling is a :class:`CountSampler` over
    EACH item's available modalities: a size ``k`` is drawn uniformly from ``sample_sizes``
    (SiBraR: 1 or 2), clipped to the number available, and ``k`` of the item's available
    modalities are kept; with probability ``keep_all_prob`` the item keeps all of them. Empty
    ``sample_sizes`` keep every available modality. Like any ``SingleBranch``, another strategy
    can be installed as ``self.sampler``."""

    def __init__(self, input_dims: Mapping[str, int], sample_sizes: Sequence[int] | None = (1, 2),
                 keep_all_prob: float = 0.0, **kw: Any) -> None:
        super().__init__(input_dims, sampler=CountSampler(tuple(input_dims), sample_sizes, keep_all_prob), **kw)


INPUT_NORMS = ("none", "center", "standardize")


class InputStats(nn.Module):
    """Fixed per-modality input statistics: ``forward(x) = (x - mean) / scale``.

    Media vectors of one encoder share a large common direction (random-weight ResNet-18 photo
    vectors: mean pairwise cosine 0.91; ECAPA clips: 0.985): what tells items apart is the small
    rest. A stem fed the raw vectors sees mostly the common part, so single-modality items all
    get nearly the same vector. :meth:`fit` removes the catalogue mean of the items that have
    the modality and scales the rest to unit variance: ``"center"`` with one scalar (the
    global standard deviation, so relative feature scales are kept), ``"standardize"`` per
    feature. Until fitted (and for ``"none"``) it is the
    identity. The statistics are buffers, so an exported tower embeds new items with them."""

    def __init__(self, dim: int, mode: str = "center") -> None:
        super().__init__()
        if mode not in INPUT_NORMS:
            raise InputError(f"input_norm must be one of {INPUT_NORMS}, got {mode!r}")
        self.mode = mode
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Statistics of the rows ``x`` (the items that HAVE the modality; zero rows excluded)."""
        if self.mode == "none" or x.shape[0] < 2:
            return
        x = x.to(self.mean.device, torch.float32)
        mean = x.mean(0)
        centred = x - mean
        if self.mode == "center":
            scale = torch.full_like(mean, float(centred.pow(2).mean().sqrt().clamp_min(1e-8)))
        else:
            std = centred.std(0)
            scale = std.clamp_min(1e-3 * float(std.max().clamp_min(1e-8)))
        self.mean.copy_(mean)
        self.scale.copy_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class ItemTower(nn.Module):
    """Item modalities → per-modality stems → one shared trunk → L2-normalised item vector.

    Args:
        dense_dims: ``{name: width}`` of dense modalities (text, image, audio vectors).
        bag_sizes: ``{name: vocabulary size}`` of bag modalities (genres/tags; ``profile``: the
            multi-hot user vector of an item, vocabulary = number of users).
        num_ids: catalogue size for an ID embedding (0: no ID modality).
        embed_dim: output width. stem_dim, trunk_hidden, norm, dropout: see ``SingleBranch``.
        bag_dim: width of each ``EmbeddingBag`` (and of the ID embedding).
        sample_sizes: training keeps a random subset of these sizes of each item's AVAILABLE
            modalities (``()`` or ``None``: keep every available modality); see ``SampledBranch``
            (the strategy is ``self.branch.sampler``; a trainer may install another one there).
        keep_all_prob: probability that an item keeps ALL its modalities instead (a mix of
            SiBraR sampling and plain averaging; 0 = pure sampling).
        bag_dropout: training-time probability of dropping each id of a bag (e.g. profile users).
        combine: ``"normalized"`` — the item vector is the normalised mean of the per-modality
            unit vectors (each available modality an equal vote); ``"raw"`` — the normalised
            mean of the un-normalised trunk outputs. See ``SingleBranch``.
        input_norm: per dense modality, fixed input statistics (:class:`InputStats`) fitted by
            :meth:`fit_input_stats`: ``"center"`` (remove the training items' mean, one scale;
            keeps single-modality items apart), ``"standardize"`` (per feature) or ``"none"``.
        item_encoder: ``{"name", "kwargs"}`` of a registered modalink model trained inside the
            tower (e.g. an SRMM model loaded from an exported folder, then fine-tuned);
            ``encoder_inputs`` maps tower modalities to the model modality that embeds them
            (``{"model_image": "image"}``); those modalities' ``dense_dims`` are the model's
            embedding width, their features the model's input vectors.
    """

    def __init__(self, dense_dims: Mapping[str, int] | None = None, bag_sizes: Mapping[str, int] | None = None,
                 num_ids: int = 0, embed_dim: int = 64, stem_dim: int = 128, bag_dim: int = 64,
                 trunk_hidden: Sequence[int] = (128,), norm: str = "layer", dropout: float = 0.1,
                 sample_sizes: Sequence[int] | None = (1, 2), keep_all_prob: float = 0.0,
                 bag_dropout: float = 0.0, combine: str = "normalized", item_encoder: Mapping[str, Any] | None = None,
                 encoder_inputs: Mapping[str, str] | None = None, input_norm: str = "center") -> None:
        super().__init__()
        dense_dims, bag_sizes = dict(dense_dims or {}), dict(bag_sizes or {})
        self.encoder_inputs = dict(encoder_inputs or {})
        self.item_encoder: nn.Module | None = None
        if item_encoder:
            # a modalink model (registry name + arguments) trained INSIDE the tower: the dense
            # inputs named in encoder_inputs go through item_encoder.embed(x, model_modality)
            from modalink.models import create_model

            self.item_encoder = create_model(item_encoder["name"], **item_encoder.get("kwargs", {}))
            unknown = [m for m in self.encoder_inputs if m not in dense_dims]
            if unknown:
                raise InputError(f"encoder_inputs names {unknown}, which are not dense modalities {list(dense_dims)}")
        elif self.encoder_inputs:
            raise InputError("encoder_inputs needs item_encoder")
        if ID in dense_dims or ID in bag_sizes:
            raise InputError(f"{ID!r} is the reserved ID modality; set num_ids instead")
        input_dims = dict(dense_dims)
        input_dims.update({m: bag_dim for m in bag_sizes})
        if num_ids > 0:
            input_dims[ID] = bag_dim
        if not input_dims:
            raise InputError("ItemTower needs at least one modality (dense_dims, bag_sizes or num_ids)")
        self.branch = SampledBranch(input_dims, sample_sizes=sample_sizes, keep_all_prob=keep_all_prob,
                                    embed_dim=embed_dim, stem_dim=stem_dim, trunk_hidden=trunk_hidden, norm=norm,
                                    dropout=dropout, combine=combine)
        if input_norm not in INPUT_NORMS:
            raise InputError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.input_norm = input_norm
        self.input_stats = nn.ModuleDict({m: InputStats(d, input_norm) for m, d in dense_dims.items()
                                          if input_norm != "none" and m not in self.encoder_inputs})
        self.bags = nn.ModuleDict({m: nn.EmbeddingBag(n, bag_dim, mode="sum") for m, n in bag_sizes.items()})
        self.id_embedding = nn.Embedding(num_ids, bag_dim) if num_ids > 0 else None
        for emb in list(self.bags.values()) + ([self.id_embedding] if self.id_embedding is not None else []):
            nn.init.normal_(emb.weight, std=0.1)
        self.dense_dims, self.bag_sizes, self.num_ids = dense_dims, bag_sizes, num_ids
        self.embed_dim = embed_dim
        self.bag_dropout = bag_dropout

    @classmethod
    def from_features(cls, features: ItemFeatures, **kw: Any) -> "ItemTower":
        """A tower for every modality of ``features`` (ID when ``features`` has one), its input
        statistics fitted on all items of ``features``."""
        dims = {m: x.shape[1] for m, x in features.dense.items()}
        dims.update(kw.pop("dense_dims", None) or {})
        tower = cls(dims,
                    {m: b.num_embeddings for m, b in features.bags.items()},
                    num_ids=features.n_items if ID in features.available else 0, **kw)
        tower.fit_input_stats(features)
        return tower

    @torch.no_grad()
    def fit_input_stats(self, features: ItemFeatures, items: torch.Tensor | Sequence[int] | None = None) -> None:
        """Fit each dense modality's :class:`InputStats` on the vectors of ``items`` (default:
        every item) that have the modality; a trainer passes the training items only."""
        rows = None if items is None else torch.as_tensor(items, dtype=torch.long)
        for m, stats in self.input_stats.items():
            x = features.dense.get(m)
            if x is None:
                continue
            have = features.available[m] if m in features.available else x.abs().sum(1) > 0
            if rows is not None:
                x, have = x[rows], have[rows]
            stats.fit(x[have.to(x.device)])

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.branch.modalities

    def inputs(self, batch: ItemBatch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``SingleBranch`` inputs and presence masks of an ``ItemBatch`` (bags/IDs embedded)."""
        inputs: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        n = batch.ids.numel()
        for m in self.modalities:
            mask = batch.present.get(m)
            if m == ID:
                # an ID counts only where the features mark it (warm items) and its row exists
                in_table = (batch.ids >= 0) & (batch.ids < self.num_ids)
                mask = in_table & mask if mask is not None else torch.zeros_like(in_table)
                x = self.id_embedding(batch.ids.clamp(0, self.num_ids - 1))  # type: ignore[misc]
            elif m in self.bags:
                bb = batch.bags.get(m)
                if bb is None:
                    continue
                x = self.bags[m](bb.indices, bb.offsets, per_sample_weights=bb.weights)
            else:
                x = batch.dense.get(m)
                if x is None:
                    continue
                if m in self.encoder_inputs:
                    x = self._encode_rows(x, m, mask)
                elif m in self.input_stats:
                    x = self.input_stats[m](x)
            inputs[m] = x
            present[m] = mask if mask is not None else torch.ones(n, dtype=torch.bool, device=x.device)
        return inputs, present

    def _encode_rows(self, x: torch.Tensor, m: str, mask: torch.Tensor | None) -> torch.Tensor:
        """The item encoder's embedding of the rows that have ``m`` (others stay zero, so
        batch statistics of a fine-tuned model never see missing rows)."""
        rows = torch.arange(x.shape[0], device=x.device) if mask is None else mask.nonzero().flatten()
        out = x.new_zeros(x.shape[0], self.dense_dims[m])
        if rows.numel():
            out = out.index_put((rows,), self.item_encoder.embed(x[rows], self.encoder_inputs[m]).to(x.dtype))  # type: ignore[union-attr]
        return out

    def forward(self, batch: ItemBatch, sample: bool = True) -> dict[str, torch.Tensor]:
        """``SingleBranch`` outputs: per-modality embeddings, ``embedding`` (mean over kept
        modalities, L2-normalised), ``mask`` (kept) and ``available``. ``sample=False`` keeps
        every available modality even in training mode."""
        inputs, present = self.inputs(batch)
        avail = torch.stack([present[m] for m in inputs], 1).any(1) if inputs else None
        if avail is None or not bool(avail.all()):
            bad = [] if avail is None else (~avail).nonzero().flatten()[:10].tolist()
            ids = batch.ids[bad].tolist() if bad else batch.ids[:10].tolist()
            raise ValueError(f"item(s) {ids} have no available modality for this tower "
                             f"(tower modalities: {list(self.modalities)})")
        return self.branch(inputs, present, sample=sample)

    @torch.no_grad()
    def embed_catalogue(self, features: ItemFeatures, batch_size: int = 4096, items: torch.Tensor | None = None,
                        progress: bool = False, missing: str = "error") -> torch.Tensor:
        """L2-normalised vectors of every item (or of ``items``), in batches, eval mode.

        Each item averages over ITS available modalities: cold items (no ID, empty profile)
        embed from content alone. An item with no available modality raises
        (``missing="error"``) or gets a zero vector (``missing="zero"``, it then scores 0).
        Returns an ``(N, embed_dim)`` float tensor on the tower's device. The features stay where
        they are (host memory for a large catalogue): each batch is gathered there and moved to
        the tower's device, so device memory does not grow with the catalogue.
        """
        if missing not in ("error", "zero"):
            raise InputError(f"missing must be 'error' or 'zero', got {missing!r}")
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        try:
            feats = features
            host = features.device
            ids = torch.arange(features.n_items, device=host) if items is None else items.to(host).long()
            out = torch.zeros(ids.numel(), self.embed_dim, device=device)
            if missing == "zero":
                has = torch.zeros(features.n_items, dtype=torch.bool, device=host)
                for m in self.modalities:
                    if m in feats.available:
                        a = feats.available[m]
                        if m in feats.bags:
                            a = a & (feats.bags[m].lengths() > 0)
                        has |= a
                rows = has[ids].nonzero().flatten()
            else:
                rows = torch.arange(ids.numel(), device=host)
            for start in progress_bar(range(0, rows.numel(), batch_size), desc="embed items", leave=False,
                              enabled=progress):
                r = rows[start:start + batch_size]
                out[r.to(device)] = self.forward(feats.batch(ids[r]).to(device))["embedding"]
            return out
        finally:
            self.train(was)


@register_model("recsys_item_tower")
def recsys_item_tower(**kw: Any) -> ItemTower:
    """The recsys item tower (:class:`ItemTower`) as a registered model, so a trained tower is
    exported with :func:`modalink.hub.save_pretrained` and reloaded with ``from_pretrained``.
    An export that does not record ``input_norm`` was made without input statistics (``"none"``)."""
    kw.setdefault("input_norm", "none")
    return ItemTower(**kw)


class UserTower(nn.Module):
    """User vectors (L2-normalised) in one of three modes:

    * ``"id"`` — a user ID embedding (warm users only; others get a fallback vector).
    * ``"profile"`` — the user's items as a multi-hot vector → mean ``EmbeddingBag`` → stem →
      trunk. With ``shared_trunk`` (CoBraR style) the profile goes through the item tower's
      shared trunk as one more modality of the same branch; the trunk is then NOT a submodule
      of the user tower (it is trained and saved with the item tower, as
      :class:`RecsysObjective` does).
    * ``"item_mean"`` — a linear map (initialised to the identity) of the mean of the item
      tower's vectors of the user's items; new users need only a few interactions.
    """

    MODES = ("id", "profile", "item_mean")

    def __init__(self, mode: str = "profile", num_users: int = 0, num_items: int = 0, embed_dim: int = 64,
                 bag_dim: int = 64, stem_dim: int = 128, hidden: Sequence[int] = (128,), norm: str = "layer",
                 dropout: float = 0.1, shared_trunk: nn.Module | None = None, profile_dropout: float = 0.2) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise InputError(f"UserTower mode must be one of {self.MODES}, got {mode!r}")
        self.mode, self.embed_dim, self.profile_dropout = mode, embed_dim, profile_dropout
        self.shares_trunk = shared_trunk is not None and mode == "profile"
        if mode == "id":
            if num_users < 1:
                raise InputError("UserTower(mode='id') needs num_users >= 1")
            self.user_embedding = nn.Embedding(num_users, embed_dim)
            nn.init.normal_(self.user_embedding.weight, std=0.1)
            return
        if mode == "item_mean":
            self.proj = nn.Linear(embed_dim, embed_dim)
            nn.init.eye_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
            return
        if num_items < 1:
            raise InputError("UserTower(mode='profile') needs num_items >= 1")
        self.items = nn.EmbeddingBag(num_items, bag_dim, mode="sum")
        nn.init.normal_(self.items.weight, std=0.1)
        if shared_trunk is not None:
            # the trunk stays registered in the item tower only: one copy in state dicts/checkpoints
            self.stem = fc_block(bag_dim, stem_dim, norm, dropout)
            self._shared_trunk = [shared_trunk]
        else:
            self.stem = nn.Identity()
            self.own_trunk = mlp(bag_dim, hidden, embed_dim, norm, dropout)

    @property
    def trunk(self) -> nn.Module:
        """The trunk the profile goes through (the item tower's when shared)."""
        return self._shared_trunk[0] if self.shares_trunk else self.own_trunk

    @classmethod
    def sharing(cls, item_tower: ItemTower, num_items: int, **kw: Any) -> "UserTower":
        """A profile tower that reuses ``item_tower``'s shared trunk (CoBraR)."""
        stem_dim = next(m for m in item_tower.branch.trunk.modules() if isinstance(m, nn.Linear)).in_features
        return cls("profile", num_items=num_items, embed_dim=item_tower.embed_dim, stem_dim=stem_dim,
                   shared_trunk=item_tower.branch.trunk, **kw)

    @property
    def needs_history(self) -> bool:
        return self.mode != "id"

    def forward(self, users: torch.Tensor, history: BagBatch | None = None,
                item_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """(B, embed_dim) user vectors. ``history``: the users' item bags (profile and
        item_mean modes); ``item_vectors``: rows indexed by the bag ids (item_mean mode)."""
        if self.mode == "id":
            return F.normalize(self.user_embedding(users), dim=1)
        if history is None:
            raise ValueError(f"UserTower(mode={self.mode!r}) needs the users' history bags")
        if self.mode == "item_mean":
            if item_vectors is None:
                raise ValueError("UserTower(mode='item_mean') needs item_vectors")
            x = F.embedding_bag(history.indices, item_vectors, history.offsets, mode="sum",
                                per_sample_weights=history.weights)
            return F.normalize(self.proj(x), dim=1)
        x = self.items(history.indices, history.offsets, per_sample_weights=history.weights)
        return F.normalize(self.trunk(self.stem(x)), dim=1)

    @torch.no_grad()
    def embed_users(self, users: torch.Tensor, history: Bags | None = None, item_vectors: torch.Tensor | None = None,
                    batch_size: int = 4096, fallback: str = "mean") -> torch.Tensor:
        """Vectors of ``users`` in eval mode. Profile/item_mean modes read ``history`` (rows =
        users; item_mean also the catalogue's ``item_vectors``); a user with an empty history,
        or (id mode) an id outside the table, gets the ``fallback``: ``"mean"`` (mean user
        vector) or ``"zero"``."""
        if fallback not in ("mean", "zero"):
            raise InputError(f"fallback must be 'mean' or 'zero', got {fallback!r}")
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        try:
            users = users.to(device).long()
            if self.needs_history and history is None:
                raise ValueError(f"mode {self.mode!r} needs history=Bags (rows = users)")
            hist = history.to(device) if history is not None else None
            iv = item_vectors.to(device) if item_vectors is not None else None
            vecs, oks = [], []
            for start in range(0, users.numel(), batch_size):
                u = users[start:start + batch_size]
                if self.mode == "id":
                    n = self.user_embedding.num_embeddings
                    ok = (u >= 0) & (u < n)
                    v = self.forward(u.clamp(0, n - 1))
                else:
                    hb = hist.gather(u)  # type: ignore[union-attr]
                    ok = hb.nonempty
                    v = self.forward(u, hb, iv)
                vecs.append(v)
                oks.append(ok)
            if not vecs:
                return torch.zeros(0, self.embed_dim, device=device)
            out, ok = torch.cat(vecs), torch.cat(oks)
            if not bool(ok.all()):
                if fallback == "mean" and self.mode == "id":
                    fill = F.normalize(self.user_embedding.weight.mean(0, keepdim=True), dim=1)
                elif fallback == "mean" and bool(ok.any()):
                    fill = F.normalize(out[ok].mean(0, keepdim=True), dim=1)
                else:
                    fill = out.new_zeros(1, self.embed_dim)
                out = torch.where(ok.unsqueeze(1), out, fill)
            return out
        finally:
            self.train(was)


class RecsysObjective(nn.Module):
    """The trained module: ``forward({"user": (B,), "item": (B,)}) -> {"loss", ...}``.

    Args:
        item_tower, user_tower: the towers.
        features: the catalogue's :class:`ItemFeatures` (moved to the towers' device lazily).
        user_history: training items of each user (rows = users), for profile/item_mean towers.
        train_items: the items that may be sampled as negatives (warm items).
        loss: ``"bpr"`` (``num_negatives`` uniform negatives per positive) or ``"softmax"``
            (in-batch sampled softmax with logQ correction from ``item_counts``).
        temperature: score scale of both losses (scores are cosines).
        infonce_weight, infonce_pair: optional symmetric InfoNCE between two item modalities
            of the positive items (rows where both are available).
        device_budget_mb: the catalogue's features move to the towers' device whole when they
            fit in this many MiB; a larger catalogue stays where it is and each step gathers its
            items there and moves only that batch (device memory then holds a batch, never the
            catalogue). ``0``: always stream.
    """

    def __init__(self, item_tower: ItemTower, user_tower: UserTower, features: ItemFeatures,
                 train_items: torch.Tensor, user_history: Bags | None = None, loss: str = "bpr",
                 num_negatives: int = 4, temperature: float = 0.1, logq_correction: bool = True,
                 item_counts: torch.Tensor | None = None, infonce_weight: float = 0.0,
                 infonce_pair: Sequence[str] = ("text", "profile"), infonce_temperature: float = 0.1,
                 device_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> None:
        super().__init__()
        from modalink.losses.bpr import BPRLoss
        from modalink.losses.sampled_softmax import SampledSoftmaxLoss

        self.item_tower, self.user_tower = item_tower, user_tower
        self._features = features
        self._device_features: dict[str, ItemFeatures] = {}
        if device_budget_mb < 0:
            raise InputError(f"device_budget_mb must be >= 0, got {device_budget_mb}")
        self.streams_features = features.nbytes > device_budget_mb * 2**20
        self._history = user_history
        self._device_history: dict[str, Bags] = {}
        self.register_buffer("train_items", torch.as_tensor(train_items, dtype=torch.long), persistent=False)
        if user_tower.needs_history and user_history is None:
            raise ValueError(f"a {user_tower.mode!r} user tower needs user_history")
        if loss == "bpr":
            self.loss_fn: nn.Module = BPRLoss(temperature)
        elif loss == "softmax":
            self.loss_fn = SampledSoftmaxLoss(temperature, logq_correction=logq_correction)
        else:
            raise InputError(f"loss must be 'bpr' or 'softmax', got {loss!r}")
        self.loss_name, self.num_negatives = loss, num_negatives
        if item_counts is None:
            log_q = torch.zeros(features.n_items)
        else:
            c = torch.as_tensor(item_counts, dtype=torch.float32)
            log_q = torch.log(c.clamp_min(1.0) / c.clamp_min(1.0).sum())
        self.register_buffer("item_log_q", log_q, persistent=False)
        self.infonce_weight = float(infonce_weight)
        self.infonce_pair = tuple(infonce_pair)
        self.infonce = None
        if self.infonce_weight > 0:
            if len(self.infonce_pair) != 2 or any(m not in item_tower.modalities for m in self.infonce_pair):
                raise InputError(f"infonce_pair must name two of the tower's modalities "
                                 f"{list(item_tower.modalities)}, got {list(self.infonce_pair)}")
            self.infonce = make_infonce(infonce_temperature)

    def item_batch(self, items: torch.Tensor, bag_dropout: float = 0.0) -> ItemBatch:
        """The features of ``items`` on ``items``' device: gathered from the catalogue moved there
        whole, or, when it exceeds the device budget, gathered where it lives and moved as a batch."""
        if not self.streams_features:
            return self.features_on(items.device).batch(items, bag_dropout=bag_dropout)
        return self._features.batch(items.to(self._features.device), bag_dropout=bag_dropout).to(items.device)

    def features_on(self, device: torch.device) -> ItemFeatures:
        key = str(device)
        if key not in self._device_features:
            self._device_features = {key: self._features.to(device)}
        return self._device_features[key]

    def history_on(self, device: torch.device) -> Bags | None:
        if self._history is None:
            return None
        key = str(device)
        if key not in self._device_history:
            self._device_history = {key: self._history.to(device)}
        return self._device_history[key]

    def _history_batch(self, users: torch.Tensor, exclude: torch.Tensor | None) -> BagBatch:
        hist = self.history_on(users.device)
        return hist.gather(users, drop=self.user_tower.profile_dropout if self.training else 0.0,  # type: ignore[union-attr]
                           exclude=exclude)

    @property
    def network(self) -> ItemTower:
        """The network a run exports: the item tower (new items embed from their content alone)."""
        return self.item_tower

    # -- the Recommender interface used by modalink.recsys.evaluate -------------------------
    def item_vectors(self, features: ItemFeatures | None = None, batch_size: int = 4096,
                     missing: str = "error") -> torch.Tensor:
        """Catalogue vectors from ``features`` (default: the training catalogue)."""
        return self.item_tower.embed_catalogue(features if features is not None else self._features,
                                               batch_size, missing=missing)

    def user_vectors(self, users: torch.Tensor, history: Bags | None = None) -> torch.Tensor:
        """Evaluation-time user vectors; profile/item_mean towers read ``history`` (rows = users),
        item_mean averages the vectors of the full training catalogue."""
        iv = self.item_vectors() if self.user_tower.mode == "item_mean" else None
        return self.user_tower.embed_users(users, history, item_vectors=iv)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        users, pos = batch["user"].long(), batch["item"].long()
        device = pos.device
        b = pos.numel()
        drop = self.item_tower.bag_dropout if self.training else 0.0
        mode = self.user_tower.mode
        hb = self._history_batch(users, exclude=pos) if mode != "id" else None
        # one item-tower call over the positives and negatives
        parts = [pos]
        if self.loss_name == "bpr":
            neg = self.train_items[torch.randint(self.train_items.numel(), (b, self.num_negatives), device=device)]
            parts.append(neg.reshape(-1))
        n_rank = sum(p.numel() for p in parts)
        item_out = self.item_tower(self.item_batch(torch.cat(parts), bag_dropout=drop))
        emb = item_out["embedding"]
        if mode == "item_mean":
            # the users' history items, with all their modalities (as at inference)
            hist_items, hist_index = torch.unique(hb.indices, return_inverse=True)  # type: ignore[union-attr]
            hist_emb = (self.item_tower(self.item_batch(hist_items, bag_dropout=drop), sample=False)["embedding"]
                        if hist_items.numel() else emb.new_zeros(0, emb.shape[1]))
            hb_local = BagBatch(hist_index, hb.offsets, hb.weights, hb.nonempty)  # type: ignore[union-attr]
            u = self.user_tower(users, hb_local, hist_emb)
        else:
            u = self.user_tower(users, hb)
        out: dict[str, torch.Tensor] = {}
        if self.loss_name == "bpr":
            pos_s = (u * emb[:b]).sum(1)
            neg_s = torch.einsum("bd,bkd->bk", u, emb[b:n_rank].reshape(b, self.num_negatives, -1))
            rec = self.loss_fn(pos_s, neg_s, neg_mask=neg != pos.unsqueeze(1))
        else:
            rec = self.loss_fn(u, emb[:b], self.item_log_q[pos], pos)
        out["rec_loss"] = rec.detach()
        loss = rec
        if self.infonce is not None:
            m1, m2 = self.infonce_pair
            j1, j2 = self.item_tower.modalities.index(m1), self.item_tower.modalities.index(m2)
            both = item_out["available"][:b, j1] & item_out["available"][:b, j2]
            if int(both.sum()) >= 2:
                nce = self.infonce(item_out[m1][:b][both], item_out[m2][:b][both], pos[both])
                out["infonce"] = nce.detach()
                loss = loss + self.infonce_weight * nce
        out["loss"] = loss
        return out


def make_infonce(temperature: float) -> nn.Module:
    """Fixed-temperature symmetric InfoNCE between two item modalities; forward(a, b, item_ids)
    treats rows of the same item as neither positives nor negatives of each other."""
    from modalink.losses.infonce import InfoNCE

    return InfoNCE(temperature=temperature, learnable=False)
