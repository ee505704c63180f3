"""Tests for MovieLensExampleGen and TaobaoExampleGen (components.ingest.sequence_example_gen).

Each executor's `Do` runs once per data set (module fixtures), because a Beam pipeline and
reading ml-1m take seconds; the tests then inspect the written TFRecords and the report. One
fixture runs the Beam graph on two DirectRunner threads and compares every example with an
expectation computed here, independently, from the raw lines.
"""

from __future__ import annotations

import io
import json
import pathlib
import zlib
from collections.abc import Mapping

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.errors import UserError
from components.ingest import example_gen_utils, movielens, negatives, sequence_beam, taobao
from components.ingest import sequence_example_gen as seq
from components.ingest import sequence_examples as ex
from components.ingest.report import DatasetError
from trainer.ctr import config as ctr_config

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
    executor: type[seq._SequenceExecutor], out: pathlib.Path, beam_args: list[str] | None = None, **properties
) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    context = seq._SequenceExecutor.Context(beam_pipeline_args=beam_args) if beam_args else None
    executor(context).Do({}, {"examples": [examples]}, properties)
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
        ex.TRAIN: _by_key(_read(examples, ex.TRAIN), "user_id"),
        ex.EVAL: _by_key(_read(examples, ex.EVAL), "user_id"),
        ex.ITEMS: _by_key(_read(examples, ex.ITEMS), "item_id"),
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
    assert not pathlib.Path(examples.uri, seq.REPORT_PARTS).exists()
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
    assert examples.split_names == json.dumps(list(ex.SPLITS))
    splits = _splits(examples)
    train, eval_ = splits[ex.TRAIN], splits[ex.EVAL]
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
    train, eval_ = splits[ex.TRAIN], splits[ex.EVAL]
    for split in (train, eval_):
        assert _values(split[1], "gender") == ["F"]
        assert _values(split[1], "age") == [1]
        assert _values(split[1], "occupation") == [10]
        assert _values(split[1], "zip") == ["48067"]
    assert "gender" not in train[3].features.feature


def test_movielens_items_have_genres_year_and_tags(small_movielens) -> None:
    _, examples = small_movielens
    items = _splits(examples)[ex.ITEMS]
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
    assert counters[ex.USERS] == 3
    assert counters[ex.TRAIN_EVENTS] + counters[ex.EVAL_EVENTS] == 8
    assert counters[ex.USERS_WITHOUT_EVAL] == 1
    assert counters[ex.ITEMS_IN_CATALOG] == 5
    assert counters[ex.TAGGED_MOVIES] == 2
    assert counters[ex.TAGS_WITHOUT_MOVIE] == 1
    assert counters[ex.USERS_WITHOUT_PROFILE] == 1
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


# --- MovieLens, generated: the Beam graph against an independent expectation ---------------------


def _generated_release(root: pathlib.Path) -> dict:
    """A ml-1m-style release with what real files have: users from 1 to 40 ratings (some with
    one), many same-second ratings, rated movies missing from movies.dat, malformed lines, a
    users.dat row without ratings and rating users without a row, tags on unknown movies.

    Returns the raw lines, so the expectation is computed from them and not by the code under test.
    """
    rng = np.random.default_rng(11)
    ratings, bad_lines = [], []
    for user in range(1, 31):
        for _ in range(int(rng.choice([1, 1, 2, 3, 5, 9, 17, 40]))):
            ratings.append(f"{user}::{rng.integers(1, 61)}::{rng.integers(1, 6)}::{1000 + rng.integers(0, 8)}")
    rng.shuffle(ratings)  # users interleaved, as in the real files
    for position in (3, 50, len(ratings) - 1):
        ratings.insert(position, "7::x::3::1000")
        bad_lines.append(position + 1)
    movies = [f"{m}::Movie {m} ({1990 + m % 20})::Drama|Comedy" for m in range(1, 51)]  # 51-60: unknown
    users = [f"{u}::{'MF'[u % 2]}::{u % 7}::{u % 20}::{10000 + u}" for u in [*range(1, 25), 99]]  # 25-30: none
    tags = [f"1::{rng.integers(1, 70)}::{rng.choice(['dark', 'funny', 'slow'])}::{t}" for t in range(60)]
    _write(root / "ratings.dat", ratings)
    _write(root / "movies.dat", movies)
    _write(root / "users.dat", users)
    _write(root / "tags.dat", tags)
    return {"ratings": ratings, "bad_lines": bad_lines, "users": users, "tags": tags}


