"""MIND: Multi-Interest Network with Dynamic routing, as a CTR baseline (MFN's Table 1).

Li, Liu, Wu, Xu, Huang, Zhao, Kang, Chen, Li and Lee, CIKM 2019, "Multi-Interest Network with
Dynamic Routing for Recommendation at Tmall" (https://arxiv.org/abs/1904.08030).

* **Behaviour-to-interest (B2I) dynamic routing** (Section 3.3.2, Algorithm 1): the clicked item
  vectors `e_i` are mapped by one bilinear matrix `S` shared by every (behaviour, interest) pair,
  and `r = 3` routing iterations cluster them into interest capsules:
  `b_ij = u_jᵀ S e_i` (eq. 8, accumulated over iterations), `w_ij = softmax_j(b_ij)` over the
  interest capsules (eq. 6), `z_j = Σ_i w_ij S e_i` (eq. 5), `u_j = squash(z_j) =
  ‖z_j‖² / (1 + ‖z_j‖²) · z_j / ‖z_j‖` (eq. 7). With a shared `S` and equal starting logits all
  capsules would be the same vector, so the logits start from `N(0, σ²)` draws; they are not
  weights: a fresh draw for every row of every training batch, nothing learned or kept.
* **Dynamic interest number** (eq. 9): `K'_u = max(1, min(K, ⌊log₂ |I_u|⌋))` capsules for a user
  with `|I_u|` clicks (capsules `K'_u … K − 1` are switched off), so a short history is not split
  into `K` random fragments.
* **H layers** (Fig. 2): each capsule goes through ReLU layers back to the item width (the paper
  also concatenates a user profile here; the CTR inputs have none).
* **Label-aware attention** (Section 3.4, eq. 10): `v_u = V_u softmax(pow(V_uᵀ e_t, p))` over the
  user's active interests with the target item `e_t`, `p = 2`.
* **CTR head** (the adaptation; MIND itself is a retrieval model trained with a sampled softmax,
  eqs. 11-12): DIN's prediction MLP over `[v_u ; e_t]`, pointwise cross-entropy as every CTR
  model here, so Table 1 compares the user-interest extractors with one head.

Serving must be deterministic: at inference the routing logits are one fixed draw (seed
`routing_seed`, the same for every row), not zeros, since zeros make every capsule the same
vector and the model would serve a function it was never trained as. docs/mfn.md, "Table 1
baselines", gives the reasons for each choice.

Only `keras` / `keras.ops` are used, so the model runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.ctr.models.ctr_model import MLP, CTRConfig, CTRModel
from trainer.layers.attention import large_negative, masked_softmax

__all__ = ["B2IRouting", "LabelAwareAttention", "MIND", "MINDConfig", "squash"]


@dataclasses.dataclass
class MINDConfig(CTRConfig):
    """Hyper-parameters of MIND. Routing follows the paper (Algorithm 1); the widths it does not
    give for public data are argued here and in docs/mfn.md."""

    num_interests: int = 4
    """K, the most interest capsules a user gets. The paper tunes K per data set; 4 matches
    MFN's K here, so both models have the same number of interest vectors."""

    routing_iterations: int = 3
    """r, routing iterations (Section 3.3.2: 3)."""

    routing_stddev: float = 1.0
    """σ of the routing logits' starting draw `N(0, σ²)` (Algorithm 1, line 2)."""

    routing_seed: int = 0
    """Seed of the one fixed draw used at inference (deterministic serving)."""

    adaptive_interests: bool = True
    """Eq. 9: `K'_u = max(1, min(K, ⌊log₂ |I_u|⌋))` capsules per user; False: always K."""

    interest_units: tuple[int, ...] = (256,)
    """Hidden ReLU layers of the H layers after the capsules (Fig. 2), before a last ReLU layer
    back to the item width (the label-aware attention takes dot products with item vectors)."""

    attention_power: int = 2
    """p of the label-aware attention (eq. 10; the paper's best, p = 2). An integer, so the
    power of a negative score is defined."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"embedding_dim": 8, "mlp_units": (32, 16), "interest_units": (16,)},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.interest_units = tuple(int(u) for u in self.interest_units)
        if self.num_interests < 1 or self.routing_iterations < 1:
            raise ValueError(f"num_interests and routing_iterations must be >= 1, got "
                             f"{self.num_interests} and {self.routing_iterations}.")
        if self.routing_stddev < 0:
            raise ValueError(f"routing_stddev must be >= 0, got {self.routing_stddev}.")
        if self.interest_units and min(self.interest_units) <= 0:
            raise ValueError(f"interest_units must be positive layer widths, got {self.interest_units}.")
        if int(self.attention_power) != self.attention_power or self.attention_power < 0:
            raise ValueError(f"attention_power must be a non-negative integer, got {self.attention_power}.")
        self.attention_power = int(self.attention_power)


def squash(z: Any, epsilon: float = 1e-9) -> Any:
    """Eq. 7: `‖z‖² / (1 + ‖z‖²) · z / ‖z‖` over the last axis; 0 for `z = 0` (finite gradient)."""
    norm = ops.sqrt(ops.sum(ops.square(z), axis=-1, keepdims=True) + epsilon)
    return z * norm / (1.0 + ops.square(norm))


@keras.saving.register_keras_serializable(package="usermodel")
class B2IRouting(keras.layers.Layer):
    """Behaviour-to-interest dynamic routing (MIND Algorithm 1, eqs. 5-9).

    Args:
        num_interests: K.
        iterations: r.
        stddev: σ of the routing logits' starting draw.
        adaptive: use eq. 9's `K'_u` (else every user gets K capsules).
        seed: seed of the fixed inference draw, and of the training draws' generator.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        behaviours: float `[B, H, d]`, the clicked item vectors `e_i`.
        mask: `[B, H]`, nonzero for a real click.
        training: bool; True draws fresh logits for every row, False uses the fixed draw.

    Returns:
        `(capsules [B, K, d], active [B, K] bool)`: inactive capsules are 0. A user without
        clicks has one active capsule, equal to 0.

    References:
        - Li et al., 2019, Section 3.3, eqs. (5)-(9) and Algorithm 1.
    """

    def __init__(self, num_interests: int, iterations: int = 3, stddev: float = 1.0, adaptive: bool = True,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_interests, self.iterations = int(num_interests), int(iterations)
        self.stddev, self.adaptive, self.seed = float(stddev), bool(adaptive), int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="routing_seed")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        self.bilinear = self.add_weight(name="bilinear", shape=(dim, dim), initializer="glorot_uniform")
        self.built = True

    def active(self, mask: Any) -> Any:
        """Eq. 9: bool `[B, K]`, capsule j is used when `j < K'_u`."""
        count = ops.sum(ops.cast(ops.cast(mask, "bool"), "float32"), axis=1)
        interests = ops.arange(self.num_interests)
        if not self.adaptive:
            return ops.broadcast_to(interests[None, :] >= 0, (ops.shape(mask)[0], self.num_interests))
        k = ops.clip(ops.floor(ops.log2(ops.maximum(count, 1.0))), 1.0, float(self.num_interests))
        return ops.cast(interests, "float32")[None, :] < k[:, None]

    def initial_logits(self, mask: Any, training: bool) -> Any:
        """`b_ij ~ N(0, σ²)` `[B or 1, K, H]`: fresh per row in training, one fixed draw otherwise."""
        length = ops.shape(mask)[1]
        if training:
            shape = (ops.shape(mask)[0], self.num_interests, length)
            return keras.random.normal(shape, stddev=self.stddev, seed=self.seed_generator)
        return keras.random.normal((1, self.num_interests, length), stddev=self.stddev, seed=self.seed)

    def call(self, behaviours: Any, mask: Any, training: bool = False) -> Any:
        real = ops.cast(ops.cast(mask, "bool"), behaviours.dtype)
        mapped = ops.matmul(behaviours, ops.cast(self.bilinear, behaviours.dtype)) * real[..., None]  # S e_i
        active = self.active(mask)
        on = ops.cast(active, behaviours.dtype)[..., None]  # [B, K, 1]
        logits = ops.cast(self.initial_logits(mask, training), behaviours.dtype)
        capsules = None
        for step in range(self.iterations):
            # eq. 6 over the active interests of each behaviour; padded behaviours route nothing.
            weights = ops.softmax(ops.where(active[..., None], logits, large_negative(logits.dtype)), axis=1)
            weights = weights * on * real[:, None, :]
            capsules = squash(ops.matmul(weights, mapped)) * on  # eqs. 5, 7
            if step + 1 < self.iterations:
                logits = logits + ops.matmul(capsules, ops.transpose(mapped, (0, 2, 1)))  # eq. 8
        return capsules, active

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_interests": self.num_interests, "iterations": self.iterations,
                "stddev": self.stddev, "adaptive": self.adaptive, "seed": self.seed}


