"""Model registry: name -> (config dataclass, Keras model class).

Add a model by importing its pair here and adding one entry to `MODELS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from trainer.models.fum import FUM, FUMConfig, FUMNoCoarseConfig, FUMNoFineConfig
from trainer.models.lstur import LSTUR, LSTURConfig
from trainer.models.news_ranking import NewsRankingModel
from trainer.models.nrms import NRMS, NRMSConfig

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

MODELS: dict[str, tuple[type, type[keras.Model]]] = {
    "nrms": (NRMSConfig, NRMS),
    "lstur": (LSTURConfig, LSTUR),
    "fum": (FUMConfig, FUM),
    # The paper's ablations (FUM Section 4.3), gated and pushed under their own names.
    "fum_no_fine": (FUMNoFineConfig, FUM),
    "fum_no_coarse": (FUMNoCoarseConfig, FUM),
}


def make_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The config dataclass instance for model `name`.

    Args:
        name: a key of `MODELS`.
        config: `None` (the model's defaults), a preset name (str), a dict of
            fields, or an instance of the model's config class.
        **overrides: field values applied on top.

    Returns:
        An instance of the model's config class.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; known: {sorted(MODELS)}.")
    config_cls, _ = MODELS[name]
    if config is None:
        config = config_cls()
    elif isinstance(config, str):
        config = config_cls.preset(config)
    elif isinstance(config, dict):
        config = config_cls.from_dict(config)
    elif not isinstance(config, config_cls):
        raise TypeError(
            f"config for {name!r} must be {config_cls.__name__}, a dict, a "
            f"preset name or None; got {type(config).__name__}."
        )
    if overrides:
        config = dataclasses.replace(config, **overrides)
    return config


def build_model(name: str, config: Any = None, **overrides: Any) -> keras.Model:
    """Instantiates model `name` from a config (see `make_config`).

    Args:
        name: a key of `MODELS`, e.g. `"nrms"`.
        config: `None`, a preset name, a dict or a config instance.
        **overrides: config field values applied on top (e.g. `vocab_size`).

    Returns:
        The (unbuilt, uncompiled) Keras model.
    """
    config = make_config(name, config, **overrides)
    _, model_cls = MODELS[name]
    return model_cls(config)
