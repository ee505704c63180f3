"""MindExampleGen: a TFX ExampleGen for MIND-format data (behaviors.tsv + news.tsv).

CsvExampleGen cannot read MIND: the files are tab-separated with nested fields (space-separated
id lists, `id-label` tokens, JSON entity lists). This component parses them with
`components.ingest.mind` inside a Beam pipeline and writes one Examples artifact with three
splits (docs/architecture.md explains why):

* ``train`` / ``eval``: one tf.Example per impression, ids only. The split is by time, as the
  MIND protocol does: impressions of the last day go to ``eval``. An impression is one row, so
  it can never straddle splits.
* ``news``: one tf.Example per article of news.tsv.

Malformed rows and history/candidate ids missing from news.tsv are counted, never fatal, and
written as ``ingest_report.json`` / ``.md`` next to the splits.

The readers work on local files (they stay TensorFlow-free, for `usermodel data inspect`); an
input given as a URI (``gs://…`` on Kubeflow) is first copied to local scratch space.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterator, TextIO

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import component_spec, standard_artifacts
from tfx.utils import io_utils

from components.ingest import mind, splits
from components.ingest import report as report_lib
from components.ingest.example_gen_utils import (
    STAGING_DIR,
    WriteSplit,
    bytes_feature,
    int64_feature,
    make_example,
    prepare_examples,
    stage_examples,
    write_report,
)

SPLITS = ("train", "eval", "news")


def impression_example(imp: mind.Impression) -> tf.train.Example:
    """Serializes an impression: ids only, so history text is never copied per row."""
    return make_example({
        "impression_id": int64_feature([imp.impression_id]),
        "user_id": bytes_feature([imp.user_id]),
        "time": int64_feature([imp.time]),
        "history": bytes_feature(imp.history),
        "candidates": bytes_feature(imp.candidates),
        "labels": int64_feature(imp.labels),
    })


def news_example(article: mind.NewsArticle) -> tf.train.Example:
    """Serializes one news.tsv row."""
    return make_example({
        "news_id": bytes_feature([article.news_id]),
        "category": bytes_feature([article.category]),
        "subcategory": bytes_feature([article.subcategory]),
        "title": bytes_feature([article.title]),
        "abstract": bytes_feature([article.abstract]),
        "title_entities": bytes_feature(article.title_entities),
        "abstract_entities": bytes_feature(article.abstract_entities),
    })


class _ReadBehaviors(beam.DoFn):
    """Reads one behaviors file with line numbers; bad rows go to the report output."""

    def process(self, path: str) -> Iterator[Any]:
        with tf.io.gfile.GFile(path, "r") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield mind.parse_behaviors_line(line)
                except report_lib.MalformedRow as err:
                    yield beam.pvalue.TaggedOutput("bad", (path, lineno, str(err)))


class _CoverageCounter(beam.DoFn):
    """Counts history/candidate ids that have no row in news.tsv (reported, not fatal)."""

    def process(self, imp: mind.Impression, news_ids: set[str]) -> Iterator[dict[str, int]]:
        yield {
            "impressions": 1,
            mind.UNLABELLED_IMPRESSIONS: int(not imp.labels),
            mind.HISTORY_IDS: len(imp.history),
            mind.HISTORY_IDS_MISSING: sum(h not in news_ids for h in imp.history),
            mind.CANDIDATE_IDS: len(imp.candidates),
            mind.CANDIDATE_IDS_MISSING: sum(c not in news_ids for c in imp.candidates),
        }


def _sum_counts(counts: Iterator[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total


def _write_split(examples, uri: str, split: str):
    return (
        examples
        | f"Serialize[{split}]" >> beam.Map(lambda e: e.SerializeToString())
        | f"Write[{split}]" >> WriteSplit(uri, split)
    )


class Executor(base_beam_executor.BaseBeamExecutor):
    """Parses MIND files and writes the train/eval/news splits plus an ingest report."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        source = exec_properties["input_base"]
        with tempfile.TemporaryDirectory(prefix="mind-input-") as scratch:
            self._ingest(_localize(source, scratch), source, output_dict)

    def _ingest(self, input_base: str, source: str, output_dict) -> None:
        files = mind.find_mind_files(input_base)
        examples = prepare_examples(output_dict, SPLITS)
        report = report_lib.IngestReport()
        articles = mind.read_news_table([files.news], report)  # small: ~130k rows for MIND-large
        news_ids = set(articles)
        staging = os.path.join(examples.uri, STAGING_DIR)
        staged_news = stage_examples(map(news_example, articles.values()), os.path.join(staging, "news.tfrecord"))
        counts_path = os.path.join(examples.uri, "_coverage.json")
        bad_path = os.path.join(examples.uri, "_malformed.json")
        boundary_path = os.path.join(examples.uri, "_boundary.json")
        with self._make_beam_pipeline() as p:
            read = (
                p
                | "BehaviorFiles" >> beam.Create([str(files.behaviors)])
                | "ReadBehaviors" >> beam.ParDo(_ReadBehaviors()).with_outputs("bad", main="rows")
            )
            rows = read.rows | "Spread" >> beam.Reshuffle()
            boundary = (
                rows
                | "Times" >> beam.Map(lambda imp: imp.time)
                | "LastTime" >> beam.CombineGlobally(max)
                | "Boundary" >> beam.Map(lambda t: splits.mind_eval_boundary([t]))
            )
            train, eval_ = rows | "SplitByTime" >> beam.Partition(
                lambda imp, _, b: int(imp.time >= b), 2, beam.pvalue.AsSingleton(boundary)
            )
            _write_split(train | "TrainExamples" >> beam.Map(impression_example), examples.uri, "train")
            _write_split(eval_ | "EvalExamples" >> beam.Map(impression_example), examples.uri, "eval")
            (
                p
                | "ReadNews" >> beam.io.ReadFromTFRecord(staged_news, coder=beam.coders.BytesCoder())
                | "WriteNews" >> WriteSplit(examples.uri, "news")
            )
            (
                rows
                | "Coverage" >> beam.ParDo(_CoverageCounter(), news_ids=news_ids)
                | "SumCoverage" >> beam.CombineGlobally(_sum_counts)
                | "CoverageJson" >> beam.Map(json.dumps)
                | "WriteCoverage" >> beam.io.WriteToText(counts_path, shard_name_template="")
            )
            (
                boundary
                | "BoundaryJson" >> beam.Map(lambda b: json.dumps({"eval split starts at (epoch seconds)": b}))
                | "WriteBoundary" >> beam.io.WriteToText(boundary_path, shard_name_template="")
            )
            (
                read.bad
                | "BadRows" >> beam.combiners.ToList()
                | "BadJson" >> beam.Map(json.dumps)
                | "WriteBad" >> beam.io.WriteToText(bad_path, shard_name_template="")
            )
        tf.io.gfile.rmtree(staging)
        _merge_counts(report, [counts_path, boundary_path], bad_path)
        if input_base != source:
            report.relabel(input_base, source)
        write_report(report, examples)
        if files.entity_embedding is not None:
            tf.io.gfile.copy(str(files.entity_embedding), os.path.join(examples.uri, "entity_embedding.vec"), True)


