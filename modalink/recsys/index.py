"""Serving the item tower: export catalogue vectors and search them by inner product.

``InnerProductIndex`` uses ``faiss.IndexFlatIP`` (exact) when ``import faiss`` works and an
exact blocked torch top-k otherwise (on a GPU when one is given or found); both return the same
items (up to ties). The exact search scores a block of queries against the whole catalogue at a
time; the block size comes from a memory budget (``memory_budget_mb``), so its peak memory does
not grow with the number of queries and stays bounded as the catalogue grows. Install
``faiss-cpu`` (``pip install -e ".[faiss]"``) for catalogues of 10^7 items and more.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from modalink.errors import InputError
from modalink.io import atomic_path


def faiss_available() -> bool:
    """Whether ``import faiss`` works."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


DEFAULT_MEMORY_BUDGET_MB = 256.0


def rows_per_block(n_cols: int, bytes_per_cell: float = 8.0, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> int:
    """How many rows of an (rows × ``n_cols``) working matrix fit in ``memory_budget_mb``.

    ``bytes_per_cell`` counts every temporary per cell (e.g. float32 scores + top-k scratch = 8).
    At least 1 row, so a catalogue larger than the budget is still searched, one query at a time.
    """
    if memory_budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
    return max(1, int(memory_budget_mb * 2**20 // (max(1, n_cols) * bytes_per_cell)))


def _as_matrix(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (n, dim) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(arr, dtype=np.float32)


def export_item_index(item_vectors: np.ndarray | torch.Tensor, item_ids: Sequence[object] | np.ndarray,
                      path: str | os.PathLike) -> Path:
    """Write ``vectors`` (float32, N×D) and ``ids`` (the catalogue's own item ids) to one
    ``.npz`` file, atomically. Load it with :meth:`InnerProductIndex.load`."""
    vecs = _as_matrix(item_vectors, "item_vectors")
    ids = np.asarray(list(item_ids) if not isinstance(item_ids, np.ndarray) else item_ids)
    if ids.ndim != 1 or ids.size != vecs.shape[0]:
        raise ValueError(f"item_ids must be a list of {vecs.shape[0]} ids, got shape {ids.shape}")
    if ids.dtype == object:
        ids = ids.astype(str)
    if np.unique(ids).size != ids.size:
        raise ValueError("item_ids contains duplicates")
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, vectors=vecs, ids=ids)
            fh.flush()
            os.fsync(fh.fileno())
    return path


class InnerProductIndex:
    """Exact maximum-inner-product search over item vectors.

    Args:
        vectors: (N, D) item vectors. ids: optional item ids returned by :meth:`search_ids`.
        use_faiss: ``None`` → FAISS when installed; ``True`` → require it; ``False`` → torch.
        chunk_size: queries per block of the exact torch search; ``None`` (default) → as many as
            ``memory_budget_mb`` allows for this catalogue (see :func:`rows_per_block`).
        memory_budget_mb: working memory of one block of the exact search (scores and top-k).
        device: where the exact search runs: ``None`` → ``cuda`` when available, else the CPU.
    """

    def __init__(self, vectors: np.ndarray | torch.Tensor, ids: Sequence[object] | np.ndarray | None = None,
                 use_faiss: bool | None = None, chunk_size: int | None = None,
                 memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, device: str | torch.device | None = None) -> None:
        self.vectors = _as_matrix(vectors, "vectors")
        self.ids = None if ids is None else np.asarray(ids)
        if self.ids is not None and self.ids.size != self.vectors.shape[0]:
            raise ValueError(f"{self.ids.size} ids for {self.vectors.shape[0]} vectors")
        has = faiss_available()
        if use_faiss and not has:
            raise ImportError("use_faiss=True but faiss is not installed; pip install faiss-cpu")
        self.backend = "faiss" if (has if use_faiss is None else use_faiss) else "exact"
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = int(chunk_size) if chunk_size else rows_per_block(self.vectors.shape[0], 8.0, memory_budget_mb)
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self._faiss = None
        if self.backend == "faiss":
            import faiss

            self._faiss = faiss.IndexFlatIP(self.vectors.shape[1])
            self._faiss.add(self.vectors)
        self._torch = torch.from_numpy(self.vectors).to(self.device) if self.backend == "exact" else None

    @classmethod
    def load(cls, path: str | os.PathLike, use_faiss: bool | None = None) -> "InnerProductIndex":
        """Open a file written by :func:`export_item_index`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"item index not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            missing = {"vectors", "ids"} - set(z.files)
            if missing:
                raise InputError(f"{path}: not an item index (missing {sorted(missing)})")
            return cls(z["vectors"], z["ids"], use_faiss=use_faiss)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def search(self, queries: np.ndarray | torch.Tensor, k: int,
               exclude: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per query by inner product: ``(scores, positions)``, each (Q, k'),
        best first, k' = min(k, N). ``exclude[q]`` lists item positions never returned for
        query ``q`` (e.g. the user's seen items); missing slots are -inf / -1."""
        q = _as_matrix(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dim {q.shape[1]}, the index has {self.dim}")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        if exclude is not None and len(exclude) != q.shape[0]:
            raise ValueError(f"exclude has {len(exclude)} entries for {q.shape[0]} queries")
        k = min(int(k), len(self))
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        if self.backend == "faiss":
            scores, pos = self._faiss.search(q, min(len(self), k + extra))  # type: ignore[union-attr]
            return self._filter(scores, pos, k, exclude)
        out_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        out_p = np.full((q.shape[0], k), -1, dtype=np.int64)
        for start in range(0, q.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            s = torch.from_numpy(q[start:stop]).to(self.device, non_blocking=True) @ self._torch.T  # type: ignore[union-attr]
            if exclude is not None:
                rows = [(r, int(i)) for r, e in enumerate(exclude[start:stop]) for i in e]
                if rows:
                    rr, cc = zip(*rows)
                    s[torch.tensor(rr, device=s.device), torch.tensor(cc, device=s.device)] = float("-inf")
            top_s, top_p = torch.topk(s, k, dim=1)
            del s
            top_p[torch.isinf(top_s)] = -1
            out_s[start:stop], out_p[start:stop] = top_s.cpu().numpy(), top_p.cpu().numpy()
        return out_s, out_p

    @staticmethod
    def _filter(scores: np.ndarray, pos: np.ndarray, k: int,
                exclude: Sequence[Sequence[int]] | None) -> tuple[np.ndarray, np.ndarray]:
        out_s = np.full((scores.shape[0], k), -np.inf, dtype=np.float32)
        out_p = np.full((scores.shape[0], k), -1, dtype=np.int64)
        for r in range(scores.shape[0]):
            ban = set(int(i) for i in exclude[r]) if exclude is not None else set()
            keep = [(s, p) for s, p in zip(scores[r], pos[r]) if p >= 0 and int(p) not in ban][:k]
            if keep:
                out_s[r, :len(keep)] = [s for s, _ in keep]
                out_p[r, :len(keep)] = [p for _, p in keep]
        return out_s, out_p

    def search_ids(self, queries: np.ndarray | torch.Tensor, k: int,
                   exclude: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, list[list[object]]]:
        """Like :meth:`search` but returns the item ids (needs ``ids``)."""
        if self.ids is None:
            raise ValueError("this index has no ids; pass ids= or load an exported file")
        scores, pos = self.search(queries, k, exclude)
        return scores, [[self.ids[p].item() for p in row if p >= 0] for row in pos]
