"""Tests for YouTube-DNN, the tag-model base class and the tags model registry."""

from __future__ import annotations

import json
import textwrap

import keras
import numpy as np
import pytest
import tags_fixtures as fx
from keras import ops

from components.metrics.reference import global_auc, prec_at_k
from tests.model_checks import (
    assert_keras_ops_only,
    assert_runs_under_jax,
    assert_save_load_round_trip,
    requires_jax,
)
from trainer.model_base import sigmoid_cross_entropy
from trainer.tags.models import MODELS, TagModel, build_model, make_config
from trainer.tags.models.tag_model import UserFieldEmbedding
from trainer.tags.models.youtube_dnn import (
    ML1M_USER_FIELDS,
    YouTubeDNN,
    YouTubeDNNConfig,
    YouTubeDNNUserEncoder,
    masked_mean,
)

ALL_FIELDS = ("tags", "categories", *ML1M_USER_FIELDS)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _model(preset: str = "tiny", **overrides) -> YouTubeDNN:
    return build_model("youtube_dnn", preset, field_sizes=fx.FIELD_SIZES, num_tags=fx.NUM_TAGS, **overrides)


@pytest.fixture
def batch() -> dict[str, np.ndarray]:
    """Eight examples of five fields: full, padded, empty histories and unknown ids."""
    inputs, _, _, _ = fx.dataset(np.random.default_rng(7), 4, articles_per_user=2)
    inputs["user_tags"][0] = 0  # an empty history ...
    inputs["user_categories"][0] = 0
    inputs["user_tags"][1, 2] = 1  # ... and an unknown id
    inputs["article_tags"][2] = [0, 0, 0]  # an article without tags
    inputs["article_tags"][3] = [5, 1, 0]  # an unknown tag
    has_padding = (inputs["user_tags"] == 0).any(axis=1)
    assert 0 < has_padding.sum() < len(has_padding)  # padded rows and a full one
    return inputs


def _user_fields(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in inputs.items() if k.startswith("user_")}


# ------------------------------------------------------------------ config
def test_config_defaults_follow_paper():
    c = YouTubeDNNConfig()
    assert (c.embedding_dim, c.user_dim) == (16, 16)  # UTPM Table 1, MovieLens
    assert c.hidden_units == (64, 32)
    assert c.fields == ("tags", "categories")
    assert YouTubeDNNConfig.preset("paper").fields == ALL_FIELDS
    assert YouTubeDNNConfig.preset("tiny").hidden_units == (32,)


def test_config_presets_and_dict_round_trip():
    config = YouTubeDNNConfig.preset("paper", field_sizes=fx.FIELD_SIZES, num_tags=fx.NUM_TAGS)
    assert YouTubeDNNConfig.from_dict(config.to_dict()) == config
    # Through JSON (TFX custom_config, saved Keras configs) tuples come back as lists.
    restored = YouTubeDNNConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and isinstance(restored.fields, tuple)
    assert isinstance(restored.hidden_units, tuple)
    config.to_dict()["field_sizes"]["tags"] = 3  # a copy: the config is untouched
    assert config.field_sizes["tags"] == fx.NUM_TAGS
    with pytest.raises(ValueError):
        YouTubeDNNConfig.preset("huge")
    with pytest.raises(ValueError):
        YouTubeDNNConfig.from_dict({"no_such_field": 1})


@pytest.mark.parametrize(
    "overrides",
    [
        {"field_sizes": {}},  # not filled by the trainer
        {"field_sizes": {"tags": fx.NUM_TAGS}},  # a field without a size
        {"field_sizes": {"tags": fx.NUM_TAGS, "categories": 2}},  # no real id
        {"num_tags": 2},
        {"fields": ()},
        {"fields": ("tags", "tags")},
    ],
)
def test_model_rejects_incomplete_sizes(overrides):
    config = YouTubeDNNConfig(
        **{"field_sizes": fx.FIELD_SIZES, "num_tags": fx.NUM_TAGS, **overrides}
    )
    with pytest.raises(ValueError):
        YouTubeDNN(config)


def test_registry():
    assert MODELS["youtube_dnn"] == (YouTubeDNNConfig, YouTubeDNN)
    model = _model("paper")
    assert isinstance(model, YouTubeDNN) and isinstance(model, TagModel)
    assert model.config.fields == ALL_FIELDS
    assert make_config("youtube_dnn", "tiny", user_dim=8).user_dim == 8
    with pytest.raises(ValueError):
        build_model("no_such_model")
    with pytest.raises(ValueError):
        build_model("youtube_dnn")  # sizes not set


