"""Tests for components.ingest.movielens."""

from __future__ import annotations

import gzip
import pathlib

import pytest

from components.ingest import movielens as ml
from components.ingest.report import DatasetError, IngestReport, MalformedRow

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets" / "movielens"


def _write(path: pathlib.Path, text: str, encoding: str = "utf-8") -> pathlib.Path:
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _stats(report: IngestReport, path: pathlib.Path) -> tuple[int, int, int]:
    stats = report.files[str(path)]
    return stats.rows_read, stats.rows_kept, stats.malformed


@pytest.fixture()
def ml1m_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A tiny ml-1m: gzipped ratings, latin-1 movies, users; one bad row of each kind."""
    root = tmp_path / "ml-1m"
    root.mkdir()
    _write(
        root / "ratings.dat.gz",
        "1::10::5::978300760\n"
        "1::20::3::978302109\r\n"
        "2::10::4::978301968\n"
        "\n"
        "x::10::4::978301968\n"  # 5: bad user id
        "2::20::7::978301968\n"  # 6: rating out of range
        "2::20::4\n"  # 7: field count
        "2::20::four::978301968\n"  # 8: bad rating
        "2::30::4::soon\n"  # 9: bad timestamp
        "2::99::1::978301999\n",  # 10: a movie missing from movies.dat
    )
    _write(
        root / "movies.dat",
        "10::Misérables, Les (1995)::Drama|Musical\n"
        "20::Odd::Title (1999)::Comedy\n"
        "30::Untitled::\n"
        "x::Bad id (2000)::Drama\n"
        "10::Duplicate (1995)::Drama\n",
        encoding="latin-1",
    )
    _write(root / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072-1234\n3::X::1::1::1\n")
    return root


def test_load_ml1m_layout(ml1m_dir: pathlib.Path) -> None:
    report = IngestReport()
    data = ml.load_movielens(ml1m_dir, report)
    assert data.ratings == [
        ml.Rating(1, 10, 5.0, 978300760),
        ml.Rating(1, 20, 3.0, 978302109),
        ml.Rating(2, 10, 4.0, 978301968),
        ml.Rating(2, 99, 1.0, 978301999),
    ]
    assert data.movies == {
        10: ml.Movie(10, "Misérables, Les (1995)", ("Drama", "Musical"), 1995),
        20: ml.Movie(20, "Odd::Title (1999)", ("Comedy",), 1999),
        30: ml.Movie(30, "Untitled", (), None),
    }
    assert data.users == {
        1: ml.User(1, "F", 1, 10, "48067"),
        2: ml.User(2, "M", 56, 16, "70072-1234"),
    }
    assert data.tags == []
    assert _stats(report, ml1m_dir / "ratings.dat.gz") == (9, 4, 5)
    assert _stats(report, ml1m_dir / "movies.dat") == (5, 4, 1)
    assert _stats(report, ml1m_dir / "users.dat") == (3, 2, 1)
    ratings = ml1m_dir / "ratings.dat.gz"
    assert report.examples[:5] == [
        f"{ratings}:5: userId: 'x' is not an integer",
        f"{ratings}:6: rating: '7' is outside [0.5, 5.0]",
        f"{ratings}:7: expected 4 fields, got 3",
        f"{ratings}:8: rating: 'four' is not a number",
        f"{ratings}:9: timestamp: 'soon' is not an integer",
    ]
    assert report.examples[5] == f"{ml1m_dir / 'movies.dat'}:4: movieId: 'x' is not an integer"
    assert report.examples[6] == f"{ml1m_dir / 'users.dat'}:3: Gender: 'X' is not M or F"
    assert report.counters == {ml.DUPLICATE_MOVIES: 1, ml.RATINGS_WITHOUT_MOVIE: 1}


@pytest.fixture()
def csv_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A tiny ml-latest-small: quoted titles and tags, a multi-line tag, bad rows."""
    root = tmp_path / "ml-latest-small"
    root.mkdir()
    _write(
        root / "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"
        "1,3,0.5,964981247\n"
        "2,1,0.0,964981247\n"  # 4: rating out of range
        "2,3,nan,964981247\n"  # 5: not finite
        "2,x,4.0,964981247\n"  # 6: bad id
        "\n"
        "2,3,4.5,964981248\n",
    )
    _write(
        root / "movies.csv",
        "movieId,title,genres\r\n"
        '1,"American President, The (1995)",Comedy|Drama|Romance\r\n'
        "3,Babylon 5,Sci-Fi\r\n"
        "4,From Dusk Till Dawn 2 (1999) ,(no genres listed)\r\n"
        "5,Fawlty Towers (1975\u20131979),Comedy\r\n"
        "6,,Drama\r\n",  # 6: empty title
    )
    _write(
        root / "tags.csv",
        "userId,movieId,tag,timestamp\n"
        "2,1,  Highly Quotable ,1445714996\n"
        '2,3,"Italian ""Postman"", remake",1445714997\n'
        '3,1,"two\nlines",1445714998\n'
        "3,1,\u00a0,1445714999\n"  # 6: blank (a no-break space)
        "3,1,funny\n"  # 7: field count
        "4,1,ok,1445715000\n",
    )
    return root


