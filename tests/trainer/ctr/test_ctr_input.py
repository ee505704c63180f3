"""Tests for the CTR family's sample construction and batching (trainer/ctr/input.py).

The transformed rows are written as small GZIP TFRecords with the feature spec the Transform
produces, so the real parsing path runs; users have histories of every length (one event,
shorter and longer than H), unknown items (id 1), users who never click or click only last, and
ratings on both sides of the click rule. Samples are checked against a plain-Python reference of
the module docstring's rule, for both history definitions.
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
    {"items": [3, 1], "ratings": [2.0, 4.0]},  # an unknown item as target; clicked: no click before it
    {"items": [8, 9, 2], "ratings": [3.5, 4.0, 3.9]},
    {"items": [2, 3, 4, 5, 6, 7, 8], "ratings": [4.0, 4.5, 5.0, 2.0, 4.0, 4.0, 1.0]},  # more clicks than H
    {"items": [4, 5, 6], "ratings": [1.0, 2.0, 3.0]},  # never clicks
]


def _reference(items: list[int], ratings: list[float], history: str) -> list[tuple[int, tuple[int, ...], float]]:
    """(target, history, click) of every sample, by the module docstring's rule, in plain Python."""
    out = []
    for i, target in enumerate(items):
        past = [item for item, r in zip(items[:i], ratings[:i]) if history == "all" or r >= 4.0][-H:]
        if past:
            out.append((target, tuple(past + [0] * (H - len(past))), float(ratings[i] >= 4.0)))
    return out


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


def _samples(user: dict, history: str = "clicked") -> dict[str, np.ndarray]:
    out = ctr_input.user_samples(tf.constant(user["items"], tf.int64), tf.constant(user["ratings"]), H, history)
    return {k: v.numpy() for k, v in out.items()}


def _as_tuples(s: dict[str, np.ndarray]) -> list[tuple[int, tuple[int, ...], float]]:
    return [(int(t), tuple(h), float(c)) for t, h, c in zip(s["target"], s["history"].tolist(), s["click"])]


def test_clicked_history_is_the_clicks_before_the_target():
    s = _samples(USERS[0])
    # Every event after the first click is a target, labelled by its own rating ...
    np.testing.assert_array_equal(s["target"], [3, 4, 5, 6])
    np.testing.assert_array_equal(s["click"], [0.0, 1.0, 0.0, 1.0])
    # ... and its history holds the clicked events before it only, oldest first, padded at the end.
    np.testing.assert_array_equal(s["history"], [[2, 0, 0], [2, 0, 0], [2, 4, 0], [2, 4, 0]])
    # Truncated to the H most recent clicks; a non-click (item 5) never enters.
    s = _samples(USERS[4])
    np.testing.assert_array_equal(s["history"][-2:], [[3, 4, 6], [4, 6, 7]])


def test_all_history_keeps_every_earlier_event():
    s = _samples(USERS[0], "all")
    np.testing.assert_array_equal(s["target"], [3, 4, 5, 6])
    np.testing.assert_array_equal(s["history"], [[2, 0, 0], [2, 3, 0], [2, 3, 4], [3, 4, 5]])
    np.testing.assert_array_equal(s["click"], [0.0, 1.0, 0.0, 1.0])
    s = _samples(USERS[2], "all")  # an unknown item as a target
    assert _as_tuples(s) == [(1, (3, 0, 0), 1.0)]


@pytest.mark.parametrize("history", ["clicked", "all"])
def test_samples_match_the_reference_for_every_user(history):
    for user in USERS:
        assert _as_tuples(_samples(user, history)) == _reference(user["items"], user["ratings"], history), user


def test_targets_without_an_earlier_click_are_dropped():
    for user in (USERS[1], USERS[2], USERS[5]):  # one event; no click before the last; no click at all
        s = _samples(user)
        assert s["history"].shape == (0, H) and s["target"].shape == (0,) and s["click"].shape == (0,)
    assert _as_tuples(_samples(USERS[3])) == [(2, (9, 0, 0), 0.0)]  # only the event after the first click


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


@pytest.mark.parametrize("history", ["clicked", "all"])
def test_sample_counts(tmp_path, history):
    counts = ctr_input.sample_counts(_write(tmp_path / "train.gz", USERS), SPEC, history)
    per_user = [_reference(u["items"], u["ratings"], history) for u in USERS]
    assert counts == ctr_input.SampleCounts(
        users=6, users_without_samples=sum(not s for s in per_user), events=21,
        samples=sum(map(len, per_user)), clicks=int(sum(c for s in per_user for *_, c in s)), history=history)
    # By hand: clicked 11 samples (users 2, 3, 6 have none), all 15 (every event after a first).
    assert (counts.samples, counts.users_without_samples) == ((11, 3) if history == "clicked" else (15, 1))
    assert f"{counts.samples} samples" in counts.describe() and "rating >= 4" in counts.describe()


def test_events_without_ratings_are_a_user_error(tmp_path):
    files = _write(tmp_path / "taobao.gz", [{"items": [2, 3, 4]}])
    with pytest.raises(UserError, match="ratings: 3 train events but 0 ratings"):
        ctr_input.sample_counts(files, SPEC, "clicked")


@pytest.mark.parametrize("history, samples", [("clicked", 11), ("all", 15)])
def test_training_batches_have_padding_and_every_sample(tmp_path, history, samples):
    files = _write(tmp_path / "train.gz", USERS)
    ds = ctr_input.training_dataset(files, SPEC, _table(), FIELDS, H, history, batch_size=samples, seed=0,
                                    shuffle_buffer=1)
    x, y = next(iter(ds))
    assert x["hist_item"].shape == (samples, H) and y.shape == (samples,)
    rows = sorted(zip(x["target_item"].numpy().tolist(), map(tuple, x["hist_item"].numpy().tolist()),
                      y.numpy().tolist()))
    expected = sorted(s for u in USERS for s in _reference(u["items"], u["ratings"], history))
    assert rows == expected  # the first pass (unshuffled here) = every sample once
    mask = x["hist_mask"].numpy()
    assert (mask == 0).any() and mask[:, 0].all()  # padding in the batch, never an empty history
    np.testing.assert_array_equal(mask, x["hist_item"].numpy() != 0)


def test_evaluation_scores_eval_events_against_the_train_history(tmp_path):
    rows = [
        {"items": [4, 5], "ratings": [4.0, 2.0], "history": [2, 3, 0]},
        {"items": [6, 7, 1], "ratings": [1.0, 5.0, 4.5], "history": [9, 8, 2]},
        {"items": [3], "ratings": [3.0], "history": [0, 0, 0]},  # empty history
    ]
    ds = ctr_input.evaluation_batches(_write(tmp_path / "eval.gz", rows), SPEC, _table(), FIELDS, batch_size=4)
    batches = list(ds)
    # Six eval events in rows of four, whatever the users' lengths: a user spans two batches.
    assert [len(clicks) for _, clicks in batches] == [4, 2]
    x = {k: np.concatenate([b[0][k].numpy() for b in batches]) for k in batches[0][0]}
    clicks = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(x["target_item"], [4, 5, 6, 7, 1, 3])
    np.testing.assert_array_equal(x["hist_item"], [[2, 3, 0]] * 2 + [[9, 8, 2]] * 3 + [[0, 0, 0]])
    np.testing.assert_array_equal(clicks, [1, 0, 0, 1, 1, 0])
    assert not x["hist_mask"][-1].any() and x["hist_mask"][0].tolist() == [1, 1, 0]
