"""TFMA custom metrics: GroupAUC, MRR, NDCGAtK, PrecisionAtK, GlobalAUC and RelaImpr.

TFMA has no group AUC, MRR, per-user Prec@K, exact global AUC over masked slots or RelaImpr, and
its query-based path needs one row per (impression, candidate), which would copy every history
once per candidate. Our eval examples are whole units instead (docs/architecture.md):

* **news ranking** — one example per impression: the model's ``serving_default`` returns the
  scores of all candidates (padded to the batch's longest impression) and the ``labels`` feature
  holds their clicks, so each TFMA example *is* a query and GroupAUC, MRR and NDCGAtK average a
  per-impression value;
* **tag profiling** — one example per user: the label is a multi-hot vector over the tag
  vocabulary and the prediction the tag scores aligned with it, so PrecisionAtK averages a
  per-user value; the candidate tags it may rank (the user's history tags) come as a second
  output of the label signature;
* **CTR** — one example per user: the prediction holds the click probabilities of the user's
  eval items ``[E]`` (padded to the batch's longest user) and the label (from the model's
  ``labels`` signature) their clicks, −1 in padded slots; GlobalAUC pools every real slot of
  every user and computes one exact ROC AUC at the end.

Every per-example value comes from :mod:`components.metrics.reference`, the single source of
truth, so the gate and the reference agree by construction (and tests check it end to end through
TFMA). RelaImpr is a derived metric over the candidate's and the baseline's AUC; see
:class:`RelaImpr` for how to gate on it and what happens on a first run without a baseline.

Referenced from EvalConfig as ``module: "components.metrics.tfma_metrics"``; the module must be
importable wherever the Evaluator runs (installed with this project on every runner).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.utils import model_util

from components.metrics import reference

PerExample = Callable[[np.ndarray, np.ndarray], float]


def _one_group(fn: Callable[..., float], **kwargs) -> PerExample:
    return lambda labels, scores: fn(labels, scores, np.zeros(len(labels), np.int64), **kwargs)


def _one_user(k: int) -> Callable[..., float]:
    """Prec@K of one user, by calling the reference on that user's flat arrays.

    The multi-hot label becomes the user's clicked-tag set and position ``t`` of both vectors is
    tag ``t``, so the reference sees exactly the (user, tag, score) rows it is specified on. A
    multi-hot ``candidates`` vector aligned with them restricts the ranked tags (UTPM's candidate
    selection); None ranks every tag.
    """

    def per_user(labels: np.ndarray, scores: np.ndarray, candidates: np.ndarray | None = None) -> float:
        # Sized by the labels, so scores that do not cover the vocabulary raise in the reference.
        tags = np.arange(len(labels))
        clicked = {0: np.flatnonzero(labels).tolist()}
        allowed = None
        if candidates is not None:
            candidates = candidates[: len(labels)]
            if not np.isin(candidates, (0, 1)).all():
                raise ValueError("the candidate tags must be a 0/1 multi-hot over the tag vocabulary")
            allowed = {0: np.flatnonzero(candidates).tolist()}
        return reference.prec_at_k(np.zeros(len(labels), np.int64), tags, scores, clicked, k, allowed)

    return per_user


def _examples(element: metric_types.StandardMetricInputs, eval_config, key: metric_types.MetricKey):
    """Each example's labels and scores as flat float64 arrays of one length.

    Labels and scores come out of different signature calls, each padded to the longest
    example of *its* batch, and TFMA does not always batch the two calls alike (a comparison run
    on ml-1m gave one user 244 label slots and 62 score slots). The shorter width is kept; the
    slots cut from the labels must be padding (label < 0).
    """
    for label, prediction, _ in metric_util.to_label_prediction_example_weight(
        element, eval_config=eval_config, model_name=key.model_name, output_name=key.output_name,
        flatten=False, squeeze=False,
    ):
        labels = np.asarray(label, np.float64).reshape(-1)
        scores = np.asarray(prediction, np.float64).reshape(-1)
        width = min(len(labels), len(scores))
        if (labels[width:] >= 0).any():
            raise ValueError(
                f"{key.name}: an example has {int((labels >= 0).sum())} labelled slots but only {len(scores)} "
                f"scores from model {key.model_name or '(the only one)'!r}: its prediction is shorter than its labels"
            )
        yield labels[:width], scores[:width]


def _side_input(element: metric_types.StandardMetricInputs, model_name: str, name: str) -> np.ndarray:
    """A model's `name` output of its preprocessing signature for this example, as a flat array.

    TFMA keeps those outputs as transformed features (keyed by model name when a baseline runs
    too); `label_key` selects only the label among them, so other per-example inputs of a metric
    (the tag family's candidate tags) are read here."""
    features = element.get_transformed_features(model_name) or {}
    if name not in features:
        raise ValueError(
            f"model {model_name or '(the only one)'!r}: its label signature has no output {name!r} "
            f"(it has {sorted(features)}); export the model again with this version of the trainer"
        )
    return np.asarray(features[name], np.float64).reshape(-1)


class _MeanOverExamples(beam.CombineFn):
    """Averages a per-example metric; examples where it is undefined (NaN) are skipped.

    With `side_input`, the per-example function also gets that output of the model's
    preprocessing signature (`_side_input`) as a third argument."""

    def __init__(self, key: metric_types.MetricKey, eval_config, per_example: Callable[..., float],
                 side_input: str | None = None):
        self._key = key
        self._eval_config = eval_config
        self._fn = per_example
        self._side_input = side_input

    def create_accumulator(self) -> tuple[float, int]:
        return 0.0, 0

    def add_input(self, acc: tuple[float, int], element: metric_types.StandardMetricInputs) -> tuple[float, int]:
        total, count = acc
        extra = () if self._side_input is None else (_side_input(element, self._key.model_name, self._side_input),)
        for labels, scores in _examples(element, self._eval_config, self._key):
            value = self._fn(labels, scores, *extra)
            if not np.isnan(value):
                total, count = total + value, count + 1
        return total, count

    def merge_accumulators(self, accs: Iterable[tuple[float, int]]) -> tuple[float, int]:
        totals = list(accs)
        return sum(t for t, _ in totals), sum(c for _, c in totals)

    def extract_output(self, acc: tuple[float, int]) -> dict[metric_types.MetricKey, float]:
        total, count = acc
        return {self._key: total / count if count else float("nan")}


def _computations(make_combiner: Callable[[metric_types.MetricKey, Any], beam.CombineFn],
                  preprocessors: list[metric_types.Preprocessor] | None = None):
    """TFMA's computations factory: one combiner `make_combiner(key, eval_config)` per model and
    output; `preprocessors` None gives the combiners labels, predictions and weights only."""

    def create(name: str, eval_config=None, model_names=None, output_names=None, example_weighted=False):
        computations = []
        for model_name in model_names or [""]:
            for output_name in output_names or [""]:
                key = metric_types.MetricKey(
                    name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
                )
                computations.append(
                    metric_types.MetricComputation(keys=[key], preprocessors=preprocessors,
                                                   combiner=make_combiner(key, eval_config))
                )
        return computations

    return create


def _mean_of(per_example: Callable[..., float], side_input: str | None = None):
    """Computations averaging `per_example` over the examples (see `_MeanOverExamples`)."""
    # Every transformed feature: filtering by name would need the model-name level, which TFMA
    # only adds when several models run. The label signatures' outputs are small.
    preprocessors = None if side_input is None else [metric_types.TransformedFeaturePreprocessor(feature_keys=[])]
    return _computations(lambda key, eval_config: _MeanOverExamples(key, eval_config, per_example, side_input),
                         preprocessors)


class GroupAUC(tfma.metrics.Metric):
    """Mean per-impression ROC AUC over impressions with a click and a non-click (MIND's AUC)."""

    def __init__(self, name: str = "group_auc"):
        super().__init__(_mean_of(_one_group(reference.group_auc)), name=name)


class MRR(tfma.metrics.Metric):
    """Mean reciprocal rank over all clicked items of each impression (MIND's MRR)."""

    def __init__(self, name: str = "mrr"):
        super().__init__(_mean_of(_one_group(reference.mrr)), name=name)


class NDCGAtK(tfma.metrics.Metric):
    """nDCG@k per impression (gain 2^y − 1, log2(rank + 1) discount), averaged."""

    def __init__(self, k: int = 10, name: str | None = None):
        self.k = k
        super().__init__(_mean_of(_one_group(reference.ndcg_at_k, k=k)), name=name or f"ndcg@{k}")

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


class PrecisionAtK(tfma.metrics.Metric):
    """Per-user precision of the top-K predicted tags (UTPM eq. 5), averaged over users.

    Each TFMA example is one user: the label is a multi-hot vector over the tag vocabulary
    ``[T]`` (1 = the user clicked an article with that tag) and the prediction the model's tag
    scores ``[T]`` aligned with it. Per user, the K best-scored tags (ties keep vocabulary order)
    are intersected with the clicked tags and divided by ``min(K, |clicked|)``, so a user with
    fewer clicked tags than K can still reach 1. Users without a clicked tag have no value and are
    left out of the mean.

    With `candidates_key`, only the user's candidate tags are ranked (UTPM's candidate selection:
    the tags of the user's own history): the model's preprocessing signature, the one that gives
    the label, also returns that multi-hot ``[T]`` under this name. The denominator still counts
    every clicked tag (`reference.prec_at_k`), and users without a candidate have no value.

    Args:
        k: Cut-off K, a positive integer (the paper reports K ∈ {1, 2, 3} on MovieLens and
            {1, 5, 10, 20, 50} on news).
        candidates_key: Output of the label signature holding the candidate multi-hot; None
            ranks every tag.
        name: Metric name; defaults to ``prec@{k}``.

    References:
        UTPM: "Learning to Build User-tag Profile in Recommendation System", CIKM 2020, eq. 5.
    """

    def __init__(self, k: int = 5, candidates_key: str | None = None, name: str | None = None):
        self.k = k
        self.candidates_key = candidates_key
        super().__init__(_mean_of(_one_user(k), candidates_key), name=name or f"prec@{k}")

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k, "candidates_key": self.candidates_key}


