"""MFN: similarity and combination interests at two levels, target aggregation, ablations."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from ctr_fixtures import CATEGORIES, SIZES, TRAIN_ROWS, auc, batch, garbage_in_padding, predict, train, without_history
from keras import ops

from tests.model_checks import assert_save_load_round_trip
from trainer.ctr.models.interests import CenterFitConfig, fit_interest_centers
from trainer.ctr.models.mfn import MFN, CombinationInterests, InterestAggregation, MFNConfig


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _tiny(**overrides) -> MFN:
    centers = overrides.pop("centers", None)
    fixed = overrides.pop("fixed_embeddings", None)
    return MFN(MFNConfig.preset("tiny", **{**SIZES, **overrides}), fixed_embeddings=fixed, centers=centers)


def test_combination_interests_mask_padding_and_empty_histories():
    layer = CombinationInterests(num_interests=3, heads=2, units=8)
    rng = np.random.default_rng(0)
    behaviours = rng.normal(size=(4, 6, 8)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0] * 6], "float32")
    out, weights = (_np(v) for v in layer(behaviours, mask))
    assert out.shape == (4, 3, 8) and weights.shape == (4, 3, 6)
    np.testing.assert_allclose(weights[:3].sum(-1), 1.0, rtol=1e-5)  # A: a distribution over real behaviours
    np.testing.assert_array_equal(weights[mask[:, None, :].repeat(3, 1) == 0], 0.0)
    np.testing.assert_allclose(out, np.einsum("bkn,bnd->bkd", weights, behaviours * mask[..., None]), rtol=1e-4, atol=1e-6)
    noisy = np.where(mask[..., None] > 0, behaviours, 100 * rng.normal(size=behaviours.shape)).astype("float32")
    np.testing.assert_allclose(_np(layer(noisy, mask)[0]), out, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # no behaviour, no interest
    np.testing.assert_allclose(out[2], np.broadcast_to(behaviours[2, 0], (3, 8)), rtol=1e-5)  # one: all of it


def test_aggregation_normalises_over_its_own_interests():
    layer = InterestAggregation((8,))
    rng = np.random.default_rng(1)
    interests = rng.normal(size=(5, 4, 6)).astype("float32")
    target = rng.normal(size=(5, 6)).astype("float32")
    vector, weights = (_np(v) for v in layer(interests, target))
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vector, np.einsum("bk,bkd->bd", weights, interests), rtol=1e-4, atol=1e-6)


def test_similarity_interests_are_assignment_transposed_times_embeddings(data):
    inputs, _ = data
    model = _tiny()
    parts = model.interests(inputs)
    history, _ = model.embed_items(inputs)
    e = model.config.embedding_dim
    mask = inputs["hist_mask"]
    for level, columns in (("category", slice(0, 2 * e)), ("fine", slice(2 * e, 3 * e))):
        p = _np(parts[level]["assignment"])
        np.testing.assert_array_equal(p[mask == 0], 0.0)
        np.testing.assert_allclose(p[mask > 0].sum(-1), 1.0, rtol=1e-5)
        expected = np.einsum("bnk,bnd->bkd", p, _np(history)[..., columns])
        np.testing.assert_allclose(_np(parts[level]["similarity"]), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("overrides", [{}, {"use_pretrain": False}, {"use_combination": False}, {"vocab_size": 0}])
def test_padding_changes_nothing_and_empty_histories_are_finite(data, overrides):
    inputs, _ = data
    if overrides.get("vocab_size") == 0:
        inputs = {k: v for k, v in inputs.items() if not k.endswith("_words")}
    model = _tiny(**overrides)
    expected = _np(model(inputs))
    assert expected.shape == (len(inputs["target_item"]),) and np.isfinite(expected).all()
    noisy = garbage_in_padding(np.random.default_rng(1), {**inputs, "hist_words": data[0]["hist_words"]})
    noisy = {k: v for k, v in noisy.items() if k in inputs}
    np.testing.assert_allclose(_np(model(noisy)), expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(_np(model(without_history(inputs), training=True))).all()


@pytest.mark.parametrize("overrides", [{}, {"use_combination": False}, {"vocab_size": 0}, {"use_pretrain": False}])
def test_call_is_score_of_encode_user(data, overrides):
    """The serving split: cached interests scored against the targets give the model's logits,
    also for many candidates per user (each user's row repeated) and for an empty history."""
    inputs, _ = data
    if overrides.get("vocab_size") == 0:
        inputs = {k: v for k, v in inputs.items() if not k.endswith("_words")}
    model = _tiny(**overrides)
    expected = _np(model(inputs))
    interests = model.encode_user({k: v for k, v in inputs.items() if k.startswith("hist_")})
    blocks = len(model.config.levels) * (2 if model.config.use_combination else 1)
    assert _np(interests).shape == (len(expected), model.interest_size)
    assert model.interest_size == sum(4 * model._level_dim(level) for level, _ in model.blocks) and len(model.blocks) == blocks
    np.testing.assert_allclose(_np(model.score(interests, inputs)), expected, rtol=1e-5, atol=1e-5)
    # One user's interests against every target of the batch (the candidates request).
    targets = {k: v for k, v in inputs.items() if k.startswith("target_")}
    one = np.repeat(_np(interests)[:1], len(expected), axis=0)
    many = _np(model.score(one, targets))
    repeated = {k: (np.repeat(v[:1], len(expected), axis=0) if k.startswith("hist_") else v) for k, v in inputs.items()}
    np.testing.assert_allclose(many, _np(model(repeated)), rtol=1e-5, atol=1e-5)
    empty = without_history(inputs)
    np.testing.assert_allclose(_np(model.encode_user(empty)), 0.0)
    np.testing.assert_allclose(_np(model.score(model.encode_user(empty), empty)), _np(model(empty)), rtol=1e-5, atol=1e-5)


def test_ablations_and_centers():
    assert not _tiny().config.centers_trainable and _tiny(use_pretrain=False).config.centers_trainable
    model = _tiny(use_combination=False)
    model.build()
    assert {kind for _, kind in model.blocks} == {"similarity"} and not model.combination
    with pytest.raises(ValueError, match=r"centers\['category'\] must be \(4, 16\)"):
        _tiny(centers={"category": np.zeros((3, 16))}).build()
    given = np.arange(4 * 16, dtype="float32").reshape(4, 16)
    model = _tiny(centers={"category": given})
    model.build()
    np.testing.assert_array_equal(_np(model.centers["category"]), given)
    assert not model.centers["category"].trainable


def test_other_centers_give_other_predictions(data):
    """The centers artifact really matters: the same weights with other centers score otherwise."""
    inputs, _ = data
    rng = np.random.default_rng(3)
    fixed = {"item": rng.normal(size=(SIZES["num_items"], 8)), "categories": rng.normal(size=(SIZES["num_categories"], 8)),
             "words": rng.normal(size=(SIZES["vocab_size"], 8))}  # pretrained vectors are not tiny
    first = _tiny(fixed_embeddings=fixed, centers={"category": rng.normal(size=(4, 16)), "fine": rng.normal(size=(4, 8))})
    first.build()
    second = _tiny(fixed_embeddings=fixed, centers={"category": rng.normal(size=(4, 16)), "fine": rng.normal(size=(4, 8))})
    second.build()
    for a, b in zip(first.weights, second.weights):
        if "centers" not in a.path:
            b.assign(a)
    a, b = (_np(m.interests(inputs)["category"]["similarity"]) for m in (first, second))
    assert np.abs(a - b).max() > 0.1 * np.abs(a).max()  # other assignments, other interests
    assert np.abs(_np(first(inputs)) - _np(second(inputs))).max() > 0  # and other scores


def test_auxiliary_interest_loss_only_with_trainable_centers(data):
    inputs, clicks = data
    plain = _tiny(use_pretrain=False)
    plain(inputs, training=True)
    assert not plain.losses
    aux = _tiny(use_pretrain=False, interest_loss_weight=0.5)
    aux(inputs, training=True)
    assert len(aux.losses) == 2  # one L_E per level
    fixed = _tiny(interest_loss_weight=0.5)  # fixed E and C: L_E is a constant, not added
    fixed(inputs, training=True)
    assert not fixed.losses


@pytest.mark.parametrize("overrides", [{}, {"use_pretrain": False, "interest_loss_weight": 0.1}])
def test_save_load_round_trip(data, tmp_path, overrides):
    inputs, clicks = data
    assert_save_load_round_trip(_tiny(**overrides), inputs, clicks, tmp_path)


def _no_words(inputs: dict) -> dict:
    """The batch as Taobao data look: item and categories, no word fields."""
    return {k: v for k, v in inputs.items() if not k.endswith("_words")}


def _no_words_tables(rng: np.random.Generator) -> dict:
    """An auxiliary model's item and category tables (no words), not tiny, as trained ones."""
    return {"item": rng.normal(size=(SIZES["num_items"], 8)).astype("float32"),
            "categories": rng.normal(size=(SIZES["num_categories"], 8)).astype("float32")}


def test_without_words_the_fine_level_reads_the_item_id(data):
    """No words (Taobao): two levels; the fine level assigns by the auxiliary item vectors
    against its own centers and sums the (shared) trainable item-id vectors (eqs. 1, 4-7)."""
    inputs = _no_words(data[0])
    rng = np.random.default_rng(5)
    fixed = _no_words_tables(rng)
    centers = {"category": rng.normal(size=(4, 16)), "fine": rng.normal(size=(4, 8))}
    model = _tiny(vocab_size=0, fixed_embeddings=fixed, centers=centers)
    cfg = model.config
    assert cfg.levels == ("category", "fine") and cfg.fine_field == "item" and cfg.item_fields == ("item", "categories")
    assert set(model.fixed) == {"item", "categories"}  # no word table
    parts = model.interests(inputs)
    e, k, (b, h) = cfg.embedding_dim, cfg.num_interests, inputs["hist_mask"].shape
    mask = inputs["hist_mask"]
    assert 0 < mask.sum() < mask.size  # padding in the batch
    fine = {name: _np(v) for name, v in parts["fine"].items()}
    assert fine["assignment"].shape == (b, h, k) and fine["similarity"].shape == (b, k, e)
    assert fine["combination"].shape == (b, k, e) and fine["attention"].shape == (b, k, h)
    np.testing.assert_array_equal(fine["assignment"][mask == 0], 0.0)
    np.testing.assert_array_equal(fine["attention"].transpose(0, 2, 1)[mask == 0], 0.0)
    logits = fixed["item"][inputs["hist_item"]] @ centers["fine"].T  # eq. 1 on the auxiliary item vectors
    expected_p = np.exp(logits - logits.max(-1, keepdims=True))
    expected_p = expected_p / expected_p.sum(-1, keepdims=True) * mask[..., None]
    np.testing.assert_allclose(fine["assignment"], expected_p, rtol=1e-4, atol=1e-6)
    history, _ = model.embed_items(inputs)
    np.testing.assert_allclose(fine["similarity"], np.einsum("bnk,bnd->bkd", expected_p, _np(history)[..., :e]),
                               rtol=1e-4, atol=1e-5)  # 𝓔 = the item-id part, shared with the category level
    np.testing.assert_array_equal(_np(model.centers["fine"]), centers["fine"].astype("float32"))
    assert not model.centers["fine"].trainable
    interests = _np(model.encode_user(inputs))
    assert interests.shape == (b, 2 * k * (2 * e + e)) == (b, model.interest_size)
    np.testing.assert_allclose(_np(model.encode_user(without_history(inputs))), 0.0)


def test_without_words_other_fine_centers_give_other_predictions(data):
    """The fine level's centers matter: same weights and category centers, other fine centers
    (as another Algorithm 1 run would give) → other fine interests and other scores."""
    inputs = _no_words(data[0])
    rng = np.random.default_rng(6)
    fixed, category = _no_words_tables(rng), rng.normal(size=(4, 16))
    first, second = (_tiny(vocab_size=0, fixed_embeddings=fixed,
                           centers={"category": category, "fine": rng.normal(size=(4, 8))}) for _ in range(2))
    first.build()
    second.build()
    for a, b in zip(first.weights, second.weights):
        if "fine_centers" not in a.path:
            b.assign(a)
    a, b = (m.interests(inputs) for m in (first, second))
    np.testing.assert_allclose(_np(a["category"]["similarity"]), _np(b["category"]["similarity"]), rtol=1e-6)
    fine_a, fine_b = _np(a["fine"]["similarity"]), _np(b["fine"]["similarity"])
    assert np.abs(fine_a - fine_b).max() > 0.1 * np.abs(fine_a).max()
    assert np.abs(_np(first(inputs)) - _np(second(inputs))).max() > 1e-6


def test_without_words_fine_centers_must_have_the_item_width():
    with pytest.raises(ValueError, match=r"centers\['fine'\] must be \(4, 8\)"):
        _tiny(vocab_size=0, fixed_dim=8, word_dim=50, centers={"fine": np.zeros((4, 50))}).build()


def test_without_words_save_load_round_trip(data, tmp_path):
    inputs, clicks = data
    rng = np.random.default_rng(8)
    model = _tiny(vocab_size=0, fixed_embeddings=_no_words_tables(rng),
                  centers={"category": rng.normal(size=(4, 16)), "fine": rng.normal(size=(4, 8))})
    restored = assert_save_load_round_trip(model, _no_words(inputs), clicks, tmp_path)
    assert restored.config.fine_field == "item"
    np.testing.assert_array_equal(_np(restored.centers["fine"]), _np(model.centers["fine"]))


@pytest.fixture(scope="module")
def planted():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train, _ = batch(rng, TRAIN_ROWS)
    x_eval, y_eval, _ = batch(rng, 4000)
    # Fixed tables as an auxiliary model would give: items of a topic near each other.
    fixed_item = rng.normal(size=(SIZES["num_items"], 8)).astype("float32") * 0.3
    fixed_item[2:] += 2.0 * rng.normal(size=(8, 8)).astype("float32")[CATEGORIES[2:, 0] - 2]
    fixed = {"item": fixed_item, "categories": rng.normal(size=(SIZES["num_categories"], 8)).astype("float32"),
             "words": rng.normal(size=(SIZES["vocab_size"], 8)).astype("float32")}
    probe = _tiny(fixed_embeddings=fixed)
    probe.build()
    vectors = probe._fixed_behaviours(x_train)
    mask = x_train["hist_mask"]
    centers = {level: fit_interest_centers(_np(v), mask, CenterFitConfig(num_interests=4, steps=200, batch_size=256))
               for level, v in vectors.items()}
    model = _tiny(fixed_embeddings=fixed, centers=centers)
    untrained = auc(predict(model, x_eval), y_eval)
    train(model, x_train, y_train)
    return {"untrained": untrained, "mfn": auc(predict(model, x_eval), y_eval)}


def test_learns_planted_interests(planted):
    assert 0.35 < planted["untrained"] < 0.65, planted["untrained"]
    assert planted["mfn"] > 0.85, planted["mfn"]
