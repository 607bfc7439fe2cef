"""Items from raw files: a trained modalink model as an item encoder, and cold items at serving time.

* :func:`apply_item_model` (``item_model.*``) — an exported modalink model (any folder written
  by :func:`modalink.hub.save_pretrained`, e.g. the single-branch model of an SRMM run on
  photos + titles) embeds item media vectors; its embedding of each input becomes an item
  modality ``model_<modality>``. **Frozen**: the embeddings are computed once and the tower
  learns on top of them. **Fine-tuned**: the model is copied into the item tower
  (``ItemTower(item_encoder=...)``) and trained with it.
* :class:`ColdItemEncoder` — loads a finished recsys run (the exported tower ``tower_model/`` and
  the catalogue index ``item_index.npz``), embeds NEW items from their files (text, tags, image,
  audio; no interactions, no ID) with the same media encoders, and queries the index.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from modalink.config import load_config
from modalink.errors import InputError, UserError
from modalink.recsys.config import ItemModelConfig, MediaConfig

__all__ = ["apply_item_model", "ColdItemEncoder"]


def _model_modalities(model: torch.nn.Module) -> list[str]:
    mods = getattr(model, "modalities", None)
    return list(mods) if mods else []


def _input_width(model: torch.nn.Module, modality: str) -> int | None:
    stems = getattr(model, "stems", None)
    if stems is not None and modality in stems:
        for mod in stems[modality].modules():
            if isinstance(mod, torch.nn.Linear):
                return int(mod.in_features)
    return None


def recorded_identity(record: Any, output_dim: int | None = None) -> dict[str, Any] | None:
    """The input identity (:func:`modalink.encoders.contract_check.input_identity`) of an encoder
    as modalink records it: a registry name; a ``feature_info.json`` encoder entry (``name``,
    ``weights``, ``random_weights``, ``seed``, ``contract``); an encoder's
    :meth:`~modalink.encoders.Encoder.identity` (``name``, ``options``, ``output_dim``, ``weights``:
    the recsys media configs and the image-features configs); a text entry ``{"text_encoder": {...}}``.
    ``None`` when nothing is recorded. Weights files not on this machine are not compared."""
    from modalink.encoders.contract_check import input_identity, weights_identity

    if isinstance(record, str):
        return input_identity(record, output_dim)
    if not isinstance(record, Mapping):
        return None
    if isinstance(record.get("text_encoder"), Mapping):
        text = record["text_encoder"]
        return input_identity(text.get("name"), text.get("dim") or output_dim)
    contract = record.get("contract") if isinstance(record.get("contract"), Mapping) else {}
    name = record.get("name") or record.get("encoder") or contract.get("name")
    dim = record.get("dim") or record.get("output_dim") or contract.get("output_dim") or output_dim
    random = record.get("random_weights")
    if random is None and "pretrained" in record:
        random = not record["pretrained"]
    weights = record.get("weights")
    if isinstance(weights, Mapping):
        weights = weights.get("path")
    if "options" in record and isinstance(weights, str):  # an Encoder.identity(): weights already identified
        ident: str | None = weights
    else:
        ident = weights_identity(random=True, seed=record.get("seed")) if random else weights_identity(weights)
    return input_identity(str(name) if name else None, dim, ident)


def expected_inputs(contract: Mapping[str, Any], modality: str) -> dict[str, Any] | None:
    """What an exported model's contract says made its ``modality`` input: a FAME model's
    ``feature_info`` (``<modality>_encoder``, ``<modality>_dim``), ``<modality>_encoder`` (SRMM
    ``image_encoder`` / ``text_encoder``) or ``contract[modality]`` (a name or a record)."""
    info = contract.get("feature_info") if isinstance(contract.get("feature_info"), Mapping) else {}
    dim = contract.get(f"{modality}_dim") or info.get(f"{modality}_dim")
    dims = contract.get("dims")
    if not dim and isinstance(dims, Mapping):
        dim = dims.get(modality)
    for record in (info.get(f"{modality}_encoder"), contract.get(f"{modality}_encoder"), contract.get(modality)):
        if record is not None:
            return recorded_identity(record, dim)
    return {"output_dim": int(dim)} if dim else None


def check_item_model_inputs(cfg: ItemModelConfig, folder: Path, contract: Mapping[str, Any],
                            mapping: Mapping[str, str], media_configs: Mapping[str, Any]) -> list[str]:
    """Refuse item vectors made by other encoders than the item model's contract names (one
    line naming both sides; ``item_model.allow_encoder_mismatch=true`` warns instead)."""
    from modalink.encoders.contract_check import check_input_contract

    diffs: list[str] = []
    for model_mod, media in mapping.items():
        want = expected_inputs(contract, model_mod)
        have = recorded_identity(media_configs.get(media))
        if want and have:
            diffs += check_input_contract(want, have, f"item_model.path={folder}: its {model_mod} input, fed the "
                                                      f"item {media} vectors", override=cfg.allow_encoder_mismatch,
                                          override_hint="item_model.allow_encoder_mismatch=true")
    return diffs


def apply_item_model(cfg: ItemModelConfig, raw: Mapping[str, np.ndarray], dense: dict[str, np.ndarray],
                     media_configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Add the item model's modalities to ``dense`` (in place) from the ``raw`` media vectors.

    ``media_configs``: how each media modality was embedded (:func:`~modalink.recsys.catalogue.extract_media`);
    the model's input contract is checked against them (:func:`check_item_model_inputs`).

    Frozen: ``dense["model_<m>"]`` = the model's L2-normalised embedding (zero rows where the
    item lacks the input). Fine-tuned: ``dense["model_<m>"]`` = the raw input vectors and the
    returned dict holds the tower arguments (``item_encoder``, ``encoder_inputs``,
    ``dense_dims``) plus ``state_dict`` (the pretrained weights to load into the tower)."""
    from modalink.hub import from_pretrained, read_model_config

    folder = Path(cfg.path).expanduser()
    body = read_model_config(folder)
    model = from_pretrained(folder)
    mods = _model_modalities(model)
    mapping = dict(cfg.inputs) if cfg.inputs is not None else {m: m for m in mods if m in raw}
    if not mapping:
        raise UserError(f"item_model.path={folder}: the model's modalities {mods} match none of the item media "
                        f"{sorted(raw)}; set item_model.inputs, e.g. item_model.inputs={{image: image}}")
    info: dict[str, Any] = {"path": str(folder.absolute()), "name": body["name"], "inputs": mapping,
                            "finetune": cfg.finetune}
    for model_mod, media in mapping.items():
        if media not in raw:
            raise UserError(f"item_model.inputs: item modality {media!r} does not exist; have {sorted(raw)}")
        if mods and model_mod not in mods:
            raise UserError(f"item_model.inputs: {folder} has no modality {model_mod!r}; it has {mods}")
    mismatches = check_item_model_inputs(cfg, folder, body.get("contract") or {}, mapping, media_configs or {})
    if mismatches:
        info["encoder_mismatches"] = mismatches
    encoder_inputs, dims = {}, {}
    for model_mod, media in mapping.items():
        x = np.asarray(raw[media], dtype=np.float32)
        want = _input_width(model, model_mod)
        if want is not None and want != x.shape[1]:
            raise UserError(f"item_model: {folder} reads {model_mod} vectors of width {want}, but the item "
                            f"{media} vectors have width {x.shape[1]}; extract them with the encoder the model "
                            f"was trained on (its config.json 'contract')")
        have = np.abs(x).sum(1) > 0
        with torch.no_grad():
            emb = np.zeros((x.shape[0], 0), dtype=np.float32)
            rows = np.flatnonzero(have)
            try:
                out = model.embed(torch.from_numpy(x[rows[:1] if rows.size else [0]]), model_mod)
            except (RuntimeError, KeyError, ValueError) as e:
                raise UserError(f"item_model: {folder} cannot embed item {media} vectors as {model_mod!r} "
                                f"({str(e).splitlines()[0][:200]})") from None
            width = int(out.shape[1])
            emb = np.zeros((x.shape[0], width), dtype=np.float32)
            for s in range(0, rows.size, 4096):
                r = rows[s:s + 4096]
                emb[r] = model.embed(torch.from_numpy(x[r]), model_mod).float().numpy()
        name = f"model_{model_mod}"
        if cfg.finetune:
            dense[name] = x
            encoder_inputs[name] = model_mod
            dims[name] = width
        else:
            dense[name] = emb
    if cfg.finetune:
        info["tower_kwargs"] = {"item_encoder": {"name": body["name"], "kwargs": body["kwargs"]},
                                "encoder_inputs": encoder_inputs, "dense_dims": dims}
        info["state_dict"] = model.state_dict()
    return info


