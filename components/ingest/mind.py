"""Readers for the MIND news-recommendation format.

A MIND directory holds `behaviors.tsv` (one impression per line: a user, the user's click
history and the shown candidates with click labels), `news.tsv` (one article per line) and,
in the official releases, `entity_embedding.vec` / `relation_embedding.vec` (TransE vectors
of the Wikidata entities found in titles and abstracts). Field layouts:

    behaviors.tsv  impression_id \\t user_id \\t time \\t history \\t impressions
    news.tsv       news_id \\t category \\t subcategory \\t title \\t abstract \\t url
                   \\t title_entities \\t abstract_entities
    *.vec          entity_id \\t v1 \\t v2 ... (often with a trailing tab)

Line parsers raise `MalformedRow` naming the field and the problem; file readers stream,
skip and count bad lines in an `IngestReport`, and never crash on a row. Nothing here joins
behaviours with news: ids stay ids (see docs/architecture.md, "MIND-large must fit").
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import re
from collections.abc import Callable, Container, Iterable, Iterator

import numpy as np

from components.ingest.report import DatasetError, IngestReport, MalformedRow, numbered_lines

BEHAVIORS_FILE = "behaviors.tsv"
NEWS_FILE = "news.tsv"
ENTITY_EMBEDDING_FILE = "entity_embedding.vec"
RELATION_EMBEDDING_FILE = "relation_embedding.vec"

UNLABELLED_IMPRESSIONS = "impressions without labels (test split)"
IMPRESSIONS_WITHOUT_CLICK = "impressions without a click"
BAD_ENTITY_JSON = "news rows with unreadable entity JSON (row kept, those entities dropped)"
DUPLICATE_NEWS = "duplicate news ids (first row kept)"
HISTORY_IDS = "history ids"
HISTORY_IDS_MISSING = "history ids missing from news.tsv"
CANDIDATE_IDS = "candidate ids"
CANDIDATE_IDS_MISSING = "candidate ids missing from news.tsv"

_BEHAVIORS_FIELDS = 5
_NEWS_FIELDS = 8
_TIME_PATTERN = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)")


@dataclasses.dataclass(frozen=True, slots=True)
class Impression:
    """One line of `behaviors.tsv`.

    Attributes:
        impression_id: The id of the impression, unique within a split.
        user_id: The anonymized user id, e.g. "U13740".
        time: When the impression was shown, in UTC epoch seconds.
        history: The news ids the user clicked before this impression, oldest first; may
            be empty.
        candidates: The news ids shown in the impression, in display order.
        labels: 1 (clicked) or 0 per candidate; empty in the official test split, which
            has no labels.
    """

    impression_id: int
    user_id: str
    time: int
    history: tuple[str, ...]
    candidates: tuple[str, ...]
    labels: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class NewsArticle:
    """One line of `news.tsv`; entities are reduced to their Wikidata ids, in order."""

    news_id: str
    category: str
    subcategory: str
    title: str
    abstract: str
    url: str
    title_entities: tuple[str, ...]
    abstract_entities: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MindFiles:
    """The files of one MIND split directory; the embeddings are absent in some copies."""

    behaviors: pathlib.Path
    news: pathlib.Path
    entity_embedding: pathlib.Path | None
    relation_embedding: pathlib.Path | None


def parse_mind_time(text: str) -> int:
    """Parses a MIND time such as "11/11/2019 9:05:58 AM" to UTC epoch seconds.

    MIND does not state a time zone; the times are read as UTC so that day boundaries
    (the eval split is the last day) do not depend on the machine's zone.

    Raises:
        MalformedRow: When the text is not a valid month/day/year 12-hour time.
    """
    match = _TIME_PATTERN.fullmatch(text.strip())
    if match is None:
        raise MalformedRow(f"time: {text!r} is not like '11/11/2019 9:05:58 AM'")
    month, day, year, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not 1 <= hour <= 12:
        raise MalformedRow(f"time: {text!r} has hour {hour}, expected 1-12 with AM/PM")
    hour = hour % 12 + (12 if match[7] == "PM" else 0)
    try:
        moment = datetime.datetime(
            year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc
        )
    except ValueError as error:
        raise MalformedRow(f"time: {text!r} is not a valid date ({error})") from None
    return int(moment.timestamp())


def parse_behaviors_line(line: str) -> Impression:
    """Parses one `behaviors.tsv` line (with or without its line ending).

    Raises:
        MalformedRow: On a wrong field count, a non-integer impression id, an empty user,
            a bad time, an empty impression list, a bad "id-label" token, or a list that
            mixes labelled and unlabelled tokens.
    """
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != _BEHAVIORS_FIELDS:
        raise MalformedRow(
            f"expected {_BEHAVIORS_FIELDS} tab-separated fields, got {len(fields)}"
        )
    id_text, user_id, time_text, history_text, impressions_text = fields
    try:
        impression_id = int(id_text)
    except ValueError:
        raise MalformedRow(f"impression_id: {id_text!r} is not an integer") from None
    if not user_id.strip():
        raise MalformedRow("user_id: empty")
    time = parse_mind_time(time_text)
    candidates, labels = _parse_impressions(impressions_text)
    return Impression(
        impression_id=impression_id,
        user_id=user_id.strip(),
        time=time,
        history=tuple(history_text.split()),
        candidates=candidates,
        labels=labels,
    )


def _parse_impressions(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Splits "N1-1 N2-0 ..." (or the test split's "N1 N2 ...") into ids and labels."""
    tokens = text.split()
    if not tokens:
        raise MalformedRow("impressions: empty")
    news_ids: list[str] = []
    labels: list[int] = []
    for token in tokens:
        news_id, dash, label = token.rpartition("-")
        if not dash:
            news_ids.append(token)
            continue
        if not news_id:
            raise MalformedRow(f"impressions: token {token!r} has no news id")
        if label not in ("0", "1"):
            raise MalformedRow(f"impressions: token {token!r} has label {label!r}, expected 0 or 1")
        news_ids.append(news_id)
        labels.append(1 if label == "1" else 0)
    if labels and len(labels) != len(news_ids):
        raise MalformedRow(
            f"impressions: {len(labels)} of {len(news_ids)} tokens are labelled; "
            "expected all (train/dev) or none (test)"
        )
    return tuple(news_ids), tuple(labels)


