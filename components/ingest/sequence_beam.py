"""The Beam graph of the sequence ExampleGen: read, key by user, group, sort, split, build.

Nothing is held in the executor's memory: the readers run inside a DoFn, events are keyed by
user and grouped with GroupByKey (CoGroupByKey with the ml-1m profiles), each user's events are
sorted by (time, file position) and split on the worker that holds them, and the catalog is
built by per-key combines over the same events. The runner is whatever the pipeline's
``beam_pipeline_args`` say (DirectRunner locally; ``--runner=DataflowRunner --project=…
--region=… --temp_location=gs://…`` or ``--runner=FlinkRunner --flink_master=HOST:PORT`` for
the full 100M-row Taobao file), so the same code scales by flags.

Each source file is read by one worker (line numbers for the report need a sequential read,
and a .gz file cannot be split); everything after the read is keyed and spread over the
workers by the grouping itself. Row problems and counts travel as a side output of (name, n) pairs, summed by a
combine, plus one `IngestReport` per file read; `write_report_parts` merges them into one JSON
file that the executor turns back into the ingest report.

With a `max_users` source option, `KeepUsers` drops every other user's rows right after the read,
so everything downstream (the per-user grouping, Taobao's catalog and negatives, the counters)
sees the data as if the file held only the kept users.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf

from components.ingest import mind, movielens, negatives, taobao
from components.ingest import sequence_examples as ex
from components.ingest.example_gen_utils import WriteSplit
from components.ingest.report import IngestReport

COUNTS = "counts"
REPORTS = "reports"
USERS_KEPT = "users kept by max_users"
USERS_DROPPED = "users dropped by max_users (no examples)"
Reader = Callable[[str, IngestReport], Iterator[Any]]


class _ReadFile(beam.DoFn):
    """Runs an ingest reader (`movielens.read_*`, `taobao.read_behaviors`, `mind.read_*`) over one file.

    Yields (position, row) with the row's position among the file's kept rows, which breaks
    time ties in file order after grouping, and then the reader's report (file counts,
    malformed lines with file:line) as `(order, report)` on the `REPORTS` output.
    """

    def __init__(self, read: Reader):
        self._read = read

    def process(self, element: tuple[int, str]) -> Iterator[Any]:
        order, path = element
        report = IngestReport()
        yield from enumerate(self._read(path, report))
        yield beam.pvalue.TaggedOutput(REPORTS, (order, report))


class ReadRows(beam.PTransform):
    """Reads one file with an ingest reader: (position, row) pairs and the reader's report.

    No reshuffle follows the read: every consumer of the rows keys them and groups or combines
    right away (GroupByKey, CombinePerKey), which already spreads them over the workers, so a
    reshuffle would only move every row one more time.
    """

    def __init__(self, read: Reader, path: str, order: int):
        super().__init__()
        self._read, self._path, self._order = read, path, order

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        read = (
            pbegin
            | "File" >> beam.Create([(self._order, str(self._path))])
            | "Read" >> beam.ParDo(_ReadFile(self._read)).with_outputs(REPORTS, main="rows")
        )
        return read.rows, read[REPORTS]


def _emit(train: tf.train.Example, eval_: tf.train.Example | None, counts: ex.Counts) -> Iterator[Any]:
    """A user's examples (serialized) and counts on the outputs of the user DoFns."""
    yield beam.pvalue.TaggedOutput(ex.TRAIN, train.SerializeToString())
    if eval_ is not None:
        yield beam.pvalue.TaggedOutput(ex.EVAL, eval_.SerializeToString())
    yield from _counts(counts)


def _counts(counts: ex.Counts) -> Iterator[Any]:
    for name, n in counts.items():
        yield beam.pvalue.TaggedOutput(COUNTS, (name, n))


def _by_position(pairs: Sequence[tuple[int, Any]]) -> Any:
    """The row of the (position, row) pair that came first in its file."""
    return min(pairs, key=lambda pair: pair[0])[1]


