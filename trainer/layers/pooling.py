"""Hierarchical pooling of a user's token-level states: tokens -> clicks -> user.

FUM's fine-grained user model reads all clicked news as one long token
sequence, so its Fastformer outputs one state per token. Turning those into a
user vector needs the news boundaries back: pool the tokens of each click into
a click vector, then pool the clicks. Doing it in two attentive steps (rather
than one pooling over all 1,600 tokens) keeps every click's weight independent
of its title length.

Two layouts, the same computation: the padded `[B, H, T, D]` call, and a
*packed* one (`pool_packed`): any subset of the users' tokens, each tagged
with its user, click and kind (title word or k-th field token). The
fine-grained user model packs its documents to skip their padding where
shapes may depend on the data (TensorFlow without XLA) and uses the padded
call elsewhere (JAX, XLA), where per-row matmuls beat segment reductions.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from trainer.layers.attention import AdditiveAttentionPooling, segment_max, segment_softmax, segment_sum

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
        return self._pool_clicks(
            ops.concatenate([title, fields], axis=-1), ops.any(mask, axis=-1), batch, clicks, training
        )

    def _pool_clicks(self, parts: Any, click_mask: Any, users: Any, clicks: Any, training: bool) -> Any:
        """`[B * H, (1 + F) * D]` click parts -> news vectors -> attention over the clicks."""
        news = self.news_dropout(self.news_projection(parts), training=training)
        news = ops.reshape(news, (users, clicks, self.news_dim))
        return self.news_pooling(news, mask=click_mask)

    def token_layout(self, positions: Any, clicks: Any, tokens: int) -> tuple[Any, Any, Any]:
        """User, click and kind of flat positions of the dense `[B, H, T]` layout.

        Kind 0 is a title word, kind `k >= 1` the k-th field token (the last
        `num_field_tokens` positions of each click).
        """
        per_user = clicks * tokens
        within = positions % per_user
        words = tokens - self.num_field_tokens
        kinds = ops.maximum(within % tokens - (words - 1), 0)
        return positions // per_user, within // tokens, kinds

    def pool_packed(
        self,
        inputs: Any,
        user_ids: Any,
        click_ids: Any,
        kinds: Any,
        mask: Any,
        num_users: Any,
        num_clicks: Any,
        training: bool = False,
    ) -> Any:
        """The pooling on packed token states (any subset of tokens, any order).

        Args:
            inputs: float `[N, D]`, token states.
            user_ids: int `[N]`, the user (`0 .. B-1`) of each token.
            click_ids: int `[N]`, its click (`0 .. H-1`).
            kinds: int `[N]`: 0 for a title word, `k` for the k-th field
                token. A click with a masked-in token must have each of its
                field tokens exactly once; tokens of other clicks may be
                missing (those clicks get no weight).
            mask: `[N]`, nonzero for real tokens.
            num_users: `B`.
            num_clicks: `H`.
            training: bool, enables dropout.

        Returns:
            A tensor `[B, news_dim]`.
        """
        segments = ops.cast(user_ids, "int32") * num_clicks + ops.cast(click_ids, "int32")
        num_segments = num_users * num_clicks
        mask = ops.cast(mask, "bool")
        # Word-level attention inside each click (title words only).
        is_word = ops.logical_and(ops.equal(kinds, 0), mask)
        weights = segment_softmax(self.word_pooling.scores(inputs), segments, num_segments, is_word)
        parts = [segment_sum(weights[:, None] * inputs, segments, num_segments)]
        # Each field token's state, picked out of its click.
        for k in range(1, self.num_field_tokens + 1):
            pick = ops.cast(ops.equal(kinds, k), inputs.dtype)[:, None]
            parts.append(segment_sum(pick * inputs, segments, num_segments))
        real = segment_max(ops.cast(mask, "int32"), segments, num_segments)
        click_mask = ops.reshape(ops.greater(real, 0), (num_users, num_clicks))
        return self._pool_clicks(ops.concatenate(parts, axis=-1), click_mask, num_users, num_clicks, training)

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
