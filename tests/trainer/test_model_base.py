"""The shared model base (`trainer/model_base.py`): the pointwise loss of the CTR and tags families."""

from __future__ import annotations

import keras
import numpy as np

from trainer.model_base import sigmoid_cross_entropy


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def test_sigmoid_cross_entropy_matches_numpy():
    z = np.array([-3.0, 0.0, 2.0, 100.0, -100.0], "float32")
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0], "float32")
    p = 1 / (1 + np.exp(-z.astype("float64")))
    with np.errstate(divide="ignore"):
        terms = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    terms[3] = 100.0  # log(1 - sigmoid(100)) underflows in NumPy; the exact value is ~100
    np.testing.assert_allclose(_np(sigmoid_cross_entropy(y, z)), terms.mean(), rtol=1e-5)
    w = np.array([1.0, 0.0, 2.0, 0.0, 1.0], "float32")
    np.testing.assert_allclose(_np(sigmoid_cross_entropy(y[:, None], z, w)), (w * terms).mean(), rtol=1e-5)
    keras_bce = keras.losses.binary_crossentropy(y[:3, None], z[:3, None], from_logits=True)
    np.testing.assert_allclose(_np(sigmoid_cross_entropy(y[:3], z[:3])), _np(keras_bce).mean(), rtol=1e-5)
