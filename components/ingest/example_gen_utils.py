"""What the project's custom ExampleGens (MIND, MovieLens, Taobao) have in common.

Every ExampleGen here writes one Examples artifact in the layout TFX's own readers expect
(``Split-<name>/data_tfrecord-*.gz``, gzipped TFRecords of serialized tf.Examples, payload
format FORMAT_TF_EXAMPLE) and an ingest report beside the splits. Keeping that layout in one
place means StatisticsGen, Transform and `pipeline.summary` read every source the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.ingest.report import IngestReport

REPORT_FILE = "ingest_report"
"""Base name of the report files (``.json``, ``.md``) in the Examples artifact directory."""
REPORT_PROPERTY = "ingest_report"
"""Custom property of the Examples artifact that holds the report as JSON (seen in MLMD)."""
STAGING_DIR = "_staging"
"""Directory in the artifact for examples on their way from the executor to Beam (removed)."""


def int64_feature(values: Iterable[int]) -> tf.train.Feature:
    """Returns an int64_list feature."""
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def float_feature(values: Iterable[float]) -> tf.train.Feature:
    """Returns a float_list feature."""
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def bytes_feature(values: Iterable[str]) -> tf.train.Feature:
    """Returns a bytes_list feature of the UTF-8 encoded strings."""
    encoded = [value.encode("utf-8") for value in values]
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))


def make_example(features: dict[str, tf.train.Feature]) -> tf.train.Example:
    """Wraps named features in a tf.Example."""
    return tf.train.Example(features=tf.train.Features(feature=features))


def prepare_examples(
    output_dict: dict[str, list[types.Artifact]], splits: Sequence[str]
) -> types.Artifact:
    """Returns the executor's single ``examples`` output with its split names and format set.

    Downstream components find the splits through `split_names` and choose their decoder
    through the payload format, so both must be set before the artifact is published.
    """
    examples = artifact_utils.get_single_instance(output_dict["examples"])
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    return examples


def split_prefix(uri: str, split: str) -> str:
    """Returns the TFRecord file prefix of `split` in an Examples artifact directory."""
    return os.path.join(uri, f"Split-{split}", "data_tfrecord")


@beam.ptransform_fn
def WriteSplit(records: beam.PCollection, uri: str, split: str) -> beam.pvalue.PDone:  # noqa: N802
    """Writes serialized tf.Examples (bytes) as the split `split` of the artifact at `uri`.

    The records are reshuffled first: the sources (one file read by one worker) arrive
    unbalanced, and the reshuffle lets the runner spread compression over its workers and
    size the output shards.
    """
    return (
        records
        | "Reshuffle" >> beam.Reshuffle()
        | "Write" >> beam.io.WriteToTFRecord(split_prefix(uri, split), file_name_suffix=".gz")
    )


def stage_examples(examples: Iterable[tf.train.Example], path: str) -> str:
    """Writes examples built in the executor process to an uncompressed TFRecord file.

    Beam reads the file back instead of receiving the examples through `beam.Create`,
    which would pickle (and bz2-compress) them into the pipeline graph: slow for a few MB
    already, and beyond the graph-size limit of remote runners.

    Returns:
        `path`, for use in the pipeline.
    """
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(example.SerializeToString())
    return path


def write_report(report: IngestReport, examples: types.Artifact) -> None:
    """Writes the report beside the splits (JSON and Markdown) and as a custom property.

    The files are what a person or `pipeline.summary` reads; the property makes the same
    counts visible in MLMD (and the Kubeflow UI) without opening the artifact.
    """
    content = report.to_dict()
    base = os.path.join(examples.uri, REPORT_FILE)
    io_utils.write_string_file(base + ".json", json.dumps(content, indent=2))
    io_utils.write_string_file(base + ".md", report.to_markdown())
    examples.set_string_custom_property(REPORT_PROPERTY, json.dumps(content))


def load_report(examples: types.Artifact) -> dict[str, Any]:
    """Reads the ingest report of an Examples artifact; {} when it has none."""
    path = os.path.join(examples.uri, REPORT_FILE + ".json")
    return json.loads(io_utils.read_string_file(path)) if tf.io.gfile.exists(path) else {}
