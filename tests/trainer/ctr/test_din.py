"""Tests for DIN, its local activation unit and the Dice activation."""

from __future__ import annotations

import json
import os
import textwrap

import keras
import numpy as np
import pytest
from ctr_fixtures import SIZES, TRAIN_ROWS, auc, batch, garbage_in_padding, predict, train, without_history
from keras import ops

from tests.model_checks import assert_runs_under_jax, assert_save_load_round_trip, requires_jax
from trainer.ctr.models import MODELS, build_model
from trainer.ctr.models.ctr_model import MLP, CTRModel, Dice
from trainer.ctr.models.din import DIN, DINConfig, LocalActivationUnit

ACTIVATIONS = ("dice", "prelu")


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _tiny(**overrides) -> DIN:
    return build_model("din", "tiny", **{**SIZES, **overrides})


# -------------------------------------------------------------------- config
def test_config_defaults_follow_paper():
    c = DINConfig()
    assert c.mlp_units == (200, 80) and c.attention_units == (36,) and c.activation == "dice"
    assert DINConfig.preset("paper") == c


def test_config_presets_and_dict_round_trip():
    tiny = DINConfig.preset("tiny", **SIZES, activation="prelu")
    assert DINConfig.from_dict(json.loads(json.dumps(tiny.to_dict()))) == tiny
    with pytest.raises(ValueError):
        DINConfig(attention_units=())
    with pytest.raises(ValueError):
        DINConfig(activation="sigmoid")


def test_registry():
    assert MODELS["din"] == (DINConfig, DIN)
    model = _tiny()
    assert isinstance(model, DIN) and isinstance(model, CTRModel)
    assert model.config.item_dim == 3 * model.config.embedding_dim
    with pytest.raises(ValueError, match="num_categories"):
        build_model("din", num_items=10)


# ---------------------------------------------------------------------- Dice
def test_dice_inference_formula():
    layer = Dice()
    layer.build((None, 3))
    mean, var = np.array([0.5, -1.0, 0.0]), np.array([4.0, 1.0, 0.25])
    alpha = np.array([0.1, -0.2, 0.3])
    layer.normalize.moving_mean.assign(mean)
    layer.normalize.moving_variance.assign(var)
    layer.alpha.assign(alpha)
    s = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    p = 1 / (1 + np.exp(-(s - mean) / np.sqrt(var + 1e-8)))
    np.testing.assert_allclose(_np(layer(s)), p * s + (1 - p) * alpha * s, rtol=1e-5, atol=1e-6)
    assert Dice.from_config(layer.get_config()).get_config() == layer.get_config()


def test_dice_training_uses_statistics_of_real_rows_only():
    s = np.random.default_rng(1).normal(2.0, 3.0, size=(8, 4)).astype("float32")
    mask = np.array([1, 1, 0, 1, 0, 1, 1, 0], "float32")
    layer = Dice()
    layer.build((None, 4))
    layer.alpha.assign(np.full(4, 0.25))
    masked = _np(layer(s, mask=mask, training=True))
    real = s[mask > 0]
    p = 1 / (1 + np.exp(-(real - real.mean(0)) / np.sqrt(real.var(0) + 1e-8)))
    np.testing.assert_allclose(masked[mask > 0], p * real + (1 - p) * 0.25 * real, rtol=1e-4, atol=1e-5)
    # Padded rows' values do not move the statistics.
    noisy = np.where(mask[:, None] > 0, s, 1e3).astype("float32")
    np.testing.assert_allclose(_np(layer(noisy, mask=mask, training=True))[mask > 0], masked[mask > 0], rtol=1e-5)


def test_mlp_layer():
    layer = MLP((6, 4), "dice")
    x = np.random.default_rng(2).normal(size=(5, 3)).astype("float32")
    assert _np(layer(x)).shape == (5,)
    assert len(layer.activations) == 2 and all(isinstance(a, Dice) for a in layer.activations)
    clone = MLP.from_config(layer.get_config())
    assert clone.units == (6, 4) and clone.activation == "dice"
    with pytest.raises(ValueError):
        MLP((4,), "tanh")


# ------------------------------------------------------ local activation unit
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_weights_are_masked_and_not_normalised(data, activation):
    inputs, _ = data
    model = _tiny(activation=activation)
    history, target = model.embed_items(inputs)
    mask = inputs["hist_mask"]
    weights = _np(model.attention(history, target, mask))
    assert weights.shape == mask.shape
    np.testing.assert_array_equal(weights[mask == 0], 0.0)
    assert np.abs(weights[mask > 0]).min() > 0
    # Un-normalised (Section 4.3): clicking every item twice doubles the user vector, where a
    # softmax over the history would leave it unchanged.
    user = _np(model.user_vector(history, target, mask))
    twice = _np(model.user_vector(ops.concatenate([history, history], 1), target, np.concatenate([mask, mask], 1)))
    np.testing.assert_allclose(twice, 2 * user, rtol=1e-4, atol=1e-6)
    # Target-aware: the same history weighs differently for another target.
    other = _np(model.attention(history, ops.flip(target, axis=0), mask))
    assert not np.allclose(other[mask > 0], weights[mask > 0])
    unit = LocalActivationUnit.from_config(model.attention.get_config())
    assert unit.units == model.config.attention_units and unit.activation == activation


