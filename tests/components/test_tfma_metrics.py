"""End-to-end tests of the TFMA custom metrics (components/metrics/tfma_metrics.py).

Every metric runs through the real TFMA (``run_model_analysis``, Beam DirectRunner) on tiny
SavedModels whose ``serving_default`` reads the scores from a float-list feature of each
tf.Example, so the predictions are known exactly and the TFMA result can be compared with the
NumPy reference on the same flat arrays. The two models differ only in the feature they read:
``candidate`` reads ``score`` and ``baseline`` reads ``base_score``.

TFMA runs are the expensive part (several seconds each), so each data set is evaluated once by a
module fixture and the tests read its metrics and validation result.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import config_pb2

from components.metrics import reference

MODULE = "components.metrics.tfma_metrics"
TOL = 1e-6

# News ranking: one example per impression. Lengths differ, so TFMA's batches pad the shorter
# impressions (short ones with distinct scores, where scoring the padding would change the
# result); one impression has no click (skipped by every metric), one only clicks (skipped by AUC
# only), and ties exercise the stable ranking.
IMPRESSIONS = [
    {"labels": [1, 0, 0, 1], "score": [0.9, 0.8, 0.3, 0.1], "base_score": [0.2, 0.5, 0.6, 0.7]},
    {"labels": [0, 1, 0], "score": [0.1, 0.7, 0.2], "base_score": [0.3, 0.4, 0.8]},
    {
        "labels": [1, 0, 0, 0, 0, 1, 0],
        "score": [0.5, 0.5, 0.4, 0.3, 0.2, 0.9, 0.5],
        "base_score": [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    },
    {"labels": [0, 1], "score": [0.3, 0.8], "base_score": [0.2, 0.7]},
    {"labels": [1, 1, 1], "score": [0.2, 0.4, 0.3], "base_score": [0.4, 0.2, 0.1]},
    {"labels": [0, 1, 1, 0, 0], "score": [0.6, 0.6, 0.1, 0.6, 0.3], "base_score": [0.5, 0.4, 0.3, 0.2, 0.1]},
    {"labels": [1, 0], "score": [0.6, 0.2], "base_score": [0.7, 0.1]},
    {"labels": [0, 0, 0, 0], "score": [0.3, 0.6, 0.2, 0.1], "base_score": [0.6, 0.3, 0.2, 0.1]},
]

# Tag profiling: one example per user, a multi-hot label over T = 6 tags. Users with fewer
# clicked tags than K, with none (skipped), and with tied scores.
USERS = [
    {"tags": [1, 0, 0, 1, 0, 0], "score": [0.9, 0.1, 0.8, 0.7, 0.2, 0.3]},
    {"tags": [0, 0, 0, 0, 1, 0], "score": [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]},
    {"tags": [0, 0, 0, 0, 0, 0], "score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
    {"tags": [0, 1, 1, 1, 0, 1], "score": [0.5, 0.5, 0.5, 0.1, 0.5, 0.2]},
    {"tags": [1, 1, 1, 1, 1, 0], "score": [0.3, 0.9, 0.1, 0.8, 0.2, 0.7]},
]
PREC_KS = [1, 2, 3, 5, 10]

# The same users with history candidate tags as variable-length id lists (the `labels` signature
# turns them into a multi-hot, so every batch pads the shorter lists): a user whose best tag is
# not a candidate, one with an empty candidate set (no value), one with fewer candidates than K,
# and tied candidate scores. The baseline scores differently, so each model's own candidates and
# scores must meet in the metric.
TAG_USERS = [
    {**USERS[0], "candidates": [2, 3, 4], "base_score": [0.1, 0.2, 0.3, 0.9, 0.5, 0.6]},
    {**USERS[1], "candidates": [], "base_score": [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]},
    {**USERS[2], "candidates": [0, 1], "base_score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
    {**USERS[3], "candidates": [1, 2, 4, 5, 0], "base_score": [0.9, 0.8, 0.1, 0.2, 0.3, 0.4]},
    {**USERS[4], "candidates": [0, 5], "base_score": [0.3, 0.9, 0.1, 0.8, 0.2, 0.7]},
]

# CTR: one example per (history, target) with a scalar click. Scores are distinct and far apart
# (more than TFMA's 1e-4 AUC buckets), where TFMA's bucketed AUC equals Mann-Whitney exactly.
# The candidate ranks worse than the baseline.
CTR_LABELS = [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]
CTR_SCORES = [0.91, 0.82, 0.33, 0.44, 0.15, 0.26, 0.57, 0.68, 0.79, 0.05]
CTR_BASE_SCORES = [0.85, 0.35, 0.75, 0.15, 0.25, 0.95, 0.45, 0.65, 0.80, 0.05]
CTR_ROWS = [
    {"label": [y], "score": [s], "base_score": [b]} for y, s, b in zip(CTR_LABELS, CTR_SCORES, CTR_BASE_SCORES)
]


# CTR as the family evaluates it: one example per user with their eval items' ratings (click =
# rating >= 4) and scores, of different lengths (padding in every batch), one user with clicks
# only, one without, and tied scores across users (exact AUC counts ties 1/2).
CTR_USERS = [
    {"rating": [5.0, 2.0, 4.0], "score": [0.9, 0.3, 0.6], "base_score": [0.6, 0.5, 0.4]},
    {"rating": [1.0], "score": [0.6], "base_score": [0.2]},
    {"rating": [4.5, 4.0], "score": [0.8, 0.2], "base_score": [0.7, 0.9]},
    {"rating": [3.0, 3.5, 2.5, 5.0], "score": [0.1, 0.6, 0.2, 0.7], "base_score": [0.3, 0.8, 0.1, 0.6]},
    {"rating": [2.0, 1.5], "score": [0.25, 0.05], "base_score": [0.5, 0.45]},
]


class _ScoreReader(tf.Module):
    """A "model" whose scores are a float-list feature of its input tf.Examples.

    Variable-length lists are padded with a large value, so a metric that scored padding would
    rank it first and fail the comparison with the reference.
    """

    def __init__(self, feature: str):
        super().__init__()
        self._feature = feature

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(examples, {self._feature: tf.io.VarLenFeature(tf.float32)})
        return {"scores": tf.sparse.to_dense(parsed[self._feature], default_value=1e3)}


class _UserScorer(_ScoreReader):
    """A CTR "model": ``serving_default`` as `_ScoreReader`, plus the ``labels`` signature that
    turns each user's ratings into clicks (rating >= 4), −1 in padded slots."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def labels(self, examples):
        parsed = tf.io.parse_example(examples, {"rating": tf.io.VarLenFeature(tf.float32)})
        ratings = tf.RaggedTensor.from_sparse(parsed["rating"])
        return {"clicks": tf.cast(ratings >= 4.0, tf.float32).to_tensor(default_value=-1.0)}