def parse_entity_ids(text: str, field: str) -> tuple[str, ...]:
    """Returns the Wikidata ids of a MIND entity list, in order.

    Args:
        text: A JSON list of objects with a "WikidataId" key, or an empty string. Objects
            whose id is missing or empty are ignored (they carry nothing to look up).
        field: The field's name, for the error message.

    Raises:
        MalformedRow: When the text is not JSON, not a list, or holds a non-object.
    """
    if not text.strip():
        return ()
    try:
        entities = json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedRow(f"{field}: not valid JSON ({error.msg} at char {error.pos})") from None
    if not isinstance(entities, list):
        raise MalformedRow(f"{field}: expected a JSON list, got {type(entities).__name__}")
    ids: list[str] = []
    for index, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise MalformedRow(f"{field}: entry {index} is {type(entity).__name__}, not an object")
        wikidata_id = entity.get("WikidataId")
        if wikidata_id is None or wikidata_id == "":
            continue
        if not isinstance(wikidata_id, str):
            raise MalformedRow(f"{field}: entry {index} has a non-string WikidataId")
        ids.append(wikidata_id)
    return tuple(ids)


def parse_news_line(
    line: str, *, on_bad_entities: Callable[[str], None] | None = None
) -> NewsArticle:
    """Parses one `news.tsv` line (with or without its line ending).

    Args:
        line: The line.
        on_bad_entities: When given, an unreadable entity field is passed to it as a reason
            and read as empty instead of rejecting the row: entities are auxiliary, and
            dropping the article would turn every click on it into an unknown id.

    Raises:
        MalformedRow: On a wrong field count, an empty or blank-containing news id, or
            (without `on_bad_entities`) an unreadable entity field.
    """
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != _NEWS_FIELDS:
        raise MalformedRow(f"expected {_NEWS_FIELDS} tab-separated fields, got {len(fields)}")
    news_id, category, subcategory, title, abstract, url, title_json, abstract_json = fields
    if not news_id or news_id != news_id.strip() or " " in news_id:
        raise MalformedRow(f"news_id: {news_id!r} is empty or contains blanks")
    return NewsArticle(
        news_id=news_id,
        category=category.strip(),
        subcategory=subcategory.strip(),
        title=title,
        abstract=abstract,
        url=url.strip(),
        title_entities=_entities(title_json, "title_entities", on_bad_entities),
        abstract_entities=_entities(abstract_json, "abstract_entities", on_bad_entities),
    )


def _entities(
    text: str, field: str, on_bad_entities: Callable[[str], None] | None
) -> tuple[str, ...]:
    """`parse_entity_ids`, reporting a failure to `on_bad_entities` when one is given."""
    try:
        return parse_entity_ids(text, field)
    except MalformedRow as error:
        if on_bad_entities is None:
            raise
        on_bad_entities(str(error))
        return ()


def parse_vector_line(line: str, dim: int | None = None) -> tuple[str, np.ndarray]:
    """Parses "Q123\\t0.1\\t0.2 ..." into an id and a float32 vector.

    Any run of tabs or spaces separates fields, so a trailing tab is harmless.

    Args:
        line: The line.
        dim: The expected number of values, or None to accept any positive number.

    Raises:
        MalformedRow: On a missing vector, a non-numeric or non-finite value, or a
            dimension other than `dim`.
    """
    fields = line.split()
    if len(fields) < 2:
        raise MalformedRow("expected an id followed by numbers, got no numbers")
    try:
        vector = np.array(fields[1:], dtype=np.float32)
    except ValueError:
        bad = next(f for f in fields[1:] if not _is_float(f))
        raise MalformedRow(f"vector of {fields[0]}: {bad!r} is not a number") from None
    if dim is not None and vector.shape[0] != dim:
        raise MalformedRow(f"vector of {fields[0]}: {vector.shape[0]} values, expected {dim}")
    if not np.isfinite(vector).all():
        raise MalformedRow(f"vector of {fields[0]}: contains a non-finite value")
    return fields[0], vector


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_behaviors(path: str | os.PathLike[str], report: IngestReport) -> Iterator[Impression]:
    """Streams the impressions of a `behaviors.tsv`, skipping and counting bad lines.

    Also counts impressions without labels (the test split) and without a click.
    """
    stats = report.file(path)
    for lineno, line in numbered_lines(path, report):
        try:
            impression = parse_behaviors_line(line)
        except MalformedRow as error:
            report.malformed(path, lineno, str(error))
            continue
        if not impression.labels:
            report.count(UNLABELLED_IMPRESSIONS)
        elif 1 not in impression.labels:
            report.count(IMPRESSIONS_WITHOUT_CLICK)
        stats.rows_kept += 1
        yield impression


