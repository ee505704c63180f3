"""MovieLensExampleGen, TaobaoExampleGen and MindSequenceExampleGen: TFX ExampleGens for user
behaviour sequences.

The layout mirrors MindExampleGen's (docs/architecture.md): ids travel in the sequences and
content lives once in a catalog split, so an item's title or tags are never copied per user.
One Examples artifact holds three splits:

* ``train``: one tf.Example per user with the first 80 % of the user's events by time (the
  MovieLens protocol: "each user's first 80 % of ratings as history"; `splits.split_sequence`
  decides, and same-second events keep file order).
* ``eval``: the same features over the user's remaining events, plus the user's train events
  again as ``history_<feature>`` (``history_item_ids``, ``history_ratings``, ...), so one eval
  example is everything a model and TFMA need to score that user's later events against the
  history before them (the Evaluator reads raw eval examples one at a time). Every train event
  of a user precedes (or ties with) every eval event; a user with one event has no eval example.
* ``items``: the catalog, one tf.Example per movie (MovieLens), item (Taobao: the item's
  most frequent category) or article (MIND's news.tsv).

The features are listed in `sequence_examples`. Taobao behaviours are all clicks (rating 5)
and each click is followed by `negatives_per_click` sampled items the user never interacted
with (rating 0; the DIN/MFN protocol, `negatives`). MIND impressions give clicked (rating 5)
and shown-not-clicked (rating 0) articles, after the clicks of the user's history column; an
impression is never cut by the split (`sequence_examples.mind_user_examples`).

Events whose item is missing from the catalog are kept in the sequences (Transform maps an
unknown id to the reserved unknown index) and counted, as are malformed rows (with
file:line), Taobao events outside the documented period (kept) and the users, items and
events of each split. The report is written as ``ingest_report.json`` / ``.md`` beside the
splits and as the artifact property ``ingest_report``.

Scale: all the work runs in the component's Beam pipeline (`sequence_beam`): the readers in a
DoFn, GroupByKey per user, sorting and splitting per user on the workers, the catalog as
per-key combines. Nothing is gathered in the executor, so the runner decides the scale: the
pipeline's ``beam_args`` (PipelineConfig, YAML ``beam_args:``) give the DirectRunner locally
and e.g. ``--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp`` or
``--runner=FlinkRunner --flink_master=HOST:8081 --environment_type=LOOPBACK`` for the full
100M-row Taobao file. Each input file is read by one worker (see `sequence_beam`), which must
be able to open the input path.

Users: every user of the source by default; the ``max_users`` source option keeps N of them, the
same N on every run and machine (the N smallest CRC-32 hashes of the user ids,
`sequence_beam.KeepUsers`), dropped in the Beam pipeline right after the read, before the
per-user grouping. A kept user's examples are those of a run over all users (Taobao's sampled
negatives aside: the Taobao catalog is the kept users' items); the report counts the users kept
and dropped.
"""

from __future__ import annotations

import abc
import os
import pathlib
from typing import Any, TextIO

import apache_beam as beam
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.errors import UserError
from components.ingest import mind, movielens, sequence_beam
from components.ingest.example_gen_utils import prepare_examples, write_report
from components.ingest.report import DatasetError, IngestReport
from components.ingest.sequence_examples import NEWS_TAGS, SPLITS

REPORT_PARTS = "_ingest_report_parts.json"
"""The Beam pipeline's report in the artifact directory, read back and removed by the executor."""
DEFAULT_NEGATIVES_PER_CLICK = 1
"""Sampled negatives per Taobao click (DIN and MFN sample one per positive on Taobao)."""
DEFAULT_NEWS_TAGS = NEWS_TAGS[0]
"""MIND articles' tags: their sub-category (every article has one; entities are an option)."""


def find_behavior_file(input_base: str | os.PathLike[str]) -> pathlib.Path:
    """Returns the one `UserBehavior*.csv` (or .csv.gz) of a directory.

    Raises:
        DatasetError: When the directory has none, or several (reading them all could
            count the same events twice, e.g. the full file and a sample of it).
    """
    root = pathlib.Path(input_base)
    if not root.is_dir():
        raise DatasetError(f"Taobao directory {root} does not exist")
    found = sorted([*root.glob("UserBehavior*.csv"), *root.glob("UserBehavior*.csv.gz")])
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DatasetError(
            f"Taobao directory {root} needs exactly one UserBehavior*.csv, found: {names}"
        )
    return found[0]


