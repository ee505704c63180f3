"""Reader for the Taobao UserBehavior dataset (Tianchi).

`UserBehavior.csv` has no header; each line is `user_id,item_id,category_id,behavior,
timestamp` with behavior one of pv (page view), cart, fav, buy, and timestamp in epoch
seconds. The full file has about 100M lines, so the reader streams and uses a plain split
(no field is ever quoted).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

from components.ingest.report import IngestReport, MalformedRow, numbered_lines

BEHAVIORS = ("pv", "cart", "fav", "buy")

PERIOD_START = 1511539200
"""2017-11-25 00:00:00 China time (UTC+8): the documented start of the data."""
PERIOD_END = 1512316800
"""2017-12-04 00:00:00 China time (UTC+8): the documented end (exclusive) of the data."""
OUTSIDE_PERIOD = "rows with a timestamp outside 2017-11-25..2017-12-03 UTC+8 (kept)"

_FIELDS = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Behavior:
    """One user action on an item; `time` is in UTC epoch seconds."""

    user_id: int
    item_id: int
    category_id: int
    behavior: str
    time: int


def parse_behavior_line(line: str) -> Behavior:
    """Parses one line of `UserBehavior.csv` (with or without its line ending).

    Raises:
        MalformedRow: On a wrong field count, a non-integer id or timestamp, or a
            behaviour outside pv/cart/fav/buy.
    """
    fields = line.rstrip("\r\n").split(",")
    if len(fields) != _FIELDS:
        raise MalformedRow(f"expected {_FIELDS} comma-separated fields, got {len(fields)}")
    user, item, category, behavior, time = fields
    behavior = behavior.strip()
    if behavior not in BEHAVIORS:
        raise MalformedRow(f"behavior: {behavior!r} is not one of {', '.join(BEHAVIORS)}")
    return Behavior(
        user_id=_int("user_id", user),
        item_id=_int("item_id", item),
        category_id=_int("category_id", category),
        behavior=behavior,
        time=_int("timestamp", time),
    )


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MalformedRow(f"{name}: {text!r} is not an integer") from None


def read_behaviors(path: str | os.PathLike[str], report: IngestReport) -> Iterator[Behavior]:
    """Streams a `UserBehavior.csv` (or .gz), skipping and counting malformed lines.

    Rows outside the documented period are kept (whether to drop them is the caller's
    protocol decision) and counted under `OUTSIDE_PERIOD`.
    """
    stats = report.file(path)
    for lineno, line in numbered_lines(path, report):
        try:
            behavior = parse_behavior_line(line)
        except MalformedRow as error:
            report.malformed(path, lineno, str(error))
            continue
        if not PERIOD_START <= behavior.time < PERIOD_END:
            report.count(OUTSIDE_PERIOD)
        stats.rows_kept += 1
        yield behavior
