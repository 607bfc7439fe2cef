"""Chameleon-style text → image encoding (Liaqat et al., arXiv 2407.16243).

Text is turned into pixels so that one visual backbone reads both the photo and the text:

1. the text is tokenised (:func:`modalink.text.tokenize`) and cut to ``max_words`` words;
2. each word's vector (``dim`` values, :class:`modalink.text.WordVectors`) is quantised to
   bytes: ``b = floor((clip(v, lo, hi) - lo) / (hi - lo) * 255 + 0.5)`` where ``(lo, hi)`` is
   the word-vector table's range (``quantise="minmax"``) or a fixed range (``quantise=(lo, hi)``);
3. consecutive value triplets become RGB "superpixels" of ``superpixel × superpixel`` pixels.
   A word takes ``C = ceil(dim / 3)`` superpixels (a short last triplet is padded with 0).

Layout ("flow"): the canvas is a grid of ``rows = H // p`` by ``cols = W // p`` superpixels,
filled row by row (row-major). Word ``k`` occupies grid cells ``k*C .. (k+1)*C - 1``, so words
follow each other without gaps and may wrap onto the next row. Everything not covered —
unused cells, the right/bottom margin when ``H`` or ``W`` is not a multiple of ``p`` — is 0.
Example: 227×227 px, ``p=3`` → 75×75 = 5,625 cells (2-px margin); 300-d vectors → 100 cells
per word → at most 56 words; 150-d vectors → 112 words; ``p=2`` and 300-d → 127 words.

Layout ("tiles", ``layout="tiles"``): each word is a compact block of ``tile_rows × tile_cols``
cells (the most square shape holding ``C`` cells, filled row by row), and word blocks sit on a
regular grid of tiles, ``word_gap`` blank cells apart, filled row-major. One word is then one
distinct tile at a fixed set of positions, a pattern a small convolution can pick up wherever
the word stands, instead of a strip that may wrap across rows. ``repeat=True`` (either layout)
fills the unused word slots by repeating the text's words cyclically, so short texts cover the
whole canvas (more evidence for a globally pooled network; a blank text stays blank).

Empty or missing text (``None``, ``""``, or no known word with ``oov="skip"``) gives a blank
(all-zero) text image, so a network can learn "no text" from one constant input.

Modes:

* ``"text"``  — the text image alone, ``B×3×H×W``;
* ``"fused"`` — the text is painted into a band of the photo's bottom ``band_height`` rows
  (the band is cleared to 0 first); the photo must be ``H×W`` = ``image_size``;
* ``"joint"`` — ``(photos, text_images)``: two inputs for the same network.

Outputs are float tensors in [0, 1] (``output="float"``; normalisation is the backbone's
business) or ``uint8`` (``output="uint8"``: 4× less memory traffic; the usual choice in a
data loader, converted to float on the accelerator). The encoder is vectorised over the batch: one
tokenise pass, one gather of distinct word vectors, one quantisation of the distinct words,
one scatter into a (batch, words, bytes) array and one broadcast copy into pixels.
:func:`naive_text_to_image` is the per-word, per-pixel reference used by tests and benchmarks.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import torch

from modalink.errors import InputError
from modalink.text.word_vectors import WordVectors, tokenize

__all__ = ["TextToImage", "TextGrid", "naive_text_to_image", "quantise_bytes"]

Mode = Literal["text", "fused", "joint"]


@dataclass(frozen=True)
class TextGrid:
    """Geometry of a text canvas: ``height×width`` pixels, superpixel ``p``, words of ``C`` cells,
    laid out as a ``"flow"`` (words back to back, row-major) or as ``"tiles"`` (one compact block
    per word on a regular grid, ``word_gap`` blank cells apart)."""

    height: int
    width: int
    superpixel: int
    cells_per_word: int
    layout: str = "flow"
    word_gap: int = 0

    @property
    def tile_shape(self) -> tuple[int, int]:
        """(rows, cols) of cells of one word's block in the "tiles" layout."""
        tc = math.ceil(math.sqrt(self.cells_per_word))
        return math.ceil(self.cells_per_word / tc), tc

    @property
    def tiles(self) -> tuple[int, int]:
        """(rows, cols) of word blocks on the canvas ("tiles" layout)."""
        tr, tc = self.tile_shape
        g = self.word_gap
        return (self.rows + g) // (tr + g), (self.cols + g) // (tc + g)

    @property
    def rows(self) -> int:
        return self.height // self.superpixel

    @property
    def cols(self) -> int:
        return self.width // self.superpixel

    @property
    def capacity(self) -> int:
        """How many whole words fit on the canvas."""
        if self.layout == "tiles":
            r, c = self.tiles
            return r * c
        return (self.rows * self.cols) // self.cells_per_word

    def cell_index(self, n_words: int) -> np.ndarray:
        """Flat grid cell (``row * cols + col``) of every (word, triplet) slot, ``(n_words * C,)``."""
        c = self.cells_per_word
        if self.layout != "tiles":
            return np.arange(n_words * c, dtype=np.int64)
        tr, tc = self.tile_shape
        _, n_tc = self.tiles
        k, j = np.divmod(np.arange(n_words * c, dtype=np.int64), c)
        tile_r, tile_c = np.divmod(k, n_tc)
        in_r, in_c = np.divmod(j, tc)
        row = tile_r * (tr + self.word_gap) + in_r
        col = tile_c * (tc + self.word_gap) + in_c
        return row * self.cols + col


