"""The tag-profiling family's model skeleton: user fields -> user vector `u` -> tag preferences.

UTPM (Yan et al., CIKM 2020) and its YouTube-DNN baseline share one shape: a *user encoder*
maps the user's sparse fields to `u ∈ R^U`, and an *output tag table* holds one vector
`t_i ∈ R^U` per tag, so a user's preference for tag `i` is `u · t_i` (UTPM Section 3.1, the
multi-label view of user-tag profiling). Training sees no tag labels, only clicked and
un-clicked articles with a few tags each; the joint form of UTPM eq. 4 scores an article by
the sum of its tags' preferences, `logit = Σ_i u · t_i`, `y = sigmoid(logit)`. `TagModel` fixes
the input contract, that score, its loss and the serving helpers; a subclass only builds
`user_encoder`.

Input dict (for each name `f` in `config.fields`):

| key            | shape      | meaning                                                   |
|----------------|------------|-----------------------------------------------------------|
| `user_<f>`     | `[B, H_f]` | int ids of field `f`, 0-padded (`H_f = 1` if single-valued) |
| `article_tags` | `[B, N]`   | int ids of the scored article's tags, 0-padded            |

Ids: 0 is padding (masked everywhere), 1 is the unknown id (an ordinary embedding row that
rare or unseen values share), real ids are `>= 2`. Only `keras` / `keras.ops` are used, so the
models run under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.config_base import ModelConfig
from trainer.layers.attention import large_negative
from trainer.model_base import ConfiguredModel, sigmoid_cross_entropy

__all__ = [
    "FIRST_REAL_ID",
    "TagModel",
    "TagModelConfig",
    "UserFieldEmbedding",
]

FIRST_REAL_ID = 2
"""Ids below this are padding (0) and unknown (1)."""


@dataclasses.dataclass
class TagModelConfig(ModelConfig):
    """What every tag model's config has: the input contract and the output tag table.

    Model configs (`YouTubeDNNConfig`, UTPM's) subclass this and add their own
    hyper-parameters; the trainer fills `field_sizes` and `num_tags` from the Transform
    vocabularies.
    """

    fields: tuple[str, ...] = ("tags", "categories")
    """User fields the model reads, as inputs `user_<f>`. MovieLens: the user's history tags
    and genres, plus the ml-1m demographics `gender`, `age`, `occupation` where a preset
    says so."""

    field_sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    """Embedding rows per field (0 = padding, 1 = unknown, real ids `>= 2`); filled by the
    trainer."""

    num_tags: int = 0
    """Rows of the output tag table, ids as in the `tags` field; filled by the trainer."""

    user_dim: int = 16
    """Width `U` of the user vector `u` and of the tag vectors `t_i` (UTPM Table 1,
    MovieLens: 16)."""

    def __post_init__(self) -> None:
        # JSON (TFX custom_config, saved Keras configs) turns tuples into lists.
        self.fields = tuple(self.fields)
        self.field_sizes = {str(k): int(v) for k, v in self.field_sizes.items()}

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values["field_sizes"] = dict(self.field_sizes)  # a copy: the dict is mutable
        return values

    def check_sizes(self) -> None:
        """Raises `ValueError` unless every field and the tag table have a real id.

        Called by the model, not at construction: the trainer builds the config before it
        knows the vocabularies.
        """
        if not self.fields or len(set(self.fields)) != len(self.fields):
            raise ValueError(f"fields must be distinct and non-empty, got {self.fields}.")
        small = {
            f: self.field_sizes.get(f, 0)
            for f in self.fields
            if self.field_sizes.get(f, 0) <= FIRST_REAL_ID
        }
        if small:
            raise ValueError(
                f"field_sizes must give every field at least {FIRST_REAL_ID + 1} rows "
                f"(padding, unknown, one real id); got {small} for fields {self.fields}."
            )
        if self.num_tags <= FIRST_REAL_ID:
            raise ValueError(f"num_tags must be >= {FIRST_REAL_ID + 1}, got {self.num_tags}.")


@keras.saving.register_keras_serializable(package="usermodel")
class UserFieldEmbedding(keras.layers.Layer):
    """One embedding table per user field: `{f: ids [B, H_f]}` -> `{f: vectors [B, H_f, E]}`.

    Each field has its own table (UTPM Section 3.2, the feature input layer: the `i`-th id of
    field `k` is looked up as `e_{k,i} ∈ R^E`); padded positions are looked up like any id,
    and consumers mask them with `ids != 0`.

    Args:
        field_sizes: dict. Rows per field, in the order the model reads the fields.
        embedding_dim: int. Width `E` of every table.
        embeddings_initializer: initializer of the tables.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: dict with an int tensor `[B, H_f]` per field of `field_sizes` (extra keys
            are ignored).

    Returns:
        A dict of float tensors `[B, H_f, E]`, one per field.

    References:
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), Section 3.2.
    """

    def __init__(
        self,
        field_sizes: dict[str, int],
        embedding_dim: int,
        embeddings_initializer: str | keras.initializers.Initializer = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.field_sizes = {str(k): int(v) for k, v in field_sizes.items()}
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.tables = {
            field: keras.layers.Embedding(
                size,
                self.embedding_dim,
                embeddings_initializer=self.embeddings_initializer,
                name=f"{field}_embedding",
            )
            for field, size in self.field_sizes.items()
        }

    def build(self, input_shape: Any = None) -> None:
        for table in self.tables.values():
            table.build((None, None))
        self.built = True

    def call(self, features: dict[str, Any]) -> dict[str, Any]:
        return {field: table(features[field]) for field, table in self.tables.items()}

    def compute_output_shape(self, input_shape: dict[str, Any]) -> dict[str, tuple[int | None, ...]]:
        return {f: (*input_shape[f], self.embedding_dim) for f in self.field_sizes}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "field_sizes": dict(self.field_sizes),
                "embedding_dim": self.embedding_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config


class TagModel(ConfiguredModel):
    """Base class: user encoder + output tag table, scored by the joint form of UTPM eq. 4.

    A subclass sets `config_class` and, in `__init__` after `super().__init__`, the layer
    `self.user_encoder`: called as `user_encoder({f: ids [B, H_f]}, training=...)` it returns
    user vectors `[B, U]`. This class owns the output tag table `self.tag_table`
    (`[num_tags, U]`, the `t_i` of eq. 4), the article score, the loss and the serving helpers:

    * `call`: `logit = Σ_i u · t_i` over the article's real tags (padding adds 0), float32
      `[B]`; the click probability is `sigmoid(logit)`.
    * `compute_loss`: binary cross-entropy with logits against clicks `y ∈ {0, 1}` `[B]`, plus
      the layers' `losses` (the TFRS pattern: the loss lives in the model, so `fit` and
      `evaluate` need no custom loop). A `loss` given to `compile` takes precedence.
    * `user_embedding(inputs)` -> `[B, U]`, `tag_scores(u)` -> `[B, num_tags]` and
      `top_tags(inputs, k)` -> ids and scores `[B, k]`, best first: the `user_tags` serving
      signature. Padding and unknown tags score a large negative and never rank.

    Scores are float32 under any dtype policy, so rankings have no bfloat16 ties.

    Args:
        config: an instance of `config_class` (or its `to_dict()`); `field_sizes` and
            `num_tags` must be set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    References:
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), Sections 3.1 (tagging as
          multi-label classification), 3.3, eq. (4) (joint probability of an article's
          tags) and 3.4, eq. (5) (Prec@K of the top tags).
        - TensorFlow Recommenders' `tfrs.Model` (loss computed by the model).
    """

    #: The config dataclass of the subclass (a `TagModelConfig`).
    config_class: ClassVar[type[TagModelConfig]] = TagModelConfig

    user_encoder: keras.layers.Layer

    def __init__(self, config: TagModelConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        config = self.config
        config.check_sizes()
        self.tag_table = keras.layers.Embedding(config.num_tags, config.user_dim, name="tag_table")

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so `load_model` builds without data.
        self.user_encoder.build({f: (None, None) for f in self.config.fields})
        self.tag_table.build((None, None))
        self.built = True

    def _ensure_built(self) -> None:
        # The serving helpers bypass `__call__`, which would otherwise build the model; a
        # sub-layer built on its own would then refuse the model's later `build`.
        if not self.built:
            self.build()

    # ------------------------------------------------------------------ parts
    def user_embedding(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """User vectors `u`, float32 `[B, U]`, from the `user_<f>` inputs (other keys ignored)."""
        self._ensure_built()
        features = {f: inputs[f"user_{f}"] for f in self.config.fields}
        return ops.cast(self.user_encoder(features, training=training), "float32")

    def tag_logits(self, user_embedding: Any, article_tags: Any) -> Any:
        """`u · t_i` for each tag of each article, float32 `[B, N]`; padding gives 0.

        Args:
            user_embedding: float `[B, U]`.
            article_tags: int `[B, N]`, 0-padded.
        """
        tags = ops.cast(self.tag_table(article_tags), "float32")  # [B, N, U]
        per_tag = ops.squeeze(ops.matmul(tags, ops.expand_dims(user_embedding, -1)), -1)
        return ops.where(ops.not_equal(article_tags, 0), per_tag, 0.0)

    def article_logits(self, user_embedding: Any, article_tags: Any) -> Any:
        """`Σ_i u · t_i` over each article's real tags (UTPM eq. 4, joint form), float32 `[B]`.

        Args:
            user_embedding: float `[B, U]`.
            article_tags: int `[B, N]`, 0-padded; an article without real tags scores 0.
        """
        return ops.sum(self.tag_logits(user_embedding, article_tags), axis=-1)

    def tag_scores(self, user_embedding: Any) -> Any:
        """Preferences `u · t_i` for every tag, float32 `[B, num_tags]`.

        Padding (0) and unknown (1) are not tags a user can be profiled with: they score a
        large negative, so they never rank above a real tag.
        """
        self._ensure_built()
        table = ops.cast(self.tag_table.embeddings, "float32")
        scores = ops.matmul(ops.cast(user_embedding, "float32"), ops.transpose(table))
        real = ops.greater_equal(ops.arange(self.config.num_tags), FIRST_REAL_ID)
        return ops.where(ops.expand_dims(real, 0), scores, large_negative("float32"))

    def top_tags(self, inputs: dict[str, Any], k: int) -> tuple[Any, Any]:
        """The user's `k` best real tags: ids int32 `[B, k]` and scores float32 `[B, k]`.

        Args:
            inputs: dict with the `user_<f>` inputs.
            k: how many tags, `1 <= k <= num_tags - 2` (there are no more real tags).

        Returns:
            `(ids, scores)`, best first.
        """
        return self.top_of(self.tag_scores(self.user_embedding(inputs)), k)

    def top_of(self, tag_scores: Any, k: int) -> tuple[Any, Any]:
        """`top_tags` of already computed `tag_scores` `[B, num_tags]` (serving reuses them)."""
        real_tags = self.config.num_tags - FIRST_REAL_ID
        if not 1 <= k <= real_tags:
            raise ValueError(f"k must be in [1, {real_tags}] (the real tags), got {k}.")
        scores, ids = ops.top_k(tag_scores, k, sorted=True)
        return ops.cast(ids, "int32"), scores

    # ---------------------------------------------------------------- keras
    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """Click logits `[B]` of the articles `article_tags` for the users `user_<f>`."""
        return self.article_logits(self.user_embedding(inputs, training), inputs["article_tags"])

    def paper_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """Binary cross-entropy of the article logits against the clicks (UTPM eq. 4)."""
        return sigmoid_cross_entropy(y, y_pred, sample_weight)
