"""Tests for Embedding&MLP (MFN's Base), the CTR base model, its item embedding and loss."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
from ctr_fixtures import SIZES, TOPICS, TRAIN_ROWS, auc, batch, garbage_in_padding, predict, train
from keras import ops

from tests.model_checks import REPO, assert_keras_ops_only, assert_save_load_round_trip
from trainer.ctr.models import MODELS, build_model, make_config
from trainer.ctr.models.ctr_model import CTRModel, ItemEmbedding
from trainer.ctr.models.embedding_mlp import EmbeddingMLP, EmbeddingMLPConfig
from trainer.model_base import sigmoid_cross_entropy


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _tiny(**overrides) -> EmbeddingMLP:
    return build_model("embedding_mlp", "tiny", **{**SIZES, **overrides})


# ------------------------------------------------------------------ fixtures
def test_auc_helper():
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([3.0, 2.0, 1.0], [1, 1, 0]) == 1.0
    assert auc([3.0, 2.0, 1.0], [0, 0, 1]) == 0.0
    assert auc([1.0, 1.0, 0.0], [1, 0, 0]) == 0.75  # a tie counts one half
    assert auc(np.zeros(6), [1, 0, 1, 0, 0, 1]) == 0.5


def test_fixture_has_padding_unknown_ids_and_planted_structure():
    inputs, clicks, counts = batch(np.random.default_rng(0), 3000)
    mask = inputs["hist_mask"]
    assert (mask == 0).any(axis=1).mean() > 0.8  # most rows padded
    assert (mask.sum(1) == 0).any() and (mask.sum(1) == mask.shape[1]).any()
    assert (inputs["hist_item"][mask > 0] == 1).any() and (inputs["target_item"] == 1).any()
    assert (inputs["target_words"] == 1).any()
    assert set(np.unique(counts)) == {2, 3}
    # Oracle: "is the target's topic among the history's topics" separates the clicks.
    target_topic = inputs["target_categories"][:, 0]
    seen = (inputs["hist_categories"][:, :, 0] == target_topic[:, None]).any(axis=1)
    real = mask.sum(1) >= 6
    assert auc(seen[real], clicks[real]) > 0.85
    # A history-agnostic oracle (the target's topic popularity) stays far below.
    rate = np.array([clicks[target_topic == 2 + t].mean() for t in range(TOPICS)])
    assert 0.5 < auc(rate[target_topic - 2], clicks) < 0.7


# -------------------------------------------------------------------- config
def test_config_defaults_follow_the_base_model():
    c = EmbeddingMLPConfig()
    assert c.mlp_units == (200, 80) and c.activation == "prelu" and c.embedding_dim == 64
    assert EmbeddingMLPConfig.preset("paper") == c


def test_config_presets_and_dict_round_trip():
    tiny = EmbeddingMLPConfig.preset("tiny", **SIZES)
    assert tiny.embedding_dim < 64 and tiny.num_items == SIZES["num_items"]
    assert EmbeddingMLPConfig.from_dict(tiny.to_dict()) == tiny
    # Through JSON (TFX custom_config, .keras files) tuples come back as lists.
    assert EmbeddingMLPConfig.from_dict(json.loads(json.dumps(tiny.to_dict()))) == tiny
    with pytest.raises(ValueError):
        EmbeddingMLPConfig.preset("huge")
    with pytest.raises(ValueError):
        EmbeddingMLPConfig.from_dict({"no_such_field": 1})
    with pytest.raises(ValueError):
        EmbeddingMLPConfig(activation="relu")


def test_registry():
    assert MODELS["embedding_mlp"] == (EmbeddingMLPConfig, EmbeddingMLP)
    assert make_config("embedding_mlp", {"num_items": 9, "mlp_units": [4]}).mlp_units == (4,)
    model = _tiny()
    assert isinstance(model, EmbeddingMLP) and isinstance(model, CTRModel)
    with pytest.raises(ValueError, match="num_items"):
        build_model("embedding_mlp")  # sizes not set
    with pytest.raises(ValueError, match="vocab_size"):
        build_model("embedding_mlp", "tiny", num_items=9, num_categories=9, vocab_size=2)


# ------------------------------------------------------------ item embedding
def test_item_embedding_pools_real_ids_only():
    layer = ItemEmbedding(num_items=6, num_categories=5, vocab_size=7, embedding_dim=3)
    layer.build()
    items = _np(layer.tables["item"].embeddings)
    cats = _np(layer.tables["categories"].embeddings)
    words = _np(layer.tables["words"].embeddings)
    fields = {
        "item": np.array([3, 1, 0], "int32"),
        "categories": np.array([[2, 4, 0], [1, 0, 0], [0, 0, 0]], "int32"),
        "words": np.array([[5, 5, 6, 0], [0, 0, 0, 0], [2, 0, 0, 0]], "int32"),
    }
    out = _np(layer(fields))
    assert out.shape == (3, 9)
    first = np.concatenate([items[3], (cats[2] + cats[4]) / 2, (2 * words[5] + words[6]) / 3])
    np.testing.assert_allclose(out[0], first, rtol=1e-6)
    np.testing.assert_allclose(out[1], np.concatenate([items[1], cats[1], np.zeros(3)]), rtol=1e-6)  # unknown id: a row
    np.testing.assert_allclose(out[2], np.concatenate([np.zeros(6), words[2]]), rtol=1e-6)  # padding: zeros
    # Without a word vocabulary there is no word table and `words` is not read.
    no_words = ItemEmbedding(num_items=6, num_categories=5, embedding_dim=3)
    assert no_words.fields == ("item", "categories") and no_words.output_dim == 6
    assert _np(no_words({"item": fields["item"], "categories": fields["categories"]})).shape == (3, 6)
    clone = ItemEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_embed_items_matches_separate_embedding(data):
    inputs, _ = data
    model = _tiny()
    history, target = model.embed_items(inputs)
    b, h = inputs["hist_mask"].shape
    d = model.config.item_dim
    assert tuple(history.shape) == (b, h, d) and tuple(target.shape) == (b, d)
    alone = {f: inputs[f"hist_{f}"] for f in model.item_fields}
    np.testing.assert_allclose(_np(history), _np(model.item_embedding(alone)), rtol=1e-6)
    alone = {f: inputs[f"target_{f}"] for f in model.item_fields}
    np.testing.assert_allclose(_np(target), _np(model.item_embedding(alone)), rtol=1e-6)


# ------------------------------------------------------------- forward pass
def test_output_shape_and_dtype(data):
    inputs, _ = data
    model = _tiny()
    assert model.item_fields == ("item", "categories", "words")
    logits = model(inputs)
    assert tuple(logits.shape) == (len(inputs["target_item"]),)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(_np(logits)))


def test_without_words_the_words_keys_may_be_absent(data):
    inputs, _ = data
    model = _tiny(vocab_size=0)
    assert model.item_fields == ("item", "categories")
    no_words = {k: v for k, v in inputs.items() if not k.endswith("_words")}
    np.testing.assert_array_equal(_np(model(no_words)), _np(model(inputs)))


def test_padding_changes_nothing(data):
    inputs, _ = data
    model = _tiny()
    expected = _np(model(inputs))
    noisy = garbage_in_padding(np.random.default_rng(1), inputs)
    assert not np.array_equal(noisy["hist_item"], inputs["hist_item"])
    np.testing.assert_allclose(_np(model(noisy)), expected, rtol=1e-6, atol=1e-6)
    # Longer category and word lists padded with 0 embed the same items.
    wider = dict(inputs)
    for key in ("hist_categories", "hist_words", "target_categories", "target_words"):
        pad = [(0, 0)] * (inputs[key].ndim - 1) + [(0, 3)]
        wider[key] = np.pad(inputs[key], pad)
    np.testing.assert_allclose(_np(model(wider)), expected, rtol=1e-6, atol=1e-6)


def test_empty_history_is_finite_and_ignores_its_slots(data):
    inputs, _ = data
    model = _tiny()
    empty = dict(inputs, hist_mask=np.zeros_like(inputs["hist_mask"]))
    logits = _np(model(empty))
    assert np.all(np.isfinite(logits))
    np.testing.assert_array_equal(_np(model(garbage_in_padding(np.random.default_rng(2), empty))), logits)
    history, _ = model.embed_items(empty)
    np.testing.assert_array_equal(_np(model.user_vector(history, empty["hist_mask"])), 0.0)


def test_history_is_sum_pooled(data):
    inputs, _ = data
    model = _tiny()
    history, _ = model.embed_items(inputs)
    mask = inputs["hist_mask"]
    user = _np(model.user_vector(history, mask))
    np.testing.assert_allclose(user, (_np(history) * mask[..., None]).sum(1), rtol=1e-5, atol=1e-6)
    # Clicking every item twice doubles the user vector (a mean would not change).
    twice = _np(model.user_vector(ops.concatenate([history, history], 1), np.concatenate([mask, mask], 1)))
    np.testing.assert_allclose(twice, 2 * user, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- loss
class _WithPenalty(EmbeddingMLP):
    """Adds a constant layer loss, to check that `compute_loss` includes `self.losses`."""

    def call(self, inputs, training=False):
        self.add_loss(ops.convert_to_tensor(0.25))
        return super().call(inputs, training)


def test_compute_loss(data):
    inputs, clicks = data
    model = _tiny()
    model.compile(optimizer="adam")
    logits = model(inputs)
    expected = _np(sigmoid_cross_entropy(clicks, logits))
    np.testing.assert_allclose(_np(model.compute_loss(inputs, clicks, logits)), expected, rtol=1e-6)

    penalised = _WithPenalty(model.config)
    penalised.compile(optimizer="adam")
    logits = penalised(inputs)
    loss = _np(penalised.compute_loss(inputs, clicks, logits))
    np.testing.assert_allclose(loss, _np(sigmoid_cross_entropy(clicks, logits)) + 0.25, rtol=1e-6)

    model.compile(optimizer="adam", loss="mse")  # a compiled loss takes precedence
    logits = model(inputs)
    mse = np.mean((_np(logits) - clicks) ** 2)
    np.testing.assert_allclose(_np(model.compute_loss(inputs, clicks, logits)), mse, rtol=1e-5)


# --------------------------------------------------------------- save / load
def test_save_load_round_trip(data, tmp_path):
    inputs, clicks = data
    assert_save_load_round_trip(_tiny(), inputs, clicks, tmp_path)


# ------------------------------------------------------------------ learning
def test_learns_planted_interests():
    rng = np.random.default_rng(0)
    x_train, y_train, _ = batch(rng, TRAIN_ROWS)
    x_eval, y_eval, _ = batch(rng, 3000)
    model = _tiny()
    untrained = auc(predict(model, x_eval), y_eval)
    assert 0.35 < untrained < 0.65, untrained
    trained = auc(predict(train(model, x_train, y_train), x_eval), y_eval)
    assert trained > 0.85, (untrained, trained)


# ------------------------------------------------------- backend agnosticism
MODEL_SOURCES = [
    "trainer/ctr/__init__.py",
    "trainer/ctr/models/__init__.py",
    "trainer/ctr/models/ctr_model.py",
    "trainer/ctr/models/embedding_mlp.py",
    "trainer/ctr/models/din.py",
]


@pytest.mark.parametrize("relpath", MODEL_SOURCES)
def test_sources_use_keras_ops_only(relpath):
    assert_keras_ops_only(relpath)
    source = (REPO / relpath).read_text()
    assert not re.search(r"\bimport numpy\b", source), relpath  # layers compute with keras.ops
