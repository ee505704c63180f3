"""The news-ranking preprocessing_fn, run through tf.Transform's Beam implementation."""

from __future__ import annotations

import tempfile

import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from pipeline.families import NEWS
from trainer import transform_ops
from trainer.news import preprocessing
from trainer.transform_ops import FIRST_ID, PAD_ID, UNKNOWN_ID

SCHEMA_FILE = NEWS.schema_file


def _row(**values):
    schema = io_utils.parse_pbtxt_file(SCHEMA_FILE, schema_pb2.Schema())
    row = {f.name: [] for f in schema.feature}
    row.update(values)
    return row


NEWS = [
    _row(news_id=[b"N1"], category=[b"sports"], subcategory=[b"nfl"], title=[b"Big Game tonight!"],
         abstract=[b"The game is big."], title_entities=[b"Q1", b"Q2"], abstract_entities=[b"Q3", b"Q1"]),
    _row(news_id=[b"N2"], category=[b"news"], subcategory=[b"us"], title=[b"Election news"],
         abstract_entities=[b"Q1"]),
]
IMPRESSIONS = [
    _row(impression_id=[7], user_id=[b"U1"], time=[100], history=[b"N1", b"N9", b"N2"],
         candidates=[b"N2", b"N1", b"N5"], labels=[1, 0, 0]),
    _row(impression_id=[8], user_id=[b"U2"], time=[101], history=[b"N2", b"N1", b"N2", b"N1", b"N2"],
         candidates=[b"N1"], labels=[1]),
]


@pytest.fixture(scope="module")
def transformed():
    schema = io_utils.parse_pbtxt_file(SCHEMA_FILE, schema_pb2.Schema())
    config = {"history_length": 4, "title_length": 3, "abstract_length": 8, "entity_length": 3}
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (rows, _), (_, _) = (NEWS + IMPRESSIONS, tft.DatasetMetadata(schema)) | tft_beam.AnalyzeAndTransformDataset(
            lambda x: preprocessing.preprocessing_fn(x, config)
        )
    return rows


def test_tokenize_lowercases_and_splits_punctuation():
    tokens = transform_ops.tokenize(tf.constant(["Big Game tonight!", "  Ünïcode, words "]))
    assert tokens.to_list() == [[b"big", b"game", b"tonight", b"!"], ["ünïcode".encode(), b",", b"words"]]


def test_news_rows_get_ids_tokens_and_truncation(transformed):
    n1, n2 = transformed[0], transformed[1]
    assert {n1["news_index"], n2["news_index"]} == {FIRST_ID, FIRST_ID + 1}
    assert len(n1["title"]) == 3  # "big game tonight" — truncated to title_length
    assert min(n1["title"]) >= FIRST_ID
    assert len(n2["abstract"]) == 0  # absent abstract → no tokens, not a crash
    assert n1["category"] >= FIRST_ID and n1["subcategory"] >= FIRST_ID
    assert n1["user_index"] == PAD_ID  # not an impression row


def test_impression_history_maps_ids_masks_unknown_and_pads(transformed):
    imp = transformed[2]
    by_id = {b"N1": transformed[0]["news_index"], b"N2": transformed[1]["news_index"]}
    assert list(imp["history"]) == [by_id[b"N1"], UNKNOWN_ID, by_id[b"N2"], PAD_ID]
    assert list(imp["history_mask"]) == [1.0, 0.0, 1.0, 0.0]  # unknown N9 and padding are masked
    assert list(imp["candidates"]) == [by_id[b"N2"], by_id[b"N1"], UNKNOWN_ID]  # unknown candidate kept
    assert list(imp["labels"]) == [1, 0, 0]
    assert imp["user_index"] >= FIRST_ID and imp["impression_id"] == 7


def test_history_keeps_the_most_recent_clicks(transformed):
    imp = transformed[3]
    n1, n2 = transformed[0]["news_index"], transformed[1]["news_index"]
    # history N2 N1 N2 N1 N2 (oldest first), history_length 4 → the last four.
    assert list(imp["history"]) == [n1, n2, n1, n2]


def test_entities_title_first_then_abstract_truncated(transformed):
    n1, n2, imp = transformed[0], transformed[1], transformed[2]
    assert len(n1["entities"]) == 3 and min(n1["entities"]) >= FIRST_ID  # Q1 Q2 Q3 (Q1 cut)
    assert n1["entities"][0] == n2["entities"][0]  # Q1 has one id wherever it occurs
    assert len(set(n1["entities"])) == 3
    assert len(imp["entities"]) == 0  # impression rows have none