class ColdItemEncoder:
    """Embed new items from their raw files with a finished run's tower; query its index.

    ``ColdItemEncoder.from_run("runs/recsys_catalogue")`` reads ``tower_model/`` (the exported
    item tower; its contract names the media encoders, the tag vocabulary and any item model)
    and ``item_index.npz``. :meth:`embed` takes items as dicts with any of ``text``, ``tags``
    (list or ``|``-separated), ``image`` and ``audio`` (paths) and returns L2-normalised vectors
    plus a report of what each item could use; :meth:`query` returns the nearest catalogue items.
    """

    def __init__(self, tower: torch.nn.Module, contract: Mapping[str, Any], index: Any = None) -> None:
        self.tower = tower.eval()
        self.contract = dict(contract)
        self.index = index
        if not self.contract.get("media"):
            raise UserError("this tower was not trained on a media catalogue (its contract has no 'media' "
                            "section), so new items cannot be embedded from raw files")
        self._encoders: dict[str, Any] | None = None
        self._item_model: torch.nn.Module | None = None

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike) -> "ColdItemEncoder":
        """The encoder of the finished run in ``run_dir`` (:func:`modalink.recsys.runs.load_run`)."""
        from modalink.recsys.runs import load_run

        run = load_run(run_dir)
        return cls(run.item_tower, run.tower_contract, run.index)

    # -- media ------------------------------------------------------------------------------
    def _media(self) -> dict[str, Any]:
        from modalink.recsys.catalogue import media_encoders

        if self._encoders is None:
            # through the config loader: the recorded settings are checked like a config file
            cfg = load_config(MediaConfig, defaults=self.contract["media"]["config"])
            wanted = [m for m in self.contract["media"]["modalities"]]
            self._encoders = media_encoders(cfg, wanted)
            self._media_cfg = cfg
        return self._encoders

    def embed(self, items: Sequence[Mapping[str, Any]], base_dir: str | os.PathLike | None = None
              ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """``(vectors (N, D), reports)``: each report lists the modalities used and the problems
        (missing or unreadable files, unknown tags). An item with no usable modality raises."""
        from modalink.recsys.catalogue import encode_media_rows, l2_rows
        from modalink.recsys.data import Bags, ItemFeatures

        base = Path(base_dir) if base_dir is not None else Path.cwd()
        n = len(items)
        if n == 0:
            raise InputError("no items to embed")
        encoders = self._media()
        reports: list[dict[str, Any]] = [{"used": [], "problems": []} for _ in range(n)]
        raw: dict[str, np.ndarray] = {}
        for m, enc in encoders.items():
            srcs: list[Any] = []
            for r, it in enumerate(items):
                v = it.get(m)
                if not v:
                    srcs.append(None)
                    continue
                if m == "text":
                    srcs.append(str(v))
                    continue
                p = Path(v).expanduser()
                p = p if p.is_absolute() else base / p
                if not p.is_file():
                    reports[r]["problems"].append(f"{m} file not found: {p}")
                    srcs.append(None)
                else:
                    srcs.append(p)
            failures: dict[int, str] = {}
            raw[m] = encode_media_rows(m, enc, srcs, failures, batch_size=self._media_cfg.batch_size)
            for r, why in failures.items():
                reports[r]["problems"].append(f"{m}: {why}")
        dense = {m: l2_rows(x) for m, x in raw.items()}
        im = self.contract.get("item_model")
        if im:
            self._add_item_model(im, raw, dense)
        tower = self.tower
        dense_t = {}
        for m, width in tower.dense_dims.items():
            x = dense.get(m)
            in_width = width
            if m in tower.encoder_inputs:
                x = raw.get(im["inputs"][tower.encoder_inputs[m]]) if im else None
                in_width = x.shape[1] if x is not None else width
            dense_t[m] = torch.from_numpy(np.asarray(x, dtype=np.float32)) if x is not None else torch.zeros(n, in_width)
        bags = {}
        vocab = self.contract.get("tag_vocab", {})
        for m, size in tower.bag_sizes.items():
            lists: list[list[int]] = [[] for _ in range(n)]
            if m in vocab:
                pos = {t: k for k, t in enumerate(vocab[m])}
                for r, it in enumerate(items):
                    tags = it.get("tags") or []
                    tags = [t.strip() for t in (tags.split("|") if isinstance(tags, str) else tags) if t.strip()]
                    unknown = [t for t in tags if t not in pos]
                    if unknown:
                        reports[r]["problems"].append(f"tags not in the training vocabulary (ignored): {unknown}")
                    lists[r] = sorted({pos[t] for t in tags if t in pos})
            bags[m] = Bags.from_lists(lists, size)
        feats = ItemFeatures(n, dense_t, bags)
        for r in range(n):
            reports[r]["used"] = [m for m in feats.modalities if bool(feats.available[m][r])]
        empty = [r for r in range(n) if not reports[r]["used"]]
        if empty:
            r = empty[0]
            raise UserError(f"new item #{r} has no usable modality ({'; '.join(reports[r]['problems']) or 'no text, tags, image or audio given'}); "
                            f"the tower reads {list(tower.modalities)}")
        return tower.embed_catalogue(feats, missing="error").cpu(), reports

    def _add_item_model(self, im: Mapping[str, Any], raw: dict[str, np.ndarray], dense: dict[str, np.ndarray]) -> None:
        if im.get("finetune"):
            return  # the model is part of the tower: it reads the raw vectors
        from modalink.hub import from_pretrained

        if self._item_model is None:
            self._item_model = from_pretrained(im["path"])
        for model_mod, media in im["inputs"].items():
            x = raw[media]
            have = np.abs(x).sum(1) > 0
            with torch.no_grad():
                emb = self._item_model.embed(torch.from_numpy(x), model_mod).float().numpy()
            dense[f"model_{model_mod}"] = np.where(have[:, None], emb, 0.0).astype(np.float32)

    def query(self, items: Sequence[Mapping[str, Any]], k: int = 10, base_dir: str | os.PathLike | None = None
              ) -> list[dict[str, Any]]:
        """For each new item: its nearest catalogue items ``[(item_id, score), ...]`` and its report."""
        if self.index is None:
            raise ValueError("no index loaded; use ColdItemEncoder.from_run(run_dir)")
        vecs, reports = self.embed(items, base_dir)
        scores, ids = self.index.search_ids(vecs, k)
        return [{"neighbours": [(str(i), float(s)) for i, s in zip(row_ids, row_s)], **rep}
                for row_ids, row_s, rep in zip(ids, scores, reports)]
