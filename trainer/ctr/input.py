"""Input pipeline of the CTR family: item table, (history, target, click) samples, batching.

Transformed sequence rows carry item ids only; item content (categories, title words) lives
once in :class:`ItemTable`, indexed by item id, and batches gather from it (as the news table
does), so no history is copied with its content on disk.

**History** (`CTRTransformConfig.history`, defined once by `preprocessing.is_behaviour`): with
``"clicked"`` (the default) a history is made of the user's earlier *clicked* events only, the
behaviours DIN and MFN attend to (and sampled negative events, rating 0, can never enter it);
with ``"all"`` of every earlier rated event, clicked or not (kept for the comparison in
docs/ctr.md).

**Training samples** (DIN/MFN's pointwise protocol on a user's time-ordered train events):
every event with at least one behaviour before it is a target, labelled by its own click or
no-click; its history is the up to H most recent behaviours before it, oldest first, padded at
the end and masked. With ``"all"`` that is every event after the user's first (n − 1 samples
from n events); with ``"clicked"`` every event after the user's first click, so a user without
a click before their last event gives no sample. Targets without an earlier behaviour are
dropped in training because there is nothing to attend to: the papers' samples all have
behaviours, and an all-padding history would only teach the models a history-free prior.

**Label** (MovieLens): click = rating ≥ 4 (`trainer.ctr.config.CLICK_RATING`).

**Evaluation** (the Trainer's reference numbers; the gate is TFMA's, on the same protocol):
each eval user's later events are scored against the user's last H *train* behaviours (the eval
row's ``history``, filtered by the Transform with the same definition), and the ROC AUC is
taken over all (user, event) pairs at once. Eval users without any train behaviour are still
scored, with an empty, all-masked history (the models give finite scores for it): dropping them
would hide exactly the cold users a served model meets.

Batches follow the model input contract of `trainer/ctr/models/ctr_model.py`: ``hist_item``
``[B, H]``, ``hist_categories`` ``[B, H, C]``, ``hist_words`` ``[B, H, L]``, ``hist_mask``,
``target_item`` ``[B]``, ``target_categories`` ``[B, C]``, ``target_words`` ``[B, L]``; ids 0 =
padding, 1 = unknown (an item missing from the catalog keeps id 1 and a trained row).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.errors import UserError
from trainer import loop
from trainer.ctr.config import CLICK_RATING, CTRTransformConfig
from trainer.ctr.preprocessing import ITEM_VOCAB, is_behaviour
from trainer.transform_ops import PAD_ID, table_size

FeatureSpec = dict[str, Any]
"""A transformed feature spec (`tft.TFTransformOutput.transformed_feature_spec()`)."""

CONTENT_FIELDS = ("categories", "words")
SEQUENCE_FEATURES = ("items", "ratings")
EVAL_FEATURES = ("items", "ratings", "history")


@dataclasses.dataclass(frozen=True)
class ItemTable:
    """Item content by item id (row 0 = padding, row 1 = unknown item: both all-padding)."""

    fields: dict[str, np.ndarray]
    """``categories`` ``[N, C]`` and ``words`` ``[N, L]`` int32, padded with 0."""

    @property
    def num_items(self) -> int:
        return len(self.fields["categories"])

    def gather(self, indices: tf.Tensor, fields: Iterable[str]) -> dict[str, tf.Tensor]:
        return {f: tf.gather(self.fields[f], indices) for f in fields}


def empty_table(num_items: int, cfg: CTRTransformConfig) -> ItemTable:
    return ItemTable({"categories": np.zeros((num_items, cfg.max_categories), np.int32),
                      "words": np.zeros((num_items, cfg.title_length), np.int32)})


def load_item_table(item_files: list[str], tft_output: tft.TFTransformOutput, cfg: CTRTransformConfig) -> ItemTable:
    """Reads the transformed `items` split into dense arrays (one pass)."""
    table = empty_table(table_size(tft_output, ITEM_VOCAB), cfg)
    widths = {"categories": cfg.max_categories, "words": cfg.title_length}
    for batch in loop.parse_transformed(item_files, tft_output.transformed_feature_spec(), ("item_index",) + CONTENT_FIELDS):
        index = batch["item_index"].numpy()
        for f in CONTENT_FIELDS:
            value = tf.sparse.reset_shape(batch[f], [batch[f].dense_shape[0], widths[f]])
            table.fields[f][index] = tf.sparse.to_dense(value).numpy()
    return table


def _ragged_rows(batch: dict[str, Any]) -> dict[str, Any]:
    # Ragged, not dense: a dense row would be padded to the widest user of its parse batch.
    return {k: tf.RaggedTensor.from_sparse(v) if isinstance(v, tf.SparseTensor) else v for k, v in batch.items()}


def users(files: list[str], feature_spec: FeatureSpec, keys: Iterable[str] = SEQUENCE_FEATURES) -> tf.data.Dataset:
    """Transformed sequence rows, one element per user: ``items`` [n], ``ratings`` [n] (each
    user's own length), ..."""
    return loop.parse_transformed(files, feature_spec, keys).map(_ragged_rows).unbatch()


def clicks(ratings: tf.Tensor) -> tf.Tensor:
    """The click rule (MovieLens): 1.0 for a rating ≥ `CLICK_RATING`, else 0.0."""
    return tf.cast(ratings >= CLICK_RATING, tf.float32)


def user_samples(items: tf.Tensor, ratings: tf.Tensor, history_length: int, history: str) -> dict[str, tf.Tensor]:
    """One user's training samples: every event with a behaviour before it, and the up to H
    most recent behaviours before it (`history`: ``"clicked"`` or ``"all"``, see the module
    docstring).

    Returns ``history`` ``[S, H]`` (oldest first, padded with 0 at the end), ``target`` ``[S]``
    and ``click`` ``[S]``, S = the number of such events (0 for a user without any).
    """
    behaviour = is_behaviour(ratings, history)
    # before[i]: behaviours at positions < i; the history of target i is behaviours[before[i] - H: before[i]].
    before = tf.cumsum(tf.cast(behaviour, tf.int32), exclusive=True)
    target_pos = tf.cast(tf.where(before > 0)[:, 0], tf.int32)
    count = tf.gather(before, target_pos)
    past = tf.boolean_mask(items, behaviour)
    start = tf.maximum(count - history_length, 0)
    slots = start[:, None] + tf.range(history_length)[None, :]
    real = slots < count[:, None]
    # With no target the gather indices are empty, so an empty `past` is never indexed.
    gathered = tf.gather(past, tf.minimum(slots, tf.maximum(tf.size(past) - 1, 0)))
    return {"history": tf.where(real, gathered, tf.constant(PAD_ID, items.dtype)),
            "target": tf.gather(items, target_pos), "click": clicks(tf.gather(ratings, target_pos))}


def to_model_inputs(history: tf.Tensor, target: tf.Tensor, table: ItemTable, fields: Iterable[str]) -> dict[str, tf.Tensor]:
    """Item ids → the CTR input dict for the model's `fields` (see the module docstring)."""
    content = [f for f in fields if f != "item"]
    out = {f"hist_{k}": v for k, v in table.gather(history, content).items()}
    out.update({f"target_{k}": v for k, v in table.gather(target, content).items()})
    out["hist_item"] = tf.cast(history, tf.int32)
    out["target_item"] = tf.cast(target, tf.int32)
    out["hist_mask"] = tf.cast(history != PAD_ID, tf.float32)
    return out


@dataclasses.dataclass(frozen=True)
class SampleCounts:
    """What sample construction makes of the train split (one pass, logged by the Trainer)."""

    users: int
    """Users in the train split."""
    users_without_samples: int
    """Users with no event after a behaviour (one event; with ``"clicked"``, no click before
    their last event): no sample."""
    events: int
    """Train events of all users."""
    samples: int
    """Training samples: one per event with a behaviour before it."""
    clicks: int
    """Samples whose target was rated ≥ 4."""
    history: str = "clicked"
    """The history definition the samples were built with (`CTRTransformConfig.history`)."""

    def describe(self) -> str:
        share = self.clicks / self.samples if self.samples else 0.0
        after = "a user's first click" if self.history == "clicked" else "a user's first"
        return (
            f"{self.users} training users ({self.users_without_samples} without a sample), "
            f"{self.events} events: {self.samples} samples (every event after {after}, history = "
            f"{self.history} events), {self.clicks} clicks ({100 * share:.1f}%, rating >= {CLICK_RATING:g})"
        )


def sample_counts(files: list[str], feature_spec: FeatureSpec, history: str) -> SampleCounts:
    """Counts users, events, samples and clicks under the `history` definition (reads the ids once).

    Raises:
        UserError: when events carry no rating (the click rule needs one per event).
    """
    def counts(user):
        # Everything but the event count is read from the ratings, so a user whose events lack
        # ratings counts no sample instead of failing on a shape; the check below names the cause.
        ratings = user["ratings"]
        as_int = lambda b: tf.cast(b, tf.int64)  # noqa: E731
        target = tf.cumsum(as_int(is_behaviour(ratings, history)), exclusive=True) > 0
        samples = tf.reduce_sum(as_int(target))
        return tf.stack([
            tf.constant(1, tf.int64), as_int(samples == 0), tf.size(user["items"], out_type=tf.int64), samples,
            tf.reduce_sum(as_int(target & (clicks(ratings) > 0))), tf.size(ratings, out_type=tf.int64),
        ])

    total = users(files, feature_spec).map(counts).reduce(tf.zeros([6], tf.int64), lambda a, b: a + b).numpy()
    if total[5] != total[2]:
        raise UserError(
            f"ratings: {total[2]} train events but {total[5]} ratings; the CTR family derives clicks "
            f"from MovieLens ratings (rating >= {CLICK_RATING:g})"
        )
    return SampleCounts(*(int(v) for v in total[:5]), history=history)


def training_dataset(
    files: list[str],
    feature_spec: FeatureSpec,
    table: ItemTable,
    fields: Iterable[str],
    history_length: int,
    history: str,
    batch_size: int,
    seed: int,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Endless shuffled batches of (model inputs, clicks) for `model.fit`; `history` is
    `CTRTransformConfig.history` (the samples of `user_samples`)."""
    tf.random.set_seed(seed)
    fields = tuple(fields)
    return (
        users(files, feature_spec)
        .repeat()
        .flat_map(lambda u: tf.data.Dataset.from_tensor_slices(
            user_samples(u["items"], u["ratings"], history_length, history)))
        .shuffle(shuffle_buffer, seed=seed)
        .batch(batch_size, drop_remainder=True)
        .map(lambda s: (to_model_inputs(s["history"], s["target"], table, fields), s["click"]),
             num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_batches(
    files: list[str], feature_spec: FeatureSpec, table: ItemTable, fields: Iterable[str], batch_size: int
) -> tf.data.Dataset:
    """Eval users' events scored against their train history, as ``(inputs, clicks)`` batches of
    `batch_size` (history, target) rows.

    Rows, not users, are batched: one batch of users would be as wide as their longest eval
    sequence, so on ml-1m (a user with 460 eval events) 64 users made ~30k rows whose word
    tensors took 16 GB in MFN. A fixed row count bounds the memory whatever the users' lengths.
    """
    fields = tuple(fields)

    def rows(user):
        targets = user["items"]
        n = tf.size(targets)
        return tf.data.Dataset.from_tensor_slices({
            "history": tf.repeat(user["history"][None, :], n, axis=0), "target": targets,
            "click": clicks(user["ratings"]),
        })

    return (
        users(files, feature_spec, EVAL_FEATURES)
        .flat_map(rows)
        .batch(batch_size)
        .map(lambda r: (to_model_inputs(r["history"], r["target"], table, fields), r["click"]),
             num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
