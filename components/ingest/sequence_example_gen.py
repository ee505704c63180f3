"""MovieLensExampleGen and TaobaoExampleGen: TFX ExampleGens for user behaviour sequences.

The layout mirrors MindExampleGen's (docs/architecture.md): ids travel in the sequences and
content lives once in a catalog split, so an item's title or tags are never copied per user.
One Examples artifact holds three splits:

* ``train``: one tf.Example per user with the first 80 % of the user's events by time (the
  MovieLens protocol: "each user's first 80 % of ratings as history"; `splits.
  split_user_sequences` decides, stably, so same-second events keep file order).
* ``eval``: the same features over the user's remaining events, plus the user's train events
  again as ``history_<feature>`` (``history_item_ids``, ``history_timestamps``, ...), so one
  eval example is everything a model and TFMA need to score that user's later events against
  the history before them (the Evaluator reads raw eval examples one at a time). Every train
  event of a user precedes (or ties with) every eval event; a user with one event has no eval
  example.
* ``items``: the catalog, one tf.Example per movie (MovieLens) or item (Taobao).

Sequence features: ``user_id`` (int64), ``item_ids`` and ``timestamps`` (int64 lists, oldest
first) and per source MovieLens ``ratings`` (float list) plus, for ml-1m, the user fields
``gender`` (bytes), ``age``, ``occupation`` (int64) and ``zip`` (bytes); Taobao
``category_ids`` (int64 list) and ``behaviors`` (bytes list: pv, cart, fav, buy).
Catalog features: MovieLens ``item_id``, ``title``, ``genres`` (bytes list), ``year`` (int64,
absent when the title has none) and ``tags`` (the distinct tags applied to the movie, most
applied first so that a model keeping N tags keeps the most agreed ones); Taobao ``item_id``
and ``category_id``.

Events whose item is missing from the catalog are kept in the sequences (Transform maps an
unknown id to the reserved unknown index) and counted, as are malformed rows (with
file:line), Taobao events outside the documented period (kept) and the users, items and
events of each split. The report is written as ``ingest_report.json`` / ``.md`` beside the
splits and as the artifact property ``ingest_report``.

Scale: the files are parsed and split per user in the executor process with the readers of
`components.ingest.movielens` / `taobao`, because per-user sorting needs all of a user's
events and the supported sources are at most tens of millions of rows (ml-25m: 25M ratings).
That costs up to about 0.5 KB of executor memory per event (measured on ml-1m and the Taobao
sample), so the full 100M-row Taobao file needs a machine with tens of GB. The examples are
then staged to files in the artifact directory and Beam writes the splits from them
(`example_gen_utils.write_tables`).
"""

from __future__ import annotations

import abc
import collections
import os
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO, TypeVar

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.ingest import movielens, splits, taobao
from components.ingest.example_gen_utils import (
    bytes_feature,
    float_feature,
    int64_feature,
    make_example,
    prepare_examples,
    write_report,
    write_tables,
)
from components.ingest.report import DatasetError, IngestReport

TRAIN, EVAL, ITEMS = "train", "eval", "items"
EVENT_FEATURES = ("item_ids", "timestamps", "ratings", "category_ids", "behaviors")
"""Per-event features of a sequence example; eval examples repeat the train ones as `history_*`."""
HISTORY_PREFIX = "history_"
SPLITS = (TRAIN, EVAL, ITEMS)
TRAIN_FRACTION = 0.8

USERS = "users"
ITEMS_IN_CATALOG = "items in the catalog"
TRAIN_EVENTS = "train events"
EVAL_EVENTS = "eval events"
USERS_WITHOUT_EVAL = "users with a single event (train only)"
TAGGED_MOVIES = "movies with tags"
TAGS_WITHOUT_MOVIE = "tag applications on movies missing from the movies file (dropped)"
USERS_WITHOUT_PROFILE = "rating users missing from users.dat (no user fields)"
ITEMS_IN_SEVERAL_CATEGORIES = "items seen in several categories (most frequent kept)"