def _expected(raw: dict) -> dict:
    by_user: dict[int, list[tuple[int, int, float]]] = {}
    for line in raw["ratings"]:
        fields = line.split("::")
        if not fields[1].isdigit():
            continue
        by_user.setdefault(int(fields[0]), []).append((int(fields[3]), int(fields[1]), float(fields[2])))
    train, eval_ = {}, {}
    for user, events in by_user.items():
        events.sort(key=lambda e: e[0])  # stable: file order on equal times
        cut = max(1, int(len(events) * 0.8 + 1e-9))
        train[user], eval_[user] = events[:cut], events[cut:]
    counts: dict[int, dict[str, int]] = {}
    for line in raw["tags"]:
        _, movie, tag, _ = line.split("::")
        counts.setdefault(int(movie), {}).setdefault(tag, 0)
        counts[int(movie)][tag] += 1
    tags = {m: sorted(c, key=lambda t: (-c[t], t)) for m, c in counts.items() if m <= 50}
    profiles = {int(line.split("::")[0]): line.split("::")[1:] for line in raw["users"]}
    return {"train": train, "eval": {u: e for u, e in eval_.items() if e}, "tags": tags, "profiles": profiles}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pathlib.Path, standard_artifacts.Examples]:
    root = tmp_path_factory.mktemp("generated")
    raw = _generated_release(root / "ml")
    threads = ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]
    return raw, root, _run(seq.MovieLensExecutor, root / "out", threads, input_base=str(root / "ml"))


def test_beam_examples_equal_an_independent_expectation(generated) -> None:
    raw, root, examples = generated
    want, got = _expected(raw), _splits(examples)
    assert any(len(events) == 1 for events in want["train"].values())  # the fixture is realistic
    for split in (ex.TRAIN, ex.EVAL):
        assert got[split].keys() == want[split].keys()
        for user, events in want[split].items():
            row = got[split][user]
            assert _values(row, "timestamps") == [e[0] for e in events]
            assert _values(row, "item_ids") == [e[1] for e in events]
            assert _values(row, "ratings") == [e[2] for e in events]
            profile = want["profiles"].get(user)
            assert _values(row, "gender") == ([profile[0]] if profile else [])
            assert _values(row, "zip") == ([profile[3]] if profile else [])
            if split == ex.EVAL:
                assert _values(row, "history_item_ids") == [e[1] for e in want[ex.TRAIN][user]]
                assert _values(row, "history_ratings") == [e[2] for e in want[ex.TRAIN][user]]
    assert sorted(got[ex.ITEMS]) == list(range(1, 51))
    assert {m: _values(row, "tags") for m, row in got[ex.ITEMS].items() if _values(row, "tags")} == want["tags"]
    report = _assert_report(examples)
    counters = report["counters"]
    events = [e for part in (want[ex.TRAIN], want[ex.EVAL]) for user_events in part.values() for e in user_events]
    assert counters[ex.USERS] == len(want[ex.TRAIN]) == 30
    assert counters[ex.USERS_WITHOUT_EVAL] == len(want[ex.TRAIN]) - len(want[ex.EVAL])
    assert counters[ex.TRAIN_EVENTS] + counters[ex.EVAL_EVENTS] == len(events)
    assert counters[movielens.RATINGS_WITHOUT_MOVIE] == sum(e[1] > 50 for e in events)
    assert counters[ex.USERS_WITHOUT_PROFILE] == 6
    assert counters[ex.TAGS_WITHOUT_MOVIE] == sum(int(line.split("::")[1]) > 50 for line in raw["tags"])
    ratings_path = str(root / "ml" / "ratings.dat")
    assert report["files"][ratings_path]["malformed"] == 3
    assert [e.split(": ")[0] for e in report["examples"]] == [f"{ratings_path}:{n}" for n in raw["bad_lines"]]