# ------------------------------------------------------------- forward pass
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_output_shape_dtype_and_no_words(data, activation):
    inputs, _ = data
    model = _tiny(activation=activation)
    logits = model(inputs)
    assert tuple(logits.shape) == (len(inputs["target_item"]),)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    no_words = _tiny(activation=activation, vocab_size=0)
    assert no_words.item_fields == ("item", "categories")
    absent = {k: v for k, v in inputs.items() if not k.endswith("_words")}
    assert np.all(np.isfinite(_np(no_words(absent))))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_padding_changes_nothing(data, activation, training):
    inputs, _ = data
    model = _tiny(activation=activation)
    # In training, Dice normalises with batch statistics: masked, so padding cannot shift them.
    expected = _np(model(inputs, training=training))
    noisy = garbage_in_padding(np.random.default_rng(1), inputs)
    np.testing.assert_allclose(_np(model(noisy, training=training)), expected, rtol=1e-5, atol=1e-5)
    wider = dict(inputs)
    for key in ("hist_categories", "hist_words", "target_categories", "target_words"):
        wider[key] = np.pad(inputs[key], [(0, 0)] * (inputs[key].ndim - 1) + [(0, 2)])
    np.testing.assert_allclose(_np(model(wider, training=training)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_empty_histories_are_finite(data, activation):
    inputs, _ = data
    model = _tiny(activation=activation)
    mixed = dict(inputs, hist_mask=inputs["hist_mask"] * (np.arange(len(inputs["hist_mask"])) % 2)[:, None])
    everyone_empty = without_history(inputs)
    for x in (mixed, everyone_empty):
        for training in (False, True):
            assert np.all(np.isfinite(_np(model(x, training=training))))
    history, target = model.embed_items(everyone_empty)
    np.testing.assert_array_equal(_np(model.user_vector(history, target, everyone_empty["hist_mask"])), 0.0)


# --------------------------------------------------------------- save / load
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_save_load_round_trip(data, tmp_path, activation):
    inputs, clicks = data
    assert_save_load_round_trip(_tiny(activation=activation), inputs, clicks, tmp_path)  # fits: moves Dice's statistics


# ------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def planted():
    """Trained DIN, Embedding&MLP and a history-agnostic model, and held-out rows."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train, _ = batch(rng, TRAIN_ROWS)
    x_eval, y_eval, interests = batch(rng, 4000)
    din = _tiny()
    untrained = auc(predict(din, x_eval), y_eval)
    train(din, x_train, y_train)
    base = train(build_model("embedding_mlp", "tiny", **SIZES), x_train, y_train)
    # History-agnostic: the same MLP seeing the target only (every history slot padding).
    agnostic = train(build_model("embedding_mlp", "tiny", **SIZES), without_history(x_train), y_train)
    return {
        "din": predict(din, x_eval),
        "untrained": untrained,
        "base": predict(base, x_eval),
        "agnostic": predict(agnostic, without_history(x_eval)),
        "clicks": y_eval,
        "interests": interests,
        "history": x_eval["hist_mask"].sum(1),
    }


def test_learns_planted_interests(planted):
    assert 0.35 < planted["untrained"] < 0.65, planted["untrained"]
    assert auc(planted["din"], planted["clicks"]) > 0.85


def test_beats_history_agnostic_baseline_on_multi_interest_users(planted):
    # Users with three interests and enough history to show them.
    keep = (planted["interests"] == 3) & (planted["history"] >= 4)
    clicks = planted["clicks"][keep]
    din, base, agnostic = (auc(planted[k][keep], clicks) for k in ("din", "base", "agnostic"))
    assert keep.sum() > 1000
    assert agnostic < 0.72  # the target alone only says how popular its topic is
    assert din > agnostic + 0.15, (din, agnostic)
    assert din >= base - 0.01, (din, base)  # and matches or beats sum pooling


def test_mixed_bfloat16_policy(data):
    inputs, clicks = data
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _tiny()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(inputs, clicks, epochs=1, verbose=0)
        logits = model.predict(inputs, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history.history["loss"]))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32" and np.all(np.isfinite(logits))


@requires_jax
def test_runs_under_jax_backend(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from ctr_fixtures import SIZES, batch
        from trainer.ctr.models import build_model
        x, y, _ = batch(np.random.default_rng(0), 32)
        for name in ("embedding_mlp", "din"):
            model = build_model(name, "tiny", **SIZES)
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
            model.fit(x, y, epochs=2, verbose=0)
            logits = np.asarray(model.predict(x, verbose=0))
            assert logits.shape == (32,) and np.isfinite(logits).all()
            path = {str(tmp_path)!r} + f"/{{name}}.keras"
            model.save(path)
            restored = keras.saving.load_model(path)
            np.testing.assert_array_equal(np.asarray(restored.predict(x, verbose=0)), logits)
        print("JAX_OK")
        """
    )
    assert_runs_under_jax(script)


def test_mini_batch_aware_regularization_counts_each_batch_row_once(data):
    """DIN Section 5.1: L2 on the item-id rows of the batch only, each once, padding excluded."""
    x, _ = data
    config = DINConfig.preset("tiny", item_l2=0.5, **SIZES)
    model = DIN(config)
    model.build()
    table = model.item_embedding.tables["item"].embeddings.numpy()
    ids = np.unique(np.concatenate([np.asarray(x["hist_item"]).ravel(), np.asarray(x["target_item"]).ravel()]))
    ids = ids[ids != 0]
    expected = float((table[ids] ** 2).sum())
    np.testing.assert_allclose(float(model.batch_item_l2(x)), expected, rtol=1e-5)
    logits = model(x)
    clicks = np.zeros(len(logits), "float32")
    base = float(DIN(DINConfig.preset("tiny", **SIZES)).paper_loss(x, clicks, logits, None))
    np.testing.assert_allclose(float(model.paper_loss(x, clicks, logits, None)), base + 0.5 * expected, rtol=1e-5)
    with pytest.raises(ValueError, match="item_l2"):
        DINConfig(item_l2=-1.0)
