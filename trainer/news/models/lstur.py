"""LSTUR: Neural News Recommendation with Long- and Short-term User Representations.

An, Wu, Wu, Zhang, Liu and Xie, ACL 2019 (https://aclanthology.org/P19-1033/).

* News encoder (Section 3.1): title words -> dropout -> CNN (eq. 1) ->
  dropout -> additive word attention (eqs. 2-3); the topic (category) and
  sub-topic (sub-category) embeddings are concatenated to the title vector.
* Long-term user representation (Section 3.2): a user-id embedding `u_l`,
  randomly masked (set to zero) with probability `p` during training so the
  model also works for users without one; here also for unknown users (index
  1) and padding (index 0), which have no trained embedding.
* Short-term user representation (Section 3.2): a GRU over the clicked news
  vectors (eqs. 4-7), its last hidden state `u_s`.
* Combination (Section 3.3): LSTUR-ini uses `u_l` as the GRU's initial state
  and `u = u_s`; LSTUR-con concatenates `u = [u_l ; u_s]`.
* Click predictor and loss (Section 3.4): `y = u^T r`, softmax over one click
  and K negatives (`NewsRankingModel`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from trainer.config_base import ModelConfig
from trainer.layers.attention import AdditiveAttentionPooling
from trainer.layers.embedding import WordEmbedding
from trainer.news.models.news_ranking import NewsRankingModel

__all__ = ["LSTUR", "LSTURConfig", "LSTURNewsEncoder", "LSTURUserEncoder"]

COMBINE_MODES = ("ini", "con")


@dataclasses.dataclass
class LSTURConfig(ModelConfig):
    """Hyper-parameters of LSTUR; defaults follow the paper (Section 4.1)."""

    vocab_size: int = 0
    """Word-embedding rows (0 = padding, 1 = unknown); filled in by the
    trainer."""

    num_categories: int = 0
    """Topic-embedding rows; filled in by the trainer."""

    num_subcategories: int = 0
    """Sub-topic-embedding rows; filled in by the trainer."""

    num_users: int = 0
    """User-embedding rows (0 = padding, 1 = unknown user); filled in by the
    trainer."""

    embedding_dim: int = 300
    """Word-embedding width (paper: 300-d GloVe)."""

    num_filters: int = 300
    """CNN filters of the title encoder (paper: 300)."""

    window_size: int = 3
    """CNN window (paper: 3)."""

    category_dim: int = 100
    """Topic and sub-topic embedding width (paper: 100); news vectors are
    `num_filters + 2 * category_dim` wide."""

    attention_hidden_dim: int = 200
    """Query size of the word attention."""

    combine: str = "ini"
    """`"ini"` (LSTUR-ini, the paper's better variant) or `"con"`."""

    user_mask_prob: float = 0.5
    """Probability `p` of masking the long-term representation in training
    (paper: 0.5)."""

    dropout: float = 0.2
    """Dropout on word embeddings and CNN outputs (paper: 20%)."""

    embedding_initializer: str = "uniform"
    """Keras initializer name of the word embeddings."""

    pretrained_embeddings: np.ndarray | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    """Optional `[vocab_size, embedding_dim]` matrix copied into the word
    table at build time. Not serialized."""

    train_embeddings: bool = True
    """Whether the word embeddings are fine-tuned."""

    seed: int | None = None
    """Seed of dropout and of the long-term mask."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {
            "embedding_dim": 32,
            "num_filters": 16,
            "category_dim": 8,
            "attention_hidden_dim": 16,
            "dropout": 0.1,
        },
    }

    def __post_init__(self) -> None:
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {self.combine!r}.")
        if not 0.0 <= self.user_mask_prob <= 1.0:
            raise ValueError(f"user_mask_prob must be in [0, 1], got {self.user_mask_prob}.")
        if self.combine == "con" and self.news_dim % 2:
            raise ValueError("LSTUR-con splits the news width in two halves: make it even.")
        self._check_pretrained_embeddings()

    @property
    def news_dim(self) -> int:
        """Width of news and user vectors, `num_filters + 2 * category_dim`."""
        return self.num_filters + 2 * self.category_dim


@keras.saving.register_keras_serializable(package="usermodel")
class LSTURNewsEncoder(keras.layers.Layer):
    """LSTUR news encoder: `[title CNN+attention ; topic ; sub-topic]`.

    Args:
        vocab_size: int. Word-embedding rows.
        num_categories: int. Topic rows.
        num_subcategories: int. Sub-topic rows.
        embedding_dim: int. Word-embedding width.
        num_filters: int. CNN filters.
        window_size: int. CNN window.
        category_dim: int. Topic / sub-topic width.
        attention_hidden_dim: int. Word-attention query size.
        dropout: float. Dropout rate.
        embedding_initializer: word-embedding initializer.
        train_embeddings: bool. Whether the word table is trainable.
        pretrained_embeddings: optional matrix copied in at build time.
        seed: optional dropout seed.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        news: dict with `title` `[N, L]`, `category` `[N]`, `subcategory`
            `[N]` (int ids, 0 = padding).
        training: bool, enables dropout.

    References:
        - [An et al., 2019. LSTUR, ACL](https://aclanthology.org/P19-1033/),
          Section 3.1, eqs. (1)-(3).
    """

    def __init__(
        self,
        vocab_size: int,
        num_categories: int,
        num_subcategories: int,
        embedding_dim: int = 300,
        num_filters: int = 300,
        window_size: int = 3,
        category_dim: int = 100,
        attention_hidden_dim: int = 200,
        dropout: float = 0.2,
        embedding_initializer: str | keras.initializers.Initializer = "uniform",
        train_embeddings: bool = True,
        pretrained_embeddings: np.ndarray | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.num_categories = int(num_categories)
        self.num_subcategories = int(num_subcategories)
        self.embedding_dim = int(embedding_dim)
        self.num_filters = int(num_filters)
        self.window_size = int(window_size)
        self.category_dim = int(category_dim)
        self.attention_hidden_dim = int(attention_hidden_dim)
        self.dropout = float(dropout)
        self.embedding_initializer = keras.initializers.get(embedding_initializer)
        self.train_embeddings = bool(train_embeddings)
        self.seed = seed
        self.word_embedding = WordEmbedding(
            self.vocab_size, self.embedding_dim, pretrained=pretrained_embeddings,
            embeddings_initializer=self.embedding_initializer,
            trainable=self.train_embeddings, name="word_embedding",
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, seed=seed)
        self.cnn = keras.layers.Conv1D(
            self.num_filters, self.window_size, padding="same", activation="relu", name="cnn"
        )
        self.pooling = AdditiveAttentionPooling(self.attention_hidden_dim, name="word_attention")
        self.category_embedding = keras.layers.Embedding(
            self.num_categories, self.category_dim, name="topic_embedding"
        )
        self.subcategory_embedding = keras.layers.Embedding(
            self.num_subcategories, self.category_dim, name="subtopic_embedding"
        )

    @property
    def output_dim(self) -> int:
        """Width of the news vectors."""
        return self.num_filters + 2 * self.category_dim

    def build(self, input_shape: Any = None) -> None:
        self.word_embedding.build((None, None))
        self.cnn.build((None, None, self.embedding_dim))
        self.pooling.build((None, None, self.num_filters))
        self.category_embedding.build((None,))
        self.subcategory_embedding.build((None,))
        self.built = True

    def call(self, news: dict[str, Any], training: bool = False) -> Any:
        tokens = news["title"]
        mask = ops.not_equal(tokens, 0)
        x = self.dropout_layer(self.word_embedding(tokens), training=training)
        # Zero padded positions first, so the CNN windows at a title's end see
        # zeros, whatever the embedding of token 0 is.
        x = x * ops.cast(mask, x.dtype)[..., None]
        x = self.dropout_layer(self.cnn(x), training=training)  # eq. 1
        title = self.pooling(x, mask=mask)  # eqs. 2-3
        return ops.concatenate(
            [
                title,
                self.category_embedding(news["category"]),
                self.subcategory_embedding(news["subcategory"]),
            ],
            axis=-1,
        )

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return (input_shape["title"][0], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "num_categories": self.num_categories,
                "num_subcategories": self.num_subcategories,
                "embedding_dim": self.embedding_dim,
                "num_filters": self.num_filters,
                "window_size": self.window_size,
                "category_dim": self.category_dim,
                "attention_hidden_dim": self.attention_hidden_dim,
                "dropout": self.dropout,
                "embedding_initializer": keras.initializers.serialize(
                    self.embedding_initializer
                ),
                "train_embeddings": self.train_embeddings,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class LSTURUserEncoder(keras.layers.Layer):
    """LSTUR user encoder: long-term embedding + GRU over the clicks.

    Args:
        num_users: int. User-embedding rows (0 = padding, 1 = unknown).
        news_dim: int. Width of the news vectors and of the output.
        combine: `"ini"` or `"con"` (Section 3.3).
        user_mask_prob: float. Training-time masking probability of `u_l`.
        seed: optional seed of the mask.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: dict with `news_vectors` `[B, H, D]`, `mask` `[B, H]` and
            `user_index` `[B]`.
        training: bool, enables the random long-term mask.

    Returns:
        A tensor `[B, news_dim]`.

    References:
        - [An et al., 2019. LSTUR, ACL](https://aclanthology.org/P19-1033/),
          Sections 3.2-3.3, eqs. (4)-(7).
    """

    def __init__(
        self,
        num_users: int,
        news_dim: int,
        combine: str = "ini",
        user_mask_prob: float = 0.5,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {combine!r}.")
        self.num_users = int(num_users)
        self.news_dim = int(news_dim)
        self.combine = combine
        self.user_mask_prob = float(user_mask_prob)
        self.seed = seed
        half = self.news_dim // 2
        long_dim = self.news_dim if combine == "ini" else half
        self.gru_units = self.news_dim if combine == "ini" else self.news_dim - half
        self.user_embedding = keras.layers.Embedding(
            self.num_users, long_dim, name="user_embedding"
        )
        self.gru = keras.layers.GRU(self.gru_units, name="gru")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any = None) -> None:
        self.user_embedding.build((None,))
        self.gru.build((None, None, self.news_dim))
        self.built = True

    def long_term(self, user_index: Any, training: bool = False) -> Any:
        """`u_l` `[B, d]`; zero for unknown/padding users and, in training,
        with probability `user_mask_prob`."""
        user_index = ops.cast(user_index, "int32")
        keep = ops.greater_equal(user_index, 2)
        if training and self.user_mask_prob > 0:
            draw = keras.random.uniform(ops.shape(user_index), seed=self.seed_generator)
            keep = ops.logical_and(keep, ops.greater_equal(draw, self.user_mask_prob))
        vectors = self.user_embedding(user_index)
        return vectors * ops.cast(keep, vectors.dtype)[:, None]

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        long_term = self.long_term(inputs["user_index"], training=training)
        mask = ops.cast(inputs["mask"], "bool")
        if self.combine == "ini":
            return self.gru(
                inputs["news_vectors"], mask=mask, initial_state=[long_term],
                training=training,
            )
        short_term = self.gru(inputs["news_vectors"], mask=mask, training=training)
        return ops.concatenate([long_term, short_term], axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_users": self.num_users,
                "news_dim": self.news_dim,
                "combine": self.combine,
                "user_mask_prob": self.user_mask_prob,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class LSTUR(NewsRankingModel):
    """LSTUR (An et al., 2019): long- and short-term user representations.

    Consumes `title`, `category`, `subcategory` and the input `user_index`
    (`[B]` int, 0 = padding, 1 = unknown user).

    Args:
        config: an `LSTURConfig` (or its `to_dict()`); vocabulary sizes and
            `num_users` must be set.
        **kwargs: passed to `keras.Model`.

    References:
        - [An, Wu, Wu, Zhang, Liu and Xie, 2019. Neural News Recommendation
          with Long- and Short-term User Representations, ACL](
          https://aclanthology.org/P19-1033/).
    """

    news_fields: ClassVar[tuple[str, ...]] = ("title", "category", "subcategory")
    config_class: ClassVar[type[LSTURConfig]] = LSTURConfig

    def __init__(
        self, config: LSTURConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(config, **kwargs)
        config = self.config
        for field in ("vocab_size", "num_categories", "num_subcategories", "num_users"):
            if getattr(config, field) < 3:
                raise ValueError(
                    f"LSTURConfig.{field} must be set (>= 3: padding, unknown and at "
                    f"least one entry), got {getattr(config, field)}."
                )
        self.news_encoder = LSTURNewsEncoder(
            vocab_size=config.vocab_size,
            num_categories=config.num_categories,
            num_subcategories=config.num_subcategories,
            embedding_dim=config.embedding_dim,
            num_filters=config.num_filters,
            window_size=config.window_size,
            category_dim=config.category_dim,
            attention_hidden_dim=config.attention_hidden_dim,
            dropout=config.dropout,
            embedding_initializer=config.embedding_initializer,
            train_embeddings=config.train_embeddings,
            pretrained_embeddings=config.pretrained_embeddings,
            seed=config.seed,
            name="news_encoder",
        )
        self.user_encoder = LSTURUserEncoder(
            num_users=config.num_users,
            news_dim=config.news_dim,
            combine=config.combine,
            user_mask_prob=config.user_mask_prob,
            seed=config.seed,
            name="user_encoder",
        )

    def build(self, input_shape: Any = None) -> None:
        # Parts may already be built by a direct call (e.g. `encode_news` first).
        if not self.news_encoder.built:
            self.news_encoder.build()
        if not self.user_encoder.built:
            self.user_encoder.build()
        self.built = True

    def user_representation(
        self, history_vectors: Any, inputs: dict[str, Any], training: bool = False
    ) -> Any:
        """LSTUR-ini / -con user vector from the clicks and the user id."""
        return self.user_encoder(
            {
                "news_vectors": history_vectors,
                "mask": inputs["hist_mask"],
                "user_index": inputs["user_index"],
            },
            training=training,
        )
