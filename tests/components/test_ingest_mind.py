"""Tests for components.ingest.mind and the IngestReport it fills."""

from __future__ import annotations

import datetime
import json
import pathlib

import numpy as np
import pytest

from components.ingest import mind
from components.ingest.report import DatasetError, IngestReport, MalformedRow

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets"
MIND_SAMPLE = SHARED / "mind-sample"

ENTITIES = json.dumps(
    [
        {"Label": "Fort Lauderdale", "Type": "G", "WikidataId": "Q165972", "Confidence": 1.0},
        {"Label": "no id", "Type": "G", "WikidataId": "", "Confidence": 1.0},
        {"Label": "Caribbean", "Type": "L", "WikidataId": "Q664609", "Confidence": 1.0},
    ]
)
NEWS_LINE = "\t".join(
    ["N1", "news", "newspolitics", "A title", "An abstract", "https://x/1", ENTITIES, "[]"]
)
BEHAVIORS_LINE = "7\tU5\t11/11/2019 9:05:58 AM\tN1 N2 N3\tN4-1 N5-0 N6-0"


def _utc(*args: int) -> int:
    return int(datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp())


def _write(path: pathlib.Path, lines: list[str], newline: str = "\n") -> pathlib.Path:
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())
    return path


# --- behaviors.tsv -------------------------------------------------------------------------


def test_parse_behaviors_line() -> None:
    impression = mind.parse_behaviors_line(BEHAVIORS_LINE + "\r\n")
    assert impression == mind.Impression(
        impression_id=7,
        user_id="U5",
        time=_utc(2019, 11, 11, 9, 5, 58),
        history=("N1", "N2", "N3"),
        candidates=("N4", "N5", "N6"),
        labels=(1, 0, 0),
    )


def test_parse_behaviors_line_empty_history_and_test_split() -> None:
    impression = mind.parse_behaviors_line("8\tU6\t11/15/2019 12:00:01 AM\t\tN4 N5")
    assert impression.history == ()
    assert impression.candidates == ("N4", "N5")
    assert impression.labels == ()
    assert impression.time == _utc(2019, 11, 15, 0, 0, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11/11/2019 9:05:58 AM", (2019, 11, 11, 9, 5, 58)),
        ("11/11/2019 12:30:00 AM", (2019, 11, 11, 0, 30, 0)),
        ("11/11/2019 12:30:00 PM", (2019, 11, 11, 12, 30, 0)),
        ("1/2/2019 11:59:59 PM", (2019, 1, 2, 23, 59, 59)),
    ],
)
def test_parse_mind_time(text: str, expected: tuple[int, ...]) -> None:
    assert mind.parse_mind_time(text) == _utc(*expected)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("7\tU5\t11/11/2019 9:05:58 AM\tN1", "expected 5 tab-separated fields, got 4"),
        (BEHAVIORS_LINE + "\textra", "expected 5 tab-separated fields, got 6"),
        ("x7\tU5\t11/11/2019 9:05:58 AM\tN1\tN4-1", "impression_id: 'x7' is not an integer"),
        ("7\t \t11/11/2019 9:05:58 AM\tN1\tN4-1", "user_id: empty"),
        ("7\tU5\t2019-11-11 09:05:58\tN1\tN4-1", "time: '2019-11-11 09:05:58' is not like"),
        ("7\tU5\t2/30/2019 9:05:58 AM\tN1\tN4-1", "is not a valid date"),
        ("7\tU5\t11/11/2019 13:05:58 PM\tN1\tN4-1", "has hour 13"),
        ("7\tU5\t11/11/2019 9:05:58 AM\tN1\t ", "impressions: empty"),
        ("7\tU5\t11/11/2019 9:05:58 AM\tN1\tN4-1 N5-2", "token 'N5-2' has label '2'"),
        ("7\tU5\t11/11/2019 9:05:58 AM\tN1\tN4-1 N5-", "token 'N5-' has label ''"),
        ("7\tU5\t11/11/2019 9:05:58 AM\tN1\tN4-1 -1", "token '-1' has no news id"),
        ("7\tU5\t11/11/2019 9:05:58 AM\tN1\tN4-1 N5", "1 of 2 tokens are labelled"),
    ],
)
def test_parse_behaviors_line_rejects(line: str, reason: str) -> None:
    with pytest.raises(MalformedRow, match=reason.replace("(", r"\(")):
        mind.parse_behaviors_line(line)


