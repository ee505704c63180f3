"""UTPM's Table 3 cross layers: each against a NumPy transcription of its paper's equations,
output widths, zero input (a user with nothing), and the config round trip."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from tests.model_checks import assert_keras_ops_only
from trainer.tags.models.cross import (
    AttentionalFM,
    AutoIntCross,
    CrossFeatures,
    DeepCross,
    NeuralFM,
    make_cross,
    pair_indices,
)

D, C, B = 6, 3, 5


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _x(seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(B, D)).astype("float32")
    x[1] = 0.0  # a user with no real id in any field has x = 0
    return x


def _dense(layer) -> tuple[np.ndarray, np.ndarray | None]:
    weights = [_np(w) for w in layer.weights]
    return weights[0], (weights[1] if len(weights) > 1 else None)


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _linear_part(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _rows(layer, x: np.ndarray) -> np.ndarray:
    return x[:, :, None] * _np(layer.latent)[None]  # e_i = x_i v_i


def test_afm_equals_its_equations():
    layer = AttentionalFM(C, attention_dim=4)
    x = _x()
    out = _np(layer(x))
    e = _rows(layer, x)
    w, b = _dense(layer.attention)
    h, _ = _dense(layer.projection)
    expected = []
    for row in e:
        pairs = np.array([row[i] * row[j] for i, j in zip(*pair_indices(D))])  # p_ij, i > j
        a = _softmax((np.maximum(pairs @ w + b, 0) @ h)[:, 0])  # eqs. (4)-(5)
        expected.append((a[:, None] * pairs).sum(0))  # eq. (6) before p^T
    np.testing.assert_allclose(out[:, :D], _linear_part(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, D:], np.array(expected), rtol=1e-4, atol=1e-6)
    _, weights = layer.pair_weights(x)
    np.testing.assert_allclose(_np(weights).sum(1), 1.0, rtol=1e-5)


def test_nfm_bi_interaction_equals_the_double_loop():
    layer = NeuralFM(C, units=7)
    x = _x()
    out = _np(layer(x))
    e = _rows(layer, x)
    loop = np.array([sum(row[i] * row[j] for i in range(D) for j in range(i + 1, D)) for row in e])  # eq. (3)
    np.testing.assert_allclose(_np(layer.bi_interaction(x)), loop, rtol=1e-4, atol=1e-5)  # eq. (4)
    w, b = _dense(layer.hidden)
    assert out.shape == (B, D + 7)
    np.testing.assert_allclose(out[:, D:], np.maximum(loop @ w + b, 0), rtol=1e-4, atol=1e-5)  # eq. (5)


def test_dcn_is_dcn_v2_full_rank_cross():
    layer = DeepCross(depth=2)
    x = _x()
    layer.build((None, D))
    for cross in layer.layers_:  # move the zero-initialised biases so they count
        cross.dense.bias.assign(np.random.default_rng(1).normal(size=D).astype("float32"))
    out = _np(layer(x))
    xl = x
    for cross in layer.layers_:
        w, b = _dense(cross.dense)
        assert w.shape == (D, D)  # full-rank W: DCN-v2, not v1's vector w
        xl = x * (xl @ w + b) + xl  # DCN-v2 eq. (1)
    np.testing.assert_allclose(out[:, D:], xl, rtol=1e-4, atol=1e-5)
    assert out.shape == (B, 2 * D)


def test_autoint_equals_its_equations():
    heads, depth = 2, 2
    layer = AutoIntCross(C, heads=heads, depth=depth)
    x = _x()
    out = _np(layer(x))
    rows = _rows(layer, x)  # [B, D, C]
    for projections in layer.projections:
        wq, wk, wv, wr = (_dense(projections[p])[0] for p in ("query", "key", "value", "residual"))
        heads_out = []
        for h in range(heads):
            part = slice(h * C, (h + 1) * C)
            q, k, v = rows @ wq[:, part], rows @ wk[:, part], rows @ wv[:, part]
            alpha = _softmax(q @ k.transpose(0, 2, 1))  # eq. (5), over k
            heads_out.append(alpha @ v)  # eq. (6)
        rows = np.maximum(np.concatenate(heads_out, -1) + rows @ wr, 0)  # eqs. (7)-(8)
    assert out.shape == (B, D + D * heads * C)
    np.testing.assert_allclose(out[:, D:], rows.reshape(B, -1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["fm", "afm", "nfm", "dcn", "autoint"])
def test_width_zero_input_and_config_round_trip(kind):
    layer = make_cross(kind, latent_dim=C, attention_dim=4, depth=2, units=D)
    x = _x()
    out = _np(layer(x))
    assert out.shape == (B, layer.output_dim(D)) == layer.compute_output_shape((B, D))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1, :D], 0.0)  # x = 0: no linear part, nothing divided by 0
    clone = type(layer).from_config(layer.get_config())
    clone.build((None, D))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(clone(x)), out, rtol=1e-6, atol=1e-6)


def test_fm_cross_is_the_default_layer_and_none_is_no_layer():
    assert isinstance(make_cross("fm", C, 4, 2, D), CrossFeatures)
    assert make_cross("none", C, 4, 2, D) is None
    with pytest.raises(ValueError, match="cross must be one of"):
        make_cross("xdeepfm", C, 4, 2, D)


def test_cross_layers_use_keras_ops_only():
    assert_keras_ops_only("trainer/tags/models/cross.py")
