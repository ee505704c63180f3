"""ComiRec-SA (trainer/ctr/models/comirec_sa.py): the self-attentive interests against NumPy,
recency positions, the argmax readout, and learning. The contract every CTR model meets
(masks, round trip, JAX, Trainer) is in test_table1_baselines.py."""

from __future__ import annotations

import numpy as np
import pytest
from ctr_fixtures import SIZES, learn_planted
from keras import ops

from trainer.ctr.models import build_model
from trainer.ctr.models.comirec_sa import ComiRecSAConfig, SelfAttentiveInterests, best_interest
from trainer.ctr.models.positions import RecencyPositionEmbedding, recency


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def test_config():
    c = ComiRecSAConfig()
    assert (c.num_interests, c.attention_ratio) == (4, 4)
    with pytest.raises(ValueError, match="num_interests"):
        ComiRecSAConfig(num_interests=0)


def test_recency_positions_ignore_where_the_padding_is():
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], "float32")
    got = _np(recency(mask))
    np.testing.assert_array_equal(got[mask > 0], [2, 1, 0, 2, 1, 0, 2, 1, 0])  # 0 = the latest click
    layer = RecencyPositionEmbedding(positions=2, dim=3)
    vectors = _np(layer(mask))
    table = _np(layer.table.embeddings)
    np.testing.assert_array_equal(vectors[0, :3], table[[1, 1, 0]])  # older clicks share the last row


def test_self_attentive_interests_eqs_6_7():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 5, 4)).astype("float32")
    positions = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], "float32")
    layer = SelfAttentiveInterests(num_interests=2, units=6)
    interests, attention = (_np(v) for v in layer(h, mask, positions))
    w1, w2 = _np(layer.w1.kernel), _np(layer.w2.kernel)
    for row, n in ((0, 5), (1, 2)):
        logits = (np.tanh((h[row, :n] + positions[row, :n]) @ w1) @ w2).T  # W₂ᵀ tanh(W₁ (H + P)), [K, n]
        a = np.exp(logits - logits.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        np.testing.assert_allclose(attention[row, :, :n], a, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(interests[row], a @ h[row, :n], rtol=1e-4, atol=1e-5)  # V = H A: no positions
    np.testing.assert_array_equal(attention[1, :, 2:], 0.0)
    np.testing.assert_array_equal(interests[2], 0.0)  # no clicks, no interest


def test_readout_is_the_best_matching_interest_eq8():
    interests = np.array([[[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]] * 2, "float32")
    target = np.array([[0.0, 1.0], [-1.0, 0.0]], "float32")
    np.testing.assert_array_equal(_np(best_interest(interests, target)), [[0.0, 2.0], [-3.0, 0.0]])


def test_left_and_right_padded_histories_score_alike(data):
    """Positions count recency, so where the padding sits changes nothing."""
    inputs, _ = data
    model = build_model("comirec_sa", "tiny", **SIZES)
    moved = dict(inputs)
    shift = inputs["hist_mask"].shape[1] - inputs["hist_mask"].sum(1).astype(int)
    for key in ("hist_item", "hist_categories", "hist_words", "hist_mask"):
        moved[key] = np.stack([np.roll(v, s, axis=0) for v, s in zip(inputs[key], shift)])
    assert (moved["hist_mask"] != inputs["hist_mask"]).any()
    np.testing.assert_allclose(_np(model(moved)), _np(model(inputs)), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def planted():
    return learn_planted("comirec_sa")


def test_learns_planted_interests(planted):
    assert 0.35 < planted["untrained"] < 0.65, planted["untrained"]
    assert planted["trained"] > 0.85, planted
    assert planted["no_history"] < planted["trained"] - 0.15, planted  # it reads the history
