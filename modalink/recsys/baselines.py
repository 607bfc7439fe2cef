"""Baselines: most-popular and BPR matrix factorisation (both as user/item vector models).

Neither can embed a cold item from content: popularity gives every cold item a count of 0,
and MF has no trained row for it, so cold items get the ``fallback`` vector (the mean of the
trained item vectors by default, which ties every cold item). ``modalink.metrics`` averages
Recall/NDCG over tied items, so on the item-cold split both score exactly the random-ranking
level, whatever the item ids. Cold users get the mean user vector (≈ popularity).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

from modalink.errors import InputError
from modalink.losses.bpr import BPRLoss
from modalink.recsys.data import Bags, Interactions, ItemFeatures


class Popularity:
    """Score = number of training interactions of the item (same ranking for every user)."""

    def __init__(self, train: Interactions) -> None:
        self.counts = torch.from_numpy(train.item_counts().astype(np.float32))

    def item_vectors(self, features: ItemFeatures | None = None, **_: object) -> torch.Tensor:
        return self.counts.unsqueeze(1)

    def user_vectors(self, users: torch.Tensor, history: Bags | None = None) -> torch.Tensor:
        return torch.ones(users.numel(), 1)


class MatrixFactorization(nn.Module):
    """BPR-MF (Rendle et al. 2009): ``score(u, i) = p_u · q_i``, trained with k uniform
    negatives per positive. ``forward({"user", "item"}) -> {"loss"}`` for the modalink engine.

    Args:
        num_users, num_items: table sizes. dim: factor width.
        train_items: items sampled as negatives (the warm items). warm_users: users with a
            trained row (others get the mean user vector at evaluation).
        num_negatives: negatives per positive. l2: L2 penalty on the batch's factors.
        fallback: vector for items without training data, ``"mean"`` or ``"zero"``.
    """

    def __init__(self, num_users: int, num_items: int, train_items: torch.Tensor, warm_users: torch.Tensor,
                 dim: int = 64, num_negatives: int = 4, l2: float = 1e-4, fallback: str = "mean") -> None:
        super().__init__()
        if fallback not in ("mean", "zero"):
            raise InputError(f"fallback must be 'mean' or 'zero', got {fallback!r}")
        self.user = nn.Embedding(num_users, dim)
        self.item = nn.Embedding(num_items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        self.register_buffer("train_items", torch.as_tensor(train_items, dtype=torch.long), persistent=False)
        warm_i = torch.zeros(num_items, dtype=torch.bool)
        warm_i[self.train_items] = True
        warm_u = torch.zeros(num_users, dtype=torch.bool)
        warm_u[torch.as_tensor(warm_users, dtype=torch.long)] = True
        self.register_buffer("warm_items_mask", warm_i, persistent=False)
        self.register_buffer("warm_users_mask", warm_u, persistent=False)
        self.num_negatives, self.l2, self.fallback = num_negatives, l2, fallback
        self.loss_fn = BPRLoss()

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        users, pos = batch["user"].long(), batch["item"].long()
        b = pos.numel()
        neg = self.train_items[torch.randint(self.train_items.numel(), (b, self.num_negatives), device=pos.device)]
        p, qp, qn = self.user(users), self.item(pos), self.item(neg)
        pos_s = (p * qp).sum(1)
        neg_s = torch.einsum("bd,bkd->bk", p, qn)
        rec = self.loss_fn(pos_s, neg_s, neg_mask=neg != pos.unsqueeze(1))
        reg = self.l2 * (p.pow(2).sum(1).mean() + qp.pow(2).sum(1).mean() + qn.pow(2).sum(2).mean())
        return {"loss": rec + reg, "rec_loss": rec.detach()}

    def _fill(self, table: torch.Tensor, warm: torch.Tensor) -> torch.Tensor:
        fill = table[warm].mean(0, keepdim=True) if self.fallback == "mean" and bool(warm.any()) \
            else table.new_zeros(1, table.shape[1])
        return torch.where(warm.unsqueeze(1), table, fill)

    @torch.no_grad()
    def item_vectors(self, features: ItemFeatures | None = None, **_: object) -> torch.Tensor:
        """Trained rows for warm items, the fallback vector for every other item."""
        return self._fill(self.item.weight.detach(), self.warm_items_mask)

    @torch.no_grad()
    def user_vectors(self, users: torch.Tensor, history: Bags | None = None) -> torch.Tensor:
        """Trained rows for warm users, the fallback vector for users unseen in training."""
        table = self._fill(self.user.weight.detach(), self.warm_users_mask)
        return table[users.to(table.device).long()]