# --- max_users: a fixed subset of the users ------------------------------------------------------


def _smallest_hashes(users: set[int], n: int) -> set[int]:
    """The `n` users of smallest CRC-32 of their id's text (ties by id), computed here."""
    return set(sorted(users, key=lambda u: (zlib.crc32(str(u).encode()), u))[:n])


@pytest.fixture(scope="module")
def generated_subset(generated, tmp_path_factory: pytest.TempPathFactory) -> list[standard_artifacts.Examples]:
    """The generated release with max_users 12 of its 30 users, twice: on one DirectRunner
    thread and on two, so "the same users" holds across worker layouts too."""
    _, root, _ = generated
    out = tmp_path_factory.mktemp("generated-subset")
    threads = ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]
    return [_run(seq.MovieLensExecutor, out / "one", input_base=str(root / "ml"), max_users=12),
            _run(seq.MovieLensExecutor, out / "two", threads, input_base=str(root / "ml"), max_users=12)]


def test_max_users_keeps_the_same_users_with_their_full_run_examples(generated, generated_subset) -> None:
    raw, _, full_examples = generated
    full = _splits(full_examples)
    kept = _smallest_hashes(set(full[ex.TRAIN]), 12)
    want_eval = kept & full[ex.EVAL].keys()
    assert len(want_eval) < len(kept)  # some kept users have a single rating (train only)
    for examples in generated_subset:
        got = _splits(examples)
        assert got[ex.TRAIN].keys() == kept
        assert got[ex.EVAL].keys() == want_eval
        for split in (ex.TRAIN, ex.EVAL):  # the full run's examples of those users
            assert got[split] == {u: full[split][u] for u in got[split]}
        assert got[ex.ITEMS] == full[ex.ITEMS]  # the catalog is the movies file's, whoever rated
        counters = _assert_report(examples)["counters"]
        assert counters[sequence_beam.USERS_KEPT] == counters[ex.USERS] == 12
        assert counters[sequence_beam.USERS_DROPPED] == 30 - 12
        assert counters[ex.TRAIN_EVENTS] == _event_count(got[ex.TRAIN])
        assert counters[ex.USERS_WITHOUT_PROFILE] == len(kept - set(range(1, 25)))
    # Unset, the report says nothing of it (and the examples are the independent expectation's).
    assert sequence_beam.USERS_KEPT not in _assert_report(full_examples)["counters"]


# --- Taobao, hand-made file --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_taobao(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[pathlib.Path, standard_artifacts.Examples]:
    root = tmp_path_factory.mktemp("taobao")
    path = _write(root / "data" / "UserBehavior.csv", BEHAVIORS_CSV)
    return path, _run(seq.TaobaoExecutor, root / "out", input_base=str(path.parent), negatives_per_click=0)


@pytest.fixture(scope="module")
def small_taobao_negatives(tmp_path_factory: pytest.TempPathFactory) -> standard_artifacts.Examples:
    root = tmp_path_factory.mktemp("taobao-negatives")
    path = _write(root / "data" / "UserBehavior.csv", BEHAVIORS_CSV)
    return _run(seq.TaobaoExecutor, root / "out", input_base=str(path.parent), negatives_per_click=2)