_E = TypeVar("_E", movielens.Rating, taobao.Behavior)
Tables = dict[str, list[tf.train.Example]]


def sequence_splits(
    events: Iterable[_E],
    to_example: Callable[[int, Sequence[_E]], tf.train.Example],
    report: IngestReport,
) -> tuple[list[tf.train.Example], list[tf.train.Example]]:
    """Groups events by user, splits each user's by time and builds the train/eval examples.

    Args:
        events: Events with `user_id` and `time`, in file order.
        to_example: Builds a user's example from the user id and events (oldest first).
        report: Receives the user and event counts of each split.
    """
    by_user: dict[int, list[_E]] = collections.defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    split = splits.split_user_sequences(by_user, TRAIN_FRACTION)
    report.count(USERS, len(split.train))
    report.count(USERS_WITHOUT_EVAL, len(split.train) - len(split.eval))
    report.count(TRAIN_EVENTS, sum(map(len, split.train.values())))
    report.count(EVAL_EVENTS, sum(map(len, split.eval.values())))
    train = {user: to_example(user, user_events) for user, user_events in split.train.items()}
    eval_ = [with_history(to_example(user, user_events), train[user]) for user, user_events in split.eval.items()]
    return list(train.values()), eval_


def with_history(example: tf.train.Example, history: tf.train.Example) -> tf.train.Example:
    """`example` (a user's eval events) plus the per-event features of `history` (the same
    user's train events) under `history_<name>`."""
    merged = tf.train.Example()
    merged.CopyFrom(example)
    for name in EVENT_FEATURES:
        if name in history.features.feature:
            merged.features.feature[HISTORY_PREFIX + name].CopyFrom(history.features.feature[name])
    return merged


# --- MovieLens -----------------------------------------------------------------------------


def rating_sequence_example(
    user_id: int, ratings: Sequence[movielens.Rating], user: movielens.User | None
) -> tf.train.Example:
    """Serializes a user's ratings (oldest first) and, for ml-1m, the user's fields."""
    features = {
        "user_id": int64_feature([user_id]),
        "item_ids": int64_feature([r.item_id for r in ratings]),
        "timestamps": int64_feature([r.time for r in ratings]),
        "ratings": float_feature([r.rating for r in ratings]),
    }
    if user is not None:
        features |= {
            "gender": bytes_feature([user.gender]),
            "age": int64_feature([user.age]),
            "occupation": int64_feature([user.occupation]),
            "zip": bytes_feature([user.zip]),
        }
    return make_example(features)


def movie_example(movie: movielens.Movie, tags: Sequence[str]) -> tf.train.Example:
    """Serializes a movie; `genres` and `tags` are written even when empty, `year` is not."""
    features = {
        "item_id": int64_feature([movie.item_id]),
        "title": bytes_feature([movie.title]),
        "genres": bytes_feature(movie.genres),
        "tags": bytes_feature(tags),
    }
    if movie.year is not None:
        features["year"] = int64_feature([movie.year])
    return make_example(features)


def movie_tags(
    applications: Iterable[movielens.TagApplication],
    movies: Mapping[int, movielens.Movie],
    report: IngestReport,
) -> dict[int, list[str]]:
    """Returns each catalog movie's distinct tags, most applied first (ties alphabetical).

    Applications on movies outside `movies` are dropped and counted: with ml-10m tags for
    ml-1m ratings most of them are on movies that ml-1m does not have.
    """
    counts: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    dropped = 0
    for application in applications:
        if application.item_id in movies:
            counts[application.item_id][application.tag] += 1
        else:
            dropped += 1
    report.count(TAGS_WITHOUT_MOVIE, dropped)
    report.count(TAGGED_MOVIES, len(counts))
    return {
        item_id: sorted(tag_counts, key=lambda tag: (-tag_counts[tag], tag))
        for item_id, tag_counts in counts.items()
    }


