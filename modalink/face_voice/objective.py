"""Face–voice association (FAME / MAV-Celeb): model building, training objective and scoring.

Recipes wire these together; nothing here knows about files or the command line.
Scores are DISTANCES (lower = same person), as the FAME organisers' scorer expects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from modalink.config import bounded
from modalink.data.processes import Processes
from modalink.errors import InputError
from modalink.losses import AAMSoftmax, AlignmentMSE, InfoNCE, OrthogonalProjectionLoss
from modalink.models import create_model


@dataclass
class FaceVoiceModelConfig:
    """The ``model:`` section: a registry name plus the knobs of the two model families."""

    name: str = "fop_enhanced"  # a registered face-voice model: fop, fop_linear, fop_enhanced, sbnet, sbnet_stems
    embed_dim: int = bounded(128, ge=1)
    dropout: float = bounded(0.5, ge=0, lt=1)
    init: Literal["default", "xavier"] = "default"  # xavier: the official FOP/SBNet init (xavier_uniform, bias 0.01)
    # sbnet only: width adapter for a modality whose width differs (random: fixed | linear: learned)
    projection: Literal["random", "linear"] = "random"
    # sbnet_stems (modality stems + shared trunk) only
    stem_dim: int = 512
    trunk_hidden: list[int] = field(default_factory=lambda: [256])
    norm: Literal["batch", "layer", "none"] = "batch"
    # a seed ensemble of this many models per language, scored and exported as ONE model
    # (modalink.models.EmbeddingEnsemble); member k trains with engine.seed + 10 k
    members: int = bounded(1, ge=1)


@dataclass
class FaceVoiceLossConfig:
    """The ``loss:`` section: weights of the terms (0 disables a term)."""

    ce: float = bounded(1.0, ge=0)  # cross-entropy on identity logits
    opl: float = bounded(1.0, ge=0)  # orthogonal projection loss weight (FOP's alpha)
    opl_gamma: float = 0.7
    opl_on: Literal["fused", "modalities", "both"] = "fused"
    infonce: float = bounded(0.0, ge=0)  # symmetric face↔voice InfoNCE
    infonce_temperature: float = 0.1
    infonce_learnable: bool = True
    aam: float = bounded(0.0, ge=0)  # AAM-softmax over both modalities' embeddings (shared class weights)
    aam_margin: float = 0.2
    aam_scale: float = 30.0
    align: float = bounded(0.0, ge=0)  # MSE between paired face and voice embeddings
    # sbnet only: how a batch of B face-voice pairs becomes single-modality rows (BATCH_LAYOUTS)
    layout: Literal["fvfv", "vfvf", "hefhev", "hevhef", "random"] = "fvfv"


#: SBNet's training-batch layouts (public ``--split_type``), applied to a batch of B pairs:
#: ``fvfv`` / ``vfvf`` — 2B rows, face and voice of each pair side by side, one BatchNorm batch
#: (the two differ only in row order, which changes nothing but float summation order);
#: ``hefhev`` / ``hevhef`` — the B faces and the B voices as two single-modality BatchNorm batches
#: (CE and OPL within each), their losses averaged into one optimizer step (the public code
#: takes a step per single-modality batch, all face batches of an epoch before all voice
#: batches; here both orders train identically); ``random`` — one modality per pair, drawn at
#: random, B rows of mixed modalities and unpaired identities in one BatchNorm batch.
BATCH_LAYOUTS = ("fvfv", "vfvf", "hefhev", "hevhef", "random")

#: How a face–voice model family is trained, declared by the model class
#: (``face_voice_objective``): ``fused_pair`` — paired rows, CE on the fused logits + OPL (FOP);
#: ``shared_pair`` — paired rows through one shared trunk, CE per modality (sbnet_stems);
#: ``single_modality_rows`` — pairs split into single-modality rows in ``loss.layout`` (SBNet).
OBJECTIVES = ("fused_pair", "shared_pair", "single_modality_rows")

def build_face_voice_model(cfg: FaceVoiceModelConfig, face_dim: int, voice_dim: int,
                           num_classes: int) -> nn.Module:
    """Build the configured model for the given feature widths and identity count."""
    if cfg.name == "sbnet":
        model = create_model("sbnet", input_dims={"face": face_dim, "voice": voice_dim}, embed_dim=cfg.embed_dim,
                             num_classes=num_classes, dropout=cfg.dropout, projection=cfg.projection)
    elif cfg.name == "sbnet_stems":
        model = create_model("sbnet_stems", input_dims={"face": face_dim, "voice": voice_dim},
                             embed_dim=cfg.embed_dim, stem_dim=cfg.stem_dim,
                             trunk_hidden=tuple(cfg.trunk_hidden), norm=cfg.norm, dropout=cfg.dropout,
                             num_classes=num_classes)
    else:
        model = create_model(cfg.name, face_dim=face_dim, voice_dim=voice_dim, embed_dim=cfg.embed_dim,
                             num_classes=num_classes, dropout=cfg.dropout)
    if cfg.init == "xavier":
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.01)
    elif cfg.init != "default":
        raise InputError(f"model.init={cfg.init!r}; use default or xavier")
    return model


class FaceVoiceObjective(nn.Module):
    """``forward(batch) -> {"loss", terms...}`` for a batch ``{"face", "voice", "label"}``.

    Two-branch models: CE on the fused logits + OPL on the fused vector (the FOP recipe), plus
    optional InfoNCE / AAM / alignment on the per-modality embeddings. ``SBNet``: the pairs become
    single-modality rows in the configured ``layout`` (``BATCH_LAYOUTS``); CE on every row's logits
    + OPL over the rows of each BatchNorm batch (the public SBNet objective). ``sbnet_stems``:
    both modalities pass the shared trunk; CE on each modality's logits, OPL on both.
    """

    def __init__(self, model: nn.Module, cfg: FaceVoiceLossConfig, num_classes: int) -> None:
        super().__init__()
        if cfg.opl_on not in ("fused", "modalities", "both"):
            raise InputError(f"loss.opl_on={cfg.opl_on!r}; use fused, modalities or both")
        if cfg.layout not in BATCH_LAYOUTS:
            raise InputError(f"loss.layout={cfg.layout!r}; use one of {', '.join(BATCH_LAYOUTS)}")
        self.network = model
        self.cfg = cfg
        # the training strategy is declared by the model family, not found by testing its type
        self.strategy = getattr(model, "face_voice_objective", None)
        if self.strategy not in OBJECTIVES:
            raise InputError(f"{type(model).__name__} declares no face_voice_objective; one of {OBJECTIVES}")
        self.opl = OrthogonalProjectionLoss(gamma=cfg.opl_gamma)
        self.infonce = (InfoNCE(temperature=cfg.infonce_temperature, learnable=cfg.infonce_learnable)
                        if cfg.infonce > 0 else None)
        embed_dim = getattr(model, "embed_dim")
        self.aam = (AAMSoftmax(embed_dim, num_classes, margin=cfg.aam_margin, scale=cfg.aam_scale)
                    if cfg.aam > 0 else None)
        self.align = AlignmentMSE() if cfg.align > 0 else None

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.cfg
        y = batch["label"]
        terms: dict[str, torch.Tensor] = {}
        strategy = self.strategy
        if strategy == "single_modality_rows":
            return self._sbnet_forward(batch)
        out = self.network({"face": batch["face"], "voice": batch["voice"]})
        if strategy == "shared_pair":
            f, v = out["face"], out["voice"]
            if c.ce:
                terms["ce"] = 0.5 * (F.cross_entropy(out["logits_face"], y) + F.cross_entropy(out["logits_voice"], y))
            if c.opl:
                terms["opl"] = self.opl(torch.cat([f, v]), torch.cat([y, y]))
        else:  # fused_pair
            f, v = F.normalize(out["face"], dim=1), F.normalize(out["voice"], dim=1)
            if c.ce:
                terms["ce"] = F.cross_entropy(out["logits"], y)
            if c.opl:
                opl = 0.0
                if c.opl_on in ("fused", "both"):
                    opl = opl + self.opl(out["fused"], y)
                if c.opl_on in ("modalities", "both"):
                    opl = opl + self.opl(torch.cat([f, v]), torch.cat([y, y]))
                terms["opl"] = opl  # type: ignore[assignment]
        if self.infonce is not None:
            terms["infonce"] = self.infonce(f, v, y)
        if self.aam is not None:
            terms["aam"] = self.aam(torch.cat([f, v]), torch.cat([y, y]))
        if self.align is not None:
            terms["align"] = self.align(f, v)
        weights = {"ce": c.ce, "opl": c.opl, "infonce": c.infonce, "aam": c.aam, "align": c.align}
        loss = sum(weights[k] * t for k, t in terms.items())
        return {"loss": loss, **{k: t.detach() for k, t in terms.items()}}


    def _sbnet_terms(self, out: Mapping[str, torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if self.cfg.ce:
            terms["ce"] = F.cross_entropy(out["logits"], y)
        if self.cfg.opl:
            terms["opl"] = self.opl(out["embedding"], y)
        return terms

    def _sbnet_forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SBNet: single-modality rows in ``cfg.layout``; CE + OPL per BatchNorm batch."""
        c, model = self.cfg, self.network
        f, v, y = batch["face"], batch["voice"], batch["label"]
        if c.layout in ("fvfv", "vfvf"):
            inputs = {"face": f, "voice": v} if c.layout == "fvfv" else {"voice": v, "face": f}
            out = model(inputs, interleave=True)
            runs = [(out, y.repeat_interleave(2))]
        elif c.layout in ("hefhev", "hevhef"):
            order = ("face", "voice") if c.layout == "hefhev" else ("voice", "face")
            runs = [(model({m: batch[m]}), y) for m in order]
        else:  # random: one modality per pair
            take_face = torch.rand(y.shape[0], device=y.device) < 0.5
            out = model({"face": f[take_face], "voice": v[~take_face]})
            runs = [(out, torch.cat([y[take_face], y[~take_face]]))]
        parts = [self._sbnet_terms(o, t) for o, t in runs]
        terms = {k: sum(p[k] for p in parts) / len(parts) for k in parts[0]}
        if self.infonce is not None or self.aam is not None or self.align is not None:
            fe = next((o["face"] for o, _ in runs if "face" in o), None)
            ve = next((o["voice"] for o, _ in runs if "voice" in o), None)
            if fe is None or ve is None or fe.shape[0] != ve.shape[0]:
                raise InputError("loss.infonce/aam/align need paired embeddings: use layout fvfv, vfvf, "
                                 "hefhev or hevhef")
            if self.infonce is not None:
                terms["infonce"] = self.infonce(fe, ve, y)
            if self.aam is not None:
                terms["aam"] = self.aam(torch.cat([fe, ve]), torch.cat([y, y]))
            if self.align is not None:
                terms["align"] = self.align(fe, ve)
        weights = {"ce": c.ce, "opl": c.opl, "infonce": c.infonce, "aam": c.aam, "align": c.align}
        loss = sum(weights[k] * t for k, t in terms.items())
        return {"loss": loss, **{k: t.detach() for k, t in terms.items()}}


