"""NRMS: Neural News Recommendation with Multi-Head Self-Attention.

Wu, Wu, Ge, Qi, Huang and Xie, EMNLP-IJCNLP 2019
(https://aclanthology.org/D19-1671/).

* News encoder (Section 2.1): title word embeddings -> dropout -> multi-head
  self-attention over words (eqs. 1-2) -> dropout -> additive word attention
  (eqs. 3-5) -> news vector `r`.
* User encoder (Section 2.2): multi-head self-attention over the clicked
  news vectors (eqs. 6-7) -> additive news attention (eqs. 8-10) -> `u`.
* Click predictor (Section 2.3): `y = u^T r^c`; trained with the softmax
  loss over one click and K negatives (eqs. 11-12), see `NewsRankingModel`.

Token id 0 is padding (masked in both title attentions), 1 is the unknown
word (an ordinary embedding row). Padded history slots are masked in the user
encoder (the reference implementation does not mask either).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from trainer.config_base import ModelConfig
from trainer.layers.attention import AdditiveAttentionPooling, MultiHeadSelfAttention
from trainer.layers.embedding import WordEmbedding
from trainer.news.models.news_ranking import NewsRankingModel

__all__ = ["NRMS", "NRMSConfig", "NRMSNewsEncoder", "NRMSUserEncoder"]


@dataclasses.dataclass
class NRMSConfig(ModelConfig):
    """Hyper-parameters of NRMS; defaults follow the paper (Section 3.1)."""

    vocab_size: int = 0
    """Rows of the word-embedding table, including 0 = padding and
    1 = unknown. Filled in by the trainer from the Transform vocabulary."""

    embedding_dim: int = 300
    """Word-embedding width (paper: 300-d GloVe)."""

    num_heads: int = 16
    """Self-attention heads, in both encoders (paper: 16)."""

    head_dim: int = 16
    """Output width of each head (paper: 16); news vectors are
    `num_heads * head_dim` wide."""

    attention_hidden_dim: int = 200
    """Size of the additive-attention query vectors (paper: 200)."""

    dropout: float = 0.2
    """Dropout on word embeddings and on the word self-attention output
    (paper: 20%)."""

    embedding_initializer: str = "uniform"
    """Keras initializer name for the word embeddings when no pretrained
    matrix is given."""

    pretrained_embeddings: np.ndarray | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    """Optional `[vocab_size, embedding_dim]` matrix (e.g. GloVe rows aligned
    with the vocabulary) copied into the embedding when the model is built.
    Not part of the serialized config: the saved weights carry it."""

    train_embeddings: bool = True
    """Whether the word embeddings are fine-tuned."""

    seed: int | None = None
    """Seed for the dropout layers (initializers use Keras' global seed)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # The microsoft/recommenders NRMS configuration (also our benchmark).
        "reference": {"num_heads": 20, "head_dim": 20},
        "tiny": {
            "embedding_dim": 32,
            "num_heads": 4,
            "head_dim": 8,
            "attention_hidden_dim": 16,
            "dropout": 0.1,
        },
    }

    def __post_init__(self) -> None:
        self._check_pretrained_embeddings()

    @property
    def news_dim(self) -> int:
        """Width of news and user vectors, `num_heads * head_dim`."""
        return self.num_heads * self.head_dim


