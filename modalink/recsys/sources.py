"""The data a recsys run reads: a catalogue folder (``items.csv`` + media), MovieLens, or the
synthetic catalogue, as one :class:`~modalink.recsys.data.RecsysData`, and its content fingerprint."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modalink.errors import InputError
from modalink.recsys.catalogue import Catalogue
from modalink.recsys.config import RecsysConfig
from modalink.recsys.data import RecsysData

__all__ = ["read_source_catalogue", "load_data", "data_fingerprint"]


def read_source_catalogue(cfg: RecsysConfig) -> Catalogue | None:
    """The catalogue ``data.root`` names (``items.csv`` + ``interactions.csv``, read and checked,
    no media embedded yet), or ``None`` for MovieLens and the synthetic set."""
    from modalink.recsys.catalogue import is_catalogue, read_catalogue

    d = cfg.data
    if d.root is None or not is_catalogue(d.root):
        return None
    return read_catalogue(d.root, min_rating=d.min_rating, unknown_items=d.unknown_items)


def load_data(cfg: RecsysConfig, log: logging.Logger | None = None, cache_dir: str | Path | None = None,
              catalogue: Catalogue | None = None) -> tuple[RecsysData, dict[str, Any]]:
    """``(RecsysData, info)``: a catalogue folder (media through modalink encoders; ``catalogue``:
    the one :func:`read_source_catalogue` already read), MovieLens when ``data.root`` is set,
    else the synthetic catalogue. ``info`` holds the reports, the media encoders' configs and,
    with ``item_model.path``, the item model's settings. Data without interactions is refused."""
    from modalink.recsys.catalogue import catalogue_data, extract_media
    from modalink.recsys.data import make_synthetic, read_movielens
    from modalink.recsys.raw_items import apply_item_model

    d = cfg.data
    info: dict[str, Any] = {}
    raw: dict[str, Any]
    cat = catalogue if catalogue is not None else read_source_catalogue(cfg)
    if cat is not None:
        info["catalogue"] = cat.report
        if log is not None and cat.report["skipped_unknown_items"]:
            log.warning("%d interaction(s) name items that are not in items.csv and were skipped (e.g. %s)",
                        cat.report["skipped_unknown_items"], cat.report["unknown_item_examples"][0])
        cache = Path(d.cache_dir) if d.cache_dir is not None else Path(cache_dir or cat.root / ".modalink_cache")
        vectors, media_report, configs = extract_media(cat, cfg.media, cache, progress=cfg.engine.progress, log=log)
        info.update(media=media_report, media_configs=configs)
        data = catalogue_data(cat, vectors)
        raw = vectors
    elif d.root is not None:
        from modalink.recsys.catalogue import media_encoders

        # MovieLens titles go through the same text encoder as catalogue texts (media.text_*)
        data = read_movielens(d.root, min_rating=d.min_rating,
                              text_encoder=media_encoders(cfg.media, ["text"])["text"])
        raw = dict(data.item_dense)
    else:
        s = d.synthetic
        data = make_synthetic(n_users=s.n_users, n_items=s.n_items, latent_dim=s.latent_dim, n_genres=s.n_genres,
                              text_dim=s.text_dim, image_dim=s.image_dim,
                              interactions_per_user=(s.interactions_min, s.interactions_max),
                              content_noise=s.content_noise, missing={"text": s.missing_text, "image": s.missing_image},
                              temperature=s.temperature, seed=s.seed)
        raw = dict(data.item_dense)
    if cfg.item_model.path is not None:
        info["item_model"] = apply_item_model(cfg.item_model, raw, data.item_dense, info.get("media_configs"))
    if len(data.interactions) == 0:
        raise InputError(f"{d.root or 'the synthetic catalogue'}: no interactions to train on "
                         f"(check data.min_rating={d.min_rating})")
    return data, info


def data_fingerprint(cfg: RecsysConfig, cat: Catalogue | None = None) -> dict[str, str]:
    """Content digests of the files a run reads (``cat``: the catalogue of :func:`read_source_catalogue`;
    the synthetic set is fixed by its config)."""
    from modalink.data.embedding_cache import file_list_hash
    from modalink.io import file_digest

    root = cfg.data.root
    if root is None:
        return {"synthetic": "generated from data.synthetic.*"}
    root_p = Path(root)
    if cat is not None:
        media = [p for p in [*cat.images, *cat.audio] if p is not None]
        out = {p.name: file_digest(p) for p in cat.files()}
        out["media files (path, size, mtime)"] = file_list_hash(media, cat.root)
        return out
    return {str(p.relative_to(root_p)): file_digest(p) for p in sorted(root_p.rglob("*"))
            if p.is_file() and (p.suffix in (".dat", ".data", ".item", ".user") or p.name.startswith("u."))}