def test_read_behaviors_skips_and_counts_bad_lines(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path / "behaviors.tsv",
        [
            BEHAVIORS_LINE,
            "",
            "8\tU5\tnot a time\tN1\tN4-1",
            "9\tU6\t11/12/2019 1:00:00 PM\t\tN7 N8",
            "10\tU6\t11/12/2019 1:00:00 PM\tN1\tN7-0 N8-0",
            "11\tU6",
            "   ",
        ],
        newline="\r\n",
    )
    report = IngestReport()
    impressions = list(mind.read_behaviors(path, report))
    assert [i.impression_id for i in impressions] == [7, 9, 10]
    stats = report.files[str(path)]
    assert (stats.rows_read, stats.rows_kept, stats.malformed) == (5, 3, 2)
    assert report.examples[0].startswith(f"{path}:3: time: 'not a time'")
    assert report.examples[1] == f"{path}:6: expected 5 tab-separated fields, got 2"
    assert report.counters == {mind.UNLABELLED_IMPRESSIONS: 1, mind.IMPRESSIONS_WITHOUT_CLICK: 1}


def test_read_behaviors_rejects_bad_utf8(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "behaviors.tsv"
    path.write_bytes(BEHAVIORS_LINE.encode() + b"\n8\tU\xff\t11/11/2019 9:05:58 AM\t\tN1-1\n")
    report = IngestReport()
    assert len(list(mind.read_behaviors(path, report))) == 1
    assert report.files[str(path)].malformed == 1
    assert report.examples[0].startswith(f"{path}:2: not valid utf-8")


# --- news.tsv ------------------------------------------------------------------------------


def test_parse_news_line() -> None:
    article = mind.parse_news_line(NEWS_LINE + "\n")
    assert article == mind.NewsArticle(
        news_id="N1",
        category="news",
        subcategory="newspolitics",
        title="A title",
        abstract="An abstract",
        url="https://x/1",
        title_entities=("Q165972", "Q664609"),
        abstract_entities=(),
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (["N1", "news"], "expected 8 tab-separated fields, got 2"),
        (["", "news", "sub", "t", "a", "u", "[]", "[]"], "news_id: '' is empty"),
        (["N 1", "news", "sub", "t", "a", "u", "[]", "[]"], "news_id: 'N 1' is empty or contains"),
        (["N1", "news", "sub", "t", "a", "u", "[{", "[]"], "title_entities: not valid JSON"),
        (["N1", "news", "sub", "t", "a", "u", "[]", '{"a": 1}'], "abstract_entities: expected a"),
        (["N1", "news", "sub", "t", "a", "u", "[1]", "[]"], "title_entities: entry 0 is int"),
        (["N1", "n", "s", "t", "a", "u", '[{"WikidataId": 5}]', "[]"], "non-string WikidataId"),
    ],
)
def test_parse_news_line_rejects(fields: list[str], reason: str) -> None:
    with pytest.raises(MalformedRow, match=reason):
        mind.parse_news_line("\t".join(fields))


def test_parse_news_line_tolerates_bad_entities_when_asked() -> None:
    reasons: list[str] = []
    line = "\t".join(["N1", "news", "sub", "t", "a", "u", "[{oops", ENTITIES])
    article = mind.parse_news_line(line, on_bad_entities=reasons.append)
    assert article.title_entities == ()
    assert article.abstract_entities == ("Q165972", "Q664609")
    assert len(reasons) == 1 and reasons[0].startswith("title_entities: not valid JSON")


