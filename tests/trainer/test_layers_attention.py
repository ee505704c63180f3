"""Tests for trainer/layers/attention.py (keras-rs style: shapes, masking,
serialization and model saving)."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from keras import ops

from trainer.layers.attention import (
    AdditiveAttentionPooling,
    MultiHeadSelfAttention,
    large_negative,
    masked_softmax,
)

B, N, D = 3, 6, 12


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, N, D)).astype("float32")
    # Row 0: full; row 1: first 2 real; row 2: fully padded.
    mask = np.zeros((B, N), "float32")
    mask[0] = 1.0
    mask[1, :2] = 1.0
    return x, mask


def _perturb_padding(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(99).normal(scale=50.0, size=x.shape)
    return np.where(mask[..., None] > 0, x, noise).astype("float32")


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _assert_config_complete(layer: keras.layers.Layer) -> None:
    config = layer.get_config()
    params = inspect.signature(type(layer).__init__).parameters
    for name, param in params.items():
        if name == "self" or param.kind is param.VAR_KEYWORD:
            continue
        assert name in config, f"get_config() lacks {name!r}"


# --------------------------------------------------------------- helpers
def test_large_negative_is_finite_per_dtype():
    assert large_negative("float32") == -1e9
    assert np.isfinite(np.float16(large_negative("float16")))


def test_masked_softmax_zero_rows_and_normalization():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], "float32")
    mask = np.array([[1, 1, 0], [0, 0, 0]], "float32")
    probs = _np(masked_softmax(logits, mask))
    np.testing.assert_allclose(probs[0, :2].sum(), 1.0, rtol=1e-6)
    assert probs[0, 2] == 0.0
    np.testing.assert_array_equal(probs[1], 0.0)


# ------------------------------------------------- AdditiveAttentionPooling
def test_additive_pooling_shape_and_formula():
    x, mask = _inputs()
    layer = AdditiveAttentionPooling(hidden_dim=7)
    out = _np(layer(x, mask=mask))
    assert out.shape == (B, D)
    # Reference: a = q^T tanh(V h + v), softmax over real positions.
    V = _np(layer.projection_kernel)
    v = _np(layer.projection_bias)
    q = _np(layer.query)[:, 0]
    for b in range(2):
        h = x[b][mask[b] > 0]
        a = np.tanh(h @ V + v) @ q
        alpha = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
        np.testing.assert_allclose(out[b], alpha @ h, rtol=1e-5, atol=1e-6)


def test_additive_pooling_masking():
    x, mask = _inputs()
    layer = AdditiveAttentionPooling(hidden_dim=7)
    out = _np(layer(x, mask=mask))
    out_perturbed = _np(layer(_perturb_padding(x, mask), mask=mask))
    np.testing.assert_allclose(out, out_perturbed, rtol=1e-6, atol=1e-6)
    # Fully masked row pools to exact zeros.
    np.testing.assert_array_equal(out[2], 0.0)
    assert np.all(np.isfinite(out))
    # Masking matters: without a mask row 1 changes.
    unmasked = _np(layer(x))
    assert not np.allclose(unmasked[1], out[1])
    # No mask == all-ones mask; a bool mask works the same.
    np.testing.assert_allclose(
        unmasked, _np(layer(x, mask=np.ones((B, N), "float32"))), rtol=1e-6
    )
    np.testing.assert_allclose(out, _np(layer(x, mask=mask.astype(bool))), rtol=1e-6)


def test_additive_pooling_gradients_finite_on_fully_masked_rows():
    x, mask = _inputs()
    inputs = keras.Input((N, D))
    mask_in = keras.Input((N,))
    pooled = AdditiveAttentionPooling(hidden_dim=4)(inputs, mask=mask_in)
    model = keras.Model([inputs, mask_in], keras.layers.Dense(1)(pooled))
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit([x, mask], np.ones((B, 1), "float32"), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for weight in model.weights:
        assert np.all(np.isfinite(_np(weight)))


def test_additive_pooling_serialization_and_config():
    layer = AdditiveAttentionPooling(
        hidden_dim=5, kernel_initializer="he_normal", name="pool"
    )
    _assert_config_complete(layer)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, AdditiveAttentionPooling)
    assert restored.get_config() == layer.get_config()


# --------------------------------------------------- MultiHeadSelfAttention
def _reference_mhsa(layer, x, mask):
    """Per-head NumPy evaluation of NRMS eqs. (1)-(2) with the key mask."""
    kernel = _np(layer.qkv_kernel)
    hd = layer.num_heads * layer.head_dim
    out = np.zeros(x.shape[:2] + (hd,), "float64")
    for b in range(x.shape[0]):
        keys = mask[b] > 0
        if not keys.any():
            continue  # no real key: the output is unspecified
        for k in range(layer.num_heads):
            cols = slice(k * layer.head_dim, (k + 1) * layer.head_dim)
            wq = kernel[:, :hd][:, cols]
            wk = kernel[:, hd : 2 * hd][:, cols]
            wv = kernel[:, 2 * hd :][:, cols]
            logits = (x[b] @ wq) @ (x[b] @ wk).T / np.sqrt(layer.head_dim)
            logits = np.where(keys[None, :], logits, -np.inf)
            alpha = np.exp(logits - logits.max(-1, keepdims=True))
            alpha /= alpha.sum(-1, keepdims=True)
            out[b, :, cols] = alpha @ (x[b] @ wv)
    return out


def test_mhsa_shape_and_matches_reference():
    x, mask = _inputs()
    layer = MultiHeadSelfAttention(num_heads=3, head_dim=4)
    out = _np(layer(x, mask=mask))
    assert out.shape == (B, N, 12)
    assert layer.compute_output_shape((B, N, D)) == (B, N, 12)
    ref = _reference_mhsa(layer, x, mask)
    for b in range(2):  # real query positions of the non-empty rows
        real = mask[b] > 0
        np.testing.assert_allclose(out[b][real], ref[b][real], rtol=1e-4, atol=1e-5)


def test_mhsa_with_bias_has_qkv_bias():
    layer = MultiHeadSelfAttention(num_heads=2, head_dim=3, use_bias=True)
    x, mask = _inputs()
    assert _np(layer(x, mask=mask)).shape == (B, N, 6)
    assert len(layer.trainable_weights) == 2


def test_mhsa_masking():
    x, mask = _inputs()
    layer = MultiHeadSelfAttention(num_heads=2, head_dim=4)
    out = _np(layer(x, mask=mask))
    out_perturbed = _np(layer(_perturb_padding(x, mask), mask=mask))
    real = mask > 0
    np.testing.assert_allclose(out[real], out_perturbed[real], rtol=1e-5, atol=1e-5)
    # Padded query positions and fully padded rows stay finite.
    assert np.all(np.isfinite(out))
    assert np.all(np.isfinite(out_perturbed))
    # Masking matters.
    unmasked = _np(layer(x))
    assert not np.allclose(unmasked[1, :2], out[1, :2])
    np.testing.assert_allclose(
        unmasked, _np(layer(x, mask=np.ones((B, N), bool))), rtol=1e-5
    )


def test_mhsa_dropout_only_in_training():
    x, mask = _inputs()
    layer = MultiHeadSelfAttention(num_heads=2, head_dim=4, dropout=0.5, seed=3)
    a = _np(layer(x, mask=mask, training=False))
    b = _np(layer(x, mask=mask, training=False))
    np.testing.assert_array_equal(a, b)
    c = _np(layer(x, mask=mask, training=True))
    assert not np.allclose(a, c)


def test_mhsa_rejects_bad_arguments():
    with pytest.raises(ValueError):
        MultiHeadSelfAttention(num_heads=0, head_dim=4)
    with pytest.raises(ValueError):
        MultiHeadSelfAttention(num_heads=2, head_dim=4, dropout=1.0)
    with pytest.raises(ValueError):
        AdditiveAttentionPooling(hidden_dim=0)


def test_mhsa_serialization_and_config():
    layer = MultiHeadSelfAttention(
        num_heads=2, head_dim=4, dropout=0.1, use_bias=True, seed=7, name="mh"
    )
    _assert_config_complete(layer)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, MultiHeadSelfAttention)
    assert restored.get_config() == layer.get_config()


# ------------------------------------------------------------ model saving
def test_layers_model_saving_round_trip(tmp_path):
    x, mask = _inputs()
    inputs = keras.Input((N, D), name="x")
    mask_in = keras.Input((N,), name="mask")
    h = MultiHeadSelfAttention(num_heads=2, head_dim=4, dropout=0.1)(
        inputs, mask=mask_in
    )
    pooled = AdditiveAttentionPooling(hidden_dim=6)(h, mask=mask_in)
    model = keras.Model([inputs, mask_in], pooled)
    expected = _np(model.predict([x, mask], verbose=0))

    path = str(tmp_path / "attention.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(_np(restored.predict([x, mask], verbose=0)), expected)
