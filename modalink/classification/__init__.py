"""Task: multimodal classification with missing modalities (Chameleon, multi-branch, SRMM, late fusion).

One home for what every method shares, in small modules:

* :mod:`~modalink.classification.records` — datasets as released: :class:`MultimodalRecord`,
  :class:`MultimodalDataset`, the bad-file policy and ``load_dataset(name, root, split)``, over
  the readers of :mod:`~modalink.classification.sources` (Food-101, MM-IMDb, Hateful Memes,
  Ferramenta); :mod:`~modalink.classification.synthetic_food101` writes a Food-101 stand-in;
* :mod:`~modalink.classification.missing` — missing-modality masks (draw, apply, save, load);
* :mod:`~modalink.classification.conditions` — the condition vocabulary (``complete``,
  ``text=30%``, ``image=0%``, ``text=65%,image=65%``), the shared mask protocol and ``MissingConfig``;
* :mod:`~modalink.classification.datasets` — what the methods train on, built from records:
  photos + texts or cached embeddings with availability masks, masked the same way (``with_mask``);
* :mod:`~modalink.classification.batches` — collates that build each method's inputs;
* :mod:`~modalink.classification.trainer_module` — the one trainer module (loss, auxiliary
  per-modality loss, SRMM's modality switching);
* :mod:`~modalink.classification.evaluation` — ``evaluate_conditions`` and the one results shape
  (methods × conditions → metric), its Markdown table, ``results.json``/``timings.json``;
* :mod:`~modalink.classification.image_features` / :mod:`~modalink.classification.embeddings` —
  image features (timm through :mod:`modalink.encoders`, or pixel statistics) and the
  extraction-and-cache pipeline (:mod:`modalink.data.embedding_cache`);
* :mod:`~modalink.classification.chameleon` / :mod:`~modalink.classification.srmm` — each
  family's config, data loading and model building (networks come from ``modalink.models``);

``recipes/chameleon`` and ``recipes/srmm`` only wire these together.
"""
from modalink.classification.conditions import (MissingConfig, check_conditions, condition_mask, condition_shares,
                                                parse_condition, text_condition)
from modalink.classification.datasets import EmbeddingSet, PhotoTextSet, PhotoTransform, collate_embeddings
from modalink.classification.evaluation import (evaluate_conditions, format_table, predict_logits, score,
                                                write_results, write_timings)
from modalink.classification.trainer_module import MissingModalityModule

__all__ = ["MissingConfig", "check_conditions", "condition_mask", "condition_shares", "parse_condition",
           "text_condition", "EmbeddingSet", "PhotoTextSet", "PhotoTransform", "collate_embeddings",
           "evaluate_conditions", "format_table", "predict_logits", "score", "write_results", "write_timings",
           "MissingModalityModule"]
