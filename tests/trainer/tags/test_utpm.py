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
from trainer.tags.models.utpm import UTPM, AttentionFusion, CrossFeatures, UTPMConfig

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


@pytest.mark.parametrize("overrides", [{}, {"head_merge": "concat"}, {"cross": False, "heads": 1, "shared_query": False}])
def test_save_load_round_trip(batch, tmp_path, overrides):
    inputs, clicks, _ = batch
    assert_save_load_round_trip(_model(**overrides), inputs, clicks, tmp_path)


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
