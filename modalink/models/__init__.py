"""Models: SBNet (fully shared), single-branch with stems (SRMM/SiBraR) and two-branch (FOP);
training-time modality sampling strategies (:mod:`modalink.models.modality_sampling`)."""
from modalink.models.registry import MODELS, create_model, list_models, register_model
from modalink.models.modality_sampling import (CountSampler, DropSampler, KeepAll, ModalitySampler, SubsetSampler,
                                               build_sampler, list_samplers)
from modalink.models.fusion import EnhancedGatedFusion, GatedFusion, LinearWeightedAvg, create_fusion
from modalink.models.two_branch import EmbedBranch, TwoBranch
from modalink.models.single_branch import SingleBranch
from modalink.models.sbnet import SBNet

__all__ = [
    "MODELS", "create_model", "list_models", "register_model", "GatedFusion", "LinearWeightedAvg",
    "EnhancedGatedFusion", "create_fusion", "EmbedBranch", "TwoBranch", "SingleBranch", "SBNet", "LateFusion",
    "ChameleonClassifier", "ImageClassifier", "MultiBranchClassifier", "ModalitySampler", "SubsetSampler",
    "CountSampler", "DropSampler", "KeepAll", "build_sampler", "list_samplers", "EmbeddingEnsemble", "ensemble_of",
]
# imported for their registrations too: late_fusion, chameleon, image_classifier, multi_branch_classifier,
# embedding_ensemble
from modalink.models.late_fusion import LateFusion  # noqa: E402
from modalink.models.image_classifier import ChameleonClassifier, ImageClassifier, MultiBranchClassifier  # noqa: E402
from modalink.models.ensemble import EmbeddingEnsemble, ensemble_of  # noqa: E402
