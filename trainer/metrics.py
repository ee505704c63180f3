"""Keras metrics over impressions: group AUC, MRR and nDCG@k for training-time monitoring.

They compute the same numbers as the NumPy reference
(`components/metrics/reference.py`: `group_auc`, `mrr`, `ndcg_at_k`), the
source of truth for the semantics, but as stateful `keras.metrics.Metric`s that
`model.compile(metrics=[...])` can update batch by batch. Only `keras.ops` is
used, so they run under TensorFlow and JAX.

Input layout, shared by the three metrics:

* `y_pred`: scores `[B, C]`, one row per impression (its candidates).
* `y_true`: either the clicked slot of each row, integer `[B]` (or `[B, 1]`),
  the training layout of `trainer/news/input.py` (one click among 1 + K
  candidates); or labels `[B, C]`, whole impressions (0/1 clicks; nDCG also
  takes graded labels >= 0).
* Padding: a candidate is padding, i.e. absent as if it were not in the
  impression, when its `sample_weight` is 0 (pass the model's `cand_mask`,
  `[B, C]`; a `[B]` weight applies to the whole row) or, in the label layout,
  when its label is negative (e.g. labels batched with `padding_values=-1`).
  Weights act only as this mask: impressions are never weighted, as in the
  reference. Padding must be marked: `NewsRankingModel` scores padded
  candidates -1e9, so unmarked ones would count as well-ranked negatives and
  inflate the AUC.

Each metric accumulates the sum of the per-impression values and the number of
impressions the value is defined for (AUC: at least one positive and one
negative real candidate; MRR, nDCG: at least one positive), and `result()` is
their ratio. Where the reference returns NaN because no impression qualified,
`result()` returns 0. Tied scores count 1/2 in the AUC; MRR and nDCG rank tied
candidates in input order (the earlier one first), like the reference's stable
sort. The computation is pairwise, `O(B C^2)` memory, meant for C up to a few
hundred.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["ImpressionAUC", "ImpressionMRR", "ImpressionNDCG"]


def _ranks(keys: Any, real: Any, dtype: Any) -> Any:
    """1-based descending ranks by `keys` among the real candidates of each row.

    rank_i = 1 + #{real j: key_j > key_i} + #{real j < i: key_j == key_i}: the
    position after a stable descending sort, as in the reference.

    Args:
        keys: `[B, C]`.
        real: bool `[B, C]`, False at padding.
        dtype: dtype of the result.

    Returns:
        Ranks `[B, C]` in `dtype`.
    """
    index = ops.arange(ops.shape(keys)[-1])
    earlier = ops.less(index[None, :], index[:, None])  # [i, j]: j before i
    key_i, key_j = keys[:, :, None], keys[:, None, :]
    above = ops.logical_or(
        ops.greater(key_j, key_i),
        ops.logical_and(ops.equal(key_j, key_i), earlier[None]),
    )
    above = ops.logical_and(above, real[:, None, :])
    return 1 + ops.sum(ops.cast(above, dtype), axis=-1)


class _ImpressionMetric(keras.metrics.Metric):
    """Mean of a per-impression value over the impressions it is defined for."""

    def __init__(self, name: str, dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(
        self, y_true: Any, y_pred: Any, sample_weight: Any | None = None
    ) -> None:
        """Adds a batch of impressions.

        Args:
            y_true: clicked slots, int `[B]` or `[B, 1]`, or labels `[B, C]`
                (negative = padding).
            y_pred: scores `[B, C]`.
            sample_weight: optional, `[B, C]` or `[B]`; 0 marks padding.
        """
        y_true = ops.convert_to_tensor(y_true)
        scores = ops.cast(y_pred, self.dtype)
        num_candidates = ops.shape(scores)[-1]
        if len(y_true.shape) == 1 or (y_true.shape[-1] == 1 and scores.shape[-1] != 1):
            slots = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))
            real = ops.ones_like(scores, dtype="bool")
            labels = ops.equal(
                ops.arange(num_candidates, dtype="int32")[None, :], slots
            )
        else:
            labels = ops.cast(y_true, self.dtype)
            real = ops.greater_equal(labels, 0)
        if sample_weight is not None:
            weight = ops.cast(sample_weight, self.dtype)
            if len(weight.shape) == 1:
                weight = weight[:, None]
            real = ops.logical_and(real, ops.not_equal(weight, 0))
        labels = ops.where(real, ops.cast(labels, self.dtype), 0)
        values, defined = self._per_impression(scores, labels, real)
        defined = ops.cast(defined, self.dtype)
        self.total.assign_add(ops.sum(values * defined))
        self.count.assign_add(ops.sum(defined))

    def _per_impression(self, scores: Any, labels: Any, real: Any) -> tuple[Any, Any]:
        """Per-row values `[B]` and where they are defined, bool `[B]`.

        Args:
            scores: float `[B, C]`.
            labels: float `[B, C]`, 0 at padding.
            real: bool `[B, C]`, False at padding.
        """
        raise NotImplementedError

    def result(self) -> Any:
        """The mean over defined impressions, 0 when there is none."""
        return self.total / ops.maximum(self.count, 1)

    def reset_state(self) -> None:
        self.total.assign(0)
        self.count.assign(0)


@keras.saving.register_keras_serializable(package="usermodel")
class ImpressionAUC(_ImpressionMetric):
    """Mean per-impression ROC AUC (MIND's AUC; `reference.group_auc`).

    Mann-Whitney AUC of each impression's real candidates, a tied
    (positive, negative) pair counting 1/2, averaged over the impressions
    with at least one positive and one negative. Labels are 0/1 (a label
    > 0 is a click). See the module docstring for the input layout.

    Args:
        name: metric name.
        dtype: dtype of the computation and the state.
    """

    def __init__(self, name: str = "group_auc", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def _per_impression(self, scores: Any, labels: Any, real: Any) -> tuple[Any, Any]:
        positive = ops.cast(labels > 0, self.dtype)
        negative = ops.cast(ops.logical_and(real, labels <= 0), self.dtype)
        score_i, score_j = scores[:, :, None], scores[:, None, :]
        win = ops.cast(ops.greater(score_i, score_j), self.dtype) + 0.5 * ops.cast(
            ops.equal(score_i, score_j), self.dtype
        )
        pairs = positive[:, :, None] * negative[:, None, :]
        num_pairs = ops.sum(positive, axis=-1) * ops.sum(negative, axis=-1)
        wins = ops.sum(win * pairs, axis=(1, 2))
        return wins / ops.maximum(num_pairs, 1), num_pairs > 0


@keras.saving.register_keras_serializable(package="usermodel")
class ImpressionMRR(_ImpressionMetric):
    """Mean reciprocal rank over all clicks (MIND's `mrr_score`; `reference.mrr`).

    Per impression `sum_i y_i / rank_i / sum_i y_i` over every clicked
    candidate, ranks from a stable descending sort of the real candidates;
    averaged over the impressions with a click. Labels are 0/1. See the
    module docstring for the input layout.

    Args:
        name: metric name.
        dtype: dtype of the computation and the state.
    """

    def __init__(self, name: str = "mrr", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def _per_impression(self, scores: Any, labels: Any, real: Any) -> tuple[Any, Any]:
        clicks = ops.sum(labels, axis=-1)
        reciprocal = ops.sum(labels / _ranks(scores, real, self.dtype), axis=-1)
        return reciprocal / ops.maximum(clicks, 1), clicks > 0


@keras.saving.register_keras_serializable(package="usermodel")
class ImpressionNDCG(_ImpressionMetric):
    """Mean per-impression nDCG@k (MIND's `ndcg_score`; `reference.ndcg_at_k`).

    DCG@k = `sum_{rank <= k} (2^y - 1) / log2(rank + 1)`, ranks from a stable
    descending sort of the real candidates by score; the ideal DCG@k ranks
    them by their labels. Averaged over the impressions with a positive
    label. Labels may be graded (>= 0). See the module docstring for the
    input layout.

    Args:
        k: cut-off, a positive integer (larger than an impression: all of it).
        name: metric name; defaults to `ndcg_at_<k>`.
        dtype: dtype of the computation and the state.

    Raises:
        ValueError: if `k` is not a positive integer.
    """

    def __init__(self, k: int = 10, name: str | None = None, dtype: Any = None) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive integer, got {k!r}.")
        super().__init__(name=name or f"ndcg_at_{k}", dtype=dtype)
        self.k = k

    def _per_impression(self, scores: Any, labels: Any, real: Any) -> tuple[Any, Any]:
        gains = ops.power(2.0, labels) - 1

        def dcg(keys: Any) -> Any:
            ranks = _ranks(keys, real, self.dtype)
            discounted = gains / ops.log2(ranks + 1)
            return ops.sum(ops.where(ranks <= self.k, discounted, 0), axis=-1)

        ideal = dcg(labels)
        return dcg(scores) / ops.where(ideal > 0, ideal, 1), ideal > 0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "k": self.k}
