"""DIN: Deep Interest Network for click-through rate prediction.

Zhou, Song, Zhu, Fan, Zhu, Ma, Yan, Jin, Li and Gai, KDD 2018
(https://arxiv.org/abs/1706.06978).

* Embedding layer: as the base model, one table per item field, fields concatenated
  (`ItemEmbedding`).
* Local activation unit (Section 4.3, eq. 3, Fig. 3): each clicked item `e_j` is scored against
  the target `t` by a small MLP on `[e_j ; t ; e_j - t ; e_j * t]`; the user vector is
  `u(t) = sum_j a(e_j, t) e_j`. The weights are *not* softmax-normalised: the paper relaxes
  `sum_j w_j = 1` to keep the intensity of an interest (a user with many clicks relevant to
  the target gets a larger `u`). Padded slots get weight 0, so an empty history gives `u = 0`.
  (Fig. 3 feeds the outer product of `e_j` and `t` with the two vectors; the difference and
  element-wise product used here carry the same interaction at `4 D` instead of `D^2 + 2 D`
  inputs, as the authors' released code does.)
* Concat + MLP (Fig. 2): `[u(t) ; t]` → 200-80 with Dice or PReLU (Section 5.2) → one logit.

Mini-batch aware regularization (Section 5.1) is `CTRConfig.item_l2` (off by default): L2 on
the item-id rows each batch touches. It matters even at MovieLens scale: on the `demo` data it
takes DIN from below its Base to above it (docs/ctr.md, "Why DIN trails its Base").
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import keras
from keras import ops

from trainer.ctr.models.ctr_model import MLP, CTRConfig, CTRModel

__all__ = ["DIN", "DINConfig", "LocalActivationUnit"]


@dataclasses.dataclass
class DINConfig(CTRConfig):
    """Hyper-parameters of DIN; defaults follow the paper (Figs. 2-3, Section 5.2).

    `activation` defaults to Dice, in the prediction MLP and in the activation unit (Fig. 3 draws
    "PReLU/Dice" in both): DIN with Dice is the paper's full model and its best line on both
    public datasets (Table 3) and on the Alibaba data. Dice adapts each unit's
    switching point to the distribution of its inputs, which varies across layers and over
    training. `"prelu"` is the switch for runs that want the activation independent of batch
    statistics (small or very uneven batches), and the paper's setting for every other deep
    model.
    """

    activation: str = "dice"

    attention_units: tuple[int, ...] = (36,)
    """Hidden layers of the local activation unit (Fig. 3: one of 36), followed by a linear
    output, one weight per clicked item."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"embedding_dim": 8, "mlp_units": (32, 16), "attention_units": (16,)},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attention_units = tuple(int(u) for u in self.attention_units)
        if not self.attention_units or min(self.attention_units) <= 0:
            raise ValueError(f"attention_units must be positive layer widths, got {self.attention_units}.")


@keras.saving.register_keras_serializable(package="usermodel")
class LocalActivationUnit(keras.layers.Layer):
    """DIN's local activation unit: one un-normalised weight per clicked item, given the target.

    `w_j = MLP([e_j ; t ; e_j - t ; e_j * t])` with a linear output; padded slots get exactly
    0. The weights are not softmax-normalised (Section 4.3), so they can sum to anything and
    `sum_j w_j e_j` grows with the number of relevant clicks.

    Args:
        units: hidden-layer widths of the MLP (paper: `(36,)`).
        activation: `"dice"` or `"prelu"`. With Dice, padded slots are left out of its batch
            statistics.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        history: float `[B, H, D]`, clicked item vectors.
        target: float `[B, D]`, target item vectors.
        mask: `[B, H]`, nonzero for real clicks.
        training: bool.

    Returns:
        Float `[B, H]` weights.

    References:
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978), Section 4.3, eq. (3) and Fig. 3.
    """

    def __init__(self, units: Sequence[int] = (36,), activation: str = "dice", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.activation = activation
        self.mlp = MLP(self.units, activation, name="mlp")
        self.supports_masking = True  # consumes `mask`; outputs have none

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.mlp.build((None, 4 * input_shape[-1]))
        self.built = True

    def call(self, history: Any, target: Any, mask: Any, training: bool = False) -> Any:
        shape = ops.shape(history)
        dim = history.shape[-1]
        target = ops.broadcast_to(ops.expand_dims(target, 1), shape)
        features = ops.concatenate([history, target, history - target, history * target], axis=-1)
        real = ops.cast(mask, "bool")
        scores = self.mlp(
            ops.reshape(features, (-1, 4 * dim)), mask=ops.reshape(real, (-1,)), training=training
        )
        scores = ops.reshape(scores, shape[:2])
        return ops.where(real, scores, ops.zeros_like(scores))

    def compute_mask(self, history: Any, target: Any = None, mask: Any | None = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape[:2]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"units": list(self.units), "activation": self.activation})
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class DIN(CTRModel):
    """DIN (Zhou et al., 2018): target-aware weighted sum of the history → MLP → logit.

    Inputs: the CTR input dict (`trainer/ctr/models/ctr_model.py`) for the fields of
    `item_fields`; returns logits `[B]` (float32). Loss: `CTRModel.compute_loss`.

    Args:
        config: a `DINConfig` (or its `to_dict()`) with the table sizes set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    config = DINConfig.preset("tiny", num_items=1000, num_categories=20, vocab_size=5000)
    model = DIN(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x=inputs, y=clicks)  # inputs: hist_*/target_* of config.item_fields, hist_mask
    ```

    References:
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978).
    """

    config_class: ClassVar[type[CTRConfig]] = DINConfig

    def __init__(self, config: DINConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.attention = LocalActivationUnit(
            self.config.attention_units, self.config.activation, name="local_activation_unit"
        )
        self.mlp = MLP(self.config.mlp_units, self.config.activation, name="mlp")

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so `load_model` can build without data.
        dim = self.config.item_dim
        self.item_embedding.build()
        self.attention.build((None, None, dim))
        self.mlp.build((None, 2 * dim))
        self.built = True

    def user_vector(self, history: Any, target: Any, hist_mask: Any, training: bool = False) -> Any:
        """`u(t) = sum_j a(e_j, t) e_j` (eq. 3): `[B, H, D]`, `[B, D]`, `[B, H]` → `[B, D]`."""
        weights = self.attention(history, target, hist_mask, training=training)
        return ops.sum(ops.expand_dims(ops.cast(weights, history.dtype), -1) * history, axis=1)

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        history, target = self.embed_items(inputs)
        user = self.user_vector(history, target, inputs["hist_mask"], training=training)
        logits = self.mlp(ops.concatenate([user, target], axis=-1), training=training)
        return ops.cast(logits, "float32")