# ------------------------------------------------------------ forward pass
def test_output_shapes_and_joint_score(batch):
    model = _model("paper")
    logits = model(batch)
    b, u = len(batch["article_tags"]), model.config.user_dim
    assert tuple(logits.shape) == (b,)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"

    user = _np(model.user_embedding(batch))
    assert user.shape == (b, u) and np.isfinite(user).all()
    scores = _np(model.tag_scores(user))
    assert scores.shape == (b, fx.NUM_TAGS)

    # UTPM eq. 4, joint form: the sum of u · t_i over the article's real tags; the unknown
    # tag (id 1) is an ordinary row there, padding adds nothing.
    table = _np(model.tag_table.embeddings)
    expected = [
        sum(float(user[i] @ table[t]) for t in tags if t != 0)
        for i, tags in enumerate(batch["article_tags"])
    ]
    np.testing.assert_allclose(_np(logits), expected, rtol=1e-5, atol=1e-6)
    assert _np(logits)[2] == 0.0  # no tags
    np.testing.assert_allclose(scores[:, 2:], user @ table[2:].T, rtol=1e-5, atol=1e-6)


def test_top_tags(batch):
    model = _model()
    users = _user_fields(batch)
    ids, scores = model.top_tags(users, 5)
    ids, scores = _np(ids), _np(scores)
    assert ids.shape == scores.shape == (len(ids), 5)
    assert keras.backend.standardize_dtype(ids.dtype) == "int32"
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    all_scores = _np(model.tag_scores(model.user_embedding(users)))
    np.testing.assert_allclose(scores, np.take_along_axis(all_scores, ids, 1), rtol=1e-6)
    np.testing.assert_allclose(scores[:, 0], all_scores.max(axis=1), rtol=1e-6)
    for k in (0, fx.NUM_TAGS - 1):
        with pytest.raises(ValueError):
            model.top_tags(users, k)


def test_padding_and_unknown_tags_never_rank(batch):
    model = _model()
    model.build()
    users = _user_fields(batch)
    table = np.zeros((fx.NUM_TAGS, model.config.user_dim), "float32")
    table[:2] = np.random.default_rng(0).normal(scale=1e3, size=(2, model.config.user_dim))
    model.tag_table.embeddings.assign(table)  # padding and unknown outscore every real tag
    scores = _np(model.tag_scores(model.user_embedding(users)))
    assert np.all(scores[:, :2] <= -1e8) and np.all(np.isfinite(scores))
    ids, _ = model.top_tags(users, fx.REAL_TAGS)  # every real tag, none of the others
    assert np.all(np.sort(_np(ids), axis=1) == np.arange(2, fx.NUM_TAGS))


# ----------------------------------------------------------------- padding
def test_padding_rows_do_not_matter(batch):
    model = _model("paper")
    model.build()
    logits, user = _np(model(batch)), _np(model.user_embedding(batch))
    rng = np.random.default_rng(1)
    tables = [*model.user_encoder.embedding.tables.values(), model.tag_table]
    for table in tables:  # garbage in the padding row of every table
        weights = _np(table.embeddings)
        weights[0] = rng.normal(scale=1e4, size=weights.shape[1])
        table.embeddings.assign(weights)
    np.testing.assert_allclose(_np(model(batch)), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(model.user_embedding(batch)), user, rtol=1e-5, atol=1e-6)


def test_padding_position_and_length_do_not_matter(batch):
    model = _model("paper")
    logits = _np(model(batch))

    def spread(ids: np.ndarray) -> np.ndarray:
        """Each row's ids reversed, with padding in front, between and after them."""
        out = np.zeros((ids.shape[0], 2 * ids.shape[1] + 3), "int32")
        out[:, 1::2][:, : ids.shape[1]] = ids[:, ::-1]
        return out

    moved = {k: spread(v) for k, v in batch.items()}
    np.testing.assert_allclose(_np(model(moved)), logits, rtol=1e-5, atol=1e-5)


def test_empty_history_is_finite_and_zero_pooled(batch):
    vectors = np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    ids = np.array([[5, 3, 0, 0], [1, 0, 7, 0], [0, 0, 0, 0]], "int32")
    expected = [vectors[0, :2].mean(0), vectors[1, [0, 2]].mean(0), np.zeros(2)]
    np.testing.assert_allclose(_np(masked_mean(vectors, ids)), expected, rtol=1e-6)

    model = _model()
    empty = {k: np.zeros_like(v) if k.startswith("user_") else v for k, v in batch.items()}
    user = _np(model.user_embedding(empty))
    assert np.isfinite(user).all() and np.isfinite(_np(model(empty))).all()
    np.testing.assert_allclose(user, np.broadcast_to(user[0], user.shape))  # all alike


def test_unknown_id_is_not_padding(batch):
    model = _model()
    user = _np(model.user_embedding(batch))
    row, col = 1, 0
    assert batch["user_tags"][row, col] >= 2
    for replacement in (0, 1):
        changed = {k: v.copy() for k, v in batch.items()}
        changed["user_tags"][row, col] = replacement
        if replacement == 0:  # keep the padding at the end of the row
            changed["user_tags"][row] = np.concatenate(
                [np.delete(changed["user_tags"][row], col), [0]]
            )
        user_changed = _np(model.user_embedding(changed))
        np.testing.assert_allclose(np.delete(user_changed, row, 0), np.delete(user, row, 0))
        assert not np.allclose(user_changed[row], user[row])
        if replacement == 0:
            dropped = user_changed[row]
        else:
            assert not np.allclose(user_changed[row], dropped)


