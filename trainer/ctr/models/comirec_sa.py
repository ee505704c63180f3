"""ComiRec-SA: the self-attentive multi-interest extractor, as a CTR baseline (MFN's Table 1).

Cen, Zhang, Zou, Zhou, Yang and Tang, KDD 2020, "Controllable Multi-Interest Framework for
Recommendation" (https://arxiv.org/abs/2005.09347), Section 3.3 ("Self-Attentive Method").

* **Interests** (eqs. 6-7): over the clicked item vectors `H ∈ R^{d×n}`,
  `A = softmax(W₂ᵀ tanh(W₁ H))ᵀ ∈ R^{n×K}` (one distribution over the clicks per interest; eq. 5
  is its K = 1 case) and `V_u = H A ∈ R^{d×K}`. Padded clicks get no weight; a user without
  clicks has K zero interests. W₁ is `d_a × d` and W₂ `d_a × K`, without biases, as written.
* **Positions**: the authors' code adds a trainable position embedding to `H` inside the
  attention logits only (`V_u` is a mix of the plain item vectors); so does this model, with
  the position of a click counted by recency (`positions.py`).
* **Readout for the target** (eq. 8, the paper's training readout): the interest that best
  matches the target, `v_u = V_u[:, argmax(V_uᵀ e_t)]`. A hard choice: gradients reach only
  the chosen interest, as in the paper's training. (MIND, the other capsule-style baseline,
  takes the soft label-aware attention; keeping ComiRec's argmax keeps the two as published.)
* **CTR head**: DIN's prediction MLP over `[v_u ; e_t]` with pointwise cross-entropy (ComiRec is
  a retrieval model trained with a sampled softmax, eqs. 9-10), the head of every CTR model
  here, so Table 1 compares the extractors.

Only `keras` / `keras.ops` are used, so the model runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.ctr.models.ctr_model import MLP, CTRConfig, CTRModel
from trainer.ctr.models.positions import RecencyPositionEmbedding
from trainer.layers.attention import masked_softmax

__all__ = ["ComiRecSA", "ComiRecSAConfig", "SelfAttentiveInterests", "best_interest"]


@dataclasses.dataclass
class ComiRecSAConfig(CTRConfig):
    """Hyper-parameters of ComiRec-SA; the paper's public-data setting where it gives one."""

    num_interests: int = 4
    """K (the paper's default on Amazon Books and Taobao is 4; also MFN's K here)."""

    attention_ratio: int = 4
    """`d_a = attention_ratio × d`, the rows of W₁ (the paper leaves `d_a` open; the authors'
    code uses 4 × the hidden width)."""

    positions: int = 64
    """Rows of the recency position table; older clicks share the last row. 0 turns positions
    off (the paper's equations have none)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"embedding_dim": 8, "mlp_units": (32, 16), "attention_ratio": 2, "positions": 16},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_interests < 1 or self.attention_ratio < 1 or self.positions < 0:
            raise ValueError(f"num_interests and attention_ratio must be >= 1 and positions >= 0, got "
                             f"{self.num_interests}, {self.attention_ratio} and {self.positions}.")


@keras.saving.register_keras_serializable(package="usermodel")
class SelfAttentiveInterests(keras.layers.Layer):
    """`A = softmax(W₂ᵀ tanh(W₁ (H + P)))ᵀ`, `V_u = H A` (ComiRec eqs. 6-7), masked.

    Args:
        num_interests: K.
        units: `d_a`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        behaviours: float `[B, n, d]`, the click vectors `H`.
        mask: `[B, n]`, nonzero for a real click.
        positions: optional float `[B, n, d]` added to `H` inside the logits only.

    Returns:
        `(interests [B, K, d], attention [B, K, n])`; padded clicks have weight 0, and a row
        without clicks has zero weights and zero interests.

    References:
        - Cen et al., 2020, Section 3.3, eqs. (5)-(7); Lin et al., 2017, "A Structured
          Self-attentive Sentence Embedding", ICLR.
    """

    def __init__(self, num_interests: int, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_interests, self.units = int(num_interests), int(units)
        self.w1 = keras.layers.Dense(self.units, activation="tanh", use_bias=False, name="w1")
        self.w2 = keras.layers.Dense(self.num_interests, use_bias=False, name="w2")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.w1.build((None, None, input_shape[-1]))
        self.w2.build((None, None, self.units))
        self.built = True

    def call(self, behaviours: Any, mask: Any, positions: Any | None = None) -> Any:
        real = ops.cast(mask, "bool")
        behaviours = ops.where(real[..., None], behaviours, ops.zeros_like(behaviours))
        keys = behaviours if positions is None else behaviours + ops.cast(positions, behaviours.dtype)
        logits = ops.transpose(self.w2(self.w1(keys)), (0, 2, 1))  # [B, K, n]
        attention = masked_softmax(logits, real[:, None, :], axis=-1)
        return ops.matmul(attention, behaviours), attention

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_interests": self.num_interests, "units": self.units}


def best_interest(interests: Any, target: Any) -> Any:
    """Eq. 8: the interest with the largest dot product with the target, `[B, K, d]`, `[B, d]` →
    `[B, d]` (ties: the first)."""
    scores = ops.sum(interests * ops.expand_dims(target, 1), axis=-1)
    index = ops.argmax(scores, axis=-1)
    return ops.take_along_axis(interests, ops.reshape(index, (-1, 1, 1)), axis=1)[:, 0]


@keras.saving.register_keras_serializable(package="usermodel")
class ComiRecSA(CTRModel):
    """ComiRec-SA over the CTR input dict (`ctr_model.py`): K self-attentive interests, the one
    matching the target, then DIN's MLP over `[v_u ; e_t]`; returns logits `[B]` (float32).

    Args:
        config: a `ComiRecSAConfig` (or its `to_dict()`) with the table sizes set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    References:
        - [Cen et al., 2020. Controllable Multi-Interest Framework for Recommendation, KDD](
          https://arxiv.org/abs/2005.09347), Section 3.3, eqs. (5)-(8).
    """

    config_class: ClassVar[type[CTRConfig]] = ComiRecSAConfig

    def __init__(self, config: ComiRecSAConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        self.extractor = SelfAttentiveInterests(cfg.num_interests, cfg.attention_ratio * cfg.item_dim,
                                                name="self_attentive_interests")
        self.positions = (RecencyPositionEmbedding(cfg.positions, cfg.item_dim, name="positions")
                          if cfg.positions else None)
        self.mlp = MLP(cfg.mlp_units, cfg.activation, name="mlp")

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so `load_model` can build without data.
        dim = self.config.item_dim
        self.item_embedding.build()
        self.extractor.build((None, None, dim))
        if self.positions is not None:
            self.positions.build()
        self.mlp.build((None, 2 * dim))
        self.built = True

    def interests(self, history: Any, hist_mask: Any) -> tuple[Any, Any]:
        """`(V_u [B, K, d], A [B, K, n])` of eqs. 6-7."""
        positions = None if self.positions is None else self.positions(hist_mask)
        return self.extractor(history, hist_mask, positions)

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        history, target = self.embed_items(inputs)
        interests, _ = self.interests(history, inputs["hist_mask"])
        user = best_interest(interests, target)
        logits = self.mlp(ops.concatenate([user, target], axis=-1), training=training)
        return ops.cast(logits, "float32")
