"""TransformerRec: a transformer over the clicks, then DIN's target attention (MFN's Table 1).

MFN's Table 1 names "TransformerRec" without a reference; the usual one is BST, Chen, Zhao, Li,
Huang and Ou, DLP-KDD 2019, "Behavior Sequence Transformer for E-commerce Recommendation in
Alibaba" (https://arxiv.org/abs/1905.06874), whose transformer layer this model uses:

* **Embedding + position** (Section 3.1): each click's item vector plus a trainable position
  vector. BST's position is the time gap to the target; the CTR inputs carry no timestamps, so
  the position is the click's recency rank (`positions.py`).
* **Transformer block** (Section 3.2, eqs. 1-5): multi-head self-attention
  `softmax(Q Kᵀ / √d) V` per head, heads concatenated and projected (`W^H`, eqs. 1-3), with a
  key padding mask (no click attends to a padded slot); `S' = LayerNorm(S + Dropout(MH(S)))`
  (eq. 4) and `F = LayerNorm(S' + Dropout(LeakyReLU(S' W⁽¹⁾ + b⁽¹⁾) W⁽²⁾ + b⁽²⁾))` (eq. 5);
  `blocks` of them stacked (eq. 6; BST's best is 1).
* **Target attention** (the "TransformerRec" of the issue, instead of BST's flattening of all
  outputs into the MLP): DIN's local activation unit (`din.LocalActivationUnit`, DIN eq. 3)
  weighs each encoded click `f_j` against the target `e_t`, `u = Σ_j a(f_j, e_t) f_j`, padded
  clicks weigh 0.
* **Head**: DIN's prediction MLP over `[u ; e_t]`, pointwise cross-entropy, as every CTR model
  here.

Only `keras` / `keras.ops` are used, so the model runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.ctr.models.ctr_model import MLP, CTRConfig, CTRModel
from trainer.ctr.models.din import LocalActivationUnit
from trainer.ctr.models.positions import RecencyPositionEmbedding

__all__ = ["TransformerBlock", "TransformerRec", "TransformerRecConfig"]


@dataclasses.dataclass
class TransformerRecConfig(CTRConfig):
    """Hyper-parameters of TransformerRec; BST's Table 2 where it gives them."""

    blocks: int = 1
    """Transformer blocks (BST: 1 is best, Table 4)."""

    heads: int = 8
    """Attention heads (BST Table 2: 8); each is `item_dim // heads` wide."""

    feed_forward_ratio: int = 4
    """Inner width of eq. 5's feed-forward as a multiple of the item width (BST does not say;
    4 is Vaswani et al.'s)."""

    dropout: float = 0.2
    """Dropout in eqs. 4-5 (BST Table 2: 0.2). The `tiny` preset has none: on the planted test
    data (768 steps) dropout 0.1 left AUC at 0.72 against 0.81 without (docs/mfn.md)."""

    positions: int = 64
    """Rows of the recency position table; older clicks share the last row."""

    attention_units: tuple[int, ...] = (36,)
    """Hidden layers of the target attention (DIN's activation unit, Fig. 3: one of 36)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"embedding_dim": 8, "mlp_units": (32, 16), "heads": 2, "feed_forward_ratio": 2, "positions": 16,
                 "attention_units": (16,), "dropout": 0.0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attention_units = tuple(int(u) for u in self.attention_units)
        if self.blocks < 1 or self.heads < 1 or self.feed_forward_ratio < 1 or self.positions < 1:
            raise ValueError(f"blocks, heads, feed_forward_ratio and positions must be >= 1, got {self.blocks}, "
                             f"{self.heads}, {self.feed_forward_ratio} and {self.positions}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.attention_units or min(self.attention_units) <= 0:
            raise ValueError(f"attention_units must be positive layer widths, got {self.attention_units}.")


@keras.saving.register_keras_serializable(package="usermodel")
class TransformerBlock(keras.layers.Layer):
    """One BST transformer layer (eqs. 1-5) with a key padding mask.

    Args:
        heads: attention heads.
        feed_forward_units: inner width of the feed-forward network.
        dropout: dropout rate after the attention and after the feed-forward network.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        sequence: float `[B, n, d]`.
        mask: `[B, n]`, nonzero for a real click.
        training: bool (dropout).

    Returns:
        Float `[B, n, d]`. Real positions do not depend on padded ones; padded positions are
        finite and meaningless (callers mask them).

    References:
        - Chen et al., 2019, Section 3.2, eqs. (1)-(5); Vaswani et al., 2017.
    """

    def __init__(self, heads: int, feed_forward_units: int, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heads, self.feed_forward_units, self.dropout = int(heads), int(feed_forward_units), float(dropout)
        self.attention_norm = keras.layers.LayerNormalization(name="attention_norm")
        self.output_norm = keras.layers.LayerNormalization(name="output_norm")
        self.inner = keras.layers.Dense(self.feed_forward_units, name="inner")
        self.attention_dropout = keras.layers.Dropout(self.dropout, name="attention_dropout")
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        self.attention = keras.layers.MultiHeadAttention(self.heads, max(1, dim // self.heads), name="attention")
        self.attention.build((None, None, dim), (None, None, dim))
        self.outer = keras.layers.Dense(dim, name="outer")
        self.inner.build((None, None, dim))
        self.outer.build((None, None, self.feed_forward_units))
        self.attention_norm.build((None, None, dim))
        self.output_norm.build((None, None, dim))
        self.built = True

    def call(self, sequence: Any, mask: Any, training: bool = False) -> Any:
        real = ops.cast(mask, "bool")
        keys = ops.broadcast_to(real[:, None, :], (ops.shape(real)[0], ops.shape(real)[1], ops.shape(real)[1]))
        attended = self.attention(sequence, sequence, attention_mask=keys, training=training)  # eqs. 1-3
        s = self.attention_norm(sequence + self.attention_dropout(attended, training=training))  # eq. 4
        hidden = ops.leaky_relu(self.inner(s))
        return self.output_norm(s + self.output_dropout(self.outer(hidden), training=training))  # eq. 5

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "heads": self.heads, "feed_forward_units": self.feed_forward_units,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="usermodel")
class TransformerRec(CTRModel):
    """TransformerRec over the CTR input dict (`ctr_model.py`): transformer-encoded clicks, DIN's
    target attention, DIN's MLP over `[u ; e_t]`; returns logits `[B]` (float32).

    Args:
        config: a `TransformerRecConfig` (or its `to_dict()`) with the table sizes set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    References:
        - [Chen et al., 2019. Behavior Sequence Transformer for E-commerce Recommendation in
          Alibaba, DLP-KDD](https://arxiv.org/abs/1905.06874), Section 3, eqs. (1)-(6).
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978), eq. (3) (target attention).
    """

    config_class: ClassVar[type[CTRConfig]] = TransformerRecConfig

    def __init__(self, config: TransformerRecConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        self.positions = RecencyPositionEmbedding(cfg.positions, cfg.item_dim, name="positions")
        self.encoder = [TransformerBlock(cfg.heads, cfg.feed_forward_ratio * cfg.item_dim, cfg.dropout,
                                         name=f"transformer_{i}") for i in range(cfg.blocks)]
        self.attention = LocalActivationUnit(cfg.attention_units, cfg.activation, name="target_attention")
        self.mlp = MLP(cfg.mlp_units, cfg.activation, name="mlp")

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so `load_model` can build without data.
        dim = self.config.item_dim
        self.item_embedding.build()
        self.positions.build()
        for block in self.encoder:
            block.build((None, None, dim))
        self.attention.build((None, None, dim))
        self.mlp.build((None, 2 * dim))
        self.built = True

    def encode(self, history: Any, hist_mask: Any, training: bool = False) -> Any:
        """The transformer outputs `F` `[B, n, d]` of the clicks (padded slots zeroed)."""
        real = ops.cast(hist_mask, "bool")[..., None]
        sequence = ops.where(real, history + ops.cast(self.positions(hist_mask), history.dtype), 0.0)
        for block in self.encoder:
            sequence = block(sequence, hist_mask, training=training)
        return ops.where(real, sequence, 0.0)

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        history, target = self.embed_items(inputs)
        mask = inputs["hist_mask"]
        encoded = self.encode(history, mask, training=training)
        weights = self.attention(encoded, target, mask, training=training)
        user = ops.sum(ops.expand_dims(ops.cast(weights, encoded.dtype), -1) * encoded, axis=1)
        logits = self.mlp(ops.concatenate([user, target], axis=-1), training=training)
        return ops.cast(logits, "float32")
