"""Keras impression metrics (trainer/metrics.py) against the NumPy reference."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from components.metrics import reference
from trainer.metrics import ImpressionAUC, ImpressionMRR, ImpressionNDCG

# (metric factory, reference function of (labels, scores, group_ids)).
METRICS = {
    "auc": (ImpressionAUC, reference.group_auc),
    "mrr": (ImpressionMRR, reference.mrr),
    "ndcg1": (lambda: ImpressionNDCG(1), lambda *a: reference.ndcg_at_k(*a, k=1)),
    "ndcg3": (lambda: ImpressionNDCG(3), lambda *a: reference.ndcg_at_k(*a, k=3)),
    "ndcg10": (lambda: ImpressionNDCG(10), lambda *a: reference.ndcg_at_k(*a, k=10)),
}
FORMATS = ("labels_weight", "labels_minus_one", "slots_weight", "slots")
PAD_SCORE = -1e9  # what NewsRankingModel gives padded candidates


def _batch(rng, rows, cands, fmt, max_label=1):
    """Random impressions with tied scores and padding, in layout `fmt`.

    Returns:
        `(y_true, y_pred, sample_weight, labels, real)`: the metric inputs and
        the dense labels / real-candidate mask they encode.
    """
    scores = rng.integers(0, 6, (rows, cands)) / 4.0  # few values: many ties
    real = rng.random((rows, cands)) < 0.8
    if fmt == "slots":
        real[:] = True
    if fmt.startswith("slots"):
        slots = rng.integers(0, cands, rows)
        labels = np.zeros((rows, cands))
        labels[np.arange(rows), slots] = 1
        real[np.arange(rows), slots] = True
        y_true = slots.astype(np.int32)
    else:
        labels = rng.integers(0, max_label + 1, (rows, cands)) * (
            rng.random((rows, cands)) < 0.4
        )
        labels[0] = 0  # no click
        labels[1] = 1  # only clicks
        real[2] = False  # all padding
        labels = np.where(real, labels, 0).astype(np.float64)
        y_true = labels if fmt == "labels_weight" else np.where(real, labels, -1.0)
    scores = np.where(real, scores, PAD_SCORE).astype(np.float32)
    weight = real.astype(np.float32) if fmt.endswith("weight") else None
    return y_true, scores, weight, labels, real


def _accumulate(metric, batches):
    """Feeds `batches` to `metric`; returns its result and the flat reference inputs."""
    flat_labels, flat_scores, groups, offset = [], [], [], 0
    for y_true, scores, weight, labels, real in batches:
        metric.update_state(y_true, scores, sample_weight=weight)
        rows, _ = np.nonzero(real)
        flat_labels.append(labels[real])
        flat_scores.append(scores[real].astype(np.float64))
        groups.append(rows + offset)
        offset += len(labels)
    flat = (
        np.concatenate(flat_labels),
        np.concatenate(flat_scores),
        np.concatenate(groups),
    )
    return float(metric.result()), flat


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(METRICS))
def test_matches_reference(name, fmt, seed):
    make, ref = METRICS[name]
    rng = np.random.default_rng(seed)
    batches = [
        _batch(rng, rows, cands, fmt) for rows, cands in [(8, 5), (12, 17), (6, 40)]
    ]
    result, flat = _accumulate(make(), batches)
    assert result == pytest.approx(ref(*flat), abs=1e-6)


@pytest.mark.parametrize("k", [1, 2, 5, 50])
def test_ndcg_graded_labels(k):
    rng = np.random.default_rng(k)
    batches = [_batch(rng, 10, 12, "labels_minus_one", max_label=3) for _ in range(3)]
    result, flat = _accumulate(ImpressionNDCG(k), batches)
    assert result == pytest.approx(reference.ndcg_at_k(*flat, k=k), abs=1e-6)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_no_defined_impression_gives_zero(name):
    make, ref = METRICS[name]
    labels, scores = np.zeros((3, 4)), np.arange(12.0).reshape(3, 4)
    metric = make()
    metric.update_state(labels, scores)
    assert math.isnan(ref(labels.ravel(), scores.ravel(), np.repeat(np.arange(3), 4)))
    assert float(metric.result()) == 0.0


def test_padding_must_be_marked_for_auc():
    # Real candidates: click scored 0.2, non-click 0.5 -> AUC 0; the padded
    # slot (score -1e9, label 0) would otherwise count as a beaten negative.
    scores = np.array([[0.2, 0.5, PAD_SCORE]], np.float32)
    labels = np.array([[1.0, 0.0, 0.0]])
    masked, unmasked = ImpressionAUC(), ImpressionAUC()
    masked.update_state(labels, scores, sample_weight=np.array([[1.0, 1.0, 0.0]]))
    unmasked.update_state(labels, scores)
    assert float(masked.result()) == 0.0
    assert float(unmasked.result()) == 0.5


def test_row_weight_drops_rows():
    # A [B] weight marks whole rows: only row 0 (MRR 1/2) counts.
    scores = np.array([[0.1, 0.9], [0.9, 0.1]], np.float32)
    metric = ImpressionMRR()
    metric.update_state(np.array([0, 0]), scores, sample_weight=np.array([1.0, 0.0]))
    assert float(metric.result()) == 0.5


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="graph mode of TF")
def test_dynamic_shapes_in_tf_function():
    import tensorflow as tf

    rng = np.random.default_rng(7)
    for fmt in ("labels_weight", "slots"):
        y_true, scores, weight, _, _ = _batch(rng, 9, 11, fmt)
        weight = np.ones_like(scores) if weight is None else weight
        eager, graph = ImpressionNDCG(3), ImpressionNDCG(3)
        eager.update_state(y_true, scores, sample_weight=weight)
        spec = tf.TensorSpec([None] * y_true.ndim, tf.as_dtype(y_true.dtype))
        tf.function(
            graph.update_state,
            input_signature=[
                spec,
                tf.TensorSpec([None, None]),
                tf.TensorSpec([None, None]),
            ],
        )(y_true, scores, weight)
        assert float(graph.result()) == pytest.approx(float(eager.result()), abs=1e-7)


def test_reset_state():
    rng = np.random.default_rng(3)
    first, second = (
        _batch(rng, 8, 6, "labels_weight"),
        _batch(rng, 8, 6, "labels_weight"),
    )
    for make, _ in METRICS.values():
        metric, fresh = make(), make()
        metric.update_state(first[0], first[1], sample_weight=first[2])
        metric.reset_state()
        assert float(metric.result()) == 0.0
        metric.update_state(second[0], second[1], sample_weight=second[2])
        fresh.update_state(second[0], second[1], sample_weight=second[2])
        assert float(metric.result()) == float(fresh.result())


@pytest.mark.parametrize(
    "metric",
    [ImpressionAUC(), ImpressionMRR(name="m"), ImpressionNDCG(5, dtype="float64")],
)
def test_serialization_round_trip(metric):
    config = keras.metrics.serialize(metric)
    assert config["registered_name"] == f"usermodel>{type(metric).__name__}"
    restored = keras.metrics.deserialize(config)
    assert type(restored) is type(metric)
    assert restored.get_config() == metric.get_config()


def test_ndcg_rejects_bad_k():
    for k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="`k`"):
            ImpressionNDCG(k)


def test_compile_fit_smoke():
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    metrics = [ImpressionAUC(), ImpressionMRR(), ImpressionNDCG(3)]
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=metrics,
    )
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.integers(0, 6, 16).astype(np.int32)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    for name in ("group_auc", "mrr", "ndcg_at_3"):
        assert 0.0 <= history.history[name][-1] <= 1.0
