"""Position embeddings of the clicked items by recency, for the sequence baselines.

ComiRec-SA (its authors' code adds a trainable position embedding to the behaviours before the
self-attention) and TransformerRec (BST, Chen et al. 2019, Section 3.1: a "position" feature per
behaviour) both need to know where a click sits in the history. The CTR input holds the history
oldest first and padded at the end (`trainer/ctr/input.py`), so a click's slot index would mean
"k-th oldest of this window", which for a short history is a different moment than for a full
one. Here a click's position is its **recency**: the number of real clicks after it (0 for the
latest click). It is computed from `hist_mask` alone, so a padded slot anywhere (at the end, at
the start, in between) changes no real click's position, and the same history gives the same
positions whatever the window width. BST's own position is the time gap to the target
(`t(v_t) − t(v_i)`); the CTR inputs carry no timestamps, so the rank stands in for it.

Only `keras.ops` is used, so the layer runs under TensorFlow and JAX.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["RecencyPositionEmbedding", "recency"]


def recency(mask: Any) -> Any:
    """Real clicks after each slot: `[B, H]` mask → int32 `[B, H]` (0 for the latest click).

    Padded slots get the count of real clicks after them too; callers mask them out.
    """
    real = ops.cast(ops.cast(mask, "bool"), "int32")
    after = ops.flip(ops.cumsum(ops.flip(real, axis=1), axis=1), axis=1) - real
    return after


@keras.saving.register_keras_serializable(package="usermodel")
class RecencyPositionEmbedding(keras.layers.Layer):
    """A trainable vector per recency rank (`recency`); ranks beyond the table share its last row.

    Args:
        positions: rows of the table; clicks with `positions - 1` or more later clicks share the
            last row ("long ago").
        dim: width of the vectors (the item width, as they are added to the item vectors).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        mask: `[B, H]`, nonzero for a real click.

    Returns:
        Float `[B, H, dim]`.
    """

    def __init__(self, positions: int, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if positions < 1:
            raise ValueError(f"positions must be >= 1, got {positions}.")
        self.positions, self.dim = int(positions), int(dim)
        self.table = keras.layers.Embedding(self.positions, self.dim, name="table")

    def build(self, input_shape: Any = None) -> None:
        self.table.build((None,))
        self.built = True

    def call(self, mask: Any) -> Any:
        return self.table(ops.minimum(recency(mask), self.positions - 1))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape, self.dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "positions": self.positions, "dim": self.dim}
