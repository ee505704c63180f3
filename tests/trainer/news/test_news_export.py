"""Tests for scoring from cached news vectors (trainer/news/export.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from news_fixtures import NUM_USERS, SIZES, A, L, article

from trainer.news import input as news_input
from trainer.news.export import CachedScorer, encode_table
from trainer.news.models import build_model

NUM_NEWS = 40


@pytest.fixture(scope="module")
def table() -> news_input.NewsTable:
    rng = np.random.default_rng(0)
    rows = [article(rng, int(rng.integers(8))) for _ in range(NUM_NEWS)]
    fields = {f: np.stack([r[f] for r in rows]).astype("int32") for f in rows[0]}
    for f in fields:
        fields[f][:2] = 0  # row 0 = padding, row 1 = the unknown article (no content)
    return news_input.NewsTable(fields)


def _ids(rng: np.random.Generator, batch: int = 3, history: int = 7, candidates: int = 9) -> dict[str, np.ndarray]:
    hist = rng.integers(2, NUM_NEWS, (batch, history)).astype("int64")
    hist[0, 4:] = 0
    cands = rng.integers(2, NUM_NEWS, (batch, candidates)).astype("int64")
    cands[1, 6:] = 0  # padding
    cands[2, 0] = 1  # an unknown article
    return {
        "history": hist,
        "history_mask": (hist >= 2).astype("float32"),
        "user_index": np.array([2, 1, NUM_USERS - 1], "int64"),
        "candidates": cands,
    }


@pytest.mark.parametrize("name", ["nrms", "lstur", "fum", "fum_no_fine", "fum_no_coarse"])
def test_cached_scores_equal_full_model_scores(table, name):
    keras.utils.set_random_seed(0)
    sizes = {"nrms": {"vocab_size": SIZES["vocab_size"]}, "lstur": {**SIZES, "num_users": NUM_USERS}}
    model = build_model(name, "tiny", **sizes.get(name, SIZES))
    ids = _ids(np.random.default_rng(1))
    inputs = news_input.to_model_inputs({k: tf.constant(v) for k, v in ids.items()}, table, model.news_fields)
    expected = model(inputs, training=False).numpy()  # builds the model, as training does
    scorer = CachedScorer(model, table)
    cached = tf.function(scorer.scores)({k: tf.constant(v) for k, v in ids.items()})
    np.testing.assert_allclose(cached["scores"].numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(cached["candidate_mask"].numpy(), (ids["candidates"] > 0).astype("float32"))
    assert np.all(cached["scores"].numpy()[1, 6:] <= -1e8)

    user = scorer.user_vectors({k: tf.constant(v) for k, v in ids.items()}).numpy()
    np.testing.assert_allclose(user, model.encode_user(inputs).numpy(), rtol=1e-4, atol=1e-5)


def test_encode_table_batches_agree(table):
    keras.utils.set_random_seed(0)
    model = build_model("fum", "tiny", **SIZES)
    model.build()
    whole = encode_table(model, table, batch_size=NUM_NEWS)
    np.testing.assert_allclose(encode_table(model, table, batch_size=7), whole, rtol=1e-5, atol=1e-6)
    assert whole.shape == (NUM_NEWS, model.config.news_dim) and whole.dtype == np.float32
    assert (L, A) == (table.fields["title"].shape[1], table.fields["abstract"].shape[1])