def quantise_bytes(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map values to bytes: ``floor((clip(v, lo, hi) - lo) / (hi - lo) * 255 + 0.5)`` (float64 math)."""
    v = np.clip(np.asarray(values, dtype=np.float64), lo, hi)
    return np.floor((v - lo) / (hi - lo) * 255.0 + 0.5).astype(np.uint8)


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class TextToImage:
    """Encode batches of texts as images (see the module docstring for layout and modes).

    Args:
        vectors: word vectors; default ``WordVectors.hashed(300, seed=0)`` (no download).
        image_size: ``H`` or ``(H, W)`` of the text image (modes "text"/"joint") or of the
            photo that carries the band (mode "fused").
        superpixel: side ``p`` of one RGB superpixel in pixels.
        max_words: words kept per text; default and maximum: what fits on the canvas.
        quantise: ``"minmax"`` (the vector table's value range) or a fixed ``(lo, hi)``.
        mode: ``"text"``, ``"fused"`` or ``"joint"``.
        band_height: pixel rows of the text band in "fused" mode (default ``H // 4``).
        output: ``"float"`` (values in [0, 1]) or ``"uint8"``.
        tokenizer: text → list of words (default :func:`modalink.text.tokenize`).
        cache_size: distinct words whose quantised bytes are cached (0: no cache); the cache
            is cleared when full. Word vectors must not change while the encoder is in use.
        layout: ``"flow"`` (words back to back, the Chameleon paper's layout) or ``"tiles"``
            (one compact block per word on a regular grid).
        word_gap: blank cells between word blocks (``"tiles"`` layout).
        repeat: fill unused word slots by repeating the text's words cyclically.
    """

    def __init__(
        self,
        vectors: WordVectors | None = None,
        image_size: int | tuple[int, int] = 227,
        superpixel: int = 3,
        max_words: int | None = None,
        quantise: str | tuple[float, float] = "minmax",
        mode: Mode = "text",
        band_height: int | None = None,
        output: Literal["float", "uint8"] = "float",
        tokenizer: Callable[[str], list[str]] = tokenize,
        cache_size: int = 200_000,
        layout: Literal["flow", "tiles"] = "flow",
        word_gap: int = 0,
        repeat: bool = False,
    ) -> None:
        self.vectors = vectors if vectors is not None else WordVectors.hashed(300, seed=0)
        self.image_size = _as_size(image_size)
        if superpixel < 1:
            raise InputError(f"superpixel must be >= 1, got {superpixel}")
        if mode not in ("text", "fused", "joint"):
            raise InputError(f"mode must be 'text', 'fused' or 'joint', got {mode!r}")
        if output not in ("float", "uint8"):
            raise InputError(f"output must be 'float' or 'uint8', got {output!r}")
        if layout not in ("flow", "tiles"):
            raise InputError(f"layout must be 'flow' or 'tiles', got {layout!r}")
        if word_gap < 0 or (word_gap and layout != "tiles"):
            raise InputError(f"word_gap must be >= 0 and needs layout='tiles', got {word_gap} with {layout!r}")
        self.superpixel = int(superpixel)
        self.repeat = bool(repeat)
        self.mode: Mode = mode
        self.output = output
        self.tokenizer = tokenizer
        h, w = self.image_size
        if mode == "fused":
            self.band_height = int(band_height) if band_height is not None else h // 4
            if not 0 < self.band_height <= h:
                raise InputError(f"band_height must be in 1..{h}, got {self.band_height}")
            canvas = (self.band_height, w)
        else:
            self.band_height = None
            canvas = (h, w)
        self.grid = TextGrid(canvas[0], canvas[1], self.superpixel, math.ceil(self.vectors.dim / 3),
                             layout, int(word_gap))
        if self.grid.capacity < 1:
            raise InputError(
                f"a {canvas[0]}x{canvas[1]} canvas with {self.superpixel}-px superpixels has "
                f"{self.grid.rows * self.grid.cols} cells: not enough for one {self.vectors.dim}-d word "
                f"({self.grid.cells_per_word} cells)")
        if max_words is None:
            max_words = self.grid.capacity
        if not 1 <= max_words <= self.grid.capacity:
            raise InputError(f"max_words must be in 1..{self.grid.capacity} (what fits on the canvas), got {max_words}")
        self.max_words = int(max_words)
        self._cells = self.grid.cell_index(self.max_words)
        if isinstance(quantise, str):
            if quantise != "minmax":
                raise InputError(f"quantise must be 'minmax' or a (lo, hi) pair, got {quantise!r}")
            lo, hi = self.vectors.value_range
        else:
            lo, hi = (float(x) for x in quantise)
        if not hi > lo:
            raise InputError(f"quantisation range needs hi > lo, got ({lo}, {hi})")
        self.value_range = (lo, hi)
        self.cache_size = int(cache_size)
        self._cache_index: dict[str, int] = {}
        self._cache_bytes = np.zeros((0, 3 * self.grid.cells_per_word), dtype=np.uint8)
        self._cache_keep = np.zeros(0, dtype=bool)

    # -- core ---------------------------------------------------------------------------------
    def _quantised_rows(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Quantised rows ``(n, 3*C)`` and keep flags for distinct ``words``, via the word cache."""
        cache = self._cache_index
        rows = np.fromiter((cache.get(w, -1) for w in words), dtype=np.int64, count=len(words))
        miss = np.flatnonzero(rows < 0)
        if not len(miss):
            return self._cache_bytes[rows], self._cache_keep[rows]
        if len(cache) + len(miss) > self.cache_size:
            cache.clear()  # full (or disabled): start afresh; every word is now a miss
            rows[:] = -1
            miss = np.arange(len(words))
        miss_words = [words[i] for i in miss]
        table, keep = self.vectors.table(miss_words)
        q = np.zeros((len(miss), 3 * self.grid.cells_per_word), dtype=np.uint8)
        q[:, : table.shape[1]] = quantise_bytes(table, *self.value_range)
        n_new = min(len(miss), self.cache_size - len(cache))
        if n_new > 0:
            start = len(cache)
            if start + n_new > len(self._cache_bytes):  # grow by doubling
                cap = min(self.cache_size, max(2 * len(self._cache_bytes), start + n_new, 1024))
                grown = np.zeros((cap, q.shape[1]), dtype=np.uint8)
                grown[:start] = self._cache_bytes[:start]
                kgrown = np.zeros(cap, dtype=bool)
                kgrown[:start] = self._cache_keep[:start]
                self._cache_bytes, self._cache_keep = grown, kgrown
            self._cache_bytes[start:start + n_new] = q[:n_new]
            self._cache_keep[start:start + n_new] = keep[:n_new]
            cache.update(zip(miss_words[:n_new], range(start, start + n_new)))
        out_q = np.empty((len(words), q.shape[1]), dtype=np.uint8)
        out_keep = np.empty(len(words), dtype=bool)
        hit = rows >= 0
        out_q[hit], out_keep[hit] = self._cache_bytes[rows[hit]], self._cache_keep[rows[hit]]
        out_q[miss], out_keep[miss] = q, keep
        return out_q, out_keep

    def word_bytes(self, texts: Sequence[str | None]) -> np.ndarray:
        """Quantised words, ``(B, max_words, 3*C)`` uint8; absent words are all-zero rows."""
        b, m, c3 = len(texts), self.max_words, 3 * self.grid.cells_per_word
        toks = [self.tokenizer(t) if t else [] for t in texts]
        if self.vectors.oov != "skip":
            toks = [t[:m] for t in toks]
        counts = np.fromiter((len(t) for t in toks), dtype=np.int64, count=b)
        uniq: dict[str, int] = {}
        local = np.fromiter((uniq.setdefault(w, len(uniq)) for w in itertools.chain.from_iterable(toks)),
                            dtype=np.int64, count=int(counts.sum()))
        out = np.zeros((b, m, c3), dtype=np.uint8)
        if not len(local):
            return out
        q, keep = self._quantised_rows(list(uniq))
        text_id = np.repeat(np.arange(b), counts)
        if not keep.all():
            k = keep[local]
            local, text_id = local[k], text_id[k]
        kept = np.bincount(text_id, minlength=b)
        pos = np.arange(len(local)) - (np.cumsum(kept) - kept)[text_id]
        sel = pos < m
        out[text_id[sel], pos[sel]] = q[local[sel]]
        if self.repeat:  # slot k of a text with n < m words takes its word k mod n
            n = np.minimum(kept, m)
            slot = np.arange(m)[None, :] % np.maximum(n, 1)[:, None]
            out = np.take_along_axis(out, slot[:, :, None], axis=1)
        return out

    def _paint(self, words: np.ndarray, canvas: torch.Tensor) -> None:
        """Write quantised words into ``canvas`` (B×3×h×w, h×w = grid) in place; margins become 0."""
        g, p = self.grid, self.superpixel
        b = words.shape[0]
        n_cells = self.max_words * g.cells_per_word
        cells = np.zeros((b, 3, g.rows * g.cols), dtype=np.uint8)
        if g.layout == "flow":
            cells[:, :, :n_cells] = words.reshape(b, n_cells, 3).transpose(0, 2, 1)
        else:
            cells[:, :, self._cells] = words.reshape(b, n_cells, 3).transpose(0, 2, 1)
        small = torch.from_numpy(cells).view(b, 3, g.rows, g.cols, 1)
        if canvas.dtype != torch.uint8:
            small = small.to(canvas.dtype).div_(255.0)
        # One pass over the output, no full-size temporaries: write the first pixel row of
        # every superpixel row (each cell widened to p pixels), then copy it to the p-1 rows
        # below; finally clear the right and bottom margins.
        hp, wp, w = g.rows * p, g.cols * p, canvas.shape[-1]
        rows = canvas[:, :, :hp, :].view(b, 3, g.rows, p, w)
        first = rows[:, :, :, 0, :]
        first[..., :wp].view(b, 3, g.rows, g.cols, p).copy_(small.expand(b, 3, g.rows, g.cols, p))
        first[..., wp:].zero_()
        for dy in range(1, p):
            rows[:, :, :, dy, :].copy_(first)
        canvas[:, :, hp:, :].zero_()

    def _dtype(self) -> torch.dtype:
        return torch.float32 if self.output == "float" else torch.uint8

    def encode_text(self, texts: Sequence[str | None], out: torch.Tensor | None = None) -> torch.Tensor:
        """Text images ``B×3×h×w`` (the band size in "fused" mode), float [0, 1] or uint8.

        ``out``: an optional preallocated tensor of that shape and dtype to fill (reusing one
        buffer across batches avoids page-faulting a fresh 150-600 MB tensor every time).
        """
        shape = (len(texts), 3, self.grid.height, self.grid.width)
        if out is None:
            canvas = torch.empty(shape, dtype=self._dtype())
        else:
            if tuple(out.shape) != shape or out.dtype != self._dtype():
                raise ValueError(f"out must be {self._dtype()} of shape {shape}, got {out.dtype} {tuple(out.shape)}")
            canvas = out
        self._paint(self.word_bytes(texts), canvas)
        return canvas

    def _convert_images(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B×3×H×W, got shape {tuple(images.shape)}")
        if self.output == "float":
            return images.float().div(255.0) if images.dtype == torch.uint8 else images.float().clone()
        if images.dtype == torch.uint8:
            return images.clone()
        return images.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)

    def fuse(self, texts: Sequence[str | None], images: torch.Tensor) -> torch.Tensor:
        """Photos with the text painted into their bottom ``band_height`` rows."""
        h, w = self.image_size
        if tuple(images.shape[-2:]) != (h, w):
            raise ValueError(f"fused mode expects {h}x{w} photos, got {tuple(images.shape[-2:])}")
        if images.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} texts but {images.shape[0]} images")
        out = self._convert_images(images)
        band = out[:, :, h - self.band_height:, :]
        self._paint(self.word_bytes(texts), band)
        return out

    def __call__(self, texts: Sequence[str | None], images: torch.Tensor | None = None):
        """Encode by ``mode``: a tensor ("text", "fused") or ``(photos, text_images)`` ("joint")."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        if self.mode == "text":
            return self.encode_text(texts)
        if images is None:
            raise ValueError(f"mode {self.mode!r} needs the batch's images")
        if self.mode == "fused":
            return self.fuse(texts, images)
        if images.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} texts but {images.shape[0]} images")
        return self._convert_images(images), self.encode_text(texts)

    def __repr__(self) -> str:
        g = self.grid
        return (f"TextToImage(mode={self.mode!r}, image_size={self.image_size}, superpixel={self.superpixel}, "
                f"grid={g.rows}x{g.cols}, layout={g.layout!r}, word_gap={g.word_gap}, repeat={self.repeat}, words<={self.max_words}, dim={self.vectors.dim}, "
                f"range={self.value_range}, output={self.output!r})")


def naive_text_to_image(
    text: str | None,
    vectors: WordVectors,
    *,
    height: int,
    width: int,
    superpixel: int,
    max_words: int,
    value_range: tuple[float, float],
    tokenizer: Callable[[str], list[str]] = tokenize,
    layout: str = "flow",
    word_gap: int = 0,
    repeat: bool = False,
) -> np.ndarray:
    """Reference encoder: one text, word by word, pixel by pixel, in plain Python.

    Returns a ``3×height×width`` uint8 array that :meth:`TextToImage.encode_text` must match.
    """
    p = superpixel
    cols, rows = width // p, height // p
    cells_per_word = math.ceil(vectors.dim / 3)
    lo, hi = value_range
    tile_cols = math.ceil(math.sqrt(cells_per_word))
    tile_rows = math.ceil(cells_per_word / tile_cols)
    tiles_per_row = (cols + word_gap) // (tile_cols + word_gap)
    img = [[[0] * width for _ in range(height)] for _ in range(3)]
    kept: list[list[float]] = []
    for word in tokenizer(text) if text else []:
        if len(kept) >= max_words:
            break
        vec = vectors.vector(word)
        if vec is not None:
            kept.append([float(v) for v in vec])
    slots = [kept[k % len(kept)] for k in range(max_words)] if repeat and kept else kept
    for k, values in enumerate(slots):
        for j in range(cells_per_word):
            if layout == "tiles":
                tr, tc = divmod(k, tiles_per_row)
                ir, ic = divmod(j, tile_cols)
                r, c = tr * (tile_rows + word_gap) + ir, tc * (tile_cols + word_gap) + ic
            else:
                r, c = divmod(k * cells_per_word + j, cols)
            assert r < rows, "word does not fit on the canvas"
            for ch in range(3):
                i = 3 * j + ch
                if i < len(values):
                    x = min(max(values[i], lo), hi)
                    byte = math.floor((x - lo) / (hi - lo) * 255.0 + 0.5)
                else:
                    byte = 0
                for dy in range(p):
                    for dx in range(p):
                        img[ch][r * p + dy][c * p + dx] = byte
    return np.array(img, dtype=np.uint8)
