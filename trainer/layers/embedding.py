"""A word-embedding table that can start from pretrained vectors (e.g. GloVe rows aligned with
the Transform's vocabulary).

Every news encoder (NRMS, LSTUR, FUM) needs the same thing: copy an optional matrix into the
table once the table exists, then forget it. The matrix is not part of the config (it would put
megabytes into every saved config); the saved weights carry it.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = ["WordEmbedding"]


@keras.saving.register_keras_serializable(package="usermodel")
class WordEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` initialised from an optional pretrained matrix.

    Args:
        input_dim: int. Rows of the table (the vocabulary, 0 = padding, 1 = unknown).
        output_dim: int. Width of the word vectors.
        pretrained: optional `[input_dim, output_dim]` array copied into the table when the
            layer is built, then dropped (not serialized).
        **kwargs: passed to `keras.layers.Embedding` (initializer, `trainable`, `name`, ...).
    """

    def __init__(
        self, input_dim: int, output_dim: int, pretrained: np.ndarray | None = None, **kwargs: Any
    ) -> None:
        super().__init__(input_dim, output_dim, **kwargs)
        self._pretrained = pretrained

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        if self._pretrained is not None:
            self.embeddings.assign(np.asarray(self._pretrained, dtype="float32"))
            self._pretrained = None  # do not keep a second copy
