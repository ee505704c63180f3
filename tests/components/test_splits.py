"""Tests for components.ingest.splits."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib

import pytest

from components.ingest import mind, movielens, splits
from components.ingest.report import IngestReport

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _utc(*args: int) -> int:
    return int(datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp())


@dataclasses.dataclass(frozen=True)
class Event:
    name: str
    time: int


# --- MIND: the last day is eval ------------------------------------------------------------


def test_mind_eval_boundary_is_the_midnight_before_the_latest_time() -> None:
    times = [_utc(2019, 11, 9, 0, 0, 5), _utc(2019, 11, 14, 9, 30), _utc(2019, 11, 12, 23, 59)]
    assert splits.mind_eval_boundary(iter(times)) == _utc(2019, 11, 14)


def test_mind_eval_boundary_edges() -> None:
    assert splits.mind_eval_boundary([_utc(2019, 11, 14, 23, 59, 59)]) == _utc(2019, 11, 14)
    assert splits.mind_eval_boundary([_utc(2019, 11, 15)]) == _utc(2019, 11, 15)
    with pytest.raises(ValueError, match="at least one"):
        splits.mind_eval_boundary([])


def test_mind_eval_boundary_on_the_real_sample() -> None:
    path = SHARED / "mind-sample" / "behaviors.tsv"
    if not path.is_file():
        pytest.skip(f"MIND sample not found at {path}")
    times = [i.time for i in mind.read_behaviors(path, IngestReport())]
    boundary = splits.mind_eval_boundary(times)
    assert boundary == _utc(2019, 11, 14)  # MIND-small train covers 2019-11-09 .. 2019-11-14
    assert sum(t >= boundary for t in times) == 968


# --- MovieLens: each user's first 80 % is history ------------------------------------------


def test_split_user_sequences_sorts_by_time_and_cuts_at_80_percent() -> None:
    events = [Event(f"e{t}", t) for t in (9, 3, 1, 7, 5, 2, 4, 10, 8, 6)]
    split = splits.split_user_sequences({"u": events})
    assert [e.time for e in split.train["u"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [e.time for e in split.eval["u"]] == [9, 10]


def test_split_user_sequences_small_users_and_ties() -> None:
    tied = [Event("first", 5), Event("second", 5), Event("third", 5)]
    split = splits.split_user_sequences(
        {"one": [Event("a", 1)], "two": [Event("b", 2), Event("a", 1)], "tied": tied, "none": []}
    )
    assert split.train == {
        "one": [Event("a", 1)],
        "two": [Event("a", 1)],
        "tied": [Event("first", 5), Event("second", 5)],
    }
    assert split.eval == {"two": [Event("b", 2)], "tied": [Event("third", 5)]}


def test_split_user_sequences_fraction_and_key() -> None:
    events = list(range(100))
    split = splits.split_user_sequences({1: events}, train_fraction=0.57, time=lambda e: -e)
    assert len(split.train[1]) == 57  # not 56, although 100 * 0.57 < 57 in floats
    assert split.train[1][0] == 99
    assert splits.split_user_sequences({1: events}, 1.0, lambda e: e).eval == {}
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="train_fraction"):
            splits.split_user_sequences({1: events}, train_fraction=bad)


def test_split_user_sequences_on_real_ml_latest_small() -> None:
    root = SHARED / "movielens" / "ml-latest-small"
    if not root.is_dir():
        pytest.skip(f"MovieLens data not found at {root}")
    by_user: dict[int, list[movielens.Rating]] = {}
    for rating in movielens.read_ratings(root / "ratings.csv", IngestReport()):
        by_user.setdefault(rating.user_id, []).append(rating)
    split = splits.split_user_sequences(by_user)
    assert len(split.train) == len(split.eval) == 610  # every user rated at least 20 movies
    assert sum(map(len, split.train.values())) + sum(map(len, split.eval.values())) == 100_836
    for user, history in split.train.items():
        assert max(r.time for r in history) <= min(r.time for r in split.eval[user])
        assert len(history) == int(len(by_user[user]) * 0.8 + 1e-9)
