"""Transform's preprocessing_fn for the tag-profiling family (MovieLensExampleGen's output).

One graph handles both row kinds (components/ingest/sequence_example_gen.py):

* catalog rows (`items` split) → ``catalog_index`` (the item's row in the trainer's item
  table), ``catalog_tags`` (its first N tags, most applied first) and ``catalog_genres``;
* sequence rows (`train`, `eval`) → ``item_index`` and ``ratings`` (the split's events, oldest
  first), ``history_item_index`` and ``history_ratings`` (eval rows: the user's train events),
  ``user_id`` and, for ml-1m, the demographic ids ``gender``, ``age``, ``occupation``.

Vocabularies: items (the catalog's ids, as strings), tags (over the N kept tags of every
catalog item, so the tag table holds exactly the tags an article can carry), genres
(`categories`) and the demographics. Every id space reserves 0 for padding and 1 for unknown
(`trainer/transform_ops.py`). Sequences keep item ids only: tags and genres are looked up in
the item table by the trainer and inside the exported model, so the user fields are built by
one piece of code (`trainer/tags/fields.py`) in training and serving.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from trainer.tags.config import TagsTransformConfig
from trainer.transform_ops import id_or_pad, ids, scalar, sparse_ids

ITEM_VOCAB = "items"
TAG_VOCAB = "tags"
GENRE_VOCAB = "categories"
DEMOGRAPHICS = ("gender", "age", "occupation")
"""ml-1m's single-valued user fields; each has a vocabulary of its own name."""


def as_strings(sparse: tf.SparseTensor) -> tf.SparseTensor:
    """Ids of any dtype as strings: every vocabulary here is over strings, as serving gets them."""
    if sparse.dtype == tf.string:
        return sparse
    return tf.SparseTensor(sparse.indices, tf.strings.as_string(sparse.values), sparse.dense_shape)


def _first(sparse: tf.SparseTensor, length: int) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_sparse(sparse)[:, :length]


def _ragged_ids(ragged: tf.RaggedTensor, vocab) -> tf.SparseTensor:
    return ragged.with_flat_values(ids(ragged.flat_values, vocab)).to_sparse()


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """TFX Transform entry point (referenced by dotted path from pipeline/families.py)."""
    cfg = TagsTransformConfig.from_dict(custom_config or {})
    item_id = as_strings(inputs["item_id"])
    items = tft.vocabulary(item_id.values, vocab_filename=ITEM_VOCAB)
    kept_tags = _first(inputs["tags"], cfg.tags_per_article)
    tags = tft.vocabulary(kept_tags.flat_values, top_k=cfg.max_tags, vocab_filename=TAG_VOCAB)
    kept_genres = _first(inputs["genres"], cfg.genres_per_article)
    genres = tft.vocabulary(kept_genres.flat_values, vocab_filename=GENRE_VOCAB)
    outputs = {
        "catalog_index": id_or_pad(scalar(item_id, ""), items),
        "catalog_tags": _ragged_ids(kept_tags, tags),
        "catalog_genres": _ragged_ids(kept_genres, genres),
        "user_id": scalar(inputs["user_id"], tf.constant(-1, tf.int64)),
        "item_index": sparse_ids(as_strings(inputs["item_ids"]), items),
        "ratings": inputs["ratings"],
        "history_item_index": sparse_ids(as_strings(inputs["history_item_ids"]), items),
        "history_ratings": inputs["history_ratings"],
    }
    for field in DEMOGRAPHICS:
        values = as_strings(inputs[field])
        vocab = tft.vocabulary(values.values, vocab_filename=field)
        outputs[field] = id_or_pad(scalar(values, ""), vocab)
    return outputs
