"""Hierarchical pooling of a user's token-level states: tokens -> clicks -> user.

FUM's fine-grained user model reads all clicked news as one long token
sequence, so its Fastformer outputs one state per token. Turning those into a
user vector needs the news boundaries back: pool the tokens of each click into
a click vector, then pool the clicks. Doing it in two attentive steps (rather
than one pooling over all 1,600 tokens) keeps every click's weight independent
of its title length.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from trainer.layers.attention import AdditiveAttentionPooling

__all__ = ["HierarchicalPooling"]


@keras.saving.register_keras_serializable(package="usermodel")
class HierarchicalPooling(keras.layers.Layer):
    """Token -> news -> user attentive pooling (FUM, Section 3.2).

    Input: token states `[B, H, T, D]` of `H` clicks of `T` tokens each, where
    the last `num_field_tokens` tokens of a click are field tokens (FUM: its
    category and sub-category) and the first `T - num_field_tokens` are its
    title words. For each click:

    ```
    t     = AttPool_words(h_1 .. h_{T-F})          # word-level attention
    n     = W_n [t ; h_{T-F+1} ; ... ; h_T] + b_n  # news-level vector
    ```

    then the user vector is `AttPool_news(n_1 .. n_H)`. Both poolings are
    the additive attention of `AdditiveAttentionPooling` (NRMS eqs. 3-5 /
    8-10), masked.

    Masking: `mask` `[B, H, T]` marks real tokens; padded words get no
    weight, and a click whose tokens are all padding (a padded history slot)
    gets no weight in the news-level pooling. A user without any real token
    pools to the zero vector.

    Args:
        news_dim: int. Width of the news-level vectors `n` and of the output.
        word_hidden_dim: int. Query size of the word-level attention.
        news_hidden_dim: int. Query size of the news-level attention.
        num_field_tokens: int. Field tokens at the end of each click.
        dropout: float. Dropout on the news-level vectors (FUM: 0.2).
        seed: optional int dropout seed.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[B, H, T, D]`.
        mask: optional `[B, H, T]`, nonzero for real tokens.
        training: bool, enables dropout.

    Returns:
        A tensor `[B, news_dim]`.

    References:
        - [Qi, Wu, Wu and Huang, 2022. FUM: Fine-grained and Fast User
          Modeling for News Recommendation, SIGIR](
          https://arxiv.org/abs/2204.04727), Section 3 (news-level pooling
          inside each click, then attentive pooling across clicks).
        - [Wu et al., 2019. NRMS, EMNLP](https://aclanthology.org/D19-1671/),
          eqs. (3)-(5) (additive attention).
    """

    def __init__(
        self,
        news_dim: int,
        word_hidden_dim: int = 200,
        news_hidden_dim: int = 200,
        num_field_tokens: int = 2,
        dropout: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if news_dim <= 0 or num_field_tokens < 0:
            raise ValueError(
                "news_dim must be positive and num_field_tokens non-negative, got "
                f"{news_dim} and {num_field_tokens}."
            )
        self.news_dim = int(news_dim)
        self.word_hidden_dim = int(word_hidden_dim)
        self.news_hidden_dim = int(news_hidden_dim)
        self.num_field_tokens = int(num_field_tokens)
        self.dropout = float(dropout)
        self.seed = seed
        self.supports_masking = True
        self.word_pooling = AdditiveAttentionPooling(
            self.word_hidden_dim, name="word_pooling"
        )
        self.news_projection = keras.layers.Dense(self.news_dim, name="news_projection")
        self.news_dropout = keras.layers.Dropout(self.dropout, seed=seed)
        self.news_pooling = AdditiveAttentionPooling(
            self.news_hidden_dim, name="news_pooling"
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        self.word_pooling.build((None, None, dim))
        self.news_projection.build((None, (1 + self.num_field_tokens) * dim))
        self.news_pooling.build((None, None, self.news_dim))
        self.built = True

    def call(self, inputs: Any, mask: Any | None = None, training: bool = False) -> Any:
        batch, clicks = ops.shape(inputs)[0], ops.shape(inputs)[1]
        tokens, dim = inputs.shape[2], inputs.shape[3]
        words = tokens - self.num_field_tokens
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:3], dtype="bool")
        mask = ops.cast(mask, "bool")
        flat = ops.reshape(inputs, (-1, tokens, dim))  # [B*H, T, D]
        flat_mask = ops.reshape(mask, (-1, tokens))
        title = self.word_pooling(flat[:, :words], mask=flat_mask[:, :words])
        fields = ops.reshape(flat[:, words:], (-1, self.num_field_tokens * dim))
        news = self.news_projection(ops.concatenate([title, fields], axis=-1))
        news = self.news_dropout(news, training=training)
        news = ops.reshape(news, (batch, clicks, self.news_dim))
        click_mask = ops.any(mask, axis=-1)  # [B, H]
        return self.news_pooling(news, mask=click_mask)

    def compute_mask(self, inputs: Any, mask: Any | None = None) -> None:
        return None

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        return (input_shape[0], self.news_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "news_dim": self.news_dim,
                "word_hidden_dim": self.word_hidden_dim,
                "news_hidden_dim": self.news_hidden_dim,
                "num_field_tokens": self.num_field_tokens,
                "dropout": self.dropout,
                "seed": self.seed,
            }
        )
        return config
