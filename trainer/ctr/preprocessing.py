"""Transform's preprocessing_fn for the CTR family (behaviour sequences, MovieLens format).

One graph handles the three row kinds of the sequence ExampleGen
(`components/ingest/sequence_example_gen.py`):

* sequence rows (``train``, ``eval``) → ``items`` (each event's item id, oldest first,
  variable-length), ``ratings`` (passed through; the click rule is applied by the trainer and
  the export, `config.CLICK_RATING`), and for eval rows ``history`` (the user's last H train
  behaviours, oldest first, padded at the end: with ``history: clicked`` the last H *clicked*
  train events, read from ``history_ratings``; see `config.HISTORIES`) with ``history_mask``;
* catalog rows (``items``) → ``item_index`` and the item's content: ``categories`` (MovieLens
  genres, or the Taobao category; up to `max_categories`) and ``words`` (title tokens without
  the "(year)" suffix, up to `title_length`; none for Taobao).

`is_behaviour` and `behaviours` are the family's one definition of which events form a
history; the trainer's samples, the export and MFN's centers pre-step call them too.

The item vocabulary comes from the catalog, so item ids become row numbers of the trainer's
item table (as news ids do in the news family); a rated item missing from the catalog maps to
the unknown id. Every id space reserves 0 for padding and 1 for unknown
(`trainer/transform_ops.py`). Item ids are looked up as decimal strings, so the export can map
the raw string ids of the ``pctr`` signature with the same vocabulary file.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from trainer.ctr.config import CLICK_RATING, CTRTransformConfig
from trainer.transform_ops import PAD_ID, id_or_pad, ids, scalar, tokenize

ITEM_VOCAB = "items"
CATEGORY_VOCAB = "categories"
WORD_VOCAB = "words"

_YEAR_SUFFIX = r"\s*\(\d{4}\)\s*$"


def has_words(tft_output: tft.TFTransformOutput) -> bool:
    """Whether the catalog has title words (Taobao's has none).

    Not just a non-empty word vocabulary: for a vocabulary with no entries tf.Transform writes
    one dummy entry, so that lookups over it initialise (`tft.analyzers.get_empy_vocabulary_dummy_value`),
    and a vocabulary of that entry alone means no words.
    """
    size = tft_output.vocabulary_size_by_name(WORD_VOCAB)
    if size != 1:
        return size > 0
    _, dummy = tft.analyzers.get_empy_vocabulary_dummy_value(tf.string)
    return tft_output.vocabulary_by_name(WORD_VOCAB) != [dummy]


def _strings(sparse: tf.SparseTensor) -> tf.SparseTensor:
    """An int64 id feature as decimal strings (the vocabularies' key type)."""
    values = sparse.values if sparse.dtype == tf.string else tf.strings.as_string(sparse.values)
    return tf.SparseTensor(sparse.indices, values, sparse.dense_shape)


def _ragged_ids(sparse: tf.SparseTensor, vocab) -> tf.RaggedTensor:
    ragged = tf.RaggedTensor.from_sparse(_strings(sparse))
    return ragged.with_flat_values(ids(ragged.flat_values, vocab))


def is_behaviour(ratings, history: str):
    """Which events (by their ratings, any shape, dense or ragged) may be part of a history:
    clicked ones (rating ≥ `CLICK_RATING`) for ``"clicked"``, every one for ``"all"``."""
    if history == "all":
        return tf.ones_like(ratings, dtype=tf.bool)
    return ratings >= CLICK_RATING


def behaviours(items, ratings, history: str):
    """The events of `items` (``[n]`` or ragged ``[B, None]``, oldest first) that may be part of a
    history, in order. ``"all"`` keeps every item and does not read `ratings` (a source without
    ratings still has histories then)."""
    if history == "all":
        return items
    return tf.ragged.boolean_mask(items, is_behaviour(ratings, history))


def recent_history(history: tf.SparseTensor, ratings: tf.SparseTensor, vocab, cfg: CTRTransformConfig
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    """The last `cfg.history_length` train behaviours (`behaviours` under `cfg.history`; oldest
    first), padded at the end, and their mask. `history` and `ratings` are the eval rows'
    ``history_item_ids`` and ``history_ratings`` (one value per event)."""
    length = cfg.history_length
    ragged = behaviours(_ragged_ids(history, vocab), tf.RaggedTensor.from_sparse(ratings), cfg.history)[:, -length:]
    items = ragged.to_tensor(default_value=PAD_ID, shape=[None, length])
    # Unknown items (id 1) are real behaviours with a trained row: only padding is masked.
    return items, tf.cast(items != PAD_ID, tf.float32)


def _categories(inputs: dict[str, Any], vocab_input: bool, cfg: CTRTransformConfig, vocab=None):
    """Each catalog row's categories: MovieLens genres, then a Taobao category id (one source
    is empty for each dataset), truncated to `max_categories`."""
    both = tf.concat(
        [tf.RaggedTensor.from_sparse(_strings(inputs["genres"])),
         tf.RaggedTensor.from_sparse(_strings(inputs["category_id"]))], axis=1,
    )
    if vocab_input:
        return both.flat_values
    both = both[:, : cfg.max_categories]
    return both.with_flat_values(ids(both.flat_values, vocab)).to_sparse()


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """TFX Transform entry point (referenced by dotted path from pipeline/families.py)."""
    cfg = CTRTransformConfig.from_dict(custom_config or {})
    item_id = scalar(_strings(inputs["item_id"]), "")
    items = tft.vocabulary(tf.boolean_mask(item_id, item_id != ""), vocab_filename=ITEM_VOCAB)
    categories = tft.vocabulary(_categories(inputs, True, cfg), vocab_filename=CATEGORY_VOCAB)
    title = tf.strings.regex_replace(scalar(inputs["title"], ""), _YEAR_SUFFIX, "")
    tokens = tokenize(title)
    words = tft.vocabulary(tokens.flat_values, top_k=cfg.max_words, vocab_filename=WORD_VOCAB)
    tokens = tokens[:, : cfg.title_length]
    history, history_mask = recent_history(inputs["history_item_ids"], inputs["history_ratings"], items, cfg)
    return {
        "user_id": scalar(inputs["user_id"], tf.constant(-1, tf.int64)),
        "items": _ragged_ids(inputs["item_ids"], items).to_sparse(),
        "ratings": inputs["ratings"],
        "history": history,
        "history_mask": history_mask,
        "item_index": id_or_pad(item_id, items),
        "categories": _categories(inputs, False, cfg, categories),
        "words": tokens.with_flat_values(ids(tokens.flat_values, words)).to_sparse(),
    }


__all__ = ["CATEGORY_VOCAB", "ITEM_VOCAB", "WORD_VOCAB", "behaviours", "is_behaviour", "preprocessing_fn",
           "recent_history"]
