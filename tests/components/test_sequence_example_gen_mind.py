"""Tests for MindSequenceExampleGen (MIND as behaviour sequences for the CTR and tags families).

Hand-made files pin every rule on a few users (the earliest history column, duplicates in it,
a history that grows later, unknown ids, unlabelled impressions, whole impressions in the split,
malformed rows); generated MIND-format data with empty histories, impressions of 1 to 8 articles
and a fifth of the articles missing from news.tsv is compared, example by example, with an
expectation computed here from the raw lines on two DirectRunner threads; the real sample in
../shared/datasets is parsed when present.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import zlib

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.errors import UserError
from components.ingest import example_gen_utils, sequence_beam, splits, synthetic
from components.ingest import sequence_example_gen as seq
from components.ingest import sequence_examples as ex
from components.ingest.report import DatasetError
from components.ingest.synthetic.mind import SyntheticMindConfig

MIND_SAMPLE = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mind-sample"


def _entities(*ids: str) -> str:
    return json.dumps([{"Label": i, "Type": "P", "WikidataId": i, "Confidence": 1.0} for i in ids])


NEWS_TSV = [
    "\t".join(["N1", "news", "newsus", "Storm hits coast", "An abstract.", "url", _entities("Q10", "Q11", "Q10"),
               _entities("Q12")]),
    "\t".join(["N2", "sports", "football_nfl", "Big game tonight", "", "url", "[]", "[]"]),
    "\t".join(["N3", "news", "newsworld", "Summit ends", "", "url", "{not json", _entities("Q13")]),  # kept
    "\t".join(["N4", "finance", "markets", "Stocks rise", "", "url", "", ""]),
    "N9\tnews\tbroken row",  # line 5: malformed
    "\t".join(["N5", "sports", "football_nfl", "Late win", "", "url", "[]", "[]"]),
    "\t".join(["N6", "lifestyle", "", "Recipes", "", "url", "[]", "[]"]),  # no sub-category
    "\t".join(["custom_a", "news", "newsus", "Odd id", "", "url", "[]", "[]"]),  # hashed id
    "\t".join(["M1", "video", "viral", "Same number as N1", "", "url", "[]", "[]"]),  # numeric 1 again
]
T1, T2, T3, T4 = "11/11/2019 9:00:00 AM", "11/12/2019 9:00:00 AM", "11/11/2019 10:00:00 AM", "11/13/2019 10:00:00 AM"
BEHAVIORS_TSV = [
    f"2\tU1\t{T2}\tN1 N2 N1 N3\tN5-0 N6-1",  # later than line 2, and its history grew by N3
    f"1\tU1\t{T1}\tN1 N2 N1\tN3-1 N4-0 N7-0",  # N7: not in news.tsv; N1 twice in the history
    f"3\tU2\t{T3}\t\tN2-1 N5-0 N6-0 N1-0 N3-0",  # empty history
    f"4\tU2\t{T4}\t\tN4-1 custom_a-0",
    f"5\tU3\t{T1}\tN8 N1\tN2 N3",  # unlabelled (test split): only the history counts; N8 unknown
    "6\tU4\t13/45/2019 9:00:00 AM\tN1\tN2-1",  # line 6: malformed time
    f"7\tU5\t{T1}\t\tN1 N2",  # unlabelled, no history: no events
]


def _write(path: pathlib.Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _run(out: pathlib.Path, beam_args: list[str] | None = None, **properties) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    context = seq._SequenceExecutor.Context(beam_pipeline_args=beam_args) if beam_args else None
    seq.MindSequenceExecutor(context).Do({}, {"examples": [examples]}, properties)
    return examples


def _values(example: tf.train.Example, name: str) -> list:
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def _split(examples: standard_artifacts.Examples, split: str, key: str) -> dict[int, tf.train.Example]:
    files = tf.io.gfile.glob(example_gen_utils.split_prefix(examples.uri, split) + "-*.gz")
    rows = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    table = {_values(row, key)[0]: row for row in rows}
    assert len(table) == len(rows), f"duplicate {key} in {split}"
    return table


def _splits(examples: standard_artifacts.Examples) -> dict[str, dict[int, tf.train.Example]]:
    return {ex.TRAIN: _split(examples, ex.TRAIN, "user_id"), ex.EVAL: _split(examples, ex.EVAL, "user_id"),
            ex.ITEMS: _split(examples, ex.ITEMS, "item_id")}


def _seconds(text: str) -> int:
    moment = datetime.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


# --- hand-made files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, standard_artifacts.Examples]:
    root = tmp_path_factory.mktemp("mind-seq")
    _write(root / "mind" / "news.tsv", NEWS_TSV)
    _write(root / "mind" / "behaviors.tsv", BEHAVIORS_TSV)
    return root, _run(root / "out", input_base=str(root / "mind"))


def test_history_column_then_impressions_split_whole(hand_made) -> None:
    _, examples = hand_made
    got = _splits(examples)
    assert sorted(got[ex.TRAIN]) == [1, 2, 3] and sorted(got[ex.EVAL]) == [1, 2]  # U5: no event at all
    u1_train, u1_eval = got[ex.TRAIN][1], got[ex.EVAL][1]
    # 3 history clicks (the earliest column, N1 twice) + impression 1; 8 events, 80 % = 6: a boundary.
    assert _values(u1_train, "item_ids") == [1, 2, 1, 3, 4, 7]
    assert _values(u1_train, "ratings") == [5.0, 5.0, 5.0, 5.0, 0.0, 0.0]
    assert _values(u1_train, "timestamps") == [_seconds(T1)] * 6
    assert _values(u1_eval, "item_ids") == [5, 6] and _values(u1_eval, "ratings") == [0.0, 5.0]
    assert _values(u1_eval, "timestamps") == [_seconds(T2)] * 2
    assert _values(u1_eval, "history_item_ids") == _values(u1_train, "item_ids")
    assert _values(u1_eval, "history_ratings") == _values(u1_train, "ratings")
    # U2: no history; impressions of 5 and 2 articles, 80 % of 7 = 5: the first one trains.
    hashed = ex.mind_numeric_id("custom_a")
    assert _values(got[ex.TRAIN][2], "item_ids") == [2, 5, 6, 1, 3]
    assert _values(got[ex.EVAL][2], "item_ids") == [4, hashed]
    assert _values(got[ex.EVAL][2], "ratings") == [5.0, 0.0]
    # U3: only an unlabelled impression, so its history is all the user has (train only).
    assert _values(got[ex.TRAIN][3], "item_ids") == [8, 1] and _values(got[ex.TRAIN][3], "ratings") == [5.0, 5.0]


def test_news_catalog_rows(hand_made) -> None:
    _, examples = hand_made
    items = _splits(examples)[ex.ITEMS]
    assert sorted(items) == sorted([1, 2, 3, 4, 5, 6, ex.mind_numeric_id("custom_a")])
    assert _values(items[1], "title") == ["Q10 Q11 Storm hits coast"]  # distinct title entities, then words
    assert _values(items[1], "genres") == ["news", "newsus"] and _values(items[1], "tags") == ["newsus"]
    assert _values(items[3], "title") == ["Summit ends"]  # unreadable title entities dropped, row kept
    assert _values(items[6], "genres") == ["lifestyle"] and _values(items[6], "tags") == []


def test_report_counts_every_rule(hand_made) -> None:
    root, examples = hand_made
    report = example_gen_utils.load_report(examples)
    assert report == json.loads(examples.get_string_custom_property(example_gen_utils.REPORT_PROPERTY))
    counters = report["counters"]
    assert {name: counters[name] for name in (
        ex.USERS, ex.USERS_WITHOUT_EVAL_IMPRESSION, ex.USERS_WITHOUT_EVENTS, ex.TRAIN_EVENTS, ex.EVAL_EVENTS,
        ex.HISTORY_CLICKS, ex.HISTORY_CLICKS_MISSING, ex.DUPLICATE_HISTORY_CLICKS, ex.LATER_HISTORY_IDS,
        ex.SHOWN_ARTICLES, ex.SHOWN_CLICKS, ex.SHOWN_ARTICLES_MISSING, ex.UNLABELLED_ARTICLES,
        ex.ITEMS_IN_CATALOG, ex.NEWS_ID_COLLISIONS)} == {
        ex.USERS: 3, ex.USERS_WITHOUT_EVAL_IMPRESSION: 1, ex.USERS_WITHOUT_EVENTS: 1, ex.TRAIN_EVENTS: 13,
        ex.EVAL_EVENTS: 4, ex.HISTORY_CLICKS: 5, ex.HISTORY_CLICKS_MISSING: 1, ex.DUPLICATE_HISTORY_CLICKS: 1,
        ex.LATER_HISTORY_IDS: 1, ex.SHOWN_ARTICLES: 12, ex.SHOWN_CLICKS: 4, ex.SHOWN_ARTICLES_MISSING: 1,
        ex.UNLABELLED_ARTICLES: 4, ex.ITEMS_IN_CATALOG: 7, ex.NEWS_ID_COLLISIONS: 1}
    files = {pathlib.Path(path).name: stats for path, stats in report["files"].items()}
    assert files["behaviors.tsv"]["malformed"] == 1 and files["news.tsv"]["malformed"] == 1
    assert any(example.endswith("behaviors.tsv:6: time: '13/45/2019 9:00:00 AM' is not a valid date "
                                "(month must be in 1..12)") for example in report["examples"])


def test_entities_as_tags(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "mind" / "news.tsv", NEWS_TSV)
    _write(tmp_path / "mind" / "behaviors.tsv", BEHAVIORS_TSV[:1])
    items = _split(_run(tmp_path / "out", input_base=str(tmp_path / "mind"), news_tags="entities"), ex.ITEMS,
                   "item_id")
    assert _values(items[1], "tags") == ["Q10", "Q11", "Q12"]  # title entities first, distinct
    assert _values(items[3], "tags") == ["Q13"] and _values(items[2], "tags") == []


def test_missing_files_and_options_name_the_problem(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match="has no behaviors.tsv"):
        _run(tmp_path / "out", input_base=str(tmp_path))
    with pytest.raises(UserError, match="source_options.news_tags: 'words' is not one of subcategory, entities"):
        seq.example_gen("mind", str(tmp_path), news_tags="words")
    with pytest.raises(UserError, match="source_options.news_tags: only MIND articles"):
        seq.prepare_data("movielens", str(tmp_path), "tiny", None, news_tags="entities")
    with pytest.raises(UserError, match="source_options.tags_dir: MIND articles take their tags from news.tsv"):
        seq.example_gen("mind", str(tmp_path), tags_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="has no behaviors.tsv"):
        seq.prepare_data("mind", str(tmp_path), "tiny", None)
    component = seq.example_gen("mind", "/data/mind", news_tags="entities")
    assert isinstance(component, seq.MindSequenceExampleGen)
    assert component.exec_properties == {"input_base": "/data/mind", "news_tags": "entities", "max_users": None}
    assert seq.example_gen("mind", "/data/mind").exec_properties["news_tags"] == "subcategory"


def test_numeric_ids_keep_mind_numbers_and_hash_the_rest() -> None:
    assert ex.mind_numeric_id("N12345") == 12345 and ex.mind_numeric_id("U0") == 0
    odd = [ex.mind_numeric_id(text) for text in ("N012", "custom_a", "12", "N1x", "")]
    assert all(2**62 <= value < 2**63 for value in odd) and len(set(odd)) == len(odd)
    assert ex.mind_numeric_id("custom_a") == odd[1]  # stable across calls (and processes: BLAKE2b)


@pytest.mark.parametrize(("sizes", "want"), [
    ([3, 3, 2], 2),  # 80 % of 8 = 6: exactly a boundary
    ([30, 37], 1),  # the cut falls inside the only impression: the history trains
    ([5], 1),  # one unit: nothing left for eval
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 8),  # units of one event: the plain 80 % rule
    ([10, 1, 1], 1),  # the cut inside the first unit: it still trains, the rest is eval
])
def test_split_whole_units(sizes: list[int], want: int) -> None:
    assert splits.split_whole_units(sizes) == want


# --- generated MIND-format data, an independent expectation ---------------------------------------


def _expected(root: pathlib.Path) -> dict:
    """Per user (train events, eval events) of (item id, time, rating), from the raw lines."""
    known = {line.split("\t")[0] for line in (root / "news.tsv").read_text().splitlines()}
    by_user: dict[str, list[tuple[int, int, list[str], list[str]]]] = {}
    for position, line in enumerate((root / "behaviors.tsv").read_text().splitlines()):
        _, user, time, history, shown = line.split("\t")
        by_user.setdefault(user, []).append((_seconds(time), position, history.split(), shown.split()))
    want, missing, empty, single = {}, 0, 0, 0
    for user, impressions in by_user.items():
        impressions.sort()
        first_time, history = impressions[0][0], impressions[0][2]
        units = [[(int(n[1:]), first_time, 5.0) for n in history]] if history else []
        empty += not history
        single += sum(len(shown) == 1 for _, _, _, shown in impressions)
        for time, _, _, shown in impressions:
            units.append([(int(token.split("-")[0][1:]), time, 5.0 * int(token.split("-")[1])) for token in shown])
            missing += sum(token.split("-")[0] not in known for token in shown)
        events = [e for unit in units for e in unit]
        cut = max(1, int(len(events) * 0.8 + 1e-9))
        ends = [sum(len(u) for u in units[: k + 1]) for k in range(len(units))]
        n_train = max([end for end in ends if end <= cut], default=ends[0])
        want[int(user[1:])] = (events[:n_train], events[n_train:])
    return {"users": want, "missing": missing, "empty_histories": empty, "single_article_impressions": single}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, standard_artifacts.Examples, pathlib.Path]:
    root = tmp_path_factory.mktemp("mind-generated")
    config = SyntheticMindConfig(num_users=40, num_news=80, num_impressions=160, num_topics=4, history_length=(0, 6),
                                 candidates_per_impression=(1, 8), missing_news_fraction=0.2, seed=5)
    synthetic.generate_mind(root / "mind", config)
    threads = ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]
    return _expected(root / "mind"), _run(root / "out", threads, input_base=str(root / "mind")), root / "mind"


def test_beam_examples_equal_an_independent_expectation(generated) -> None:
    want, examples, _ = generated
    got = _splits(examples)
    users = want["users"]
    # The fixture is realistic: empty histories, single-article impressions, unknown ids, train-only users.
    assert want["empty_histories"] > 0 and want["single_article_impressions"] > 0 and want["missing"] > 0
    assert any(not later for _, later in users.values())
    assert got[ex.TRAIN].keys() == users.keys()
    assert got[ex.EVAL].keys() == {user for user, (_, later) in users.items() if later}
    for user, (train, later) in users.items():
        for split, events in ((ex.TRAIN, train), (ex.EVAL, later)):
            if events:
                row = got[split][user]
                assert _values(row, "item_ids") == [e[0] for e in events]
                assert _values(row, "timestamps") == [e[1] for e in events]
                assert _values(row, "ratings") == [e[2] for e in events]
        if later:
            assert _values(got[ex.EVAL][user], "history_item_ids") == [e[0] for e in train]
    counters = example_gen_utils.load_report(examples)["counters"]
    assert counters[ex.SHOWN_ARTICLES_MISSING] == want["missing"]
    assert counters[ex.TRAIN_EVENTS] == sum(len(train) for train, _ in users.values())
    assert counters[ex.ITEMS_IN_CATALOG] == len(got[ex.ITEMS]) == 80


def test_max_users_keeps_the_users_of_smallest_id_hash_with_their_full_run_examples(generated, tmp_path) -> None:
    """MIND user ids are strings ("U12"): the hash is of the id as written in behaviors.tsv."""
    want, full_examples, data = generated
    users = {line.split("\t")[1] for line in (data / "behaviors.tsv").read_text().splitlines()}
    kept = {int(u[1:]) for u in sorted(users, key=lambda u: (zlib.crc32(u.encode()), u))[:15]}
    subset = _run(tmp_path / "out", input_base=str(data), max_users=15)
    full, got = _splits(full_examples), _splits(subset)
    assert got[ex.TRAIN].keys() == kept and got[ex.EVAL].keys() == kept & full[ex.EVAL].keys()
    for split in (ex.TRAIN, ex.EVAL):
        assert got[split] == {u: full[split][u] for u in got[split]}
    assert got[ex.ITEMS] == full[ex.ITEMS]  # news.tsv, whoever read it
    counters = example_gen_utils.load_report(subset)["counters"]
    assert (counters[sequence_beam.USERS_KEPT], counters[sequence_beam.USERS_DROPPED]) == (15, len(users) - 15)
    assert counters[ex.USERS] == 15


# --- the real sample in ../shared/datasets --------------------------------------------------------


@pytest.fixture(scope="module")
def mind_sample(tmp_path_factory: pytest.TempPathFactory) -> standard_artifacts.Examples:
    if not MIND_SAMPLE.is_dir():
        pytest.skip(f"{MIND_SAMPLE} is absent (shared datasets are optional)")
    return _run(tmp_path_factory.mktemp("mind-sample"), input_base=str(MIND_SAMPLE))


def test_mind_sample(mind_sample) -> None:
    got = _splits(mind_sample)
    counters = example_gen_utils.load_report(mind_sample)["counters"]
    lines = (MIND_SAMPLE / "behaviors.tsv").read_text().splitlines()
    assert counters[ex.USERS] == len(got[ex.TRAIN]) == len({line.split("\t")[1] for line in lines})
    events = sum(len(_values(row, "item_ids")) for split in (ex.TRAIN, ex.EVAL) for row in got[split].values())
    assert events == counters[ex.TRAIN_EVENTS] + counters[ex.EVAL_EVENTS]
    assert events == counters[ex.HISTORY_CLICKS] + counters[ex.SHOWN_ARTICLES]
    assert counters[ex.SHOWN_ARTICLES] == sum(len(line.split("\t")[4].split()) for line in lines)
    assert len(got[ex.ITEMS]) == counters[ex.ITEMS_IN_CATALOG] == 2_000
    # The sample is sparse: most ids have no news row; each is kept as an unknown item.
    assert counters[ex.SHOWN_ARTICLES_MISSING] > 0.9 * counters[ex.SHOWN_ARTICLES]
    assert counters[ex.DUPLICATE_HISTORY_CLICKS] > 0  # real histories repeat ids
    for row in got[ex.EVAL].values():
        ratings = _values(row, "ratings")
        assert set(ratings) <= {0.0, 5.0} and 5.0 in ratings  # MIND impressions have a click