def test_load_csv_layout(csv_dir: pathlib.Path) -> None:
    report = IngestReport()
    data = ml.load_movielens(csv_dir, report)
    assert data.ratings == [
        ml.Rating(1, 1, 4.0, 964982703),
        ml.Rating(1, 3, 0.5, 964981247),
        ml.Rating(2, 3, 4.5, 964981248),
    ]
    assert data.movies == {
        1: ml.Movie(1, "American President, The (1995)", ("Comedy", "Drama", "Romance"), 1995),
        3: ml.Movie(3, "Babylon 5", ("Sci-Fi",), None),
        4: ml.Movie(4, "From Dusk Till Dawn 2 (1999)", (), 1999),
        5: ml.Movie(5, "Fawlty Towers (1975\u20131979)", ("Comedy",), 1975),
    }
    assert data.tags == [
        ml.TagApplication(2, 1, "highly quotable", 1445714996),
        ml.TagApplication(2, 3, 'italian "postman", remake', 1445714997),
        ml.TagApplication(3, 1, "two\nlines", 1445714998),
        ml.TagApplication(4, 1, "ok", 1445715000),
    ]
    assert data.users == {}
    assert _stats(report, csv_dir / "ratings.csv") == (6, 3, 3)
    assert _stats(report, csv_dir / "movies.csv") == (5, 4, 1)
    assert _stats(report, csv_dir / "tags.csv") == (6, 4, 2)
    ratings, tags = csv_dir / "ratings.csv", csv_dir / "tags.csv"
    assert report.examples == [
        f"{ratings}:4: rating: '0.0' is outside [0.5, 5.0]",
        f"{ratings}:5: rating: 'nan' is outside [0.5, 5.0]",
        f"{ratings}:6: movieId: 'x' is not an integer",
        f"{csv_dir / 'movies.csv'}:6: title: empty",
        f"{tags}:6: tag: '\\xa0' is blank",
        f"{tags}:7: expected 4 fields, got 3",
    ]
    assert report.counters == {ml.RATINGS_WITHOUT_MOVIE: 0, ml.TAGS_ON_UNRATED: 0}


def test_csv_header_is_checked(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "ratings.csv", "user,movie,rating,timestamp\n1,1,4.0,1\n")
    with pytest.raises(DatasetError, match="header 'user,movie,rating,timestamp' is not"):
        list(ml.read_ratings(path, IngestReport()))


def test_tags_dat_layout_keeps_double_colons_in_tags(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "tags.dat", "15::4973::Excellent!::1215184630\n20::1::a::b::1\n")
    report = IngestReport()
    assert list(ml.read_tags(path, report)) == [
        ml.TagApplication(15, 4973, "excellent!", 1215184630),
        ml.TagApplication(20, 1, "a::b", 1),
    ]
    assert report.total_malformed == 0


def test_ratings_dat_with_extra_field_is_malformed(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "ratings.dat", "1::10::5::978300760::9\n")
    report = IngestReport()
    assert list(ml.read_ratings(path, report)) == []
    assert report.examples == [f"{path}:1: expected 4 fields, got 5"]


def test_tags_dir_pairs_ratings_with_another_release(
    ml1m_dir: pathlib.Path, csv_dir: pathlib.Path
) -> None:
    report = IngestReport()
    data = ml.load_movielens(ml1m_dir, report, tags_dir=csv_dir)
    assert [t.item_id for t in data.tags] == [1, 3, 1, 1]
    assert len(data.users) == 2
    assert report.counters[ml.TAGS_ON_UNRATED] == 4  # ml-1m's movies are 10, 20 and 99
    with pytest.raises(DatasetError, match="has neither tags.csv nor tags.dat"):
        ml.load_movielens(ml1m_dir, IngestReport(), tags_dir=ml1m_dir)