def movielens_tables(input_base: str, tags_dir: str | None, report: IngestReport) -> Tables:
    """Reads a MovieLens release and returns the examples of each split.

    Args:
        input_base: The release directory (ml-1m, ml-latest-small, ...).
        tags_dir: A directory whose tags file replaces the release's, e.g. ml-10m's for
            ml-1m, which has none.
        report: Receives the readers' counts and this function's counters.
    """
    data = movielens.load_movielens(input_base, report, tags_dir)
    if data.users:
        rating_users = {r.user_id for r in data.ratings}
        report.count(USERS_WITHOUT_PROFILE, len(rating_users - data.users.keys()))

    def to_example(user_id: int, ratings: Sequence[movielens.Rating]) -> tf.train.Example:
        return rating_sequence_example(user_id, ratings, data.users.get(user_id))

    train, eval_ = sequence_splits(data.ratings, to_example, report)
    tags = movie_tags(data.tags, data.movies, report)
    report.count(ITEMS_IN_CATALOG, len(data.movies))
    items = [movie_example(movie, tags.get(item_id, ())) for item_id, movie in data.movies.items()]
    return {TRAIN: train, EVAL: eval_, ITEMS: items}


# --- Taobao --------------------------------------------------------------------------------


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


def behavior_sequence_example(user_id: int, events: Sequence[taobao.Behavior]) -> tf.train.Example:
    """Serializes a user's behaviours (oldest first)."""
    return make_example(
        {
            "user_id": int64_feature([user_id]),
            "item_ids": int64_feature([e.item_id for e in events]),
            "timestamps": int64_feature([e.time for e in events]),
            "category_ids": int64_feature([e.category_id for e in events]),
            "behaviors": bytes_feature([e.behavior for e in events]),
        }
    )


def item_categories(events: Iterable[taobao.Behavior], report: IngestReport) -> dict[int, int]:
    """Returns each item's category: the one most of its events carry, the first on a tie.

    The data has one category per item almost everywhere; the few items logged under two
    categories get one catalog row (counted), while their events keep what was logged.
    """
    counts = collections.Counter((e.item_id, e.category_id) for e in events)
    categories: dict[int, int] = {}
    best: dict[int, int] = {}
    for (item_id, category_id), n in counts.items():
        if n > best.get(item_id, 0):
            categories[item_id], best[item_id] = category_id, n
    pairs_per_item = collections.Counter(item_id for item_id, _ in counts)
    report.count(ITEMS_IN_SEVERAL_CATEGORIES, sum(n > 1 for n in pairs_per_item.values()))
    return categories


def taobao_item_example(item_id: int, category_id: int) -> tf.train.Example:
    """Serializes one catalog item."""
    return make_example(
        {"item_id": int64_feature([item_id]), "category_id": int64_feature([category_id])}
    )


def taobao_tables(input_base: str, report: IngestReport) -> Tables:
    """Reads a Taobao UserBehavior directory and returns the examples of each split."""
    events = list(taobao.read_behaviors(find_behavior_file(input_base), report))
    train, eval_ = sequence_splits(events, behavior_sequence_example, report)
    categories = item_categories(events, report)
    report.count(ITEMS_IN_CATALOG, len(categories))
    items = [taobao_item_example(item, category) for item, category in categories.items()]
    return {TRAIN: train, EVAL: eval_, ITEMS: items}


# --- TFX -----------------------------------------------------------------------------------


