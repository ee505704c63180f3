"""Readers for the MovieLens releases.

Two layouts exist and are told apart by the files present:

* "dat" (ml-1m, ml-10m): `ratings.dat`, `movies.dat`, `users.dat` (ml-1m only),
  `tags.dat` (ml-10m), fields separated by "::", no header. ml-1m is latin-1, later
  releases UTF-8; each line is decoded as UTF-8 first and latin-1 second.
* "csv" (ml-latest-small, ml-latest, ml-20m, ml-25m): `ratings.csv`, `movies.csv`,
  `tags.csv` with a header row; titles and tags are quoted when they contain commas.

Any file may be gzip-compressed (`ratings.dat.gz`). Readers stream, skip and count bad rows
in an `IngestReport`, and never crash on a row. MovieLens movie ids are shared across
releases, so `load_movielens(..., tags_dir=...)` pairs ml-1m ratings with ml-10m tags (the
UTPM protocol: ml-1m has no tags).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

from components.ingest.report import (
    DatasetError,
    IngestReport,
    MalformedRow,
    numbered_lines,
    open_binary,
)

Format = Literal["dat", "csv"]

DUPLICATE_MOVIES = "duplicate movie ids (first row kept)"
DUPLICATE_USERS = "duplicate user ids (first row kept)"
RATINGS_WITHOUT_MOVIE = "ratings of movies missing from the movies file"
TAGS_ON_UNRATED = "tag applications on movies without ratings"

NO_GENRES = "(no genres listed)"
MIN_RATING = 0.5
MAX_RATING = 5.0

_YEAR_PATTERN = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The columns of a file kind (lower-cased: its CSV header) and its free-text column."""

    columns: tuple[str, ...]
    text_field: int | None = None


_RATINGS = _Layout(("userid", "movieid", "rating", "timestamp"))
_MOVIES = _Layout(("movieid", "title", "genres"), text_field=1)
_TAGS = _Layout(("userid", "movieid", "tag", "timestamp"), text_field=2)
_USERS = _Layout(("userid", "gender", "age", "occupation", "zip-code"))


@dataclasses.dataclass(frozen=True, slots=True)
class Rating:
    """One rating; `time` is in UTC epoch seconds."""

    user_id: int
    item_id: int
    rating: float
    time: int


@dataclasses.dataclass(frozen=True, slots=True)
class Movie:
    """One movie; `title` keeps its "(year)" suffix, `year` is parsed from it when present.

    `genres` is empty for "(no genres listed)".
    """

    item_id: int
    title: str
    genres: tuple[str, ...]
    year: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class TagApplication:
    """One user's free-text tag on a movie, lower-cased and stripped."""

    user_id: int
    item_id: int
    tag: str
    time: int


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """One ml-1m user: gender "M"/"F", age and occupation codes (see the ml-1m README)."""

    user_id: int
    gender: str
    age: int
    occupation: int
    zip: str


@dataclasses.dataclass(frozen=True)
class MovieLensFiles:
    """The files of one MovieLens release directory."""

    format: Format
    ratings: pathlib.Path
    movies: pathlib.Path
    tags: pathlib.Path | None
    users: pathlib.Path | None


@dataclasses.dataclass
class MovieLensData:
    """A loaded release: ratings in file order, movies and users by id, tags in file order."""

    ratings: list[Rating]
    movies: dict[int, Movie]
    tags: list[TagApplication]
    users: dict[int, User]


def find_movielens_files(data_dir: str | os.PathLike[str]) -> MovieLensFiles:
    """Detects the layout of a MovieLens directory from the ratings file present.

    Raises:
        DatasetError: When the directory, the ratings file or the movies file is missing.
    """
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"MovieLens directory {root} does not exist")
    fmt: Format
    for fmt in ("dat", "csv"):
        ratings = _find(root, f"ratings.{fmt}")
        if ratings is not None:
            break
    else:
        raise DatasetError(
            f"MovieLens directory {root} has neither ratings.dat nor ratings.csv (or .gz)"
        )
    movies = _find(root, f"movies.{fmt}")
    if movies is None:
        raise DatasetError(f"MovieLens directory {root} has ratings.{fmt} but no movies.{fmt}")
    return MovieLensFiles(
        format=fmt,
        ratings=ratings,
        movies=movies,
        tags=_find(root, f"tags.{fmt}"),
        users=_find(root, "users.dat") if fmt == "dat" else None,
    )


def find_tags_file(tags_dir: str | os.PathLike[str]) -> pathlib.Path:
    """Returns the `tags.csv` or `tags.dat` (or .gz) of a directory.

    Raises:
        DatasetError: When there is none.
    """
    root = pathlib.Path(tags_dir)
    for name in ("tags.csv", "tags.dat"):
        path = _find(root, name)
        if path is not None:
            return path
    raise DatasetError(f"tags directory {root} has neither tags.csv nor tags.dat (or .gz)")