def _localize(input_base: str, scratch: str) -> str:
    """A local directory with the MIND files: `input_base` itself, or a copy of a URI's files."""
    if "://" not in input_base:
        return input_base
    if not tf.io.gfile.isdir(input_base):
        raise report_lib.DatasetError(f"MIND directory {input_base} does not exist")
    for name in tf.io.gfile.listdir(input_base):
        if name.endswith((".tsv", ".vec")):
            tf.io.gfile.copy(os.path.join(input_base, name), os.path.join(scratch, name), overwrite=True)
    return scratch


def _merge_counts(report, count_paths: list[str], bad_path: str) -> None:
    """Merges the counters and bad rows the pipeline wrote into the report (and removes them)."""
    for counts_path in count_paths:
        if tf.io.gfile.exists(counts_path):
            for key, value in json.loads(io_utils.read_string_file(counts_path) or "{}").items():
                report.count(key, value)
            tf.io.gfile.remove(counts_path)
    if tf.io.gfile.exists(bad_path):
        for path, lineno, reason in json.loads(io_utils.read_string_file(bad_path) or "[]"):
            report.malformed(path, lineno, reason)
        tf.io.gfile.remove(bad_path)


class MindExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {"input_base": component_spec.ExecutionParameter(type=str)}
    INPUTS: dict = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class MindExampleGen(base_beam_component.BaseBeamComponent):
    """ExampleGen for a directory holding MIND's behaviors.tsv and news.tsv."""

    SPEC_CLASS = MindExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base: str):
        """Args:
        input_base: directory with behaviors.tsv, news.tsv and optionally
            entity_embedding.vec (the MIND release layout).
        """
        super().__init__(
            spec=MindExampleGenSpec(
                input_base=input_base, examples=types.Channel(type=standard_artifacts.Examples)
            )
        )


def example_gen(dataset: str, data_dir: str) -> MindExampleGen:
    """The news family's ExampleGen (`pipeline/families.py`): generated and real MIND data
    share the format, so `dataset` does not change the component."""
    del dataset
    return MindExampleGen(input_base=data_dir)


def prepare_data(dataset: str, data_dir: str, synthetic_preset: str, out: TextIO) -> None:
    """Generates the synthetic MIND-format set on first use; checks a real directory now, so a
    missing file is reported before the run starts rather than minutes into it."""
    if dataset == "synthetic" and not os.path.exists(os.path.join(data_dir, "behaviors.tsv")):
        from components.ingest import synthetic

        out.write(f"Generating synthetic MIND-format data ({synthetic_preset}) in {data_dir}\n")
        synthetic.generate_mind(data_dir, synthetic.SyntheticMindConfig.preset(synthetic_preset))
    mind.find_mind_files(data_dir)