def user_rank(user_id: int | str) -> tuple[int, int | str]:
    """A user's place in the `max_users` order: the CRC-32 of the id's text, then the id.

    CRC-32 rather than `hash()`: Python salts string hashes per process, and the subset must be
    the same on every worker, run and machine. A hash rather than the id itself, so the subset is
    not "the oldest accounts" (ids often follow sign-up order) but spread over the id range; the
    id breaks the (rare) hash ties, so the order is total.
    """
    return zlib.crc32(str(user_id).encode("utf-8")), user_id


class KeepUsers(beam.PTransform):
    """Keeps the (position, row) pairs of the `max_users` users of smallest `user_rank`.

    The distinct user ids of the rows are ranked and the smallest `max_users` kept by a combine
    (`Top.Smallest`, a bounded heap per worker, merged), which reaches the filter as a side input
    (a set of at most `max_users` ids); nothing else is gathered. Returns the kept rows and
    (counter, n) pairs saying how many users were kept and dropped.
    """

    def __init__(self, max_users: int, user_of: Callable[[Any], int | str]):
        super().__init__()
        self._max_users, self._user_of = max_users, user_of

    def expand(self, rows: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        user_of = self._user_of
        users = rows | "UserIds" >> beam.Map(lambda pr: user_of(pr[1])) | "DistinctUsers" >> beam.Distinct()
        kept = beam.pvalue.AsSingleton(
            users
            | "Rank" >> beam.Map(user_rank)
            | "Smallest" >> beam.combiners.Top.Smallest(self._max_users)
            | "KeptIds" >> beam.Map(lambda ranked: {user for _, user in ranked})
        )
        kept_rows = rows | "KeepRows" >> beam.Filter(lambda pr, keep: user_of(pr[1]) in keep, kept)
        counts = (
            users
            | "CountUsers" >> beam.combiners.Count.Globally()
            | "KeptAndDropped" >> beam.FlatMap(lambda total, keep: [(USERS_KEPT, len(keep)),
                                                                     (USERS_DROPPED, total - len(keep))], kept)
        )
        return kept_rows, counts


def _keep_users(rows: beam.PCollection, max_users: int | None,
                user_of: Callable[[Any], int | str]) -> tuple[beam.PCollection, list[beam.PCollection], list[str]]:
    """`rows` through `KeepUsers` when `max_users` is set: (rows, its counts, its counters to seed);
    unset, the rows as they are and nothing more, so the graph and report are unchanged."""
    if max_users is None:
        return rows, [], []
    kept, counts = rows | "MaxUsers" >> KeepUsers(max_users, user_of)
    return kept, [counts], [USERS_KEPT, USERS_DROPPED]


# --- MovieLens -----------------------------------------------------------------------------


def _movielens_user(element: tuple[int, dict[str, list]], has_profiles: bool) -> Iterator[Any]:
    """One user's rating sequences, with the user's ml-1m fields when users.dat has them."""
    user_id, grouped = element
    profiles = grouped["profiles"]
    if len(profiles) > 1:
        yield from _counts({movielens.DUPLICATE_USERS: len(profiles) - 1})
    if grouped["events"]:  # a users.dat row without ratings gives no sequence
        profile = _by_position(profiles) if profiles else None
        ratings = list(ex.sorted_events(grouped["events"]))
        train, eval_, counts = ex.user_examples(ratings, lambda part: ex.rating_sequence_example(user_id, part, profile))
        if has_profiles:
            counts[ex.USERS_WITHOUT_PROFILE] = int(profile is None)
        yield from _emit(train, eval_, counts)


def _movie(element: tuple[int, dict[str, list]], has_tags: bool) -> Iterator[Any]:
    """One movie's catalog row from its movies-file rows, rating count and tag counts."""
    _, grouped = element
    rated = sum(grouped["ratings"])
    tag_counts = grouped["tags"]
    applications = sum(n for _, n in tag_counts)
    if has_tags and not rated:
        yield from _counts({movielens.TAGS_ON_UNRATED: applications})
    if not grouped["movies"]:
        yield from _counts({movielens.RATINGS_WITHOUT_MOVIE: rated, ex.TAGS_WITHOUT_MOVIE: applications})
    else:
        if len(grouped["movies"]) > 1:
            yield from _counts({movielens.DUPLICATE_MOVIES: len(grouped["movies"]) - 1})
        tags = ex.ranked_tags(tag_counts)
        yield from _counts({ex.ITEMS_IN_CATALOG: 1, ex.TAGGED_MOVIES: int(bool(tags))})
        movie = ex.movie_example(_by_position(grouped["movies"]), tags)
        yield beam.pvalue.TaggedOutput(ex.ITEMS, movie.SerializeToString())


def movielens_graph(
    pipeline: beam.Pipeline, files: movielens.MovieLensFiles, tags_path: str | None, uri: str, report_path: str,
    max_users: int | None = None,
) -> None:
    """Adds the MovieLens ExampleGen to `pipeline`: splits under `uri`, report parts at `report_path`.

    Args:
        pipeline: The executor's Beam pipeline.
        files: The release's files (`movielens.find_movielens_files`).
        tags_path: The tags file to use (the release's, or another release's), if any.
        uri: The Examples artifact directory.
        report_path: Where `write_report_parts` writes the report.
        max_users: Keep only this many users' ratings (`KeepUsers`; None: all). The catalog
            is still every movie of the movies file with every tag; its rating counters
            count the kept ratings.
    """
    ratings, rating_report = pipeline | "Ratings" >> ReadRows(movielens.read_ratings, files.ratings, 0)
    ratings, counts, kept_counters = _keep_users(ratings, max_users, lambda rating: rating.user_id)
    movies, movie_report = pipeline | "Movies" >> ReadRows(movielens.read_movies, files.movies, 1)
    reports = [rating_report, movie_report]
    events = ratings | "EventsByUser" >> beam.Map(lambda pr: (pr[1].user_id, (pr[1].time, pr[0], pr[1])))
    profiles = pipeline | "NoProfiles" >> beam.Create([])
    if files.users is not None:
        users, user_report = pipeline | "Users" >> ReadRows(movielens.read_users, files.users, 2)
        profiles = users | "ProfilesByUser" >> beam.Map(lambda pr: (pr[1].user_id, pr))
        reports.append(user_report)
    users_out = (
        {"events": events, "profiles": profiles}
        | "GroupByUser" >> beam.CoGroupByKey()
        | "UserSequences" >> beam.FlatMap(_movielens_user, files.users is not None).with_outputs(ex.TRAIN, ex.EVAL, COUNTS)
    )
    tag_counts = pipeline | "NoTags" >> beam.Create([])
    if tags_path is not None:
        tags, tag_report = pipeline | "Tags" >> ReadRows(movielens.read_tags, tags_path, 3)
        tag_counts = (
            tags
            | "TagPairs" >> beam.Map(lambda pr: ((pr[1].item_id, pr[1].tag), 1))
            | "CountTags" >> beam.CombinePerKey(sum)
            | "TagsByItem" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1])))
        )
        reports.append(tag_report)
    items_out = (
        {
            "movies": movies | "MoviesById" >> beam.Map(lambda pr: (pr[1].item_id, pr)),
            "ratings": ratings | "RatedItems" >> beam.Map(lambda pr: (pr[1].item_id, 1)) | "CountRatings" >> beam.CombinePerKey(sum),
            "tags": tag_counts,
        }
        | "GroupByItem" >> beam.CoGroupByKey()
        | "Catalog" >> beam.FlatMap(_movie, tags_path is not None).with_outputs(ex.ITEMS, COUNTS)
    )
    for split, records in ((ex.TRAIN, users_out[ex.TRAIN]), (ex.EVAL, users_out[ex.EVAL]), (ex.ITEMS, items_out[ex.ITEMS])):
        records | f"Write[{split}]" >> WriteSplit(uri, split)
    counts += [users_out[COUNTS], items_out[COUNTS]]
    seeded = [ex.USERS, ex.USERS_WITHOUT_EVAL, ex.TRAIN_EVENTS, ex.EVAL_EVENTS, ex.ITEMS_IN_CATALOG,
              movielens.RATINGS_WITHOUT_MOVIE, ex.TAGGED_MOVIES, ex.TAGS_WITHOUT_MOVIE]
    seeded += [ex.USERS_WITHOUT_PROFILE] if files.users is not None else []
    seeded += [movielens.TAGS_ON_UNRATED] if tags_path is not None else []
    write_report_parts(pipeline, reports, counts, seeded + kept_counters, report_path)


