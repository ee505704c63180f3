"""Tests for components.ingest.taobao."""

from __future__ import annotations

import collections
import pathlib

import pytest

from components.ingest import taobao
from components.ingest.report import IngestReport, MalformedRow

SAMPLE = (
    pathlib.Path(__file__).resolve().parents[3]
    / "shared"
    / "datasets"
    / "taobao-userbehavior-sample"
    / "UserBehavior_sample.csv"
)


def test_parse_behavior_line() -> None:
    assert taobao.parse_behavior_line("1,2268318,2520377,pv,1511544070\r\n") == taobao.Behavior(
        user_id=1, item_id=2268318, category_id=2520377, behavior="pv", time=1511544070
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1,2,3,pv", "expected 5 comma-separated fields, got 4"),
        ("1,2,3,pv,4,5", "expected 5 comma-separated fields, got 6"),
        ("1,2,3,click,4", "behavior: 'click' is not one of pv, cart, fav, buy"),
        ("u1,2,3,pv,4", "user_id: 'u1' is not an integer"),
        ("1,2,x,buy,4", "category_id: 'x' is not an integer"),
        ("1,2,3,fav,4.5", "timestamp: '4.5' is not an integer"),
    ],
)
def test_parse_behavior_line_rejects(line: str, reason: str) -> None:
    with pytest.raises(MalformedRow, match=reason):
        taobao.parse_behavior_line(line)


def test_read_behaviors_skips_counts_and_flags_out_of_period(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "UserBehavior.csv"
    path.write_text(
        "1,10,100,pv,1511544070\n"
        "1,11,100,cart,1505117799\n"  # before the documented period: kept, counted
        "\n"
        "1,12,100,like,1511544071\n"
        "2,10,100,buy,1512316800\n"  # the first second after the period
        "2,10\n"
    )
    report = IngestReport()
    rows = list(taobao.read_behaviors(path, report))
    assert [(r.user_id, r.item_id, r.behavior) for r in rows] == [
        (1, 10, "pv"),
        (1, 11, "cart"),
        (2, 10, "buy"),
    ]
    stats = report.files[str(path)]
    assert (stats.rows_read, stats.rows_kept, stats.malformed) == (5, 3, 2)
    assert report.examples == [
        f"{path}:4: behavior: 'like' is not one of pv, cart, fav, buy",
        f"{path}:6: expected 5 comma-separated fields, got 2",
    ]
    assert report.counters == {taobao.OUTSIDE_PERIOD: 2}


def test_real_taobao_sample() -> None:
    if not SAMPLE.is_file():
        pytest.skip(f"Taobao sample not found at {SAMPLE}")
    report = IngestReport()
    rows = list(taobao.read_behaviors(SAMPLE, report))
    assert len(rows) == 84_474
    assert report.total_malformed == 0
    assert len({r.user_id for r in rows}) == 815
    assert len({r.item_id for r in rows}) == 55_367
    assert len({r.category_id for r in rows}) == 2_914
    assert collections.Counter(r.behavior for r in rows) == {
        "pv": 75_871,
        "cart": 4_497,
        "fav": 2_356,
        "buy": 1_750,
    }
    # A few rows predate 2017-11-25 (down to 2017-09-11), as in the full dataset.
    assert report.counters == {taobao.OUTSIDE_PERIOD: 35}
