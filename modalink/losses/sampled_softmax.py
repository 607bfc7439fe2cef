"""In-batch sampled softmax for two-tower retrieval (Yi et al., RecSys 2019), with logQ correction."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.losses.base import ModalinkLoss, all_gather_rows, register_loss


@register_loss("sampled_softmax")
class SampledSoftmaxLoss(ModalinkLoss):
    """Cross-entropy of each user against the batch's items; the diagonal is the positive.

    ``logits[b, j] = u_b · i_j / temperature − log q_j`` where ``q_j`` is the probability that
    item ``j`` is sampled as an in-batch negative (its training frequency); subtracting
    ``log q`` (``logq_correction``) removes the popularity bias of in-batch negatives.
    With ``item_ids``, another row holding the same item as row ``b``'s positive is not used
    as a negative of ``b`` (it is masked out).

    ``forward(user_emb (B, D), item_emb (B, D), item_log_q (B,) | None, item_ids (B,) | None)``.
    With ``gather=True`` and several processes, the items of every process are negatives.
    """

    def __init__(self, temperature: float = 0.1, logq_correction: bool = True, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.logq_correction = bool(logq_correction)
        self.gather = bool(gather)

    def logits(self, user_emb: torch.Tensor, item_emb: torch.Tensor, item_log_q: torch.Tensor | None = None,
               item_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (B, B_all) logit matrix (masked entries are -inf) and the (B,) target columns."""
        self.check_embeddings(user_emb, "user_emb")
        self.check_embeddings(item_emb, "item_emb")
        if user_emb.shape != item_emb.shape:
            raise ValueError(f"user_emb {tuple(user_emb.shape)} and item_emb {tuple(item_emb.shape)} differ")
        b = item_emb.shape[0]
        if item_log_q is not None and item_log_q.shape != (b,):
            raise ValueError(f"item_log_q must have shape ({b},), got {tuple(item_log_q.shape)}")
        if item_ids is not None:
            self.check_labels(item_ids, b, "item_ids")
        offset = 0
        if self.gather:
            item_emb, offset = all_gather_rows(item_emb, with_grad=True)
            if item_log_q is not None:
                item_log_q, _ = all_gather_rows(item_log_q.float().unsqueeze(1), with_grad=False)
                item_log_q = item_log_q.squeeze(1)
            if item_ids is not None:
                item_ids_all, _ = all_gather_rows(item_ids.unsqueeze(1), with_grad=False)
                item_ids_all = item_ids_all.squeeze(1)
        target = torch.arange(b, device=user_emb.device) + offset
        logits = user_emb @ item_emb.T / self.temperature
        if self.logq_correction and item_log_q is not None:
            logits = logits - item_log_q.to(logits.dtype).unsqueeze(0)
        if item_ids is not None:
            all_ids = item_ids_all if self.gather else item_ids
            same = item_ids.unsqueeze(1) == all_ids.unsqueeze(0)
            same[torch.arange(b, device=same.device), target] = False
            logits = logits.masked_fill(same, float("-inf"))
        return logits, target

    def forward(self, user_emb: torch.Tensor, item_emb: torch.Tensor, item_log_q: torch.Tensor | None = None,
                item_ids: torch.Tensor | None = None) -> torch.Tensor:
        logits, target = self.logits(user_emb, item_emb, item_log_q, item_ids)
        return F.cross_entropy(logits, target)