# --- TFX -----------------------------------------------------------------------------------


class _SequenceExecutor(base_beam_executor.BaseBeamExecutor):
    """Runs the source's Beam graph (`sequence_beam`) and writes the report it collected."""

    @abc.abstractmethod
    def _add_graph(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any], uri: str, report_path: str) -> None:
        """Checks the source named by `exec_properties` and adds its ExampleGen to `pipeline`."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        examples = prepare_examples(output_dict, SPLITS)
        report_path = os.path.join(examples.uri, REPORT_PARTS)
        # A DatasetError raised while the graph is built leaves the `with` before Beam runs.
        with self._make_beam_pipeline() as pipeline:
            self._add_graph(pipeline, exec_properties, examples.uri, report_path)
        write_report(sequence_beam.read_report_parts(report_path), examples)


def _max_users(exec_properties: dict[str, Any]) -> int | None:
    """The `max_users` execution property (None, or absent in an older pipeline: every user)."""
    value = exec_properties.get("max_users")
    return None if value is None else int(value)


def _check_first_row(read: sequence_beam.Reader, path: str | os.PathLike[str]) -> None:
    """Reads the first row of a file now, so a missing file or a wrong header is a
    DatasetError naming the file before Beam starts, not a failure inside a worker."""
    next(iter(read(str(path), IngestReport())), None)


class MovieLensExecutor(_SequenceExecutor):
    """Executor of MovieLensExampleGen."""

    def _add_graph(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any], uri: str, report_path: str) -> None:
        files = movielens.find_movielens_files(exec_properties["input_base"])
        tags_dir = exec_properties.get("tags_dir") or None
        tags_path = movielens.find_tags_file(tags_dir) if tags_dir else files.tags
        for read, path in ((movielens.read_ratings, files.ratings), (movielens.read_movies, files.movies),
                           (movielens.read_users, files.users), (movielens.read_tags, tags_path)):
            if path is not None:
                _check_first_row(read, path)
        sequence_beam.movielens_graph(pipeline, files, str(tags_path) if tags_path else None, uri, report_path,
                                      _max_users(exec_properties))


class TaobaoExecutor(_SequenceExecutor):
    """Executor of TaobaoExampleGen."""

    def _add_graph(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any], uri: str, report_path: str) -> None:
        path = find_behavior_file(exec_properties["input_base"])
        negatives_per_click = exec_properties.get("negatives_per_click")
        if negatives_per_click is None:
            negatives_per_click = DEFAULT_NEGATIVES_PER_CLICK
        sequence_beam.taobao_graph(pipeline, str(path), int(negatives_per_click), uri, report_path,
                                   _max_users(exec_properties))


class MindSequenceExecutor(_SequenceExecutor):
    """Executor of MindSequenceExampleGen."""

    def _add_graph(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any], uri: str, report_path: str) -> None:
        files = mind.find_mind_files(exec_properties["input_base"])
        _check_first_row(mind.read_behaviors, files.behaviors)
        _check_first_row(mind.read_news, files.news)
        news_tags = exec_properties.get("news_tags") or DEFAULT_NEWS_TAGS
        sequence_beam.mind_graph(pipeline, files, news_tags, uri, report_path, _max_users(exec_properties))


class MovieLensExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "input_base": component_spec.ExecutionParameter(type=str),
        "tags_dir": component_spec.ExecutionParameter(type=str, optional=True),
        "max_users": component_spec.ExecutionParameter(type=int, optional=True),
    }
    INPUTS: dict = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class TaobaoExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "input_base": component_spec.ExecutionParameter(type=str),
        "negatives_per_click": component_spec.ExecutionParameter(type=int, optional=True),
        "max_users": component_spec.ExecutionParameter(type=int, optional=True),
    }
    INPUTS: dict = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class MindSequenceExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "input_base": component_spec.ExecutionParameter(type=str),
        "news_tags": component_spec.ExecutionParameter(type=str, optional=True),
        "max_users": component_spec.ExecutionParameter(type=int, optional=True),
    }
    INPUTS: dict = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class MovieLensExampleGen(base_beam_component.BaseBeamComponent):
    """ExampleGen for a MovieLens release: per-user rating sequences and the movie catalog."""

    SPEC_CLASS = MovieLensExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(MovieLensExecutor)

    def __init__(self, input_base: str, tags_dir: str | None = None, max_users: int | None = None):
        """Args:
        input_base: A MovieLens release directory (``ratings.dat``/``.csv``, movies, and
            optionally users.dat and tags; any file may be gzipped).
        tags_dir: A directory whose tags file replaces the release's: ml-10m's tags give
            ml-1m movies tags (movie ids are shared across releases), UTPM's protocol.
        max_users: Keep this many users, the same ones on every run (see the module
            docstring); None: every user.
        """
        super().__init__(
            spec=MovieLensExampleGenSpec(
                input_base=input_base,
                tags_dir=tags_dir,
                max_users=max_users,
                examples=types.Channel(type=standard_artifacts.Examples),
            )
        )


class TaobaoExampleGen(base_beam_component.BaseBeamComponent):
    """ExampleGen for Taobao UserBehavior: per-user behaviour sequences with sampled negatives
    and the item catalog."""

    SPEC_CLASS = TaobaoExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(TaobaoExecutor)

    def __init__(self, input_base: str, negatives_per_click: int = DEFAULT_NEGATIVES_PER_CLICK,
                 max_users: int | None = None):
        """Args:
        input_base: A directory holding one ``UserBehavior*.csv`` (or ``.csv.gz``).
        negatives_per_click: Sampled negatives inserted after each click (0: none).
        max_users: Keep this many users, the same ones on every run (their items are the
            catalog; see the module docstring); None: every user.
        """
        super().__init__(
            spec=TaobaoExampleGenSpec(
                input_base=input_base,
                negatives_per_click=negatives_per_click,
                max_users=max_users,
                examples=types.Channel(type=standard_artifacts.Examples),
            )
        )


class MindSequenceExampleGen(base_beam_component.BaseBeamComponent):
    """ExampleGen for MIND-format data as behaviour sequences (CTR and tags families): per-user
    clicked and shown-not-clicked articles, and the news catalog."""

    SPEC_CLASS = MindSequenceExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(MindSequenceExecutor)

    def __init__(self, input_base: str, news_tags: str = "subcategory", max_users: int | None = None):
        """Args:
        input_base: A MIND split directory (``behaviors.tsv``, ``news.tsv``).
        news_tags: What an article's ``tags`` are: ``subcategory`` or ``entities``
            (`sequence_examples.NEWS_TAGS`).
        max_users: Keep this many users, the same ones on every run (see the module
            docstring); None: every user.
        """
        super().__init__(
            spec=MindSequenceExampleGenSpec(
                input_base=input_base,
                news_tags=news_tags,
                max_users=max_users,
                examples=types.Channel(type=standard_artifacts.Examples),
            )
        )


# --- Families --------------------------------------------------------------------------------


def negatives_option(dataset: str, value: str | int | None) -> int:
    """The `negatives_per_click` source option as a count (the default when unset).

    Raises:
        UserError: For a value that is not a non-negative integer, or one set for a source
            other than Taobao (MovieLens has real non-clicks).
    """
    field = "source_options.negatives_per_click"
    if value is None:
        return DEFAULT_NEGATIVES_PER_CLICK
    if dataset != "taobao":
        raise UserError(f"{field}: only Taobao samples negatives; {dataset!r} has its own non-clicks")
    return _whole_number(field, value, 0, "a non-negative integer")


def _whole_number(field: str, value: str | int, minimum: int, what: str) -> int:
    """`value` (an int or its decimal text, as YAML or a flag gives it) as an int ≥ `minimum`.

    Raises:
        UserError: naming `field`, for anything else (`1.5`, `true`, a smaller number).
    """
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = minimum - 1
    if count < minimum or str(value).strip() != str(count):
        raise UserError(f"{field}: {value!r} is not {what}")
    return count


def news_tags_option(dataset: str, value: str | None) -> str:
    """The `news_tags` source option (MIND: what an article's tags are; the default when unset).

    Raises:
        UserError: For a value outside `NEWS_TAGS`, or one set for a source other than MIND.
    """
    field = "source_options.news_tags"
    if value is None:
        return DEFAULT_NEWS_TAGS
    if dataset != "mind":
        raise UserError(f"{field}: only MIND articles have news tags; {dataset!r} has its own tags")
    if value not in NEWS_TAGS:
        raise UserError(f"{field}: {value!r} is not one of {', '.join(NEWS_TAGS)}")
    return value


def max_users_option(value: str | int | None) -> int | None:
    """The `max_users` source option as a count (None when unset: every user).

    Raises:
        UserError: For a value that is not a positive integer (`1500` or `"1500"`; not `1.5`,
            `0`, `true`).
    """
    if value is None:
        return None
    return _whole_number("source_options.max_users", value, 1, "a positive integer (a number of users)")


def _check_options(dataset: str, tags_dir: str | None, negatives_per_click: str | int | None,
                   news_tags: str | None, max_users: str | int | None) -> tuple[int, str, int | None]:
    """The checked source options: (negatives per click, news tags, max users)."""
    if tags_dir and dataset == "mind":
        raise UserError("source_options.tags_dir: MIND articles take their tags from news.tsv (see news_tags)")
    return (negatives_option(dataset, negatives_per_click), news_tags_option(dataset, news_tags),
            max_users_option(max_users))


def example_gen(
    dataset: str, data_dir: str, tags_dir: str | None = None, negatives_per_click: str | int | None = None,
    news_tags: str | None = None, max_users: str | int | None = None,
) -> base_beam_component.BaseBeamComponent:
    """The ExampleGen of a behaviour-sequence family (`pipeline/families.py`: CTR, tags).

    `synthetic` data is generated in the ml-latest-small format, so it and `movielens` share
    MovieLensExampleGen; `taobao` reads UserBehavior; `mind` reads a MIND directory.
    `tags_dir`: a directory whose tags file replaces the release's (ml-10m's tags for ml-1m
    ratings); `negatives_per_click`: Taobao's sampled negatives per click (`negatives_option`);
    `news_tags`: MIND's article tags (`news_tags_option`); `max_users`: keep that many users
    (`max_users_option`; any source).
    """
    count, tags, users = _check_options(dataset, tags_dir, negatives_per_click, news_tags, max_users)
    if dataset == "taobao":
        return TaobaoExampleGen(input_base=data_dir, negatives_per_click=count, max_users=users)
    if dataset == "mind":
        return MindSequenceExampleGen(input_base=data_dir, news_tags=tags, max_users=users)
    return MovieLensExampleGen(input_base=data_dir, tags_dir=tags_dir, max_users=users)


def prepare_data(
    dataset: str,
    data_dir: str,
    synthetic_preset: str,
    out: TextIO,
    tags_dir: str | None = None,
    negatives_per_click: str | int | None = None,
    news_tags: str | None = None,
    max_users: str | int | None = None,
) -> None:
    """Generates the synthetic MovieLens-format set on first use; checks a real directory and
    the source options now, so a mistake is reported before the run starts rather than
    minutes into it. (Synthetic MIND-format data: `usermodel data generate mind`.)"""
    _check_options(dataset, tags_dir, negatives_per_click, news_tags, max_users)
    if dataset == "taobao":
        find_behavior_file(data_dir)
        return
    if dataset == "mind":
        mind.find_mind_files(data_dir)
        return
    if tags_dir:
        movielens.find_tags_file(tags_dir)
    if dataset == "synthetic" and not os.path.exists(os.path.join(data_dir, "ratings.csv")):
        from components.ingest import synthetic

        out.write(f"Generating synthetic MovieLens-format data ({synthetic_preset}) in {data_dir}\n")
        synthetic.generate_movielens(data_dir, synthetic.SyntheticMovieLensConfig.preset(synthetic_preset))
    movielens.find_movielens_files(data_dir)
