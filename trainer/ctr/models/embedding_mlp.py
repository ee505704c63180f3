"""Embedding&MLP: the "Base" model of MFN's Table 1 (and DIN's base model).

Xie, Wei, Hua and Zhang, 2021, "Multiple Interest and Fine Granularity Network for User
Modeling" (https://arxiv.org/abs/2112.02591), Table 1 "Base"; the architecture is DIN's base
model (Zhou et al., KDD 2018, https://arxiv.org/abs/1706.06978, Section 4.2 and Fig. 2 left):

* Embedding layer: each item field (item id, categories, title words) has its own table; the
  fields' vectors are concatenated (`ItemEmbedding`).
* Pooling layer: the clicked items are **sum**-pooled into one user vector `u = sum_j e_j` over
  the real history slots; padding adds nothing and an empty history gives `u = 0`.
* Concat + MLP: `[u ; t]` (target item vector `t`) → PReLU MLP 200-80 → one logit.

The user vector is the same whatever the target: this is the fixed-length bottleneck DIN's
local activation unit removes, which makes Embedding&MLP the baseline of RelaImpr (MFN eq. 13).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.ctr.models.ctr_model import MLP, CTRConfig, CTRModel

__all__ = ["EmbeddingMLP", "EmbeddingMLPConfig"]


@dataclasses.dataclass
class EmbeddingMLPConfig(CTRConfig):
    """Hyper-parameters of Embedding&MLP; defaults follow DIN's base model.

    The MLP is DIN's 200-80 with PReLU (DIN Table 3: every deep model but DIN with Dice uses
    PReLU), so Base and DIN differ only in how the history is pooled and in Dice.

    The history is sum-pooled: DIN's base model (Fig. 2, "SUM pooling") does so, and DIN's
    attention (eq. 3) is then exactly this sum with learned instead of unit weights, also not
    normalised (Section 4.3), so the Base → DIN RelaImpr measures the activation unit alone.
    A sum keeps how strongly the user clicked each interest (three clicks in a topic weigh
    three times one). Mean pooling, the other common choice (DIN Section 4.2; the authors'
    released base-model code divides by the history length), makes the user vector
    independent of history length but hides that intensity.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"embedding_dim": 8, "mlp_units": (32, 16)},
    }


@keras.saving.register_keras_serializable(package="usermodel")
class EmbeddingMLP(CTRModel):
    """Embedding&MLP (MFN's "Base"): sum-pooled history and target vector → MLP → logit.

    Inputs: the CTR input dict (`trainer/ctr/models/ctr_model.py`) for the fields of
    `item_fields`; returns logits `[B]` (float32). Loss: `CTRModel.compute_loss`.

    Args:
        config: an `EmbeddingMLPConfig` (or its `to_dict()`) with the table sizes set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    config = EmbeddingMLPConfig.preset("tiny", num_items=1000, num_categories=20)
    model = EmbeddingMLP(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x={"hist_item": ..., "hist_categories": ..., "hist_mask": ...,
                 "target_item": ..., "target_categories": ...}, y=clicks)
    ```

    References:
        - [Xie et al., 2021. Multiple Interest and Fine Granularity Network for User Modeling](
          https://arxiv.org/abs/2112.02591), Table 1 ("Base").
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978), Section 4.2 and Fig. 2 (base model).
    """

    config_class: ClassVar[type[CTRConfig]] = EmbeddingMLPConfig

    def __init__(self, config: EmbeddingMLPConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.mlp = MLP(self.config.mlp_units, self.config.activation, name="mlp")

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so `load_model` can build without data.
        self.item_embedding.build()
        self.mlp.build((None, 2 * self.config.item_dim))
        self.built = True

    def user_vector(self, history: Any, hist_mask: Any) -> Any:
        """Sum of the real history vectors: `[B, H, D]`, mask `[B, H]` → `[B, D]`."""
        mask = ops.expand_dims(ops.cast(hist_mask, history.dtype), -1)
        return ops.sum(history * mask, axis=1)

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        history, target = self.embed_items(inputs)
        user = self.user_vector(history, inputs["hist_mask"])
        logits = self.mlp(ops.concatenate([user, target], axis=-1), training=training)
        return ops.cast(logits, "float32")
