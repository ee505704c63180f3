"""Checks every model of every family must pass, shared by the model tests."""

from __future__ import annotations

import pathlib
from typing import Any

import keras
import numpy as np


def assert_save_load_round_trip(
    model: keras.Model, x: Any, y: Any, tmp_path: pathlib.Path, exact: bool = True
) -> keras.Model:
    """Fits one step's worth, saves as `.keras`, loads: same class, config and predictions, and
    `from_config(get_config())` rebuilds the same config.

    Fitting first moves every variable away from its initial value (Dice's moving statistics
    too), so a weight that is not saved or not restored shows in the predictions.

    Args:
        model: an unbuilt, uncompiled model with a `config` attribute.
        x, y: a small training batch (inputs dict, targets).
        tmp_path: where to write the file.
        exact: predictions must be bit-identical; False allows float rounding (1e-6).

    Returns:
        The restored model, for checks of the family's own methods.
    """
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, epochs=1, verbose=0)
    expected = np.asarray(keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
    path = str(tmp_path / f"{model.name}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model) and restored.config == model.config
    got = np.asarray(keras.ops.convert_to_numpy(restored.predict(x, verbose=0)))
    if exact:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert type(model).from_config(model.get_config()).config == model.config
    return restored
