"""A user's own item catalogue: items with text, tags, photos and audio clips, plus interactions.

Layout (a folder, given to ``train.py --data-root``)::

    items.csv          header row; columns: item_id (required), text, tags, image, audio (optional)
    interactions.csv   header row; columns: user_id, item_id (required), rating, timestamp (optional)
    <any folders>      the media files, paths in items.csv are relative to the folder (or absolute)

``tags`` are ``|``-separated (``jazz|live``). Any of text, tags, image and audio may be empty for an
item: that modality is then missing for that item and the item tower averages over the others.
Errors name the file and line (``items.csv:12: duplicate item_id 'a7'``); an empty interactions file
is refused. Interactions naming an item that is not in ``items.csv`` are skipped and counted
(``unknown_items`` in the report, with the first lines), or refused with ``unknown_items="error"``.

Media go through modalink encoders (:func:`extract_media`): images through a registered image
encoder (``timm/<arch>``), audio through the voice encoder (``ecapa_voxceleb``), both read and
embedded by :func:`modalink.encoders.embed_files.embed_files`, text through a text encoder
(:func:`modalink.text.encoders.create_text_encoder`). Extraction goes through
:class:`modalink.data.embedding_cache.EmbeddingCache` (resumable shards, content-checked).
A listed file that does not exist, or that cannot be decoded, becomes a missing modality for
that item (a zero row) and is counted per reason in the media report; it never stops a run
(unless NO item of a modality could be read, which is a configuration error).
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from modalink.errors import InputError, UserError
from modalink.recsys.config import MediaConfig

__all__ = ["Catalogue", "CatalogueError", "read_catalogue", "is_catalogue", "extract_media",
           "media_encoders", "encode_media_rows", "catalogue_data", "ITEMS_FILE", "INTERACTIONS_FILE",
           "MEDIA_MODALITIES"]

ITEMS_FILE = "items.csv"
INTERACTIONS_FILE = "interactions.csv"
ITEM_COLUMNS = ("item_id", "text", "tags", "image", "audio")
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
MEDIA_MODALITIES = ("text", "image", "audio")


class CatalogueError(UserError, ValueError):
    """A catalogue file that cannot be used (names the file and line)."""


@dataclass
class Catalogue:
    """The parsed catalogue: item i has ``item_ids[i]``, ``texts[i]`` (None = no text),
    ``tags[i]``, ``images[i]``/``audio[i]`` (absolute path or None); interactions are index pairs."""

    root: Path
    item_ids: list[str]
    texts: list[str | None]
    tags: list[list[str]]
    images: list[Path | None]
    audio: list[Path | None]
    users: np.ndarray
    items: np.ndarray
    user_ids: list[str]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def files(self) -> list[Path]:
        """The catalogue's two table files."""
        return [self.root / ITEMS_FILE, self.root / INTERACTIONS_FILE]


