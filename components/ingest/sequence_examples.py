"""The tf.Examples of the sequence ExampleGen and the per-user work behind them.

Everything here is plain Python on one user's (or one item's) rows, so the Beam transforms
of `sequence_beam` call it on their workers and the tests call it directly. Layout (see
`sequence_example_gen` for the splits):

Sequence features: ``user_id`` (int64), ``item_ids`` and ``timestamps`` (int64 lists, oldest
first), ``ratings`` (float list) and per source MovieLens's ml-1m user fields ``gender``
(bytes), ``age``, ``occupation`` (int64) and ``zip`` (bytes); Taobao ``category_ids`` (int64
list) and ``behaviors`` (bytes list: pv, cart, fav, buy, or ``none`` for a sampled negative,
`negatives`). Eval examples repeat the user's train events as ``history_<feature>``.
Catalog features: MovieLens ``item_id``, ``title``, ``genres`` (bytes list), ``year`` (int64,
absent when the title has none) and ``tags`` (distinct, most applied first); Taobao
``item_id`` and ``category_id``; MIND ``item_id``, ``title`` (the title's entity ids, then its
words), ``genres`` (category, sub-category) and ``tags`` (sub-category, or entities).
MIND sequences hold clicked (rating 5) and shown-not-clicked (rating 0) articles
(`mind_user_examples`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import tensorflow as tf

from components.ingest import mind, movielens, negatives, splits, taobao
from components.ingest.example_gen_utils import bytes_feature, float_feature, int64_feature, make_example

TRAIN, EVAL, ITEMS = "train", "eval", "items"
SPLITS = (TRAIN, EVAL, ITEMS)
TRAIN_FRACTION = 0.8
EVENT_FEATURES = ("item_ids", "timestamps", "ratings", "category_ids", "behaviors")
"""Per-event features of a sequence example; eval examples repeat the train ones as `history_*`."""
HISTORY_PREFIX = "history_"

USERS = "users"
ITEMS_IN_CATALOG = "items in the catalog"
TRAIN_EVENTS = "train events"
EVAL_EVENTS = "eval events"
USERS_WITHOUT_EVAL = "users with a single event (train only)"
TAGGED_MOVIES = "movies with tags"
TAGS_WITHOUT_MOVIE = "tag applications on movies missing from the movies file (dropped)"
USERS_WITHOUT_PROFILE = "rating users missing from users.dat (no user fields)"
ITEMS_IN_SEVERAL_CATEGORIES = "items seen in several categories (most frequent kept)"
SAMPLED_NEGATIVES = "sampled negatives (rating 0, not counted as events)"
CLICKS_WITHOUT_NEGATIVES = "clicks of users who interacted with every catalog item (no negatives)"

_E = TypeVar("_E")
Counts = dict[str, int]
Event = tuple[int, int, Any]
"""A grouped event: (timestamp, position in the file, row); sorting gives time order with
file order on ties, as a stable sort of the file would."""


def user_examples(
    events: Iterable[_E], build: Callable[[Sequence[_E]], tf.train.Example]
) -> tuple[tf.train.Example, tf.train.Example | None, Counts]:
    """Splits one user's events (sorted oldest first) by time and builds the user's examples.

    Args:
        events: The user's events, oldest first; at least one.
        build: Serializes a run of events (the train part or the eval part).

    Returns:
        The train example, the eval example (with the train events as `history_*`; None for a
        user whose events all went to train) and the report counts of this user.
    """
    train, later = splits.split_sequence(list(events), TRAIN_FRACTION)
    counts = {USERS: 1, USERS_WITHOUT_EVAL: int(not later), TRAIN_EVENTS: len(train), EVAL_EVENTS: len(later)}
    train_example = build(train)
    eval_example = with_history(build(later), train_example) if later else None
    return train_example, eval_example, counts


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


def ranked_tags(tag_counts: Iterable[tuple[str, int]]) -> list[str]:
    """A movie's distinct tags from (tag, applications) pairs: most applied first, ties
    alphabetical, so a model keeping N tags keeps the most agreed ones."""
    return [tag for tag, _ in sorted(tag_counts, key=lambda pair: (-pair[1], pair[0]))]


# --- Taobao --------------------------------------------------------------------------------


def behavior_sequence_example(
    user_id: int, events: Sequence[tuple[taobao.Behavior, np.ndarray]], catalog: negatives.Catalog | None
) -> tf.train.Example:
    """Serializes a user's behaviours (oldest first), each followed by its sampled negatives.

    Args:
        user_id: The user.
        events: Each logged behaviour with the catalog indices of its negatives.
        catalog: Where the negatives' item ids and categories are looked up (None: no negatives).
    """
    item_ids: list[int] = []
    times: list[int] = []
    ratings: list[float] = []
    categories: list[int] = []
    behaviors: list[str] = []
    for event, negative_rows in events:
        item_ids.append(event.item_id)
        categories.append(event.category_id)
        behaviors.append(event.behavior)
        ratings.append(negatives.CLICK_RATING)
        if catalog is not None and len(negative_rows):
            item_ids.extend(catalog.items[negative_rows].tolist())
            categories.extend(catalog.categories[negative_rows].tolist())
            behaviors.extend([negatives.NEGATIVE_BEHAVIOR] * len(negative_rows))
            ratings.extend([negatives.NEGATIVE_RATING] * len(negative_rows))
        times.extend([event.time] * (len(item_ids) - len(times)))
    return make_example(
        {
            "user_id": int64_feature([user_id]),
            "item_ids": int64_feature(item_ids),
            "timestamps": int64_feature(times),
            "ratings": float_feature(ratings),
            "category_ids": int64_feature(categories),
            "behaviors": bytes_feature(behaviors),
        }
    )


def taobao_user_examples(
    user_id: int, behaviors: Sequence[taobao.Behavior], catalog: negatives.Catalog | None, negatives_per_click: int
) -> tuple[tf.train.Example, tf.train.Example | None, Counts]:
    """A Taobao user's examples (`user_examples`) with `negatives_per_click` negatives per
    click (`negatives`). The split is made on the logged behaviours and each click's negatives
    follow it into its split, so the split is the same with or without negatives."""
    wanted = negatives_per_click * len(behaviors) if catalog is not None else 0
    drawn = negatives.sample_negatives(catalog, (b.item_id for b in behaviors), wanted, user_id) if wanted else None
    if drawn is None or len(drawn) == 0:
        rows: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(behaviors)
    else:
        rows = list(drawn.reshape(len(behaviors), negatives_per_click))
    train, eval_, counts = user_examples(
        list(zip(behaviors, rows)), lambda part: behavior_sequence_example(user_id, part, catalog)
    )
    if catalog is not None:
        counts[SAMPLED_NEGATIVES] = 0 if drawn is None else len(drawn)
        counts[CLICKS_WITHOUT_NEGATIVES] = len(behaviors) if wanted and not len(drawn) else 0
    return train, eval_, counts


def taobao_item_example(item_id: int, category_id: int) -> tf.train.Example:
    """Serializes one catalog item."""
    return make_example({"item_id": int64_feature([item_id]), "category_id": int64_feature([category_id])})


def most_frequent_category(values: Iterable[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Combines (category, events, first file position, distinct categories) of one item.

    Keeps the category most of the item's events carry, the first seen on a tie (the data has
    one category per item almost everywhere; the few items logged under two get one catalog
    row, counted, while their events keep what was logged), and adds up the distinct
    categories. Associative and commutative, so Beam may combine partial results in any order.
    """
    best: tuple[int, int, int, int] | None = None
    distinct = 0
    for category, n, first, k in values:
        distinct += k
        if best is None or (n, -first) > (best[1], -best[2]):
            best = (category, n, first, k)
    assert best is not None, "Beam never combines an empty group"
    return best[0], best[1], best[2], distinct


