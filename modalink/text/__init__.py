"""Text for modalink models: words, sentence vectors and text rendered as pixels.

* :mod:`modalink.text.word_vectors` — the tokeniser (:func:`tokenize`) and word-vector tables
  (:class:`WordVectors`: word2vec/GloVe files or hashed vectors that need no download);
* :mod:`modalink.text.encoders` — sentence encoders built on those (hashed bag of words, mean
  word vectors, sentence-transformers), registered in :data:`TEXT_ENCODERS`
  (:func:`create_text_encoder`, :func:`list_text_encoders`);
* :mod:`modalink.text.render` — Chameleon's renderer (:class:`TextToImage`): word vectors
  quantised to bytes and painted as RGB superpixels. It needs torch, so it is imported on first use.
"""
from __future__ import annotations

from typing import Any

from modalink.text.encoders import (TEXT_ENCODERS, HashedBagOfWords, MeanWordVectors, SentenceTransformerEncoder,
                                    TextEncoder, create_text_encoder, list_text_encoders, register_text_encoder,
                                    text_encoder_name)
from modalink.text.word_vectors import WordVectors, WordVectorsFormatError, hashed_vectors, tokenize, words_in

__all__ = ["tokenize", "WordVectors", "WordVectorsFormatError", "hashed_vectors", "words_in",
           "TextEncoder", "HashedBagOfWords", "MeanWordVectors", "SentenceTransformerEncoder", "TEXT_ENCODERS",
           "register_text_encoder", "create_text_encoder", "list_text_encoders", "text_encoder_name",
           "TextToImage", "TextGrid", "naive_text_to_image", "quantise_bytes"]

_RENDER = ("TextToImage", "TextGrid", "naive_text_to_image", "quantise_bytes")


def __getattr__(name: str) -> Any:
    if name in _RENDER:
        import modalink.text.render as render

        return getattr(render, name)
    raise AttributeError(f"module 'modalink.text' has no attribute {name!r}")
