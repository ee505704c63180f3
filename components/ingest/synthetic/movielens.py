"""Synthetic MovieLens data (``generate_movielens``): ratings.csv, movies.csv, tags.csv.

The files follow the ml-latest-small format byte for byte, so every parser, ExampleGen and
pipeline runs on them unchanged; the same config (seed included) always gives byte-identical
files. The package docstring (``components.ingest.synthetic``) says why they exist. The planted
structure:

* Each movie has ``genres_per_movie`` distinct genres (the MovieLens genre names) and
  ``tags_per_movie`` distinct tags drawn from the tag pools (``tags_per_genre`` made-up tags)
  of its genres; a title ``Words (Year)``, some ``Words, The (Year)`` to exercise CSV quoting.
* Each user prefers ``preferred_genres_per_user`` genres and ``preferred_tags_per_user`` tags
  from those genres' pools. A share ``preferred_share`` of a user's ratings goes to movies
  having a preferred genre. A rating is round-to-half of ``base_rating + user bias + movie bias
  + genre_weight * [shares a preferred genre] + tag_weight * |preferred tags & movie tags| +
  noise``, clipped to [0.5, 5]; so ratings on preferred genres are higher by about
  ``genre_weight``.
* A share ``tagger_share`` of users tag movies they rated 4 or more (else their best rated):
  each tag is one of their preferred tags with probability ``tag_consistency``, otherwise one
  of the movie's tags. Ratings are time-ordered per user (sessions of exponential gaps); a tag
  follows the rating of its movie.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os
import pathlib
from typing import Any, Sequence

import numpy as np

from components.ingest.synthetic.common import (
    _BEHAVIOR_STREAM,
    _SECONDS_PER_DAY,
    _WORLD_STREAM,
    _check_range,
    _check_share,
    _make_words,
    _preset,
    _rng,
)

MOVIELENS_GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
"""The genre names of ml-latest-small (its README), in its canonical order."""


@dataclasses.dataclass
class SyntheticMovieLensConfig:
    """Sizes and signal strengths of a synthetic ml-latest-small style data set.

    The defaults are the ``demo`` preset (about ml-latest-small's size); the module docstring
    describes the planted structure. Range fields are inclusive ``(low, high)`` pairs.
    """

    seed: int = 0
    """Seed of every random draw: the same config gives byte-identical files."""
    num_users: int = 610
    """Users (ids 1..num_users), each with ratings."""
    num_movies: int = 3_000
    """Rows of movies.csv; ids are sparse, as MovieLens' are."""
    ratings_per_user: tuple[int, int] = (20, 300)
    """Range of ratings per user (MovieLens keeps users with at least 20)."""
    genres_per_movie: tuple[int, int] = (1, 3)
    """Range of distinct genres per movie."""
    tags_per_genre: int = 8
    """Size of each genre's tag pool."""
    tags_per_movie: tuple[int, int] = (2, 5)
    """Range of distinct tags per movie, drawn from its genres' pools."""
    preferred_genres_per_user: tuple[int, int] = (1, 3)
    """Range of a user's number of preferred genres."""
    preferred_tags_per_user: int = 3
    """Preferred tags per user, from the pools of their preferred genres."""
    preferred_share: float = 0.6
    """Share of a user's ratings that go to movies having one of their preferred genres."""
    base_rating: float = 2.8
    """Rating of a movie outside the user's preferences, before biases and noise."""
    genre_weight: float = 1.2
    """Rating added when the movie has a preferred genre."""
    tag_weight: float = 0.4
    """Rating added per preferred tag the movie has."""
    user_bias_std: float = 0.3
    movie_bias_std: float = 0.3
    rating_noise_std: float = 0.5
    tagger_share: float = 0.3
    """Share of users who tag (ml-latest-small: 58 of 610)."""
    tags_per_tagger: tuple[int, int] = (3, 30)
    """Range of tag applications per tagger."""
    tag_consistency: float = 0.8
    """Probability that a tag application uses one of the user's preferred tags."""
    first_year: int = 1950
    last_year: int = 2018
    start_date: str = "2000-01-01"
    """ISO date (UTC) before which no rating is made; users start within 18 years of it."""

    def __post_init__(self) -> None:
        for name in ("ratings_per_user", "genres_per_movie", "tags_per_movie",
                     "preferred_genres_per_user", "tags_per_tagger"):  # fmt: skip
            setattr(self, name, tuple(getattr(self, name)))
        _check_range("ratings_per_user", self.ratings_per_user, 1)
        _check_range("genres_per_movie", self.genres_per_movie, 1)
        _check_range("tags_per_movie", self.tags_per_movie, 1)
        _check_range("preferred_genres_per_user", self.preferred_genres_per_user, 1)
        _check_range("tags_per_tagger", self.tags_per_tagger, 1)
        num_genres = len(MOVIELENS_GENRES)
        if max(self.genres_per_movie[1], self.preferred_genres_per_user[1]) > num_genres:
            raise ValueError(f"there are only {num_genres} genres")
        if self.tags_per_movie[1] > self.tags_per_genre * self.genres_per_movie[0]:
            raise ValueError("tags_per_movie cannot exceed the tag pool of a movie's genres")
        if self.preferred_tags_per_user > self.tags_per_genre:
            raise ValueError("preferred_tags_per_user cannot exceed tags_per_genre")
        if self.ratings_per_user[1] > self.num_movies:
            raise ValueError("ratings_per_user cannot exceed num_movies")
        _check_share("preferred_share", self.preferred_share, open_ends=True)
        _check_share("tagger_share", self.tagger_share)
        _check_share("tag_consistency", self.tag_consistency)
        if not self.first_year <= self.last_year:
            raise ValueError("first_year must be <= last_year")
        datetime.date.fromisoformat(self.start_date)

    @classmethod
    def preset(cls, name: str) -> SyntheticMovieLensConfig:
        """Returns a named preset: ``tiny`` (unit tests), ``small`` (CTR end-to-end tests) or
        ``demo`` (ml-latest-small size).

        Raises:
            ValueError: ``name`` is not a preset; the message lists the valid ones.
        """
        return _preset(cls, MOVIELENS_PRESETS, name)


# The tag-profiling family's presets (pipeline/families.py: TAGS): its protocol needs
# non-clicks (ratings <= 1.5; ml-1m has 5.6 % ones) and tagged articles (rows without a tag are
# dropped), which the generic presets barely have (the `tiny` set gives one non-click in 126
# training samples). So: ratings centred lower with a larger genre effect (about 11 % <= 1.5,
# 54 % >= 3.5), every user tags (every liked movie can carry tags), tags mostly the movie's
# own (genre pools of 4 tags) and one preferred genre per user: a user's history tags predict
# the tags of their later clicks (docs/tags.md).
_TAGS_SIGNAL: dict[str, Any] = dict(
    tags_per_genre=4, tags_per_movie=(2, 4), genres_per_movie=(1, 2), preferred_genres_per_user=(1, 1),
    base_rating=2.2, genre_weight=2.0, rating_noise_std=0.6, tagger_share=1.0, tags_per_tagger=(5, 20),
    tag_consistency=0.2,
)

MOVIELENS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(num_users=60, num_movies=300, ratings_per_user=(20, 60)),
    # The CTR family's tiny runs: as tiny, with 5x the users, so that a genre preference shared
    # across users is learnable in a few hundred steps instead of each user's items memorised.
    "small": dict(num_users=300, num_movies=300, ratings_per_user=(20, 60)),
    "demo": {},
    "tags-tiny": dict(num_users=300, num_movies=300, ratings_per_user=(20, 60), **_TAGS_SIGNAL),
    "tags-demo": dict(_TAGS_SIGNAL),
}
"""Preset name -> overrides of the ``SyntheticMovieLensConfig`` defaults."""


