"""Sentence-level text encoders: a list of strings → one fixed-size float32 vector per string.

Pluggable, registered in the timm style (:func:`create_text_encoder`, :func:`list_text_encoders`;
also exported by :mod:`modalink.encoders`, beside the image and audio encoders):

* ``hashed-bow`` — the built-in default, no download: signed feature hashing ("hashing trick")
  of word unigrams and bigrams with sublinear term frequency, L2-normalised. Stable across
  machines and runs (keyed BLAKE2b, not Python's salted ``hash``), no vocabulary to fit.
* ``word-vectors`` — mean of word vectors from a local word2vec/GloVe file
  (:class:`modalink.text.WordVectors`), L2-normalised; ``path=None`` uses hashed word vectors.
* ``sentence-transformers`` — any ``sentence-transformers`` model (optional dependency, used
  only when installed): ``create_text_encoder("sentence-transformers/all-MiniLM-L6-v2")`` or
  ``create_text_encoder("sentence-transformers", model="/local/folder")``. Offline mode (the
  encoders' switch :func:`modalink.encoders.base.is_offline`: ``MODALINK_OFFLINE``/``HF_HUB_OFFLINE``)
  loads only from local files; online, a model that is not in the Hugging Face cache is first
  probed on the hub (one quick request), so a machine without network gets at once a
  ``WeightsNotFoundError`` saying what to download, where to put it and how to point at a folder.

Every encoder has ``name``, ``dim``, ``config()`` (a JSON-safe dict that identifies its output,
used by embedding caches to detect stale files) and ``encode(texts, batch_size)``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from modalink.errors import InputError, UnknownNameError
from modalink.registry import Registry
from modalink.text.word_vectors import WordVectors, tokenize

__all__ = ["TextEncoder", "HashedBagOfWords", "MeanWordVectors", "SentenceTransformerEncoder",
           "TEXT_ENCODERS", "register_text_encoder", "create_text_encoder", "list_text_encoders", "text_encoder_name"]

class TextEncoder:
    """Base class: ``encode(texts) -> (N, dim) float32``; ``None``/empty text gives a zero row."""

    name: str = "text"
    dim: int = 0

    def config(self) -> dict[str, Any]:
        """JSON-safe description of everything that determines the output (cache key)."""
        return {"name": self.name, "dim": self.dim}

    def encode(self, texts: Sequence[str | None], batch_size: int = 256) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class HashedBagOfWords(TextEncoder):
    """Signed feature hashing of word n-grams (Weinberger et al., 2009): no vocabulary, no download.

    Each n-gram (unigrams, and bigrams when ``ngrams >= 2``) is hashed with keyed BLAKE2b to a
    bucket in ``[0, dim)`` and a sign ±1; a text's vector is the signed sum of
    ``1 + log(count)`` (sublinear TF) per n-gram, L2-normalised. Two texts with the same words
    give the same vector on every machine; collisions are rare for ``dim`` ≫ words per text.
    """

    name = "hashed-bow"

    def __init__(self, dim: int = 1024, ngrams: int = 2, seed: int = 0) -> None:
        if dim <= 0:
            raise InputError(f"hashed-bow: dim must be positive, got {dim}")
        if ngrams not in (1, 2, 3):
            raise InputError(f"hashed-bow: ngrams must be 1, 2 or 3, got {ngrams}")
        self.dim = int(dim)
        self.ngrams = int(ngrams)
        self.seed = int(seed)
        self._key = self.seed.to_bytes(8, "little", signed=True)
        self._memo: dict[str, tuple[int, float]] = {}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "ngrams": self.ngrams, "seed": self.seed,
                "tokenizer": "modalink.text.tokenize", "version": 1}

    def bucket(self, gram: str) -> tuple[int, float]:
        """(bucket index, sign) of one n-gram (memoised)."""
        hit = self._memo.get(gram)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8, key=self._key).digest(),
                               "little")
            hit = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
            if len(self._memo) < 2_000_000:
                self._memo[gram] = hit
        return hit

    def grams(self, text: str | None) -> list[str]:
        """The n-grams of ``text`` (bigrams joined by a space)."""
        words = tokenize(text)
        out = list(words)
        for n in range(2, self.ngrams + 1):
            out.extend(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
        return out

    def encode(self, texts: Sequence[str | None], batch_size: int = 256) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, t in enumerate(texts):
            counts: dict[str, int] = {}
            for g in self.grams(t):
                counts[g] = counts.get(g, 0) + 1
            for g, c in counts.items():
                j, s = self.bucket(g)
                out[i, j] += s * (1.0 + np.log(c))
        return _l2_rows(out)


class MeanWordVectors(TextEncoder):
    """Mean of word vectors (word2vec/GloVe file, or hashed vectors without a file), L2-normalised."""

    name = "word-vectors"

    def __init__(self, path: str | os.PathLike | None = None, dim: int = 300, seed: int = 0,
                 limit: int | None = None) -> None:
        self.path = None if path is None else str(Path(path).expanduser())
        self.vectors = WordVectors.load(self.path, limit=limit, seed=seed) if self.path else \
            WordVectors.hashed(dim=dim, seed=seed)
        self.dim = self.vectors.dim
        self.seed = int(seed)
        self.limit = limit
        self._fingerprint = _file_fingerprint(Path(self.path)) if self.path else None

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "path": self.path, "file": self._fingerprint,
                "seed": self.seed, "limit": self.limit, "oov": self.vectors.oov, "version": 1}

    def encode(self, texts: Sequence[str | None], batch_size: int = 256) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = [tokenize(t) for t in texts[start:start + batch_size]]
            vocab = sorted({w for words in chunk for w in words})
            if not vocab:
                continue
            table, keep = self.vectors.table(vocab)
            pos = {w: i for i, w in enumerate(vocab)}
            for r, words in enumerate(chunk):
                rows = [pos[w] for w in words if keep[pos[w]]]
                if rows:
                    out[start + r] = table[rows].mean(axis=0)
        return _l2_rows(out)


class SentenceTransformerEncoder(TextEncoder):
    """A ``sentence-transformers`` model (optional dependency: ``pip install sentence-transformers``).

    ``model`` is a hub id (``all-MiniLM-L6-v2``, ``sentence-transformers/all-mpnet-base-v2``) or a
    local folder. Offline (``offline=True`` or MODALINK_OFFLINE/HF_HUB_OFFLINE set) loads from
    local files only and fails with a clear message instead of downloading.
    """

    name = "sentence-transformers"

    def __init__(self, model: str = "sentence-transformers/all-MiniLM-L6-v2", device: str | None = None,
                 normalize: bool = True, offline: bool | None = None, name_option: str | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError("text encoder 'sentence-transformers' needs the optional package: "
                              "pip install sentence-transformers (or use the built-in 'hashed-bow')") from e
        self.model_name = model
        self.normalize = bool(normalize)
        from modalink.encoders.base import is_offline  # the encoders' one offline switch

        local = Path(model).expanduser()
        offline = is_offline(offline)
        kwargs: dict[str, Any] = {"device": device}
        if offline and not local.exists():
            kwargs["local_files_only"] = True
        elif not local.exists() and not _hub_cached(_hub_id(model)):
            # online, nothing local: one quick probe instead of the hub client's minute of retries
            from modalink.encoders.image import probe_hub_file

            why = probe_hub_file(_hub_id(model), "config.json")
            if why is not None:
                raise _missing_model(model, f"the Hugging Face hub cannot be reached to download it ({why})",
                                     name_option)
        try:
            self.model = SentenceTransformer(str(local) if local.exists() else model, **kwargs)
        except Exception as e:  # noqa: BLE001 - hub/IO errors come in many types
            reason = ("offline mode forbids downloading it" if kwargs.get("local_files_only")
                      else "loading it failed") + f" ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
            raise _missing_model(model, reason, name_option) from e
        get_dim = getattr(self.model, "get_sentence_embedding_dimension", None)
        dim = get_dim() if callable(get_dim) else None
        self.dim = int(dim) if dim else int(self.encode(["probe"]).shape[1])

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_name, "dim": self.dim, "normalize": self.normalize}

    def encode(self, texts: Sequence[str | None], batch_size: int = 256) -> np.ndarray:
        clean = [t or "" for t in texts]
        emb = self.model.encode(clean, batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=self.normalize, show_progress_bar=False)
        emb = np.asarray(emb, dtype=np.float32).reshape(len(clean), -1)
        empty = np.array([not t.strip() for t in clean])
        emb[empty] = 0.0
        return emb


def _hub_id(model: str) -> str:
    """The Hugging Face repo of a sentence-transformers model name (bare names live under
    ``sentence-transformers/``)."""
    return model if "/" in model else f"sentence-transformers/{model}"


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    for name in ("modules.json", "config.json"):
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, (str, os.PathLike)) and Path(found).is_file():
            return True
    return False


def _missing_model(model: str, reason: str, name_option: str | None) -> Exception:
    """One message for a sentence-transformers model that cannot be had: what, where, which setting."""
    from modalink.encoders.base import WeightsNotFoundError
    from modalink.encoders.image import hf_hub_cache_dir

    cache = hf_hub_cache_dir()
    repo = _hub_id(model)
    short = repo.split("/")[-1]
    point = f"{name_option}=st:/path/to/{short}" if name_option else f"the text encoder name st:/path/to/{short}"
    fallback = f"{name_option}=hashed-bow" if name_option else "the text encoder 'hashed-bow'"
    lines = [f"sentence-transformers model {model!r}: not found locally, and {reason}.",
             f"  missing:        the model folder of https://huggingface.co/{repo}",
             f"  put it at:      {cache} (`hf download {repo}` on a machine with network, then copy that "
             "cache folder here), or in any folder",
             f"  or point at it: {point}",
             f"  or use the built-in encoder (no download): {fallback}"]
    return WeightsNotFoundError("\n".join(lines))


def _file_fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


# ----------------------------------------------------------------------------- registry
TEXT_ENCODERS: Registry[TextEncoder] = Registry("text encoder")
register_text_encoder: Callable[..., Callable] = TEXT_ENCODERS.register
register_text_encoder("hashed-bow")(HashedBagOfWords)
register_text_encoder("word-vectors")(MeanWordVectors)
register_text_encoder("sentence-transformers")(SentenceTransformerEncoder)


def text_encoder_name(name: str) -> str:
    """The registered encoder behind ``name`` (``st:<model>`` and ``sentence-transformers/<model>``
    are ``sentence-transformers``); an unknown name raises :class:`~modalink.errors.UnknownNameError`
    listing the known ones."""
    if name.startswith(("st:", "sentence-transformers/")):
        return "sentence-transformers"
    known = list_text_encoders()
    if name not in known:
        raise UnknownNameError(f"unknown text encoder {name!r}; known text encoders: {', '.join(known)} (or "
                               "sentence-transformers/<model>, st:<model or folder>)")
    return name


def create_text_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """Build a registered text encoder. ``"sentence-transformers/<model>"`` is a shortcut for
    ``create_text_encoder("sentence-transformers", model="sentence-transformers/<model>")``;
    ``"st:<model or folder>"`` passes ``<model or folder>`` as is."""
    if name.startswith("st:"):
        kwargs["model"] = name[3:]
    elif name.startswith("sentence-transformers/"):
        kwargs["model"] = name
    return TEXT_ENCODERS.create(text_encoder_name(name), **kwargs)


def list_text_encoders(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered text encoders."""
    return TEXT_ENCODERS.list(pattern)
