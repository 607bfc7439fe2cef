"""The datasets of missing-modality classification: every sample carries availability masks.

* :class:`PhotoTextSet` — photos (uint8 ``3×S×S``, lazy or in memory) and raw texts, for methods
  that read pixels (Chameleon, the multi-branch baseline);
* :class:`EmbeddingSet` — cached image/text embeddings, for methods on features (SRMM, late fusion).

Both keep ``has_image``/``has_text`` (what the data itself has) and share one masking call,
``with_mask(has_image=, has_text=)``: a view whose availability is the AND of the set's and the
given masks (a condition of :mod:`modalink.classification.conditions`).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from modalink.errors import InputError
from modalink.progress import progress_bar

__all__ = ["PhotoTransform", "PhotoTextSet", "EmbeddingSet", "collate_embeddings"]


class PhotoTransform:
    """PIL image → ``3×S×S`` uint8 tensor: resize the shorter side to ``S·ratio``, centre crop."""

    def __init__(self, size: int, ratio: float = 1.0) -> None:
        if size < 8:
            raise InputError(f"data.image_size must be at least 8, got {size}")
        if ratio < 1.0:
            raise InputError(f"data.resize_ratio must be >= 1, got {ratio}")
        self.size, self.ratio = int(size), float(ratio)

    def __call__(self, img: Any) -> torch.Tensor:
        from PIL import Image

        img = img.convert("RGB")
        w, h = img.size
        short = max(self.size, int(round(self.size * self.ratio)))
        s = short / min(w, h)
        nw, nh = max(self.size, int(round(w * s))), max(self.size, int(round(h * s)))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        arr = np.asarray(img, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class PhotoTextSet(Dataset):
    """Samples of one split: photo (uint8 ``3×S×S``), text, label and availability masks.

    Photos are read lazily from a :class:`modalink.classification.records.MultimodalDataset`
    (with a :class:`PhotoTransform`) or, after :meth:`load_into_memory`, from one uint8
    tensor. ``with_mask`` gives a view that also honours a missing-modality mask. Items are
    dicts; with photos in memory, ``__getitems__`` returns a whole batch at once.
    """

    def __init__(self, base: Any, texts: Sequence[str | None], labels: np.ndarray,
                 has_image: np.ndarray, has_text: np.ndarray, photos: torch.Tensor | None = None,
                 size: int = 64) -> None:
        self.base = base
        self.texts = list(texts)
        self.labels = np.asarray(labels)
        self.has_image = np.asarray(has_image, dtype=bool)
        self.has_text = np.asarray(has_text, dtype=bool)
        self.photos = photos
        self.size = int(size)
        n = len(self.texts)
        if not (len(self.labels) == len(self.has_image) == len(self.has_text) == n):
            raise ValueError("PhotoTextSet: texts, labels and masks differ in length")

    @classmethod
    def from_dataset(cls, ds: Any, size: int) -> "PhotoTextSet":
        """Wrap a ``MultimodalDataset`` (records' own availability and mask are kept)."""
        has_image, has_text = ds.availability()
        texts = [r.text for r in ds.records]
        return cls(ds, texts, ds.labels, has_image, has_text, None, size)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    def _photo(self, i: int) -> torch.Tensor:
        if not self.has_image[i]:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8)
        if self.photos is not None:
            return self.photos[i]
        x = self.base.load_image(i)
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or tuple(x.shape) != (3, self.size, self.size):
            raise ValueError(f"photo {i} has shape {tuple(getattr(x, 'shape', ()))}: the dataset's transform "
                             f"must give 3x{self.size}x{self.size} uint8 tensors (PhotoTransform)")
        return x

    def _label(self, idx: Any) -> torch.Tensor:
        y = self.labels[idx]
        return torch.as_tensor(y, dtype=torch.float32 if self.multilabel else torch.long)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self._photo(i), "text": self.texts[i] if self.has_text[i] else None,
                "label": self._label(i), "has_image": bool(self.has_image[i]),
                "has_text": bool(self.has_text[i]), "index": i}

    def __getitems__(self, indices: Sequence[int]) -> Any:
        if self.photos is None:
            return [self[i] for i in indices]
        idx = np.asarray(list(indices), dtype=np.int64)
        t = torch.from_numpy(idx)
        keep_img = torch.from_numpy(self.has_image[idx])
        photos = self.photos[t] * keep_img.view(-1, 1, 1, 1).to(torch.uint8)
        return {"image": photos, "text": [self.texts[i] if self.has_text[i] else None for i in idx],
                "label": self._label(idx), "has_image": keep_img,
                "has_text": torch.from_numpy(self.has_text[idx]), "index": t}

    def load_into_memory(self, num_workers: int = 0, progress: bool = True) -> "PhotoTextSet":
        """Decode every available photo once into a uint8 tensor (returns ``self``)."""
        if self.photos is not None:
            return self
        photos = torch.zeros(len(self), 3, self.size, self.size, dtype=torch.uint8)
        rows = np.flatnonzero(self.has_image)
        loader = DataLoader(_PhotoReader(self.base, rows), batch_size=64, num_workers=num_workers,
                            collate_fn=lambda items: items)
        for batch in progress_bar(loader, desc="decode photos", unit="batch", enabled=progress, leave=False):
            for i, x in batch:
                photos[i] = x
        self.photos = photos
        return self

    def with_mask(self, has_image: np.ndarray | None = None, has_text: np.ndarray | None = None) -> "PhotoTextSet":
        """A view whose availability is the AND of this set's and the given masks."""
        out = copy.copy(self)
        for name, m in (("has_image", has_image), ("has_text", has_text)):
            if m is not None:
                m = np.asarray(m, dtype=bool)
                if m.shape != (len(self),):
                    raise ValueError(f"{name} mask has shape {m.shape}, expected ({len(self)},)")
                setattr(out, name, getattr(self, name) & m)
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> "PhotoTextSet":
        """The selected samples (photos in memory are subset; lazy sets subset the base dataset)."""
        idx = np.asarray(indices, dtype=np.int64)
        base = self.base.subset(idx) if self.photos is None else None
        photos = self.photos[torch.from_numpy(idx)] if self.photos is not None else None
        return PhotoTextSet(base, [self.texts[i] for i in idx], self.labels[idx], self.has_image[idx],
                            self.has_text[idx], photos, self.size)

    def labelled(self) -> "PhotoTextSet":
        """Only samples with a label (unlabelled rows have label -1)."""
        if self.multilabel:
            return self
        keep = np.flatnonzero(self.labels >= 0)
        return self if len(keep) == len(self) else self.subset(keep)


