"""Transform's preprocessing_fn for the news-ranking family (MIND format).

One graph handles both row kinds of MindExampleGen's output (docs/architecture.md):

* news rows → ``news_index``, ``title`` / ``abstract`` token ids (tensorflow-text tokenization,
  truncated to the configured lengths, variable-length), ``category``, ``subcategory``;
* impression rows → ``user_index``, ``history`` (the most recent H clicks, fixed length, padded)
  with ``history_mask``, ``candidates`` and ``labels`` (variable length), ``impression_id``.

Every id space reserves 0 for padding and 1 for unknown (never seen in training, or missing from
news.tsv), so real entries start at :data:`FIRST_ID`. The same graph runs in serving
(``encode_news`` tokenizes raw articles with it), so training and serving cannot disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

PAD_ID = 0
UNKNOWN_ID = 1
FIRST_ID = 2

WORD_VOCAB = "words"
CATEGORY_VOCAB = "categories"
SUBCATEGORY_VOCAB = "subcategories"
USER_VOCAB = "users"
NEWS_VOCAB = "news_ids"
ENTITY_VOCAB = "entities"


@dataclasses.dataclass
class NewsTransformConfig:
    """Sizes fixed at Transform time (passed as TFX ``custom_config``)."""

    history_length: int = 50
    """Clicks kept per user (most recent); the papers use 50."""
    title_length: int = 30
    """Title tokens kept per article (NRMS/FUM use 30)."""
    abstract_length: int = 64
    """Abstract tokens kept per article."""
    entity_length: int = 8
    """Entities kept per article: the title's, then the abstract's (Wikidata ids)."""
    max_words: int = 100_000
    """Word vocabulary cap (most frequent first)."""
    min_word_count: int = 1
    """Words seen fewer times than this map to unknown."""

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any] | None) -> "NewsTransformConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (custom_config or {}).items() if k in fields})


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    """Case-folded words and punctuation marks ([B] strings → [B, None]).

    NFKC case folding and Unicode letter/number classes, so "Ünïcode" stays one word (RE2's
    ``\\w`` and ``tf.strings.lower`` are ASCII-only).
    """
    return tf_text.regex_split(
        tf_text.case_fold_utf8(text),
        delim_regex_pattern=r"\s+|([^\p{L}\p{N}\s])",
        keep_delim_regex_pattern=r"[^\p{L}\p{N}\s]",
    )


def _scalar(sparse: tf.SparseTensor, default) -> tf.Tensor:
    """[B, 0 or 1] optional feature → [B] dense with a default for absent values."""
    batch = tf.shape(sparse, out_type=tf.int64)[0]
    padded = tf.sparse.reset_shape(sparse, tf.stack([batch, tf.maximum(sparse.dense_shape[1], 1)]))
    return tf.sparse.to_dense(padded, default_value=default)[:, 0]


def _ids(values: tf.Tensor, vocab) -> tf.Tensor:
    """Applies a vocabulary with the reserved ids: known → ≥ 2, unknown → 1."""
    index = tft.apply_vocabulary(values, vocab, default_value=-1)
    return tf.where(index < 0, tf.constant(UNKNOWN_ID, tf.int64), index + FIRST_ID)


def _id_or_pad(values: tf.Tensor, vocab) -> tf.Tensor:
    """Like _ids, but an empty string (feature absent on this row kind) → 0."""
    return tf.where(values == "", tf.constant(PAD_ID, tf.int64), _ids(values, vocab))


def _sparse_ids(sparse: tf.SparseTensor, vocab) -> tf.SparseTensor:
    return tf.SparseTensor(sparse.indices, _ids(sparse.values, vocab), sparse.dense_shape)


def _entities(title: tf.SparseTensor, abstract: tf.SparseTensor, vocab, length: int) -> tf.SparseTensor:
    """Entity ids of each article, the title's then the abstract's, truncated to `length`."""
    both = tf.concat(
        [tf.RaggedTensor.from_sparse(title), tf.RaggedTensor.from_sparse(abstract)], axis=1
    )[:, :length]
    return both.with_flat_values(_ids(both.flat_values, vocab)).to_sparse()


def _tokens(text: tf.Tensor, vocab, length: int) -> tf.SparseTensor:
    """Token ids of each text, truncated to `length`, as a variable-length feature."""
    tokens = tokenize(text)[:, :length]
    ids = tokens.with_flat_values(_ids(tokens.flat_values, vocab))
    return ids.to_sparse()


def _recent_history(history: tf.SparseTensor, vocab, length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The last `length` clicks (MIND lists them oldest first), padded at the end, and a mask.

    Clicks on articles unknown to news.tsv are masked out too: with no content they only add
    noise to the user vector. They keep their slot so positions stay meaningful.
    """
    ragged = tf.RaggedTensor.from_sparse(history)[:, -length:]
    ids = ragged.with_flat_values(_ids(ragged.flat_values, vocab)).to_tensor(
        default_value=PAD_ID, shape=[None, length]
    )
    return ids, tf.cast(ids >= FIRST_ID, tf.float32)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """TFX Transform entry point (referenced by dotted path from pipeline/pipeline.py)."""
    cfg = NewsTransformConfig.from_custom_config(custom_config)
    title = _scalar(inputs["title"], "")
    abstract = _scalar(inputs["abstract"], "")
    words = tft.vocabulary(
        tf.concat([tokenize(title).flat_values, tokenize(abstract).flat_values], axis=0),
        top_k=cfg.max_words,
        frequency_threshold=cfg.min_word_count,
        vocab_filename=WORD_VOCAB,
    )
    categories = tft.vocabulary(inputs["category"].values, vocab_filename=CATEGORY_VOCAB)
    subcategories = tft.vocabulary(inputs["subcategory"].values, vocab_filename=SUBCATEGORY_VOCAB)
    users = tft.vocabulary(inputs["user_id"].values, vocab_filename=USER_VOCAB)
    entities = tft.vocabulary(
        tf.concat([inputs["title_entities"].values, inputs["abstract_entities"].values], axis=0),
        vocab_filename=ENTITY_VOCAB,
    )
    # The news-id vocabulary comes from news rows and is applied to impressions' id lists, so
    # history/candidate ids become row numbers of the trainer's news table.
    news_ids = tft.vocabulary(inputs["news_id"].values, vocab_filename=NEWS_VOCAB)
    history, history_mask = _recent_history(inputs["history"], news_ids, cfg.history_length)
    return {
        "impression_id": _scalar(inputs["impression_id"], tf.constant(-1, tf.int64)),
        "user_index": _id_or_pad(_scalar(inputs["user_id"], ""), users),
        "history": history,
        "history_mask": history_mask,
        "candidates": _sparse_ids(inputs["candidates"], news_ids),
        "labels": inputs["labels"],
        "news_index": _id_or_pad(_scalar(inputs["news_id"], ""), news_ids),
        "title": _tokens(title, words, cfg.title_length),
        "abstract": _tokens(abstract, words, cfg.abstract_length),
        "category": _id_or_pad(_scalar(inputs["category"], ""), categories),
        "subcategory": _id_or_pad(_scalar(inputs["subcategory"], ""), subcategories),
        "entities": _entities(inputs["title_entities"], inputs["abstract_entities"], entities, cfg.entity_length),
    }
