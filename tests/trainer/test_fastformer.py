"""Tests for the Fastformer and hierarchical-pooling layers (FUM's fine-grained model)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from trainer.layers.fastformer import Fastformer
from trainer.layers.pooling import HierarchicalPooling


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _reference_fastformer(layer: Fastformer, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eqs. (1)-(8) of the Fastformer paper, one head at a time, in NumPy."""
    h, d = layer.num_heads, layer.head_dim
    qkv = x @ _np(layer.qkv_kernel) + _np(layer.qkv_bias)
    q, k, v = (qkv[..., i * h * d : (i + 1) * h * d] for i in range(3))
    w_q, w_k = _np(layer.query_attention), _np(layer.key_attention)
    out = np.zeros_like(q)

    def softmax(z, m):
        z = np.where(m > 0, z, -np.inf)
        e = np.exp(z - z.max())
        return e / e.sum()

    for b in range(x.shape[0]):
        for head in range(h):
            cols = slice(head * d, (head + 1) * d)
            qh, kh, vh = q[b, :, cols], k[b, :, cols], v[b, :, cols]
            alpha = softmax(qh @ w_q[head] / np.sqrt(d), mask[b])
            global_q = alpha @ qh
            p = global_q * kh
            beta = softmax(p @ w_k[head] / np.sqrt(d), mask[b])
            global_k = beta @ p
            out[b, :, cols] = global_k * vh
    return out @ _np(layer.output_kernel) + _np(layer.output_bias) + q


def test_fastformer_matches_paper_equations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 10)).astype("float32")
    mask = (np.arange(7)[None] < np.array([[7], [4], [1]])).astype("float32")
    layer = Fastformer(num_heads=2, head_dim=3)
    got = _np(layer(x, mask=mask))
    assert got.shape == (3, 7, 6)
    expected = _reference_fastformer(layer, x, mask)
    real = mask > 0
    np.testing.assert_allclose(got[real], expected[real], rtol=1e-4, atol=1e-5)


def test_fastformer_masked_ignores_padding_unmasked_does_not():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 9, 8)).astype("float32")
    mask = (np.arange(9)[None] < np.array([[5], [9]])).astype("float32")
    noisy = x.copy()
    noisy[0, 5:] = rng.normal(size=(4, 8)) * 10  # change only padded positions
    layer = Fastformer(num_heads=2, head_dim=4)

    masked, masked_noisy = _np(layer(x, mask=mask)), _np(layer(noisy, mask=mask))
    np.testing.assert_allclose(masked_noisy[0, :5], masked[0, :5], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(masked_noisy[1], masked[1], rtol=1e-6, atol=1e-6)
    # Masking equals running on the real prefix alone.
    prefix = _np(layer(x[:1, :5]))
    np.testing.assert_allclose(masked[0, :5], prefix[0], rtol=1e-5, atol=1e-5)

    # Without the mask (the official FUM code), padding leaks into real outputs.
    plain, plain_noisy = _np(layer(x)), _np(layer(noisy))
    assert np.abs(plain_noisy[0, :5] - plain[0, :5]).max() > 1e-2


def test_fastformer_fully_masked_row_is_finite():
    layer = Fastformer(num_heads=1, head_dim=4)
    x = np.ones((2, 3, 5), "float32")
    out = _np(layer(x, mask=np.array([[0, 0, 0], [1, 1, 0]], "float32")))
    assert np.all(np.isfinite(out))


def test_fastformer_validation_and_serialization():
    with pytest.raises(ValueError):
        Fastformer(num_heads=0, head_dim=4)
    layer = Fastformer(num_heads=2, head_dim=4, use_bias=False, name="ff")
    x = np.random.default_rng(2).normal(size=(2, 5, 6)).astype("float32")
    expected = _np(layer(x))
    clone = Fastformer.from_config(layer.get_config())
    clone.build((None, None, 6))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(clone(x)), expected, rtol=1e-6)
    assert clone.get_config() == layer.get_config()


def test_fastformer_model_saving(tmp_path):
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, Fastformer(num_heads=2, head_dim=3)(inputs))
    x = np.random.default_rng(3).normal(size=(2, 4, 6)).astype("float32")
    path = str(tmp_path / "fastformer.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(_np(restored(x)), _np(model(x)), rtol=1e-6)


def _pooling_inputs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 6, 5)).astype("float32")  # 3 clicks x (4 words + 2 fields)
    mask = np.ones((2, 3, 6), "float32")
    mask[0, 0, 2:4] = 0  # two padded words in click 0
    mask[0, 2] = 0  # click 2 of user 0 is padding
    return x, mask


def test_hierarchical_pooling_follows_the_click_structure():
    x, mask = _pooling_inputs()
    layer = HierarchicalPooling(news_dim=7, word_hidden_dim=4, news_hidden_dim=4, dropout=0.0)
    out = _np(layer(x, mask=mask))
    assert out.shape == (2, 7)

    noisy = x.copy()
    noisy[0, 0, 2:4] = 50.0  # padded words
    noisy[0, 2] = -50.0  # a padded click
    np.testing.assert_allclose(_np(layer(noisy, mask=mask)), out, rtol=1e-5, atol=1e-5)

    # A real field token (category) matters; a click's order does not.
    changed = x.copy()
    changed[1, 1, 4] += 1.0
    assert np.abs(_np(layer(changed, mask=mask))[1] - out[1]).max() > 1e-4
    swapped = x[:, [1, 0, 2]]
    np.testing.assert_allclose(
        _np(layer(swapped, mask=mask[:, [1, 0, 2]])), out, rtol=1e-5, atol=1e-5
    )

    # Equivalent to pooling each click and then the clicks, by hand.
    news = []
    for c in range(2):
        title = _np(layer.word_pooling(x[0, c : c + 1, :4], mask=mask[0, c : c + 1, :4]))
        fields = x[0, c, 4:].reshape(1, -1)
        news.append(_np(layer.news_projection(np.concatenate([title, fields], -1))))
    by_hand = _np(layer.news_pooling(np.concatenate(news)[None]))
    np.testing.assert_allclose(out[0], by_hand[0], rtol=1e-5, atol=1e-5)


def test_hierarchical_pooling_empty_user_is_zero_and_serializes(tmp_path):
    x, mask = _pooling_inputs()
    layer = HierarchicalPooling(news_dim=7, word_hidden_dim=4, news_hidden_dim=4)
    empty = _np(layer(x, mask=np.zeros_like(mask)))
    np.testing.assert_array_equal(empty, 0.0)

    inputs = keras.Input((3, 6, 5))
    mask_in = keras.Input((3, 6))
    model = keras.Model([inputs, mask_in], layer(inputs, mask=mask_in))
    path = str(tmp_path / "pooling.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        _np(restored([x, mask])), _np(model([x, mask])), rtol=1e-6, atol=1e-6
    )
    assert HierarchicalPooling.from_config(layer.get_config()).get_config() == layer.get_config()
