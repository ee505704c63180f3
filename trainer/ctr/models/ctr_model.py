"""The CTR family's base model, its input contract, and the layers its models share.

Every CTR model maps a user's clicked items and one target item to a click logit; the exporter
applies the sigmoid (pCTR). Training is pointwise binary cross-entropy on (history, target,
click) rows (MFN, Xie et al. 2021, eq. 12; DIN, Zhou et al. 2018, Section 4.2).

Input dict (B = batch, H = history slots, C = categories per item, L = title words per item):

| key                 | shape       | dtype   | meaning                                        |
|---------------------|-------------|---------|------------------------------------------------|
| `hist_item`         | `[B, H]`    | int32   | clicked item ids                               |
| `hist_categories`   | `[B, H, C]` | int32   | their categories, padded with 0                |
| `hist_words`        | `[B, H, L]` | int32   | their title words, padded with 0               |
| `hist_mask`         | `[B, H]`    | float32 | 1.0 for a real click, 0.0 for a padded slot    |
| `target_item`       | `[B]`       | int32   | the target item                                |
| `target_categories` | `[B, C]`    | int32   | its categories                                 |
| `target_words`      | `[B, L]`    | int32   | its title words                                |

Ids: 0 is padding (masked everywhere), 1 the unknown id (an ordinary, trained embedding row),
real ids start at 2. A model reads only the item fields of `config.item_fields` (`words` only
when `vocab_size > 0`, e.g. not for Taobao); keys of other fields may be absent.

Shared here: `ItemEmbedding` (one table per field), `Dice` and `MLP` (DIN's activation and
prediction tower, reused by later models) and `CTRModel` (on `trainer/model_base.py`). Only
`keras` / `keras.ops` are used, so the models run under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import keras
from keras import ops

from trainer.config_base import ModelConfig
from trainer.model_base import ConfiguredModel, sigmoid_cross_entropy

__all__ = [
    "ACTIVATIONS",
    "CTRConfig",
    "CTRModel",
    "Dice",
    "ItemEmbedding",
    "MLP",
]

ACTIVATIONS = ("dice", "prelu")
"""Hidden-layer activations of the MLPs (DIN Section 5.2)."""

_FIELDS = ("item", "categories", "words")
_MULTI_VALUED = ("categories", "words")


@dataclasses.dataclass
class CTRConfig(ModelConfig):
    """Fields every CTR model has: the sizes the trainer fills, the embedding width and the MLP.

    Model configs subclass it and set their own defaults and `PRESETS`.
    """

    num_items: int = 0
    """Rows of the item table (0 = padding, 1 = unknown item); filled in by the trainer."""

    num_categories: int = 0
    """Rows of the category table (0 = padding, 1 = unknown); filled in by the trainer."""

    vocab_size: int = 0
    """Rows of the title-word table (0 = padding, 1 = unknown); 0 means the data has no words
    (Taobao) and the model does not read the `words` field. Filled in by the trainer."""

    embedding_dim: int = 64
    """Width of each field's embedding; the item vector concatenates the fields, so it is
    `embedding_dim * len(item_fields)` wide. Neither paper states the width used on the public
    datasets; 64 per field is what the DIN authors' released Amazon code uses (item and category
    vectors of 64, 128 together)."""

    mlp_units: tuple[int, ...] = (200, 80)
    """Hidden layers of the prediction MLP (DIN Fig. 2: 200-80, then the output)."""

    activation: str = "prelu"
    """Hidden-layer activation, `"prelu"` or `"dice"` (DIN Section 5.2)."""

    item_l2: float = 0.0
    """Mini-batch aware regularization of the item-id table (DIN Section 5.1, eq. 5): each
    step adds `item_l2 * sum ||w_i||^2` over the item-id rows that occur in the batch (history
    or target; padding excluded), each row once, instead of L2 on the whole table. The paper's
    per-row `1 / n_i` frequency factor is folded into `item_l2` (all rows weighted alike).
    0 turns it off. On the `demo` data DIN needs it: docs/ctr.md, "Why DIN trails its Base"."""

    def __post_init__(self) -> None:
        self.item_l2 = float(self.item_l2)
        if self.item_l2 < 0:
            raise ValueError(f"item_l2 must be >= 0, got {self.item_l2}.")
        # A JSON round trip (saved .keras configs, TFX custom_config) turns tuples into lists.
        self.mlp_units = tuple(int(u) for u in self.mlp_units)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        if not self.mlp_units or min(self.mlp_units) <= 0:
            raise ValueError(f"mlp_units must be positive layer widths, got {self.mlp_units}.")

    @property
    def item_fields(self) -> tuple[str, ...]:
        """The item fields the model reads: `words` only when there is a word vocabulary."""
        return _FIELDS if self.vocab_size > 0 else _FIELDS[:2]

    @property
    def item_dim(self) -> int:
        """Width of an item vector (all fields concatenated)."""
        return self.embedding_dim * len(self.item_fields)

    def check_sizes(self) -> None:
        """Raises unless the trainer has filled in the table sizes.

        Each table needs padding, unknown and at least one real id (>= 3 rows); `vocab_size`
        may also be 0 (no words).
        """
        sizes = {"num_items": self.num_items, "num_categories": self.num_categories}
        if self.vocab_size:
            sizes["vocab_size"] = self.vocab_size
        small = {name: size for name, size in sizes.items() if size < 3}
        if small:
            raise ValueError(
                f"{type(self).__name__} sizes must be set (>= 3: padding, unknown and at least one "
                f"real id; vocab_size may be 0 for no words), got {small}."
            )


@keras.saving.register_keras_serializable(package="usermodel")
class ItemEmbedding(keras.layers.Layer):
    """Item fields → item vectors: one embedding table per field, fields concatenated.

    `item` is one id per item; `categories` and `words` are multi-valued and mean-pooled over
    their real ids (id != 0), so an item's vector does not depend on how much padding its
    lists carry, and an all-padding list (or item id 0) gives a zero part. Id 1 (unknown) is an
    ordinary trained row. This is the embedding and pooling layer of the Embedding&MLP
    paradigm (DIN Section 4.2, "average pooling" of multi-hot groups).

    Args:
        num_items: int. Rows of the item table.
        num_categories: int. Rows of the category table.
        vocab_size: int. Rows of the word table; 0 for none (then `words` is not read).
        embedding_dim: int. Width of each field's vectors.
        embeddings_initializer: initializer of all tables.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        fields: dict with `"item"` int `[...]`, `"categories"` int `[..., C]` and, when
            `vocab_size > 0`, `"words"` int `[..., L]` (any common leading shape).

    Returns:
        Float tensor `[..., embedding_dim * number of fields]`, fields in the order
        item, categories, words.

    References:
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978), Section 4.2 (embedding and pooling layers).
    """

    def __init__(
        self,
        num_items: int,
        num_categories: int,
        vocab_size: int = 0,
        embedding_dim: int = 64,
        embeddings_initializer: str | keras.initializers.Initializer = "uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_items = int(num_items)
        self.num_categories = int(num_categories)
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        sizes = {"item": self.num_items, "categories": self.num_categories, "words": self.vocab_size}
        self.fields = tuple(f for f in _FIELDS if sizes[f] > 0)
        self.tables = {
            f: keras.layers.Embedding(
                sizes[f], self.embedding_dim, embeddings_initializer=self.embeddings_initializer, name=f"{f}_embedding"
            )
            for f in self.fields
        }

    @property
    def output_dim(self) -> int:
        return self.embedding_dim * len(self.fields)

    def build(self, input_shape: Any = None) -> None:
        for table in self.tables.values():
            table.build((None,))
        self.built = True

    def call(self, fields: dict[str, Any]) -> Any:
        parts = []
        for name in self.fields:
            ids = ops.cast(fields[name], "int32")
            vectors = self.tables[name](ids)
            real = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), vectors.dtype), -1)
            if name in _MULTI_VALUED:
                count = ops.maximum(ops.sum(real, axis=-2), 1.0)
                parts.append(ops.sum(vectors * real, axis=-2) / count)
            else:
                parts.append(vectors * real)
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: dict[str, tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return (*input_shape["item"], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_items": self.num_items,
                "num_categories": self.num_categories,
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class Dice(keras.layers.Layer):
    """Dice, DIN's data-adaptive activation: `f(s) = p(s) * s + (1 - p(s)) * alpha * s`.

    PReLU is the special case `p(s) = 1[s > 0]`, a hard switch at 0. Dice moves and smooths the
    switch with the input distribution: `p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps))`, with
    the statistics of the mini-batch in training and their moving averages at inference (an
    unscaled, uncentred batch normalization), and `alpha` learned per unit.

    Inputs are `[N, units]`; `mask` `[N]` excludes rows (padded history slots) from the batch
    statistics, so padding never shifts the activation of real rows.

    Args:
        epsilon: float. The `eps` above (paper: 1e-8).
        momentum: float. Momentum of the moving mean and variance.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[N, units]`.
        mask: optional `[N]`, nonzero for rows that count in the batch statistics.
        training: bool; batch statistics (and moving-average updates) when true.

    References:
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978), Section 5.2, eqs. (8)-(9).
    """

    def __init__(self, epsilon: float = 1e-8, momentum: float = 0.99, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.normalize = keras.layers.BatchNormalization(
            epsilon=self.epsilon, momentum=self.momentum, center=False, scale=False, name="statistics"
        )
        self.supports_masking = True  # consumes `mask`; outputs have none

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.normalize.build(input_shape)
        self.alpha = self.add_weight(name="alpha", shape=(input_shape[-1],), initializer="zeros")
        self.built = True

    def call(self, inputs: Any, mask: Any | None = None, training: bool = False) -> Any:
        p = ops.sigmoid(self.normalize(inputs, training=training, mask=mask))
        return p * inputs + (1.0 - p) * ops.cast(self.alpha, inputs.dtype) * inputs

    def compute_mask(self, inputs: Any, mask: Any | None = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "momentum": self.momentum})
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class MLP(keras.layers.Layer):
    """Fully connected tower with PReLU or Dice hidden layers and one linear output per row.

    DIN uses this shape twice: as the prediction tower (Fig. 2, 200-80-output) and inside the
    local activation unit (Fig. 3, one hidden layer of 36). With Dice, `mask` keeps padded rows
    out of the batch statistics (see `Dice`); PReLU has one slope per unit.

    Args:
        units: sequence of hidden-layer widths.
        activation: `"prelu"` or `"dice"`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[N, features]`.
        mask: optional `[N]`, nonzero for real rows (used by Dice only).
        training: bool.

    Returns:
        Float `[N]`: one linear output per row.

    References:
        - [Zhou et al., 2018. Deep Interest Network for Click-Through Rate Prediction, KDD](
          https://arxiv.org/abs/1706.06978), Figs. 2-3 and Section 5.2.
    """

    def __init__(self, units: Sequence[int], activation: str = "prelu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        self.units = tuple(int(u) for u in units)
        self.activation = activation
        self.hidden = [keras.layers.Dense(u, name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.activations = [
            Dice(name=f"dice_{i}") if activation == "dice" else keras.layers.PReLU(name=f"prelu_{i}")
            for i in range(len(self.units))
        ]
        self.output_layer = keras.layers.Dense(1, name="output")
        self.supports_masking = True  # consumes `mask`; outputs have none

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        width = input_shape[-1]
        for dense, activation in zip(self.hidden, self.activations):
            dense.build((None, width))
            width = dense.units
            activation.build((None, width))
        self.output_layer.build((None, width))
        self.built = True

    def call(self, inputs: Any, mask: Any | None = None, training: bool = False) -> Any:
        x = inputs
        for dense, activation in zip(self.hidden, self.activations):
            x = dense(x)
            x = activation(x, mask=mask, training=training) if isinstance(activation, Dice) else activation(x)
        return ops.squeeze(self.output_layer(x), axis=-1)

    def compute_mask(self, inputs: Any, mask: Any | None = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape[:-1]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"units": list(self.units), "activation": self.activation})
        return config


class CTRModel(ConfiguredModel):
    """Base class of the CTR models: item embedding, input contract, loss and serialization.

    A subclass sets `config_class` and builds its layers after `super().__init__`; its `call`
    takes the input dict of the module docstring and returns logits `[B]` (float32). It gets:

    * `item_embedding`: an `ItemEmbedding` over the fields of `item_fields`;
    * `embed_items(inputs)`: history `[B, H, D]` and target `[B, D]` vectors from one call of
      the item embedding (history and target share every table, so one lookup batch);
    * `compute_loss`: `sigmoid_cross_entropy` plus the layers' losses, the TFRS pattern (the
      loss lives in the model, so `fit` needs no loss argument); a `loss` given to `compile`
      takes precedence;
    * `get_config` / `from_config` through the config dataclass.

    Args:
        config: an instance of `config_class`, its `to_dict()`, or None for the defaults (which
            have no table sizes, so in practice always pass one with the sizes filled in).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    References:
        - [Xie et al., 2021. Multiple Interest and Fine Granularity Network for User Modeling](
          https://arxiv.org/abs/2112.02591), eq. (12) (pointwise cross-entropy).
        - TensorFlow Recommenders' `tfrs.Model` (loss computed by the model).
    """

    config_class: ClassVar[type[CTRConfig]] = CTRConfig

    def __init__(self, config: CTRConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        config = self.config
        config.check_sizes()
        self.item_embedding = ItemEmbedding(
            num_items=config.num_items,
            num_categories=config.num_categories,
            vocab_size=config.vocab_size,
            embedding_dim=config.embedding_dim,
            name="item_embedding",
        )

    @property
    def item_fields(self) -> tuple[str, ...]:
        """The item fields this model reads (`hist_<f>` and `target_<f>` keys)."""
        return self.config.item_fields

    def embed_items(self, inputs: dict[str, Any]) -> tuple[Any, Any]:
        """History and target item vectors from one item-embedding call.

        Each field's target ids are appended to its history as slot `H`, the `[B, H + 1, ...]`
        block is embedded at once and split again.

        Args:
            inputs: the model's input dict (keys `hist_<f>`, `target_<f>` for `item_fields`).

        Returns:
            `(history [B, H, D], target [B, D])`. Padded history slots are not zeroed here
            (their ids may be anything); models mask them with `hist_mask`.
        """
        fields = {
            f: ops.concatenate(
                [ops.cast(inputs[f"hist_{f}"], "int32"), ops.expand_dims(ops.cast(inputs[f"target_{f}"], "int32"), 1)],
                axis=1,
            )
            for f in self.item_fields
        }
        vectors = self.item_embedding(fields)
        return vectors[:, :-1], vectors[:, -1]

    def batch_item_l2(self, inputs: dict[str, Any]) -> Any:
        """`sum ||w_i||^2` over the distinct item-id rows of the batch (padding row 0 excluded):
        DIN's mini-batch aware regularizer (Section 5.1) on the item table."""
        table = self.item_embedding.tables["item"].embeddings
        rows = table.shape[0]
        ids = ops.concatenate(
            [ops.reshape(ops.cast(inputs[key], "int32"), (-1,)) for key in ("hist_item", "target_item")]
        )
        present = ops.minimum(ops.bincount(ids, minlength=rows), 1)[:rows]
        present = ops.cast(present, "float32") * ops.cast(ops.arange(rows) > 0, "float32")
        return ops.sum(present * ops.sum(ops.square(ops.cast(table, "float32")), axis=-1))

    def paper_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """Binary cross-entropy of the logits against the clicks (MFN eq. 12), plus DIN's
        mini-batch aware L2 on the item-id rows of the batch when `config.item_l2 > 0`."""
        loss = sigmoid_cross_entropy(y, y_pred, sample_weight)
        if self.config.item_l2:
            loss = loss + self.config.item_l2 * self.batch_item_l2(x)
        return loss
