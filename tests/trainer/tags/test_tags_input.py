"""The tags input protocol: user fields from rated history, labelled articles, eval labels
(UTPM section 4.1; hand-computed on the rows of `tags_transform.py`)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tags_transform import CATALOG, TRAIN, TRANSFORM, item_table, transform

from trainer.tags import fields as tag_fields
from trainer.tags import input as tags_input
from trainer.tags.config import TagsTrainingConfig, TagsTransformConfig
from trainer.transform_ops import FIRST_ID


@pytest.fixture(scope="module")
def vocab():
    tft_output, _ = transform()
    return {v.decode(): i + FIRST_ID for i, v in enumerate(tft_output.vocabulary_by_name("tags"))}


def _write(rows: list[dict], spec: dict, path) -> str:
    """Transformed rows as the Transform writes them (GZIP tf.Examples)."""
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for r in rows:
            feature = {}
            for name in spec:
                values = np.atleast_1d(np.asarray(r[name]))
                if values.dtype.kind == "f":
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    tft_output, rows = transform()
    spec = tft_output.transformed_feature_spec()
    out = tmp_path_factory.mktemp("transformed")
    n_catalog, n_train = len(CATALOG), len(TRAIN)
    return spec, {
        "train": [_write(rows[n_catalog : n_catalog + n_train], spec, out / "train.gz")],
        "eval": [_write(rows[n_catalog + n_train :], spec, out / "eval.gz")],
        "items": [_write(rows[:n_catalog], spec, out / "items.gz")],
    }


def test_most_frequent_counts_ties_padding_and_truncation():
    # Items' ids [B=3, L=4, W=2]: row 0 has padding items at the end, row 1 only unknown/pad ids.
    values = tf.constant([
        [[5, 3], [3, 0], [7, 5], [0, 0]],
        [[1, 0], [0, 0], [0, 0], [0, 0]],
        [[4, 6], [6, 4], [2, 0], [9, 9]],
    ])
    keep = tf.constant([[True, True, True, False], [True, True, False, False], [True, True, True, False]])
    ids = tag_fields.most_frequent(values, keep, size=10, length=3).numpy()
    # Row 0: 5 ×2, 3 ×2 (tie: lower id first), then 7. Row 1: unknown (1) never counts.
    # Row 2: 4 ×2, 6 ×2, then 2; item 3 (9, 9) is not kept. H = 3 truncates.
    assert ids.tolist() == [[3, 5, 7], [0, 0, 0], [4, 6, 2]]
    assert tag_fields.most_frequent(values, keep, size=10, length=5).numpy()[1].tolist() == [0] * 5


def test_clicked_tags_is_a_multi_hot_of_real_tags():
    tags = tf.constant([[0, 0], [0, 0], [2, 3], [3, 4]])  # item table rows 0, 1 have no tag
    items = tf.constant([[2, 3, 1, 0], [3, 0, 0, 0]])
    clicked = tf.constant([[True, True, True, False], [False, False, False, False]])
    out = tag_fields.clicked_tags(items, clicked, tags, num_tags=6).numpy()
    assert out.tolist() == [[0, 0, 1, 1, 1, 0], [0] * 6]


def test_item_table_from_the_items_split(split_files, vocab):
    spec, files = split_files
    tft_output, _ = transform()
    table = tags_input.load_item_table(files["items"], tft_output, TagsTransformConfig.from_dict(TRANSFORM))
    np.testing.assert_array_equal(table.tags, item_table().tags)
    np.testing.assert_array_equal(table.genres, item_table().genres)
    assert table.tags[:2].sum() == 0  # padding and unknown items have no tag
    assert sorted(table.tags.max(axis=1))[-1] < table.num_tags


def test_training_samples_split_each_train_sequence(split_files, vocab):
    spec, files = split_files
    cfg = TagsTrainingConfig(field_fraction=0.5)
    fields = ("tags", "categories", "gender")
    samples = tags_input.training_samples(files["train"], spec, item_table(), cfg,
                                          TagsTransformConfig.from_dict(TRANSFORM), fields)
    t = vocab
    # User 1 (5 events): fields from 10, 20; later 30 (rated 1, untagged: dropped), 40 (rated 2:
    # neutral), 50 (4.5: click, tag a). User 2 (3 events): fields from 20; later 40 (rated 1:
    # non-click, tag c), 99 (unknown item: untagged, dropped).
    assert samples.clicks.tolist() == [1, 0]
    assert samples.inputs["article_tags"].tolist() == [[t["a"], 0, 0], [t["c"], 0, 0]]
    b_first = [t["b"], *sorted([t["a"], t["c"], t["e"]])]
    assert samples.inputs["user_tags"].tolist() == [b_first, sorted([t["b"], t["e"]]) + [0, 0]]
    assert samples.inputs["user_gender"][:, 0].tolist()[1] == 0 and samples.inputs["user_gender"][0, 0] >= FIRST_ID
    assert set(samples.inputs) == {"user_tags", "user_categories", "user_gender", "article_tags"}
    assert samples.counts == {"users": 2, "events": 8, "field_events": 3, "later_events": 5, "neutral": 1,
                              "untagged": 2}
    assert "2 samples (1 clicks)" in samples.describe()


def test_eval_users_fields_from_history_labels_from_eval_events(split_files, vocab):
    spec, files = split_files
    t = vocab
    transform_cfg = TagsTransformConfig.from_dict({**TRANSFORM, "field_length": 2})  # truncation
    (inputs, labels, candidates), = tags_input.eval_users(files["eval"], spec, item_table(), TagsTrainingConfig(),
                                              transform_cfg, ("tags", "categories"))
    # User 1: positive history 10 (a b c), 20 (b e), 50 (a) → a, b twice: H = 2 keeps them.
    assert inputs["user_tags"].tolist() == [sorted([t["a"], t["b"]]), [0, 0], [0, 0]]
    assert inputs["user_categories"].shape == (3, 2)
    assert [np.flatnonzero(row).tolist() for row in labels] == [[t["c"]], sorted([t["a"], t["b"], t["c"]]), []]
    # The candidates are the tags field itself (truncated to H): users 2 and 3 have none.
    assert [np.flatnonzero(row).tolist() for row in candidates] == [sorted([t["a"], t["b"]]), [], []]


def test_split_point_follows_the_example_gen_rule():
    assert tags_input.split_point(np.array([1, 2, 5, 10, 100]), 0.8).tolist() == [1, 1, 4, 8, 80]


def _samples(n: int) -> tags_input.TrainingSamples:
    rng = np.random.default_rng(0)
    inputs = {"user_tags": rng.integers(0, 9, (n, 4)), "article_tags": rng.integers(FIRST_ID, 9, (n, 3))}
    return tags_input.TrainingSamples(inputs, (np.arange(n) % 3 > 0).astype(np.int32), {})


def test_sampled_negatives_add_pseudo_articles_of_uniform_tags_with_the_users_fields():
    samples = _samples(10)
    batches = tags_input.training_dataset(samples, batch_size=4, seed=3, sampled_negatives=2, num_tags=50)
    (x, y), (x2, _) = list(batches.take(2))
    assert y.numpy().tolist()[4:] == [0] * 8 and x["article_tags"].shape == (12, 3)
    # Row j's user fields go with pseudo-articles 4 + 2j and 4 + 2j + 1.
    np.testing.assert_array_equal(x["user_tags"].numpy()[4:], np.repeat(x["user_tags"].numpy()[:4], 2, axis=0))
    drawn = x["article_tags"].numpy()[4:]
    assert drawn.min() >= FIRST_ID and drawn.max() < 50 and len(np.unique(drawn)) > 10
    assert not np.array_equal(drawn, x2["article_tags"].numpy()[4:])  # a fresh draw per step
    again = next(iter(tags_input.training_dataset(samples, batch_size=4, seed=3, sampled_negatives=2, num_tags=50)))
    np.testing.assert_array_equal(again[0]["article_tags"].numpy(), x["article_tags"].numpy())  # seeded
    plain = next(iter(tags_input.training_dataset(samples, batch_size=4, seed=3)))
    assert plain[1].shape == (4,)


@pytest.mark.parametrize("field, value", [("field_fraction", 1.0), ("negative_rating", 4.0), ("top_k", 0),
                                          ("sampled_negatives", -1)])
def test_training_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TagsTrainingConfig(**{field: value})


def test_transform_config_rejects_bad_values():
    with pytest.raises(ValueError, match="field_length"):
        TagsTransformConfig(field_length=0)


def test_a_catalog_without_tags_is_a_user_error(monkeypatch):
    """ml-1m alone has no tags file: the Trainer says so instead of profiling with nothing."""
    import types

    from components.errors import UserError
    from trainer import loop
    from trainer.tags import run as tags_run

    empty = tags_input.ItemTable(np.zeros((4, 3), np.int32), np.zeros((4, 2), np.int32), 3, 4)
    monkeypatch.setattr(tags_input, "load_item_table", lambda *args: empty)
    monkeypatch.setattr(loop, "split_files", lambda patterns, split=None: ["unused"])
    with pytest.raises(UserError, match="tags file"):
        tags_run.HOOKS.prepare(types.SimpleNamespace(train_files=["unused"]), TagsTrainingConfig(), None)
