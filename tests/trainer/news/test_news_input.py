"""Negative sampling over transformed impressions as the Trainer reads them (`trainer/news/input.py`).

The impressions are written as the Transform writes them (GZIP TFRecords, variable-length
`candidates`/`labels`) and read back many to a parse batch, so every impression but the widest
arrives padded with id 0: the case the fixed-width model fixtures never show.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from trainer.news import input as news_input

H = 5  # history slots
K = 4  # negatives per click
SPEC = {
    "impression_id": tf.io.FixedLenFeature([], tf.int64),
    "user_index": tf.io.FixedLenFeature([], tf.int64),
    "history": tf.io.FixedLenFeature([H], tf.int64),
    "history_mask": tf.io.FixedLenFeature([H], tf.float32),
    "candidates": tf.io.VarLenFeature(tf.int64),
    "labels": tf.io.VarLenFeature(tf.int64),
}


def _example(impression_id: int, candidates: list[int], labels: list[int], history: list[int]) -> bytes:
    history = (history + [0] * H)[:H]
    feature = {
        "impression_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[impression_id])),
        "user_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[2 + impression_id % 3])),
        "history": tf.train.Feature(int64_list=tf.train.Int64List(value=history)),
        "history_mask": tf.train.Feature(float_list=tf.train.FloatList(value=[float(h > 0) for h in history])),
        "candidates": tf.train.Feature(int64_list=tf.train.Int64List(value=candidates)),
        "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=labels)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


# Real MIND shapes: impressions of 2 to 40 candidates in one parse batch, one to several
# clicks, some with fewer than K negatives, one with no negative, one without a click, and
# the unknown-article id 1 as a real candidate. News ids are 100 * impression + slot, so a
# drawn id tells which impression it came from.
IMPRESSIONS = {
    1: ([1, 101, 102], [0, 1, 0]),  # 2 real negatives (< K), one of them the unknown article
    2: ([200 + i for i in range(40)], [int(i in (3, 17)) for i in range(40)]),  # 38 negatives
    3: ([301, 302], [1, 1]),  # clicks but no negative: no sample
    4: ([401, 402, 403], [0, 0, 0]),  # no click
    5: ([500 + i for i in range(7)], [int(i == 6) for i in range(7)]),  # 6 negatives
    6: ([601, 602, 603, 604, 605], [1, 0, 0, 0, 0]),  # exactly K
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    path = str(tmp_path_factory.mktemp("impressions") / "part-0.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for imp_id, (cands, labels) in IMPRESSIONS.items():
            writer.write(_example(imp_id, cands, labels, history=[7, 8, imp_id]))
    return [path]


def _samples(files: list[str], seed: int = 0) -> list[tuple[int, np.ndarray, int]]:
    """(impression id, candidates, click slot) of every sample, impression ids from the history."""
    tf.random.set_seed(seed)
    out = []
    for imp in news_input.impressions(files, SPEC):
        for x, slot in news_input.sample_clicks(imp, K):
            out.append((int(x["history"].numpy()[2]), x["candidates"].numpy(), int(slot)))
    return out


def test_impressions_arrive_padded_to_the_parse_batch(files):
    widths = {int(imp["impression_id"]): imp["candidates"].shape[0] for imp in news_input.impressions(files, SPEC)}
    assert set(widths.values()) == {40}  # every impression as wide as the widest: padding to drop


def test_no_padding_is_ever_a_negative_and_negatives_are_distinct_and_real(files):
    for seed in range(5):
        for imp_id, cands, slot in _samples(files, seed):
            real_cands, labels = IMPRESSIONS[imp_id]
            negatives = {c for c, y in zip(real_cands, labels) if not y}
            assert labels[real_cands.index(cands[slot])] == 1  # the slot holds a click
            drawn = [c for i, c in enumerate(cands) if i != slot and c != 0]
            assert len(drawn) == len(set(drawn)) == min(K, len(negatives))  # distinct, as many as can be
            assert set(drawn) <= negatives  # real non-clicks of the same impression
            assert len(cands) == K + 1 and (cands == 0).sum() == K - len(drawn)  # the rest is padding


def test_one_sample_per_click_of_impressions_with_a_real_negative(files):
    per_impression = collections.Counter(imp_id for imp_id, _, _ in _samples(files))
    assert per_impression == {1: 1, 2: 2, 5: 1, 6: 1}


def test_sampling_is_without_replacement_and_uniform(files):
    """Impression 2 has 38 negatives: a draw of 4 never repeats one, and every negative is drawn."""
    tf.random.set_seed(1)
    imp = next(i for i in news_input.impressions(files, SPEC) if int(i["impression_id"]) == 2)
    counts = collections.Counter()
    for _ in range(100):
        for x, slot in news_input.sample_clicks(imp, K):
            drawn = [c for i, c in enumerate(x["candidates"].numpy()) if i != int(slot)]
            assert len(set(drawn)) == K
            counts.update(drawn)
    assert len(counts) == 38  # 800 draws over 38 negatives: all of them seen
    assert max(counts.values()) < 3 * min(counts.values())


def test_click_slot_is_uniform(files):
    slots = collections.Counter()
    for seed in range(40):
        slots.update(slot for imp_id, _, slot in _samples(files, seed) if imp_id == 2)
    assert set(slots) == set(range(K + 1))


def test_sampling_counts(files):
    counts = news_input.sampling_counts(files, SPEC)
    assert counts == news_input.SamplingCounts(
        impressions=6, used_impressions=4, no_click_impressions=1, no_negative_impressions=1,
        clicks=7, samples=5,
    )
    assert counts.dropped_clicks == 2
    assert "5 samples, 2 dropped" in counts.describe()


def test_training_dataset_masks_padding_and_keeps_real_negatives(files):
    ids = np.arange(800, dtype=np.int32)
    table = news_input.NewsTable({"title": np.stack([ids, ids], axis=1), "category": ids})  # title = news id
    dataset = news_input.training_dataset(files, SPEC, table, ("title",), batch_size=20, negatives=K, seed=0)
    inputs, slots = next(iter(dataset))
    cands, mask = inputs["cand_title"].numpy()[..., 0], inputs["cand_mask"].numpy()
    np.testing.assert_array_equal(mask, (cands > 0).astype(np.float32))
    for row, slot in zip(cands, slots.numpy()):
        real_cands, labels = IMPRESSIONS[row[slot] // 100]
        negatives = {c for c, y in zip(real_cands, labels) if not y}
        drawn = [c for i, c in enumerate(row) if i != slot and c > 0]
        assert len(set(drawn)) == min(K, len(negatives)) and set(drawn) <= negatives
