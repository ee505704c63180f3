"""YouTube-DNN, the baseline of UTPM, adapted to user-tag profiling.

Covington, Adams and Sargin, RecSys 2016 (https://doi.org/10.1145/2959100.2959190), as
UTPM (Yan et al., CIKM 2020, https://doi.org/10.1145/3340531.3412719) runs it:

* Each user field (history tags, genres, demographics) is embedded with its own table and
  averaged over its real ids, as Covington averages the embeddings of a variable-length bag
  of sparse ids (Section 3.2, Figure 3).
* The field vectors are concatenated and go through a tower of fully connected ReLU layers
  (Section 3.2; depths and widths in Section 3.5) to the user vector `u ∈ R^U`.
* Tags are scored by `u · t_i` against the output tag table and articles by the joint form
  of UTPM eq. 4; both live in `TagModel`.

UTPM replaces the averaging with attention over the ids and adds a cross-feature layer; it
reuses everything else here through `TagModel` and `UserFieldEmbedding`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
from keras import ops

from trainer.tags.models.tag_model import TagModel, TagModelConfig, UserFieldEmbedding

__all__ = ["ML1M_USER_FIELDS", "YouTubeDNN", "YouTubeDNNConfig", "YouTubeDNNUserEncoder", "masked_mean"]

ML1M_USER_FIELDS = ("gender", "age", "occupation")
"""The single-valued demographic fields of ml-1m's `users.dat`."""


