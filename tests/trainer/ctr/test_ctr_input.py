"""Tests for the CTR family's sample construction and batching (trainer/ctr/input.py).

The transformed rows are written as small GZIP TFRecords with the feature spec the Transform
produces, so the real parsing path runs; users have histories of every length (one event,
shorter and longer than H), unknown items (id 1) and ratings on both sides of the click rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components.errors import UserError
from trainer.ctr import input as ctr_input

H = 3
FIELDS = ("item", "categories", "words")
# Transformed train rows: item ids (1 = unknown) and ratings, oldest first.
USERS = [
    {"items": [2, 3, 4, 5, 6], "ratings": [5.0, 3.0, 4.0, 1.0, 4.5]},
    {"items": [7], "ratings": [5.0]},  # one event: no sample
    {"items": [3, 1], "ratings": [2.0, 4.0]},  # an unknown item as target
    {"items": [8, 9, 2], "ratings": [3.5, 4.0, 3.9]},
]


def _table() -> ctr_input.ItemTable:
    categories = np.zeros((10, 2), np.int32)
    words = np.zeros((10, 4), np.int32)
    for item in range(2, 10):
        categories[item, : 1 + item % 2] = [2 + item % 3, 5][: 1 + item % 2]
        words[item, : item % 4 + 1] = np.arange(2, 3 + item % 4)
    return ctr_input.ItemTable({"categories": categories, "words": words})


def _write(path, rows: list[dict]) -> list[str]:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            feature = {}
            for name, values in row.items():
                if isinstance(values[0], float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return [str(path)]


SPEC = {
    "items": tf.io.VarLenFeature(tf.int64),
    "ratings": tf.io.VarLenFeature(tf.float32),
    "history": tf.io.FixedLenFeature([H], tf.int64),
}


def _samples(user: dict) -> dict[str, np.ndarray]:
    out = ctr_input.user_samples(tf.constant(user["items"], tf.int64), tf.constant(user["ratings"]), H)
    return {k: v.numpy() for k, v in out.items()}


def test_every_event_after_the_first_is_a_target_with_the_events_before_it():
    s = _samples(USERS[0])
    np.testing.assert_array_equal(s["target"], [3, 4, 5, 6])
    # Oldest first, padded at the end, truncated to the last H events before the target.
    np.testing.assert_array_equal(s["history"], [[2, 0, 0], [2, 3, 0], [2, 3, 4], [3, 4, 5]])
    # click = rating >= 4; the history keeps non-clicked items (rating 3 at item 3).
    np.testing.assert_array_equal(s["click"], [0.0, 1.0, 0.0, 1.0])


def test_single_event_user_has_no_sample_and_unknown_items_are_kept():
    s = _samples(USERS[1])
    assert s["history"].shape == (0, H) and s["target"].shape == (0,)
    s = _samples(USERS[2])
    np.testing.assert_array_equal(s["target"], [1])
    np.testing.assert_array_equal(s["history"], [[3, 0, 0]])
    np.testing.assert_array_equal(s["click"], [1.0])


def test_model_inputs_follow_the_contract():
    table = _table()
    history = tf.constant([[2, 3, 0], [0, 0, 0], [1, 9, 8]], tf.int64)  # an empty history, an unknown item
    target = tf.constant([4, 5, 1], tf.int64)
    x = {k: v.numpy() for k, v in ctr_input.to_model_inputs(history, target, table, FIELDS).items()}
    assert x["hist_categories"].shape == (3, H, 2) and x["hist_words"].shape == (3, H, 4)
    assert x["target_categories"].shape == (3, 2) and x["target_words"].shape == (3, 4)
    np.testing.assert_array_equal(x["hist_mask"], [[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(x["hist_categories"][0, 1], table.fields["categories"][3])
    np.testing.assert_array_equal(x["target_words"][1], table.fields["words"][5])
    assert not x["hist_words"][0, 2].any() and not x["target_categories"][2].any()  # padding, unknown: no content
    assert x["hist_item"].dtype == np.int32 and x["target_item"].tolist() == [4, 5, 1]
    no_words = ctr_input.to_model_inputs(history, target, table, ("item", "categories"))
    assert "hist_words" not in no_words and "target_words" not in no_words


def test_sample_counts(tmp_path):
    counts = ctr_input.sample_counts(_write(tmp_path / "train.gz", USERS), SPEC)
    assert counts == ctr_input.SampleCounts(users=4, single_event_users=1, events=11, samples=7, clicks=4)
    assert "7 samples" in counts.describe() and "rating >= 4" in counts.describe()


def test_events_without_ratings_are_a_user_error(tmp_path):
    files = _write(tmp_path / "taobao.gz", [{"items": [2, 3, 4]}])
    with pytest.raises(UserError, match="ratings: 3 train events but 0 ratings"):
        ctr_input.sample_counts(files, SPEC)


def test_training_batches_have_padding_and_every_sample(tmp_path):
    files = _write(tmp_path / "train.gz", USERS)
    ds = ctr_input.training_dataset(files, SPEC, _table(), FIELDS, H, batch_size=7, seed=0, shuffle_buffer=1)
    x, y = next(iter(ds))
    assert x["hist_item"].shape == (7, H) and y.shape == (7,)
    pairs = sorted(zip(x["target_item"].numpy().tolist(), map(tuple, x["hist_item"].numpy().tolist())))
    expected = sorted(
        (int(t), tuple(h)) for u in USERS for t, h in zip(_samples(u)["target"], _samples(u)["history"].tolist())
    )
    assert pairs == expected  # the first pass (unshuffled here) = every sample once
    assert float(y.numpy().sum()) == 4.0
    assert (x["hist_mask"].numpy() == 0).any()  # padding in the batch


def test_evaluation_scores_eval_events_against_the_train_history(tmp_path):
    rows = [
        {"items": [4, 5], "ratings": [4.0, 2.0], "history": [2, 3, 0]},
        {"items": [6, 7, 1], "ratings": [1.0, 5.0, 4.5], "history": [9, 8, 2]},
        {"items": [3], "ratings": [3.0], "history": [0, 0, 0]},  # empty history
    ]
    ds = ctr_input.evaluation_batches(_write(tmp_path / "eval.gz", rows), SPEC, _table(), FIELDS, batch_size=2)
    batches = list(ds)
    assert len(batches) == 2
    x, clicks, real = batches[0]
    # B = 2 users x E_max = 3 slots, row-major; the first user's third slot is padding.
    np.testing.assert_array_equal(real.numpy(), [True, True, False, True, True, True])
    np.testing.assert_array_equal(x["target_item"].numpy(), [4, 5, 0, 6, 7, 1])
    np.testing.assert_array_equal(x["hist_item"].numpy()[:3], [[2, 3, 0]] * 3)
    np.testing.assert_array_equal(x["hist_item"].numpy()[3:], [[9, 8, 2]] * 3)
    np.testing.assert_array_equal(clicks.numpy()[real.numpy()], [1, 0, 0, 1, 1])
    x, clicks, real = batches[1]
    assert real.numpy().tolist() == [True] and not x["hist_mask"].numpy().any()
