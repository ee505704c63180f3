"""Input pipeline of the news-ranking family: news table, negative sampling, batching.

Transformed impressions carry only integer ids (docs/architecture.md). Here they meet article
content: :class:`NewsTable` holds every article's fields as dense arrays indexed by the news
index, and batches gather from it, so history text is never materialised per impression on disk.

Training follows the papers (NRMS, FUM): every click of an impression becomes one sample with K
negatives drawn without replacement from the same impression's real non-clicked candidates, and
the click is put at a uniformly random slot. The official code keeps it in slot 0, which a
position-aware model can exploit; the label here is the click's slot.

Impressions are parsed many at a time, so each one's candidate vector arrives padded (id 0,
label 0) to the widest impression of its parse batch. Padding is dropped before clicks and
non-clicks are told apart: a padded slot is never a negative. An impression with fewer than K
real negatives gives samples with all of them plus padded slots (id 0, masked out of the
softmax by `cand_mask`), as the official code pads with an empty article; an impression with
clicks but no real negative gives no sample, since a softmax over one candidate teaches nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import loop
from trainer.news.preprocessing import NEWS_VOCAB, NewsTransformConfig
from trainer.transform_ops import table_size

FeatureSpec = dict[str, Any]
"""A transformed feature spec (`tft.TFTransformOutput.transformed_feature_spec()`)."""

NEWS_FIELDS = ("title", "abstract", "category", "subcategory", "entities")
IMPRESSION_FEATURES = ("impression_id", "user_index", "history", "history_mask", "candidates", "labels")


@dataclasses.dataclass(frozen=True)
class NewsTable:
    """Article content by news index (row 0 = padding, row 1 = unknown article)."""

    fields: dict[str, np.ndarray]

    @property
    def num_news(self) -> int:
        return len(self.fields["category"])

    def gather(self, indices: tf.Tensor, fields: Iterable[str]) -> dict[str, tf.Tensor]:
        return {f: tf.gather(self.fields[f], indices) for f in fields}


def field_lengths(cfg: NewsTransformConfig) -> dict[str, int]:
    """Width of each sequence field of the news table (the others are one id per article)."""
    return {"title": cfg.title_length, "abstract": cfg.abstract_length, "entities": cfg.entity_length}


def empty_fields(num_news: int, cfg: NewsTransformConfig) -> dict[str, np.ndarray]:
    """Zero (all-padding) arrays for every news field, `num_news` rows."""
    lengths = field_lengths(cfg)
    return {f: np.zeros((num_news, lengths[f]) if f in lengths else num_news, np.int32) for f in NEWS_FIELDS}


def load_news_table(news_files: list[str], tft_output: tft.TFTransformOutput, cfg: NewsTransformConfig) -> NewsTable:
    """Reads the transformed `news` split into dense arrays (one pass, ~50 MB for MIND-large)."""
    lengths = field_lengths(cfg)
    fields = empty_fields(table_size(tft_output, NEWS_VOCAB), cfg)
    for batch in loop.parse_transformed(news_files, tft_output.transformed_feature_spec(), ("news_index",) + NEWS_FIELDS):
        index = batch["news_index"].numpy()
        for f in NEWS_FIELDS:
            value = batch[f]
            if isinstance(value, tf.SparseTensor):
                value = tf.sparse.to_dense(tf.sparse.reset_shape(value, [value.dense_shape[0], lengths[f]]))
            fields[f][index] = value.numpy()
    return NewsTable(fields)


def impressions(files: list[str], feature_spec: FeatureSpec) -> tf.data.Dataset:
    """Transformed impression rows, one element per impression.

    `candidates` and `labels` are dense vectors as wide as the widest impression of the parse
    batch; the extra slots are padding (candidate id 0).
    """
    def unbatch_sparse(batch):
        return {k: tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v for k, v in batch.items()}

    return loop.parse_transformed(files, feature_spec, IMPRESSION_FEATURES).unbatch().map(unbatch_sparse)


def _real_clicks_and_negatives(imp: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """The clicked and the non-clicked real candidates of an impression (padding dropped first)."""
    real = imp["candidates"] > 0
    candidates = tf.boolean_mask(imp["candidates"], real)
    clicked = tf.boolean_mask(imp["labels"], real) > 0
    return tf.boolean_mask(candidates, clicked), tf.boolean_mask(candidates, ~clicked)


def sample_clicks(imp: dict[str, tf.Tensor], negatives: int) -> tf.data.Dataset:
    """One training sample per click: the click plus K distinct real negatives, at random slots.

    With fewer than K real negatives every one is taken and the remaining slots are padding
    (id 0); with none the impression yields no sample.
    """
    pos, neg = _real_clicks_and_negatives(imp)
    n_neg = tf.size(neg)
    n_pos = tf.shape(pos)[0] * tf.cast(n_neg > 0, tf.int32)
    # K distinct negatives per click: the top K of fresh uniform keys is a uniform K-subset.
    _, pick = tf.math.top_k(tf.random.uniform([n_pos, n_neg]), k=tf.minimum(negatives, n_neg))
    drawn = tf.pad(tf.gather(neg, pick), [[0, 0], [0, negatives - tf.shape(pick)[1]]])
    cands = tf.concat([pos[:n_pos, None], drawn], axis=1)
    cands = tf.ensure_shape(cands, [None, negatives + 1])
    order = tf.argsort(tf.random.uniform(tf.shape(cands)), axis=1)  # a random permutation per row
    cands = tf.gather(cands, order, batch_dims=1)
    slot = tf.argmin(order, axis=1, output_type=tf.int32)  # where the click (column 0) went
    repeat = lambda t: tf.repeat(t[None], n_pos, axis=0)  # noqa: E731
    return tf.data.Dataset.from_tensor_slices(
        ({"history": repeat(imp["history"]), "history_mask": repeat(imp["history_mask"]),
          "user_index": repeat(imp["user_index"]), "candidates": cands}, slot)
    )


@dataclasses.dataclass(frozen=True)
class SamplingCounts:
    """What negative sampling makes of the training impressions (one pass, logged by the Trainer)."""

    impressions: int
    """Training impressions read."""
    used_impressions: int
    """Impressions that gave samples: at least one click and one real negative."""
    no_click_impressions: int
    """Impressions without a click (nothing to sample)."""
    no_negative_impressions: int
    """Impressions with clicks but no real negative (dropped)."""
    clicks: int
    """Clicks in all training impressions."""
    samples: int
    """Training samples, one per click of a used impression."""

    @property
    def dropped_clicks(self) -> int:
        return self.clicks - self.samples

    def describe(self) -> str:
        return (
            f"{self.impressions} training impressions: {self.used_impressions} used, "
            f"{self.no_click_impressions} without a click, {self.no_negative_impressions} dropped "
            f"(clicks but no real negative); {self.clicks} clicks: {self.samples} samples, "
            f"{self.dropped_clicks} dropped"
        )


def sampling_counts(files: list[str], feature_spec: FeatureSpec) -> SamplingCounts:
    """Counts impressions and clicks used and dropped by `sample_clicks` (reads the ids once)."""
    def counts(imp):
        pos, neg = _real_clicks_and_negatives(imp)
        has_pos, has_neg = tf.size(pos) > 0, tf.size(neg) > 0
        as_int = lambda b: tf.cast(b, tf.int64)  # noqa: E731
        return tf.stack([
            tf.constant(1, tf.int64), as_int(has_pos & has_neg), as_int(~has_pos), as_int(has_pos & ~has_neg),
            tf.size(pos, out_type=tf.int64), tf.size(pos, out_type=tf.int64) * as_int(has_neg),
        ])

    total = impressions(files, feature_spec).map(counts).reduce(tf.zeros([6], tf.int64), lambda a, b: a + b)
    return SamplingCounts(*(int(v) for v in total.numpy()))


def to_model_inputs(batch: dict[str, tf.Tensor], table: NewsTable, fields: Iterable[str]) -> dict[str, tf.Tensor]:
    """Ids → the model's input dict (hist_<field>, cand_<field>, masks, user_index)."""
    fields = tuple(fields)
    out = {f"hist_{k}": v for k, v in table.gather(batch["history"], fields).items()}
    out.update({f"cand_{k}": v for k, v in table.gather(batch["candidates"], fields).items()})
    out["hist_mask"] = batch["history_mask"]
    out["cand_mask"] = tf.cast(batch["candidates"] > 0, tf.float32)
    out["user_index"] = tf.cast(batch["user_index"], tf.int32)
    return out


