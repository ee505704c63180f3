"""Input pipeline of the tag-profiling family: item table, training samples, eval users.

Transformed sequences carry item ids only; the :class:`ItemTable` (built from the `items`
split) gives every item its N tags and its genres, and `trainer/tags/fields.py` turns rated
items into user fields. The protocol (UTPM section 4.1, docs/tags.md):

* **training samples** come from the *train* split only, so the eval users' later events stay
  unseen: each train sequence (oldest first) is split again, the first `field_fraction`
  (``max(1, floor(n * f))`` events, as the ExampleGen's own split) builds the user fields
  from its positively rated items, and every later event becomes a labelled article: rating ≥
  `positive_rating` → click 1, ≤ `negative_rating` → click 0, others dropped; articles
  without a tag are dropped (they carry no tag to learn from);
* **eval users**: one per eval example, fields from all of its ``history_*`` (the user's train
  events), label = the tags of the eval events rated ≥ `positive_rating`.

The samples are small (ml-1m: about 10^5 of H + H + N ids), so `prepare` builds them once in
memory and training shuffles and batches arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import loop
from trainer.tags import fields as tag_fields
from trainer.tags.config import TagsTrainingConfig, TagsTransformConfig
from trainer.tags.preprocessing import DEMOGRAPHICS, GENRE_VOCAB, ITEM_VOCAB, TAG_VOCAB
from trainer.transform_ops import FIRST_ID, table_size

FeatureSpec = dict[str, Any]
SEQUENCE_FEATURES = ("item_index", "ratings", "history_item_index", "history_ratings", *DEMOGRAPHICS)
CATALOG_FEATURES = ("catalog_index", "catalog_tags", "catalog_genres")


@dataclasses.dataclass(frozen=True)
class ItemTable:
    """Tags [I, N] and genres [I, G] by item row (rows 0 = padding and 1 = unknown: none)."""

    tags: np.ndarray
    genres: np.ndarray
    num_tags: int
    num_genres: int

    @property
    def num_items(self) -> int:
        return len(self.tags)

    def fields(self, items: np.ndarray | tf.Tensor, positive: np.ndarray | tf.Tensor, length: int) -> dict[str, tf.Tensor]:
        return tag_fields.user_fields(items, positive, self.tags, self.genres, self.num_tags, self.num_genres, length)


def load_item_table(files: list[str], tft_output: tft.TFTransformOutput, cfg: TagsTransformConfig) -> ItemTable:
    """Reads the transformed `items` split into dense arrays."""
    n = table_size(tft_output, ITEM_VOCAB)
    tags = np.zeros((n, cfg.tags_per_article), np.int32)
    genres = np.zeros((n, cfg.genres_per_article), np.int32)
    for batch in loop.parse_transformed(files, tft_output.transformed_feature_spec(), CATALOG_FEATURES, batch_size=512):
        index = batch["catalog_index"].numpy()
        for array, key in ((tags, "catalog_tags"), (genres, "catalog_genres")):
            value = tf.sparse.reset_shape(batch[key], [len(index), array.shape[1]])
            array[index] = tf.sparse.to_dense(value).numpy()
    return ItemTable(tags, genres, table_size(tft_output, TAG_VOCAB), table_size(tft_output, GENRE_VOCAB))


def _dense_rows(batch: dict[str, Any], items: str, ratings: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item rows [B, L], ratings [B, L], lengths [B]) of a parsed batch."""
    ids = tag_fields.dense(batch[items]).numpy()
    values = tag_fields.dense(batch[ratings]).numpy().astype(np.float32)
    lengths = np.bincount(batch[items].indices.numpy()[:, 0], minlength=len(ids)) if len(ids) else np.zeros(0, int)
    return ids, values, lengths


def demographic_inputs(batch: dict[str, Any], model_fields: Sequence[str]) -> dict[str, np.ndarray]:
    """`user_<f>` [B, 1] for the single-valued fields the model reads."""
    return {f"user_{f}": np.asarray(batch[f]).reshape(-1, 1).astype(np.int32) for f in model_fields if f in DEMOGRAPHICS}


@dataclasses.dataclass
class TrainingSamples:
    """Labelled articles with the fields of their user (arrays of one length S)."""

    inputs: dict[str, np.ndarray]
    """`user_<f>` [S, H_f] and `article_tags` [S, N]."""
    clicks: np.ndarray
    """[S] int32."""
    counts: dict[str, int]
    """What the protocol used and dropped (for the run log)."""

    @property
    def samples(self) -> int:
        return len(self.clicks)

    def describe(self) -> str:
        c = self.counts
        return (f"{c['users']} training users, {c['events']} train events: {c['field_events']} build the user "
                f"fields, {c['later_events']} later: {self.samples} samples ({int(self.clicks.sum())} clicks), "
                f"{c['neutral']} neutral ratings and {c['untagged']} untagged articles dropped")


def split_point(lengths: np.ndarray, fraction: float) -> np.ndarray:
    """Events per user that build the fields: ``max(1, floor(n * fraction))`` (the ExampleGen's rule)."""
    return np.maximum(1, np.floor(lengths * fraction + 1e-9)).astype(np.int64)


