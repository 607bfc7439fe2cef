"""Recommendation data: implicit-feedback interactions, item features, splits, readers.

* :class:`Interactions` — (user, item) pairs of implicit feedback over ``n_users × n_items``.
* :class:`Bags` — a CSR "bag of ids" per row (genres of an item, users of an item, items of
  a user); gathered into ``EmbeddingBag`` inputs with :meth:`Bags.gather`.
* :class:`ItemFeatures` — every item modality of a catalogue: dense vectors (text, image,
  audio), bags (genres, interaction profile) and the item ID, each with a per-item
  availability mask. Cold items simply have no ID and an empty interaction profile.
* :func:`split_recsys` — warm, item-cold-start and user-cold-start splits.
* :func:`make_synthetic` — a synthetic multimodal catalogue with latent user preferences.
* :func:`read_movielens` — MovieLens-100K (``u.data``/``u.item``/``u.user``) and ML-1M
  (``ratings.dat``/``movies.dat``/``users.dat``); titles become hashed bag-of-words vectors.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from modalink.errors import InputError, UserError

ID = "id"  # the reserved name of the item-ID modality


class MovieLensFormatError(UserError, ValueError):
    """A MovieLens file that cannot be used (names the file and line)."""


# ---------------------------------------------------------------------------------------------
# interactions and bags
# ---------------------------------------------------------------------------------------------
@dataclass
class Interactions:
    """Implicit feedback: ``users[k]`` interacted with ``items[k]`` (duplicates are removed)."""

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int64).reshape(-1)
        self.items = np.asarray(self.items, dtype=np.int64).reshape(-1)
        if self.users.shape != self.items.shape:
            raise ValueError(f"users ({self.users.size}) and items ({self.items.size}) differ in length")
        for name, ids, n in (("user", self.users, self.n_users), ("item", self.items, self.n_items)):
            if ids.size and (ids.min() < 0 or ids.max() >= n):
                raise ValueError(f"{name} ids must lie in [0, {n}), got [{ids.min()}, {ids.max()}]")
        if self.users.size:
            key = np.unique(self.users * self.n_items + self.items)
            self.users, self.items = key // self.n_items, key % self.n_items

    def __len__(self) -> int:
        return int(self.users.size)

    def select(self, mask: np.ndarray) -> "Interactions":
        """The interactions where ``mask`` is true."""
        return Interactions(self.users[mask], self.items[mask], self.n_users, self.n_items)

    def user_bags(self) -> "Bags":
        """Items of each user as CSR bags (rows = users)."""
        return Bags.from_pairs(self.users, self.items, self.n_users, self.n_items)

    def item_bags(self) -> "Bags":
        """Users of each item as CSR bags (rows = items): the items' interaction profiles."""
        return Bags.from_pairs(self.items, self.users, self.n_items, self.n_users)

    def matrix(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Boolean ``len(users) × len(items)`` matrix (all items when ``items`` is None)."""
        users = np.asarray(users, dtype=np.int64)
        cols = np.full(self.n_items, -1, dtype=np.int64)
        item_ids = np.arange(self.n_items) if items is None else np.asarray(items, dtype=np.int64)
        cols[item_ids] = np.arange(item_ids.size)
        rows = np.full(self.n_users, -1, dtype=np.int64)
        rows[users] = np.arange(users.size)
        keep = (rows[self.users] >= 0) & (cols[self.items] >= 0)
        out = np.zeros((users.size, item_ids.size), dtype=bool)
        out[rows[self.users[keep]], cols[self.items[keep]]] = True
        return out

    def item_counts(self) -> np.ndarray:
        """Number of interactions of each item."""
        return np.bincount(self.items, minlength=self.n_items)


@dataclass
class Bags:
    """Variable-length id lists per row in CSR form: row ``r`` holds ``indices[indptr[r]:indptr[r+1]]``."""

    indptr: torch.Tensor
    indices: torch.Tensor
    num_embeddings: int  # size of the id vocabulary

    @classmethod
    def from_pairs(cls, rows: np.ndarray, ids: np.ndarray, n_rows: int, num_embeddings: int) -> "Bags":
        """Build from parallel (row, id) arrays."""
        rows = np.asarray(rows, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(torch.from_numpy(indptr), torch.from_numpy(ids[order].copy()), num_embeddings)

    @classmethod
    def from_lists(cls, lists: Sequence[Iterable[int]], num_embeddings: int) -> "Bags":
        """Build from one id list per row."""
        lists = [list(x) for x in lists]
        lens = [len(x) for x in lists]
        flat = [int(i) for x in lists for i in x]
        if flat and (min(flat) < 0 or max(flat) >= num_embeddings):
            raise ValueError(f"bag ids must lie in [0, {num_embeddings})")
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return cls(torch.from_numpy(indptr), torch.tensor(flat, dtype=torch.long), num_embeddings)

    @property
    def n_rows(self) -> int:
        return int(self.indptr.numel() - 1)

    def lengths(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def to(self, device: torch.device | str) -> "Bags":
        return Bags(self.indptr.to(device), self.indices.to(device), self.num_embeddings)

    @property
    def nbytes(self) -> int:
        """Bytes of the row pointers and ids."""
        return int(self.indptr.numel() * self.indptr.element_size() + self.indices.numel() * self.indices.element_size())

    def gather(self, rows: torch.Tensor, drop: float = 0.0, exclude: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> "BagBatch":
        """``EmbeddingBag`` inputs for ``rows``: flat ids, offsets and mean weights.

        ``drop`` removes each id with that probability (training-time dropout of profile
        entries); ``exclude`` (one id per row, e.g. the target item) removes that id from its
        row, so a user's profile never contains the item being predicted.
        """
        rows = rows.to(self.indptr.device)
        start = self.indptr[rows]
        lens = self.indptr[rows + 1] - start
        offsets = torch.cumsum(lens, 0) - lens
        total = int(lens.sum())
        seg = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), lens)
        pos = torch.arange(total, device=rows.device) - offsets[seg] + start[seg]
        flat = self.indices[pos]
        keep = torch.ones(total, dtype=torch.bool, device=rows.device)
        if drop > 0 and total:
            keep &= torch.rand(total, generator=generator, device="cpu").to(rows.device) >= drop
        if exclude is not None and total:
            keep &= flat != exclude.to(rows.device)[seg]
        kept = torch.zeros(rows.numel(), device=rows.device).index_add_(0, seg, keep.float())
        weights = keep.float() / kept.clamp_min(1.0)[seg]
        return BagBatch(flat, offsets, weights, kept > 0)


@dataclass
class BagBatch:
    """Inputs of ``nn.EmbeddingBag(mode="sum")``; ``weights`` make the sum a mean over kept ids."""

    indices: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor
    nonempty: torch.Tensor  # (B,) rows with at least one kept id

    def to(self, device: torch.device | str) -> "BagBatch":
        return BagBatch(self.indices.to(device), self.offsets.to(device), self.weights.to(device),
                        self.nonempty.to(device))


# ---------------------------------------------------------------------------------------------
# item features
# ---------------------------------------------------------------------------------------------
@dataclass
class ItemBatch:
    """The features of a batch of items, ready for :class:`modalink.recsys.ItemTower`."""

    ids: torch.Tensor
    dense: dict[str, torch.Tensor]
    bags: dict[str, BagBatch]
    present: dict[str, torch.Tensor]  # per modality (B,) bool, including "id"

    def to(self, device: torch.device | str) -> "ItemBatch":
        """The batch on ``device`` (non-blocking copies from pinned memory where possible)."""
        nb = torch.device(device).type == "cuda"
        return ItemBatch(self.ids.to(device, non_blocking=nb),
                         {m: x.to(device, non_blocking=nb) for m, x in self.dense.items()},
                         {m: b.to(device) for m, b in self.bags.items()},
                         {m: a.to(device, non_blocking=nb) for m, a in self.present.items()})


@dataclass
class ItemFeatures:
    """All modalities of a catalogue of ``n_items`` items with per-item availability.

    Args:
        n_items: catalogue size.
        dense: ``{name: (n_items, width) float tensor}`` (text/image/audio vectors).
        bags: ``{name: Bags}`` with ``n_items`` rows (genres/tags, interaction profile).
        available: ``{name: (n_items,) bool}``; a dense/bag modality missing here is available
            where its row is non-zero/non-empty. ``available["id"]`` marks the items with a
            learned ID embedding (warm items); without it, no item uses an ID.
    """

    n_items: int
    dense: dict[str, torch.Tensor] = field(default_factory=dict)
    bags: dict[str, Bags] = field(default_factory=dict)
    available: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = set(self.dense) & set(self.bags)
        if clash or ID in self.dense or ID in self.bags:
            raise ValueError(f"modality names must be unique and {ID!r} is reserved; clash: {sorted(clash)}")
        for m, x in self.dense.items():
            x = torch.as_tensor(x, dtype=torch.float32)
            if x.ndim != 2 or x.shape[0] != self.n_items:
                raise ValueError(f"dense modality {m!r} must be ({self.n_items}, width), got {tuple(x.shape)}")
            self.dense[m] = x
            if m not in self.available:
                self.available[m] = x.abs().sum(1) > 0
        for m, b in self.bags.items():
            if b.n_rows != self.n_items:
                raise ValueError(f"bag modality {m!r} has {b.n_rows} rows, expected {self.n_items}")
            if m not in self.available:
                self.available[m] = b.lengths() > 0
        for m, a in list(self.available.items()):
            if m != ID and m not in self.dense and m not in self.bags:
                raise ValueError(f"available[{m!r}] names no modality; have {self.modalities}")
            a = torch.as_tensor(a, dtype=torch.bool)
            if a.shape != (self.n_items,):
                raise ValueError(f"available[{m!r}] must have shape ({self.n_items},), got {tuple(a.shape)}")
            self.available[m] = a

    @property
    def modalities(self) -> list[str]:
        """Modality names: dense, then bags, then ``"id"`` when some item has one."""
        return list(self.dense) + list(self.bags) + ([ID] if ID in self.available else [])

    def with_availability(self, **masks: torch.Tensor | np.ndarray) -> "ItemFeatures":
        """A copy with some availability masks replaced (e.g. ``id=warm_mask``)."""
        avail = dict(self.available)
        avail.update({k: torch.as_tensor(v, dtype=torch.bool) for k, v in masks.items()})
        return ItemFeatures(self.n_items, dict(self.dense), dict(self.bags), avail)

    def restrict(self, modalities: Sequence[str]) -> "ItemFeatures":
        """A copy where only ``modalities`` are available (missing-modality evaluation)."""
        unknown = [m for m in modalities if m not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown}; have {self.modalities}")
        avail = {m: (a if m in modalities else torch.zeros_like(a)) for m, a in self.available.items()}
        return ItemFeatures(self.n_items, dict(self.dense), dict(self.bags), avail)

    def batch(self, items: torch.Tensor, bag_dropout: float = 0.0,
              generator: torch.Generator | None = None) -> ItemBatch:
        """Gather the features of ``items`` (a LongTensor of item indices)."""
        items = items.reshape(-1).long()
        dev = items.device
        dense = {m: x.to(dev)[items] if x.device != dev else x[items] for m, x in self.dense.items()}
        bags = {m: b.gather(items, drop=bag_dropout, generator=generator) for m, b in self.bags.items()}
        present = {m: a.to(dev)[items] for m, a in self.available.items()}
        for m, bb in bags.items():
            present[m] = present[m] & bb.nonempty
        return ItemBatch(items, dense, bags, present)

    @property
    def device(self) -> torch.device:
        """Where the features are (the first tensor's device; the CPU for an empty catalogue)."""
        for group in (self.dense.values(), (b.indptr for b in self.bags.values()), self.available.values()):
            for t in group:
                return t.device
        return torch.device("cpu")

    @property
    def nbytes(self) -> int:
        """Bytes of every modality's features and availability mask."""
        return (sum(x.numel() * x.element_size() for x in self.dense.values())
                + sum(b.nbytes for b in self.bags.values())
                + sum(a.numel() * a.element_size() for a in self.available.values()))

    def to(self, device: torch.device | str) -> "ItemFeatures":
        return ItemFeatures(self.n_items, {m: x.to(device) for m, x in self.dense.items()},
                            {m: b.to(device) for m, b in self.bags.items()},
                            {m: a.to(device) for m, a in self.available.items()})


# ---------------------------------------------------------------------------------------------
# raw datasets and splits
# ---------------------------------------------------------------------------------------------
@dataclass
class RecsysData:
    """A dataset before splitting: interactions plus item content (no interaction profile yet)."""

    interactions: Interactions
    item_dense: dict[str, np.ndarray]
    item_tags: dict[str, list[list[int]]]
    tag_vocab: dict[str, list[str]]
    item_names: list[str]
    name: str = "data"


@dataclass
class RecsysSplit:
    """Warm, item-cold-start and user-cold-start splits of one dataset.

    * ``train`` — warm users × warm items; ``val``/``test`` — held-out warm-user × warm-item pairs.
    * ``val_cold``/``test_cold`` — warm users × cold items (``cold_val_items``/``cold_test_items``),
      items never seen in training.
    * ``cold_user_history``/``cold_user_test`` — users never seen in training; the history
      (fold-in) builds their profile, the rest is ranked (warm items).
    """

    train: Interactions
    val: Interactions
    test: Interactions
    warm_items: np.ndarray
    cold_val_items: np.ndarray
    cold_test_items: np.ndarray
    val_cold: Interactions
    test_cold: Interactions
    warm_users: np.ndarray
    cold_users: np.ndarray
    cold_user_history: Interactions
    cold_user_test: Interactions

    def summary(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test),
                "warm_items": int(self.warm_items.size), "cold_val_items": int(self.cold_val_items.size),
                "cold_test_items": int(self.cold_test_items.size), "val_cold": len(self.val_cold),
                "test_cold": len(self.test_cold), "warm_users": int(self.warm_users.size),
                "cold_users": int(self.cold_users.size), "cold_user_history": len(self.cold_user_history),
                "cold_user_test": len(self.cold_user_test)}


def split_recsys(inter: Interactions, cold_item_frac: float = 0.2, cold_user_frac: float = 0.1,
                 val_frac: float = 0.1, test_frac: float = 0.2, fold_in_frac: float = 0.5,
                 seed: int = 0) -> RecsysSplit:
    """Split interactions into warm / item-cold-start / user-cold-start parts (see :class:`RecsysSplit`).

    ``cold_item_frac`` of the items are held out entirely, half for validation and half for
    test; ``cold_user_frac`` of the users are held out entirely. Warm interactions are split
    per user into train / val / test with ``val_frac`` and ``test_frac`` (every warm user keeps
    at least one training item). Cold users' interactions are split ``fold_in_frac`` history
    / rest test.
    """
    for name, v in (("cold_item_frac", cold_item_frac), ("cold_user_frac", cold_user_frac),
                    ("val_frac", val_frac), ("test_frac", test_frac), ("fold_in_frac", fold_in_frac)):
        if not 0.0 <= v < 1.0:
            raise InputError(f"{name} must lie in [0, 1), got {v}")
    if val_frac + test_frac >= 1.0:
        raise InputError("val_frac + test_frac must be < 1")
    rng = np.random.default_rng(seed)
    active_items = np.unique(inter.items)
    perm = rng.permutation(active_items)
    n_cold = int(round(cold_item_frac * active_items.size))
    cold_val_items = np.sort(perm[: n_cold // 2])
    cold_test_items = np.sort(perm[n_cold // 2: n_cold])
    warm_items = np.sort(perm[n_cold:])
    active_users = np.unique(inter.users)
    uperm = rng.permutation(active_users)
    n_cu = int(round(cold_user_frac * active_users.size))
    cold_users, warm_users = np.sort(uperm[:n_cu]), np.sort(uperm[n_cu:])

    item_kind = np.zeros(inter.n_items, dtype=np.int8)  # 0 warm, 1 cold val, 2 cold test
    item_kind[cold_val_items] = 1
    item_kind[cold_test_items] = 2
    is_cold_user = np.zeros(inter.n_users, dtype=bool)
    is_cold_user[cold_users] = True
    kind = item_kind[inter.items]
    cu = is_cold_user[inter.users]

    # per-user random split of warm-user × warm-item pairs
    r = rng.random(len(inter))
    warm_pairs = (~cu) & (kind == 0)
    part = np.where(r < test_frac, 2, np.where(r < test_frac + val_frac, 1, 0))
    part[~warm_pairs] = -1
    # every warm user keeps at least one training pair: promote the first pair of users without
    idx = np.flatnonzero(warm_pairs)
    users_w = inter.users[idx]
    has_train = np.zeros(inter.n_users, dtype=bool)
    has_train[users_w[part[idx] == 0]] = True
    first_users, first_pos = np.unique(users_w, return_index=True)
    promote = idx[first_pos[~has_train[first_users]]]
    part[promote] = 0
    fold = rng.random(len(inter)) < fold_in_frac
    cold_u_warm_i = cu & (kind == 0)
    return RecsysSplit(
        train=inter.select(part == 0), val=inter.select(part == 1), test=inter.select(part == 2),
        warm_items=warm_items, cold_val_items=cold_val_items, cold_test_items=cold_test_items,
        val_cold=inter.select((~cu) & (kind == 1)), test_cold=inter.select((~cu) & (kind == 2)),
        warm_users=warm_users, cold_users=cold_users,
        cold_user_history=inter.select(cold_u_warm_i & fold),
        cold_user_test=inter.select(cold_u_warm_i & ~fold),
    )


def build_item_features(data: RecsysData, split: RecsysSplit, use_profile: bool = True,
                        use_id: bool = True, modalities: Sequence[str] | None = None) -> ItemFeatures:
    """Item features for training and evaluation: content for every item; the interaction
    profile (users of the item in ``split.train``) and ID only for warm items."""
    n = data.interactions.n_items
    dense = {m: torch.as_tensor(x, dtype=torch.float32) for m, x in data.item_dense.items()}
    bags = {m: Bags.from_lists(t, len(data.tag_vocab[m])) for m, t in data.item_tags.items()}
    if use_profile:
        bags["profile"] = split.train.item_bags()
    available: dict[str, torch.Tensor] = {}
    if use_id:
        warm = torch.zeros(n, dtype=torch.bool)
        warm[torch.from_numpy(np.unique(split.train.items))] = True
        available[ID] = warm
    feats = ItemFeatures(n, dense, bags, available)
    if modalities is not None:
        keep = set(modalities)
        unknown = keep - set(feats.modalities)
        if unknown:
            raise KeyError(f"unknown item modality {sorted(unknown)}; have {feats.modalities}")
        feats = ItemFeatures(n, {m: x for m, x in dense.items() if m in keep},
                             {m: b for m, b in bags.items() if m in keep},
                             {m: a for m, a in available.items() if m in keep})
    return feats


# ---------------------------------------------------------------------------------------------
# synthetic catalogue
# ---------------------------------------------------------------------------------------------
def make_synthetic(n_users: int = 1000, n_items: int = 2000, latent_dim: int = 16, n_genres: int = 18,
                   text_dim: int = 64, image_dim: int = 96, interactions_per_user: tuple[int, int] = (20, 60),
                   content_noise: float = 0.5, missing: Mapping[str, float] | None = None,
                   popularity_bias: float = 1.0, temperature: float = 0.5, seed: int = 0) -> RecsysData:
    """A multimodal catalogue generated from latent item factors and latent user preferences.

    Item ``i`` has a factor ``v_i``; its "text" and "image" vectors are different random linear
    maps of ``v_i`` plus noise (``content_noise``), its genres are the 1–3 genre prototypes
    closest to ``v_i``. User ``u`` has a preference ``p_u`` and picks items without replacement
    with probability ∝ ``exp(p_u·v_i / temperature + b_i)`` (``b_i`` a popularity bias).
    ``missing`` gives each dense modality's missing rate (rows zeroed), default text 10 %,
    image 20 %.
    """
    rng = np.random.default_rng(seed)
    missing = {"text": 0.1, "image": 0.2} if missing is None else dict(missing)
    v = rng.standard_normal((n_items, latent_dim)) / np.sqrt(latent_dim)
    p = rng.standard_normal((n_users, latent_dim))
    bias = popularity_bias * rng.standard_normal(n_items)
    dense = {}
    for name, dim in (("text", text_dim), ("image", image_dim)):
        w = rng.standard_normal((latent_dim, dim))
        x = v @ w + content_noise * rng.standard_normal((n_items, dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
        rate = missing.get(name, 0.0)
        x[rng.random(n_items) < rate] = 0.0
        dense[name] = x.astype(np.float32)
    unknown = set(missing) - set(dense)
    if unknown:
        raise InputError(f"missing rates given for unknown modality {sorted(unknown)}; have text, image")
    protos = rng.standard_normal((n_genres, latent_dim))
    affinity = v @ protos.T + 0.3 * rng.standard_normal((n_items, n_genres)) / np.sqrt(latent_dim)
    n_tags = rng.integers(1, 4, size=n_items)
    order = np.argsort(-affinity, axis=1)
    genres = [sorted(order[i, : n_tags[i]].tolist()) for i in range(n_items)]
    lo, hi = interactions_per_user
    if not 1 <= lo <= hi <= n_items:
        raise InputError(f"interactions_per_user={interactions_per_user} must satisfy 1 <= lo <= hi <= n_items")
    users, items = [], []
    for start in range(0, n_users, 256):
        pu = p[start:start + 256]
        logits = pu @ v.T / temperature + bias
        gumbel = -np.log(-np.log(rng.random(logits.shape) + 1e-12) + 1e-12)
        ranked = np.argsort(-(logits + gumbel), axis=1)  # Gumbel top-k = sampling w/o replacement
        counts = rng.integers(lo, hi + 1, size=pu.shape[0])
        for r, c in enumerate(counts):
            users.append(np.full(c, start + r))
            items.append(ranked[r, :c])
    inter = Interactions(np.concatenate(users), np.concatenate(items), n_users, n_items)
    return RecsysData(inter, dense, {"genres": genres}, {"genres": [f"genre_{g}" for g in range(n_genres)]},
                      [f"item_{i}" for i in range(n_items)], name="synthetic")


# ---------------------------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------------------------
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _split_title_year(title: str) -> tuple[str, str]:
    m = re.search(r"\((\d{4})\)\s*$", title)
    return (title[: m.start()].strip(), m.group(1)) if m else (title.strip(), "")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"MovieLens file not found: {path}")
    return path.read_bytes().decode("latin-1").splitlines()


def _movielens_root(root: Path) -> tuple[Path, str]:
    for cand in (root, root / "ml-100k", root / "ml-1m"):
        if (cand / "u.data").is_file():
            return cand, "ml-100k"
        if (cand / "ratings.dat").is_file():
            return cand, "ml-1m"
    raise FileNotFoundError(f"{root}: no MovieLens files found (expected u.data/u.item/u.user for "
                            f"ML-100K or ratings.dat/movies.dat/users.dat for ML-1M)")


def read_movielens(root: str | Path, min_rating: float = 0.0, text_encoder: Any = None) -> RecsysData:
    """Read ML-100K or ML-1M from ``root`` (or ``root/ml-100k``, ``root/ml-1m``).

    Ratings ``>= min_rating`` become implicit interactions. Item modalities: ``text`` (the title
    plus year/decade tokens through ``text_encoder``, any :mod:`modalink.text.encoders` encoder;
    default the built-in ``hashed-bow`` with 256 buckets), ``genres`` (tags). User attributes are
    parsed and validated but not used by the towers. Raw ids are remapped to 0..N-1 in order of
    first appearance in the item/user files.
    """
    root, kind = _movielens_root(Path(root))
    if kind == "ml-100k":
        rating_file, item_file, user_file, sep = root / "u.data", root / "u.item", root / "u.user", None
    else:
        rating_file, item_file, user_file, sep = root / "ratings.dat", root / "movies.dat", root / "users.dat", "::"

    # items
    item_index: dict[str, int] = {}
    titles: list[str] = []
    genres: list[list[int]] = []
    vocab = list(ML100K_GENRES) if kind == "ml-100k" else []
    vocab_index = {g: i for i, g in enumerate(vocab)}
    for ln, line in enumerate(_read_lines(item_file), 1):
        if not line.strip():
            continue
        parts = line.split("|") if kind == "ml-100k" else line.split("::")
        if kind == "ml-100k":
            if len(parts) != 24:
                raise MovieLensFormatError(f"{item_file}:{ln}: expected 24 '|'-separated fields "
                                           f"(id|title|date|video date|url|19 genre flags), got {len(parts)}")
            flags = parts[5:]
            if any(f not in ("0", "1") for f in flags):
                raise MovieLensFormatError(f"{item_file}:{ln}: genre flags must be 0/1, got {flags}")
            g = [i for i, f in enumerate(flags) if f == "1"]
        else:
            if len(parts) != 3:
                raise MovieLensFormatError(f"{item_file}:{ln}: expected 'MovieID::Title::Genres', "
                                           f"got {len(parts)} fields")
            g = []
            for name in filter(None, parts[2].split("|")):
                if name not in vocab_index:
                    vocab_index[name] = len(vocab)
                    vocab.append(name)
                g.append(vocab_index[name])
        raw_id = parts[0].strip()
        if raw_id in item_index:
            raise MovieLensFormatError(f"{item_file}:{ln}: duplicate item id {raw_id}")
        item_index[raw_id] = len(titles)
        titles.append(parts[1])
        genres.append(sorted(set(g)))

    # users
    user_index: dict[str, int] = {}
    for ln, line in enumerate(_read_lines(user_file), 1):
        if not line.strip():
            continue
        parts = line.split("|") if kind == "ml-100k" else line.split("::")
        if len(parts) != 5:
            raise MovieLensFormatError(f"{user_file}:{ln}: expected 5 fields "
                                       f"({'id|age|gender|occupation|zip' if kind == 'ml-100k' else 'UserID::Gender::Age::Occupation::Zip'}), "
                                       f"got {len(parts)}")
        user_index.setdefault(parts[0].strip(), len(user_index))

    # ratings
    us, its = [], []
    for ln, line in enumerate(_read_lines(rating_file), 1):
        if not line.strip():
            continue
        parts = line.split() if sep is None else line.split(sep)
        if len(parts) != 4:
            raise MovieLensFormatError(f"{rating_file}:{ln}: expected 'user item rating timestamp', "
                                       f"got {len(parts)} fields")
        u, i, r = parts[0], parts[1], parts[2]
        try:
            rating = float(r)
        except ValueError:
            raise MovieLensFormatError(f"{rating_file}:{ln}: rating {r!r} is not a number") from None
        if not math.isfinite(rating):
            raise MovieLensFormatError(f"{rating_file}:{ln}: rating {r!r} is not a finite number; "
                                       f"fix or remove that line")
        if u not in user_index:
            raise MovieLensFormatError(f"{rating_file}:{ln}: user {u} is not in {user_file.name}")
        if i not in item_index:
            raise MovieLensFormatError(f"{rating_file}:{ln}: item {i} is not in {item_file.name}")
        if rating >= min_rating:
            us.append(user_index[u])
            its.append(item_index[i])
    if not us:
        why = f" >= data.min_rating={min_rating}" if min_rating > 0 else " (the file is empty)"
        raise MovieLensFormatError(f"{rating_file}: no ratings{why}; nothing to train on")
    inter = Interactions(np.array(us), np.array(its), len(user_index), len(item_index))
    texts = []
    for t in titles:
        name, year = _split_title_year(t)
        extra = f" year{year} decade{year[:3]}0" if year else ""
        texts.append(name + extra)
    if text_encoder is None:
        from modalink.text.encoders import HashedBagOfWords

        text_encoder = HashedBagOfWords(dim=256)
    text = np.asarray(text_encoder.encode(texts), dtype=np.float32)
    return RecsysData(inter, {"text": text}, {"genres": genres}, {"genres": vocab},
                      titles, name=kind)


class InteractionPairs:
    """Training (user, item) interactions as dict samples for the engine."""

    def __init__(self, inter: Any) -> None:
        import torch

        self.users = torch.from_numpy(inter.users)
        self.items = torch.from_numpy(inter.items)

    def __len__(self) -> int:
        return int(self.users.numel())

    def __getitem__(self, k: int) -> dict[str, Any]:
        return {"user": self.users[k], "item": self.items[k]}