# --- Taobao --------------------------------------------------------------------------------


class _CatalogOf(beam.CombineFn):
    """Collects (item, category) pairs into one `negatives.Catalog` (the negatives' side input)."""

    def create_accumulator(self) -> list[tuple[int, int]]:
        return []

    def add_input(self, accumulator: list[tuple[int, int]], pair: tuple[int, int]) -> list[tuple[int, int]]:
        accumulator.append(pair)
        return accumulator

    def merge_accumulators(self, accumulators: Any) -> list[tuple[int, int]]:
        return [pair for accumulator in accumulators for pair in accumulator]

    def extract_output(self, accumulator: list[tuple[int, int]]) -> negatives.Catalog:
        return negatives.Catalog.from_pairs(accumulator)


def _taobao_user(element: tuple[int, list], catalog: negatives.Catalog | None, negatives_per_click: int) -> Iterator[Any]:
    user_id, events = element
    behaviors = list(ex.sorted_events(events))
    yield from _emit(*ex.taobao_user_examples(user_id, behaviors, catalog, negatives_per_click))


def _taobao_item(element: tuple[int, tuple[int, int, int, int]]) -> Iterator[Any]:
    item_id, (category, _, _, distinct) = element
    yield from _counts({ex.ITEMS_IN_CATALOG: 1, ex.ITEMS_IN_SEVERAL_CATEGORIES: int(distinct > 1)})
    yield beam.pvalue.TaggedOutput(ex.ITEMS, ex.taobao_item_example(item_id, category).SerializeToString())