def is_catalogue(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds the catalogue layout (an ``items.csv``)."""
    return (Path(root) / ITEMS_FILE).is_file()


def _open_table(path: Path, required: Sequence[str], known: Sequence[str]) -> tuple[list[str], list[tuple[int, dict]]]:
    if not path.is_file():
        raise CatalogueError(f"{path}: file not found; a catalogue folder holds {ITEMS_FILE} and "
                             f"{INTERACTIONS_FILE} (see recipes/recsys/README.md)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CatalogueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise CatalogueError(f"{path}: the file is empty; it needs a header row ({', '.join(required)}, ...) and "
                             f"at least one data row")
    reader = csv.reader(lines)
    header: list[str] | None = None
    rows: list[tuple[int, dict]] = []
    for ln, rec in enumerate(reader, 1):
        if not rec or all(not c.strip() for c in rec):
            continue
        if header is None:
            header = [c.strip().lower() for c in rec]
            missing = [c for c in required if c not in header]
            if missing:
                raise CatalogueError(f"{path}:{ln}: header {rec} lacks column(s) {missing}; expected "
                                     f"{', '.join(required)} and optionally "
                                     f"{', '.join(c for c in known if c not in required)}")
            unknown = [c for c in header if c not in known]
            if unknown:
                raise CatalogueError(f"{path}:{ln}: unknown column(s) {unknown}; known: {', '.join(known)}")
            if len(set(header)) != len(header):
                raise CatalogueError(f"{path}:{ln}: a column is named twice in the header {rec}")
            continue
        if len(rec) != len(header):
            raise CatalogueError(f"{path}:{ln}: {len(rec)} fields, the header has {len(header)} "
                                 f"({', '.join(header)}); quote fields that contain commas")
        rows.append((ln, {h: v.strip() for h, v in zip(header, rec)}))
    if not rows:
        raise CatalogueError(f"{path}: no data rows after the header; the file is empty")
    return header or [], rows


def read_catalogue(root: str | os.PathLike, min_rating: float = 0.0, unknown_items: str = "skip") -> Catalogue:
    """Read and validate a catalogue folder (see the module docstring)."""
    if unknown_items not in ("skip", "error"):
        raise InputError(f"unknown_items must be 'skip' or 'error', got {unknown_items!r}")
    root = Path(root).expanduser().absolute()
    items_path, inter_path = root / ITEMS_FILE, root / INTERACTIONS_FILE
    _, item_rows = _open_table(items_path, ("item_id",), ITEM_COLUMNS)
    index: dict[str, int] = {}
    ids, texts, tags, images, audio = [], [], [], [], []
    listed = {"image": 0, "audio": 0}
    missing_files: dict[str, list[str]] = {"image": [], "audio": []}
    for ln, row in item_rows:
        iid = row["item_id"]
        if not iid:
            raise CatalogueError(f"{items_path}:{ln}: empty item_id")
        if iid in index:
            raise CatalogueError(f"{items_path}:{ln}: duplicate item_id {iid!r} (first on another line)")
        index[iid] = len(ids)
        ids.append(iid)
        texts.append(row.get("text") or None)
        tags.append(sorted({t.strip() for t in (row.get("tags") or "").split("|") if t.strip()}))
        for col, out in (("image", images), ("audio", audio)):
            rel = row.get(col) or ""
            if not rel:
                out.append(None)
                continue
            listed[col] += 1
            p = Path(rel).expanduser()
            p = p if p.is_absolute() else root / p
            if not p.is_file():
                missing_files[col].append(f"{items_path.name}:{ln}: {rel}")
                out.append(None)  # a missing file = a missing modality, counted in the report
            else:
                out.append(p)
    _, inter_rows = _open_table(inter_path, ("user_id", "item_id"), INTERACTION_COLUMNS)
    users: dict[str, int] = {}
    us, its = [], []
    unknown: list[str] = []
    below = 0
    for ln, row in inter_rows:
        u, i = row["user_id"], row["item_id"]
        if not u or not i:
            raise CatalogueError(f"{inter_path}:{ln}: empty user_id or item_id")
        for col in ("rating", "timestamp"):
            v = row.get(col, "")
            if v:
                try:
                    number = float(v)
                except ValueError:
                    raise CatalogueError(f"{inter_path}:{ln}: {col} {v!r} is not a number") from None
                if not math.isfinite(number):
                    raise CatalogueError(f"{inter_path}:{ln}: {col} {v!r} is not a finite number; "
                                         f"fix or remove that line")
        if i not in index:
            if unknown_items == "error":
                raise CatalogueError(f"{inter_path}:{ln}: item_id {i!r} is not in {ITEMS_FILE}")
            unknown.append(f"{inter_path.name}:{ln}: {i}")
            continue
        r = row.get("rating", "")
        if r and float(r) < min_rating:
            below += 1
            continue
        us.append(users.setdefault(u, len(users)))
        its.append(index[i])
    if not us:
        why = (f"all {len(unknown)} rows name items that are not in {ITEMS_FILE}" if unknown and len(unknown) == len(inter_rows)
               else f"no rating reaches data.min_rating={min_rating}")
        raise CatalogueError(f"{inter_path}: no usable interaction ({why})")
    report = {
        "items": len(ids), "users": len(users), "interactions": len(us),
        "skipped_unknown_items": len(unknown), "unknown_item_examples": unknown[:10],
        "skipped_below_min_rating": below,
        "items_with_text": sum(t is not None for t in texts), "items_with_tags": sum(bool(t) for t in tags),
        **{f"{c}_listed": listed[c] for c in listed},
        **{f"{c}_missing_files": len(missing_files[c]) for c in missing_files},
        **{f"{c}_missing_examples": missing_files[c][:10] for c in missing_files},
    }
    return Catalogue(root, ids, texts, tags, images, audio, np.asarray(us, dtype=np.int64),
                     np.asarray(its, dtype=np.int64), list(users), report)


# ---------------------------------------------------------------------------------------------
# media through modalink encoders
# ---------------------------------------------------------------------------------------------
def _seeded(seed: int, build: Callable[[], Any]) -> Any:
    """Build under a fixed torch seed (random-weight encoders are the same at training and query)."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build()
    finally:
        torch.random.set_rng_state(state)


def media_encoders(cfg: MediaConfig, needed: Sequence[str]) -> dict[str, Any]:
    """``{modality: encoder}`` for the modalities in ``needed``."""
    from modalink.encoders import create_encoder
    from modalink.text.encoders import create_text_encoder

    out: dict[str, Any] = {}
    if "image" in needed:
        out["image"] = _seeded(cfg.encoder_seed, lambda: create_encoder(
            cfg.image_encoder, pretrained=cfg.pretrained, weights=cfg.image_weights,
            weights_option="media.image_weights")).to(cfg.device).eval()
    if "audio" in needed:
        out["audio"] = _seeded(cfg.encoder_seed + 1, lambda: create_encoder(
            cfg.audio_encoder, pretrained=cfg.pretrained, weights=cfg.audio_weights,
            weights_option="media.audio_weights", min_seconds=cfg.audio_min_seconds,
            **cfg.audio_kwargs)).to(cfg.device).eval()
    if "text" in needed:
        out["text"] = create_text_encoder(cfg.text_encoder, **cfg.text_kwargs)
    return out


def _encoder_config(modality: str, cfg: MediaConfig, enc: Any) -> dict[str, Any]:
    """What decides a modality's item vectors (the cache key, recorded in the run): a text
    encoder's config, a media encoder's :meth:`~modalink.encoders.Encoder.identity`."""
    if modality == "text":
        return {"text_encoder": enc.config()}
    return enc.identity(cfg.encoder_seed + (1 if modality == "audio" else 0))


def encode_media_rows(modality: str, enc: Any, sources: Sequence[Any], failures: dict[int, str],
                      offset: int = 0, batch_size: int = 32) -> np.ndarray:
    """Vectors of ``sources`` (texts, or image/audio paths; ``None`` = missing) with ``enc``.

    Files are embedded by :func:`modalink.encoders.embed_files.embed_files`. A missing source
    gives a zero row; a file that cannot be read, or that the encoder refuses, gives a zero row
    and ``failures[offset + row] = why``. Returns ``(len(sources), dim)`` float32."""
    from modalink.encoders.embed_files import embed_files

    if modality == "text":
        return np.asarray(enc.encode(list(sources)), dtype=np.float32)
    out = np.zeros((len(sources), int(enc.output_dim)), dtype=np.float32)
    rows = [r for r, src in enumerate(sources) if src is not None]
    for results in embed_files(enc, [sources[r] for r in rows], batch_size=batch_size,
                               min_seconds=getattr(enc, "min_seconds", 0.0), by_length=False, full_batches=True,
                               progress=False):
        for res in results:
            r = rows[res.index]
            if res.embedding is not None:
                out[r] = res.embedding
            elif res.stage == "read":
                failures[offset + r] = " ".join(f"{res.relpath}: cannot read {modality} ({res.detail})".split())[:300]
            else:
                failures[offset + r] = f"{res.relpath}: {res.problem}"
    return out


def extract_media(cat: Catalogue, cfg: MediaConfig, cache_dir: str | os.PathLike, *,
                  progress: bool = False, log: Any = None,
                  processes: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any], dict]:
    """Item vectors of every media modality of ``cat`` through the embedding cache.

    Under a launched job (a process group formed, e.g. by ``process_state``) this is a collective
    call: every process calls it and embeds one block of the items (``processes``: a
    :class:`~modalink.data.processes.Processes`, default the current job's).

    Returns ``(vectors, report, encoder_configs)``: ``vectors[m]`` is ``(n_items, dim)`` with zero
    rows where the item has no usable ``m``; ``report[m]`` counts items with the modality, files
    missing, files that could not be decoded (with reasons) and items embedded."""
    from modalink.data.embedding_cache import (CacheKey, EmbeddingCache, EncodedRows, RowProblem, file_row_ids,
                                               text_row_ids)

    unknown = [m for m in cfg.modalities if m not in MEDIA_MODALITIES]
    if unknown:
        raise InputError(f"media.modalities: unknown {unknown}; use some of {list(MEDIA_MODALITIES)}")
    sources = {"text": cat.texts, "image": cat.images, "audio": cat.audio}
    wanted = [m for m in cfg.modalities if any(s is not None for s in sources[m])]
    encoders = media_encoders(cfg, wanted)
    from modalink.data.processes import Processes

    procs = processes if processes is not None else Processes.current()
    cache = EmbeddingCache(cache_dir)
    vectors: dict[str, np.ndarray] = {}
    report: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    for m in wanted:
        enc, src = encoders[m], sources[m]
        econf = _encoder_config(m, cfg, enc)
        configs[m] = econf
        if m == "text":
            ids = text_row_ids(src)
        else:
            present = [p for p in src if p is not None]
            it = iter(file_row_ids(present, cat.root))
            ids = ["-" if p is None else next(it) for p in src]
        key = CacheKey.for_rows("catalogue", m, econf, ids)

        def encode(rows: np.ndarray, m: str = m, enc: Any = enc, src: Sequence[Any] = src) -> EncodedRows:
            failed: dict[int, str] = {}
            x = encode_media_rows(m, enc, [src[r] for r in rows], failed, batch_size=cfg.batch_size)
            return EncodedRows(x, {int(rows[k]): RowProblem("unreadable", why) for k, why in failed.items()})

        arr, built = cache.get_or_build(key, encode, shard_size=cfg.shard_size, progress=progress,
                                        desc=f"embed item {m}", processes=procs)
        failures = {r: p.detail for r, p in cache.problems(key).items() if not p.embedded}
        arr = np.asarray(arr, dtype=np.float32)
        have = np.abs(arr).sum(1) > 0
        listed = sum(s is not None for s in src)
        rep = {"encoder": econf.get("name") or econf["text_encoder"].get("name"), "items": cat.n_items,
               "with_source": listed, "embedded": int(have.sum()), "unreadable": len(failures),
               "unreadable_examples": [f"item {cat.item_ids[r]}: {why}" for r, why in sorted(failures.items())[:10]],
               "from_cache": not built}
        if m != "text":
            rep["missing_files"] = cat.report.get(f"{m}_missing_files", 0)
            rep["missing_examples"] = cat.report.get(f"{m}_missing_examples", [])
        report[m] = rep
        if log is not None and (failures or rep.get("missing_files")):
            log.warning("%s: %d item(s) have a %s file that is missing and %d one that could not be read; "
                        "they lack that modality (details in media_report.json)", m, rep.get("missing_files", 0),
                        m, len(failures))
        if listed and not have.any():
            first = rep["unreadable_examples"][:1]
            raise CatalogueError(f"none of the {listed} {m} inputs of {cat.root / ITEMS_FILE} could be embedded"
                                 + (f" (e.g. {first[0]})" if first else "")
                                 + f"; fix the files or drop {m} from media.modalities")
        vectors[m] = arr
    return vectors, report, configs


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero: a missing modality)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(n > 0, x / np.maximum(n, 1e-12), 0.0).astype(np.float32)


def catalogue_data(cat: Catalogue, vectors: Mapping[str, np.ndarray]) -> Any:
    """A :class:`modalink.recsys.data.RecsysData` from a catalogue and its media vectors
    (rows L2-normalised; tags become the ``tags`` bag modality when any item has tags)."""
    from modalink.recsys.data import Interactions, RecsysData

    inter = Interactions(cat.users, cat.items, len(cat.user_ids), cat.n_items)
    dense = {m: l2_rows(np.asarray(x, dtype=np.float32)) for m, x in vectors.items()}
    vocab = sorted({t for ts in cat.tags for t in ts})
    tags: dict[str, list[list[int]]] = {}
    tag_vocab: dict[str, list[str]] = {}
    if vocab:
        pos = {t: k for k, t in enumerate(vocab)}
        tags["tags"] = [[pos[t] for t in ts] for ts in cat.tags]
        tag_vocab["tags"] = vocab
    return RecsysData(inter, dense, tags, tag_vocab, list(cat.item_ids), name=f"catalogue {cat.root.name}")
