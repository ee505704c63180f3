"""MIND (trainer/ctr/models/mind.py): B2I routing against a NumPy Algorithm 1, the dynamic
interest number, per-batch routing logits, label-aware attention, and learning. The contract
every CTR model meets (masks, round trip, JAX, Trainer) is in test_table1_baselines.py."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from ctr_fixtures import SIZES, TRAIN_ROWS, auc, batch, predict, train, without_history
from keras import ops

from trainer.ctr.models import build_model
from trainer.ctr.models.mind import B2IRouting, LabelAwareAttention, MINDConfig, squash


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _squash(z):
    n2 = (z ** 2).sum(-1, keepdims=True)
    return np.where(n2 > 0, n2 / (1 + n2) * z / np.sqrt(np.maximum(n2, 1e-30)), 0.0)


def test_config_defaults_follow_paper():
    c = MINDConfig()
    assert (c.routing_iterations, c.routing_stddev, c.attention_power, c.adaptive_interests) == (3, 1.0, 2, True)
    with pytest.raises(ValueError, match="attention_power"):
        MINDConfig(attention_power=1.5)
    with pytest.raises(ValueError, match="routing_iterations"):
        MINDConfig(routing_iterations=0)


def test_squash_eq7():
    z = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], "float32")
    np.testing.assert_allclose(_np(squash(z)), _squash(z), rtol=1e-4, atol=1e-7)  # |squash(3,4)| = 25/26


def test_dynamic_interest_number_eq9():
    layer = B2IRouting(num_interests=4)
    lengths = np.array([0, 1, 2, 3, 4, 7, 8, 15, 16, 40])
    mask = (np.arange(40)[None] < lengths[:, None]).astype("float32")
    active = _np(layer.active(mask))
    np.testing.assert_array_equal(active.sum(1), [1, 1, 1, 1, 2, 2, 3, 3, 4, 4])  # max(1, min(4, ⌊log2 n⌋))
    assert active[:, 0].all() and (np.diff(active.astype(int), axis=1) <= 0).all()  # the first K'
    assert _np(B2IRouting(4, adaptive=False).active(mask)).all()


def test_routing_is_algorithm_1(monkeypatch):
    """Given the same starting logits, the layer is a NumPy transcription of Algorithm 1."""
    rng = np.random.default_rng(0)
    k, d, h = 3, 5, 9
    behaviours = rng.normal(size=(2, h, d)).astype("float32")
    mask = np.array([[1] * 9, [1] * 4 + [0] * 5], "float32")
    b0 = rng.normal(size=(2, k, h)).astype("float32")
    layer = B2IRouting(k, iterations=3, adaptive=True)
    layer.build((None, None, d))
    monkeypatch.setattr(layer, "initial_logits", lambda mask, training: b0)
    capsules, active = (_np(v) for v in layer(behaviours, mask))
    s = _np(layer.bilinear)
    for row in range(2):
        real = mask[row] > 0
        on = int(active[row].sum())
        assert on == min(k, int(np.floor(np.log2(real.sum()))))
        se = behaviours[row, real] @ s  # S e_i, [n, d]
        b = b0[row, :on, real].T.copy()  # [K', n]
        for step in range(3):
            w = _softmax(b, axis=0)  # eq. 6: over the interests
            u = _squash(w @ se)  # eqs. 5, 7
            b = b + u @ se.T  # eq. 8
        np.testing.assert_allclose(capsules[row, :on], u, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(capsules[row, on:], 0.0)


def test_routing_logits_are_drawn_per_batch_and_fixed_at_inference(data):
    inputs, _ = data
    model = build_model("mind", "tiny", **SIZES)
    model(inputs)
    assert [w.name for w in model.routing.trainable_weights] == ["bilinear"]  # the logits are no weight
    first, second = (_np(model(inputs, training=True)) for _ in range(2))
    assert np.abs(first - second).max() > 1e-6  # a fresh N(0, 1) draw per training batch
    np.testing.assert_array_equal(_np(model(inputs)), _np(model(inputs)))  # serving: one fixed draw
    logits = _np(model.routing.initial_logits(inputs["hist_mask"], training=True))
    assert logits.shape == (16, 4, inputs["hist_mask"].shape[1]) and 0.8 < logits.std() < 1.2
    assert np.abs(logits[0] - logits[1]).max() > 0  # and per row


def test_label_aware_attention_eq10():
    rng = np.random.default_rng(1)
    interests = rng.normal(size=(4, 3, 6)).astype("float32")
    target = rng.normal(size=(4, 6)).astype("float32")
    active = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], bool)
    vector, weights = (_np(v) for v in LabelAwareAttention(power=2)(interests, target, active))
    scores = np.einsum("bkd,bd->bk", interests, target) ** 2
    expected = _softmax(np.where(active, scores, -np.inf), axis=1)
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(vector, np.einsum("bk,bkd->bd", expected, interests), rtol=1e-4, atol=1e-5)
    _, uniform = LabelAwareAttention(power=0)(interests, target, active)  # p = 0: the mean
    np.testing.assert_allclose(_np(uniform), active / active.sum(1, keepdims=True), rtol=1e-6)


@pytest.fixture(scope="module")
def planted():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train, _ = batch(rng, TRAIN_ROWS)
    x_eval, y_eval, _ = batch(rng, 4000)
    model = build_model("mind", "tiny", **SIZES)
    untrained = auc(predict(model, x_eval), y_eval)
    train(model, x_train, y_train)
    agnostic = train(build_model("embedding_mlp", "tiny", **SIZES), without_history(x_train), y_train)
    return {"untrained": untrained, "mind": auc(predict(model, x_eval), y_eval),
            "agnostic": auc(predict(agnostic, without_history(x_eval)), y_eval)}


def test_learns_planted_interests(planted):
    assert 0.35 < planted["untrained"] < 0.65, planted["untrained"]
    assert planted["agnostic"] < 0.72, planted["agnostic"]  # the target alone: topic popularity
    assert planted["mind"] > 0.78 and planted["mind"] > planted["agnostic"] + 0.1, planted