def test_taobao_sequences_split_each_user_by_time(small_taobao) -> None:
    _, examples = small_taobao
    splits = _splits(examples)
    train, eval_ = splits[ex.TRAIN], splits[ex.EVAL]
    assert sorted(train) == [1, 2, 3]
    assert sorted(eval_) == [1, 2]
    assert _values(train[1], "item_ids") == [101, 100, 102, 100]
    assert _values(train[1], "category_ids") == [7, 7, 8, 7]
    assert _values(train[1], "behaviors") == ["cart", "pv", "fav", "buy"]
    assert _values(eval_[1], "item_ids") == [103]
    assert _values(train[2], "timestamps") == [1505117799]  # outside the period, kept
    assert _values(eval_[2], "category_ids") == [9]  # as logged, not the catalog's
    assert _values(train[1], "ratings") == [negatives.CLICK_RATING] * 4  # every behaviour is a click
    _assert_split_by_time(train, eval_)


def test_taobao_negatives_follow_each_click(small_taobao, small_taobao_negatives) -> None:
    plain, sampled = _splits(small_taobao[1]), _splits(small_taobao_negatives)
    catalog = {item: _values(row, "category_id")[0] for item, row in sampled[ex.ITEMS].items()}
    assert sampled[ex.ITEMS].keys() == plain[ex.ITEMS].keys()
    for split in (ex.TRAIN, ex.EVAL):
        assert sampled[split].keys() == plain[split].keys()
        for user, row in sampled[split].items():
            clicks = _values(plain[split][user], "item_ids")
            own = set(_values(plain[ex.TRAIN][user], "item_ids")) | set(
                _values(plain[ex.EVAL][user], "item_ids") if user in plain[ex.EVAL] else [])
            items, ratings = _values(row, "item_ids"), _values(row, "ratings")
            assert items[::3] == clicks  # the split is the clicks' split, negatives follow
            assert ratings == [5.0, 0.0, 0.0] * len(clicks)
            assert _values(row, "timestamps") == [t for t in _values(plain[split][user], "timestamps") for _ in "xyz"]
            negative_items = items[1::3] + items[2::3]
            assert negative_items and not set(negative_items) & own and set(negative_items) <= catalog.keys()
            categories = _values(row, "category_ids")
            assert categories[1::3] + categories[2::3] == [catalog[i] for i in negative_items]
            assert set(_values(row, "behaviors")[1::3]) == {negatives.NEGATIVE_BEHAVIOR}
    report = _assert_report(small_taobao_negatives)["counters"]
    assert report[ex.SAMPLED_NEGATIVES] == 2 * (report[ex.TRAIN_EVENTS] + report[ex.EVAL_EVENTS]) == 16


def test_taobao_items_and_report(small_taobao) -> None:
    path, examples = small_taobao
    items = _splits(examples)[ex.ITEMS]
    assert {item: _values(row, "category_id") for item, row in items.items()} == {
        100: [7], 101: [7], 102: [8], 103: [8], 104: [8], 105: [8]
    }
    report = _assert_report(examples)
    assert report["counters"][taobao.OUTSIDE_PERIOD] == 1
    assert report["counters"][ex.ITEMS_IN_SEVERAL_CATEGORIES] == 1
    assert report["counters"][ex.USERS] == 3
    assert [example.split(": ")[0] for example in report["examples"]] == [f"{path}:7", f"{path}:10"]


SUBSET_CLICKS = {11: 5, 12: 2, 13: 6, 14: 1, 15: 7, 16: 6, 17: 3, 18: 7}
"""Clicks per user of a hand-made 8-user file (user 14 has one: train only)."""
SUBSET_BEHAVIORS_CSV = [  # users interleaved in time, 23 items in 4 categories
    f"{user},{200 + (7 * user + 3 * k) % 23},{30 + (user + k) % 4},pv,{1511600000 + 60 * k + user}"
    for k in range(7) for user, clicks in SUBSET_CLICKS.items() if k < clicks
]


@pytest.fixture(scope="module")
def taobao_subset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, standard_artifacts.Examples]:
    """The 8-user file over all users and with max_users 3, without negatives (to compare the
    clicks) and with one negative per click (to check the catalog they are drawn from)."""
    root = tmp_path_factory.mktemp("taobao-subset")
    data = str(_write(root / "data" / "UserBehavior.csv", SUBSET_BEHAVIORS_CSV).parent)
    runs = {"full": {"negatives_per_click": 0}, "subset": {"negatives_per_click": 0, "max_users": 3},
            "negatives": {"negatives_per_click": 1, "max_users": 3}}
    return {name: _run(seq.TaobaoExecutor, root / name, input_base=data, **props) for name, props in runs.items()}