class _TagScorer(_ScoreReader):
    """A tag "model": ``serving_default`` as `_ScoreReader`, plus the ``labels`` signature with
    the clicked-tag multi-hot and the history candidates' multi-hot over the same T tags."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def labels(self, examples):
        parsed = tf.io.parse_example(examples, {"tags": tf.io.VarLenFeature(tf.int64),
                                                "candidates": tf.io.VarLenFeature(tf.int64)})
        clicked = tf.cast(tf.sparse.to_dense(parsed["tags"]), tf.float32)
        ids = tf.RaggedTensor.from_sparse(parsed["candidates"])
        candidates = tf.minimum(tf.reduce_sum(tf.one_hot(ids, tf.shape(clicked)[1]), axis=1), 1.0)  # empty → 0
        return {"clicked_tags": clicked, "candidate_tags": candidates}


@pytest.fixture(scope="module")
def tag_model_paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tag_models")
    paths = {}
    for name, feature in (("candidate", "score"), ("baseline", "base_score")):
        module = _TagScorer(feature)
        paths[name] = str(root / name)
        tf.saved_model.save(module, paths[name], signatures={"serving_default": module.serve, "labels": module.labels})
    return paths


@pytest.fixture(scope="module")
def user_model_paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("user_models")
    paths = {}
    for name, feature in (("candidate", "score"), ("baseline", "base_score")):
        module = _UserScorer(feature)
        paths[name] = str(root / name)
        tf.saved_model.save(module, paths[name], signatures={"serving_default": module.serve, "labels": module.labels})
    return paths


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for name, feature in (("candidate", "score"), ("baseline", "base_score")):
        module = _ScoreReader(feature)
        paths[name] = str(root / name)
        tf.saved_model.save(module, paths[name], signatures={"serving_default": module.serve})
    return paths


def _example(row: dict[str, list]) -> bytes:
    feature = {}
    for name, values in row.items():
        if not values:  # an empty list is an absent feature, as the ExampleGens write it
            continue
        if isinstance(values[0], float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _metric(class_name: str, threshold: config_pb2.MetricThreshold | None = None, **config) -> config_pb2.MetricConfig:
    return config_pb2.MetricConfig(
        class_name=class_name, module=MODULE, config=json.dumps(config) if config else "", threshold=threshold
    )


def _eval_config(
    label_key: str, metrics: list[config_pb2.MetricConfig], with_baseline: bool = True, label_signature: str = ""
) -> config_pb2.EvalConfig:
    """A candidate-plus-baseline config (the Evaluator's when a blessed model exists) or a one-model one."""
    spec = {"signature_name": "serving_default", "label_key": label_key, "prediction_key": "scores",
            "preprocessing_function_names": [label_signature] if label_signature else []}
    model_specs = [config_pb2.ModelSpec(name="candidate" if with_baseline else "", **spec)]
    if with_baseline:
        model_specs.append(config_pb2.ModelSpec(name="baseline", is_baseline=True, **spec))
    return config_pb2.EvalConfig(
        model_specs=model_specs,
        slicing_specs=[config_pb2.SlicingSpec()],
        metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)],
    )