class _SequenceExecutor(base_beam_executor.BaseBeamExecutor):
    """Builds the split tables in process, writes them with Beam and writes the report."""

    @abc.abstractmethod
    def _tables(self, exec_properties: dict[str, Any], report: IngestReport) -> Tables:
        """Reads the source named by `exec_properties` and returns each split's examples."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        examples = prepare_examples(output_dict, SPLITS)
        report = IngestReport()
        tables = self._tables(exec_properties, report)
        write_tables(self._make_beam_pipeline, examples.uri, tables)
        write_report(report, examples)


class MovieLensExecutor(_SequenceExecutor):
    """Executor of MovieLensExampleGen."""

    def _tables(self, exec_properties: dict[str, Any], report: IngestReport) -> Tables:
        tags_dir = exec_properties.get("tags_dir") or None
        return movielens_tables(exec_properties["input_base"], tags_dir, report)


class TaobaoExecutor(_SequenceExecutor):
    """Executor of TaobaoExampleGen."""

    def _tables(self, exec_properties: dict[str, Any], report: IngestReport) -> Tables:
        return taobao_tables(exec_properties["input_base"], report)


class MovieLensExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        "input_base": component_spec.ExecutionParameter(type=str),
        "tags_dir": component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS: dict = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class TaobaoExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {"input_base": component_spec.ExecutionParameter(type=str)}
    INPUTS: dict = {}
    OUTPUTS = {"examples": component_spec.ChannelParameter(type=standard_artifacts.Examples)}


class MovieLensExampleGen(base_beam_component.BaseBeamComponent):
    """ExampleGen for a MovieLens release: per-user rating sequences and the movie catalog."""

    SPEC_CLASS = MovieLensExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(MovieLensExecutor)

    def __init__(self, input_base: str, tags_dir: str | None = None):
        """Args:
        input_base: A MovieLens release directory (``ratings.dat``/``.csv``, movies, and
            optionally users.dat and tags; any file may be gzipped).
        tags_dir: A directory whose tags file replaces the release's: ml-10m's tags give
            ml-1m movies tags (movie ids are shared across releases), UTPM's protocol.
        """
        super().__init__(
            spec=MovieLensExampleGenSpec(
                input_base=input_base,
                tags_dir=tags_dir,
                examples=types.Channel(type=standard_artifacts.Examples),
            )
        )


class TaobaoExampleGen(base_beam_component.BaseBeamComponent):
    """ExampleGen for Taobao UserBehavior: per-user behaviour sequences and the item catalog."""

    SPEC_CLASS = TaobaoExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(TaobaoExecutor)

    def __init__(self, input_base: str):
        """Args:
        input_base: A directory holding one ``UserBehavior*.csv`` (or ``.csv.gz``).
        """
        super().__init__(
            spec=TaobaoExampleGenSpec(
                input_base=input_base, examples=types.Channel(type=standard_artifacts.Examples)
            )
        )


# --- Families --------------------------------------------------------------------------------


def example_gen(dataset: str, data_dir: str, tags_dir: str | None = None) -> base_beam_component.BaseBeamComponent:
    """The ExampleGen of a behaviour-sequence family (`pipeline/families.py`: CTR, tags).

    `synthetic` data is generated in the ml-latest-small format, so it and `movielens` share
    MovieLensExampleGen; `taobao` reads UserBehavior. `tags_dir`: a directory whose tags file
    replaces the release's (ml-10m's tags for ml-1m ratings).
    """
    if dataset == "taobao":
        return TaobaoExampleGen(input_base=data_dir)
    return MovieLensExampleGen(input_base=data_dir, tags_dir=tags_dir)


def prepare_data(dataset: str, data_dir: str, synthetic_preset: str, out: TextIO, tags_dir: str | None = None) -> None:
    """Generates the synthetic MovieLens-format set on first use; checks a real directory now,
    so a missing file is reported before the run starts rather than minutes into it."""
    if dataset == "taobao":
        find_behavior_file(data_dir)
        return
    if tags_dir:
        movielens.find_tags_file(tags_dir)
    if dataset == "synthetic" and not os.path.exists(os.path.join(data_dir, "ratings.csv")):
        from components.ingest import synthetic

        out.write(f"Generating synthetic MovieLens-format data ({synthetic_preset}) in {data_dir}\n")
        synthetic.generate_movielens(data_dir, synthetic.SyntheticMovieLensConfig.preset(synthetic_preset))
    movielens.find_movielens_files(data_dir)