@dataclasses.dataclass(frozen=True, eq=False)
class MovieLensWorld:
    """The latent state behind a synthetic MovieLens data set, rebuilt from the config alone.
    Movie index m is ``movie_ids[m]``; user index u is userId u + 1."""

    config: SyntheticMovieLensConfig
    movie_ids: np.ndarray
    """[M] sorted sparse movie ids."""
    movie_titles: list[str]
    movie_genres: np.ndarray
    """[M, G] bool over ``MOVIELENS_GENRES``."""
    movie_tags: np.ndarray
    """[M, T] bool over tag ids."""
    movie_bias: np.ndarray
    tag_names: list[str]
    """Tag id -> tag; genre g's pool is ids ``[g * tags_per_genre, (g + 1) * tags_per_genre)``."""
    user_genres: np.ndarray
    """[U, G] bool: preferred genres."""
    user_tags: np.ndarray
    """[U, T] bool: preferred tags."""
    user_bias: np.ndarray

    @classmethod
    def build(cls, config: SyntheticMovieLensConfig) -> MovieLensWorld:
        """Draws movies, tag pools and user preferences from ``config.seed``."""
        c, rng = config, _rng(config.seed, _WORLD_STREAM)
        num_genres, pool = len(MOVIELENS_GENRES), config.tags_per_genre
        movie_genres = _distinct_flags(rng, c.num_movies, num_genres, c.genres_per_movie)
        user_genres = _distinct_flags(rng, c.num_users, num_genres, c.preferred_genres_per_user)
        words = _make_words(rng, num_genres * pool + 3 * c.num_movies)
        tag_words, title_words = words[: num_genres * pool], words[num_genres * pool :]
        two_word = rng.random(len(tag_words)) < 0.3
        tag_names = [
            f"{w} {tag_words[(i + 1) % len(tag_words)]}" if two else w
            for i, (w, two) in enumerate(zip(tag_words, two_word.tolist()))
        ]
        tags_per_movie = rng.integers(c.tags_per_movie[0], c.tags_per_movie[1] + 1, c.num_movies)
        movie_tags = [_pick_tags(rng, g, pool, n) for g, n in zip(movie_genres, tags_per_movie)]
        user_tags = [_pick_tags(rng, g, pool, c.preferred_tags_per_user) for g in user_genres]
        return cls(
            config=c,
            movie_ids=np.sort(rng.choice(8 * c.num_movies, size=c.num_movies, replace=False)) + 1,
            movie_titles=_movie_titles(rng, c, title_words),
            movie_genres=movie_genres,
            movie_tags=np.stack(movie_tags),
            movie_bias=rng.normal(0.0, c.movie_bias_std, size=c.num_movies),
            tag_names=tag_names,
            user_genres=user_genres,
            user_tags=np.stack(user_tags),
            user_bias=rng.normal(0.0, c.user_bias_std, size=c.num_users),
        )

    def preferred_genres(self, user_id: int) -> tuple[str, ...]:
        """Genre names the user (a MovieLens userId) prefers."""
        return tuple(g for g, on in zip(MOVIELENS_GENRES, self.user_genres[user_id - 1]) if on)

    def preferred_tags(self, user_id: int) -> tuple[str, ...]:
        """Tags the user (a MovieLens userId) prefers."""
        flags = self.user_tags[user_id - 1]
        return tuple(self.tag_names[t] for t in np.flatnonzero(flags).tolist())