def _item_ids(splits: Mapping[str, Mapping[int, tf.train.Example]], every_other: bool = False) -> set[int]:
    """The item ids of the users' train and eval events (`every_other`: the sampled negatives,
    with one per click)."""
    return {i for split in (ex.TRAIN, ex.EVAL) for row in splits[split].values()
            for i in _values(row, "item_ids")[slice(1, None, 2) if every_other else slice(None)]}


def test_taobao_max_users_keeps_the_users_and_builds_the_catalog_from_their_events(taobao_subset) -> None:
    full, subset = _splits(taobao_subset["full"]), _splits(taobao_subset["subset"])
    assert len(full[ex.TRAIN]) == 8 and len(full[ex.EVAL]) < 8  # the fixture has single-event users
    kept = _smallest_hashes(set(full[ex.TRAIN]), 3)
    assert subset[ex.TRAIN].keys() == kept and subset[ex.EVAL].keys() == kept & full[ex.EVAL].keys()
    for split in (ex.TRAIN, ex.EVAL):
        assert subset[split] == {u: full[split][u] for u in subset[split]}
    kept_items = _item_ids(subset)
    assert subset[ex.ITEMS].keys() == kept_items < full[ex.ITEMS].keys()
    sampled = _splits(taobao_subset["negatives"])
    assert sampled[ex.TRAIN].keys() == kept and sampled[ex.ITEMS].keys() == kept_items
    negatives = _item_ids(sampled, every_other=True)
    assert negatives and negatives <= kept_items  # drawn from the kept users' items only
    for name in ("subset", "negatives"):
        counters = _assert_report(taobao_subset[name])["counters"]
        assert (counters[sequence_beam.USERS_KEPT], counters[sequence_beam.USERS_DROPPED]) == (3, 5)


@pytest.mark.parametrize("value", ["0", 0, -3, "1.5", 1.5, "many", True, ""])
def test_max_users_mistakes_name_the_field_before_any_data_is_read(value) -> None:
    message = rf"source_options.max_users: {value!r} is not a positive integer".replace("(", r"\(")
    with pytest.raises(UserError, match=message):
        seq.example_gen("movielens", "/absent", max_users=value)
    with pytest.raises(UserError, match="^" + message):  # not a DatasetError for /absent
        seq.prepare_data("taobao", "/absent", "demo", io.StringIO(), max_users=value)
    with pytest.raises(UserError, match="^families.ctr." + message):
        ctr_config.prepare_data("movielens", "/absent", "demo", io.StringIO(), max_users=value)


@pytest.mark.parametrize("names", [[], ["UserBehavior.csv", "UserBehavior_sample.csv"]])
def test_taobao_needs_exactly_one_behavior_file(tmp_path: pathlib.Path, names: list[str]) -> None:
    for name in names:
        _write(tmp_path / name, BEHAVIORS_CSV[:1])
    with pytest.raises(DatasetError, match="exactly one UserBehavior"):
        seq.find_behavior_file(tmp_path)


def test_components_declare_their_parameters() -> None:
    properties = {"input_base": "/data/ml-1m", "tags_dir": "/data/ml-10m-tags"}
    assert seq.MovieLensExampleGen(**properties).exec_properties == {**properties, "max_users": None}
    untagged = seq.MovieLensExampleGen(input_base="/data/ml-latest-small")
    assert untagged.exec_properties["tags_dir"] is None
    taobao_gen = seq.TaobaoExampleGen(input_base="/data/taobao")
    assert taobao_gen.outputs["examples"].type is standard_artifacts.Examples
    assert taobao_gen.exec_properties["negatives_per_click"] == seq.DEFAULT_NEGATIVES_PER_CLICK == 1
    assert seq.example_gen("taobao", "/data/taobao", negatives_per_click="3").exec_properties[
        "negatives_per_click"] == 3
    for dataset in ("synthetic", "movielens", "taobao", "mind"):  # "1500" from a flag, 1500 from YAML
        for value in ("1500", 1500):
            assert seq.example_gen(dataset, "/data", max_users=value).exec_properties["max_users"] == 1500