def count_and_first(values: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """Combines (events, first file position) pairs: summed events, earliest position."""
    n, first = 0, None
    for count, position in values:
        n += count
        first = position if first is None else min(first, position)
    assert first is not None, "Beam never combines an empty group"
    return n, first


def sorted_events(grouped: Iterable[Event]) -> Iterator[Any]:
    """The rows of grouped `Event`s in time order (file order on ties)."""
    return (row for _, _, row in sorted(grouped, key=lambda event: event[:2]))


# --- MIND ----------------------------------------------------------------------------------

NEWS_TAGS = ("subcategory", "entities")
"""What an article's ``tags`` are (source option ``news_tags``; UTPM's news setting): its
sub-category (the default: every article has exactly one), or the Wikidata entities of its
title and abstract (distinct, title first; the tags family keeps the first N)."""
MIND_CLICK_RATING = 5.0
"""A clicked article (an impression label 1, or an id of the history column): above both
families' click thresholds (CTR: rating >= 4; tags: >= 3.5)."""
MIND_SKIP_RATING = 0.0
"""A shown article the user did not click (label 0): below both non-click thresholds (CTR: < 4;
tags: <= 1.5)."""

HISTORY_CLICKS = "history clicks (earliest impression's history column)"
HISTORY_CLICKS_MISSING = "history clicks missing from news.tsv (unknown item)"
DUPLICATE_HISTORY_CLICKS = "repeated ids within a history column (kept: each is a click)"
LATER_HISTORY_IDS = "history ids that appear only in a user's later impressions (not used)"
SHOWN_ARTICLES = "shown articles (impression events)"
SHOWN_ARTICLES_MISSING = "shown articles missing from news.tsv (unknown item)"
SHOWN_CLICKS = "shown articles clicked"
UNLABELLED_ARTICLES = "shown articles of unlabelled impressions (dropped)"
USERS_WITHOUT_EVENTS = "users without history or labelled impression (no example)"
USERS_WITHOUT_EVAL_IMPRESSION = "users whose events all went to train (no eval impression)"
NEWS_ID_COLLISIONS = "news rows whose numeric id was seen before (first row kept)"

_MIND_ID = re.compile(r"[A-Za-z]([1-9][0-9]{0,17}|0)")
_HASHED_IDS = 2**62
"""Ids outside MIND's letter-and-number form are hashed into [2**62, 2**63), above every
number id (at most 18 digits, < 2**62), so the two kinds never meet."""

NewsEvent = tuple[str, int, float]
"""One event of a MIND user: (news id, time, rating)."""


def mind_numeric_id(text: str) -> int:
    """A MIND news or user id as the int64 id of the sequence schema.

    Every id of the MIND releases is one letter and a number ("N12345", "U13740"): it becomes
    the number, so ids stay readable (the CTR ``pctr`` signature takes "12345" for N12345).
    Any other string gets a stable 62-bit hash (BLAKE2b) above every number id, so MIND-format
    data with other ids still works. Why not strings: the CTR and tags families share one raw
    schema per family with MovieLens and Taobao, whose ids are int64.
    """
    match = _MIND_ID.fullmatch(text)
    if match is not None:
        return int(match[1])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return _HASHED_IDS + int.from_bytes(digest, "big") % _HASHED_IDS


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def news_item_example(article: mind.NewsArticle, news_tags: str) -> tf.train.Example:
    """Serializes one news.tsv row as a catalog item.

    ``title`` is the title's distinct entity ids, then its words: the CTR Transform tokenizes
    ``title`` into the item's fine features, so MFN's fine level sees entities and words;
    entities go first because the Transform keeps only the first ``title_length`` tokens and a
    title has a few entities but often more words than that. ``genres`` are the category and
    the sub-category (the CTR family's coarse categories and the tags family's category field);
    ``tags`` follow `news_tags` (`NEWS_TAGS`).
    """
    if news_tags == "subcategory":
        tags = _distinct([article.subcategory])
    else:
        tags = _distinct([*article.title_entities, *article.abstract_entities])
    return make_example({
        "item_id": int64_feature([mind_numeric_id(article.news_id)]),
        "title": bytes_feature([" ".join([*_distinct(article.title_entities), article.title])]),
        "genres": bytes_feature(_distinct([article.category, article.subcategory])),
        "tags": bytes_feature(tags),
    })


def news_sequence_example(user_id: int, events: Sequence[NewsEvent]) -> tf.train.Example:
    """Serializes a MIND user's events (oldest first)."""
    return make_example({
        "user_id": int64_feature([user_id]),
        "item_ids": int64_feature([mind_numeric_id(news_id) for news_id, _, _ in events]),
        "timestamps": int64_feature([time for _, time, _ in events]),
        "ratings": float_feature([rating for _, _, rating in events]),
    })


def mind_user_events(impressions: Iterable[tuple[int, mind.Impression]], known: Container[int]
                     ) -> tuple[list[list[NewsEvent]], Counts]:
    """One MIND user's events in time order, as units that a split must not cut.

    Rules:

    * The impressions are sorted by (time, position in behaviors.tsv).
    * The history column of the user's *earliest* impression becomes clicked events (rating
      `MIND_CLICK_RATING`), in its order (oldest first), stamped with that impression's time:
      they are clicks from before it, and the data gives them no time of their own. Only the
      earliest history is used because a later history can only add clicks made after the
      earliest impression, which are either clicks of impressions in the file (events already)
      or clicks the file does not show (no time, no position among the impressions); taking
      them would duplicate the first kind. The ids later histories add are counted. Repeated
      ids within the column are kept (each is a click the log recorded) and counted.
    * Each labelled impression adds its shown articles in display order, at its time: clicked
      ones with `MIND_CLICK_RATING`, the others with `MIND_SKIP_RATING`. Unlabelled impressions
      (the test split) add nothing, their articles are counted.
    * Units: the whole history column is one unit, each impression another (`split_whole_units`).

    Args:
        impressions: (position in the file, impression) of one user, in any order.
        known: The numeric ids of the news.tsv articles; other ids are kept (the Transform maps
            them to the unknown item) and counted.

    Returns:
        The units, oldest first (empty when the user has no history and no labelled
        impression), and the report counts.
    """
    ordered = [imp for _, imp in sorted(impressions, key=lambda pair: (pair[1].time, pair[0]))]
    first = ordered[0]
    history = list(first.history)
    seen = set(history)
    later: set[str] = set()
    units = [[(news_id, first.time, MIND_CLICK_RATING) for news_id in history]] if history else []
    counts = {HISTORY_CLICKS: len(history), DUPLICATE_HISTORY_CLICKS: len(history) - len(seen),
              HISTORY_CLICKS_MISSING: sum(mind_numeric_id(n) not in known for n in history),
              SHOWN_ARTICLES: 0, SHOWN_ARTICLES_MISSING: 0, SHOWN_CLICKS: 0, UNLABELLED_ARTICLES: 0}
    for imp in ordered:
        later.update(news_id for news_id in imp.history if news_id not in seen)
        if not imp.labels:
            counts[UNLABELLED_ARTICLES] += len(imp.candidates)
            continue
        units.append([(news_id, imp.time, MIND_CLICK_RATING if label else MIND_SKIP_RATING)
                      for news_id, label in zip(imp.candidates, imp.labels)])
        counts[SHOWN_ARTICLES] += len(imp.candidates)
        counts[SHOWN_ARTICLES_MISSING] += sum(mind_numeric_id(n) not in known for n in imp.candidates)
        counts[SHOWN_CLICKS] += sum(imp.labels)
    counts[LATER_HISTORY_IDS] = len(later)
    return units, counts


def mind_user_examples(user: str, impressions: Iterable[tuple[int, mind.Impression]], known: Container[int]
                       ) -> tuple[tf.train.Example | None, tf.train.Example | None, Counts]:
    """A MIND user's train and eval examples (`mind_user_events`) and report counts.

    The split is `user_examples`'s 80 % rule on events, moved back to a unit boundary
    (`splits.split_whole_units`): impressions stay whole and the history column stays in
    train. A user with no events has no example (None, None).
    """
    units, counts = mind_user_events(impressions, known)
    if not units:
        return None, None, counts | {USERS_WITHOUT_EVENTS: 1}
    user_id = mind_numeric_id(user)
    n_train = splits.split_whole_units([len(unit) for unit in units], TRAIN_FRACTION)
    train = [event for unit in units[:n_train] for event in unit]
    later = [event for unit in units[n_train:] for event in unit]
    counts |= {USERS: 1, USERS_WITHOUT_EVAL_IMPRESSION: int(not later), TRAIN_EVENTS: len(train),
               EVAL_EVENTS: len(later)}
    train_example = news_sequence_example(user_id, train)
    eval_example = with_history(news_sequence_example(user_id, later), train_example) if later else None
    return train_example, eval_example, counts