def _find(root: pathlib.Path, name: str) -> pathlib.Path | None:
    """Returns `root/name` or `root/name.gz`, whichever exists."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_ratings(path: str | os.PathLike[str], report: IngestReport) -> Iterator[Rating]:
    """Streams a `ratings.dat` / `ratings.csv`; a rating outside [0.5, 5] is malformed."""
    return _read(path, report, _RATINGS, parse_rating)


def read_movies(path: str | os.PathLike[str], report: IngestReport) -> Iterator[Movie]:
    """Streams a `movies.dat` / `movies.csv`."""
    return _read(path, report, _MOVIES, parse_movie)


def read_tags(path: str | os.PathLike[str], report: IngestReport) -> Iterator[TagApplication]:
    """Streams a `tags.dat` / `tags.csv`; an empty tag is malformed."""
    return _read(path, report, _TAGS, parse_tag)


def read_users(path: str | os.PathLike[str], report: IngestReport) -> Iterator[User]:
    """Streams an ml-1m `users.dat`."""
    return _read(path, report, _USERS, parse_user)


def parse_rating(fields: list[str]) -> Rating:
    """Builds a `Rating` from userId, movieId, rating, timestamp.

    Raises:
        MalformedRow: On a wrong field count, a non-number, or a rating outside [0.5, 5].
    """
    _expect_fields(fields, 4)
    try:
        rating = Rating(int(fields[0]), int(fields[1]), float(fields[2]), int(fields[3]))
    except ValueError:
        _raise_first_bad(fields, (("userId", int), ("movieId", int), ("rating", float)))
        raise MalformedRow(f"timestamp: {fields[3]!r} is not an integer") from None
    # Written so that NaN fails too (every comparison with NaN is false).
    if not MIN_RATING <= rating.rating <= MAX_RATING:
        raise MalformedRow(f"rating: {fields[2]!r} is outside [{MIN_RATING}, {MAX_RATING}]")
    return rating


def parse_movie(fields: list[str]) -> Movie:
    """Builds a `Movie` from movieId, title, genres.

    Raises:
        MalformedRow: On a wrong field count, a non-integer id or an empty title.
    """
    _expect_fields(fields, 3)
    item_id = _int("movieId", fields[0])
    title = fields[1].strip()
    if not title:
        raise MalformedRow("title: empty")
    year = _YEAR_PATTERN.search(title)
    return Movie(
        item_id=item_id,
        title=title,
        genres=parse_genres(fields[2]),
        year=int(year[1]) if year else None,
    )


def parse_genres(text: str) -> tuple[str, ...]:
    """Splits "A|B" into ("A", "B"); "(no genres listed)" gives ()."""
    return tuple(g for g in (g.strip() for g in text.split("|")) if g and g != NO_GENRES)


def parse_tag(fields: list[str]) -> TagApplication:
    """Builds a `TagApplication` from userId, movieId, tag, timestamp.

    Raises:
        MalformedRow: On a wrong field count, a non-integer, or a tag that is blank.
    """
    _expect_fields(fields, 4)
    user_id = _int("userId", fields[0])
    item_id = _int("movieId", fields[1])
    tag = fields[2].strip().lower()
    if not tag:
        raise MalformedRow(f"tag: {fields[2]!r} is blank")
    time = _int("timestamp", fields[3])
    return TagApplication(user_id=user_id, item_id=item_id, tag=tag, time=time)


def parse_user(fields: list[str]) -> User:
    """Builds a `User` from an ml-1m UserID, Gender, Age, Occupation, Zip-code.

    Raises:
        MalformedRow: On a wrong field count, a non-integer, or a gender other than M/F.
    """
    _expect_fields(fields, 5)
    user_id = _int("UserID", fields[0])
    gender = fields[1].strip()
    if gender not in ("M", "F"):
        raise MalformedRow(f"Gender: {fields[1]!r} is not M or F")
    return User(
        user_id=user_id,
        gender=gender,
        age=_int("Age", fields[2]),
        occupation=_int("Occupation", fields[3]),
        zip=fields[4].strip(),
    )


def load_movielens(
    data_dir: str | os.PathLike[str],
    report: IngestReport,
    tags_dir: str | os.PathLike[str] | None = None,
) -> MovieLensData:
    """Loads a whole MovieLens release.

    Args:
        data_dir: The release directory (ml-1m, ml-latest-small, ...).
        report: Receives row counts, malformed rows and the counters `RATINGS_WITHOUT_MOVIE`
            and, when tags are loaded, `TAGS_ON_UNRATED`.
        tags_dir: A directory whose tags file replaces `data_dir`'s, e.g. ml-10m's tags
            for ml-1m ratings (movie ids are shared across releases).

    Raises:
        DatasetError: When a required file is missing or has an unexpected header.
    """
    files = find_movielens_files(data_dir)
    ratings = list(read_ratings(files.ratings, report))
    movies = _by_id(read_movies(files.movies, report), _movie_id, report, DUPLICATE_MOVIES)
    users: dict[int, User] = {}
    if files.users is not None:
        users = _by_id(read_users(files.users, report), _user_id, report, DUPLICATE_USERS)
    tags_path = find_tags_file(tags_dir) if tags_dir is not None else files.tags
    tags = list(read_tags(tags_path, report)) if tags_path is not None else []
    report.count(RATINGS_WITHOUT_MOVIE, sum(r.item_id not in movies for r in ratings))
    if tags:
        rated = {r.item_id for r in ratings}
        report.count(TAGS_ON_UNRATED, sum(t.item_id not in rated for t in tags))
    return MovieLensData(ratings=ratings, movies=movies, tags=tags, users=users)


def _movie_id(movie: Movie) -> int:
    return movie.item_id


def _user_id(user: User) -> int:
    return user.user_id


def _by_id(
    rows: Iterable[_T], key: Callable[[_T], int], report: IngestReport, duplicate_counter: str
) -> dict[int, _T]:
    """Indexes rows by id; the first row of an id wins, later ones are counted."""
    table: dict[int, _T] = {}
    for row in rows:
        if key(row) in table:
            report.count(duplicate_counter)
        else:
            table[key(row)] = row
    return table


def _read(
    path: str | os.PathLike[str],
    report: IngestReport,
    layout: _Layout,
    parse: Callable[[list[str]], _T],
) -> Iterator[_T]:
    """Parses each record of a ".dat" or ".csv" file, skipping and counting bad ones."""
    stats = report.file(path)
    if _is_csv(path):
        records = _csv_records(path, report, layout)
    else:
        records = _dat_records(path, report, layout)
    for lineno, fields in records:
        try:
            row = parse(fields)
        except MalformedRow as error:
            report.malformed(path, lineno, str(error))
            continue
        stats.rows_kept += 1
        yield row


def _is_csv(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).removesuffix(".gz").endswith(".csv")


def _dat_records(
    path: str | os.PathLike[str], report: IngestReport, layout: _Layout
) -> Iterator[tuple[int, list[str]]]:
    """Yields the "::"-separated fields of each line of a ".dat" file."""
    n_columns = len(layout.columns)
    for lineno, line in numbered_lines(path, report, fallback_encoding="latin-1"):
        fields = line.split("::")
        yield lineno, fields if len(fields) <= n_columns else _rejoin_text(fields, layout)


def _rejoin_text(fields: list[str], layout: _Layout) -> list[str]:
    """Rejoins a free-text field (title, tag) that contained "::" and was split apart."""
    extra = len(fields) - len(layout.columns)
    if layout.text_field is None:
        return fields
    start, end = layout.text_field, layout.text_field + extra + 1
    return [*fields[:start], "::".join(fields[start:end]), *fields[end:]]


def _csv_records(
    path: str | os.PathLike[str], report: IngestReport, layout: _Layout
) -> Iterator[tuple[int, list[str]]]:
    """Yields the fields of each CSV record after checking the header row.

    Lines are decoded one by one (UTF-8, then latin-1), so a bad byte costs one record
    instead of stopping the file. Multi-line quoted fields are supported; a record's
    number is the line it starts on.

    Raises:
        DatasetError: When the first record is not the expected header.
    """
    stats = report.file(path)
    with open_binary(path) as f:
        reader = csv.reader(_decoded(f))
        first = next(reader, None)
        if first is not None and tuple(f.strip().lower() for f in first) != layout.columns:
            raise DatasetError(
                f"{os.fspath(path)}: header {','.join(first)!r} is not "
                f"{','.join(layout.columns)!r} (case-insensitive)"
            )
        previous_end = reader.line_num
        for fields in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not fields or fields == [""]:
                continue
            stats.rows_read += 1
            yield start, fields


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """Decodes each line as UTF-8, or latin-1 where it is not valid UTF-8."""
    for raw in lines:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield raw.decode("latin-1")


def _expect_fields(fields: list[str], n: int) -> None:
    if len(fields) != n:
        raise MalformedRow(f"expected {n} fields, got {len(fields)}")


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MalformedRow(f"{name}: {text!r} is not an integer") from None


def _raise_first_bad(
    fields: list[str], converters: tuple[tuple[str, Callable[[str], object]], ...]
) -> None:
    """Raises `MalformedRow` for the first field its converter rejects, if any."""
    for text, (name, convert) in zip(fields, converters):
        try:
            convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise MalformedRow(f"{name}: {text!r} is not {kind}") from None
