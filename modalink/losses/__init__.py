"""Training objectives, one per file, all on :class:`ModalinkLoss` and in one registry.

``create_loss("opl", gamma=0.7)``, ``list_losses()``; unknown names raise with the known list.
"""
from modalink.losses.base import (LOSSES, ModalinkLoss, all_gather_rows, create_loss, distributed_world,
                                  list_losses, register_loss)
from modalink.losses.opl import OrthogonalProjectionLoss
from modalink.losses.infonce import InfoNCE
from modalink.losses.aam_softmax import AAMSoftmax
from modalink.losses.alignment import AlignmentMSE

from modalink.losses.bpr import BPRLoss
from modalink.losses.sampled_softmax import SampledSoftmaxLoss

__all__ = [
    "LOSSES", "ModalinkLoss", "create_loss", "list_losses", "register_loss", "all_gather_rows",
    "distributed_world", "OrthogonalProjectionLoss", "InfoNCE", "AAMSoftmax", "AlignmentMSE",
    "BPRLoss", "SampledSoftmaxLoss",
]