def test_read_news_keeps_rows_with_bad_entities_and_skips_broken_rows(
    tmp_path: pathlib.Path,
) -> None:
    bad_json = "\t".join(["N2", "news", "sub", "t", "a", "u", "", "[{oops"])
    path = _write(tmp_path / "news.tsv", [NEWS_LINE, bad_json, "N3\tnews", ""], newline="\r\n")
    report = IngestReport()
    articles = list(mind.read_news(path, report))
    assert [a.news_id for a in articles] == ["N1", "N2"]
    assert articles[1].title_entities == () and articles[1].abstract_entities == ()
    stats = report.files[str(path)]
    assert (stats.rows_read, stats.rows_kept, stats.malformed) == (3, 2, 1)
    assert report.counters == {mind.BAD_ENTITY_JSON: 1}
    assert report.examples[0].startswith(f"{path}:2: abstract_entities: not valid JSON")
    assert report.examples[0].endswith("(row kept)")
    assert report.examples[1] == f"{path}:3: expected 8 tab-separated fields, got 2"


def test_read_news_table_keeps_first_duplicate(tmp_path: pathlib.Path) -> None:
    first = _write(tmp_path / "a.tsv", [NEWS_LINE])
    second = _write(tmp_path / "b.tsv", [NEWS_LINE.replace("A title", "Other")])
    report = IngestReport()
    table = mind.read_news_table([first, second], report)
    assert table["N1"].title == "A title"
    assert report.counters == {mind.DUPLICATE_NEWS: 1}


# --- entity vectors ------------------------------------------------------------------------


def test_read_entity_vectors(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path / "entity_embedding.vec",
        [
            "Q1\t0.1\t0.2\t0.3\t",
            "Q2\t1\t2\tx\t",
            "Q3\t1\t2\t",
            "Q4\t1\tnan\t3\t",
            "Q5",
            "Q1\t9\t9\t9\t",
            "Q6 0.5 0.25 -1",
        ],
        newline="\r\n",
    )
    report = IngestReport()
    vectors = mind.read_entity_vectors(path, report)
    assert list(vectors) == ["Q1", "Q6"]
    assert vectors["Q1"].dtype == np.float32
    np.testing.assert_allclose(vectors["Q6"], [0.5, 0.25, -1.0])
    stats = report.files[str(path)]
    assert (stats.rows_read, stats.rows_kept, stats.malformed) == (7, 2, 5)
    assert report.examples == [
        f"{path}:2: vector of Q2: 'x' is not a number",
        f"{path}:3: vector of Q3: 2 values, expected 3",
        f"{path}:4: vector of Q4: contains a non-finite value",
        f"{path}:5: expected an id followed by numbers, got no numbers",
        f"{path}:6: duplicate id Q1 (first occurrence kept)",
    ]


# --- directory layout and coverage -----------------------------------------------------------


def test_find_mind_files(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "behaviors.tsv", [BEHAVIORS_LINE])
    _write(tmp_path / "news.tsv", [NEWS_LINE])
    _write(tmp_path / "entity_embedding.vec", ["Q1\t0.1"])
    files = mind.find_mind_files(tmp_path)
    assert files.behaviors == tmp_path / "behaviors.tsv"
    assert files.news == tmp_path / "news.tsv"
    assert files.entity_embedding == tmp_path / "entity_embedding.vec"
    assert files.relation_embedding is None


def test_find_mind_files_names_what_is_missing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nope'} does not exist"):
        mind.find_mind_files(tmp_path / "nope")
    _write(tmp_path / "behaviors.tsv", [BEHAVIORS_LINE])
    with pytest.raises(DatasetError, match=f"MIND directory {tmp_path} has no news.tsv"):
        mind.find_mind_files(tmp_path)


def test_track_news_coverage_counts_missing_ids() -> None:
    impressions = [
        mind.parse_behaviors_line("1\tU1\t11/11/2019 9:05:58 AM\tN1 N2 N9\tN1-1 N8-0"),
        mind.parse_behaviors_line("2\tU1\t11/11/2019 9:05:58 AM\t\tN9-1"),
    ]
    report = IngestReport()
    passed = list(mind.track_news_coverage(iter(impressions), {"N1", "N2"}, report))
    assert passed == impressions
    assert report.counters == {
        mind.HISTORY_IDS: 3,
        mind.HISTORY_IDS_MISSING: 1,
        mind.CANDIDATE_IDS: 3,
        mind.CANDIDATE_IDS_MISSING: 2,
    }


