"""Fixtures every CTR model test uses: a fixed seed and a small planted batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from ctr_fixtures import batch


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def data():
    inputs, clicks, _ = batch(np.random.default_rng(7), 16)
    return inputs, clicks