class _PhotoReader(Dataset):
    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor]:
        i = int(self.rows[k])
        return i, self.base.load_image(i)



class EmbeddingSet(torch.utils.data.Dataset):
    """Cached image/text embeddings with labels and availability masks.

    Items are dicts; ``__getitems__`` returns a whole collated batch at once (use
    :func:`collate_embeddings` as the DataLoader's ``collate_fn``).
    """

    def __init__(self, image: np.ndarray, text: np.ndarray, labels: np.ndarray,
                 has_image: np.ndarray | None = None, has_text: np.ndarray | None = None) -> None:
        n = len(labels)
        if image.shape[0] != n or text.shape[0] != n:
            raise ValueError(f"embedding counts differ: image {image.shape[0]}, text {text.shape[0]}, labels {n}")
        self.image = torch.as_tensor(np.asarray(image, dtype=np.float32))
        self.text = torch.as_tensor(np.asarray(text, dtype=np.float32))
        self.label = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.has_image = torch.ones(n, dtype=torch.bool) if has_image is None else torch.as_tensor(
            np.asarray(has_image, dtype=bool))
        self.has_text = torch.ones(n, dtype=torch.bool) if has_text is None else torch.as_tensor(
            np.asarray(has_text, dtype=bool))
        self.index = torch.arange(n)

    def __len__(self) -> int:
        return len(self.label)

    def _take(self, idx: Any) -> dict[str, torch.Tensor]:
        return {"image": self.image[idx], "text": self.text[idx], "label": self.label[idx],
                "has_image": self.has_image[idx], "has_text": self.has_text[idx], "index": self.index[idx]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._take(i)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self._take(torch.as_tensor(list(indices), dtype=torch.long))

    def subset(self, indices: np.ndarray) -> "EmbeddingSet":
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return EmbeddingSet(self.image[idx].numpy(), self.text[idx].numpy(), self.label[idx].numpy(),
                            self.has_image[idx].numpy(), self.has_text[idx].numpy())

    @property
    def labels(self) -> np.ndarray:
        return self.label.numpy()

    def with_mask(self, has_image: np.ndarray | None = None, has_text: np.ndarray | None = None) -> "EmbeddingSet":
        """A view whose availability is the AND of this set's and the given masks (same tensors)."""
        out = EmbeddingSet.__new__(EmbeddingSet)
        out.__dict__.update(self.__dict__)
        for name, m in (("has_image", has_image), ("has_text", has_text)):
            if m is not None:
                m = np.asarray(m, dtype=bool)
                if m.shape != (len(self),):
                    raise ValueError(f"{name} mask has shape {m.shape}, expected ({len(self)},)")
                setattr(out, name, getattr(self, name) & torch.as_tensor(m))
        return out


def collate_embeddings(items: Any) -> dict[str, torch.Tensor]:
    """Collate for :class:`EmbeddingSet`: a pre-collated dict passes through."""
    if isinstance(items, Mapping):
        return dict(items)
    return torch.utils.data.default_collate(list(items))

