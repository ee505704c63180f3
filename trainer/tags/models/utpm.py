"""UTPM: User-Tag Profiling Model (Yan, Chen, Huo, Zhang, Lin; CIKM 2020).

The user encoder, on `TagModel`'s scoring (u · t_i) and joint loss (eq. 4):

* **Feature input layer** (Section 3.2): each user field (history tags, genres, demographics)
  has its own table of width `E`; at most `H` ids per field; padding (id 0) is masked.
* **Attention fusion** (eqs. 1-2): inside field `k`, `α_i = softmax_i(qᵀ relu(W_kᵀ e_i + b_k))`
  and the field vector is `Σ_i α_i e_i`; then the same mechanism over the field vectors (its
  own `W`, `b`) gives one vector per head. Each head has **one query `q` shared by every
  attention unit** of the head (inside every field and across fields); `shared_query=False`
  gives each unit its own query (Table 2's "AF-1head-unshared"). Heads are **added**, so the
  fused vector `x` keeps width `E` and the cross layer below has `E(E−1)/2` pairs, as the paper
  counts them (`head_merge="concat"` is the alternative, width `M·E`).
* **Cross-feature layer** (eq. 3): FM-style pairs of the fused vector's dimensions,
  `c_ij = (v_iᵀ v_j) x_i x_j` for `i < j`, kept as a dense vector (not summed as in an FM), with
  `v_i ∈ R^C`, next to the L2-normalised linear part `x / ‖x‖`. The pairs are the dot products of
  the rows `x_i v_i`, which keras-rs' `DotInteraction` computes too (same order: its lower
  triangle, row by row); a test checks both and a direct double loop.
* **Two fully connected layers** → `u ∈ R^U` (ReLU then linear, like YouTube-DNN's last layer).

Fields without a real id (a user with no history tags) get a zero field vector and no weight
in the cross-field attention; a user with no real id in any field gets `x = 0`.

Only `keras` / `keras.ops` are used, so the model runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from trainer.layers.attention import large_negative
from trainer.tags.models.tag_model import TagModel, TagModelConfig, UserFieldEmbedding

__all__ = ["AttentionFusion", "CrossFeatures", "UTPM", "UTPMConfig", "UTPMUserEncoder"]

HEAD_MERGES = ("sum", "concat")


@dataclasses.dataclass
class UTPMConfig(TagModelConfig):
    """UTPM's hyper-parameters; defaults are Table 1's MovieLens column (E 16, T 8, M 2, C 4,
    U 16; H and N are the Transform's, K the serving cut-off)."""

    embedding_dim: int = 16
    """E, width of every field embedding."""
    attention_dim: int = 8
    """T, width of the attention units' hidden layer (`W_k ∈ R^{E×T}`, `q ∈ R^T`)."""
    heads: int = 2
    """M, attention heads."""
    shared_query: bool = True
    """One query per head for all its attention units (UTPM); False: one per unit."""
    head_merge: str = "sum"
    """How heads combine: `sum` (width E) or `concat` (width M·E)."""
    cross: bool = True
    """Use the cross-feature layer (Table 3's "+CF")."""
    cross_dim: int = 4
    """C, width of the latent vectors `v_i` of the cross layer."""
    hidden_units: int = 32
    """Width of the first fully connected layer (the second outputs `u`); not in Table 1:
    twice U, between the fused features and U."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"fields": ("tags", "categories", "gender", "age", "occupation")},
        "tiny": {"hidden_units": 16},
        "af_1head_unshared": {"heads": 1, "shared_query": False, "cross": False},
        "af_1head": {"heads": 1, "cross": False},
        "af_2head": {"heads": 2, "cross": False},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head_merge not in HEAD_MERGES:
            raise ValueError(f"head_merge must be one of {HEAD_MERGES}, got {self.head_merge!r}.")
        if min(self.embedding_dim, self.attention_dim, self.heads, self.cross_dim, self.hidden_units) < 1:
            raise ValueError("embedding_dim, attention_dim, heads, cross_dim and hidden_units must be >= 1.")

    @property
    def fused_dim(self) -> int:
        return self.embedding_dim * (self.heads if self.head_merge == "concat" else 1)


def _attend(query: Any, unit: keras.layers.Layer, vectors: Any, real: Any) -> Any:
    """`Σ_i softmax_i(qᵀ unit(v_i)) v_i` over the real rows: `[B, n, E]`, `[B, n]` → `[B, E]`."""
    if vectors.shape[1] == 1:  # a single-valued field (gender): its one id, if real, has weight 1
        weights = ops.cast(real, vectors.dtype)
        return vectors[:, 0] * weights, weights
    scores = ops.squeeze(ops.matmul(unit(vectors), ops.expand_dims(query, -1)), -1)
    scores = ops.where(real, scores, large_negative(scores.dtype))
    weights = ops.softmax(scores, axis=-1) * ops.cast(real, scores.dtype)
    return ops.sum(vectors * ops.expand_dims(weights, -1), axis=1), weights


@keras.saving.register_keras_serializable(package="usermodel")
class AttentionFusion(keras.layers.Layer):
    """Attention fusion of eqs. 1-2: per head, attention inside each field, then across fields.

    Args:
        fields: field names, in input order.
        heads: M.
        attention_dim: T.
        shared_query: one query per head for all its units; else one per unit.
        head_merge: `sum` or `concat`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        vectors: dict field → `[B, H_f, E]`.
        ids: dict field → `[B, H_f]` (0 = padding).

    Returns:
        `(x [B, E or M·E], weights)`: `weights[h]` holds, for head `h`, each field's weights
        over its ids and `"fields"`, the weights over the fields (the paper's Table 5).
    """

    def __init__(self, fields: tuple[str, ...], heads: int, attention_dim: int, shared_query: bool = True,
                 head_merge: str = "sum", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields, self.heads, self.attention_dim = tuple(fields), int(heads), int(attention_dim)
        self.shared_query, self.head_merge = bool(shared_query), head_merge
        units = (*self.fields, "fields")
        self.units = [{u: keras.layers.Dense(self.attention_dim, activation="relu", name=f"h{h}_{u}") for u in units}
                      for h in range(self.heads)]

    def build(self, input_shape: Any = None) -> None:
        dim = input_shape[self.fields[0]][-1] if input_shape else None
        queries = 1 if self.shared_query else len(self.fields) + 1
        self.queries = self.add_weight(name="queries", shape=(self.heads, queries, self.attention_dim),
                                       initializer="glorot_uniform")
        for head in self.units:
            for layer in head.values():
                layer.build((None, None, dim))
        self.built = True

    def _query(self, head: int, unit: int) -> Any:
        return self.queries[head, 0 if self.shared_query else unit]

    def call(self, vectors: dict[str, Any], ids: dict[str, Any]) -> Any:
        outputs, weights = [], []
        for h, units in enumerate(self.units):
            field_vectors, field_real, head_weights = [], [], {}
            for k, field in enumerate(self.fields):
                real = ops.not_equal(ids[field], 0)
                vector, head_weights[field] = _attend(self._query(h, k), units[field], vectors[field], real)
                field_vectors.append(vector)
                field_real.append(ops.any(real, axis=-1))
            stacked = ops.stack(field_vectors, axis=1)  # [B, fields, E]
            fused, head_weights["fields"] = _attend(self._query(h, len(self.fields)), units["fields"], stacked,
                                                    ops.stack(field_real, axis=1))
            outputs.append(fused)
            weights.append(head_weights)
        if len(outputs) == 1:
            return outputs[0], weights
        merged = ops.concatenate(outputs, -1) if self.head_merge == "concat" else ops.sum(ops.stack(outputs), 0)
        return merged, weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fields": list(self.fields), "heads": self.heads,
                "attention_dim": self.attention_dim, "shared_query": self.shared_query, "head_merge": self.head_merge}


def pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every pair i > j, row by row: keras-rs `DotInteraction`'s order."""
    rows, cols = np.tril_indices(n, k=-1)
    return rows.astype("int32"), cols.astype("int32")


@keras.saving.register_keras_serializable(package="usermodel")
class CrossFeatures(keras.layers.Layer):
    """Eq. 3: `[x / ‖x‖ ; c]` with `c_ij = (v_iᵀ v_j) x_i x_j` over the pairs of x's dimensions.

    Args:
        latent_dim: C, width of each dimension's latent vector `v_i`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        x: float `[B, D]`.

    Returns:
        Float `[B, D + D(D−1)/2]`.
    """

    def __init__(self, latent_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = int(input_shape[-1])
        self.latent = self.add_weight(name="latent", shape=(dim, self.latent_dim), initializer="glorot_uniform")
        self._rows, self._cols = pair_indices(dim)
        self.built = True

    def pairs(self, x: Any) -> Any:
        """`c` alone, `[B, D(D−1)/2]` (keras-rs `DotInteraction` order)."""
        rows = ops.expand_dims(x, -1) * ops.expand_dims(ops.cast(self.latent, x.dtype), 0)  # [B, D, C]
        gram = ops.matmul(rows, ops.transpose(rows, (0, 2, 1)))  # [B, D, D]
        flat = ops.reshape(gram, (-1, gram.shape[1] * gram.shape[2]))
        return ops.take(flat, ops.convert_to_tensor(self._rows * gram.shape[2] + self._cols), axis=1)

    def call(self, x: Any) -> Any:
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
        return ops.concatenate([x / ops.maximum(norm, 1e-12), self.pairs(x)], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "latent_dim": self.latent_dim}


@keras.saving.register_keras_serializable(package="usermodel")
class UTPMUserEncoder(keras.layers.Layer):
    """Fields → embeddings → attention fusion → (cross features) → two dense layers → `u`."""

    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = UTPMConfig.from_dict(config) if isinstance(config, dict) else config
        cfg = self.config
        self.embedding = UserFieldEmbedding({f: cfg.field_sizes[f] for f in cfg.fields}, cfg.embedding_dim,
                                            name="field_embedding")
        self.fusion = AttentionFusion(cfg.fields, cfg.heads, cfg.attention_dim, cfg.shared_query, cfg.head_merge,
                                      name="attention_fusion")
        self.cross = CrossFeatures(cfg.cross_dim, name="cross_features") if cfg.cross else None
        self.hidden = keras.layers.Dense(cfg.hidden_units, activation="relu", name="hidden")
        self.projection = keras.layers.Dense(cfg.user_dim, name="user_projection")

    def build(self, input_shape: Any = None) -> None:
        cfg = self.config
        self.embedding.build()
        self.fusion.build({f: (None, None, cfg.embedding_dim) for f in cfg.fields})
        width = cfg.fused_dim
        if self.cross is not None:
            self.cross.build((None, width))
            width += width * (width - 1) // 2
        self.hidden.build((None, width))
        self.projection.build((None, cfg.hidden_units))
        self.built = True

    def fuse(self, features: dict[str, Any]) -> Any:
        """The fused vector `x` and the attention weights (for explanations)."""
        ids = {f: features[f] for f in self.config.fields}
        return self.fusion(self.embedding(ids), ids)

    def call(self, features: dict[str, Any], training: bool = False) -> Any:
        x, _ = self.fuse(features)
        if self.cross is not None:
            x = self.cross(x)
        return self.projection(self.hidden(x))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": self.config.to_dict()}


@keras.saving.register_keras_serializable(package="usermodel")
class UTPM(TagModel):
    """UTPM (Yan et al., CIKM 2020) on `TagModel`: attention fusion, cross features, `u · t_i`,
    joint loss of eq. 4.

    References:
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), Section 3, eqs. (1)-(4), Table 1.
    """

    config_class: ClassVar[type[UTPMConfig]] = UTPMConfig

    def __init__(self, config: UTPMConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.user_encoder = UTPMUserEncoder(self.config, name="user_encoder")
