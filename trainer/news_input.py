"""Input pipeline of the news-ranking family: news table, negative sampling, batching.

Transformed impressions carry only integer ids (docs/architecture.md). Here they meet article
content: :class:`NewsTable` holds every article's fields as dense arrays indexed by the news
index, and batches gather from it, so history text is never materialised per impression on disk.

Training follows the papers (NRMS, FUM): every click of an impression becomes one sample with K
negatives drawn from the same impression's non-clicked candidates (with replacement when the
impression has fewer), and the click is put at a uniformly random slot. The official code keeps
it in slot 0, which a position-aware model can exploit; the label here is the click's slot.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Iterable

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer.preprocessing import NewsTransformConfig

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


def split_files(examples_uri: str, split: str) -> list[str]:
    """The TFRecord files of one split of an Examples artifact."""
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no files for split '{split}' under {examples_uri}")
    return files


def _parse(files: list[str], tft_output: tft.TFTransformOutput, keys: Iterable[str]) -> tf.data.Dataset:
    spec = {k: v for k, v in tft_output.transformed_feature_spec().items() if k in set(keys)}
    # No autotuning model thread (the option reaches every pipeline built on this one). Freeing
    # an iterator waits for that thread, and in about half of our pipeline runs it sat out a
    # timed wait: `fit` returned 17-25 s after its last step (seen with gdb: the main thread in
    # ~RootDataset::Iterator, the model thread in Model::OptimizeLoop). AUTOTUNE parallel maps
    # then use one call per core, and prefetch keeps its own buffer autotuning.
    options = tf.data.Options()
    options.autotune.enabled = False
    return (
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .batch(1024)
        .map(lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE)
        .with_options(options)
    )


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
    fields = empty_fields(tft_output.vocabulary_size_by_name("news_ids") + 2, cfg)
    for batch in _parse(news_files, tft_output, ("news_index",) + NEWS_FIELDS):
        index = batch["news_index"].numpy()
        for f in NEWS_FIELDS:
            value = batch[f]
            if isinstance(value, tf.SparseTensor):
                value = tf.sparse.to_dense(tf.sparse.reset_shape(value, [value.dense_shape[0], lengths[f]]))
            fields[f][index] = value.numpy()
    return NewsTable(fields)


def impressions(files: list[str], tft_output: tft.TFTransformOutput) -> tf.data.Dataset:
    """Transformed impression rows, one element per impression (candidates as dense vectors)."""
    def unbatch_sparse(batch):
        return {k: tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v for k, v in batch.items()}

    return _parse(files, tft_output, IMPRESSION_FEATURES).unbatch().map(unbatch_sparse)


def sample_clicks(imp: dict[str, tf.Tensor], negatives: int) -> tf.data.Dataset:
    """One training sample per click: the click plus K negatives, the click at a random slot."""
    labels = imp["labels"]
    pos = tf.boolean_mask(imp["candidates"], labels > 0)
    neg = tf.boolean_mask(imp["candidates"], labels <= 0)
    n_pos = tf.shape(pos)[0] * tf.cast(tf.size(neg) > 0, tf.int32)  # no negatives: nothing to learn
    pick = tf.random.uniform([n_pos, negatives], maxval=tf.maximum(tf.size(neg), 1), dtype=tf.int32)
    cands = tf.concat([pos[:n_pos, None], tf.gather(neg, pick)], axis=1)
    order = tf.argsort(tf.random.uniform(tf.shape(cands)), axis=1)  # a random permutation per row
    cands = tf.gather(cands, order, batch_dims=1)
    slot = tf.argmin(order, axis=1, output_type=tf.int32)  # where the click (column 0) went
    repeat = lambda t: tf.repeat(t[None], n_pos, axis=0)  # noqa: E731
    return tf.data.Dataset.from_tensor_slices(
        ({"history": repeat(imp["history"]), "history_mask": repeat(imp["history_mask"]),
          "user_index": repeat(imp["user_index"]), "candidates": cands}, slot)
    )


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
    tft_output: tft.TFTransformOutput,
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
        impressions(files, tft_output)
        .repeat()
        .flat_map(lambda imp: sample_clicks(imp, negatives))
        .shuffle(shuffle_buffer, seed=seed)
        .batch(batch_size, drop_remainder=True)
        .map(lambda x, y: (to_model_inputs(x, table, fields), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_batches(
    files: list[str], tft_output: tft.TFTransformOutput, table: NewsTable, fields: Iterable[str], batch_size: int
) -> tf.data.Dataset:
    """Whole impressions (all candidates, padded per batch) with their labels and ids."""
    fields = tuple(fields)

    def prepare(imp):
        ids = {"history": imp["history"], "history_mask": imp["history_mask"],
               "user_index": imp["user_index"], "candidates": imp["candidates"]}
        return to_model_inputs(ids, table, fields), imp["labels"], imp["impression_id"]

    return impressions(files, tft_output).padded_batch(
        batch_size, padding_values=None
    ).map(prepare)
