"""Recommendation with modalink encoders as item towers (SiBraR / CoBraR style).

* :mod:`~modalink.recsys.data` — interactions, item features with missing modalities, splits,
  synthetic catalogue, MovieLens readers.
* :mod:`~modalink.recsys.towers` — ``ItemTower`` (single branch over item modalities),
  ``UserTower`` and the training objective ``RecsysObjective``.
* :mod:`~modalink.recsys.evaluate` — full-ranking Recall/NDCG/coverage on warm, item-cold
  and user-cold splits, and over modality subsets.
* :mod:`~modalink.recsys.baselines` — popularity and BPR matrix factorisation.
* :mod:`~modalink.recsys.index` — catalogue export and inner-product search (FAISS or exact).
"""
from modalink.recsys.baselines import MatrixFactorization, Popularity
from modalink.recsys.data import (ID, BagBatch, Bags, Interactions, ItemBatch, ItemFeatures, RecsysData,
                                  RecsysSplit, build_item_features, hashed_bow, make_synthetic, read_movielens,
                                  split_recsys)
from modalink.recsys.evaluate import (evaluate_all, evaluate_modality_subsets, evaluate_split, format_table,
                                      rank_metrics)
from modalink.recsys.index import InnerProductIndex, export_item_index, faiss_available
from modalink.recsys.towers import ItemTower, RecsysObjective, SampledBranch, UserTower

__all__ = [
    "ID", "BagBatch", "Bags", "Interactions", "ItemBatch", "ItemFeatures", "RecsysData", "RecsysSplit",
    "build_item_features", "hashed_bow", "make_synthetic", "read_movielens", "split_recsys",
    "ItemTower", "UserTower", "RecsysObjective", "SampledBranch",
    "Popularity", "MatrixFactorization",
    "evaluate_all", "evaluate_split", "evaluate_modality_subsets", "rank_metrics", "format_table",
    "InnerProductIndex", "export_item_index", "faiss_available",
]
