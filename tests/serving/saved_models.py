"""SavedModels for the serving tests, one per model family.

* news ranking: real tiny (untrained) NRMS, FUM and LSTUR exported by
  ``trainer.news.export.export`` (the pipeline's own export code), with a Transform graph
  analysed by tf.Transform on a handful of rows;
* CTR and tag profiling have no trained model yet, so small hand-written ``tf.Module``s stand in
  with the signatures docs/serving.md fixes for them (``pctr``; ``user_tags``), hashing ids to
  fixed random embeddings so outputs depend on every input.
"""

from __future__ import annotations

import functools
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import metadata_io
from tfx.utils import io_utils

from pipeline.families import NEWS
from trainer import loop, signatures, transform_ops
from trainer.news import export as news_export
from trainer.news import input as news_input
from trainer.news import preprocessing
from trainer.news import run as run_fn
from trainer.news.models import MODELS, build_model

SCHEMA_FILE = NEWS.schema_file

NEWS_IDS = [f"N{i}" for i in range(1, 13)]
WORDS = "game election market storm movie music health travel food science court team".split()
CATEGORIES = ["sports", "news", "finance", "weather"]
HISTORY_LENGTH = 6


def news_rows() -> list[dict[str, str]]:
    """Articles as raw strings (what encode_news takes), one per news id."""
    return [{
        "news_id": nid, "category": CATEGORIES[i % 4], "subcategory": f"{CATEGORIES[i % 4]}_{i % 3}",
        "title": f"{WORDS[i]} {WORDS[(i * 5) % 12]} {WORDS[(i * 7) % 12]} news",
        "abstract": f"about the {WORDS[(i + 3) % 12]} and {WORDS[(i * 2) % 12]}",
    } for i, nid in enumerate(NEWS_IDS)]


def _raw_rows() -> list[dict]:
    schema = io_utils.parse_pbtxt_file(SCHEMA_FILE, schema_pb2.Schema())
    empty = {f.name: [] for f in schema.feature}
    rows = [{**empty, **{k: [v.encode()] for k, v in article.items()}} for article in news_rows()]
    for u in range(6):
        history = [NEWS_IDS[(u + j) % 12].encode() for j in range(4)]
        rows.append({**empty, "impression_id": [u], "user_id": [f"U{u}".encode()], "time": [100 + u],
                     "history": history, "candidates": [NEWS_IDS[(u * 3) % 12].encode(), NEWS_IDS[(u + 7) % 12].encode()],
                     "labels": [1, 0]})
    return rows, schema


NEWS_MODELS = ("nrms", "fum", "lstur")


