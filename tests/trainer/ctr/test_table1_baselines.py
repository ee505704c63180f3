"""What MFN's Table 1 baselines MIND, ComiRec-SA and TransformerRec share with every CTR model:
the registry, shapes, masks, `.keras` round trip, the JAX backend, and training and export in
the CTR Trainer's hooks on a real Transform output. Each model's own equations are tested in
its test file (test_mind.py, test_comirec_sa.py, test_transformer_rec.py)."""

from __future__ import annotations

import json
import os
import textwrap
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from ctr_fixtures import SIZES, garbage_in_padding, without_history
from keras import ops

from tests.model_checks import assert_keras_ops_only, assert_runs_under_jax, assert_save_load_round_trip, requires_jax
from trainer.ctr.models import MIND, MODELS, ComiRecSA, CTRModel, TransformerRec, build_model

BASELINES = {"mind": MIND, "comirec_sa": ComiRecSA, "transformer_rec": TransformerRec}
MODULES = ("mind", "comirec_sa", "transformer_rec", "positions")


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _tiny(name: str, **overrides) -> CTRModel:
    return build_model(name, "tiny", **{**SIZES, **overrides})


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_registry_config_round_trip_and_presets(name):
    config_class, model_class = MODELS[name]
    assert model_class is BASELINES[name] and issubclass(model_class, CTRModel)
    tiny = config_class.preset("tiny", **SIZES)
    assert config_class.from_dict(json.loads(json.dumps(tiny.to_dict()))) == tiny
    assert config_class.preset("paper") == config_class()
    assert tiny.mlp_units == (32, 16) and config_class().mlp_units == (200, 80)  # DIN's head
    with pytest.raises(ValueError, match="num_categories"):
        build_model(name, num_items=10)


@pytest.mark.parametrize("module", MODULES)
def test_sources_use_keras_ops_only(module):
    assert_keras_ops_only(f"trainer/ctr/models/{module}.py")


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_shapes_and_no_words(data, name):
    inputs, _ = data
    logits = _tiny(name)(inputs)
    assert tuple(logits.shape) == (len(inputs["target_item"]),)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    no_words = _tiny(name, vocab_size=0)
    absent = {k: v for k, v in inputs.items() if not k.endswith("_words")}
    assert no_words.item_fields == ("item", "categories") and np.isfinite(_np(no_words(absent))).all()


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_padding_changes_nothing(data, name):
    """Random real ids in every padded slot, and wider category/word lists, change no score."""
    inputs, _ = data
    model = _tiny(name)
    expected = _np(model(inputs))
    np.testing.assert_allclose(_np(model(garbage_in_padding(np.random.default_rng(1), inputs))), expected,
                               rtol=1e-5, atol=1e-5)
    wider = dict(inputs)
    for key in ("hist_categories", "hist_words", "target_categories", "target_words"):
        wider[key] = np.pad(inputs[key], [(0, 0)] * (inputs[key].ndim - 1) + [(0, 2)])
    np.testing.assert_allclose(_np(model(wider)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_rows_are_scored_independently_of_their_batch(data, name):
    """Serving: a row's score does not depend on the other rows of its request."""
    inputs, _ = data
    model = _tiny(name)
    together = _np(model(inputs))
    alone = np.concatenate([_np(model({k: v[i:i + 1] for k, v in inputs.items()})) for i in range(3)])
    np.testing.assert_allclose(alone, together[:3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_empty_histories_are_finite(data, name):
    inputs, _ = data
    model = _tiny(name)
    mixed = dict(inputs, hist_mask=inputs["hist_mask"] * (np.arange(len(inputs["hist_mask"])) % 2)[:, None])
    for x in (mixed, without_history(inputs)):
        for training in (False, True):
            assert np.isfinite(_np(model(x, training=training))).all()
    # An empty history scores like any other empty history: only the target matters.
    empty = without_history(inputs)
    noisy = garbage_in_padding(np.random.default_rng(2), empty)
    np.testing.assert_allclose(_np(model(noisy)), _np(model(empty)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_save_load_round_trip(data, tmp_path, name):
    inputs, clicks = data
    assert_save_load_round_trip(_tiny(name), inputs, clicks, tmp_path)


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
        for name in {sorted(BASELINES)!r}:
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


# ------------------------------------------------- the CTR Trainer and export
@pytest.fixture(scope="module")
def transform():
    """A real tf.Transform output of the CTR preprocessing_fn (tests/components/ctr_transform.py)."""
    import tensorflow_transform as tft

    from tests.components.ctr_transform import TRANSFORM, artifacts

    uris = artifacts()
    return uris, tft.TFTransformOutput(uris["transform_graph"]), TRANSFORM


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_trains_and_exports_in_the_ctr_trainer(transform, tmp_path, name):
    """The registry entry goes through the CTR Trainer's hooks (prepare, build, training
    dataset, compile, fit, export), and the exported `pctr` signature scores as the model."""
    from trainer.ctr import input as ctr_input
    from trainer.ctr import run as ctr_run
    from trainer.ctr.config import CTRTrainingConfig

    uris, tft_output, settings = transform
    cfg = CTRTrainingConfig(model=name, model_config="tiny", transform=dict(settings), batch_size=4)
    hooks = ctr_run.HOOKS
    data = hooks.prepare(types.SimpleNamespace(train_files=[os.path.join(uris["examples"], "Split-train")]), cfg,
                         tft_output)
    model = hooks.build(cfg, data, tft_output)
    assert isinstance(model, BASELINES[name])
    hooks.compile(model, cfg)
    model.build()
    before = [_np(w).copy() for w in model.trainable_weights]
    history = model.fit(hooks.training_dataset(cfg, data, model), steps_per_epoch=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(np.abs(_np(w) - b).max() > 0 for w, b in zip(model.trainable_weights, before))
    path = str(tmp_path / name)
    hooks.export(model, data, tft_output, path)
    served = tf.saved_model.load(path)
    vocab = [line.strip() for line in open(ctr_run.ctr_export.item_vocabulary_file(tft_output))]
    history_ids = tf.constant([[2, 3, 4, 0], [5, 6, 0, 0], [0, 0, 0, 0]], tf.int64)
    targets = tf.constant([5, 2, 6], tf.int64)
    x = ctr_input.to_model_inputs(history_ids, targets, data.table, model.item_fields)
    expected = _np(ops.sigmoid(model(x, training=False)))
    raw = lambda ids: [vocab[i - 2] if i >= 2 else "" for i in ids]  # noqa: E731
    histories = tf.constant([raw(h) for h in history_ids.numpy()])
    out = served.signatures["pctr"](user_id=tf.constant(["u"] * 3), history=histories,
                                    target=tf.constant(raw(targets.numpy())))["pctr"].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