def _distinct_flags(
    rng: np.random.Generator, rows: int, width: int, count_range: tuple[int, int]
) -> np.ndarray:
    """[rows, width] bool with a uniform number in ``count_range`` of random flags per row."""
    count = rng.integers(count_range[0], count_range[1] + 1, size=rows)
    rank = np.argsort(np.argsort(rng.random((rows, width)), axis=1), axis=1)
    return rank < count[:, None]


def _pick_tags(rng: np.random.Generator, genres: np.ndarray, pool: int, count: int) -> np.ndarray:
    """Flags (over all tag ids) ``count`` distinct tags from the pools of the flagged genres."""
    candidates = (np.flatnonzero(genres)[:, None] * pool + np.arange(pool)).ravel()
    flags = np.zeros(len(genres) * pool, dtype=bool)
    flags[rng.choice(candidates, size=count, replace=False)] = True
    return flags


def _movie_titles(
    rng: np.random.Generator, c: SyntheticMovieLensConfig, words: list[str]
) -> list[str]:
    """``Words (Year)``; one in ten ``Words, The (Year)`` like MovieLens, which needs quoting."""
    lengths = rng.integers(1, 4, size=c.num_movies)
    years = rng.integers(c.first_year, c.last_year + 1, size=c.num_movies)
    article = rng.random(c.num_movies) < 0.1
    titles = []
    rows = zip(lengths.tolist(), years.tolist(), article.tolist())
    for m, (length, year, the) in enumerate(rows):
        name = " ".join(w.capitalize() for w in words[3 * m : 3 * m + length])
        titles.append(f"{name}{', The' if the else ''} ({year})")
    return titles


@dataclasses.dataclass(frozen=True)
class GeneratedMovieLens:
    """Where ``generate_movielens`` wrote the files, and what they hold."""

    out_dir: pathlib.Path
    ratings_path: pathlib.Path
    movies_path: pathlib.Path
    tags_path: pathlib.Path
    num_users: int
    num_movies: int
    num_ratings: int
    num_tags: int
    """Tag applications (rows of tags.csv)."""


