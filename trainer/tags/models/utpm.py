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
  triangle, row by row); a test checks both and a direct double loop. `cross` swaps it for
  Table 3's alternatives (AFM, NFM, DCN, AutoInt) or drops it (`trainer/tags/models/cross.py`).
* **Two fully connected layers** → `u ∈ R^U` (ReLU then linear, like YouTube-DNN's last layer).
* **Loss**: the joint loss of eq. 4 (`TagModel`: the article's logit is `Σ_i u · t_i`), or the
  `separate` loss Table 4 compares it with: every tag of an article is a sample of its own,
  `BCE(y, u · t_i)`.

Fields without a real id (a user with no history tags) get a zero field vector and no weight
in the cross-field attention; a user with no real id in any field gets `x = 0`.

Only `keras` / `keras.ops` are used, so the model runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.layers.attention import large_negative
from trainer.tags.models.cross import CROSS_LAYERS, CrossFeatures, make_cross
from trainer.tags.models.tag_model import TagModel, TagModelConfig, UserFieldEmbedding

__all__ = ["AttentionFusion", "CrossFeatures", "LOSSES", "UTPM", "UTPMConfig", "UTPMUserEncoder"]

HEAD_MERGES = ("sum", "concat")
LOSSES = ("joint", "separate")


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
    cross: str = "fm"
    """The cross layer after the fusion: `fm` (UTPM's CF, eq. 3, Table 3's "+CF"), Table 3's
    alternatives `afm`, `nfm`, `dcn` (keras-rs FeatureCross: DCN-v2), `autoint`, or `none`
    (`trainer/tags/models/cross.py`). Saved configs of older runs hold a bool: True is `fm`,
    False `none`."""
    cross_dim: int = 4
    """C, width of the latent vectors `v_i` of the cross layer (FM, AFM, NFM, AutoInt)."""
    cross_depth: int = 2
    """DCN's cross layers and AutoInt's interacting layers (not in the paper: 2, the smallest
    stack that crosses beyond second order)."""
    loss: str = "joint"
    """`joint` (eq. 4: the article's logit is `Σ_i u · t_i`) or `separate` (each tag of an
    article is its own sample with the article's label; Table 4's comparison)."""
    hidden_units: int = 32
    """Width of the first fully connected layer (the second outputs `u`); not in Table 1:
    twice U, between the fused features and U."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"fields": ("tags", "categories", "gender", "age", "occupation")},
        "tiny": {"hidden_units": 16},
        # Table 1's industrial column (WeChat "Top Stories") could not be read from any source
        # reachable here (docs/tags.md); this preset holds only what the paper states of the
        # deployed model: the full UTPM (2 heads with shared queries, the CF layer, the joint
        # loss). Sizes stay at the MovieLens column until the industrial values are confirmed.
        "industrial": {"heads": 2, "shared_query": True, "cross": "fm", "loss": "joint"},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.cross, bool):  # configs saved before `cross` named the layer
            self.cross = "fm" if self.cross else "none"
        if self.head_merge not in HEAD_MERGES:
            raise ValueError(f"head_merge must be one of {HEAD_MERGES}, got {self.head_merge!r}.")
        if self.cross not in CROSS_LAYERS:
            raise ValueError(f"cross must be one of {CROSS_LAYERS}, got {self.cross!r}.")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        if min(self.embedding_dim, self.attention_dim, self.heads, self.cross_dim, self.cross_depth,
               self.hidden_units) < 1:
            raise ValueError("embedding_dim, attention_dim, heads, cross_dim, cross_depth and hidden_units "
                             "must be >= 1.")

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
        self.cross = make_cross(cfg.cross, cfg.cross_dim, cfg.attention_dim, cfg.cross_depth, cfg.fused_dim)
        self.hidden = keras.layers.Dense(cfg.hidden_units, activation="relu", name="hidden")
        self.projection = keras.layers.Dense(cfg.user_dim, name="user_projection")

    def build(self, input_shape: Any = None) -> None:
        cfg = self.config
        self.embedding.build()
        self.fusion.build({f: (None, None, cfg.embedding_dim) for f in cfg.fields})
        width = cfg.fused_dim
        if self.cross is not None:
            self.cross.build((None, width))
            width = self.cross.output_dim(width)
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
    joint loss of eq. 4 (or the separate loss, `config.loss`).

    References:
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), Section 3, eqs. (1)-(4), Tables 1-5.
    """

    config_class: ClassVar[type[UTPMConfig]] = UTPMConfig

    def __init__(self, config: UTPMConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(config, UTPMConfig) and type(config) is not UTPMConfig:
            # A Table 2-3 variant (utpm_variants.py) is UTPMConfig with other defaults: keep its
            # values as a plain UTPMConfig, which is what a saved model reloads as.
            config = UTPMConfig.from_dict(config.to_dict())
        super().__init__(config, **kwargs)
        self.user_encoder = UTPMUserEncoder(self.config, name="user_encoder")

    def attention_weights(self, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """What the attention fusion weighs, per head (the paper's Fig. 3 and Table 5).

        Args:
            inputs: dict with the `user_<f>` inputs, int `[B, H_f]` (other keys ignored).

        Returns:
            One dict per head: for each field `f`, float `[B, H_f]`, its weights over its ids
            (eq. 1; padding 0, a field's real ids sum to 1); and `"fields"`, float `[B, F]`,
            the weights over the fields in `config.fields` order (eq. 2; a field without a
            real id 0).
        """
        self._ensure_built()
        return self.user_encoder.fuse({f: inputs[f"user_{f}"] for f in self.config.fields})[1]

    def paper_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """The joint loss of eq. 4 (BCE of `Σ_i u · t_i`), or with `loss="separate"` the mean
        BCE of every real tag of every article against the article's label, as if each tag
        were a sample of its own (Table 4's "separate"; an article with three tags counts
        three times).

        The separate loss needs each tag's logit, which `y_pred` (the article's sum) no
        longer holds, so it runs the user encoder again on `x`: the only cost of keeping one
        `call` for both losses and for evaluation.
        """
        if self.config.loss == "joint":
            return super().paper_loss(x, y, y_pred, sample_weight)
        tags = x["article_tags"]
        z = self.tag_logits(self.user_embedding(x), tags)  # [B, N]
        labels = ops.expand_dims(ops.reshape(ops.cast(y, "float32"), (-1,)), -1)
        per_tag = ops.maximum(z, 0.0) - z * labels + ops.log1p(ops.exp(-ops.abs(z)))
        weights = ops.cast(ops.not_equal(tags, 0), "float32")
        count = ops.maximum(ops.sum(weights), 1.0)
        if sample_weight is not None:
            weights = weights * ops.expand_dims(ops.reshape(ops.cast(sample_weight, "float32"), (-1,)), -1)
        return ops.sum(per_tag * weights) / count
