"""Pretrained modality encoders with input contracts and offline-first weights.

``create_encoder(name, pretrained=False, weights=None, offline=None, **kw)`` builds one;
``list_encoders()`` names them. Registered: ``facenet_vggface2``, ``facenet_casia_webface``
(face), ``ecapa_voxceleb`` (voice), ``timm`` (image; use ``"timm/<architecture>"``) and
``pixel-stats`` (hand-made image features, no weights). Text encoders (``hashed-bow``,
``word-vectors``, ``sentence-transformers``) live in :mod:`modalink.text.encoders`, which needs no
torch, and are exported here too: ``create_text_encoder(name, **kw)``, ``list_text_encoders()``;
both kinds follow the same offline switch (:func:`is_offline`). :func:`embed_files` turns image
and audio files into embedding rows with any of the image and audio encoders.
"""
from modalink.encoders.base import (
    ENCODERS,
    Encoder,
    EncoderBatch,
    EncoderContract,
    NoFaceError,
    PreprocessError,
    WeightsNotFoundError,
    create_encoder,
    is_offline,
    list_encoders,
    modalink_home,
    register_encoder,
    resolve_weights,
    weights_cache_dir,
)
from modalink.encoders.embed_files import FileEmbedding, MediaProblem, embed_files
from modalink.encoders.face import FaceEncoder, MTCNNDetector, center_crop_resize, facenet_contract
from modalink.encoders.image import ImageEncoder, timm_contract
from modalink.encoders.pixel_stats import PixelStats
from modalink.encoders.voice import ShortAudioError, VoiceEncoder, ecapa_contract
from modalink.text.encoders import (TEXT_ENCODERS, TextEncoder, create_text_encoder, list_text_encoders,
                                    register_text_encoder)

__all__ = [
    "ENCODERS", "Encoder", "EncoderBatch", "EncoderContract", "NoFaceError", "PreprocessError",
    "WeightsNotFoundError", "create_encoder", "is_offline", "list_encoders", "modalink_home",
    "register_encoder", "resolve_weights", "weights_cache_dir", "FaceEncoder", "MTCNNDetector",
    "center_crop_resize", "facenet_contract", "ImageEncoder", "timm_contract", "PixelStats", "ShortAudioError",
    "VoiceEncoder", "ecapa_contract", "FileEmbedding", "MediaProblem", "embed_files", "TEXT_ENCODERS", "TextEncoder",
    "create_text_encoder", "list_text_encoders", "register_text_encoder",
]
