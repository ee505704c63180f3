"""The tag-profiling family's models: name -> (config dataclass, Keras model class).

Add a model by importing its pair here and adding one entry to `MODELS`.
"""

from __future__ import annotations

from typing import Any

import keras

from trainer.config_base import ModelRegistry
from trainer.tags.models.tag_model import TagModel, TagModelConfig
from trainer.tags.models.utpm import UTPM, UTPMConfig
from trainer.tags.models.utpm_variants import VARIANTS as UTPM_VARIANTS
from trainer.tags.models.youtube_dnn import YouTubeDNN, YouTubeDNNConfig

__all__ = [
    "MODELS",
    "TagModel",
    "TagModelConfig",
    "UTPM",
    "UTPMConfig",
    "YouTubeDNN",
    "YouTubeDNNConfig",
    "build_model",
    "make_config",
]

MODELS = ModelRegistry({
    "youtube_dnn": (YouTubeDNNConfig, YouTubeDNN),
    "utpm": (UTPMConfig, UTPM),
    # UTPM's Table 2-3 rows (trainer/tags/models/utpm_variants.py), gated and pushed under their own names.
    **{name: (config, UTPM) for name, config in UTPM_VARIANTS.items()},
})


def make_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The config of tag model `name` (see `ModelRegistry.make_config`)."""
    return MODELS.make_config(name, config, **overrides)


def build_model(name: str, config: Any = None, **overrides: Any) -> keras.Model:
    """Tag model `name`, unbuilt and uncompiled (see `ModelRegistry.build`)."""
    return MODELS.build(name, config, **overrides)
