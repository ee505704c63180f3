"""User fields and eval labels from rated item ids: one TensorFlow implementation that the
trainer's input pipeline and the exported SavedModel both run, so training and serving build
the same fields (UTPM section 4.1, docs/tags.md).

* ``tags`` field: the tags of the user's *positive* history items (rating ≥ the positive
  threshold), counted over those items (an item adds each of its N kept tags once), most
  frequent first, at most H; ties go to the lower tag id, i.e. the tag more frequent over the
  catalog (vocabularies are sorted by frequency). Padding and unknown ids never count.
* ``categories`` field: the genres of the same positive items, counted the same way.
* eval label: the multi-hot ``[B, T]`` of the tags of the articles the user clicked (UTPM eq. 5).
* eval candidates: the multi-hot ``[B, T]`` of the user's ``tags`` field, the tags Prec@K ranks
  in UTPM's candidate selection (docs/tags.md).

Items unknown to the catalog (id 1) and padding (id 0) have no tags or genres in the item
table, so they add nothing.
"""

from __future__ import annotations

import tensorflow as tf

from trainer.transform_ops import FIRST_ID


def _counts(values: tf.Tensor, keep: tf.Tensor, size: int, binary: bool = False) -> tf.Tensor:
    """Per row, how often each real id `< size` occurs in `values` [B, L, W] where `keep` [B, L]."""
    values = tf.where(keep[..., None], tf.cast(values, tf.int32), 0)
    flat = tf.reshape(values, [tf.shape(values)[0], -1])
    counts = tf.math.bincount(flat, minlength=size, maxlength=size, axis=-1, binary_output=binary)
    real = tf.range(size) >= FIRST_ID
    return tf.where(real[None, :], counts, tf.zeros_like(counts))


def most_frequent(values: tf.Tensor, keep: tf.Tensor, size: int, length: int) -> tf.Tensor:
    """The `length` most frequent real ids of each row, 0-padded at the end: int32 [B, length].

    Args:
        values: int ids [B, L, W] (W ids per item, 0-padded).
        keep: bool [B, L]: which items count.
        size: the id space's size (ids are `< size`).
        length: H, ids kept per row.
    """
    counts = _counts(values, keep, size)
    top_counts, top_ids = tf.math.top_k(counts, k=min(length, size))  # ties: lower id first
    ids = tf.where(top_counts > 0, top_ids, 0)
    return tf.pad(ids, [[0, 0], [0, length - ids.shape[1]]])


def user_fields(items: tf.Tensor, positive: tf.Tensor, item_tags: tf.Tensor, item_genres: tf.Tensor,
                num_tags: int, num_genres: int, length: int) -> dict[str, tf.Tensor]:
    """The ``tags`` and ``categories`` fields [B, H] from a user's history.

    Args:
        items: item-table rows [B, L] (0 padding, 1 unknown).
        positive: bool [B, L], the positively rated history items.
        item_tags, item_genres: the item table's tag ids [I, N] and genre ids [I, G].
        num_tags, num_genres: the tag and genre id spaces' sizes.
        length: H.
    """
    items = tf.cast(items, tf.int32)
    return {
        "tags": most_frequent(tf.gather(item_tags, items), positive, num_tags, length),
        "categories": most_frequent(tf.gather(item_genres, items), positive, num_genres, length),
    }


def clicked_tags(items: tf.Tensor, clicked: tf.Tensor, item_tags: tf.Tensor, num_tags: int) -> tf.Tensor:
    """Multi-hot float32 [B, T]: 1 for every real tag of an article the user clicked."""
    tags = tf.gather(item_tags, tf.cast(items, tf.int32))
    return tf.cast(_counts(tags, clicked, num_tags, binary=True) > 0, tf.float32)


def candidate_tags(tag_field: tf.Tensor, num_tags: int) -> tf.Tensor:
    """Multi-hot float32 [B, T] of the ids in a ``tags`` field [B, H] (padding 0 left out): the
    user's history tags, the candidates of UTPM's candidate selection."""
    return tf.cast(_counts(tag_field[..., None], tag_field > 0, num_tags, binary=True) > 0, tf.float32)


def dense(sparse: tf.SparseTensor | tf.Tensor, default=0) -> tf.Tensor:
    """A variable-length feature as a dense [B, L] tensor padded with `default`."""
    if isinstance(sparse, tf.SparseTensor):
        return tf.sparse.to_dense(sparse, default_value=tf.cast(default, sparse.dtype))
    return sparse