def training_samples(files: list[str], feature_spec: FeatureSpec, table: ItemTable, cfg: TagsTrainingConfig,
                     transform: TagsTransformConfig, model_fields: Sequence[str]) -> TrainingSamples:
    """The labelled articles of every train sequence (see the module docstring)."""
    parts: dict[str, list[np.ndarray]] = {}
    counts = dict.fromkeys(("users", "events", "field_events", "later_events", "neutral", "untagged"), 0)
    for batch in loop.parse_transformed(files, feature_spec, SEQUENCE_FEATURES, batch_size=512):
        items, ratings, lengths = _dense_rows(batch, "item_index", "ratings")
        position = np.arange(items.shape[1])[None, :]
        cut = split_point(lengths, cfg.field_fraction)[:, None]
        in_fields = position < cut
        later = (position >= cut) & (position < lengths[:, None])
        fields = table.fields(items, in_fields & (ratings >= cfg.positive_rating), transform.field_length)
        fields = {f"user_{k}": v.numpy() for k, v in fields.items() if k in model_fields}
        fields.update(demographic_inputs(batch, model_fields))
        labelled = later & ((ratings >= cfg.positive_rating) | (ratings <= cfg.negative_rating))
        tagged = (table.tags[items] >= FIRST_ID).any(axis=-1)
        keep = labelled & tagged
        users, slots = np.nonzero(keep)
        for key, value in fields.items():
            parts.setdefault(key, []).append(value[users])
        parts.setdefault("article_tags", []).append(table.tags[items[users, slots]])
        parts.setdefault("clicks", []).append((ratings[users, slots] >= cfg.positive_rating).astype(np.int32))
        counts["users"] += len(lengths)
        counts["events"] += int(lengths.sum())
        counts["field_events"] += int(np.minimum(cut[:, 0], lengths).sum())
        counts["later_events"] += int(later.sum())
        counts["neutral"] += int((later & ~labelled).sum())
        counts["untagged"] += int((labelled & ~tagged).sum())
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    clicks = arrays.pop("clicks", np.zeros(0, np.int32))
    return TrainingSamples(arrays, clicks, counts)


def training_dataset(samples: TrainingSamples, batch_size: int, seed: int, sampled_negatives: int = 0,
                     num_tags: int = 0) -> tf.data.Dataset:
    """Endless shuffled batches of (inputs, clicks) for `model.fit`.

    With `sampled_negatives` k > 0 each batch of B labelled articles grows by k·B un-clicked
    pseudo-articles (`TagsTrainingConfig.sampled_negatives`): row j of the batch lends its
    user fields to k of them, whose N tags are drawn uniformly from the real tag ids
    ``[FIRST_ID, num_tags)``; the draw is seeded by (seed, step), so a run repeats exactly.
    """
    batches = (
        tf.data.Dataset.from_tensor_slices((samples.inputs, samples.clicks))
        .repeat()
        .shuffle(min(samples.samples, 100_000), seed=seed)
        .batch(batch_size, drop_remainder=True)
    )
    if sampled_negatives:
        if num_tags <= FIRST_ID:
            raise ValueError(f"sampled_negatives: the tag vocabulary is empty (table size {num_tags})")

        def with_negatives(step, batch):
            inputs, clicks = batch
            tags = inputs["article_tags"]
            shape = [tf.shape(tags)[0] * sampled_negatives, tags.shape[1]]
            drawn = tf.random.stateless_uniform(shape, [seed, step], FIRST_ID, num_tags, dtype=tf.int32)
            grown = {k: tf.repeat(v, sampled_negatives, axis=0) for k, v in inputs.items()}
            grown["article_tags"] = tf.cast(drawn, tags.dtype)
            return ({k: tf.concat([inputs[k], grown[k]], 0) for k in inputs},
                    tf.concat([clicks, tf.zeros([shape[0]], clicks.dtype)], 0))

        batches = tf.data.Dataset.zip(tf.data.Dataset.counter(), batches).map(with_negatives)
    return batches.prefetch(2)


def eval_users(files: list[str], feature_spec: FeatureSpec, table: ItemTable, cfg: TagsTrainingConfig,
               transform: TagsTransformConfig, model_fields: Sequence[str]
               ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """Per batch of eval users: (model inputs from the history, clicked-tag multi-hot [B, T],
    history candidate multi-hot [B, T]: the user's `tags` field, what UTPM's candidate selection
    ranks)."""
    for batch in loop.parse_transformed(files, feature_spec, SEQUENCE_FEATURES, batch_size=512):
        history, history_ratings, _ = _dense_rows(batch, "history_item_index", "history_ratings")
        items, ratings, _ = _dense_rows(batch, "item_index", "ratings")
        fields = table.fields(history, history_ratings >= cfg.positive_rating, transform.field_length)
        inputs = {f"user_{k}": v.numpy() for k, v in fields.items() if k in model_fields}
        inputs.update(demographic_inputs(batch, model_fields))
        labels = tag_fields.clicked_tags(items, ratings >= cfg.positive_rating, table.tags, table.num_tags)
        candidates = tag_fields.candidate_tags(fields["tags"], table.num_tags)
        yield inputs, labels.numpy(), candidates.numpy()
