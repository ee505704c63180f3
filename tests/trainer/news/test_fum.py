"""Tests for FUM, its ablations and its registry entries."""

from __future__ import annotations

import pathlib
import re

import keras
import numpy as np
import pytest
from keras import ops
from news_fixtures import NUM_ENTITIES, SIZES, impression_auc, impressions, training_set

from tests.model_checks import assert_save_load_round_trip
from trainer.news.models import MODELS, build_model, make_config
from trainer.news.models.fum import FUM, FUMConfig, FUMNoCoarseConfig, FUMNoFineConfig


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


def _tiny(name: str = "fum", **overrides) -> FUM:
    return build_model(name, "tiny", **SIZES, **overrides)


def test_config_defaults_follow_paper():
    c = FUMConfig()
    assert c.news_dim == 400 and c.embedding_dim == 300 and c.dropout == 0.2
    assert (c.num_heads, c.head_dim) == (20, 20)
    assert (c.fine_num_heads, c.fine_head_dim, c.fine_dim) == (3, 40, 30)
    assert (c.coarse_dim, c.fine_user_dim) == (370, 30)
    assert c.fine_share_query_value and not c.fine_use_bias  # official code: W_v = W_q, no biases
    assert (FUMNoFineConfig().coarse_dim, FUMNoFineConfig().fine_user_dim) == (400, 0)
    assert (FUMNoCoarseConfig().coarse_dim, FUMNoCoarseConfig().fine_user_dim) == (0, 400)
    tiny = FUMConfig.preset("tiny", **SIZES)
    assert FUMConfig.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(ValueError):
        FUMConfig(use_fine=False, use_coarse=False)
    with pytest.raises(ValueError):
        FUMConfig(fine_dim=400)
    with pytest.raises(ValueError):
        FUMConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError):
        build_model("fum", "tiny")  # vocabulary sizes not set


def test_fine_fastformer_has_biases_only_when_configured():
    names = lambda model: {w.path.split("/")[-1] for w in model.user_encoder.fine_encoder.fastformer.weights}  # noqa: E731
    plain, biased = _tiny(), _tiny(fine_use_bias=True)
    plain.build(), biased.build()
    assert names(plain) == {"qkv_kernel", "query_attention", "key_attention", "output_kernel"}
    assert names(biased) - names(plain) == {"qkv_bias", "output_bias"}


@pytest.mark.parametrize("preset", ["paper", "tiny"])
def test_fine_only_ablation_is_as_wide_as_the_coarse_model(preset):
    """Official fine-only variant: 10 x 40 token states and 400-d clicks, the coarse model's width."""
    fine_only = make_config("fum_no_coarse", preset, **SIZES)
    assert fine_only.fine_num_heads * fine_only.fine_head_dim == fine_only.num_heads * fine_only.head_dim
    assert fine_only.fine_news_dim == fine_only.fine_user_dim == fine_only.news_dim
    if preset == "paper":
        assert (fine_only.fine_num_heads, fine_only.fine_head_dim, fine_only.fine_news_dim) == (10, 40, 400)
    model = build_model("fum_no_coarse", fine_only)
    model.build()
    fine = model.user_encoder.fine_encoder
    assert fine.fastformer.output_dim == fine_only.news_dim and fine.projection.units == fine_only.news_dim
    full = make_config("fum", preset, **SIZES)  # FUM itself keeps its small fine model
    assert full.fine_num_heads * full.fine_head_dim < full.num_heads * full.head_dim


def test_registry_entries():
    for name in ("fum", "fum_no_fine", "fum_no_coarse"):
        assert MODELS[name][1] is FUM
    assert make_config("fum_no_fine", "tiny", **SIZES).use_fine is False
    assert make_config("fum_no_coarse", {**SIZES}).use_coarse is False