def taobao_graph(pipeline: beam.Pipeline, path: str, negatives_per_click: int, uri: str, report_path: str,
                 max_users: int | None = None) -> None:
    """Adds the Taobao ExampleGen to `pipeline` (see `movielens_graph` for the arguments).

    The catalog is each item's most frequent category: events are counted per (item,
    category) with their first file position, then one category is kept per item
    (`sequence_examples.most_frequent_category`). With `negatives_per_click` > 0 the catalog
    also reaches every user worker as a side input, to draw the negatives from.

    With `max_users` the catalog (the items split and the negatives' catalog alike) is built
    from the kept users' events only, as if the file held only them: an item nobody in the
    subset touched would otherwise appear in the data only as a sampled negative, a label a
    model can learn from the id alone, and would widen the vocabularies for nothing. So the
    kept users' clicks equal the full run's, but their negatives (drawn from a smaller
    catalog) and an item's most frequent category may differ.
    """
    rows, read_report = pipeline | "Behaviors" >> ReadRows(taobao.read_behaviors, path, 0)
    rows, kept_counts, kept_counters = _keep_users(rows, max_users, lambda behavior: behavior.user_id)
    categories = (
        rows
        | "ItemCategoryPairs" >> beam.Map(lambda pr: ((pr[1].item_id, pr[1].category_id), (1, pr[0])))
        | "CountPairs" >> beam.CombinePerKey(ex.count_and_first)
        | "PairsByItem" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1][0], kv[1][1], 1)))
        | "MostFrequentCategory" >> beam.CombinePerKey(ex.most_frequent_category)
    )
    items_out = categories | "Catalog" >> beam.FlatMap(_taobao_item).with_outputs(ex.ITEMS, COUNTS)
    catalog = None
    if negatives_per_click > 0:
        catalog = beam.pvalue.AsSingleton(
            categories
            | "CatalogPairs" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
            | "CatalogTable" >> beam.CombineGlobally(_CatalogOf())
        )
    users_out = (
        rows
        | "EventsByUser" >> beam.Map(lambda pr: (pr[1].user_id, (pr[1].time, pr[0], pr[1])))
        | "GroupByUser" >> beam.GroupByKey()
        | "UserSequences" >> beam.FlatMap(_taobao_user, catalog, negatives_per_click).with_outputs(ex.TRAIN, ex.EVAL, COUNTS)
    )
    for split, records in ((ex.TRAIN, users_out[ex.TRAIN]), (ex.EVAL, users_out[ex.EVAL]), (ex.ITEMS, items_out[ex.ITEMS])):
        records | f"Write[{split}]" >> WriteSplit(uri, split)
    seeded = [ex.USERS, ex.USERS_WITHOUT_EVAL, ex.TRAIN_EVENTS, ex.EVAL_EVENTS, ex.ITEMS_IN_CATALOG,
              ex.ITEMS_IN_SEVERAL_CATEGORIES]
    seeded += [ex.SAMPLED_NEGATIVES, ex.CLICKS_WITHOUT_NEGATIVES] if negatives_per_click > 0 else []
    write_report_parts(pipeline, [read_report], [users_out[COUNTS], items_out[COUNTS], *kept_counts],
                       seeded + kept_counters, report_path)


