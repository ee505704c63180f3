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
``item_id`` and ``category_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import tensorflow as tf

from components.ingest import movielens, negatives, splits, taobao
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