def generate_movielens(
    out_dir: str | os.PathLike, config: SyntheticMovieLensConfig
) -> GeneratedMovieLens:
    """Writes ratings.csv, movies.csv and tags.csv in the ml-latest-small format.

    Args:
        out_dir: directory to write into (created if needed; files are overwritten).
        config: sizes, seed and signal strengths; the module docstring describes the structure.

    Returns:
        The paths and counts of what was written.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = MovieLensWorld.build(config)
    rng = _rng(config.seed, _BEHAVIOR_STREAM)
    ratings, tags = [], []
    for user in range(config.num_users):
        user_ratings = _rate(world, rng, user)
        ratings += user_ratings
        tags += _tag(world, rng, user, user_ratings)
    paths = (out / "ratings.csv", out / "movies.csv", out / "tags.csv")
    _write_csv(paths[0], ("userId", "movieId", "rating", "timestamp"), ratings)
    _write_csv(
        paths[1],
        ("movieId", "title", "genres"),
        [
            (movie_id, title, "|".join(g for g, on in zip(MOVIELENS_GENRES, flags) if on))
            for movie_id, title, flags in zip(
                world.movie_ids.tolist(), world.movie_titles, world.movie_genres
            )
        ],
    )
    _write_csv(paths[2], ("userId", "movieId", "tag", "timestamp"), tags)
    return GeneratedMovieLens(
        out, *paths, num_users=config.num_users, num_movies=config.num_movies,
        num_ratings=len(ratings), num_tags=len(tags),
    )  # fmt: skip


def _rate(world: MovieLensWorld, rng: np.random.Generator, user: int) -> list[tuple]:
    """One user's ratings rows (userId, movieId, "4.5", timestamp), sorted by movieId."""
    c = world.config
    preferred = (world.movie_genres & world.user_genres[user]).any(axis=1)
    num_preferred = int(preferred.sum())
    weight = np.where(
        preferred,
        c.preferred_share / max(num_preferred, 1),
        (1.0 - c.preferred_share) / max(len(preferred) - num_preferred, 1),
    )
    count = int(rng.integers(c.ratings_per_user[0], c.ratings_per_user[1] + 1))
    # Without replacement, proportional to weight (Gumbel top-k).
    keys = np.log(weight) + rng.gumbel(size=c.num_movies)
    movies = np.sort(np.argpartition(-keys, count - 1)[:count])
    tag_hits = (world.movie_tags[movies] & world.user_tags[user]).sum(axis=1)
    mean = (
        c.base_rating + world.user_bias[user] + world.movie_bias[movies]
        + c.genre_weight * preferred[movies] + c.tag_weight * tag_hits
    )  # fmt: skip
    noisy = mean + rng.normal(0.0, c.rating_noise_std, size=count)
    rating = np.clip(np.round(noisy * 2.0) / 2.0, 0.5, 5.0)
    # Sessions: the user starts somewhere in 18 years and rates at exponential gaps (~3 h),
    # in random order of movies.
    start = datetime.datetime.fromisoformat(c.start_date).replace(tzinfo=datetime.timezone.utc)
    first = start.timestamp() + rng.uniform(0.0, 18 * 365 * _SECONDS_PER_DAY)
    times = (first + np.cumsum(rng.exponential(3 * 3600, size=count)))[rng.permutation(count)]
    return [
        (user + 1, int(world.movie_ids[m]), f"{r:.1f}", int(t))
        for m, r, t in zip(movies.tolist(), rating.tolist(), times.tolist())
    ]


def _tag(world: MovieLensWorld, rng: np.random.Generator, user: int, ratings: list[tuple]) -> list:
    """A tagger's rows (userId, movieId, tag, timestamp) on movies they rated >= 4 (else their
    best), mostly with their preferred tags; sorted by movieId then tag."""
    c = world.config
    if rng.random() >= c.tagger_share:
        return []
    values = np.array([float(r[2]) for r in ratings])
    liked = np.flatnonzero(values >= min(4.0, values.max()))
    rows = {}
    for _ in range(int(rng.integers(c.tags_per_tagger[0], c.tags_per_tagger[1] + 1))):
        _, movie_id, _, rated_at = ratings[int(rng.choice(liked))]
        own = rng.random() < c.tag_consistency
        movie = int(np.searchsorted(world.movie_ids, movie_id))
        tags = np.flatnonzero(world.user_tags[user] if own else world.movie_tags[movie])
        tag = world.tag_names[int(rng.choice(tags))]
        rows.setdefault((movie_id, tag), rated_at + int(rng.integers(1, 3600)))
    return [(user + 1, m, tag, t) for (m, tag), t in sorted(rows.items())]


def _write_csv(path: pathlib.Path, header: Sequence[str], rows: list) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
