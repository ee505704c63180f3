"""TFMA custom metrics for impression-level ranking: GroupAUC, MRR, NDCGAtK.

TFMA has no group AUC or MRR, and its query-based path needs one row per (impression,
candidate), which would copy every history once per candidate. Our eval examples are whole
impressions instead (docs/architecture.md): the model's ``serving_default`` returns the scores of
all candidates of an impression and the ``labels`` feature holds their clicks, so each TFMA
example *is* a query (query key = impression id) and these metrics average a per-impression value.
The per-impression value comes from :mod:`components.metrics.reference`, the single source of
truth, so the gate and the reference agree by construction (and tests check it end to end).

Referenced from EvalConfig as ``module: "components.metrics.tfma_metrics"``; the module must be
importable wherever the Evaluator runs (installed with this project on every runner).
"""

from __future__ import annotations

from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util

from components.metrics import reference

PerImpression = Callable[[np.ndarray, np.ndarray], float]


def _one_group(fn: Callable[..., float], **kwargs) -> PerImpression:
    return lambda labels, scores: fn(labels, scores, np.zeros(len(labels), np.int64), **kwargs)


class _MeanOverImpressions(beam.CombineFn):
    """Averages a per-impression metric; impressions where it is undefined are skipped."""

    def __init__(self, key: metric_types.MetricKey, eval_config, per_impression: PerImpression):
        self._key = key
        self._eval_config = eval_config
        self._fn = per_impression

    def create_accumulator(self) -> tuple[float, int]:
        return 0.0, 0

    def add_input(self, acc: tuple[float, int], element: metric_types.StandardMetricInputs) -> tuple[float, int]:
        total, count = acc
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            flatten=False,
            squeeze=False,
        ):
            labels = np.asarray(label, np.float64).reshape(-1)
            # Scores are padded to the batch's longest impression; the labels know the length.
            scores = np.asarray(prediction, np.float64).reshape(-1)[: len(labels)]
            value = self._fn(labels, scores)
            if not np.isnan(value):
                total, count = total + value, count + 1
        return total, count

    def merge_accumulators(self, accs: Iterable[tuple[float, int]]) -> tuple[float, int]:
        totals = list(accs)
        return sum(t for t, _ in totals), sum(c for _, c in totals)

    def extract_output(self, acc: tuple[float, int]) -> dict[metric_types.MetricKey, float]:
        total, count = acc
        return {self._key: total / count if count else float("nan")}


def _computations(per_impression: PerImpression):
    def create(name: str, eval_config=None, model_names=None, output_names=None, example_weighted=False):
        computations = []
        for model_name in model_names or [""]:
            for output_name in output_names or [""]:
                key = metric_types.MetricKey(
                    name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
                )
                computations.append(
                    metric_types.MetricComputation(
                        keys=[key], preprocessors=None,
                        combiner=_MeanOverImpressions(key, eval_config, per_impression),
                    )
                )
        return computations

    return create


class GroupAUC(tfma.metrics.Metric):
    """Mean per-impression ROC AUC over impressions with a click and a non-click (MIND's AUC)."""

    def __init__(self, name: str = "group_auc"):
        super().__init__(_computations(_one_group(reference.group_auc)), name=name)


class MRR(tfma.metrics.Metric):
    """Mean reciprocal rank over all clicked items of each impression (MIND's MRR)."""

    def __init__(self, name: str = "mrr"):
        super().__init__(_computations(_one_group(reference.mrr)), name=name)


class NDCGAtK(tfma.metrics.Metric):
    """nDCG@k per impression (gain 2^y − 1, log2(rank + 1) discount), averaged."""

    def __init__(self, k: int = 10, name: str | None = None):
        self.k = k
        super().__init__(_computations(_one_group(reference.ndcg_at_k, k=k)), name=name or f"ndcg@{k}")

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}