# --- IngestReport --------------------------------------------------------------------------


def test_report_merge_and_rendering() -> None:
    first, second = IngestReport(), IngestReport()
    for report, n in ((first, 3), (second, 4)):
        stats = report.file("a.tsv")
        stats.rows_read += n
        stats.rows_kept += n - 1
        report.malformed("a.tsv", n, "bad row")
        report.count("history ids missing from news.tsv", n)
    second.file("b.tsv").rows_read += 1
    first.merge(second)
    assert first.to_dict() == {
        "files": {
            "a.tsv": {"rows_read": 7, "rows_kept": 5, "malformed": 2},
            "b.tsv": {"rows_read": 1, "rows_kept": 0, "malformed": 0},
        },
        "counters": {"history ids missing from news.tsv": 7},
        "examples": ["a.tsv:3: bad row", "a.tsv:4: bad row"],
    }
    assert first.total_malformed == 2
    markdown = first.to_markdown()
    assert "| `a.tsv` | 7 | 5 | 2 |" in markdown
    assert "| history ids missing from news.tsv | 7 |" in markdown
    assert "- `a.tsv:3: bad row`" in markdown
    assert first.summary_lines() == [
        "a.tsv: 7 read, 5 kept, 2 malformed",
        "b.tsv: 1 read, 0 kept, 0 malformed",
        "history ids missing from news.tsv: 7",
    ]
    json.dumps(first.to_dict())


def test_report_keeps_only_the_first_examples() -> None:
    report, other = IngestReport(), IngestReport()
    for lineno in range(1, 8):
        report.malformed("a", lineno, "x")
        other.malformed("b", lineno, "y")
    report.merge(other)
    assert report.files["a"].malformed == 7 and report.files["b"].malformed == 7
    assert len(report.examples) == 10
    assert report.examples[-1] == "b:3: y"


def test_missing_file_is_a_dataset_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        list(mind.read_behaviors(tmp_path / "behaviors.tsv", IngestReport()))


# --- the real MIND sample ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mind_sample() -> mind.MindFiles:
    if not (MIND_SAMPLE / "behaviors.tsv").is_file():
        pytest.skip(f"MIND sample not found at {MIND_SAMPLE}")
    return mind.find_mind_files(MIND_SAMPLE)


def test_real_mind_sample(mind_sample: mind.MindFiles) -> None:
    report = IngestReport()
    news_ids = set(mind.read_news_table([mind_sample.news], report))
    read = mind.read_behaviors(mind_sample.behaviors, report)
    impressions = list(mind.track_news_coverage(read, news_ids, report))
    assert len(news_ids) == 2_000
    assert len(impressions) == 5_000
    assert len({i.impression_id for i in impressions}) == 5_000
    assert sum(not i.history for i in impressions) == 107
    assert all(i.labels and 1 in i.labels for i in impressions)
    assert report.total_malformed == 0
    # The two samples were drawn independently: only ~3-4 % of the ids have a news row.
    assert report.counters == {
        mind.HISTORY_IDS: 159_802,
        mind.HISTORY_IDS_MISSING: 153_641,
        mind.CANDIDATE_IDS: 189_359,
        mind.CANDIDATE_IDS_MISSING: 184_049,
    }
    assert min(i.time for i in impressions) >= _utc(2019, 11, 9)
    assert max(i.time for i in impressions) < _utc(2019, 11, 15)


def test_real_mind_relation_vectors(mind_sample: mind.MindFiles) -> None:
    assert mind_sample.entity_embedding is None
    assert mind_sample.relation_embedding is not None
    report = IngestReport()
    vectors = mind.read_entity_vectors(mind_sample.relation_embedding, report)
    assert len(vectors) == 1_091
    assert {v.shape for v in vectors.values()} == {(100,)}
    assert report.total_malformed == 0


def test_real_mind_extra_news(mind_sample: mind.MindFiles) -> None:
    report = IngestReport()
    articles = list(mind.read_news(MIND_SAMPLE / "news_extra_48.tsv", report))
    assert len(articles) == 48
    assert report.total_malformed == 0 and not report.counters