def read_news(path: str | os.PathLike[str], report: IngestReport) -> Iterator[NewsArticle]:
    """Streams the articles of a `news.tsv`, skipping and counting bad lines.

    A row whose entity JSON is unreadable is kept with those entities dropped; it is
    counted under `BAD_ENTITY_JSON` and its first occurrences are kept as examples.
    """
    stats = report.file(path)
    for lineno, line in numbered_lines(path, report):

        def on_bad_entities(reason: str, lineno: int = lineno) -> None:
            report.count(BAD_ENTITY_JSON)
            report.note(path, lineno, f"{reason} (row kept)")

        try:
            article = parse_news_line(line, on_bad_entities=on_bad_entities)
        except MalformedRow as error:
            report.malformed(path, lineno, str(error))
            continue
        stats.rows_kept += 1
        yield article


def read_news_table(
    paths: Iterable[str | os.PathLike[str]], report: IngestReport
) -> dict[str, NewsArticle]:
    """Reads one or more `news.tsv` files into a table keyed by news id.

    MIND's train and dev news files overlap; the first row of an id wins and later ones
    are counted under `DUPLICATE_NEWS`.
    """
    table: dict[str, NewsArticle] = {}
    for path in paths:
        for article in read_news(path, report):
            if article.news_id in table:
                report.count(DUPLICATE_NEWS)
            else:
                table[article.news_id] = article
    return table


def read_entity_vectors(
    path: str | os.PathLike[str], report: IngestReport
) -> dict[str, np.ndarray]:
    """Reads an `entity_embedding.vec` or `relation_embedding.vec` file.

    The first good line fixes the dimension; lines with another dimension, non-numeric or
    non-finite values, or an id seen before are skipped and counted as malformed.

    Returns:
        A float32 vector per entity id, in file order.
    """
    stats = report.file(path)
    vectors: dict[str, np.ndarray] = {}
    dim: int | None = None
    for lineno, line in numbered_lines(path, report):
        try:
            entity_id, vector = parse_vector_line(line, dim)
            if entity_id in vectors:
                raise MalformedRow(f"duplicate id {entity_id} (first occurrence kept)")
        except MalformedRow as error:
            report.malformed(path, lineno, str(error))
            continue
        dim = vector.shape[0]
        vectors[entity_id] = vector
        stats.rows_kept += 1
    return vectors


def find_mind_files(data_dir: str | os.PathLike[str]) -> MindFiles:
    """Locates the files of a MIND split directory.

    Raises:
        DatasetError: When the directory, `behaviors.tsv` or `news.tsv` is missing; the
            message names the directory and the file.
    """
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"MIND directory {root} does not exist")
    for name in (BEHAVIORS_FILE, NEWS_FILE):
        if not (root / name).is_file():
            raise DatasetError(
                f"MIND directory {root} has no {name}: expected {BEHAVIORS_FILE} and "
                f"{NEWS_FILE} (download them with components.ingest.download or copy them there)"
            )
    return MindFiles(
        behaviors=root / BEHAVIORS_FILE,
        news=root / NEWS_FILE,
        entity_embedding=_optional(root / ENTITY_EMBEDDING_FILE),
        relation_embedding=_optional(root / RELATION_EMBEDDING_FILE),
    )


def _optional(path: pathlib.Path) -> pathlib.Path | None:
    return path if path.is_file() else None


def track_news_coverage(
    impressions: Iterable[Impression], news_ids: Container[str], report: IngestReport
) -> Iterator[Impression]:
    """Passes impressions through, counting history and candidate ids without a news row.

    Such ids become the "unknown" news index downstream; the counters (`HISTORY_IDS`,
    `HISTORY_IDS_MISSING`, `CANDIDATE_IDS`, `CANDIDATE_IDS_MISSING`, counting occurrences)
    say how much content a model actually sees. Counts are added as the impressions are
    consumed, so the pipeline reads `behaviors.tsv` once.
    """
    for impression in impressions:
        report.count(HISTORY_IDS, len(impression.history))
        report.count(HISTORY_IDS_MISSING, sum(i not in news_ids for i in impression.history))
        report.count(CANDIDATE_IDS, len(impression.candidates))
        report.count(
            CANDIDATE_IDS_MISSING, sum(i not in news_ids for i in impression.candidates)
        )
        yield impression
