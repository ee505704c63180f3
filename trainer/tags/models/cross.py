"""UTPM's cross-feature layer (eq. 3) and the alternatives its Table 3 compares it with.

Every layer here maps the fused vector `x ∈ R^D` of the attention fusion to
`[x / ‖x‖ ; interactions(x)]`: the L2-normalised linear part of UTPM eq. 3 is kept and only the
interaction part changes, so Table 3's rows differ in nothing but the way features are crossed.

*What is crossed.* UTPM's CF (eq. 3) treats each of the D dimensions of `x` as a feature with
value `x_i` and latent vector `v_i ∈ R^C` (an FM over the dimensions). The alternatives cross
the same D features, each embedded as the row `e_i = x_i v_i` (the FM embedding of a feature of
value `x_i`), which is how AFM, NFM and AutoInt read a real-valued feature; DCN crosses `x`
itself, as its cross network does with the stacked input vector.

| `cross` | layer | interactions |
|---|---|---|
| `fm` | `CrossFeatures` | `c_ij = (v_iᵀ v_j) x_i x_j`, i > j: D(D−1)/2 values (UTPM eq. 3) |
| `afm` | `AttentionalFM` | `Σ a_ij (e_i ⊙ e_j)`, attention over the pairs: C values (AFM eqs. 4-6) |
| `nfm` | `NeuralFM` | `ReLU(W f_BI + b)`, `f_BI = Σ e_i ⊙ e_j`: `units` values (NFM eqs. 3-5) |
| `dcn` | `DeepCross` | `x_L` of L keras-rs `FeatureCross` layers (DCN-v2 eq. 1): D values |
| `autoint` | `AutoIntCross` | L interacting layers over the rows, flattened: D·heads·C values (AutoInt eqs. 5-8) |

Only `keras` / `keras.ops` are used (keras-rs' `FeatureCross` too), so the layers run under
TensorFlow and JAX.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops
from keras_rs.layers import FeatureCross

__all__ = [
    "CROSS_LAYERS",
    "AttentionalFM",
    "AutoIntCross",
    "CrossFeatures",
    "CrossLayer",
    "DeepCross",
    "NeuralFM",
    "make_cross",
    "pair_indices",
]


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every pair i > j, row by row: keras-rs `DotInteraction`'s order."""
    rows, cols = np.tril_indices(n, k=-1)
    return rows.astype("int32"), cols.astype("int32")


class CrossLayer(keras.layers.Layer):
    """Base: `call(x) = [x / ‖x‖ ; interactions(x)]`; subclasses define `interactions` and
    `interaction_dim` (its width for an input of width D, so the encoder builds without data)."""

    def interactions(self, x: Any) -> Any:
        raise NotImplementedError

    def interaction_dim(self, input_dim: int) -> int:
        raise NotImplementedError

    def output_dim(self, input_dim: int) -> int:
        return input_dim + self.interaction_dim(input_dim)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.output_dim(int(input_shape[-1])))

    def call(self, x: Any) -> Any:
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
        return ops.concatenate([x / ops.maximum(norm, 1e-12), self.interactions(x)], axis=-1)