def _run_tfma(out_dir, paths: dict[str, str], eval_config, rows: list[dict], has_baseline: bool = True):
    """Runs TFMA on `rows`; returns ({(metric, model, is_diff): value}, ValidationResult).

    Without a baseline the config is first reduced the way TFX's Evaluator does on a model's
    first run (``has_baseline=False, rubber_stamp=True``): the baseline spec and every change
    threshold are removed.
    """
    data = str(out_dir / "data.tfrecord")
    with tf.io.TFRecordWriter(data) as writer:
        for row in rows:
            writer.write(_example(row))
    if len(eval_config.model_specs) == 1:
        models = tfma.default_eval_shared_model(paths["candidate"], eval_config=eval_config)
    elif has_baseline:
        models = [
            tfma.default_eval_shared_model(paths[spec.name], eval_config=eval_config, model_name=spec.name)
            for spec in eval_config.model_specs
        ]
    else:
        eval_config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=False, rubber_stamp=True)
        models = tfma.default_eval_shared_model(paths["candidate"], eval_config=eval_config, rubber_stamp=True)
    output = str(out_dir / "tfma")
    tfma.run_model_analysis(eval_shared_model=models, eval_config=eval_config, data_location=data, output_path=output)
    (sliced,) = tfma.load_metrics(output)
    metrics = {
        (kv.key.name, kv.key.model_name, kv.key.is_diff): kv.value.double_value.value
        for kv in sliced.metric_keys_and_values
    }
    return metrics, tfma.load_validation_result(output)


