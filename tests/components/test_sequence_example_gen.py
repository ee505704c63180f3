"""Tests for MovieLensExampleGen and TaobaoExampleGen (components.ingest.sequence_example_gen).

Each executor's `Do` runs once per data set (module fixtures), because a Beam pipeline and
reading ml-1m take seconds; the tests then inspect the written TFRecords and the report.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.ingest import example_gen_utils, movielens, taobao
from components.ingest import sequence_example_gen as seq
from components.ingest.report import DatasetError

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets"
ML_SMALL = SHARED / "movielens" / "ml-latest-small"
ML_1M = SHARED / "movielens" / "ml-1m"
ML_10M_TAGS = SHARED / "movielens" / "ml-10m-tags"
TAOBAO = SHARED / "taobao-userbehavior-sample"

RATINGS_DAT = [
    "1::10::5::100",
    "1::20::4::300",
    "1::30::3::200",
    "1::40::2::400",
    "1::50::1::500",
    "2::10::4::50",
    "2::x::4::60",  # line 7: malformed
    "2::20::4.5::40",
    "3::99::3::70",  # movie 99 is not in movies.dat; user 3 is not in users.dat
]
MOVIES_DAT = [
    "10::Toy Story (1995)::Animation|Children's|Comedy",
    "20::Jumanji (1995)::Adventure|Children's|Fantasy",
    "30::Untitled::(no genres listed)",
    "40::Heat (1995)::Action",
    "50::Casino (1995)::Drama",
    "60::No genres field",  # line 6: malformed
]
USERS_DAT = ["1::F::1::10::48067", "2::M::56::16::70072"]
TAGS_CSV = [
    "userId,movieId,tag,timestamp",
    "1,10,pixar,1",
    "2,10,Pixar,2",
    "2,10,funny,3",
    "1,20,jungle,4",
    "1,777,orphan,5",  # movie 777 is not in movies.dat
    "1,20,,6",  # line 7: blank tag
]
BEHAVIORS_CSV = [
    "1,100,7,pv,1511544070",
    "1,101,7,cart,1511544060",
    "1,100,7,buy,1511544090",
    "1,102,8,fav,1511544080",
    "1,103,8,pv,1511544100",
    "2,100,9,pv,1511544000",  # item 100 once under category 9, twice under 7
    "2,101,7,click,1511544001",  # line 7: malformed
    "2,104,8,pv,1505117799",  # before the documented period: kept
    "3,105,8,pv,1511544200",
    "3,105",  # line 10: malformed
]


def _write(path: pathlib.Path, lines: list[str]) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(
    executor: type[seq._SequenceExecutor], out: pathlib.Path, **properties: str
) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    executor().Do({}, {"examples": [examples]}, properties)
    return examples


def _read(examples: standard_artifacts.Examples, split: str) -> list[tf.train.Example]:
    files = tf.io.gfile.glob(example_gen_utils.split_prefix(examples.uri, split) + "-*.gz")
    assert files, f"no files in split {split}"
    # Batches, because stepping an eager dataset costs more per record than parsing it.
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    return [tf.train.Example.FromString(r) for batch in dataset.as_numpy_iterator() for r in batch]


def _values(example: tf.train.Example, name: str) -> list:
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def _by_key(rows: list[tf.train.Example], key: str) -> dict[int, tf.train.Example]:
    table = {_values(row, key)[0]: row for row in rows}
    assert len(table) == len(rows), f"duplicate {key}"
    return table


def _splits(examples: standard_artifacts.Examples) -> dict[str, dict[int, tf.train.Example]]:
    return {
        seq.TRAIN: _by_key(_read(examples, seq.TRAIN), "user_id"),
        seq.EVAL: _by_key(_read(examples, seq.EVAL), "user_id"),
        seq.ITEMS: _by_key(_read(examples, seq.ITEMS), "item_id"),
    }


def _assert_split_by_time(
    train: Mapping[int, tf.train.Example], eval_: Mapping[int, tf.train.Example]
) -> None:
    assert eval_.keys() <= train.keys()
    for user, example in train.items():
        times = _values(example, "timestamps")
        assert times == sorted(times)
        assert len(times) == len(_values(example, "item_ids"))
        if user in eval_:
            later = _values(eval_[user], "timestamps")
            assert later == sorted(later)
            assert times[-1] <= later[0], f"user {user}: train events after eval events"
            assert len(later) <= len(times)
            # The eval example repeats the user's train events as its history.
            assert _values(eval_[user], "history_timestamps") == times
            assert _values(eval_[user], "history_item_ids") == _values(example, "item_ids")
        assert "history_item_ids" not in example.features.feature


def _event_count(rows: Mapping[int, tf.train.Example]) -> int:
    return sum(len(row.features.feature["item_ids"].int64_list.value) for row in rows.values())


def _assert_report(examples: standard_artifacts.Examples) -> dict:
    report = example_gen_utils.load_report(examples)
    stored = examples.get_string_custom_property(example_gen_utils.REPORT_PROPERTY)
    assert report == json.loads(stored)
    markdown = pathlib.Path(examples.uri, example_gen_utils.REPORT_FILE + ".md").read_text()
    assert "| file | rows read |" in markdown
    assert not pathlib.Path(examples.uri, example_gen_utils.STAGING_DIR).exists()
    return report


def _skip_unless(*paths: pathlib.Path) -> None:
    for path in paths:
        if not path.is_dir():
            pytest.skip(f"{path} is absent (shared datasets are optional)")


# --- MovieLens, hand-made files ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_movielens(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pathlib.Path, standard_artifacts.Examples]:
    root = tmp_path_factory.mktemp("movielens")
    _write(root / "ml" / "ratings.dat", RATINGS_DAT)
    _write(root / "ml" / "movies.dat", MOVIES_DAT)
    _write(root / "ml" / "users.dat", USERS_DAT)
    _write(root / "tags" / "tags.csv", TAGS_CSV)
    properties = {"input_base": str(root / "ml"), "tags_dir": str(root / "tags")}
    examples = _run(seq.MovieLensExecutor, root / "out", **properties)
    return root, examples


def test_movielens_sequences_split_each_user_by_time(small_movielens) -> None:
    _, examples = small_movielens
    assert examples.split_names == json.dumps(list(seq.SPLITS))
    splits = _splits(examples)
    train, eval_ = splits[seq.TRAIN], splits[seq.EVAL]
    assert sorted(train) == [1, 2, 3]
    assert sorted(eval_) == [1, 2]  # user 3 has one rating: history only
    assert _values(train[1], "item_ids") == [10, 30, 20, 40]
    assert _values(train[1], "timestamps") == [100, 200, 300, 400]
    assert _values(train[1], "ratings") == [5.0, 3.0, 4.0, 2.0]
    assert _values(eval_[1], "item_ids") == [50]
    assert _values(train[2], "item_ids") == [20]
    assert _values(eval_[2], "ratings") == [4.0]
    assert _values(eval_[1], "history_item_ids") == [10, 30, 20, 40]
    assert _values(eval_[1], "history_ratings") == [5.0, 3.0, 4.0, 2.0]
    assert _values(train[3], "item_ids") == [99]  # kept although not in movies.dat
    _assert_split_by_time(train, eval_)


def test_movielens_user_fields_come_from_users_dat(small_movielens) -> None:
    _, examples = small_movielens
    splits = _splits(examples)
    train, eval_ = splits[seq.TRAIN], splits[seq.EVAL]
    for split in (train, eval_):
        assert _values(split[1], "gender") == ["F"]
        assert _values(split[1], "age") == [1]
        assert _values(split[1], "occupation") == [10]
        assert _values(split[1], "zip") == ["48067"]
    assert "gender" not in train[3].features.feature


def test_movielens_items_have_genres_year_and_tags(small_movielens) -> None:
    _, examples = small_movielens
    items = _splits(examples)[seq.ITEMS]
    assert sorted(items) == [10, 20, 30, 40, 50]
    toy_story = items[10]
    assert _values(toy_story, "title") == ["Toy Story (1995)"]
    assert _values(toy_story, "genres") == ["Animation", "Children's", "Comedy"]
    assert _values(toy_story, "year") == [1995]
    assert _values(toy_story, "tags") == ["pixar", "funny"]  # most applied first
    assert _values(items[20], "tags") == ["jungle"]
    assert _values(items[30], "genres") == []
    assert "year" not in items[30].features.feature
    assert _values(items[40], "tags") == []


def test_movielens_report_counts_and_locates_problems(small_movielens) -> None:
    root, examples = small_movielens
    report = _assert_report(examples)
    counters = report["counters"]
    assert counters[seq.USERS] == 3
    assert counters[seq.TRAIN_EVENTS] + counters[seq.EVAL_EVENTS] == 8
    assert counters[seq.USERS_WITHOUT_EVAL] == 1
    assert counters[seq.ITEMS_IN_CATALOG] == 5
    assert counters[seq.TAGGED_MOVIES] == 2
    assert counters[seq.TAGS_WITHOUT_MOVIE] == 1
    assert counters[seq.USERS_WITHOUT_PROFILE] == 1
    assert counters[movielens.RATINGS_WITHOUT_MOVIE] == 1
    places = [example.split(": ")[0] for example in report["examples"]]
    assert places == [
        f"{root / 'ml' / 'ratings.dat'}:7",
        f"{root / 'ml' / 'movies.dat'}:6",
        f"{root / 'tags' / 'tags.csv'}:7",
    ]
    assert report["files"][str(root / "ml" / "ratings.dat")]["malformed"] == 1


def test_movielens_missing_directory_is_a_dataset_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        _run(seq.MovieLensExecutor, tmp_path / "out", input_base=str(tmp_path / "absent"))


# --- Taobao, hand-made file --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_taobao(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pathlib.Path, standard_artifacts.Examples]:
    root = tmp_path_factory.mktemp("taobao")
    path = _write(root / "data" / "UserBehavior.csv", BEHAVIORS_CSV)
    return path, _run(seq.TaobaoExecutor, root / "out", input_base=str(path.parent))


def test_taobao_sequences_split_each_user_by_time(small_taobao) -> None:
    _, examples = small_taobao
    splits = _splits(examples)
    train, eval_ = splits[seq.TRAIN], splits[seq.EVAL]
    assert sorted(train) == [1, 2, 3]
    assert sorted(eval_) == [1, 2]
    assert _values(train[1], "item_ids") == [101, 100, 102, 100]
    assert _values(train[1], "category_ids") == [7, 7, 8, 7]
    assert _values(train[1], "behaviors") == ["cart", "pv", "fav", "buy"]
    assert _values(eval_[1], "item_ids") == [103]
    assert _values(train[2], "timestamps") == [1505117799]  # outside the period, kept
    assert _values(eval_[2], "category_ids") == [9]  # as logged, not the catalog's
    _assert_split_by_time(train, eval_)


def test_taobao_items_and_report(small_taobao) -> None:
    path, examples = small_taobao
    items = _splits(examples)[seq.ITEMS]
    assert {item: _values(row, "category_id") for item, row in items.items()} == {
        100: [7], 101: [7], 102: [8], 103: [8], 104: [8], 105: [8]
    }
    report = _assert_report(examples)
    assert report["counters"][taobao.OUTSIDE_PERIOD] == 1
    assert report["counters"][seq.ITEMS_IN_SEVERAL_CATEGORIES] == 1
    assert report["counters"][seq.USERS] == 3
    assert [example.split(": ")[0] for example in report["examples"]] == [f"{path}:7", f"{path}:10"]


@pytest.mark.parametrize("names", [[], ["UserBehavior.csv", "UserBehavior_sample.csv"]])
def test_taobao_needs_exactly_one_behavior_file(tmp_path: pathlib.Path, names: list[str]) -> None:
    for name in names:
        _write(tmp_path / name, BEHAVIORS_CSV[:1])
    with pytest.raises(DatasetError, match="exactly one UserBehavior"):
        seq.find_behavior_file(tmp_path)


def test_components_declare_their_parameters() -> None:
    properties = {"input_base": "/data/ml-1m", "tags_dir": "/data/ml-10m-tags"}
    assert seq.MovieLensExampleGen(**properties).exec_properties == properties
    untagged = seq.MovieLensExampleGen(input_base="/data/ml-latest-small")
    assert untagged.exec_properties["tags_dir"] is None
    taobao_gen = seq.TaobaoExampleGen(input_base="/data/taobao")
    assert taobao_gen.outputs["examples"].type is standard_artifacts.Examples


# --- real samples in ../shared/datasets --------------------------------------------------------


@pytest.fixture(scope="module")
def ml_small(tmp_path_factory: pytest.TempPathFactory) -> standard_artifacts.Examples:
    _skip_unless(ML_SMALL)
    out = tmp_path_factory.mktemp("ml-small")
    return _run(seq.MovieLensExecutor, out, input_base=str(ML_SMALL))


@pytest.fixture(scope="module")
def ml_1m(tmp_path_factory: pytest.TempPathFactory) -> standard_artifacts.Examples:
    _skip_unless(ML_1M, ML_10M_TAGS)
    out = tmp_path_factory.mktemp("ml-1m")
    return _run(seq.MovieLensExecutor, out, input_base=str(ML_1M), tags_dir=str(ML_10M_TAGS))


@pytest.fixture(scope="module")
def taobao_sample(tmp_path_factory: pytest.TempPathFactory) -> standard_artifacts.Examples:
    _skip_unless(TAOBAO)
    out = tmp_path_factory.mktemp("taobao-sample")
    return _run(seq.TaobaoExecutor, out, input_base=str(TAOBAO))


def test_ml_latest_small(ml_small) -> None:
    splits = _splits(ml_small)
    train, eval_, items = splits[seq.TRAIN], splits[seq.EVAL], splits[seq.ITEMS]
    assert len(train) == 610
    assert _event_count(train) + _event_count(eval_) == 100_836
    assert len(items) == 9_742
    _assert_split_by_time(train, eval_)
    assert _values(items[1], "tags") == ["pixar", "fun"]
    tagged = {item for item, row in items.items() if _values(row, "tags")}
    report = _assert_report(ml_small)
    assert len(tagged) == report["counters"][seq.TAGGED_MOVIES] == 1_572
    assert report["counters"][seq.USERS] == 610
    assert "gender" not in train[1].features.feature  # ml-latest-small has no users file


def test_ml_1m_with_ml_10m_tags(ml_1m) -> None:
    splits = _splits(ml_1m)
    train, eval_, items = splits[seq.TRAIN], splits[seq.EVAL], splits[seq.ITEMS]
    assert len(train) == len(eval_) == 6_040  # every ml-1m user has at least 20 ratings
    assert _event_count(train) + _event_count(eval_) == 1_000_209
    assert len(items) == 3_883
    _assert_split_by_time(train, eval_)
    assert {_values(row, "gender")[0] for row in train.values()} == {"F", "M"}
    assert _values(items[1], "tags")[:2] == ["pixar", "animation"]
    report = _assert_report(ml_1m)
    tagged = sum(bool(_values(row, "tags")) for row in items.values())
    assert tagged == report["counters"][seq.TAGGED_MOVIES] > 2_700
    assert any(f"{ML_10M_TAGS / 'tags.csv'}:" in example for example in report["examples"])


def test_taobao_sample(taobao_sample) -> None:
    splits = _splits(taobao_sample)
    train, eval_, items = splits[seq.TRAIN], splits[seq.EVAL], splits[seq.ITEMS]
    assert len(train) == 815
    assert _event_count(train) + _event_count(eval_) == 84_474
    assert len(items) == 55_367
    _assert_split_by_time(train, eval_)
    behaviors = {b for row in train.values() for b in _values(row, "behaviors")}
    assert behaviors == set(taobao.BEHAVIORS)
    report = _assert_report(taobao_sample)
    assert report["counters"][taobao.OUTSIDE_PERIOD] == 35
    assert report["counters"][seq.USERS] == 815