class _LatentRows(CrossLayer):
    """A cross layer with a latent vector `v_i ∈ R^C` per input dimension (FM, AFM, NFM, AutoInt)."""

    def __init__(self, latent_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.latent = self.add_weight(name="latent", shape=(int(input_shape[-1]), self.latent_dim),
                                      initializer="glorot_uniform")
        self.built = True

    def rows(self, x: Any) -> Any:
        """The feature rows `e_i = x_i v_i`, `[B, D, C]`."""
        return ops.expand_dims(x, -1) * ops.expand_dims(ops.cast(self.latent, x.dtype), 0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "latent_dim": self.latent_dim}


@keras.saving.register_keras_serializable(package="usermodel")
class CrossFeatures(_LatentRows):
    """UTPM eq. 3: `[x / ‖x‖ ; c]` with `c_ij = (v_iᵀ v_j) x_i x_j` over the pairs of x's dimensions.

    The pairs are kept as a dense vector (not summed as in an FM), in keras-rs
    `DotInteraction`'s order (its lower triangle, row by row): `c_ij` is the dot product of the
    rows `x_i v_i` and `x_j v_j`.

    Args:
        latent_dim: C, width of each dimension's latent vector `v_i`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x: float `[B, D]`.

    Returns:
        Float `[B, D + D(D−1)/2]`.

    References:
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), Section 3.2, eq. (3).
    """

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        super().build(input_shape)
        self._rows, self._cols = pair_indices(int(input_shape[-1]))

    def interaction_dim(self, input_dim: int) -> int:
        return input_dim * (input_dim - 1) // 2

    def pairs(self, x: Any) -> Any:
        """`c` alone, `[B, D(D−1)/2]` (keras-rs `DotInteraction` order)."""
        rows = self.rows(x)
        gram = ops.matmul(rows, ops.transpose(rows, (0, 2, 1)))  # [B, D, D]
        flat = ops.reshape(gram, (-1, gram.shape[1] * gram.shape[2]))
        return ops.take(flat, ops.convert_to_tensor(self._rows * gram.shape[2] + self._cols), axis=1)

    def interactions(self, x: Any) -> Any:
        return self.pairs(x)


@keras.saving.register_keras_serializable(package="usermodel")
class AttentionalFM(_LatentRows):
    """AFM's attention-based pooling over the pairwise products of the feature rows.

    With `p_ij = e_i ⊙ e_j` (`e_i = x_i v_i`, i > j): `a'_ij = hᵀ ReLU(W p_ij + b)` (eq. 4),
    `a_ij = softmax_ij(a'_ij)` over all pairs (eq. 5), interactions `Σ a_ij p_ij ∈ R^C` (eq. 6
    before its projection `pᵀ`: the dense layers after the cross layer take that role, as they
    take the sum's role for UTPM's dense `c`).

    Args:
        latent_dim: C.
        attention_dim: t, width of the attention network (AFM's attention factor).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x: float `[B, D]`.

    Returns:
        Float `[B, D + C]`.

    References:
        - [Xiao et al., 2017. Attentional Factorization Machines, IJCAI](https://arxiv.org/abs/1708.04617),
          eqs. (4)-(6).
    """

    def __init__(self, latent_dim: int, attention_dim: int, **kwargs: Any) -> None:
        super().__init__(latent_dim, **kwargs)
        self.attention_dim = int(attention_dim)
        self.attention = keras.layers.Dense(self.attention_dim, activation="relu", name="attention")
        self.projection = keras.layers.Dense(1, use_bias=False, name="h")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        super().build(input_shape)
        self._rows, self._cols = pair_indices(int(input_shape[-1]))
        self.attention.build((None, None, self.latent_dim))
        self.projection.build((None, None, self.attention_dim))

    def interaction_dim(self, input_dim: int) -> int:
        return self.latent_dim

    def pair_weights(self, x: Any) -> tuple[Any, Any]:
        """The products `p_ij` `[B, P, C]` and their weights `a_ij` `[B, P]`, P = D(D−1)/2 pairs
        in `pair_indices` order."""
        rows = self.rows(x)
        products = ops.take(rows, self._rows, axis=1) * ops.take(rows, self._cols, axis=1)
        return products, ops.softmax(ops.squeeze(self.projection(self.attention(products)), -1), axis=-1)

    def interactions(self, x: Any) -> Any:
        products, weights = self.pair_weights(x)
        return ops.sum(products * ops.expand_dims(weights, -1), axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "attention_dim": self.attention_dim}


@keras.saving.register_keras_serializable(package="usermodel")
class NeuralFM(_LatentRows):
    """NFM's bi-interaction pooling and its hidden layer.

    `f_BI = Σ_{i<j} e_i ⊙ e_j` (eq. 3), computed in linear time as
    `½ [(Σ_i e_i)² − Σ_i e_i²]` (eq. 4), then one hidden layer `ReLU(W f_BI + b)` (eq. 5; one
    layer is what NFM found best).

    Args:
        latent_dim: C.
        units: width of the hidden layer.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x: float `[B, D]`.

    Returns:
        Float `[B, D + units]`.

    References:
        - [He and Chua, 2017. Neural Factorization Machines for Sparse Predictive Analytics,
          SIGIR](https://arxiv.org/abs/1708.05027), eqs. (3)-(5).
    """

    def __init__(self, latent_dim: int, units: int, **kwargs: Any) -> None:
        super().__init__(latent_dim, **kwargs)
        self.units = int(units)
        self.hidden = keras.layers.Dense(self.units, activation="relu", name="hidden")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        super().build(input_shape)
        self.hidden.build((None, self.latent_dim))

    def interaction_dim(self, input_dim: int) -> int:
        return self.units

    def bi_interaction(self, x: Any) -> Any:
        """`f_BI` `[B, C]` (eq. 4)."""
        rows = self.rows(x)
        return 0.5 * (ops.square(ops.sum(rows, axis=1)) - ops.sum(ops.square(rows), axis=1))

    def interactions(self, x: Any) -> Any:
        return self.hidden(self.bi_interaction(x))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="usermodel")