def _flat(rows: list[dict], label: str, score: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, scores, group ids) of all rows, one entry per scored item."""
    labels = np.concatenate([r[label] for r in rows])
    scores = np.concatenate([r[score] for r in rows])
    groups = np.repeat(np.arange(len(rows)), [len(r[label]) for r in rows])
    return labels, scores, groups


def _not_worse_than_baseline() -> config_pb2.MetricThreshold:
    """Both gate forms RelaImpr supports: value ≥ 0 and (candidate − baseline) ≥ 0."""
    return config_pb2.MetricThreshold(
        value_threshold=config_pb2.GenericValueThreshold(lower_bound={"value": 0.0}),
        change_threshold=_no_regression().change_threshold,
    )


def _no_regression() -> config_pb2.MetricThreshold:
    return config_pb2.MetricThreshold(
        change_threshold=config_pb2.GenericChangeThreshold(
            direction=config_pb2.MetricDirection.HIGHER_IS_BETTER, absolute={"value": 0.0}
        )
    )


@pytest.fixture(scope="module")
def ranking(tmp_path_factory, model_paths):
    """Impression metrics and a GroupAUC-based RelaImpr, candidate and baseline (candidate better)."""
    eval_config = _eval_config(
        "labels",
        [
            _metric("GroupAUC"),
            _metric("MRR"),
            _metric("NDCGAtK", k=2),
            _metric("NDCGAtK", k=5),
            _metric("RelaImpr", _not_worse_than_baseline(), auc_metric="group_auc"),
        ],
    )
    return _run_tfma(tmp_path_factory.mktemp("ranking"), model_paths, eval_config, IMPRESSIONS)


@pytest.mark.parametrize("model, score", [("candidate", "score"), ("baseline", "base_score")])
def test_ranking_metrics_equal_reference_for_candidate_and_baseline(ranking, model, score):
    # With a baseline present, TFMA's own QueryStatistics crashes; ours must compute both models.
    metrics, _ = ranking
    labels, scores, groups = _flat(IMPRESSIONS, "labels", score)
    assert metrics["group_auc", model, False] == pytest.approx(reference.group_auc(labels, scores, groups), abs=TOL)
    assert metrics["mrr", model, False] == pytest.approx(reference.mrr(labels, scores, groups), abs=TOL)
    for k in (2, 5):
        expected = reference.ndcg_at_k(labels, scores, groups, k)
        assert metrics[f"ndcg@{k}", model, False] == pytest.approx(expected, abs=TOL)


def test_rela_impr_over_group_auc_equals_reference_and_passes_the_gate(ranking):
    metrics, validation = ranking
    auc_model = reference.group_auc(*_flat(IMPRESSIONS, "labels", "score"))
    auc_base = reference.group_auc(*_flat(IMPRESSIONS, "labels", "base_score"))
    expected = reference.rela_impr(auc_model, auc_base)
    assert expected > 0
    assert metrics["rela_impr", "candidate", False] == pytest.approx(expected, abs=TOL)
    # The baseline against itself is 0, so TFMA's model diff is RelaImpr itself.
    assert metrics["rela_impr", "baseline", False] == 0.0
    assert metrics["rela_impr", "candidate", True] == pytest.approx(expected, abs=TOL)
    assert validation.validation_ok, validation


@pytest.fixture(scope="module")
def tags(tmp_path_factory, model_paths):
    """Prec@K at every K, one model (UTPM has no baseline in its gate)."""
    eval_config = _eval_config("tags", [_metric("PrecisionAtK", k=k) for k in PREC_KS], with_baseline=False)
    return _run_tfma(tmp_path_factory.mktemp("tags"), model_paths, eval_config, USERS)


@pytest.mark.parametrize("k", PREC_KS)
def test_precision_at_k_equals_reference(tags, k):
    metrics, _ = tags
    n_tags = len(USERS[0]["tags"])
    user_ids = np.repeat(np.arange(len(USERS)), n_tags)
    tag_ids = np.tile(np.arange(n_tags), len(USERS))
    scores = np.concatenate([u["score"] for u in USERS])
    clicked = {i: np.flatnonzero(u["tags"]).tolist() for i, u in enumerate(USERS)}
    expected = reference.prec_at_k(user_ids, tag_ids, scores, clicked, k)
    assert metrics[f"prec@{k}", "", False] == pytest.approx(expected, abs=TOL)


@pytest.fixture(scope="module")
def history_tags(tmp_path_factory, tag_model_paths):
    """The tag family's gate: Prec@K over the history candidates and over all tags, labels and
    candidates from the `labels` signature, candidate and baseline."""
    metrics = [_metric("PrecisionAtK", k=k, candidates_key="candidate_tags") for k in PREC_KS]
    metrics += [_metric("PrecisionAtK", k=k, name=f"prec@{k}_all") for k in PREC_KS]
    eval_config = _eval_config("clicked_tags", metrics, label_signature="labels")
    return _run_tfma(tmp_path_factory.mktemp("history_tags"), tag_model_paths, eval_config, TAG_USERS)


@pytest.mark.parametrize("model, score", [("candidate", "score"), ("baseline", "base_score")])
@pytest.mark.parametrize("k", PREC_KS)
def test_precision_at_k_over_history_candidates_equals_reference(history_tags, k, model, score):
    metrics, _ = history_tags
    n_tags = len(TAG_USERS[0]["tags"])
    user_ids = np.repeat(np.arange(len(TAG_USERS)), n_tags)
    tag_ids = np.tile(np.arange(n_tags), len(TAG_USERS))
    scores = np.concatenate([u[score] for u in TAG_USERS])
    clicked = {i: np.flatnonzero(u["tags"]).tolist() for i, u in enumerate(TAG_USERS)}
    candidates = {i: u["candidates"] for i, u in enumerate(TAG_USERS)}
    history = reference.prec_at_k(user_ids, tag_ids, scores, clicked, k, candidate_tags=candidates)
    every_tag = reference.prec_at_k(user_ids, tag_ids, scores, clicked, k)
    assert metrics[f"prec@{k}", model, False] == pytest.approx(history, abs=TOL)
    assert metrics[f"prec@{k}_all", model, False] == pytest.approx(every_tag, abs=TOL)


def test_history_candidates_change_the_ranking():
    # The data above must tell the two candidate sets apart, or the test above proves nothing.
    n_tags = len(TAG_USERS[0]["tags"])
    args = (np.repeat(np.arange(len(TAG_USERS)), n_tags), np.tile(np.arange(n_tags), len(TAG_USERS)),
            np.concatenate([u["score"] for u in TAG_USERS]),
            {i: np.flatnonzero(u["tags"]).tolist() for i, u in enumerate(TAG_USERS)}, 1)
    candidates = {i: u["candidates"] for i, u in enumerate(TAG_USERS)}
    assert reference.prec_at_k(*args, candidate_tags=candidates) != pytest.approx(reference.prec_at_k(*args))


def _ctr_config(rela_impr_threshold: config_pb2.MetricThreshold) -> config_pb2.EvalConfig:
    auc_floor = config_pb2.MetricThreshold(
        value_threshold=config_pb2.GenericValueThreshold(lower_bound={"value": 0.5})
    )
    return _eval_config(
        "label",
        [
            _metric("GlobalAUC", auc_floor),
            _metric("RelaImpr", rela_impr_threshold, auc_metric="auc"),
        ],
    )


@pytest.fixture(scope="module")
def ctr_worse(tmp_path_factory, model_paths):
    """Global AUC and RelaImpr gated both ways, the candidate worse than the baseline."""
    eval_config = _ctr_config(_not_worse_than_baseline())
    return _run_tfma(tmp_path_factory.mktemp("ctr_worse"), model_paths, eval_config, CTR_ROWS)


def test_rela_impr_over_global_auc_equals_reference(ctr_worse):
    metrics, _ = ctr_worse
    auc_model = reference.global_auc(CTR_LABELS, CTR_SCORES)
    auc_base = reference.global_auc(CTR_LABELS, CTR_BASE_SCORES)
    assert metrics["auc", "candidate", False] == pytest.approx(auc_model, abs=TOL)
    assert metrics["auc", "baseline", False] == pytest.approx(auc_base, abs=TOL)
    assert metrics["rela_impr", "candidate", False] == pytest.approx(reference.rela_impr(auc_model, auc_base), abs=TOL)


def test_rela_impr_thresholds_fail_a_worse_candidate(ctr_worse):
    metrics, validation = ctr_worse
    assert metrics["rela_impr", "candidate", False] < 0
    assert not validation.validation_ok
    failed = {
        (f.metric_key.name, f.metric_key.is_diff)
        for s in validation.metric_validations_per_slice
        for f in s.failures
    }
    # Both the value and the change threshold on RelaImpr fail; the AUC floor alone holds.
    assert failed == {("rela_impr", False), ("rela_impr", True)}


@pytest.fixture(scope="module")
def ctr_first_run(tmp_path_factory, model_paths):
    """The recommended gate (AUC floor, change threshold on RelaImpr) on a first run."""
    eval_config = _ctr_config(_no_regression())
    return _run_tfma(tmp_path_factory.mktemp("first_run"), model_paths, eval_config, CTR_ROWS, has_baseline=False)


def test_first_run_without_baseline_skips_rela_impr_and_is_not_blocked(ctr_first_run):
    metrics, validation = ctr_first_run
    assert not any(name == "rela_impr" for name, _, _ in metrics)
    assert metrics["auc", "", False] == pytest.approx(reference.global_auc(CTR_LABELS, CTR_SCORES), abs=TOL)
    # The change threshold on RelaImpr was dropped with the baseline; the AUC floor was checked.
    assert validation.validation_ok, validation
    assert validation.validation_details.slicing_details[0].num_matching_slices == 1


@pytest.fixture(scope="module")
def ctr_first_run_value_gate(tmp_path_factory, model_paths):
    """A value threshold on RelaImpr on a first run."""
    eval_config = _ctr_config(_not_worse_than_baseline())
    return _run_tfma(tmp_path_factory.mktemp("first_run_value"), model_paths, eval_config, CTR_ROWS, has_baseline=False)


def test_value_threshold_on_rela_impr_blocks_a_first_run(ctr_first_run_value_gate):
    # Why RelaImpr is gated with a change threshold: TFMA keeps a value threshold without a
    # baseline and reports the absent metric as a failure.
    _, validation = ctr_first_run_value_gate
    assert not validation.validation_ok
    (failure,) = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert (failure.metric_key.name, failure.metric_key.is_diff) == ("rela_impr", False)
    assert failure.message == "Metric not found."


@pytest.fixture(scope="module")
def ctr_users(tmp_path_factory, user_model_paths):
    """The CTR family's gate: per-user examples, labels from the `labels` signature, exact
    GlobalAUC and RelaImpr over it (candidate better than the baseline)."""
    eval_config = _eval_config(
        "clicks", [_metric("GlobalAUC"), _metric("RelaImpr", _no_regression(), auc_metric="auc")],
        label_signature="labels",
    )
    return _run_tfma(tmp_path_factory.mktemp("ctr_users"), user_model_paths, eval_config, CTR_USERS)


def _ctr_flat(score: str) -> tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([np.asarray(u["rating"]) >= 4.0 for u in CTR_USERS]).astype(np.int64)
    return labels, np.concatenate([u[score] for u in CTR_USERS])


@pytest.mark.parametrize("model, score", [("candidate", "score"), ("baseline", "base_score")])
def test_global_auc_over_masked_user_rows_equals_reference(ctr_users, model, score):
    metrics, _ = ctr_users
    expected = reference.global_auc(*_ctr_flat(score))
    assert metrics["auc", model, False] == pytest.approx(expected, abs=TOL)


def test_rela_impr_over_global_auc_per_user_rows(ctr_users):
    metrics, validation = ctr_users
    expected = reference.rela_impr(reference.global_auc(*_ctr_flat("score")), reference.global_auc(*_ctr_flat("base_score")))
    assert expected > 0
    assert metrics["rela_impr", "candidate", False] == pytest.approx(expected, abs=TOL)
    assert validation.validation_ok, validation


def test_labels_padded_wider_than_the_scores_are_cut_to_the_scores():
    """TFMA may batch the label and the prediction signature differently, so one example's label
    row can be padded wider (−1) than its score row; a real label beyond the scores is an error."""
    from tensorflow_model_analysis.metrics import metric_types

    from components.metrics.tfma_metrics import _examples

    key = metric_types.MetricKey("auc")

    def pairs(labels, scores):
        element = metric_types.StandardMetricInputs(
            labels=np.asarray(labels, np.float32), predictions=np.asarray(scores, np.float32),
            example_weights=np.asarray([1.0], np.float32))
        return [(y.tolist(), np.round(s, 4).tolist()) for y, s in _examples(element, None, key)]

    assert pairs([1, 0, -1, -1], [0.9, 0.2]) == [([1, 0], [0.9, 0.2])]
    assert pairs([1, -1], [0.9, 0.0, 0.0]) == [([1, -1], [0.9, 0.0])]  # scores wider: cut to the labels
    with pytest.raises(ValueError, match="2 labelled slots but only 1 scores"):
        pairs([1, 0, -1], [0.9])