@pytest.mark.parametrize("name", ["fum", "fum_no_fine", "fum_no_coarse"])
def test_shapes_parts_and_masking(batch, name):
    model = _tiny(name)
    scores = _np(model(batch))
    b, c = batch["cand_mask"].shape
    assert scores.shape == (b, c) and np.all(np.isfinite(scores))
    assert np.all(scores[batch["cand_mask"] == 0] <= -1e8)
    assert model.news_fields == ("title", "abstract", "category", "subcategory")

    # Scores recompose from the cacheable parts.
    user = model.encode_user(batch)
    assert tuple(user.shape) == (b, 32)
    news = model.encode_news(
        {f: batch[f"cand_{f}"].reshape((b * c,) + batch[f"cand_{f}"].shape[2:]) for f in model.news_fields}
    )
    recomposed = _np(model.score(user, ops.reshape(news, (b, c, 32)), batch["cand_mask"]))
    np.testing.assert_allclose(recomposed, scores, rtol=1e-5, atol=1e-5)

    # Content of padded history slots and padded title tokens is ignored.
    rng = np.random.default_rng(1)
    noisy = dict(batch)
    pad_click = batch["hist_mask"] == 0
    assert pad_click.any()
    for f, high in (("title", SIZES["vocab_size"]), ("category", SIZES["num_categories"])):
        values = batch[f"hist_{f}"]
        garbage = rng.integers(2, high, values.shape).astype("int32")
        where = pad_click.reshape(pad_click.shape + (1,) * (values.ndim - 2))
        noisy[f"hist_{f}"] = np.where(where, garbage, values)
    np.testing.assert_allclose(_np(model(noisy)), scores, rtol=1e-5, atol=1e-5)


def test_fine_model_reads_words_of_the_history(batch):
    """Changing a clicked title's words moves the fine-grained user vector,
    even with the news encoder's output held fixed (the coarse path)."""
    model = _tiny("fum_no_coarse")
    user = _np(model.encode_user(batch))
    changed = dict(batch)
    title = batch["hist_title"].copy()
    title[0, 0, 0] = 2 if title[0, 0, 0] != 2 else 3
    changed["hist_title"] = title
    vectors = model.encode_news_sequences(batch, prefixes=("hist",))[0]
    direct = _np(model.user_representation(vectors, changed))
    assert np.abs(direct[0] - user[0]).max() > 1e-6
    np.testing.assert_allclose(direct[1:], user[1:], rtol=1e-5, atol=1e-6)


def test_without_abstract_and_empty_history(batch):
    model = _tiny(use_abstract=False)
    assert model.news_fields == ("title", "category", "subcategory")
    empty = dict(batch, hist_mask=np.zeros_like(batch["hist_mask"]))
    assert np.all(np.isfinite(_np(model(empty))))


def test_save_load_round_trip(batch, tmp_path):
    y = np.zeros(batch["cand_mask"].shape[0], "int32")
    assert_save_load_round_trip(_tiny(), batch, y, tmp_path, exact=False)


@pytest.mark.parametrize("name", ["fum", "fum_no_coarse"])
def test_learns_planted_interests(name):
    rng = np.random.default_rng(0)
    x_train, y_train = training_set(rng, 1536)
    x_eval, labels = impressions(rng, 200, width=6, clicks=2)
    model = _tiny(name, seed=0)

    def auc() -> float:
        scores = _np(model.predict(x_eval, batch_size=200, verbose=0))
        return impression_auc(scores, labels, x_eval["cand_mask"])

    untrained = auc()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)  # 144 steps
    trained = auc()
    assert 0.3 <= untrained <= 0.7, untrained
    assert trained >= 0.8, (untrained, trained)


@pytest.mark.parametrize(
    "relpath",
    [
        "trainer/layers/fastformer.py",
        "trainer/layers/pooling.py",
        "trainer/news/models/fum.py",
        "trainer/news/models/lstur.py",
    ],
)
def test_sources_use_keras_ops_only(relpath):
    source = (pathlib.Path(__file__).resolve().parents[3] / relpath).read_text()
    assert not re.search(r"\btensorflow\b|\btf\.|\bas tf\b", source), relpath


def test_entities_are_read_when_the_data_has_them(batch, tmp_path):
    model = _tiny(num_entities=NUM_ENTITIES)
    assert model.news_fields[-1] == "entities" and "entities" not in _tiny().news_fields
    scores = _np(model(batch))
    changed = dict(batch, cand_entities=np.where(batch["cand_entities"] > 0, 2, 0).astype("int32"))
    assert np.abs(_np(model(changed)) - scores).max() > 1e-6
    no_entities = dict(batch, cand_entities=np.zeros_like(batch["cand_entities"]))
    assert np.isfinite(_np(model(no_entities))).all()
    path = str(tmp_path / "fum_entities.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(_np(restored(batch)), scores, rtol=1e-5, atol=1e-5)