# --- MIND ----------------------------------------------------------------------------------


def _news_item(element: tuple[int, list[tuple[int, mind.NewsArticle]]], news_tags: str) -> Iterator[Any]:
    """One catalog row per numeric news id: the first news.tsv row of that id."""
    _, rows = element
    yield from _counts({ex.ITEMS_IN_CATALOG: 1, ex.NEWS_ID_COLLISIONS: len(rows) - 1})
    yield beam.pvalue.TaggedOutput(ex.ITEMS, ex.news_item_example(_by_position(rows), news_tags).SerializeToString())


def _mind_user(element: tuple[str, list[tuple[int, mind.Impression]]], known: set[int]) -> Iterator[Any]:
    user, impressions = element
    train, eval_, counts = ex.mind_user_examples(user, impressions, known)
    if train is None:
        yield from _counts(counts)
    else:
        yield from _emit(train, eval_, counts)


def mind_graph(pipeline: beam.Pipeline, files: mind.MindFiles, news_tags: str, uri: str, report_path: str,
               max_users: int | None = None) -> None:
    """Adds the MIND ExampleGen to `pipeline` (see `movielens_graph` for the arguments).

    Impressions are grouped per user (`sequence_examples.mind_user_examples` builds the
    sequences); the catalog is one row per numeric news id (`news_tags`: what its ``tags``
    are). The numeric ids of the catalog reach the user workers as a side input (a set: 161k
    ints for MIND-large), so ids missing from news.tsv are counted without a join. `max_users`
    keeps that many of behaviors.tsv's users (a kept user without usable events still gives no
    example); the catalog is all of news.tsv either way.
    """
    impressions, behavior_report = pipeline | "Behaviors" >> ReadRows(mind.read_behaviors, str(files.behaviors), 0)
    impressions, kept_counts, kept_counters = _keep_users(impressions, max_users, lambda impression: impression.user_id)
    news, news_report = pipeline | "News" >> ReadRows(mind.read_news, str(files.news), 1)
    by_id = (
        news
        | "NewsById" >> beam.Map(lambda pr: (ex.mind_numeric_id(pr[1].news_id), pr))
        | "GroupByNews" >> beam.GroupByKey()
    )
    items_out = by_id | "Catalog" >> beam.FlatMap(_news_item, news_tags).with_outputs(ex.ITEMS, COUNTS)
    known = beam.pvalue.AsSingleton(by_id | "NewsIds" >> beam.Keys() | "KnownIds" >> beam.combiners.ToSet())
    users_out = (
        impressions
        | "ImpressionsByUser" >> beam.Map(lambda pr: (pr[1].user_id, pr))
        | "GroupByUser" >> beam.GroupByKey()
        | "UserSequences" >> beam.FlatMap(_mind_user, known).with_outputs(ex.TRAIN, ex.EVAL, COUNTS)
    )
    for split, records in ((ex.TRAIN, users_out[ex.TRAIN]), (ex.EVAL, users_out[ex.EVAL]), (ex.ITEMS, items_out[ex.ITEMS])):
        records | f"Write[{split}]" >> WriteSplit(uri, split)
    seeded = [ex.USERS, ex.USERS_WITHOUT_EVAL_IMPRESSION, ex.USERS_WITHOUT_EVENTS, ex.TRAIN_EVENTS, ex.EVAL_EVENTS,
              ex.HISTORY_CLICKS, ex.HISTORY_CLICKS_MISSING, ex.DUPLICATE_HISTORY_CLICKS, ex.LATER_HISTORY_IDS,
              ex.SHOWN_ARTICLES, ex.SHOWN_CLICKS, ex.SHOWN_ARTICLES_MISSING, ex.UNLABELLED_ARTICLES,
              ex.ITEMS_IN_CATALOG, ex.NEWS_ID_COLLISIONS]
    write_report_parts(pipeline, [behavior_report, news_report], [users_out[COUNTS], items_out[COUNTS], *kept_counts],
                       seeded + kept_counters, report_path)


