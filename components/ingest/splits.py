"""Time-based train/eval splits, as the papers make them.

* MIND (news ranking): the impressions of the last day of the training period are the
  eval split (`mind_eval_boundary`). Whole impressions move, never single candidates.
* MovieLens (UTPM, CTR): each user's first 80 % of events by time are the training history
  and the rest the eval events (`split_user_sequences`).

Both are pure functions of the data, so every runner (local, Beam workers) computes the
same split.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

SECONDS_PER_DAY = 86_400

_K = TypeVar("_K", bound=Hashable)
_E = TypeVar("_E")


def mind_eval_boundary(times: Iterable[int]) -> int:
    """Returns the first second of the last (UTC) day covered by `times`.

    An impression is in eval exactly when `time >= boundary`. The boundary is the midnight
    (UTC) that starts the calendar day of the latest impression, i.e.
    `max(times) - max(times) % 86400`: the eval split is one whole day, even when the
    latest impression is in the morning (a boundary of `max(times) - 86400` would cut a
    day in two). MIND-small train covers 2019-11-09 to 2019-11-14, so eval is 2019-11-14.

    Args:
        times: Impression times in UTC epoch seconds (`Impression.time`); read once.

    Raises:
        ValueError: When `times` is empty.
    """
    latest = max(times, default=None)
    if latest is None:
        raise ValueError("mind_eval_boundary needs at least one impression time")
    return latest - latest % SECONDS_PER_DAY


@dataclasses.dataclass(frozen=True)
class UserSplit(Generic[_K, _E]):
    """Each user's events divided by time.

    Attributes:
        train: Per user, the earliest events (the history), oldest first; every user of
            the input is here, with at least one event.
        eval: Per user, the remaining events, oldest first; users whose events all went to
            train are absent.
    """

    train: dict[_K, list[_E]]
    eval: dict[_K, list[_E]]


def split_user_sequences(
    events_by_user: Mapping[_K, Sequence[_E]],
    train_fraction: float = 0.8,
    time: Callable[[_E], int] = operator.attrgetter("time"),
) -> UserSplit[_K, _E]:
    """Splits each user's events by time: the first `train_fraction` go to train.

    Per user with n events: the events are sorted by `time` (stably, so events with equal
    times keep their input order, e.g. file order for MovieLens' many same-second ratings),
    and the first `max(1, floor(n * train_fraction))` go to train, the rest to eval. A user
    with one event has a history and no eval event; with n = 10 and 0.8 the split is 8 / 2.
    Users with no events are left out.

    Args:
        events_by_user: Events (e.g. `Rating`, `TagApplication`, `Behavior`) per user, in
            any order.
        train_fraction: The share of each user's events that goes to train, in (0, 1].
        time: The sort key of an event; its `.time` attribute by default.

    Raises:
        ValueError: When `train_fraction` is not in (0, 1].
    """
    _check_fraction(train_fraction)
    train: dict[_K, list[_E]] = {}
    eval_: dict[_K, list[_E]] = {}
    for user, events in events_by_user.items():
        if not events:
            continue
        train[user], later = split_sequence(sorted(events, key=time), train_fraction)
        if later:
            eval_[user] = later
    return UserSplit(train=train, eval=eval_)


def split_sequence(ordered: Sequence[_E], train_fraction: float = 0.8) -> tuple[list[_E], list[_E]]:
    """Splits one user's events, already sorted oldest first, into (train, eval).

    The first `max(1, floor(n * train_fraction))` events go to train, the rest to eval (see
    `split_user_sequences`); the sequence ExampleGen's Beam workers call this per user after
    sorting the user's grouped events.

    Raises:
        ValueError: When `train_fraction` is not in (0, 1].
    """
    _check_fraction(train_fraction)
    # The epsilon keeps floor(100 * 0.57) at 57 although 100 * 0.57 == 56.99999999999999.
    n_train = max(1, math.floor(len(ordered) * train_fraction + 1e-9))
    return list(ordered[:n_train]), list(ordered[n_train:])


def split_whole_units(sizes: Sequence[int], train_fraction: float = 0.8) -> int:
    """How many leading units of a user's events go to train when units must not be cut.

    A unit is a run of events that stays whole (a MIND impression: its shown articles were seen
    at one moment, so a model must never be trained on some of them and scored on the others).
    The plain rule (`split_sequence`) would send the first `max(1, floor(n * train_fraction))`
    of the n events to train; here the cut moves back to the start of the unit holding the
    first eval event, and at least the first unit goes to train. Rounding down (not to the
    nearest boundary) keeps an eval part for a user whose last unit is large, e.g. a history
    followed by one impression: the history trains, the impression is scored.

    Args:
        sizes: Events per unit, oldest unit first; each at least 1.
        train_fraction: As in `split_sequence`.

    Returns:
        The number of units that go to train (all of them when nothing is left for eval).

    Raises:
        ValueError: When `train_fraction` is not in (0, 1].
    """
    _check_fraction(train_fraction)
    cut = max(1, math.floor(sum(sizes) * train_fraction + 1e-9))
    start = 0
    for unit, size in enumerate(sizes):
        if start + size > cut:
            return max(unit, 1)
        start += size
    return len(sizes)


def _check_fraction(train_fraction: float) -> None:
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
