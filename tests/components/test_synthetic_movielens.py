"""Tests of the synthetic MovieLens generator: format, determinism, planted preferences.

The files are parsed here with small independent parsers (not the project's), so a format slip
in the generator cannot hide behind the same slip in a shared parser.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import filecmp
import pathlib
import re

import numpy as np
import pytest

from components.ingest import synthetic

MOVIELENS_FILES = ("ratings.csv", "movies.csv", "tags.csv")


@pytest.fixture(scope="module")
def tiny_movielens(tmp_path_factory):
    config = synthetic.SyntheticMovieLensConfig.preset("tiny")
    out = tmp_path_factory.mktemp("movielens")
    return config, synthetic.generate_movielens(out, config)


def read_csv(path: pathlib.Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def test_movielens_presets_and_invalid_names():
    with pytest.raises(ValueError, match="tiny, small, demo"):
        synthetic.SyntheticMovieLensConfig.preset("huge")
    small = synthetic.SyntheticMovieLensConfig.preset("small")  # the CTR family's tiny runs
    assert small.num_users == 5 * synthetic.SyntheticMovieLensConfig.preset("tiny").num_users


def test_movielens_config_validation():
    with pytest.raises(ValueError, match="ratings_per_user"):
        synthetic.SyntheticMovieLensConfig(num_movies=10, ratings_per_user=(5, 20))


def test_movielens_determinism(tmp_path):
    config = synthetic.SyntheticMovieLensConfig.preset("tiny")
    synthetic.generate_movielens(tmp_path / "a", config)
    synthetic.generate_movielens(tmp_path / "b", config)
    synthetic.generate_movielens(tmp_path / "c", dataclasses.replace(config, seed=7))
    match, _, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", MOVIELENS_FILES, shallow=False)
    assert sorted(match) == sorted(MOVIELENS_FILES)
    _, mismatch, _ = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "c", MOVIELENS_FILES, shallow=False
    )
    assert sorted(mismatch) == sorted(MOVIELENS_FILES)


def test_movielens_format(tiny_movielens):
    config, generated = tiny_movielens
    header, movies = read_csv(generated.movies_path)
    assert header == ["movieId", "title", "genres"] and len(movies) == config.num_movies
    movie_ids = [int(m[0]) for m in movies]
    assert movie_ids == sorted(set(movie_ids))
    for _, title, genres in movies:
        assert re.fullmatch(r".+ \((\d{4})\)", title)
        assert set(genres.split("|")) <= set(synthetic.MOVIELENS_GENRES)
    raw = generated.movies_path.read_text(encoding="utf-8")
    assert re.search(r'^\d+,".+, The \(\d{4}\)",', raw, re.MULTILINE)  # quoted commas

    header, ratings = read_csv(generated.ratings_path)
    assert header == ["userId", "movieId", "rating", "timestamp"]
    assert len(ratings) == generated.num_ratings
    keys = [(int(u), int(m)) for u, m, _, _ in ratings]
    assert keys == sorted(set(keys)) and {m for _, m in keys} <= set(movie_ids)
    assert {u for u, _ in keys} == set(range(1, config.num_users + 1))
    per_user = collections.Counter(u for u, _ in keys)
    low, high = config.ratings_per_user
    assert all(low <= n <= high for n in per_user.values())
    assert {r for _, _, r, _ in ratings} <= {f"{0.5 * k:.1f}" for k in range(1, 11)}
    assert all(9 <= len(t) <= 10 and t.isdigit() for *_, t in ratings)

    header, tags = read_csv(generated.tags_path)
    assert header == ["userId", "movieId", "tag", "timestamp"] and len(tags) == generated.num_tags
    assert tags and {(int(u), int(m)) for u, m, _, _ in tags} <= set(keys)
    assert len({(u, m, t) for u, m, t, _ in tags}) == len(tags)


def test_movielens_planted_preferences(tiny_movielens):
    config, generated = tiny_movielens
    world = synthetic.MovieLensWorld.build(config)
    _, movies = read_csv(generated.movies_path)
    genres = {int(m): set(g.split("|")) for m, _, g in movies}
    by_user = collections.defaultdict(lambda: ([], []))
    for user, movie, rating, _ in read_csv(generated.ratings_path)[1]:
        preferred = genres[int(movie)] & set(world.preferred_genres(int(user)))
        by_user[int(user)][0 if preferred else 1].append(float(rating))
    gaps = [np.mean(pref) - np.mean(other) for pref, other in by_user.values() if pref and other]
    print(f"mean rating gap preferred - other genres: {np.mean(gaps):.2f}")
    assert np.mean(gaps) >= 0.5
    shares = [len(pref) / (len(pref) + len(other)) for pref, other in by_user.values()]
    assert np.mean(shares) > 0.5  # most ratings go to preferred genres

    _, tags = read_csv(generated.tags_path)
    consistent = np.mean([tag in world.preferred_tags(int(u)) for u, _, tag, _ in tags])
    assert consistent >= 0.7
