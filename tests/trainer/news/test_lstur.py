"""Tests for LSTUR and its registry entry."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from news_fixtures import NUM_USERS, SIZES, impression_auc, impressions, training_set

from tests.model_checks import assert_save_load_round_trip
from trainer.news.models import MODELS, build_model
from trainer.news.models.lstur import LSTUR, LSTURConfig


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def batch():
    inputs, _ = impressions(np.random.default_rng(7), 4, width=6, clicks=2)
    inputs["cand_mask"][0, 4:] = 0.0
    return inputs


def _tiny(**overrides) -> LSTUR:
    return build_model("lstur", "tiny", **SIZES, num_users=NUM_USERS, **overrides)


def test_config_defaults_follow_paper():
    c = LSTURConfig()
    assert (c.embedding_dim, c.num_filters, c.window_size, c.category_dim) == (300, 300, 3, 100)
    assert c.news_dim == 500 and c.combine == "ini" and c.user_mask_prob == 0.5
    assert LSTURConfig.from_dict(c.to_dict()) == c
    assert MODELS["lstur"] == (LSTURConfig, LSTUR)
    with pytest.raises(ValueError):
        LSTURConfig(combine="sum")
    with pytest.raises(ValueError):
        build_model("lstur", "tiny", **SIZES)  # num_users not set


@pytest.mark.parametrize("combine", ["ini", "con"])
def test_shapes_masking_and_user_embedding(batch, combine):
    model = _tiny(combine=combine)
    scores = _np(model(batch))
    b, c = batch["cand_mask"].shape
    assert scores.shape == (b, c) and np.all(np.isfinite(scores))
    assert np.all(scores[batch["cand_mask"] == 0] <= -1e8)
    d = model.config.news_dim
    user = _np(model.encode_user(batch))
    assert user.shape == (b, d)

    # The long-term part depends on the user id; unknown users (1) and
    # padding (0) both get the zero long-term vector.
    other = _np(model.encode_user(dict(batch, user_index=(batch["user_index"] % 60) + 3)))
    assert np.abs(other - user).max() > 1e-6
    unknown = _np(model.encode_user(dict(batch, user_index=np.ones(b, "int32"))))
    padding = _np(model.encode_user(dict(batch, user_index=np.zeros(b, "int32"))))
    np.testing.assert_allclose(unknown, padding, rtol=1e-6, atol=1e-6)

    # Padded history slots are skipped by the GRU.
    noisy = dict(batch)
    pad = batch["hist_mask"] == 0
    noisy["hist_title"] = np.where(
        pad[..., None], np.full_like(batch["hist_title"], 5), batch["hist_title"]
    )
    np.testing.assert_allclose(_np(model(noisy)), scores, rtol=1e-5, atol=1e-5)


def test_long_term_mask_in_training_only(batch):
    model = _tiny(user_mask_prob=1.0)
    index = batch["user_index"]
    np.testing.assert_array_equal(_np(model.user_encoder.long_term(index, training=True)), 0.0)
    assert np.abs(_np(model.user_encoder.long_term(index, training=False))).max() > 0


def test_save_load_round_trip(batch, tmp_path):
    y = np.zeros(batch["cand_mask"].shape[0], "int32")
    assert_save_load_round_trip(_tiny(), batch, y, tmp_path, exact=False)


def test_learns_planted_interests():
    rng = np.random.default_rng(0)
    x_train, y_train = training_set(rng, 1536)
    x_eval, labels = impressions(rng, 200, width=6, clicks=2)
    model = _tiny(seed=0)

    def auc() -> float:
        scores = _np(model.predict(x_eval, batch_size=200, verbose=0))
        return impression_auc(scores, labels, x_eval["cand_mask"])

    untrained = auc()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
    trained = auc()
    assert 0.3 <= untrained <= 0.7, untrained
    assert trained >= 0.8, (untrained, trained)
