"""UTPM: shared-query attention fusion, the FM-style cross layer, the joint loss, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tags_fixtures as fx
from keras import ops
from keras_rs.layers import DotInteraction

from components.metrics.reference import global_auc, prec_at_k
from tests.model_checks import assert_save_load_round_trip
from trainer.tags.models import MODELS, make_config
from trainer.tags.models.utpm import UTPM, AttentionFusion, CrossFeatures, UTPMConfig
from trainer.tags.models.utpm_variants import VARIANTS

FIELDS = ("tags", "categories", "gender", "age", "occupation")


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def _model(**overrides) -> UTPM:
    sizes = {f: fx.FIELD_SIZES[f] for f in FIELDS}
    return UTPM(UTPMConfig.preset("tiny", fields=FIELDS, field_sizes=sizes, num_tags=fx.NUM_TAGS, **overrides))


@pytest.fixture(scope="module")
def batch():
    inputs, clicks, users, _ = fx.dataset(np.random.default_rng(3), 40, articles_per_user=2)
    return inputs, clicks, users


def test_one_query_per_head_shared_by_every_unit():
    shared = AttentionFusion(FIELDS, heads=2, attention_dim=8)
    shared.build({f: (None, None, 16) for f in FIELDS})
    assert tuple(shared.queries.shape) == (2, 1, 8)  # one query vector per head
    unshared = AttentionFusion(FIELDS, heads=1, attention_dim=8, shared_query=False)
    unshared.build({f: (None, None, 16) for f in FIELDS})
    assert tuple(unshared.queries.shape) == (1, len(FIELDS) + 1, 8)  # one per attention unit
    # W_k per field and one across fields, in every head.
    assert sorted(shared.units[0]) == sorted([*FIELDS, "fields"])


def test_padded_features_get_zero_weight_and_change_nothing(batch):
    users = {k.removeprefix("user_"): v for k, v in batch[2].items()}
    model = _model()
    model.build()
    x, weights = model.user_encoder.fuse(users)
    for head in weights:
        for field in FIELDS:
            w = _np(head[field])
            np.testing.assert_array_equal(w[users[field] == 0], 0.0)
            has_real = (users[field] != 0).any(1)
            np.testing.assert_allclose(w[has_real].sum(1), 1.0, rtol=1e-5)
        fields_w = _np(head["fields"])
        np.testing.assert_allclose(fields_w.sum(1)[fields_w.sum(1) > 0], 1.0, rtol=1e-5)
    wider = {f: np.pad(v, [(0, 0), (0, 3)]) for f, v in users.items()}
    np.testing.assert_allclose(_np(model.user_embedding({f"user_{f}": v for f, v in wider.items()})),
                               _np(model.user_embedding({f"user_{f}": v for f, v in users.items()})), rtol=1e-5, atol=1e-6)
    empty = {f"user_{f}": np.zeros_like(v) for f, v in users.items()}
    assert np.isfinite(_np(model.user_embedding(empty))).all()
    np.testing.assert_array_equal(_np(model.user_encoder.fuse({f: np.zeros_like(v) for f, v in users.items()})[0]), 0)


def test_cross_layer_equals_double_loop_and_keras_rs_dot_interaction():
    rng = np.random.default_rng(0)
    e, c = 16, 4
    layer = CrossFeatures(c)
    x = rng.normal(size=(5, e)).astype("float32")
    out = _np(layer(x))
    assert out.shape == (5, e + e * (e - 1) // 2)  # linear part and E(E-1)/2 pairs
    v = _np(layer.latent)
    loop = [[(v[i] @ v[j]) * row[i] * row[j] for i in range(e) for j in range(i)] for row in x]
    np.testing.assert_allclose(out[:, e:], np.array(loop), rtol=1e-4, atol=1e-5)
    rows = [x[:, i:i + 1] * v[i][None] for i in range(e)]  # the rows x_i v_i
    np.testing.assert_allclose(out[:, e:], _np(DotInteraction()(rows)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[:, :e], axis=1), 1.0, rtol=1e-5)


def test_joint_loss_on_hand_made_numbers():
    model = _model()
    model.build()
    u = np.array([[1.0, 0.0] + [0.0] * 14], "float32")
    table = np.zeros((fx.NUM_TAGS, 16), "float32")
    table[2, 0], table[3, 0] = 0.5, 1.5
    model.tag_table.embeddings.assign(table)
    logit = float(_np(model.article_logits(u, np.array([[2, 3, 0]])))[0])
    assert logit == pytest.approx(2.0)  # Σ_i u·t_i over the real tags (eq. 4)
    loss = float(model.paper_loss(None, np.array([1.0]), np.array([logit]), None))
    assert loss == pytest.approx(np.log1p(np.exp(-2.0)), rel=1e-5)


def test_separate_loss_on_hand_made_numbers():
    model = _model(loss="separate")
    model.build()
    table = np.zeros((fx.NUM_TAGS, 16), "float32")
    table[2, 0], table[3, 0], table[4, 0] = 0.5, 1.5, -1.0
    model.tag_table.embeddings.assign(table)
    u = _np(model.user_embedding({f"user_{f}": np.array([[2]]) for f in FIELDS}))[0]
    x = {f"user_{f}": np.array([[2], [2]]) for f in FIELDS}
    x["article_tags"] = np.array([[2, 3, 0], [4, 0, 0]])  # 2 real tags, then 1 real tag
    z = u[0] * np.array([0.5, 1.5, -1.0])
    bce = lambda y, logit: -y * np.log(1 / (1 + np.exp(-logit))) - (1 - y) * np.log(1 - 1 / (1 + np.exp(-logit)))  # noqa: E731
    # Each real tag is a sample with its article's label: (tag 2, 1), (tag 3, 1), (tag 4, 0).
    expected = (bce(1, z[0]) + bce(1, z[1]) + bce(0, z[2])) / 3
    loss = float(model.paper_loss(x, np.array([1, 0]), None, None))
    assert loss == pytest.approx(expected, rel=1e-5)
    weighted = float(model.paper_loss(x, np.array([1, 0]), None, np.array([2.0, 0.0])))
    assert weighted == pytest.approx(2 * (bce(1, z[0]) + bce(1, z[1])) / 3, rel=1e-5)
    # The joint loss of the same articles differs: one sample each, logits summed (eq. 4).
    joint = _model()
    joint.build()
    joint.set_weights(model.get_weights())
    logits = _np(joint(x))
    np.testing.assert_allclose(logits, [z[0] + z[1], z[2]], rtol=1e-5)
    assert float(joint.paper_loss(x, np.array([1, 0]), logits, None)) == pytest.approx(
        (bce(1, z[0] + z[1]) + bce(0, z[2])) / 2, rel=1e-5)


def test_attention_weights_per_head_mask_padding_and_match_the_fusion(batch):
    users = batch[2]
    model = _model(heads=2)
    weights = model.attention_weights(users)
    assert len(weights) == 2
    for head in weights:
        assert sorted(head) == sorted([*FIELDS, "fields"])
        for field in FIELDS:
            w = _np(head[field])
            assert w.shape == users[f"user_{field}"].shape
            np.testing.assert_array_equal(w[users[f"user_{field}"] == 0], 0.0)
        fields_w = _np(head["fields"])
        assert fields_w.shape == (len(users["user_tags"]), len(FIELDS))
        no_tags = ~(users["user_tags"] != 0).any(1)
        assert no_tags.any()  # the fixture has users without history tags
        np.testing.assert_array_equal(fields_w[no_tags, 0], 0.0)
    # The fused vector is the heads' weighted sums of the embeddings (eqs. 1-2), summed over heads.
    x, _ = model.user_encoder.fuse({f: users[f"user_{f}"] for f in FIELDS})
    vectors = model.user_encoder.embedding({f: users[f"user_{f}"] for f in FIELDS})
    rebuilt = sum(
        sum(_np(head["fields"])[:, k, None] * np.einsum("bh,bhe->be", _np(head[f]), _np(vectors[f]))
            for k, f in enumerate(FIELDS))
        for head in weights
    )
    np.testing.assert_allclose(_np(x), rebuilt, rtol=1e-4, atol=1e-5)


def test_variants_are_registered_with_their_rows():
    rows = {
        "utpm_af1_unshared": (1, False, "none", "separate"),
        "utpm_af1": (1, True, "none", "separate"),
        "utpm_af2": (2, True, "none", "separate"),
        "utpm_af2_cf": (2, True, "fm", "separate"),
        "utpm_af2_afm": (2, True, "afm", "separate"),
        "utpm_af2_nfm": (2, True, "nfm", "separate"),
        "utpm_af2_dcn": (2, True, "dcn", "separate"),
        "utpm_af2_autoint": (2, True, "autoint", "separate"),
        "utpm": (2, True, "fm", "joint"),
    }
    assert set(VARIANTS) | {"utpm"} == set(rows) and all(MODELS[n][1] is UTPM for n in rows)
    for name, (heads, shared, cross, loss) in rows.items():
        cfg = make_config(name, "tiny")
        assert (cfg.heads, cfg.shared_query, cfg.cross, cfg.loss, cfg.hidden_units) == (heads, shared, cross, loss, 16)
        sizes = {f: fx.FIELD_SIZES[f] for f in cfg.fields}
        model = MODELS.build(name, "tiny", field_sizes=sizes, num_tags=fx.NUM_TAGS)
        assert type(model.config) is UTPMConfig and model.config.cross == cross  # reloads as it was built


def test_config_checks_and_older_saved_configs():
    assert UTPMConfig(cross=True).cross == "fm" and UTPMConfig(cross=False).cross == "none"
    for bad in ({"cross": "xdeepfm"}, {"loss": "split"}, {"cross_depth": 0}):
        with pytest.raises(ValueError):
            UTPMConfig(**bad)
    industrial = UTPMConfig.preset("industrial")
    assert (industrial.heads, industrial.shared_query, industrial.cross, industrial.loss) == (2, True, "fm", "joint")


@pytest.mark.parametrize("overrides", [
    {}, {"head_merge": "concat"}, {"cross": "none", "heads": 1, "shared_query": False, "loss": "separate"},
    {"cross": "afm"}, {"cross": "nfm"}, {"cross": "dcn"}, {"cross": "autoint", "loss": "separate"},
])
def test_save_load_round_trip(batch, tmp_path, overrides):
    inputs, clicks, _ = batch
    assert_save_load_round_trip(_model(**overrides), inputs, clicks, tmp_path)


@pytest.mark.parametrize("cross", ["afm", "nfm", "dcn", "autoint"])
def test_cross_alternatives_ignore_padding(batch, cross):
    users = batch[2]
    model = _model(cross=cross)
    wider = {k: np.pad(v, [(0, 0), (0, 3)]) for k, v in users.items()}
    np.testing.assert_allclose(_np(model.user_embedding(wider)), _np(model.user_embedding(users)), rtol=1e-5, atol=1e-6)
    empty = {k: np.zeros_like(v) for k, v in users.items()}
    assert np.isfinite(_np(model.user_embedding(empty))).all()


def test_learns_planted_tag_preferences():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train, _, _ = fx.dataset(rng, 2000, articles_per_user=8)
    x_eval, y_eval, users, preferred = fx.dataset(rng, 500, articles_per_user=4)
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x_train, y_train, batch_size=128, epochs=4, verbose=0)
    auc = global_auc(y_eval, _np(model.predict(x_eval, batch_size=512, verbose=0)))
    ids, scores = model.top_tags(users, 1)
    n = len(preferred)
    prec1 = prec_at_k(np.arange(n), _np(ids)[:, 0], _np(scores)[:, 0], dict(enumerate(preferred)), 1)
    assert auc > 0.8 and prec1 > 0.6, (auc, prec1)
