"""Skipping padding (trainer/news/models/padding.py) changes no real output.

Each test compares the trimmed/packed computation with the plain padded one
(trimming is switched off by claiming an XLA-compiled step, the static-shape
path JAX takes).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from keras import ops
from news_fixtures import NUM_USERS, SIZES, impressions

from trainer.layers.attention import masked_softmax, segment_softmax
from trainer.layers.fastformer import Fastformer
from trainer.news.models import build_model, make_config, padding


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def test_real_lengths_count_to_the_last_real_token():
    tokens = np.array([[3, 0, 5, 0, 0], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]], "int32")
    np.testing.assert_array_equal(_np(padding.real_lengths(tokens)), [3, 0, 5])


def test_map_by_length_groups_trims_and_restores_order():
    lengths = np.array([2, 7, 0, 5, 3, 7, 1], "int32")
    rows = {"x": np.arange(7, dtype="float32")[:, None] * np.ones((1, 8), "float32")}
    widths = []

    def fn(part, width):
        widths.append(int(_np(width)))
        return part["x"][:, :width] * 1.0 + 0.0 * ops.cast(width, "float32")

    padding.MIN_GROUP_ROWS, saved = 1, padding.MIN_GROUP_ROWS  # 3 groups even for 7 rows
    try:
        sums = _np(padding.map_by_length(lambda p, w: ops.sum(fn(p, w), axis=1), rows, lengths, groups=3))
        # More groups than rows: empty groups are harmless.
        out = padding.map_by_length(lambda p, w: p["x"][:, :1], rows, lengths, groups=16)
    finally:
        padding.MIN_GROUP_ROWS = saved
    # Rows come back in their order; each saw its group's longest length.
    assert sorted(widths, reverse=True) == widths and widths[0] == 7
    order = np.argsort(-lengths, kind="stable")
    bounds = [(7 + 3) * g // 3 for g in range(4)]  # 7 rows + one padding row per group
    group_of = {int(r): g for g in range(3) for r in order[bounds[g] : bounds[g + 1]]}
    expected = [np.arange(7)[i] * widths[group_of[i]] for i in range(7)]
    np.testing.assert_allclose(sums, expected)
    np.testing.assert_allclose(_np(out)[:, 0], np.arange(7))


def test_no_trimming_under_static_shapes():
    calls = []
    with padding.dynamic_shapes(jit_compile=True):
        assert not padding.trimming_allowed()
        padding.map_by_length(lambda p, w: calls.append(w) or p["x"], {"x": np.ones((3, 2))}, np.ones(3, "int32"))
    assert calls == [None]
    assert padding.trimming_allowed() == (keras.backend.backend() == "tensorflow")


@pytest.mark.parametrize("name", ["nrms", "lstur", "fum", "fum_no_coarse"])
def test_models_score_the_same_with_and_without_trimming(name, monkeypatch):
    monkeypatch.setattr(padding, "MIN_GROUP_ROWS", 1)  # all 16 groups, though the batch is small
    inputs, _ = impressions(np.random.default_rng(3), 6, width=5, clicks=1)
    inputs["cand_mask"][1, 3:] = 0.0
    inputs["hist_category"][2, 0] = 0  # an unknown category on a real click
    inputs["hist_title"][3, 1] = 0  # a real click with an empty title
    sizes = {**SIZES, "num_users": NUM_USERS}
    declared = {f.name for f in dataclasses.fields(make_config(name))}
    model = build_model(name, "tiny", **{k: v for k, v in sizes.items() if k in declared})
    assert padding.trimming_allowed()
    trimmed = _np(model(inputs))
    model.jit_compile = True  # static shapes: the padded computation
    assert model.jit_compile is True
    try:
        padded = _np(model(inputs))
    finally:
        model.jit_compile = False
    real = inputs["cand_mask"] > 0
    np.testing.assert_allclose(trimmed[real], padded[real], rtol=1e-4, atol=1e-5)
    user_trimmed = _np(model.encode_user(inputs))
    model.jit_compile = True
    try:
        user_padded = _np(model.encode_user(inputs))
    finally:
        model.jit_compile = False
    np.testing.assert_allclose(user_trimmed, user_padded, rtol=1e-4, atol=1e-5)


def test_segment_softmax_matches_masked_softmax_per_segment():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(9, 2)).astype("float32")
    segments = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3], "int32")  # segment 2 is empty
    mask = np.array([1, 0, 1, 0, 0, 1, 1, 1, 0], bool)  # segment 1 fully masked
    out = _np(segment_softmax(logits, segments, 5, mask))
    for seg in range(5):
        rows = segments == seg
        if not rows.any():
            continue
        expected = _np(masked_softmax(logits[rows].T, mask[rows][None], axis=-1)).T
        np.testing.assert_allclose(out[rows], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[segments == 1], 0.0)


def test_segment_softmax_gradients_are_finite_with_huge_masked_logits():
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient check written with tf.GradientTape")
    logits = tf.constant([1.0, 1e30, 2.0, -1e30], "float32")
    segments = tf.constant([0, 0, 1, 1], "int32")
    mask = tf.constant([True, False, True, False])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(segment_softmax(logits, segments, 2, mask) * [1.0, 2.0, 3.0, 4.0])
    assert np.isfinite(_np(tape.gradient(loss, logits))).all()


def test_fastformer_packed_equals_padded_rows():
    rng = np.random.default_rng(2)
    lengths = [5, 2, 4]
    x = rng.normal(size=(3, 5, 6)).astype("float32")
    mask = np.arange(5)[None] < np.array(lengths)[:, None]
    mask[0, 1] = False  # a masked token inside a row
    for share in (False, True):
        layer = Fastformer(num_heads=2, head_dim=3, share_query_value=share)
        padded = _np(layer(x, mask=mask))
        keep = np.arange(5)[None] < np.array(lengths)[:, None]
        rows = np.repeat(np.arange(3), 5).reshape(3, 5)[keep].astype("int32")
        packed = _np(layer(x[keep], mask=mask[keep], segment_ids=rows, num_segments=3))
        np.testing.assert_allclose(packed, padded[keep], rtol=1e-5, atol=1e-6)
    assert len(layer.weights) == 6 and layer.qkv_kernel.shape == (6, 12)