@dataclasses.dataclass
class YouTubeDNNConfig(TagModelConfig):
    """Hyper-parameters of YouTube-DNN as UTPM's baseline.

    The defaults are UTPM Table 1's MovieLens column where it has a value (`E`, `U`); what
    the paper leaves open is chosen and argued below.
    """

    embedding_dim: int = 16
    """Width `E` of every field's embedding (UTPM Table 1, MovieLens: 16)."""

    hidden_units: tuple[int, ...] = (64, 32)
    """Widths of the ReLU layers between the concatenated field vectors and `u`. Neither
    paper gives them for MovieLens: Covington's tower halves its width at each layer
    (1024 -> 512 -> 256 = the user vector); the same shape ending at `U = 16` is 64 -> 32 ->
    16."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # UTPM's MovieLens protocol: ml-1m users (demographics) with their history's tags
        # and genres.
        "paper": {"fields": ("tags", "categories", *ML1M_USER_FIELDS)},
        # Table 1's widths are already small; tests shorten the tower only.
        "tiny": {"hidden_units": (32,)},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden_units = tuple(int(u) for u in self.hidden_units)


def masked_mean(vectors: Any, ids: Any) -> Any:
    """Mean of `vectors` `[B, H, E]` over the positions where `ids` `[B, H]` is not padding.

    A row without real ids averages to the zero vector (not NaN), so a user with an empty
    history still gets a finite user vector from the other fields.
    """
    real = ops.expand_dims(ops.not_equal(ids, 0), -1)
    total = ops.sum(ops.where(real, vectors, 0.0), axis=1)
    count = ops.sum(ops.cast(real, vectors.dtype), axis=1)
    return total / ops.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="usermodel")
class YouTubeDNNUserEncoder(keras.layers.Layer):
    """User fields `{f: ids [B, H_f]}` -> user vector `u` `[B, U]`.

    Per field: embedding (own table, width `E`) and mean over the real ids; the field
    vectors are concatenated (in `field_sizes` order) and passed through `hidden_units` ReLU
    layers and a linear projection to `U`.

    The last layer is linear although Covington's tower is ReLU throughout: `u` is only ever
    used in inner products with the tag table, and a ReLU output would confine it to the
    positive orthant (a unit that dies is lost for every tag) for no gain.

    Args:
        field_sizes: dict. Embedding rows per field, in input order.
        embedding_dim: int. Width `E` of the field embeddings.
        hidden_units: sequence of int. Widths of the ReLU layers.
        user_dim: int. Width `U` of the output.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: dict with an int tensor `[B, H_f]` per field, 0-padded.
        training: bool (no dropout; kept for the `TagModel` interface).

    References:
        - [Covington, Adams and Sargin, 2016. Deep Neural Networks for YouTube
          Recommendations, RecSys](https://doi.org/10.1145/2959100.2959190), Sections 3.2
          (averaged embeddings of sparse ids, ReLU tower, Figure 3) and 3.5 (tower depth).
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), Section 4 (YouTube-DNN baseline).
    """

    def __init__(
        self,
        field_sizes: dict[str, int],
        embedding_dim: int,
        hidden_units: tuple[int, ...] | list[int],
        user_dim: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.field_sizes = {str(k): int(v) for k, v in field_sizes.items()}
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.user_dim = int(user_dim)
        self.embedding = UserFieldEmbedding(self.field_sizes, self.embedding_dim, name="field_embedding")
        self.hidden = [
            keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.projection = keras.layers.Dense(self.user_dim, name="user_projection")

    def build(self, input_shape: Any = None) -> None:
        self.embedding.build()
        width = len(self.field_sizes) * self.embedding_dim
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        self.projection.build((None, width))
        self.built = True

    def call(self, features: dict[str, Any], training: bool = False) -> Any:
        vectors = self.embedding(features)
        pooled = [masked_mean(vectors[f], features[f]) for f in self.field_sizes]
        x = pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return self.projection(x)

    def compute_output_shape(self, input_shape: dict[str, Any]) -> tuple[int | None, ...]:
        first = next(iter(self.field_sizes))
        return (input_shape[first][0], self.user_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "field_sizes": dict(self.field_sizes),
                "embedding_dim": self.embedding_dim,
                "hidden_units": list(self.hidden_units),
                "user_dim": self.user_dim,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class YouTubeDNN(TagModel):
    """YouTube-DNN for user-tag profiling (UTPM's baseline): mean-pooled fields + ReLU tower.

    Inputs `user_<f>` `[B, H_f]` for each field of the config and `article_tags` `[B, N]`;
    returns click logits `[B]`. See `TagModel` for the scoring, the loss and the serving
    helpers (`user_embedding`, `tag_scores`, `top_tags`).

    The input `tags` field has its own table, separate from the output tag table (the `t_i`
    of UTPM eq. 4), although both are indexed by tag id. The input table says what a user's
    history is made of and feeds a nonlinear tower; the output table is the classifier of
    the multi-label view, read directly by `u · t_i`. Sharing would tie `E` to `U` and give
    the `tags` field a treatment no other field gets, and UTPM's variants must stay
    comparable with this baseline field for field; two tables cost `num_tags * (E + U)`
    floats, small next to the data.

    Args:
        config: a `YouTubeDNNConfig` (or its `to_dict()`); `field_sizes` (for every field)
            and `num_tags` must be set.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    config = YouTubeDNNConfig.preset(
        "tiny", field_sizes={"tags": 1000, "categories": 20}, num_tags=1000)
    model = YouTubeDNN(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit({"user_tags": ..., "user_categories": ..., "article_tags": ...}, y=clicked)
    ids, scores = model.top_tags({"user_tags": ..., "user_categories": ...}, k=10)
    ```

    References:
        - [Covington, Adams and Sargin, 2016. Deep Neural Networks for YouTube
          Recommendations, RecSys](https://doi.org/10.1145/2959100.2959190).
        - [Yan et al., 2020. Learning to Build User-tag Profile in Recommendation System,
          CIKM](https://doi.org/10.1145/3340531.3412719), eq. (4) and Table 1.
    """

    config_class: ClassVar[type[YouTubeDNNConfig]] = YouTubeDNNConfig

    def __init__(self, config: YouTubeDNNConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        config = self.config
        self.user_encoder = YouTubeDNNUserEncoder(
            field_sizes={f: config.field_sizes[f] for f in config.fields},
            embedding_dim=config.embedding_dim,
            hidden_units=config.hidden_units,
            user_dim=config.user_dim,
            name="user_encoder",
        )
