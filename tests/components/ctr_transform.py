"""A real tf.Transform run of the CTR preprocessing_fn on a handful of raw MovieLens-format rows,
written as TFX writes its artifacts (transform graph; transformed examples with `Split-train`,
`Split-items`, `Split-eval`), and an untrained Embedding&MLP exported from it as the auxiliary
model of MFN's centers pre-step (run once per process).

Eval rows are built as the sequence ExampleGen builds them: the user's later events plus the
train events again as `history_item_ids` / `history_ratings`; user 5's only train event is not
a click, so with `history: clicked` that user's eval history is empty.

Titles use real English words (GloVe knows them) and one made-up word (GloVe does not). The
same rows without titles (`words=False`) are data as Taobao's: item and category, no words.
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

from pipeline.families import CTR
from trainer.ctr import export as ctr_export
from trainer.ctr import input as ctr_input
from trainer.ctr import run as ctr_run
from trainer.ctr.config import CTRTransformConfig
from trainer.ctr.models import MODELS
from trainer.ctr.preprocessing import preprocessing_fn

TRANSFORM = {"history_length": 4, "title_length": 3, "max_categories": 2}
TITLES = {10: b"War Games (1983)", 20: b"Love Story", 30: b"Space War", 40: b"Love Actually Zorblax",
          50: b"Star Story", 60: b"Games Night"}
GENRES = {10: [b"Action"], 20: [b"Romance", b"Drama"], 30: [b"Action", b"SciFi"], 40: [b"Romance"],
          50: [b"SciFi"], 60: [b"Comedy", b"Drama"]}
SEQUENCES = {  # user → (items, ratings), oldest first; some longer than H, one of one event
    1: ([10, 30, 50, 10, 30], [5.0, 4.0, 3.0, 5.0, 4.0]),
    2: ([20, 40, 60], [4.0, 5.0, 2.0]),
    3: ([30, 50, 30, 10], [4.0, 4.0, 5.0, 1.0]),
    4: ([40, 20, 40, 20, 60, 40], [5.0, 4.0, 3.0, 5.0, 4.0, 5.0]),
    5: ([60], [3.0]),
    6: ([50, 10, 99], [4.0, 2.0, 5.0]),  # 99: not in the catalog
}


@functools.lru_cache(maxsize=1)
def schema() -> schema_pb2.Schema:
    return io_utils.parse_pbtxt_file(CTR.schema_file, schema_pb2.Schema())


def row(**values) -> dict:
    out = {f.name: [] for f in schema().feature}
    out.update(values)
    return out


CATALOG = [row(item_id=[i], title=[TITLES[i]], genres=GENRES[i]) for i in TITLES]
CATALOG_NO_WORDS = [row(item_id=[i], genres=GENRES[i]) for i in TITLES]
TRAIN = [row(user_id=[u], item_ids=items, timestamps=list(range(len(items))), ratings=ratings)
         for u, (items, ratings) in SEQUENCES.items()]
EVAL = [row(user_id=[u], item_ids=[20, 99], timestamps=[100, 101], ratings=[4.0, 2.0],
            history_item_ids=items, history_timestamps=list(range(len(items))), history_ratings=ratings)
        for u, (items, ratings) in SEQUENCES.items()]


@functools.lru_cache(maxsize=3)
def run_transform(history: str = "clicked", words: bool = True) -> tuple[str, dict[str, list[dict]]]:
    """The Transform graph directory and the transformed rows by split, with `TRANSFORM` and
    the given `history` definition; `words=False`: the catalog without titles."""
    catalog = CATALOG if words else CATALOG_NO_WORDS
    graph = os.path.join(tempfile.mkdtemp(), "transform_graph")
    config = {**TRANSFORM, "history": history}
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed, _), transform_fn = (catalog + TRAIN + EVAL, tft.DatasetMetadata(schema())) | (
            tft_beam.AnalyzeAndTransformDataset(functools.partial(preprocessing_fn, custom_config=config)))
        _ = transform_fn | tft_beam.WriteTransformFn(graph)
    metadata_io.write_metadata(tft.DatasetMetadata(schema()), os.path.join(graph, tft.TFTransformOutput.RAW_METADATA_DIR))
    ends = np.cumsum([len(catalog), len(TRAIN), len(EVAL)])
    return graph, {"items": transformed[: ends[0]], "train": transformed[ends[0]: ends[1]],
                   "eval": transformed[ends[1]:]}


@functools.lru_cache(maxsize=2)
def artifacts(words: bool = True) -> dict[str, str]:
    """URIs: `transform_graph`, `examples` (transformed; splits train, items, eval), `model` (a
    TFX Model artifact directory with `Format-Serving`); the default `history: clicked`;
    `words=False`: the catalog without titles."""
    root = tempfile.mkdtemp()
    graph, transformed = run_transform(words=words)
    tft_output = tft.TFTransformOutput(graph)
    coder = tft.coders.ExampleProtoCoder(tft_output.transformed_metadata.schema)
    examples = os.path.join(root, "examples")
    for split, rows in transformed.items():
        os.makedirs(os.path.join(examples, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(examples, f"Split-{split}", "data.gz"), options="GZIP") as writer:
            for r in rows:
                writer.write(coder.encode({k: v for k, v in r.items() if v is not None}))
    model_uri = os.path.join(root, "model")
    export_auxiliary(tft_output, examples, model_uri)
    return {"transform_graph": graph, "examples": examples, "model": model_uri}


def item_table(tft_output: tft.TFTransformOutput, examples: str) -> ctr_input.ItemTable:
    return ctr_input.load_item_table(tf.io.gfile.glob(os.path.join(examples, "Split-items", "*")), tft_output,
                                     CTRTransformConfig.from_dict(TRANSFORM))


def export_auxiliary(tft_output: tft.TFTransformOutput, examples: str, model_uri: str) -> keras.Model:
    """An untrained (seeded) tiny Embedding&MLP, exported as its Trainer would."""
    keras.utils.set_random_seed(0)
    model = MODELS.build("embedding_mlp", "tiny", **ctr_run.model_sizes(tft_output))
    model.build()
    table = item_table(tft_output, examples)
    ctr_export.export(model, ctr_export.item_vocabulary_file(tft_output), table, TRANSFORM["history_length"],
                      os.path.join(model_uri, "Format-Serving"))
    return model