@keras.saving.register_keras_serializable(package="usermodel")
class LabelAwareAttention(keras.layers.Layer):
    """MIND's label-aware attention (eq. 10): `v = V softmax(pow(Vᵀ e_t, p))` over active interests.

    `p = 0` averages the interests, large `p` picks the best-matching one. The power is taken as
    written: with an even `p`, a strongly negative score weighs as much as a strongly positive one.

    Args:
        power: p, a non-negative integer.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        interests: float `[B, K, d]`.
        target: float `[B, d]`.
        active: `[B, K]`, nonzero for the interests that take part.

    Returns:
        `(vector [B, d], weights [B, K])`.

    References:
        - Li et al., 2019, Section 3.4, eq. (10).
    """

    def __init__(self, power: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.power = int(power)

    def call(self, interests: Any, target: Any, active: Any) -> Any:
        scores = ops.sum(interests * ops.expand_dims(target, 1), axis=-1)
        weights = masked_softmax(ops.power(scores, self.power), active, axis=-1)
        return ops.sum(interests * ops.expand_dims(weights, -1), axis=1), weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "power": self.power}


@keras.saving.register_keras_serializable(package="usermodel")
class MIND(CTRModel):
    """MIND over the CTR input dict (`ctr_model.py`): capsule interests, label-aware attention
    with the target, then DIN's MLP over `[v_u ; e_t]`; returns logits `[B]` (float32).

    Args:
        config: a `MINDConfig` (or its `to_dict()`) with the table sizes set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    References:
        - [Li et al., 2019. Multi-Interest Network with Dynamic Routing for Recommendation at
          Tmall, CIKM](https://arxiv.org/abs/1904.08030), Section 3, eqs. (5)-(10), Algorithm 1.
    """

    config_class: ClassVar[type[CTRConfig]] = MINDConfig

    def __init__(self, config: MINDConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        self.routing = B2IRouting(cfg.num_interests, cfg.routing_iterations, cfg.routing_stddev,
                                  cfg.adaptive_interests, cfg.routing_seed, name="routing")
        widths = (*cfg.interest_units, cfg.item_dim)
        self.interest_layers = [keras.layers.Dense(u, activation="relu", name=f"interest_{i}")
                                for i, u in enumerate(widths)]
        self.label_attention = LabelAwareAttention(cfg.attention_power, name="label_aware_attention")
        self.mlp = MLP(cfg.mlp_units, cfg.activation, name="mlp")

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so `load_model` can build without data.
        dim = self.config.item_dim
        self.item_embedding.build()
        self.routing.build((None, None, dim))
        width = dim
        for layer in self.interest_layers:
            layer.build((None, None, width))
            width = layer.units
        self.mlp.build((None, 2 * dim))
        self.built = True

    def interests(self, history: Any, hist_mask: Any, training: bool = False) -> tuple[Any, Any]:
        """Interest vectors `[B, K, d]` (capsules through the H layers; inactive ones 0) and the
        active-capsule mask `[B, K]`."""
        capsules, active = self.routing(history, hist_mask, training=training)
        for layer in self.interest_layers:
            capsules = layer(capsules)
        return capsules * ops.cast(active, capsules.dtype)[..., None], active

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        history, target = self.embed_items(inputs)
        interests, active = self.interests(history, inputs["hist_mask"], training=training)
        user, _ = self.label_attention(interests, target, active)
        logits = self.mlp(ops.concatenate([user, target], axis=-1), training=training)
        return ops.cast(logits, "float32")
