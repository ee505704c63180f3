"""The CTR family's models: name -> (config dataclass, Keras model class).

Add a model by importing its pair here and adding one entry to `MODELS`.
"""

from __future__ import annotations

from typing import Any

import keras

from trainer.config_base import ModelRegistry
from trainer.ctr.models.comirec_sa import ComiRecSA, ComiRecSAConfig
from trainer.ctr.models.ctr_model import CTRConfig, CTRModel
from trainer.ctr.models.din import DIN, DINConfig
from trainer.ctr.models.embedding_mlp import EmbeddingMLP, EmbeddingMLPConfig
from trainer.ctr.models.mfn import MFN, MFNConfig, MFNNoCombinationConfig, MFNNoPretrainConfig
from trainer.ctr.models.mind import MIND, MINDConfig
from trainer.ctr.models.transformer_rec import TransformerRec, TransformerRecConfig

__all__ = [
    "ComiRecSA",
    "ComiRecSAConfig",
    "CTRConfig",
    "CTRModel",
    "DIN",
    "DINConfig",
    "EmbeddingMLP",
    "EmbeddingMLPConfig",
    "MFN",
    "MFNConfig",
    "MIND",
    "MINDConfig",
    "MODELS",
    "TransformerRec",
    "TransformerRecConfig",
    "build_model",
    "make_config",
]

MODELS = ModelRegistry({
    # MFN's "Base" (Table 1): the baseline of RelaImpr.
    "embedding_mlp": (EmbeddingMLPConfig, EmbeddingMLP),
    "din": (DINConfig, DIN),
    # MFN reads the interest centers of the pipeline's pre-step (components/interest_centers.py);
    # its Table 1 ablations are gated and pushed under their own names.
    "mfn": (MFNConfig, MFN),
    "mfn_no_pretrain": (MFNNoPretrainConfig, MFN),
    "mfn_no_combination": (MFNNoCombinationConfig, MFN),
    # The other Table 1 baselines (docs/mfn.md, "Table 1 baselines").
    "mind": (MINDConfig, MIND),
    "comirec_sa": (ComiRecSAConfig, ComiRecSA),
    "transformer_rec": (TransformerRecConfig, TransformerRec),
})


def make_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The config of CTR model `name` (see `ModelRegistry.make_config`)."""
    return MODELS.make_config(name, config, **overrides)


def build_model(name: str, config: Any = None, **overrides: Any) -> keras.Model:
    """CTR model `name`, unbuilt and uncompiled (see `ModelRegistry.build`)."""
    return MODELS.build(name, config, **overrides)
