"""Recommendation with modalink encoders as item towers (SiBraR / CoBraR style).

* :mod:`~modalink.recsys.config` — the run config (``RecsysConfig``), checked when loaded.
* :mod:`~modalink.recsys.data` — interactions, item features with missing modalities, splits,
  synthetic catalogue, MovieLens readers.
* :mod:`~modalink.recsys.sources` — a run's data (catalogue folder, MovieLens or synthetic) and
  its content fingerprint.
* :mod:`~modalink.recsys.towers` — ``ItemTower`` (single branch over item modalities),
  ``UserTower`` and the training objective ``RecsysObjective``.
* :mod:`~modalink.recsys.training` — the towers and the BPR-MF baseline built from the config
  and trained.
* :mod:`~modalink.recsys.evaluate` — full-ranking Recall/NDCG/coverage on warm, item-cold
  and user-cold splits, and over modality subsets.
* :mod:`~modalink.recsys.baselines` — popularity and BPR matrix factorisation.
* :mod:`~modalink.recsys.report` — ``split.json``, ``results.json`` and the ``results.md`` tables.
* :mod:`~modalink.recsys.index` — catalogue export and inner-product search (FAISS or exact).
* :mod:`~modalink.recsys.catalogue` — a user's own catalogue (items.csv + interactions.csv) with
  photos, audio and text embedded by modalink encoders through the embedding cache.
* :mod:`~modalink.recsys.raw_items` — an exported modalink model as an item encoder (frozen or
  fine-tuned), and new (cold) items embedded from raw files and queried against the index
  (``ColdItemEncoder``).
* :mod:`~modalink.recsys.runs` — a run folder's layout, the exported item tower and ``load_run``.
"""
from modalink.recsys.baselines import MatrixFactorization, Popularity
from modalink.recsys.config import ItemModelConfig, MediaConfig, RecsysConfig
from modalink.recsys.data import (ID, BagBatch, Bags, InteractionPairs, Interactions, ItemBatch, ItemFeatures, RecsysData,
                                  RecsysSplit, build_item_features, make_synthetic, read_movielens,
                                  split_recsys)
from modalink.recsys.evaluate import (evaluate_all, evaluate_modality_subsets, evaluate_split, format_table,
                                      rank_metrics)
from modalink.recsys.index import InnerProductIndex, export_item_index, faiss_available
from modalink.recsys.towers import ItemTower, RecsysObjective, SampledBranch, UserTower
from modalink.recsys.catalogue import Catalogue, CatalogueError, extract_media, read_catalogue

__all__ = [
    "ID", "BagBatch", "Bags", "InteractionPairs", "Interactions", "ItemBatch", "ItemFeatures", "RecsysData", "RecsysSplit",
    "build_item_features", "make_synthetic", "read_movielens", "split_recsys",
    "ItemTower", "UserTower", "RecsysObjective", "SampledBranch",
    "Popularity", "MatrixFactorization",
    "evaluate_all", "evaluate_split", "evaluate_modality_subsets", "rank_metrics", "format_table",
    "InnerProductIndex", "export_item_index", "faiss_available",
    "Catalogue", "CatalogueError", "extract_media", "read_catalogue",
    "RecsysConfig", "MediaConfig", "ItemModelConfig",
]