# -------------------------------------------------------------------- loss
def test_compute_loss(batch):
    model = _model()
    model.compile(optimizer="adam")
    y = (np.arange(len(batch["article_tags"])) % 2).astype("int32")
    logits = model(batch)
    loss = model.compute_loss(x=batch, y=y, y_pred=logits)
    np.testing.assert_allclose(_np(loss), _np(sigmoid_cross_entropy(y, logits)), rtol=1e-6)

    model.compile(optimizer="adam", loss="mse")  # a compiled loss takes precedence
    loss = model.compute_loss(x=batch, y=y, y_pred=logits)
    np.testing.assert_allclose(_np(loss), np.mean((_np(logits) - y) ** 2), rtol=1e-5)


# ------------------------------------------------------------ save / load
@pytest.mark.parametrize(
    "layer",
    [
        UserFieldEmbedding({"tags": 9, "gender": 4}, 3),
        YouTubeDNNUserEncoder({"tags": 9, "gender": 4}, 3, (5, 4), 2),
    ],
)
def test_layers_serialize(layer):
    inputs = {"tags": np.array([[2, 8, 0], [1, 0, 0]]), "gender": np.array([[3], [0]])}
    expected = keras.tree.map_structure(_np, layer(inputs))
    clone = type(layer).from_config(layer.get_config())
    clone(inputs)
    clone.set_weights(layer.get_weights())
    keras.tree.map_structure(np.testing.assert_array_equal, keras.tree.map_structure(_np, clone(inputs)), expected)


def test_save_load_round_trip(batch, tmp_path):
    model = _model("paper")
    y = (np.arange(len(batch["article_tags"])) % 2).astype("int32")
    restored = assert_save_load_round_trip(model, batch, y, tmp_path)
    ids, scores = model.top_tags(_user_fields(batch), 3)
    restored_ids, restored_scores = restored.top_tags(_user_fields(batch), 3)
    np.testing.assert_array_equal(_np(restored_ids), _np(ids))
    np.testing.assert_array_equal(_np(restored_scores), _np(scores))


# --------------------------------------------------------------- learning
def test_learns_planted_tag_preferences():
    rng = np.random.default_rng(0)
    x_train, y_train, _, _ = fx.dataset(rng, 2000, articles_per_user=8)
    x_eval, y_eval, users, preferred = fx.dataset(rng, 500, articles_per_user=4)  # fresh users
    model = _model()

    def evaluate() -> tuple[float, float]:
        auc = global_auc(y_eval, _np(model.predict(x_eval, batch_size=512, verbose=0)))
        ids, scores = model.top_tags(users, 1)
        n = len(preferred)
        prec1 = prec_at_k(np.arange(n), _np(ids)[:, 0], _np(scores)[:, 0], dict(enumerate(preferred)), 1)
        return auc, prec1

    untrained = evaluate()
    assert 0.35 <= untrained[0] <= 0.65 and untrained[1] <= 0.25, untrained

    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x_train, y_train, batch_size=128, epochs=4, verbose=0)  # 500 steps
    auc, prec1 = evaluate()
    # Chance: AUC 0.5, Prec@1 about 2 / 20 tags; the planted labels allow AUC about 0.94.
    assert auc > 0.8 and prec1 > 0.6, (untrained, auc, prec1)


# ------------------------------------------------------ backend agnosticism
def test_mixed_bfloat16_policy(batch):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        y = (np.arange(len(batch["article_tags"])) % 2).astype("int32")
        history = model.fit(batch, y, epochs=2, verbose=0)
        logits = model.predict(batch, verbose=0)
        _, scores = model.top_tags(_user_fields(batch), 3)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history.history["loss"]))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert np.all(np.isfinite(logits))


MODEL_SOURCES = [
    "trainer/tags/models/__init__.py",
    "trainer/tags/models/tag_model.py",
    "trainer/tags/models/youtube_dnn.py",
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
        from trainer.tags.models import build_model
        rng = np.random.default_rng(0)
        x = {{
            "user_tags": rng.integers(0, {fx.NUM_TAGS}, (4, 6)).astype("int32"),
            "user_categories": np.zeros((4, 3), "int32"),
            "article_tags": rng.integers(0, {fx.NUM_TAGS}, (4, 3)).astype("int32"),
        }}
        model = build_model("youtube_dnn", "tiny", num_tags={fx.NUM_TAGS},
                            field_sizes={{"tags": {fx.NUM_TAGS}, "categories": 5}})
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(x, np.array([1, 0, 1, 0]), epochs=2, verbose=0)
        logits = np.asarray(model.predict(x, verbose=0))
        assert logits.shape == (4,) and np.isfinite(logits).all()
        ids, _ = model.top_tags(x, 3)
        assert (np.asarray(ids) >= 2).all()
        path = {str(tmp_path / "jax.keras")!r}
        model.save(path)
        restored = keras.saving.load_model(path)
        np.testing.assert_array_equal(np.asarray(restored.predict(x, verbose=0)), logits)
        print("JAX_OK")
        """
    )
    assert_runs_under_jax(script)