@pytest.mark.parametrize(("dataset", "value", "message"), [
    ("taobao", "-1", "'-1' is not a non-negative integer"),
    ("taobao", "two", "'two' is not a non-negative integer"),
    ("taobao", "1.5", "'1.5' is not a non-negative integer"),
    ("movielens", "1", "only Taobao samples negatives"),
])
def test_negatives_option_mistakes_name_the_field(dataset: str, value: str, message: str) -> None:
    with pytest.raises(UserError, match=f"source_options.negatives_per_click: {message}"):
        seq.example_gen(dataset, "/data", negatives_per_click=value)


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
    train, eval_, items = splits[ex.TRAIN], splits[ex.EVAL], splits[ex.ITEMS]
    assert len(train) == 610
    assert _event_count(train) + _event_count(eval_) == 100_836
    assert len(items) == 9_742
    _assert_split_by_time(train, eval_)
    assert _values(items[1], "tags") == ["pixar", "fun"]
    tagged = {item for item, row in items.items() if _values(row, "tags")}
    report = _assert_report(ml_small)
    assert len(tagged) == report["counters"][ex.TAGGED_MOVIES] == 1_572
    assert report["counters"][ex.USERS] == 610
    assert "gender" not in train[1].features.feature  # ml-latest-small has no users file


def test_ml_1m_with_ml_10m_tags(ml_1m) -> None:
    splits = _splits(ml_1m)
    train, eval_, items = splits[ex.TRAIN], splits[ex.EVAL], splits[ex.ITEMS]
    assert len(train) == len(eval_) == 6_040  # every ml-1m user has at least 20 ratings
    assert _event_count(train) + _event_count(eval_) == 1_000_209
    assert len(items) == 3_883
    _assert_split_by_time(train, eval_)
    assert {_values(row, "gender")[0] for row in train.values()} == {"F", "M"}
    assert _values(items[1], "tags")[:2] == ["pixar", "animation"]
    report = _assert_report(ml_1m)
    tagged = sum(bool(_values(row, "tags")) for row in items.values())
    assert tagged == report["counters"][ex.TAGGED_MOVIES] > 2_700
    assert any(f"{ML_10M_TAGS / 'tags.csv'}:" in example for example in report["examples"])


def test_taobao_sample(taobao_sample) -> None:
    splits = _splits(taobao_sample)
    train, eval_, items = splits[ex.TRAIN], splits[ex.EVAL], splits[ex.ITEMS]
    assert len(train) == 815
    assert _event_count(train) + _event_count(eval_) == 2 * 84_474  # each click and its negative
    assert len(items) == 55_367
    _assert_split_by_time(train, eval_)
    behaviors = {b for row in train.values() for b in _values(row, "behaviors")}
    assert behaviors == {*taobao.BEHAVIORS, negatives.NEGATIVE_BEHAVIOR}
    for row in train.values():
        item_ids, ratings = _values(row, "item_ids"), _values(row, "ratings")
        assert ratings == [5.0, 0.0] * (len(ratings) // 2)
        assert not set(item_ids[1::2]) & set(item_ids[::2])
        assert set(item_ids[1::2]) <= items.keys()
    report = _assert_report(taobao_sample)
    assert report["counters"][taobao.OUTSIDE_PERIOD] == 35
    assert report["counters"][ex.USERS] == 815
    assert report["counters"][ex.TRAIN_EVENTS] + report["counters"][ex.EVAL_EVENTS] == 84_474
    assert report["counters"][ex.SAMPLED_NEGATIVES] == 84_474
