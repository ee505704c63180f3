"""Tests for NRMS, the news-ranking base model and the model registry."""

from __future__ import annotations

import textwrap

import keras
import numpy as np
import pytest
from keras import ops

from tests.model_checks import (
    assert_keras_ops_only,
    assert_runs_under_jax,
    assert_save_load_round_trip,
    requires_jax,
)
from trainer.news.models import MODELS, build_model
from trainer.news.models.news_ranking import NewsRankingModel, masked_softmax_cross_entropy
from trainer.news.models.nrms import NRMS, NRMSConfig

# Planted structure: each topic owns a disjoint range of token ids.
TOPICS, TOKENS_PER_TOPIC, L, H = 8, 12, 8, 10
VOCAB = 2 + TOPICS * TOKENS_PER_TOPIC


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _tiny(**overrides) -> NRMS:
    return build_model("nrms", "tiny", vocab_size=VOCAB, **overrides)


# ------------------------------------------------------------ synthetic data
def _title(rng: np.random.Generator, topic: int) -> np.ndarray:
    n = rng.integers(4, L + 1)
    tokens = np.zeros(L, "int32")
    tokens[:n] = 2 + topic * TOKENS_PER_TOPIC + rng.integers(0, TOKENS_PER_TOPIC, n)
    return tokens


def _user(rng: np.random.Generator):
    topics = rng.choice(TOPICS, rng.integers(1, 3), replace=False)
    n = rng.integers(3, H + 1)
    hist = np.zeros((H, L), "int32")
    mask = np.zeros(H, "float32")
    for i in range(n):
        hist[i] = _title(rng, rng.choice(topics))
        mask[i] = 1.0
    return topics, hist, mask


