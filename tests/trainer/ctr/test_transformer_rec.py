"""TransformerRec (trainer/ctr/models/transformer_rec.py): the transformer block's padding mask
and equations, DIN's target attention over its outputs, and learning. The contract every CTR
model meets (masks, round trip, JAX, Trainer) is in test_table1_baselines.py."""

from __future__ import annotations

import numpy as np
import pytest
from ctr_fixtures import SIZES, learn_planted
from keras import ops

from trainer.ctr.models import build_model
from trainer.ctr.models.din import LocalActivationUnit
from trainer.ctr.models.transformer_rec import TransformerBlock, TransformerRecConfig


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _layer_norm(x, norm):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * _np(norm.gamma) + _np(norm.beta)


def test_config_defaults_follow_bst():
    c = TransformerRecConfig()
    assert (c.blocks, c.heads, c.dropout) == (1, 8, 0.2)  # BST Table 2, Table 4
    with pytest.raises(ValueError, match="dropout"):
        TransformerRecConfig(dropout=1.0)


def test_block_is_eqs_4_5_and_padding_is_invisible():
    rng = np.random.default_rng(0)
    block = TransformerBlock(heads=2, feed_forward_units=12, dropout=0.3)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "float32")
    out = _np(block(x, mask))
    # A padded slot's content, or its absence, changes no real position.
    noisy = np.where(mask[..., None] > 0, x, 50 * rng.normal(size=x.shape)).astype("float32")
    np.testing.assert_allclose(_np(block(noisy, mask))[mask > 0], out[mask > 0], rtol=1e-5, atol=1e-5)
    short = _np(block(x[:1, :3], mask[:1, :3]))
    np.testing.assert_allclose(short[0], out[0, :3], rtol=1e-5, atol=1e-5)
    # Eqs. 4-5 at inference (no dropout), from the block's own attention output.
    attended = _np(block.attention(x[1:], x[1:]))
    s = _layer_norm(x[1] + attended[0], block.attention_norm)
    hidden = s @ _np(block.inner.kernel) + _np(block.inner.bias)
    hidden = np.where(hidden > 0, hidden, 0.2 * hidden)  # LeakyReLU
    f = _layer_norm(s + hidden @ _np(block.outer.kernel) + _np(block.outer.bias), block.output_norm)
    np.testing.assert_allclose(out[1], f, rtol=1e-4, atol=1e-4)
    # Dropout only in training.
    assert np.abs(_np(block(x, mask, training=True)) - out).max() > 1e-4


def test_target_attention_is_dins_unit_over_the_encoded_clicks(data):
    inputs, _ = data
    model = build_model("transformer_rec", "tiny", **SIZES)
    model(inputs)
    assert isinstance(model.attention, LocalActivationUnit)
    history, target = model.embed_items(inputs)
    encoded = _np(model.encode(history, inputs["hist_mask"]))
    np.testing.assert_array_equal(encoded[inputs["hist_mask"] == 0], 0.0)
    weights = _np(model.attention(encoded, target, inputs["hist_mask"]))
    np.testing.assert_array_equal(weights[inputs["hist_mask"] == 0], 0.0)


@pytest.fixture(scope="module")
def planted():
    return learn_planted("transformer_rec")


def test_learns_planted_interests(planted):
    assert 0.35 < planted["untrained"] < 0.65, planted["untrained"]
    assert planted["trained"] > 0.76, planted
    assert planted["no_history"] < planted["trained"] - 0.15, planted  # it reads the history
