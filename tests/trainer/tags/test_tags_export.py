"""The tags SavedModel: preprocessing_fn outputs, `serving_default`, `labels` and `user_tags`
agree with each other and with hand computations (a real Transform run on a few rows)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tags_transform import CATALOG, EVAL, exported, item_table, transform

from components.ingest.example_gen_utils import bytes_feature, float_feature, int64_feature, make_example
from trainer.transform_ops import FIRST_ID, PAD_ID, UNKNOWN_ID


def _serialize(r: dict) -> bytes:
    """A raw row as the ExampleGen writes it (absent features left out)."""
    features = {}
    for name, values in r.items():
        if not values:
            continue
        if isinstance(values[0], bytes):
            features[name] = bytes_feature([v.decode() for v in values])
        elif isinstance(values[0], float):
            features[name] = float_feature(values)
        else:
            features[name] = int64_feature(values)
    return make_example(features).SerializeToString()


@pytest.fixture(scope="module")
def served():
    return tf.saved_model.load(exported())


@pytest.fixture(scope="module")
def vocab():
    tft_output, _ = transform()
    return {name: {v.decode(): i + FIRST_ID for i, v in enumerate(tft_output.vocabulary_by_name(name))}
            for name in ("tags", "items", "categories")}


EXAMPLES = [_serialize(r) for r in EVAL]


def test_catalog_rows_keep_n_tags_and_sequences_get_item_ids(vocab):
    _, rows = transform()
    tags = vocab["tags"]
    assert set(tags) == {"a", "b", "c", "e"}  # d is a 4th tag: cut at N = 3
    first = rows[0]
    assert list(first["catalog_tags"]) == [tags["a"], tags["b"], tags["c"]]
    assert first["catalog_index"] == vocab["items"]["10"]
    assert list(rows[2]["catalog_tags"]) == []  # an untagged movie
    train_user_2 = rows[len(CATALOG) + 1]
    assert list(train_user_2["item_index"]) == [vocab["items"]["20"], vocab["items"]["40"], UNKNOWN_ID]
    assert train_user_2["catalog_index"] == PAD_ID and train_user_2["gender"] == PAD_ID
    assert rows[len(CATALOG)]["gender"] >= FIRST_ID


def test_labels_signature_matches_hand_computation(served, vocab):
    clicked = served.signatures["labels"](examples=tf.constant(EXAMPLES))["clicked_tags"].numpy()
    t = vocab["tags"]
    expected = np.zeros_like(clicked)
    expected[0, t["c"]] = 1  # 40 (c) and unknown 99 clicked; 50 rated 1 is not
    expected[1, [t["a"], t["b"], t["c"]]] = 1  # 10
    # user 2: 20 rated 3 is neither → no label
    np.testing.assert_array_equal(clicked, expected)


def test_labels_signature_gives_the_history_tags_as_candidates(served, vocab):
    """UTPM's candidate selection: the tags of the positively rated history items (the `tags`
    field), whatever the eval events are; no history or an unknown-only one gives none."""
    out = served.signatures["labels"](examples=tf.constant(EXAMPLES))
    candidates = out["candidate_tags"].numpy()
    t = vocab["tags"]
    expected = np.zeros_like(candidates)
    expected[0, [t["a"], t["b"], t["c"], t["e"]]] = 1  # 10 (a b c), 20 (b e), 50 (a); 30, 40 rated low
    np.testing.assert_array_equal(candidates, expected)
    assert candidates.shape == out["clicked_tags"].shape


def test_serving_default_scores_every_tag_and_masks_reserved_ids(served):
    scores = served.signatures["serving_default"](examples=tf.constant(EXAMPLES))["tag_scores"].numpy()
    assert scores.shape == (3, item_table().num_tags)
    assert (scores[:, :FIRST_ID] <= -1e8).all() and np.isfinite(scores).all()
    assert (np.abs(scores[:, FIRST_ID:]) < 1e3).all()


def _real_tags(vocab) -> dict[int, str]:
    return {i: name for name, i in vocab["tags"].items()}


def test_user_tags_agree_with_serving_default(served, vocab):
    """The positively rated history items (+ demographics as name=value) give the same fields as
    the raw eval example, so the top tags are the top of serving_default's scores."""
    scores = served.signatures["serving_default"](examples=tf.constant(EXAMPLES))["tag_scores"].numpy()
    out = served.signatures["user_tags"](
        user_id=tf.constant(["1", "3", "2"]),
        history=tf.constant([["10", "20", "50"], ["", "", ""], ["99", "", ""]]),
        features=tf.constant([["gender=F", "age=25", "occupation=4"], ["", "", ""], ["zip=1", "", ""]]),
    )
    names = _real_tags(vocab)
    k = len(names)  # fewer real tags than top_k = 10
    assert out["tag_ids"].shape == (3, k) and out["tag_scores"].shape == (3, k)
    assert out["user_embedding"].shape[0] == 3
    for i in range(3):
        order = np.argsort(-scores[i], kind="stable")[:k]
        assert [t.decode() for t in out["tag_ids"][i].numpy()] == [names[j] for j in order]
        np.testing.assert_allclose(out["tag_scores"][i].numpy(), scores[i, order], rtol=1e-5, atol=1e-6)


