"""FUM: Fine-grained and Fast User Modeling for News Recommendation.

Qi, Wu, Wu and Huang, SIGIR 2022 (https://arxiv.org/abs/2204.04727).

Most news recommenders encode each clicked article into one vector first and
model the user from those vectors, so word-level interactions between
different clicks are lost. FUM keeps them:

* **Fine-grained user model** (Section 3.2): the clicked news are concatenated
  into one document, per click its title words followed by a category and a
  sub-category token (official setting: 50 clicks x 32 tokens = 1,600), and an
  efficient transformer (Fastformer, `trainer/layers/fastformer.py`) models
  the word-level interactions across all clicks. Token states are pooled back
  per click and across clicks (`trainer/layers/pooling.py`). Unlike the
  official code, padded tokens and padded clicks are masked.
* **Coarse-grained user model** (Section 3.3): news-level behaviour
  interactions: multi-head self-attention over the clicks' news vectors, then
  attentive pooling (the NRMS user encoder, eqs. 6-10 of NRMS).
* **User vector** `u = [u_c ; u_f]` (Section 3.4), coarse and fine parts
  concatenated (official widths 370 + 30 = 400, the news-vector width).
* **News encoder** (Section 3.1): title and abstract words (self-attention +
  additive attention each), category and sub-category embeddings, fused by a
  dense layer into a 400-d news vector; with `num_entities` set (the trainer
  sets it from the Transform's entity vocabulary) also the clicks' Wikidata
  entities (own embedding, self-attention, attention pooling; official code).
* **Click prediction and training** (Section 3.4): `y = u^T r`, softmax over
  one click and K negatives (`NewsRankingModel`).

Ablations (Section 4.3): `use_fine=False` (FUM without the fine-grained model)
and `use_coarse=False` (without the coarse-grained model); the remaining part
then produces the whole user vector. They are registered as `fum_no_fine` and
`fum_no_coarse`; the fine-only model is widened to the coarse model's width, as
the official fine-only variant (`FUMNoCoarseConfig`).
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
from trainer.layers.fastformer import Fastformer
from trainer.layers.pooling import HierarchicalPooling
from trainer.news.models import padding
from trainer.news.models.news_ranking import NewsRankingModel
from trainer.news.models.nrms import NRMSUserEncoder

__all__ = [
    "FUM",
    "FUMConfig",
    "FUMFineUserEncoder",
    "FUMNewsEncoder",
    "FUMNoCoarseConfig",
    "FUMNoFineConfig",
    "FUMUserEncoder",
]


@dataclasses.dataclass
class FUMConfig(ModelConfig):
    """Hyper-parameters of FUM; defaults follow the paper (Section 4.1) and
    its official code where the paper is silent."""

    vocab_size: int = 0
    """Word-embedding rows (0 = padding, 1 = unknown); filled in by the
    trainer from the Transform vocabulary."""

    num_categories: int = 0
    """Category-embedding rows (0 = padding, 1 = unknown); filled in by the
    trainer."""

    num_subcategories: int = 0
    """Sub-category-embedding rows (0 = padding, 1 = unknown); filled in by
    the trainer."""

    num_entities: int = 0
    """Entity-embedding rows (0 = padding, 1 = unknown), filled in by the
    trainer from the Transform's entity vocabulary; 0 = the news encoder
    reads no entities."""

    entity_num_heads: int = 5
    """Self-attention heads of the entity encoder (official code: 5)."""

    entity_head_dim: int = 40
    """Width of each entity head (official code: 40, so 200-d)."""

    embedding_dim: int = 300
    """Word-embedding width (paper: 300-d GloVe)."""

    num_heads: int = 20
    """Self-attention heads of the news encoder's text encoders and of the
    coarse user model (official code: 20)."""

    head_dim: int = 20
    """Width of each of those heads (official code: 20, so 400-d outputs)."""

    attention_hidden_dim: int = 200
    """Query size of every additive attention (official code: 200)."""

    category_dim: int = 128
    """Width of category and sub-category embeddings in the news encoder."""

    news_dim: int = 400
    """Width of news vectors and of user vectors (paper: 400)."""

    use_abstract: bool = True
    """Whether the news encoder reads the abstract besides the title."""

    fine_num_heads: int = 3
    """Fastformer heads of the fine-grained user model (official code: 3)."""

    fine_head_dim: int = 40
    """Width of each Fastformer head (official code: 40)."""

    fine_share_query_value: bool = True
    """Fastformer's values are its queries (`W_v = W_q`), as in the official
    code and the Fastformer paper's parameter sharing."""

    fine_use_bias: bool = False
    """Whether Fastformer's projections have biases. Off: the Fastformer
    equations and the official FUM code have none."""

    fine_news_dim: int = 40
    """Width of the per-click vectors pooled from the token states."""

    fine_dim: int = 30
    """Width of the fine-grained part of the user vector; the coarse part is
    `news_dim - fine_dim` (official code: 30 + 370)."""

    use_fine: bool = True
    """Whether the fine-grained user model is used (ablation switch)."""

    use_coarse: bool = True
    """Whether the coarse-grained user model is used (ablation switch)."""

    dropout: float = 0.2
    """Dropout rate throughout (paper: 20%)."""

    embedding_initializer: str = "uniform"
    """Keras initializer name of the word embeddings without a pretrained
    matrix."""

    pretrained_embeddings: np.ndarray | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    """Optional `[vocab_size, embedding_dim]` matrix (e.g. GloVe rows) copied
    into both word-embedding tables at build time. Not serialized."""

    train_embeddings: bool = True
    """Whether the word embeddings are fine-tuned."""

    seed: int | None = None
    """Seed of the dropout layers."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {
            "embedding_dim": 32,
            "num_heads": 4,
            "head_dim": 8,
            "attention_hidden_dim": 16,
            "category_dim": 16,
            "news_dim": 32,
            "fine_num_heads": 2,
            "fine_head_dim": 8,
            "fine_news_dim": 16,
            "fine_dim": 8,
            "entity_num_heads": 2,
            "entity_head_dim": 8,
            "dropout": 0.1,
        },
    }

    def __post_init__(self) -> None:
        if not (self.use_fine or self.use_coarse):
            raise ValueError("FUM needs the fine- or the coarse-grained user model.")
        if self.use_fine and self.use_coarse and not 0 < self.fine_dim < self.news_dim:
            raise ValueError(
                f"fine_dim must be in (0, news_dim={self.news_dim}), got {self.fine_dim}."
            )
        self._check_pretrained_embeddings()

    @property
    def coarse_dim(self) -> int:
        """Width of the coarse part of the user vector."""
        if not self.use_coarse:
            return 0
        return self.news_dim - self.fine_dim if self.use_fine else self.news_dim

    @property
    def fine_user_dim(self) -> int:
        """Width of the fine part of the user vector."""
        if not self.use_fine:
            return 0
        return self.fine_dim if self.use_coarse else self.news_dim


@dataclasses.dataclass
class FUMNoFineConfig(FUMConfig):
    """FUM without the fine-grained user model (the paper's ablation)."""

    use_fine: bool = False
    """Off: the coarse model alone gives the user vector."""


@dataclasses.dataclass
class FUMNoCoarseConfig(FUMConfig):
    """FUM without the coarse-grained user model (the paper's ablation), as wide as the
    official fine-only variant: 10 Fastformer heads x 40 (400-d token states, the width of
    the coarse model's self-attention) and 400-d per-click vectors, projected to the 400-d
    user vector. The official variant ends in a ReLU dense layer; ours keeps FUM's linear
    projection, so the two ablations differ from FUM only by the part they drop."""

    use_coarse: bool = False
    """Off: the fine-grained model alone gives the user vector."""

    fine_num_heads: int = 10
    """Fastformer heads (official fine-only variant: 10)."""

    fine_news_dim: int = 400
    """Width of the per-click vectors (official fine-only variant: 400)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # FUM's tiny preset with the fine model as wide as the coarse one (4 x 8 = news_dim).
        "tiny": {**FUMConfig.PRESETS["tiny"], "fine_num_heads": 4, "fine_news_dim": 32},
    }


@keras.saving.register_keras_serializable(package="usermodel")
class FUMNewsEncoder(keras.layers.Layer):
    """FUM news encoder: title, abstract, category, sub-category, entities -> `[N, D]`.

    Title and abstract each go through word embedding -> dropout -> multi-head
    self-attention -> dropout -> additive attention (the NRMS text encoder,
    NRMS eqs. 1-5; one word-embedding table, separate attentions); category
    and sub-category through an embedding, a dense layer and dropout; the
    entities (Wikidata ids of the title's and abstract's entities, when the
    data has them) through their own embedding, self-attention and attention
    pooling. The parts are concatenated and fused by `Dense(news_dim, relu)`
    (FUM Section 3.1).

    Args:
        vocab_size: int. Word-embedding rows.
        num_categories: int. Category rows.
        num_subcategories: int. Sub-category rows.
        embedding_dim: int. Word-embedding width.
        num_heads: int. Self-attention heads.
        head_dim: int. Width of each head.
        attention_hidden_dim: int. Additive-attention query size.
        category_dim: int. Category / sub-category width.
        news_dim: int. Output width.
        use_abstract: bool. Whether the abstract is read.
        num_entities: int. Entity-embedding rows; 0 = no entity input.
        entity_num_heads: int. Entity self-attention heads.
        entity_head_dim: int. Width of each entity head.
        dropout: float. Dropout rate.
        embedding_initializer: word-embedding initializer.
        train_embeddings: bool. Whether the word table is trainable.
        pretrained_embeddings: optional matrix copied in at build time (not
            serialized).
        seed: optional dropout seed.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        news: dict with `title` `[N, L]`, optionally `abstract` `[N, L']`,
            `category` `[N]`, `subcategory` `[N]` and, with `num_entities`,
            `entities` `[N, E]` (int ids, 0 = padding).
        training: bool, enables dropout.

    References:
        - [Qi et al., 2022. FUM, SIGIR](https://arxiv.org/abs/2204.04727),
          Section 3.1.
        - [Wu et al., 2019. NRMS, EMNLP](https://aclanthology.org/D19-1671/),
          eqs. (1)-(5).
    """

    def __init__(
        self,
        vocab_size: int,
        num_categories: int,
        num_subcategories: int,
        embedding_dim: int = 300,
        num_heads: int = 20,
        head_dim: int = 20,
        attention_hidden_dim: int = 200,
        category_dim: int = 128,
        news_dim: int = 400,
        use_abstract: bool = True,
        num_entities: int = 0,
        entity_num_heads: int = 5,
        entity_head_dim: int = 40,
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
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.attention_hidden_dim = int(attention_hidden_dim)
        self.category_dim = int(category_dim)
        self.news_dim = int(news_dim)
        self.use_abstract = bool(use_abstract)
        self.num_entities = int(num_entities)
        self.entity_num_heads = int(entity_num_heads)
        self.entity_head_dim = int(entity_head_dim)
        self.dropout = float(dropout)
        self.embedding_initializer = keras.initializers.get(embedding_initializer)
        self.train_embeddings = bool(train_embeddings)
        self.seed = seed
        self.text_fields = ("title", "abstract") if self.use_abstract else ("title",)
        self.word_embedding = WordEmbedding(
            self.vocab_size, self.embedding_dim, pretrained=pretrained_embeddings,
            embeddings_initializer=self.embedding_initializer,
            trainable=self.train_embeddings, name="word_embedding",
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, seed=seed)
        self.text_attention = {
            f: MultiHeadSelfAttention(self.num_heads, self.head_dim, name=f"{f}_self_attention")
            for f in self.text_fields
        }
        self.text_pooling = {
            f: AdditiveAttentionPooling(self.attention_hidden_dim, name=f"{f}_attention")
            for f in self.text_fields
        }
        self.category_embedding = {
            f: keras.layers.Embedding(n, self.category_dim, name=f"{f}_embedding")
            for f, n in (("category", self.num_categories), ("subcategory", self.num_subcategories))
        }
        self.category_dense = {
            f: keras.layers.Dense(self.category_dim, name=f"{f}_dense")
            for f in ("category", "subcategory")
        }
        if self.num_entities:
            # Entities: own embedding table of the word width, self-attention and attention
            # pooling (the official code's entity encoder).
            self.entity_embedding = keras.layers.Embedding(
                self.num_entities, self.embedding_dim, name="entity_embedding"
            )
            self.entity_attention = MultiHeadSelfAttention(
                self.entity_num_heads, self.entity_head_dim, name="entity_self_attention"
            )
            self.entity_pooling = AdditiveAttentionPooling(
                self.attention_hidden_dim, name="entity_attention"
            )
        self.fusion = keras.layers.Dense(self.news_dim, activation="relu", name="fusion")

    def build(self, input_shape: Any = None) -> None:
        self.word_embedding.build((None, None))
        text_width = self.num_heads * self.head_dim
        for f in self.text_fields:
            self.text_attention[f].build((None, None, self.embedding_dim))
            self.text_pooling[f].build((None, None, text_width))
        for f in ("category", "subcategory"):
            self.category_embedding[f].build((None,))
            self.category_dense[f].build((None, self.category_dim))
        fused = len(self.text_fields) * text_width + 2 * self.category_dim
        if self.num_entities:
            self.entity_embedding.build((None, None))
            self.entity_attention.build((None, None, self.embedding_dim))
            self.entity_pooling.build((None, None, self.entity_attention.output_dim))
            fused += self.entity_attention.output_dim
        self.fusion.build((None, fused))
        self.built = True

    def _text(self, field: str, tokens: Any, training: bool) -> Any:
        mask = ops.not_equal(tokens, 0)
        x = self.dropout_layer(self.word_embedding(tokens), training=training)
        x = self.text_attention[field](x, mask=mask, training=training)
        x = self.dropout_layer(x, training=training)
        return self.text_pooling[field](x, mask=mask)

    def call(self, news: dict[str, Any], training: bool = False) -> Any:
        parts = [self._text(f, news[f], training) for f in self.text_fields]
        for f in ("category", "subcategory"):
            x = self.category_dense[f](self.category_embedding[f](news[f]))
            parts.append(self.dropout_layer(x, training=training))
        if self.num_entities:
            ids = news["entities"]
            mask = ops.not_equal(ids, 0)
            x = self.dropout_layer(self.entity_embedding(ids), training=training)
            x = self.dropout_layer(self.entity_attention(x, mask=mask), training=training)
            parts.append(self.entity_pooling(x, mask=mask))
        return self.fusion(ops.concatenate(parts, axis=-1))

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return (input_shape["title"][0], self.news_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "num_categories": self.num_categories,
                "num_subcategories": self.num_subcategories,
                "embedding_dim": self.embedding_dim,
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "attention_hidden_dim": self.attention_hidden_dim,
                "category_dim": self.category_dim,
                "news_dim": self.news_dim,
                "use_abstract": self.use_abstract,
                "num_entities": self.num_entities,
                "entity_num_heads": self.entity_num_heads,
                "entity_head_dim": self.entity_head_dim,
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
class FUMFineUserEncoder(keras.layers.Layer):
    """FUM's fine-grained user model: the clicked news as one document.

    Each click contributes its `L` title tokens followed by a category token
    and a sub-category token (`L + 2` tokens, own embedding tables of the word
    width), and the `H` clicks are concatenated into one `H * (L + 2)`-token
    sequence. Fastformer models the word-level interactions over the whole
    sequence; `HierarchicalPooling` pools each click's tokens and then the
    clicks; a dense layer gives the fine-grained user vector (Section 3.2).

    Masked: title padding (token 0), padding categories (id 0) and every
    token of a padded click (`hist_mask == 0`). The official code has no mask
    here, so padding tokens shift its global query and key.

    Args:
        vocab_size: int. Word-embedding rows.
        num_categories: int. Category rows.
        num_subcategories: int. Sub-category rows.
        embedding_dim: int. Token-embedding width.
        num_heads: int. Fastformer heads.
        head_dim: int. Fastformer head width.
        share_query_value: bool. Fastformer values are its queries (official
            code).
        use_bias: bool. Whether Fastformer's projections have biases (the
            equations and the official code: none).
        attention_hidden_dim: int. Query size of both poolings.
        news_dim: int. Width of the per-click vectors.
        output_dim: int. Width of the output user vector.
        dropout: float. Dropout rate.
        embedding_initializer: word-embedding initializer.
        train_embeddings: bool. Whether the word table is trainable.
        pretrained_embeddings: optional matrix copied in at build time (not
            serialized).
        seed: optional dropout seed.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        history: dict with `title` `[B, H, L]`, `category` `[B, H]`,
            `subcategory` `[B, H]` and `mask` `[B, H]`.
        training: bool, enables dropout.

    Returns:
        A tensor `[B, output_dim]`.

    References:
        - [Qi et al., 2022. FUM, SIGIR](https://arxiv.org/abs/2204.04727),
          Section 3.2.
        - [Wu et al., 2021. Fastformer](https://arxiv.org/abs/2108.09084).
    """

    def __init__(
        self,
        vocab_size: int,
        num_categories: int,
        num_subcategories: int,
        embedding_dim: int = 300,
        num_heads: int = 3,
        head_dim: int = 40,
        share_query_value: bool = True,
        use_bias: bool = False,
        attention_hidden_dim: int = 200,
        news_dim: int = 40,
        output_dim: int = 30,
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
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.attention_hidden_dim = int(attention_hidden_dim)
        self.news_dim = int(news_dim)
        self.output_dim = int(output_dim)
        self.dropout = float(dropout)
        self.embedding_initializer = keras.initializers.get(embedding_initializer)
        self.train_embeddings = bool(train_embeddings)
        self.seed = seed
        self.word_embedding = WordEmbedding(
            self.vocab_size, self.embedding_dim, pretrained=pretrained_embeddings,
            embeddings_initializer=self.embedding_initializer,
            trainable=self.train_embeddings, name="word_embedding",
        )
        self.category_embedding = keras.layers.Embedding(
            self.num_categories, self.embedding_dim, name="category_embedding"
        )
        self.subcategory_embedding = keras.layers.Embedding(
            self.num_subcategories, self.embedding_dim, name="subcategory_embedding"
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, seed=seed)
        self.share_query_value = bool(share_query_value)
        self.use_bias = bool(use_bias)
        self.fastformer = Fastformer(
            self.num_heads, self.head_dim, use_bias=self.use_bias,
            share_query_value=self.share_query_value, name="fastformer",
        )
        self.pooling = HierarchicalPooling(
            self.news_dim,
            word_hidden_dim=self.attention_hidden_dim,
            news_hidden_dim=self.attention_hidden_dim,
            num_field_tokens=2,
            dropout=self.dropout,
            seed=seed,
            name="hierarchical_pooling",
        )
        self.projection = keras.layers.Dense(self.output_dim, name="projection")

    def build(self, input_shape: Any = None) -> None:
        self.word_embedding.build((None, None))
        self.category_embedding.build((None,))
        self.subcategory_embedding.build((None,))
        self.fastformer.build((None, None, self.embedding_dim))
        self.pooling.build((None, None, None, self.fastformer.output_dim))
        self.projection.build((None, self.news_dim))
        self.built = True

    def call(self, history: dict[str, Any], training: bool = False) -> Any:
        title = history["title"]  # [B, H, L]
        batch = ops.shape(title)[0]
        clicks = title.shape[1] if title.shape[1] is not None else ops.shape(title)[1]
        tokens = title.shape[2] + 2
        fields = ops.stack([history["category"], history["subcategory"]], axis=-1)
        ids = ops.concatenate([title, ops.cast(fields, title.dtype)], axis=-1)  # [B, H, L + 2]
        click = ops.cast(history["mask"], "bool")[..., None]  # [B, H, 1]
        attend = ops.logical_and(ops.not_equal(ids, 0), click)  # real words, known fields
        if not padding.trimming_allowed():
            return self._padded(ids, attend, batch, clicks, tokens, training)
        # Pack: the kept tokens of all users along one axis (ascending positions
        # keep the segment ids sorted), so no work is spent on padding. Kept:
        # the attended tokens and every field token of a real click (pooling
        # reads a click's field states even when the field is unknown).
        is_field = ops.arange(tokens) >= title.shape[2]
        keep = ops.logical_and(ops.logical_or(is_field, ops.not_equal(ids, 0)), click)
        (positions,) = ops.nonzero(ops.reshape(keep, (-1,)))
        ids = ops.take(ops.reshape(ids, (-1,)), positions)
        attend = ops.take(ops.reshape(attend, (-1,)), positions)
        users, click_ids, kinds = self.pooling.token_layout(positions, clicks, tokens)
        x = self.dropout_layer(self._embed(ids, kinds), training=training)  # [N, E]
        x = self.fastformer(x, mask=attend, segment_ids=users, num_segments=batch)
        x = self.dropout_layer(x, training=training)
        pooled = self.pooling.pool_packed(
            x, user_ids=users, click_ids=click_ids, kinds=kinds, mask=attend,
            num_users=batch, num_clicks=clicks, training=training,
        )
        return self.dropout_layer(self.projection(pooled), training=training)

    def _padded(self, ids: Any, attend: Any, batch: Any, clicks: Any, tokens: int, training: bool) -> Any:
        """The same model on the padded `[B, H * (L + 2)]` documents (static shapes)."""
        positions = ops.arange(batch * clicks * tokens, dtype="int32")
        _, _, kinds = self.pooling.token_layout(positions, clicks, tokens)
        x = self._embed(ops.reshape(ids, (-1,)), kinds)
        x = ops.reshape(x, (batch, -1, self.embedding_dim))  # the users' documents
        x = self.dropout_layer(x, training=training)
        x = self.fastformer(x, mask=ops.reshape(attend, (batch, -1)))
        x = self.dropout_layer(x, training=training)
        x = ops.reshape(x, (batch, clicks, tokens, self.fastformer.output_dim))
        pooled = self.pooling(x, mask=attend, training=training)
        return self.dropout_layer(self.projection(pooled), training=training)

    def _embed(self, ids: Any, kinds: Any) -> Any:
        """Embeddings of packed tokens: words, categories and sub-categories
        each from their own table (the id is looked up in every table, 0 in
        the tables of the other kinds, and the right row kept)."""
        x = None
        for kind, table in enumerate(
            (self.word_embedding, self.category_embedding, self.subcategory_embedding)
        ):
            is_kind = ops.equal(kinds, kind)
            part = table(ops.where(is_kind, ids, 0))
            part = part * ops.cast(is_kind, part.dtype)[:, None]
            x = part if x is None else x + part
        return x

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
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "share_query_value": self.share_query_value,
                "use_bias": self.use_bias,
                "attention_hidden_dim": self.attention_hidden_dim,
                "news_dim": self.news_dim,
                "output_dim": self.output_dim,
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
class FUMUserEncoder(keras.layers.Layer):
    """FUM user vector `u = [u_c ; u_f]` (Section 3.4).

    `u_c`, the coarse-grained part (Section 3.3), is news-level: dropout on
    the clicks' news vectors, multi-head self-attention over them (behaviour
    interactions), additive attention pooling (`NRMSUserEncoder`) and a dense
    projection to `coarse_dim`. `u_f` is `FUMFineUserEncoder`. Either part
    may be switched off (the ablations); at least one must be on.

    Args:
        coarse_dim: int. Width of `u_c`; 0 switches the coarse model off.
        fine_encoder: the `FUMFineUserEncoder`, or None to switch it off.
        num_heads: int. Coarse self-attention heads.
        head_dim: int. Coarse head width.
        attention_hidden_dim: int. Coarse pooling query size.
        dropout: float. Dropout on the news vectors.
        seed: optional dropout seed.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: dict with `news_vectors` `[B, H, D]`, `mask` `[B, H]` and,
            with the fine model, `title`, `category`, `subcategory` of the
            clicks.
        training: bool, enables dropout.

    References:
        - [Qi et al., 2022. FUM, SIGIR](https://arxiv.org/abs/2204.04727),
          Sections 3.3-3.4.
    """

    def __init__(
        self,
        coarse_dim: int,
        fine_encoder: FUMFineUserEncoder | dict[str, Any] | None = None,
        num_heads: int = 20,
        head_dim: int = 20,
        attention_hidden_dim: int = 200,
        dropout: float = 0.2,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(fine_encoder, dict):
            fine_encoder = keras.saving.deserialize_keras_object(fine_encoder)
        if coarse_dim <= 0 and fine_encoder is None:
            raise ValueError("FUMUserEncoder needs a coarse or a fine part.")
        self.coarse_dim = int(coarse_dim)
        self.fine_encoder = fine_encoder
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.attention_hidden_dim = int(attention_hidden_dim)
        self.dropout = float(dropout)
        self.seed = seed
        if self.coarse_dim > 0:
            self.coarse_dropout = keras.layers.Dropout(self.dropout, seed=seed)
            self.coarse_encoder = NRMSUserEncoder(
                self.num_heads, self.head_dim, self.attention_hidden_dim,
                name="coarse_encoder",
            )
            self.coarse_projection = keras.layers.Dense(
                self.coarse_dim, name="coarse_projection"
            )

    def build(self, input_shape: Any = None) -> None:
        if self.coarse_dim > 0:
            news_dim = input_shape["news_vectors"][-1]
            self.coarse_encoder.build((None, None, news_dim))
            self.coarse_projection.build((None, self.num_heads * self.head_dim))
        if self.fine_encoder is not None:
            self.fine_encoder.build()
        self.built = True

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        parts = []
        if self.coarse_dim > 0:
            x = self.coarse_dropout(inputs["news_vectors"], training=training)
            x = self.coarse_encoder(x, mask=inputs["mask"], training=training)
            parts.append(self.coarse_projection(x))
        if self.fine_encoder is not None:
            parts.append(self.fine_encoder(inputs, training=training))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "coarse_dim": self.coarse_dim,
                "fine_encoder": None
                if self.fine_encoder is None
                else keras.saving.serialize_keras_object(self.fine_encoder),
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "attention_hidden_dim": self.attention_hidden_dim,
                "dropout": self.dropout,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class FUM(NewsRankingModel):
    """FUM (Qi et al., 2022): fine- and coarse-grained user modeling.

    Consumes `title`, `category`, `subcategory` and (with `use_abstract`)
    `abstract`. The news encoder is `FUMNewsEncoder`, the user encoder
    `FUMUserEncoder`, which also reads the clicks' raw tokens (`hist_title`,
    `hist_category`, `hist_subcategory`) for the fine-grained model. The
    coarse model only needs the clicks' news vectors, so serving can feed it
    cached vectors (trainer/news/export.py).

    Args:
        config: a `FUMConfig` (or its `to_dict()`); the vocabulary sizes must
            be set.
        **kwargs: passed to `keras.Model`.

    References:
        - [Qi, Wu, Wu and Huang, 2022. FUM: Fine-grained and Fast User
          Modeling for News Recommendation, SIGIR](
          https://arxiv.org/abs/2204.04727).
    """

    config_class: ClassVar[type[FUMConfig]] = FUMConfig

    def __init__(
        self, config: FUMConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(config, **kwargs)
        config = self.config
        for field in ("vocab_size", "num_categories", "num_subcategories"):
            if getattr(config, field) < 3:
                raise ValueError(
                    f"FUMConfig.{field} must be set (>= 3: padding, unknown and at "
                    f"least one entry), got {getattr(config, field)}."
                )
        self.news_fields = (
            ("title",)
            + (("abstract",) if config.use_abstract else ())
            + ("category", "subcategory")
            + (("entities",) if config.num_entities else ())
        )
        self.news_encoder = FUMNewsEncoder(
            vocab_size=config.vocab_size,
            num_categories=config.num_categories,
            num_subcategories=config.num_subcategories,
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            head_dim=config.head_dim,
            attention_hidden_dim=config.attention_hidden_dim,
            category_dim=config.category_dim,
            news_dim=config.news_dim,
            use_abstract=config.use_abstract,
            num_entities=config.num_entities,
            entity_num_heads=config.entity_num_heads,
            entity_head_dim=config.entity_head_dim,
            dropout=config.dropout,
            embedding_initializer=config.embedding_initializer,
            train_embeddings=config.train_embeddings,
            pretrained_embeddings=config.pretrained_embeddings,
            seed=config.seed,
            name="news_encoder",
        )
        fine = None
        if config.use_fine:
            fine = FUMFineUserEncoder(
                vocab_size=config.vocab_size,
                num_categories=config.num_categories,
                num_subcategories=config.num_subcategories,
                embedding_dim=config.embedding_dim,
                num_heads=config.fine_num_heads,
                head_dim=config.fine_head_dim,
                share_query_value=config.fine_share_query_value,
                use_bias=config.fine_use_bias,
                attention_hidden_dim=config.attention_hidden_dim,
                news_dim=config.fine_news_dim,
                output_dim=config.fine_user_dim,
                dropout=config.dropout,
                embedding_initializer=config.embedding_initializer,
                train_embeddings=config.train_embeddings,
                pretrained_embeddings=config.pretrained_embeddings,
                seed=config.seed,
                name="fine_user_encoder",
            )
        self.user_encoder = FUMUserEncoder(
            coarse_dim=config.coarse_dim,
            fine_encoder=fine,
            num_heads=config.num_heads,
            head_dim=config.head_dim,
            attention_hidden_dim=config.attention_hidden_dim,
            dropout=config.dropout,
            seed=config.seed,
            name="user_encoder",
        )

    def build(self, input_shape: Any = None) -> None:
        # Parts may already be built by a direct call (e.g. `encode_news` first).
        if not self.news_encoder.built:
            self.news_encoder.build()
        if not self.user_encoder.built:
            self.user_encoder.build({"news_vectors": (None, None, self.config.news_dim)})
        self.built = True

    def user_representation(
        self, history_vectors: Any, inputs: dict[str, Any], training: bool = False
    ) -> Any:
        """`[u_c ; u_f]` from the clicks' vectors and raw fields (Section 3.4)."""
        history = {
            "news_vectors": history_vectors,
            "mask": inputs["hist_mask"],
            "title": inputs["hist_title"],
            "category": inputs["hist_category"],
            "subcategory": inputs["hist_subcategory"],
        }
        return self.user_encoder(history, training=training)