def _stack(rows: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def _train_data(rng, n: int, negatives: int = 4):
    """One click (a user topic) + K negatives (other topics), shuffled."""
    rows, clicked = [], []
    for _ in range(n):
        topics, hist, mask = _user(rng)
        others = np.setdiff1d(np.arange(TOPICS), topics)
        cands = [_title(rng, rng.choice(topics))]
        cands += [_title(rng, t) for t in rng.choice(others, negatives)]
        perm = rng.permutation(negatives + 1)
        rows.append(
            {
                "hist_title": hist,
                "hist_mask": mask,
                "cand_title": np.stack(cands)[perm],
                "cand_mask": np.ones(negatives + 1, "float32"),
            }
        )
        clicked.append(int(np.flatnonzero(perm == 0)[0]))
    return _stack(rows), np.array(clicked, "int32")


def _eval_data(rng, n: int, width: int = 8):
    """Whole impressions of varying size, padded to `width` candidates."""
    rows, labels = [], []
    for _ in range(n):
        topics, hist, mask = _user(rng)
        others = np.setdiff1d(np.arange(TOPICS), topics)
        n_pos = int(rng.integers(1, 3))
        n_neg = int(rng.integers(2, width - n_pos + 1))
        cands = [_title(rng, rng.choice(topics)) for _ in range(n_pos)]
        cands += [_title(rng, t) for t in rng.choice(others, n_neg)]
        pad = width - n_pos - n_neg
        rows.append(
            {
                "hist_title": hist,
                "hist_mask": mask,
                "cand_title": np.concatenate(
                    [np.stack(cands), np.zeros((pad, L), "int32")]
                ),
                "cand_mask": np.array([1.0] * (n_pos + n_neg) + [0.0] * pad, "float32"),
            }
        )
        labels.append(np.array([1] * n_pos + [0] * (n_neg + pad), "int32"))
    return _stack(rows), np.stack(labels)


def _impression_auc(scores, labels, mask) -> float:
    """Mean per-impression ROC AUC over impressions with both labels."""
    aucs = []
    for s, y, m in zip(scores, labels, mask):
        s, y = s[m > 0], y[m > 0]
        pos, neg = s[y > 0], s[y == 0]
        if len(pos) and len(neg):
            wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
            aucs.append(wins.mean())
    return float(np.mean(aucs))


def test_impression_auc_helper():
    scores = np.array([[0.9, 0.1, 0.5, -1e9], [0.1, 0.2, 0.3, 0.4]])
    labels = np.array([[1, 0, 0, 0], [0, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert _impression_auc(scores, labels, mask) == 1.0  # row 2 skipped


@pytest.fixture
def batch():
    rng = np.random.default_rng(7)
    x, _ = _eval_data(rng, 4, width=6)
    return x


# ------------------------------------------------------------------ config
def test_config_defaults_follow_paper():
    c = NRMSConfig()
    assert (c.embedding_dim, c.num_heads, c.head_dim) == (300, 16, 16)
    assert c.attention_hidden_dim == 200 and c.dropout == 0.2
    assert c.news_dim == 256


def test_config_presets_and_dict_round_trip():
    tiny = NRMSConfig.preset("tiny", vocab_size=50)
    assert tiny.vocab_size == 50 and tiny.embedding_dim < 300
    assert NRMSConfig.preset("reference").news_dim == 400
    assert NRMSConfig.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(ValueError):
        NRMSConfig.preset("huge")
    with pytest.raises(ValueError):
        NRMSConfig.from_dict({"no_such_field": 1})


def test_pretrained_embeddings_hook():
    matrix = np.random.default_rng(0).normal(size=(VOCAB, 32)).astype("float32")
    config = NRMSConfig.preset(
        "tiny", vocab_size=VOCAB, pretrained_embeddings=matrix, train_embeddings=False
    )
    assert "pretrained_embeddings" not in config.to_dict()
    model = NRMS(config)
    model.build()
    table = model.news_encoder.embedding.embeddings
    np.testing.assert_array_equal(_np(table), matrix)
    assert not model.news_encoder.embedding.trainable
    with pytest.raises(ValueError):
        NRMSConfig.preset("tiny", vocab_size=VOCAB, pretrained_embeddings=matrix[:5])


def test_registry():
    assert MODELS["nrms"] == (NRMSConfig, NRMS)
    model = build_model(
        "nrms", {"vocab_size": VOCAB, "embedding_dim": 8, "num_heads": 2, "head_dim": 4}
    )
    assert isinstance(model, NRMS) and isinstance(model, NewsRankingModel)
    assert model.config.news_dim == 8
    assert isinstance(_tiny(), NRMS)
    with pytest.raises(ValueError):
        build_model("no_such_model")
    with pytest.raises(ValueError):
        build_model("nrms")  # vocab_size not set


# ------------------------------------------------------------ forward pass
def test_output_shapes_and_public_api(batch):
    model = _tiny()
    scores = _np(model(batch))
    b, c = batch["cand_mask"].shape
    d = model.config.news_dim
    assert scores.shape == (b, c)
    assert model.news_fields == ("title",)

    user = model.encode_user(batch)
    assert tuple(user.shape) == (b, d)
    news = model.encode_news({"title": batch["cand_title"].reshape(b * c, L)})
    assert tuple(news.shape) == (b * c, d)
    recomposed = _np(
        model.score(user, ops.reshape(news, (b, c, d)), batch["cand_mask"])
    )
    np.testing.assert_allclose(recomposed, scores, rtol=1e-5, atol=1e-6)


def test_padding_is_masked(batch):
    model = _tiny()
    scores = _np(model(batch))
    pad = batch["cand_mask"] == 0
    assert pad.any()
    assert np.all(np.isfinite(scores))
    assert np.all(scores[pad] <= -1e8)
    assert np.all(scores[~pad] > -1e3)

    rng = np.random.default_rng(1)
    noisy = dict(batch)
    # Garbage in padded candidates and padded history slots changes nothing.
    noisy["cand_title"] = np.where(
        pad[..., None],
        rng.integers(2, VOCAB, batch["cand_title"].shape),
        batch["cand_title"],
    ).astype("int32")
    noisy["hist_title"] = np.where(
        (batch["hist_mask"] == 0)[..., None],
        rng.integers(2, VOCAB, batch["hist_title"].shape),
        batch["hist_title"],
    ).astype("int32")
    np.testing.assert_allclose(_np(model(noisy)), scores, rtol=1e-5, atol=1e-5)

    # Token 0 is padding: extra trailing padding does not change a title.
    titles = batch["cand_title"][0]
    longer = np.concatenate([titles, np.zeros((titles.shape[0], 5), "int32")], 1)
    np.testing.assert_allclose(
        _np(model.encode_news({"title": longer})),
        _np(model.encode_news({"title": titles})),
        rtol=1e-5,
        atol=1e-6,
    )


def test_empty_history_is_finite(batch):
    model = _tiny()
    empty = dict(batch, hist_mask=np.zeros_like(batch["hist_mask"]))
    scores = _np(model(empty))
    assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(_np(model.encode_user(empty)), 0.0)


def test_candidate_slot_does_not_matter(batch):
    model = _tiny()
    scores = _np(model(batch))
    perm = np.random.default_rng(3).permutation(batch["cand_mask"].shape[1])
    permuted = dict(
        batch,
        cand_title=batch["cand_title"][:, perm],
        cand_mask=batch["cand_mask"][:, perm],
    )
    np.testing.assert_allclose(
        _np(model(permuted)), scores[:, perm], rtol=1e-5, atol=1e-5
    )


# -------------------------------------------------------------------- loss
def test_loss_matches_softmax_cross_entropy():
    logits = np.array([[2.0, 1.0, 0.0, -1e9], [0.5, 0.5, 3.0, 1.0]], "float32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], "float32")
    slot = np.array([1, 2], "int32")

    def ce(row, k, m):
        z = row[m > 0]
        return np.log(np.exp(z).sum()) - row[k]

    expected = np.mean([ce(logits[i], slot[i], mask[i]) for i in range(2)])
    got = float(_np(masked_softmax_cross_entropy(slot, logits, mask)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # [B, 1] slots and one-hot label matrices give the same loss.
    got = float(_np(masked_softmax_cross_entropy(slot[:, None], logits, mask)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    onehot = np.eye(4, dtype="float32")[slot]
    got = float(_np(masked_softmax_cross_entropy(onehot, logits, mask)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Sample weights.
    got = float(
        _np(masked_softmax_cross_entropy(slot, logits, mask, np.array([1.0, 0.0])))
    )
    np.testing.assert_allclose(got, ce(logits[0], 1, mask[0]) / 2, rtol=1e-5)


def test_compute_loss_uses_model_loss(batch):
    model = _tiny()
    model.compile(optimizer="adam")
    y = np.zeros(batch["cand_mask"].shape[0], "int32")
    scores = model(batch)
    loss = model.compute_loss(x=batch, y=y, y_pred=scores)
    expected = masked_softmax_cross_entropy(y, scores, batch["cand_mask"])
    np.testing.assert_allclose(_np(loss), _np(expected), rtol=1e-6)


# ------------------------------------------------------------ save / load
def test_save_load_round_trip(batch, tmp_path):
    assert_save_load_round_trip(_tiny(), batch, np.zeros(batch["cand_mask"].shape[0], "int32"), tmp_path)


# --------------------------------------------------------------- learning
def test_learns_planted_structure():
    rng = np.random.default_rng(0)
    x_train, y_train = _train_data(rng, 2048)
    x_eval, labels = _eval_data(rng, 300)
    model = _tiny(seed=0)

    def auc() -> float:
        scores = _np(model.predict(x_eval, batch_size=256, verbose=0))
        return _impression_auc(scores, labels, x_eval["cand_mask"])

    untrained = auc()
    assert 0.3 <= untrained <= 0.7, untrained

    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)  # 256 steps
    trained = auc()
    assert trained >= 0.8, (untrained, trained)


# ------------------------------------------------------ backend agnosticism
def test_fit_with_default_jit_compile(batch):
    model = _tiny()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # jit_compile="auto"
    y = np.zeros(batch["cand_mask"].shape[0], "int32")
    history = model.fit(batch, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.all(np.isfinite(_np(model.predict(batch, verbose=0))))


def test_mixed_bfloat16_policy(batch):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _tiny()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        y = np.zeros(batch["cand_mask"].shape[0], "int32")
        history = model.fit(batch, y, epochs=2, verbose=0)
        scores = model.predict(batch, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history.history["loss"]))
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert np.all(np.isfinite(scores))
    assert np.all(scores[batch["cand_mask"] == 0] <= -1e8)


MODEL_SOURCES = [
    "trainer/layers/attention.py",
    "trainer/news/models/news_ranking.py",
    "trainer/news/models/nrms.py",
    "trainer/news/models/__init__.py",
    "trainer/news/models/padding.py",
]


@pytest.mark.parametrize("relpath", MODEL_SOURCES)
def test_sources_use_keras_ops_only(relpath):
    assert_keras_ops_only(relpath)


@requires_jax
def test_runs_under_jax_backend(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        from trainer.news.models import build_model
        rng = np.random.default_rng(0)
        x = {{
            "hist_title": rng.integers(0, {VOCAB}, (4, 6, 8)).astype("int32"),
            "hist_mask": np.ones((4, 6), "float32"),
            "cand_title": rng.integers(0, {VOCAB}, (4, 5, 8)).astype("int32"),
            "cand_mask": np.ones((4, 5), "float32"),
        }}
        x["cand_mask"][0, 3:] = 0
        model = build_model("nrms", "tiny", vocab_size={VOCAB})
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(x, np.zeros(4, "int32"), epochs=2, verbose=0)
        scores = np.asarray(model.predict(x, verbose=0))
        assert scores.shape == (4, 5) and np.isfinite(scores).all()
        assert (scores[0, 3:] <= -1e8).all()
        path = {str(tmp_path / "jax.keras")!r}
        model.save(path)
        restored = keras.models.load_model(path)
        np.testing.assert_array_equal(np.asarray(restored.predict(x, verbose=0)), scores)
        print("JAX_OK")
        """
    )
    assert_runs_under_jax(script)