class PairDataset(Dataset):
    """Rows of aligned face/voice features (+ labels) as dict samples, read on demand.

    ``faces`` / ``voices`` are kept as given (e.g. read-only memory maps of the feature cache):
    nothing is copied up front; each batch gathers its rows. ``index`` picks the rows that make
    up the dataset (item ``i`` is row ``index[i]``; default: every row); ``labels``, when given,
    hold one label per item. A batch's ``"index"`` is the item position ``i``.
    """

    def __init__(self, faces: np.ndarray, voices: np.ndarray, labels: np.ndarray | None = None,
                 index: np.ndarray | None = None) -> None:
        if len(faces) != len(voices):
            raise InputError(f"{len(faces)} face rows but {len(voices)} voice rows")
        rows = np.arange(len(faces)) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(faces)):
            raise InputError(f"index holds rows outside 0..{len(faces) - 1}")
        if labels is not None and len(labels) != len(rows):
            raise InputError(f"{len(labels)} labels for {len(rows)} rows")
        self.faces, self.voices, self.rows = faces, voices, rows
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def _gather(x: np.ndarray | torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x[torch.from_numpy(rows)].float()
        # fancy indexing copies: the tensor owns writable memory even when ``x`` is a read-only map
        return torch.from_numpy(np.asarray(x[rows], dtype=np.float32))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rows = self.rows[[i]]
        item = {"face": self._gather(self.faces, rows)[0], "voice": self._gather(self.voices, rows)[0],
                "index": torch.tensor(i)}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item

    def __getitems__(self, idx: list[int]) -> list[dict[str, torch.Tensor]]:
        # one gather per batch instead of per-row tensors; default_collate handles a dict
        t = torch.as_tensor(idx)
        rows = self.rows[t.numpy()]
        batch = {"face": self._gather(self.faces, rows), "voice": self._gather(self.voices, rows), "index": t}
        if self.labels is not None:
            batch["label"] = self.labels[t]
        return [batch]


def collate_pairs(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Collate for ``PairDataset``: batches fetched by ``__getitems__`` arrive as one dict."""
    if len(items) == 1 and items[0]["face"].dim() == 2:
        return items[0]
    return torch.utils.data.default_collate(items)


def scoring_embeddings(model: nn.Module, x: torch.Tensor, modality: str) -> torch.Tensor:
    """The vectors FAME distances are computed on (every face–voice model's ``scoring_embedding``:
    the official FOP ones — tanh of the branch output — for two-branch models, the L2-normalised
    embedding for single-branch ones)."""
    return model.scoring_embedding(x, modality)  # type: ignore[operator]


@torch.no_grad()
def embed_rows(model: nn.Module, x: np.ndarray | torch.Tensor, modality: str, batch_size: int = 4096,
               device: str | torch.device | None = None, rows: np.ndarray | None = None) -> torch.Tensor:
    """``scoring_embeddings`` of every row of ``x`` (e.g. a memory-mapped array), or of the rows
    ``x[rows]`` (gathered batch by batch, never copied whole), in batches, in eval mode (the
    model's train/eval mode is restored)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n = len(x) if rows is None else len(rows)

    def part(s: int) -> np.ndarray:
        return np.asarray(x[s:s + batch_size] if rows is None else x[np.asarray(rows[s:s + batch_size])])

    was = model.training
    model.eval()
    try:
        # torch.tensor copies: memory-mapped caches are read-only
        parts = [scoring_embeddings(model, torch.tensor(part(s), dtype=torch.float32, device=device),
                                    modality).float()
                 for s in range(0, n, batch_size)]
    finally:
        model.train(was)
    return torch.cat(parts) if parts else torch.zeros(0, device=device)


def embed_pairs(model: nn.Module, faces: np.ndarray | torch.Tensor, voices: np.ndarray | torch.Tensor,
                batch_size: int = 4096, device: str | torch.device | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Scoring embeddings of face and voice rows paired line by line, and their L2 distances
    (lower = same person): the one computation every FAME score starts from."""
    if len(faces) != len(voices):
        raise InputError(f"{len(faces)} face rows but {len(voices)} voice rows")
    ef = embed_rows(model, faces, "face", batch_size, device)
    ev = embed_rows(model, voices, "voice", batch_size, device)
    d = torch.linalg.norm(ef - ev, dim=1).cpu().numpy() if len(ef) else np.zeros(0, dtype=np.float32)
    return ef, ev, d


def pair_distances(model: nn.Module, faces: np.ndarray | torch.Tensor, voices: np.ndarray | torch.Tensor,
                   batch_size: int = 4096, device: str | torch.device | None = None) -> np.ndarray:
    """L2 distance between each face row and the voice row beside it (lower = same person)."""
    return embed_pairs(model, faces, voices, batch_size, device)[2]


def trial_distances(model: nn.Module, faces: np.ndarray, voices: np.ndarray, face_idx: np.ndarray,
                    voice_idx: np.ndarray, batch_size: int = 4096, processes: Processes | None = None) -> np.ndarray:
    """Distances for trials ``(faces[face_idx[k]], voices[voice_idx[k]])``; each row embedded once.
    With the ``processes`` of a launched job, each process embeds its block of the rows and the
    blocks are gathered back in order: every process returns every trial's distance."""
    procs = processes or Processes.single()

    def embed(x: np.ndarray, modality: str) -> torch.Tensor:
        rows = procs.share(len(x)) if procs.distributed else None
        return procs.gather_rows(embed_rows(model, x, modality, batch_size, rows=rows), len(x))

    ef, ev = embed(faces, "face"), embed(voices, "voice")
    fi = torch.as_tensor(face_idx, device=ef.device)
    vi = torch.as_tensor(voice_idx, device=ev.device)
    return torch.linalg.norm(ef[fi] - ev[vi], dim=1).cpu().numpy()


def model_summary(model: nn.Module) -> dict[str, Any]:
    """Name-free description for logs: class, parameter count."""
    return {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}