@keras.saving.register_keras_serializable(package="usermodel")
class NRMSNewsEncoder(keras.layers.Layer):
    """NRMS news encoder: title token ids `[N, L]` -> news vectors `[N, h*d]`.

    Word embedding -> dropout -> multi-head self-attention over the words
    (eqs. 1-2) -> dropout -> additive word attention (eqs. 3-5). Token 0 is
    padding and is masked in both attentions; an all-padding title encodes
    to the zero vector.

    Args:
        vocab_size: int. Embedding rows (0 = padding, 1 = unknown).
        embedding_dim: int. Word-embedding width.
        num_heads: int. Self-attention heads.
        head_dim: int. Width of each head.
        attention_hidden_dim: int. Additive-attention query size.
        dropout: float. Dropout rate after the embedding and after the
            self-attention.
        embedding_initializer: initializer of the embedding table.
        train_embeddings: bool. Whether the embedding table is trainable.
        pretrained_embeddings: optional `[vocab_size, embedding_dim]` array
            copied into the table at build time. Not serialized (the saved
            weights carry it).
        seed: optional dropout seed.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        news: dict with `"title"`: int tensor `[N, L]`.
        training: bool, enables dropout.

    References:
        - [Wu et al., 2019. NRMS, EMNLP](https://aclanthology.org/D19-1671/),
          Section 2.1, eqs. (1)-(5).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_heads: int,
        head_dim: int,
        attention_hidden_dim: int,
        dropout: float = 0.2,
        embedding_initializer: str | keras.initializers.Initializer = "uniform",
        train_embeddings: bool = True,
        pretrained_embeddings: np.ndarray | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.attention_hidden_dim = int(attention_hidden_dim)
        self.dropout = float(dropout)
        self.embedding_initializer = keras.initializers.get(embedding_initializer)
        self.train_embeddings = bool(train_embeddings)
        self.seed = seed
        self.embedding = WordEmbedding(
            self.vocab_size,
            self.embedding_dim,
            pretrained=pretrained_embeddings,
            embeddings_initializer=self.embedding_initializer,
            trainable=self.train_embeddings,
            name="word_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            self.dropout, seed=seed, name="embedding_dropout"
        )
        self.self_attention = MultiHeadSelfAttention(
            self.num_heads, self.head_dim, name="word_self_attention"
        )
        self.attention_dropout = keras.layers.Dropout(
            self.dropout,
            seed=None if seed is None else seed + 1,
            name="self_attention_dropout",
        )
        self.pooling = AdditiveAttentionPooling(
            self.attention_hidden_dim, name="word_attention"
        )

    def build(self, input_shape: Any = None) -> None:
        self.embedding.build((None, None))
        self.self_attention.build((None, None, self.embedding_dim))
        self.pooling.build((None, None, self.self_attention.output_dim))
        self.built = True

    def call(self, news: dict[str, Any], training: bool = False) -> Any:
        tokens = news["title"]
        mask = ops.not_equal(tokens, 0)  # [N, L]
        x = self.embedding(tokens)
        x = self.embedding_dropout(x, training=training)
        x = self.self_attention(x, mask=mask, training=training)
        x = self.attention_dropout(x, training=training)
        return self.pooling(x, mask=mask)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return (input_shape["title"][0], self.self_attention.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
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
class NRMSUserEncoder(keras.layers.Layer):
    """NRMS user encoder: clicked-news vectors `[B, H, D]` -> user `[B, h*d]`.

    Multi-head self-attention over the clicked news (eqs. 6-7), then additive
    news attention (eqs. 8-10). Padded history slots (`mask == 0`) are
    ignored; a user without history gets the zero vector.

    Args:
        num_heads: int. Self-attention heads.
        head_dim: int. Width of each head.
        attention_hidden_dim: int. Additive-attention query size.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        news_vectors: float `[B, H, D]`.
        mask: optional `[B, H]`, nonzero for real clicks.
        training: bool.

    References:
        - [Wu et al., 2019. NRMS, EMNLP](https://aclanthology.org/D19-1671/),
          Section 2.2, eqs. (6)-(10).
    """

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        attention_hidden_dim: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.attention_hidden_dim = int(attention_hidden_dim)
        self.self_attention = MultiHeadSelfAttention(
            self.num_heads, self.head_dim, name="news_self_attention"
        )
        self.pooling = AdditiveAttentionPooling(
            self.attention_hidden_dim, name="news_attention"
        )
        self.supports_masking = True  # consumes `mask`; outputs have none

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.self_attention.build((None, None, input_shape[-1]))
        self.pooling.build((None, None, self.self_attention.output_dim))
        self.built = True

    def call(
        self, news_vectors: Any, mask: Any | None = None, training: bool = False
    ) -> Any:
        x = self.self_attention(news_vectors, mask=mask, training=training)
        return self.pooling(x, mask=mask)

    def compute_mask(self, news_vectors: Any, mask: Any | None = None) -> None:
        return None

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        return (input_shape[0], self.self_attention.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "attention_hidden_dim": self.attention_hidden_dim,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class NRMS(NewsRankingModel):
    """NRMS (Wu et al., 2019): self-attentive news and user encoders.

    Consumes the `title` field: inputs `hist_title` `[B, H, L]` int,
    `hist_mask` `[B, H]`, `cand_title` `[B, C, L]` int, `cand_mask` `[B, C]`;
    returns scores `[B, C]`. See `NewsRankingModel` for the public methods
    (`encode_news`, `encode_user`, `score`) and the loss.

    Args:
        config: an `NRMSConfig` (or its `to_dict()`); `vocab_size` must be
            set. Defaults to `NRMSConfig()` which has no vocabulary, so in
            practice always pass one.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    config = NRMSConfig.preset("tiny", vocab_size=1000)
    model = NRMS(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    model.fit(x={"hist_title": ..., "hist_mask": ..., "cand_title": ...,
                 "cand_mask": ...}, y=clicked_slot)
    ```

    References:
        - [Wu et al., 2019. Neural News Recommendation with Multi-Head
          Self-Attention, EMNLP](https://aclanthology.org/D19-1671/).
    """

    news_fields: ClassVar[tuple[str, ...]] = ("title",)
    config_class: ClassVar[type[NRMSConfig]] = NRMSConfig

    def __init__(
        self, config: NRMSConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(config, **kwargs)
        config = self.config
        if config.vocab_size < 3:
            raise ValueError(
                "NRMSConfig.vocab_size must be set (>= 3: padding, unknown "
                f"and at least one word), got {config.vocab_size}."
            )
        self.news_encoder = NRMSNewsEncoder(
            vocab_size=config.vocab_size,
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            head_dim=config.head_dim,
            attention_hidden_dim=config.attention_hidden_dim,
            dropout=config.dropout,
            embedding_initializer=config.embedding_initializer,
            train_embeddings=config.train_embeddings,
            pretrained_embeddings=config.pretrained_embeddings,
            seed=config.seed,
            name="news_encoder",
        )
        self.user_encoder = NRMSUserEncoder(
            num_heads=config.num_heads,
            head_dim=config.head_dim,
            attention_hidden_dim=config.attention_hidden_dim,
            name="user_encoder",
        )

    def build(self, input_shape: Any = None) -> None:
        # Every weight shape follows from the config, so the model can be
        # built (e.g. by `load_model`) without seeing data.
        self.news_encoder.build({"title": (None, None)})
        self.user_encoder.build((None, None, self.config.news_dim))
        self.built = True