class DeepCross(CrossLayer):
    """DCN's cross network: L keras-rs `FeatureCross` layers, `x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l`.

    keras-rs' `FeatureCross` with `projection_dim=None` has a full-rank `W_l ∈ R^{D×D}`: this
    is **DCN-v2**'s cross layer (Wang et al. 2021, eq. 1), not DCN-v1's rank-one
    `x_0 x_lᵀ w_l + b_l + x_l`; `diag_scale` stays 0, so the layer is eq. 1 exactly.

    Args:
        depth: L, cross layers.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x: float `[B, D]`.

    Returns:
        Float `[B, 2D]`: `[x / ‖x‖ ; x_L]`.

    References:
        - [Wang et al., 2021. DCN V2: Improved Deep & Cross Network and Practical Lessons for
          Web-scale Learning to Rank Systems, WWW](https://arxiv.org/abs/2008.13535), eq. (1).
    """

    def __init__(self, depth: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.layers_ = [FeatureCross(name=f"cross_{i}") for i in range(self.depth)]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape = (None, int(input_shape[-1]))
        for layer in self.layers_:
            layer.build(shape)
            # FeatureCross creates its Dense in `build` but builds it on the first call; build it
            # now so a saved model restores its weights without data.
            layer.dense.build(shape)
        self.built = True

    def interaction_dim(self, input_dim: int) -> int:
        return input_dim

    def interactions(self, x: Any) -> Any:
        crossed = x
        for layer in self.layers_:
            crossed = layer(x, crossed)
        return crossed

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth": self.depth}


@keras.saving.register_keras_serializable(package="usermodel")
class AutoIntCross(_LatentRows):
    """AutoInt's interacting layers (multi-head self-attention with residual) over the rows `e_i`.

    Per head h: `α_ik = softmax_k(⟨W_Q e_i, W_K e_k⟩)` (eq. 5), `ẽ_i = Σ_k α_ik W_V e_k` (eq. 6),
    the heads concatenated (eq. 7) and the residual `ReLU(ẽ_i + W_Res e_i)` (eq. 8); L layers
    stacked, the last one's rows flattened (AutoInt's output layer reads them concatenated).

    Args:
        latent_dim: C, width of `e_i` and of each head.
        heads: attention heads per layer.
        depth: L, interacting layers.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x: float `[B, D]`.

    Returns:
        Float `[B, D + D·heads·C]`.

    References:
        - [Song et al., 2019. AutoInt: Automatic Feature Interaction Learning via Self-Attentive
          Neural Networks, CIKM](https://arxiv.org/abs/1810.11921), eqs. (5)-(8).
    """

    def __init__(self, latent_dim: int, heads: int, depth: int, **kwargs: Any) -> None:
        super().__init__(latent_dim, **kwargs)
        self.heads, self.depth = int(heads), int(depth)
        width = self.heads * self.latent_dim
        self.projections = [
            {p: keras.layers.Dense(width, use_bias=False, name=f"l{i}_{p}") for p in ("query", "key", "value", "residual")}
            for i in range(self.depth)
        ]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        super().build(input_shape)
        width = self.latent_dim
        for layer in self.projections:
            for dense in layer.values():
                dense.build((None, None, width))
            width = self.heads * self.latent_dim

    def interaction_dim(self, input_dim: int) -> int:
        return input_dim * self.heads * self.latent_dim

    def _split(self, t: Any) -> Any:
        """`[B, D, heads·C]` → `[B, heads, D, C]`."""
        return ops.transpose(ops.reshape(t, (-1, t.shape[1], self.heads, self.latent_dim)), (0, 2, 1, 3))

    def interactions(self, x: Any) -> Any:
        rows = self.rows(x)
        for layer in self.projections:
            q, k, v = (self._split(layer[p](rows)) for p in ("query", "key", "value"))
            weights = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), axis=-1)  # [B, h, D, D]
            attended = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))  # [B, D, h, C]
            attended = ops.reshape(attended, (-1, rows.shape[1], self.heads * self.latent_dim))
            rows = ops.relu(attended + layer["residual"](rows))
        return ops.reshape(rows, (-1, rows.shape[1] * rows.shape[2]))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "heads": self.heads, "depth": self.depth}


CROSS_LAYERS = ("none", "fm", "afm", "nfm", "dcn", "autoint")
"""Values of `UTPMConfig.cross`: no cross layer, UTPM's CF, and Table 3's alternatives."""

AUTOINT_HEADS = 2
"""AutoInt's heads per interacting layer (its paper's setting)."""


def make_cross(kind: str, latent_dim: int, attention_dim: int, depth: int, units: int) -> CrossLayer | None:
    """The cross layer `kind` (one of `CROSS_LAYERS`), or None for `none`.

    Args:
        kind: `none`, `fm`, `afm`, `nfm`, `dcn` or `autoint`.
        latent_dim: C (FM, AFM, NFM, AutoInt).
        attention_dim: AFM's attention width.
        depth: DCN's cross layers and AutoInt's interacting layers.
        units: NFM's hidden width.
    """
    if kind == "none":
        return None
    if kind == "fm":
        return CrossFeatures(latent_dim, name="cross_features")
    if kind == "afm":
        return AttentionalFM(latent_dim, attention_dim, name="afm")
    if kind == "nfm":
        return NeuralFM(latent_dim, units, name="nfm")
    if kind == "dcn":
        return DeepCross(depth, name="dcn")
    if kind == "autoint":
        return AutoIntCross(latent_dim, AUTOINT_HEADS, depth, name="autoint")
    raise ValueError(f"cross must be one of {CROSS_LAYERS}, got {kind!r}.")