class _PooledAUC(beam.CombineFn):
    """Collects (label, score) of every real slot (label ≥ 0) of every example; the exact ROC
    AUC of all of them at the end (`reference.global_auc`, ties count 1/2).

    Padded slots carry label −1 and are left out.
    """

    def __init__(self, key: metric_types.MetricKey, eval_config):
        self._key = key
        self._eval_config = eval_config

    def create_accumulator(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [], []

    def add_input(self, acc, element: metric_types.StandardMetricInputs):
        labels_acc, scores_acc = acc
        for labels, scores in _examples(element, self._eval_config, self._key):
            real = labels >= 0
            labels_acc.append(labels[real])
            scores_acc.append(scores[real])
        return labels_acc, scores_acc

    def merge_accumulators(self, accs):
        labels, scores = [], []
        for acc_labels, acc_scores in accs:
            labels += acc_labels
            scores += acc_scores
        return labels, scores

    def compact(self, acc):
        labels, scores = acc
        return ([np.concatenate(labels)], [np.concatenate(scores)]) if len(labels) > 1 else acc

    def extract_output(self, acc) -> dict[metric_types.MetricKey, float]:
        labels, scores = acc
        if not labels:
            return {self._key: float("nan")}
        return {self._key: reference.global_auc(np.concatenate(labels), np.concatenate(scores))}


class GlobalAUC(tfma.metrics.Metric):
    """Exact ROC AUC over every real (example, slot) pair at once: the CTR family's AUC.

    Each TFMA example may score several items (one CTR eval user's later events); slots whose
    label is negative (−1: padding) are left out, all others are pooled across examples and the
    AUC is computed once, exactly (Mann-Whitney, ties 1/2: `reference.global_auc`), not over
    TFMA's 10,000 threshold buckets. NaN when the pooled labels are all 0 or all 1.
    """

    def __init__(self, name: str = "auc"):
        super().__init__(_computations(_PooledAUC), name=name)


# The AUC metrics RelaImpr can be built on: our exact GlobalAUC over masked per-user rows (CTR
# family; it replaces TFMA's bucketed AUC under the name "auc") or our per-impression GroupAUC
# (news family).
_AUC_METRICS: dict[str, Callable[[], tfma.metrics.Metric]] = {
    "auc": GlobalAUC,
    "group_auc": GroupAUC,
}


def _rela_impr_or_nan(auc_model: float, auc_base: float) -> float:
    """MFN eq. 13 via the reference; NaN where it is undefined (a baseline AUC of exactly 0.5)."""
    try:
        return reference.rela_impr(float(auc_model), float(auc_base))
    except ValueError:
        return float("nan")


def _rela_impr_derivation(
    auc_keys: dict[str, metric_types.MetricKey], out_keys: dict[str, metric_types.MetricKey], baseline: str
) -> Callable[[dict[metric_types.MetricKey, Any]], dict[metric_types.MetricKey, float]]:
    """Result function of the derived metric: each model's AUC against the baseline's AUC."""

    def result(metrics: dict[metric_types.MetricKey, Any]) -> dict[metric_types.MetricKey, float]:
        base_auc = metrics[auc_keys[baseline]]
        return {out_keys[m]: _rela_impr_or_nan(metrics[auc_keys[m]], base_auc) for m in out_keys}

    return result


def _rela_impr_computations(auc_metric: str):
    def create(name: str, eval_config=None, model_names=None, output_names=None, example_weighted=False):
        baseline_spec = model_util.get_baseline_model_spec(eval_config) if eval_config else None
        if baseline_spec is None:
            # First run: nothing to compare with, so RelaImpr has no value and is not emitted.
            return []
        baseline = baseline_spec.name
        models = [m for m in model_names or [""] if m != baseline] + [baseline]
        output_names = list(output_names or [""])
        auc = _AUC_METRICS[auc_metric]()
        # The AUC computations of both models come along (TFMA de-duplicates them against the
        # same metric listed in the EvalConfig), so RelaImpr works even when AUC is not listed.
        computations = list(
            auc.computations(
                eval_config=eval_config, model_names=models, output_names=output_names,
                example_weighted=example_weighted,
            )
        )
        for output_name in output_names:
            auc_keys, out_keys = (
                {
                    m: metric_types.MetricKey(
                        name=metric, model_name=m, output_name=output_name, example_weighted=example_weighted
                    )
                    for m in models
                }
                for metric in (auc.name, name)
            )
            computations.append(
                metric_types.DerivedMetricComputation(
                    keys=list(out_keys.values()), result=_rela_impr_derivation(auc_keys, out_keys, baseline)
                )
            )
        return computations

    return create


class RelaImpr(tfma.metrics.Metric):
    """Relative AUC improvement of the candidate over the baseline model (MFN eq. 13).

    ``RelaImpr = (AUC_candidate − 0.5) / (AUC_baseline − 0.5) − 1``, a TFMA derived metric: it
    needs an EvalConfig with two ModelSpecs, one of them ``is_baseline: true``, and reads the AUC
    of both models. The candidate's value is emitted under the candidate's model name; the
    baseline gets the same formula applied to itself, which is 0 by definition. Emitting that 0
    makes TFMA's own model diff (candidate − baseline) equal RelaImpr, so the metric can be gated
    either way:

    * ``value_threshold { lower_bound { value: 0 } }`` — "not worse than the baseline";
    * ``change_threshold { direction: HIGHER_IS_BETTER absolute { value: 0 } }`` — the same
      check, expressed as a comparison with the baseline. Use ``absolute`` only: a ``relative``
      change divides by the baseline's RelaImpr, 0, and always fails.

    Without a baseline (the first run of a model) RelaImpr is undefined and not emitted. TFX's
    Evaluator then prepares the config with ``has_baseline=False, rubber_stamp=True``, which
    removes the baseline ModelSpec and every *change* threshold (TFMA without ``rubber_stamp``
    refuses change thresholds without a baseline), so a change threshold on RelaImpr does not
    block the first run. A *value* threshold stays and fails with "Metric not found": the first
    model would never be blessed, and without a blessed model no later run gets a baseline either.
    So gate RelaImpr with the change threshold, and keep at least one value threshold (e.g. an
    AUC floor) in the config: TFX writes no blessing at all when no threshold is left to check.

    A baseline AUC of exactly 0.5 leaves the ratio undefined; RelaImpr is then NaN, which fails
    any threshold (a random baseline is no evidence that the candidate is better).

    The gate in an EvalConfig (text format; the ModelSpecs name a candidate and a baseline)::

        metrics_specs {
          metrics {
            class_name: "GlobalAUC"
            module: "components.metrics.tfma_metrics"
            threshold { value_threshold { lower_bound { value: 0.6 } } }
          }
          metrics {
            class_name: "RelaImpr"
            module: "components.metrics.tfma_metrics"
            config: '{"auc_metric": "auc"}'
            threshold {
              change_threshold { direction: HIGHER_IS_BETTER absolute { value: 0.0 } }
            }
          }
        }

    Args:
        auc_metric: ``"auc"`` for :class:`GlobalAUC`, the exact ROC AUC over every real slot
            of every example (CTR family: one example per user, padded slots labelled −1), or ``"group_auc"`` for the mean
            per-impression AUC of :class:`GroupAUC` (news family).
        name: Metric name; defaults to ``rela_impr``.

    References:
        MFN paper, eq. 13; Yan et al., "Coupled Group Lasso for Web-Scale CTR Prediction in
        Display Advertising", ICML 2014.
    """

    def __init__(self, auc_metric: str = "auc", name: str = "rela_impr"):
        if auc_metric not in _AUC_METRICS:
            raise ValueError(f"`auc_metric` must be one of {sorted(_AUC_METRICS)}, got {auc_metric!r}.")
        self.auc_metric = auc_metric
        super().__init__(_rela_impr_computations(auc_metric), name=name)

    def get_config(self) -> dict:
        return {**super().get_config(), "auc_metric": self.auc_metric}