@functools.lru_cache(maxsize=1)
def _transform() -> tuple[tft.TFTransformOutput, news_input.NewsTable]:
    """The Transform graph analysed on the rows above, and the news table it yields (once)."""
    rows, schema = _raw_rows()
    cfg = preprocessing.NewsTransformConfig(history_length=HISTORY_LENGTH, title_length=6, abstract_length=6)
    custom = {"history_length": cfg.history_length, "title_length": cfg.title_length,
              "abstract_length": cfg.abstract_length}
    transform_dir = tempfile.mkdtemp()
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed, _), transform_fn = (rows, tft.DatasetMetadata(schema)) | tft_beam.AnalyzeAndTransformDataset(
            lambda x: preprocessing.preprocessing_fn(x, custom))
        _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
    metadata_io.write_metadata(tft.DatasetMetadata(schema),
                               os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    tft_output = tft.TFTransformOutput(transform_dir)
    lengths = news_input.field_lengths(cfg)
    fields = news_input.empty_fields(transform_ops.table_size(tft_output, preprocessing.NEWS_VOCAB), cfg)
    for row in transformed[: len(NEWS_IDS)]:
        for f in news_input.NEWS_FIELDS:
            value = np.asarray(row[f], np.int32)
            if f in lengths:
                fields[f][row["news_index"], : len(value)] = value
            else:
                fields[f][row["news_index"]] = value
    return tft_output, news_input.NewsTable(fields)


def export_news(name: str, path: str) -> None:
    """Exports an untrained tiny news model (seeded) with the real Transform graph and signatures."""
    keras.utils.set_random_seed(0)
    tft_output, table = _transform()
    sizes = loop.vocab_sizes(MODELS, loop.TrainingConfig(model=name, model_config="tiny"), tft_output, run_fn.VOCABULARIES)
    model = build_model(name, "tiny", **sizes)
    ids = {"history": tf.constant([[2] * HISTORY_LENGTH], tf.int64), "history_mask": tf.ones([1, HISTORY_LENGTH]),
           "user_index": tf.constant([2], tf.int64), "candidates": tf.constant([[2, 3]], tf.int64)}
    model(news_input.to_model_inputs(ids, table, model.news_fields), training=False)  # builds it
    news_export.export(model, tft_output, table, path)


def _embed(ids: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    """Hashed embedding with "" = zero vector."""
    vectors = tf.gather(table, tf.strings.to_hash_bucket_fast(ids, table.shape[0]))
    return vectors * tf.cast(ids != "", tf.float32)[..., None]


def _masked_mean(ids: tf.Tensor, table: tf.Tensor) -> tf.Tensor:
    mask = tf.cast(ids != "", tf.float32)
    return tf.reduce_sum(_embed(ids, table), axis=-2) / tf.maximum(tf.reduce_sum(mask, -1, keepdims=True), 1.0)


class CtrContract(tf.Module):
    """CTR contract: ``pctr(user_id [B], history [B, H], target [B]) → pctr [B]`` in (0, 1)."""

    def __init__(self, dim: int = 8, buckets: int = 97):
        super().__init__()
        rng = np.random.default_rng(1)
        self.items = tf.Variable(rng.normal(size=(buckets, dim)).astype("float32"), trainable=False)
        self.users = tf.Variable(rng.normal(size=(buckets, 1)).astype("float32"), trainable=False)

    @tf.function(input_signature=signatures.PCTR.tf_specs())
    def pctr(self, user_id, history, target):
        logit = tf.reduce_sum(_masked_mean(history, self.items) * _embed(target, self.items), -1)
        logit += _embed(user_id, self.users)[:, 0]
        return {"pctr": tf.sigmoid(logit)}

    @tf.function(input_signature=signatures.SERVING_DEFAULT.tf_specs())
    def serving_default(self, examples):
        spec = {"user_id": tf.io.FixedLenFeature([], tf.string, ""), "target": tf.io.FixedLenFeature([], tf.string, ""),
                "history": tf.io.VarLenFeature(tf.string)}
        parsed = tf.io.parse_example(examples, spec)
        return self.pctr(parsed["user_id"], tf.sparse.to_dense(parsed["history"], ""), parsed["target"])


class TagsContract(tf.Module):
    """Tag-profiling contract: ``user_tags(user_id [B], history [B, H], features [B, F])`` →
    ``user_embedding [B, D]``, ``tag_ids [B, K]`` (strings, best first), ``tag_scores [B, K]``, and
    ``history_tag_ids`` / ``history_tag_scores`` (here: the best of the first four tags)."""

    def __init__(self, dim: int = 8, buckets: int = 97, k: int = 5):
        super().__init__()
        rng = np.random.default_rng(2)
        self.k = k
        self.tags = tf.constant([f"tag{i}" for i in range(12)])
        self.tag_vectors = tf.Variable(rng.normal(size=(12, dim)).astype("float32"), trainable=False)
        self.items = tf.Variable(rng.normal(size=(buckets, dim)).astype("float32"), trainable=False)

    @tf.function(input_signature=signatures.USER_TAGS.tf_specs())
    def user_tags(self, user_id, history, features):
        user = _masked_mean(history, self.items) + _masked_mean(features, self.items) + _embed(user_id, self.items)
        scores = tf.matmul(user, self.tag_vectors, transpose_b=True)
        top = tf.math.top_k(scores, k=self.k)
        # "History tags" of this stand-in: the first four tags, best first.
        own = tf.math.top_k(scores[:, :4], k=4)
        return {"user_embedding": user, "tag_ids": tf.gather(self.tags, top.indices), "tag_scores": top.values,
                "history_tag_ids": tf.gather(self.tags, own.indices), "history_tag_scores": own.values}

    @tf.function(input_signature=signatures.SERVING_DEFAULT.tf_specs())
    def serving_default(self, examples):
        spec = {"user_id": tf.io.FixedLenFeature([], tf.string, ""), "history": tf.io.VarLenFeature(tf.string),
                "features": tf.io.VarLenFeature(tf.string)}
        parsed = tf.io.parse_example(examples, spec)
        return self.user_tags(parsed["user_id"], tf.sparse.to_dense(parsed["history"], ""),
                              tf.sparse.to_dense(parsed["features"], ""))


def export_contract(module: tf.Module, path: str) -> None:
    names = [n for n in ("serving_default", "pctr", "user_tags") if hasattr(module, n)]
    tf.saved_model.save(module, path, signatures={n: getattr(module, n) for n in names})