# --- The report ----------------------------------------------------------------------------


def _assemble(_: None, reports: list[tuple[int, IngestReport]], totals: list[tuple[str, int]],
              seeded: Sequence[str]) -> str:
    report = IngestReport()
    for _, part in sorted(reports, key=lambda pair: pair[0]):
        report.merge(part)  # in file order, so the first problem examples are the first files'
    totals_by_name = dict(totals)
    for name in [*seeded, *sorted(totals_by_name.keys() - set(seeded))]:
        report.count(name, totals_by_name.get(name, 0))
    return json.dumps(report.to_dict())


def write_report_parts(pipeline: beam.Pipeline, reports: list[beam.PCollection], counts: list[beam.PCollection],
                       seeded: Sequence[str], path: str) -> None:
    """Writes the readers' reports and the summed counts as one `IngestReport` JSON at `path`.

    Args:
        pipeline: The pipeline.
        reports: PCollections of (file order, `IngestReport`) from `ReadRows`.
        counts: PCollections of (counter name, n).
        seeded: Counters that appear in the report even when nothing added to them (0), first
            and in this order.
        path: The JSON file (`read_report_parts` reads it back).
    """
    merged_reports = reports | "AllReports" >> beam.Flatten()
    totals = counts | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombinePerKey(sum)
    (
        pipeline
        | "ReportSeed" >> beam.Create([None])
        | "AssembleReport" >> beam.Map(_assemble, beam.pvalue.AsList(merged_reports), beam.pvalue.AsList(totals),
                                       list(seeded))
        | "WriteReport" >> beam.io.WriteToText(path, shard_name_template="")
    )


def read_report_parts(path: str) -> IngestReport:
    """The report `write_report_parts` wrote (the file is removed)."""
    with tf.io.gfile.GFile(path) as f:
        report = IngestReport.from_dict(json.loads(f.read()))
    tf.io.gfile.remove(path)
    return report