def test_user_tags_ranks_the_history_tags_among_themselves(served, vocab):
    """`history_tag_*`: the user's own history tags (the `tags` field, as the gate's candidates)
    ordered by serving_default's scores; a user with none gets "" and 0."""
    scores = served.signatures["serving_default"](examples=tf.constant(EXAMPLES))["tag_scores"].numpy()
    labels = served.signatures["labels"](examples=tf.constant(EXAMPLES))
    out = served.signatures["user_tags"](
        user_id=tf.constant(["1", "3", "2"]),
        history=tf.constant([["10", "20", "50"], ["", "", ""], ["99", "", ""]]),
        features=tf.constant([["gender=F", "age=25", "occupation=4"], ["", "", ""], ["zip=1", "", ""]]),
    )
    names = _real_tags(vocab)
    candidates = labels["candidate_tags"].numpy()
    for i in range(3):
        own = np.flatnonzero(candidates[i])
        got = [t.decode() for t in out["history_tag_ids"][i].numpy()]
        expected = [names[j] for j in own[np.argsort(-scores[i, own], kind="stable")]]
        assert got[: len(expected)] == expected and set(got[len(expected):]) <= {""}
        np.testing.assert_allclose(out["history_tag_scores"][i].numpy()[: len(expected)],
                                   np.sort(scores[i, own])[::-1], rtol=1e-5, atol=1e-6)
    assert len(np.flatnonzero(candidates[0])) >= 2 and not candidates[1].any()
    assert not out["history_tag_scores"][1].numpy().any()


def test_unknown_items_and_values_do_not_crash(served, vocab):
    out = served.signatures["user_tags"](
        user_id=tf.constant(["u", ""]),
        history=tf.constant([["999", "not a number", ""], ["", "", ""]]),
        features=tf.constant([["gender=X", "age=", "nonsense"], ["", "", ""]]),
    )
    assert np.isfinite(out["tag_scores"].numpy()).all()
    assert {t.decode() for t in out["tag_ids"].numpy().ravel()} <= set(vocab["tags"])
    # An unknown-only history builds the same (empty) fields as no history at all.
    np.testing.assert_allclose(out["user_embedding"][0].numpy(), served.signatures["user_tags"](
        user_id=tf.constant(["u"]), history=tf.constant([[""]]),
        features=tf.constant([["gender=X", "age=", "nonsense"]]))["user_embedding"][0].numpy(), rtol=1e-6)


def test_empty_history_input_width_zero(served):
    out = served.signatures["user_tags"](user_id=tf.constant(["u"]), history=tf.zeros([1, 0], tf.string),
                                         features=tf.zeros([1, 0], tf.string))
    assert np.isfinite(out["tag_scores"].numpy()).all()
