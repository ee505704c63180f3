"""What every family's ``preprocessing_fn`` shares: the reserved ids, vocabulary lookups, text
tokenization and optional-feature handling.

Every id space reserves 0 for padding and 1 for unknown (never seen in training, or missing from
the catalog), so real entries start at :data:`FIRST_ID` and a model's embedding table for a
vocabulary has :func:`table_size` rows. The same graph runs in serving, so training and serving
cannot disagree on an id.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

PAD_ID = 0
UNKNOWN_ID = 1
FIRST_ID = 2


def table_size(tft_output: tft.TFTransformOutput, vocabulary: str) -> int:
    """Rows of an embedding table over a Transform vocabulary: its entries + the reserved ids."""
    return tft_output.vocabulary_size_by_name(vocabulary) + FIRST_ID


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


def scalar(sparse: tf.SparseTensor, default) -> tf.Tensor:
    """[B, 0 or 1] optional feature → [B] dense with a default for absent values."""
    batch = tf.shape(sparse, out_type=tf.int64)[0]
    padded = tf.sparse.reset_shape(sparse, tf.stack([batch, tf.maximum(sparse.dense_shape[1], 1)]))
    return tf.sparse.to_dense(padded, default_value=default)[:, 0]


def ids(values: tf.Tensor, vocab) -> tf.Tensor:
    """Applies a vocabulary with the reserved ids: known → ≥ 2, unknown → 1."""
    index = tft.apply_vocabulary(values, vocab, default_value=-1)
    return tf.where(index < 0, tf.constant(UNKNOWN_ID, tf.int64), index + FIRST_ID)


def id_or_pad(values: tf.Tensor, vocab) -> tf.Tensor:
    """Like `ids`, but an empty string (feature absent on this row kind) → 0."""
    return tf.where(values == "", tf.constant(PAD_ID, tf.int64), ids(values, vocab))


def sparse_ids(sparse: tf.SparseTensor, vocab) -> tf.SparseTensor:
    """`ids` over the values of a variable-length feature."""
    return tf.SparseTensor(sparse.indices, ids(sparse.values, vocab), sparse.dense_shape)
