"""The news-ranking family's models: name -> (config dataclass, Keras model class).

Add a model by importing its pair here and adding one entry to `MODELS`.
"""

from __future__ import annotations

from typing import Any

import keras

from trainer.config_base import ModelRegistry
from trainer.news.models.fum import FUM, FUMConfig, FUMNoCoarseConfig, FUMNoFineConfig
from trainer.news.models.lstur import LSTUR, LSTURConfig
from trainer.news.models.news_ranking import NewsRankingModel
from trainer.news.models.nrms import NRMS, NRMSConfig

__all__ = [
    "FUM",
    "FUMConfig",
    "LSTUR",
    "LSTURConfig",
    "MODELS",
    "NRMS",
    "NRMSConfig",
    "NewsRankingModel",
    "build_model",
    "make_config",
]

MODELS = ModelRegistry({
    "nrms": (NRMSConfig, NRMS),
    "lstur": (LSTURConfig, LSTUR),
    "fum": (FUMConfig, FUM),
    # The paper's ablations (FUM Section 4.3), gated and pushed under their own names.
    "fum_no_fine": (FUMNoFineConfig, FUM),
    "fum_no_coarse": (FUMNoCoarseConfig, FUM),
})


def make_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The config of news model `name` (see `ModelRegistry.make_config`)."""
    return MODELS.make_config(name, config, **overrides)


def build_model(name: str, config: Any = None, **overrides: Any) -> keras.Model:
    """News model `name`, unbuilt and uncompiled (see `ModelRegistry.build`)."""
    return MODELS.build(name, config, **overrides)