def training_dataset(
    files: list[str],
    feature_spec: FeatureSpec,
    table: NewsTable,
    fields: Iterable[str],
    batch_size: int,
    negatives: int,
    seed: int,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Endless shuffled batches of (model inputs, click slot) for `model.fit`."""
    tf.random.set_seed(seed)
    fields = tuple(fields)
    return (
        impressions(files, feature_spec)
        .repeat()
        .flat_map(lambda imp: sample_clicks(imp, negatives))
        .shuffle(shuffle_buffer, seed=seed)
        .batch(batch_size, drop_remainder=True)
        .map(lambda x, y: (to_model_inputs(x, table, fields), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_batches(
    files: list[str], feature_spec: FeatureSpec, table: NewsTable, fields: Iterable[str], batch_size: int
) -> tf.data.Dataset:
    """Whole impressions (all candidates, padded per batch) with their labels and ids."""
    fields = tuple(fields)

    def prepare(imp):
        ids = {"history": imp["history"], "history_mask": imp["history_mask"],
               "user_index": imp["user_index"], "candidates": imp["candidates"]}
        return to_model_inputs(ids, table, fields), imp["labels"], imp["impression_id"]

    return impressions(files, feature_spec).padded_batch(
        batch_size, padding_values=None
    ).map(prepare)
