"""Checks every model of every family must pass, shared by the model tests."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import keras
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

requires_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
"""Marks a test that runs a model under Keras' JAX backend (skipped where JAX is absent)."""


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


def assert_keras_ops_only(relpath: str) -> None:
    """The model source at `relpath` (from the repository root) uses no TensorFlow: models and
    layers compute with `keras.ops`, so they run under every Keras backend. The backend's name
    as a string ("tensorflow") is a check, not a use."""
    source = (REPO / relpath).read_text()
    assert not re.search(r"(?<![\"'])\btensorflow\b(?![\"'])", source), relpath
    assert not re.search(r"\btf\.", source), relpath
    assert not re.search(r"\bimport tf\b|\bas tf\b", source), relpath


def assert_runs_under_jax(script: str) -> None:
    """Runs `script` in a fresh interpreter with `KERAS_BACKEND=jax` (on the CPU) from the
    repository root; the script prints JAX_OK when all its checks passed."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert "JAX_OK" in result.stdout, result.stderr[-3000:]
