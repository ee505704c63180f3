"""A real tf.Transform run of the tags preprocessing_fn on a handful of raw MovieLensExampleGen
rows (catalog + sequences), and an untrained tags SavedModel exported from it, for the
preprocessing and export tests (run once per process).

Catalog (item: tags most applied first | genres): 10: a b c d | G1 (d is a 4th tag: cut at N=3);
20: b e | G2 G1; 30: no tag | G3; 40: c | G2; 50: a | none. Item 99 is not in the catalog.
"""

from __future__ import annotations

import functools
import os
import tempfile

import keras
import numpy as np
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import metadata_io
from tfx.utils import io_utils

from pipeline.families import TAGS
from trainer.tags import export as tags_export
from trainer.tags import input as tags_input
from trainer.tags import run as tags_run
from trainer.tags.config import TagsTrainingConfig, TagsTransformConfig
from trainer.tags.models import MODELS
from trainer.tags.preprocessing import preprocessing_fn
from trainer.transform_ops import table_size

TRANSFORM = {"field_length": 4, "tags_per_article": 3, "genres_per_article": 2}
FIELDS = ("tags", "categories", "gender", "age", "occupation")


@functools.lru_cache(maxsize=1)
def schema() -> schema_pb2.Schema:
    return io_utils.parse_pbtxt_file(TAGS.schema_file, schema_pb2.Schema())


def row(**values) -> dict:
    out = {f.name: [] for f in schema().feature}
    out.update(values)
    return out


CATALOG = [
    row(item_id=[10], title=[b"Ten (1995)"], genres=[b"G1"], tags=[b"a", b"b", b"c", b"d"], year=[1995]),
    row(item_id=[20], title=[b"Twenty"], genres=[b"G2", b"G1"], tags=[b"b", b"e"]),
    row(item_id=[30], title=[b"Thirty"], genres=[b"G3"]),
    row(item_id=[40], title=[b"Forty"], genres=[b"G2"], tags=[b"c"]),
    row(item_id=[50], title=[b"Fifty"], tags=[b"a"]),
]
TRAIN = [
    row(user_id=[1], item_ids=[10, 20, 30, 40, 50], timestamps=[1, 2, 3, 4, 5], ratings=[5.0, 4.0, 1.0, 2.0, 4.5],
        gender=[b"F"], age=[25], occupation=[4], zip=[b"12345"]),
    row(user_id=[2], item_ids=[20, 40, 99], timestamps=[1, 2, 3], ratings=[4.0, 1.0, 5.0]),
]
EVAL = [
    # User 1: history = the train events; eval clicks 40 (tag c) and 99 (unknown); 50 is rated 1.
    row(user_id=[1], item_ids=[40, 50, 99], timestamps=[6, 7, 8], ratings=[5.0, 1.0, 4.0],
        history_item_ids=[10, 20, 30, 40, 50], history_timestamps=[1, 2, 3, 4, 5],
        history_ratings=[5.0, 4.0, 1.0, 2.0, 4.5], gender=[b"F"], age=[25], occupation=[4], zip=[b"12345"]),
    # User 3: no history at all, no demographics; clicks 10 (a b c).
    row(user_id=[3], item_ids=[10], timestamps=[9], ratings=[4.0]),
    # User 2: only an unknown item in the history and nothing clicked later.
    row(user_id=[2], item_ids=[20], timestamps=[4], ratings=[3.0], history_item_ids=[99],
        history_timestamps=[3], history_ratings=[5.0]),
]


@functools.lru_cache(maxsize=1)
def transform() -> tuple[tft.TFTransformOutput, list[dict]]:
    """The Transform graph analysed on all rows (written like TFX's), and the transformed rows."""
    rows = CATALOG + TRAIN + EVAL
    transform_dir = tempfile.mkdtemp()
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed, _), transform_fn = (rows, tft.DatasetMetadata(schema())) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(preprocessing_fn, custom_config=TRANSFORM))
        _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
    metadata_io.write_metadata(tft.DatasetMetadata(schema()),
                               os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(transform_dir), transformed


def item_table() -> tags_input.ItemTable:
    tft_output, rows = transform()
    cfg = TagsTransformConfig.from_dict(TRANSFORM)
    n = table_size(tft_output, "items")
    tags = np.zeros((n, cfg.tags_per_article), np.int32)
    genres = np.zeros((n, cfg.genres_per_article), np.int32)
    for r in rows[: len(CATALOG)]:
        tags[r["catalog_index"], : len(r["catalog_tags"])] = r["catalog_tags"]
        genres[r["catalog_index"], : len(r["catalog_genres"])] = r["catalog_genres"]
    return tags_input.ItemTable(tags, genres, table_size(tft_output, "tags"),
                                table_size(tft_output, "categories"))


def training_config() -> TagsTrainingConfig:
    return TagsTrainingConfig(model="youtube_dnn", model_config={"fields": list(FIELDS), "hidden_units": [8]},
                              transform=dict(TRANSFORM), top_k=10)


@functools.lru_cache(maxsize=1)
def exported() -> str:
    """An untrained (seeded) YouTube-DNN over every field, exported with the tags signatures."""
    keras.utils.set_random_seed(0)
    tft_output, _ = transform()
    cfg = training_config()
    table = item_table()
    model = MODELS.build(cfg.model, cfg.model_config, field_sizes=tags_run.field_sizes(FIELDS, tft_output),
                         num_tags=table.num_tags)
    path = tempfile.mkdtemp()
    tags_export.export(model, tft_output, table, cfg, path)
    return path