def test_find_movielens_files(ml1m_dir: pathlib.Path, csv_dir: pathlib.Path) -> None:
    dat = ml.find_movielens_files(ml1m_dir)
    assert (dat.format, dat.ratings.name, dat.tags, dat.users) == (
        "dat",
        "ratings.dat.gz",
        None,
        ml1m_dir / "users.dat",
    )
    csv_files = ml.find_movielens_files(csv_dir)
    assert (csv_files.format, csv_files.tags, csv_files.users) == (
        "csv",
        csv_dir / "tags.csv",
        None,
    )


def test_find_movielens_files_names_what_is_missing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        ml.find_movielens_files(tmp_path / "nope")
    with pytest.raises(DatasetError, match="neither ratings.dat nor ratings.csv"):
        ml.find_movielens_files(tmp_path)
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DatasetError, match="has ratings.csv but no movies.csv"):
        ml.find_movielens_files(tmp_path)


@pytest.mark.parametrize(
    ("parse", "fields", "reason"),
    [
        (ml.parse_rating, ["1", "2", "3"], "expected 4 fields, got 3"),
        (ml.parse_rating, ["1", "2", "inf", "4"], "outside"),
        (ml.parse_movie, ["1", " ", "Drama"], "title: empty"),
        (ml.parse_tag, ["1", "x", "t", "4"], "movieId: 'x' is not an integer"),
        (ml.parse_user, ["1", "M", "old", "1", "1"], "Age: 'old' is not an integer"),
    ],
)
def test_parsers_reject(parse, fields: list[str], reason: str) -> None:  # noqa: ANN001
    with pytest.raises(MalformedRow, match=reason):
        parse(fields)


# --- the real releases ---------------------------------------------------------------------


def _require(path: pathlib.Path) -> pathlib.Path:
    if not path.is_dir():
        pytest.skip(f"MovieLens data not found at {path}")
    return path


@pytest.fixture(scope="module")
def ml1m_with_tags() -> tuple[ml.MovieLensData, IngestReport]:
    """ml-1m with ml-10m tags, loaded once: the 1M ratings are the slow part."""
    ml1m, tags = _require(SHARED / "ml-1m"), _require(SHARED / "ml-10m-tags")
    report = IngestReport()
    return ml.load_movielens(ml1m, report, tags_dir=tags), report


def test_real_ml1m(ml1m_with_tags: tuple[ml.MovieLensData, IngestReport]) -> None:
    data, report = ml1m_with_tags
    assert len(data.ratings) == 1_000_209
    assert len(data.movies) == 3_883
    assert len(data.users) == 6_040
    assert len({r.user_id for r in data.ratings}) == 6_040
    assert {r.rating for r in data.ratings} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert data.movies[73].title == "Misérables, Les (1995)"  # latin-1 in the file
    assert all(m.year is not None for m in data.movies.values())
    for name in ("ratings.dat.gz", "movies.dat", "users.dat"):
        assert report.files[str(SHARED / "ml-1m" / name)].malformed == 0
    assert report.counters[ml.RATINGS_WITHOUT_MOVIE] == 0


def test_real_ml10m_tags_on_ml1m(ml1m_with_tags: tuple[ml.MovieLensData, IngestReport]) -> None:
    data, report = ml1m_with_tags
    tags_file = str(SHARED / "ml-10m-tags" / "tags.csv")
    # Six tags are a lone no-break space: blank after stripping, so skipped.
    assert _stats(report, pathlib.Path(tags_file)) == (95_580, 95_574, 6)
    assert all(e.endswith("tag: '\\xa0' is blank") for e in report.examples)
    rated = {r.item_id for r in data.ratings}
    tagged = {t.item_id for t in data.tags}
    assert len(rated) == 3_706
    assert len(rated & tagged) == 2_777
    assert len({t.user_id for t in data.tags}) == 4_009


def test_real_ml_latest_small() -> None:
    root = _require(SHARED / "ml-latest-small")
    report = IngestReport()
    data = ml.load_movielens(root, report)
    assert len(data.ratings) == 100_836
    assert len(data.movies) == 9_742
    assert len(data.tags) == 3_683
    assert len({t.user_id for t in data.tags}) == 58
    assert report.total_malformed == 0
    assert report.counters == {ml.RATINGS_WITHOUT_MOVIE: 0, ml.TAGS_ON_UNRATED: 21}
    assert sum(not m.genres for m in data.movies.values()) == 34
    assert sum(m.year is None for m in data.movies.values()) == 12
