"""modalink: shared-encoder multimodal learning (face–voice association, missing-modality
classification, item towers)."""
from modalink.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "__version__"]
