"""Transform's preprocessing_fn for the news-ranking family (MIND format).

One graph handles both row kinds of MindExampleGen's output (docs/architecture.md):

* news rows → ``news_index``, ``title`` / ``abstract`` token ids (tensorflow-text tokenization,
  truncated to the configured lengths, variable-length), ``category``, ``subcategory``;
* impression rows → ``user_index``, ``history`` (the most recent H clicks, fixed length, padded)
  with ``history_mask``, ``candidates`` and ``labels`` (variable length), ``impression_id``.

Every id space reserves 0 for padding and 1 for unknown (missing from news.tsv included), as
in every family (`trainer/transform_ops.py`). The same graph runs in serving (``encode_news``
tokenizes raw articles with it), so training and serving cannot disagree.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from trainer.news.config import NewsTransformConfig
from trainer.transform_ops import FIRST_ID, PAD_ID, id_or_pad, ids, scalar, sparse_ids, tokenize

WORD_VOCAB = "words"
CATEGORY_VOCAB = "categories"
SUBCATEGORY_VOCAB = "subcategories"
USER_VOCAB = "users"
NEWS_VOCAB = "news_ids"
ENTITY_VOCAB = "entities"




def _entities(title: tf.SparseTensor, abstract: tf.SparseTensor, vocab, length: int) -> tf.SparseTensor:
    """Entity ids of each article, the title's then the abstract's, truncated to `length`."""
    both = tf.concat(
        [tf.RaggedTensor.from_sparse(title), tf.RaggedTensor.from_sparse(abstract)], axis=1
    )[:, :length]
    return both.with_flat_values(ids(both.flat_values, vocab)).to_sparse()


def _tokens(text: tf.Tensor, vocab, length: int) -> tf.SparseTensor:
    """Token ids of each text, truncated to `length`, as a variable-length feature."""
    tokens = tokenize(text)[:, :length]
    return tokens.with_flat_values(ids(tokens.flat_values, vocab)).to_sparse()


def _recent_history(history: tf.SparseTensor, vocab, length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The last `length` clicks (MIND lists them oldest first), padded at the end, and a mask.

    Clicks on articles unknown to news.tsv are masked out too: with no content they only add
    noise to the user vector. They keep their slot so positions stay meaningful.
    """
    ragged = tf.RaggedTensor.from_sparse(history)[:, -length:]
    clicks = ragged.with_flat_values(ids(ragged.flat_values, vocab)).to_tensor(
        default_value=PAD_ID, shape=[None, length]
    )
    return clicks, tf.cast(clicks >= FIRST_ID, tf.float32)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """TFX Transform entry point (referenced by dotted path from pipeline/pipeline.py)."""
    cfg = NewsTransformConfig.from_dict(custom_config or {})
    title = scalar(inputs["title"], "")
    abstract = scalar(inputs["abstract"], "")
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
        "impression_id": scalar(inputs["impression_id"], tf.constant(-1, tf.int64)),
        "user_index": id_or_pad(scalar(inputs["user_id"], ""), users),
        "history": history,
        "history_mask": history_mask,
        "candidates": sparse_ids(inputs["candidates"], news_ids),
        "labels": inputs["labels"],
        "news_index": id_or_pad(scalar(inputs["news_id"], ""), news_ids),
        "title": _tokens(title, words, cfg.title_length),
        "abstract": _tokens(abstract, words, cfg.abstract_length),
        "category": id_or_pad(scalar(inputs["category"], ""), categories),
        "subcategory": id_or_pad(scalar(inputs["subcategory"], ""), subcategories),
        "entities": _entities(inputs["title_entities"], inputs["abstract_entities"], entities, cfg.entity_length),
    }
