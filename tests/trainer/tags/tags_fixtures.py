"""Users with planted tag preferences and the tagged articles they click, for the tag-model tests.

`REAL_TAGS` tags fall into `GENRES` genres of `TAGS_PER_GENRE` tags each (tag ids `2 ..`,
genre ids `2 ..`; 0 is padding, 1 unknown). Each user prefers one to three tags. Their
history (`user_tags`) is mostly those tags plus noise, with unknown ids mixed in; their
genres (`user_categories`) are those of the history's tags, so a user whose history lost its
tags (ml-1m movies without ml-10m tags) keeps a weaker signal through genres; a few users
have nothing at all. The ml-1m demographics (`user_gender`, `user_age`, `user_occupation`,
one id each) carry no signal.

An article has one to `N` tags; it is clicked with probability `P_CLICK_PREFERRED` if one of
them is preferred by the user, else `P_CLICK_OTHER`. A model that learns which tags a user's
fields point to ranks clicks above non-clicks (chance AUC 0.5) and puts a preferred tag first
(chance Prec@1 about 2 / `REAL_TAGS`).
"""

from __future__ import annotations

import numpy as np

GENRES, TAGS_PER_GENRE = 5, 4
REAL_TAGS = GENRES * TAGS_PER_GENRE
NUM_TAGS = 2 + REAL_TAGS
H_TAGS, H_GENRES, N = 12, 6, 3  # history tags, history genres, tags per article
FIELD_SIZES = {
    "tags": NUM_TAGS,
    "categories": 2 + GENRES,
    "gender": 2 + 2,  # ml-1m: F, M
    "age": 2 + 7,  # ml-1m: 7 age buckets
    "occupation": 2 + 21,  # ml-1m: 21 occupations
}
P_CLICK_PREFERRED, P_CLICK_OTHER = 0.95, 0.02
P_LIKED_IN_HISTORY = 0.85  # share of history tags that the user likes (the rest: noise)
P_UNKNOWN = 0.05  # share of ids replaced by the unknown id 1
P_NO_TAGS, P_EMPTY = 0.05, 0.03  # users without history tags; users without any history


def genre_of(tags: np.ndarray) -> np.ndarray:
    """The genre id of real tag ids."""
    return 2 + (tags - 2) // TAGS_PER_GENRE


def _padded(ids: list[int] | np.ndarray, width: int) -> np.ndarray:
    row = np.zeros(width, "int32")
    row[: len(ids)] = ids
    return row


def _unknown(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """`ids` with a few real ids replaced by the unknown id 1."""
    return np.where((ids >= 2) & (rng.random(ids.shape) < P_UNKNOWN), 1, ids).astype("int32")


def users(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """`n` users: the `user_<f>` inputs of every field in `FIELD_SIZES` and the preferred tags.

    Returns:
        `(fields, preferred)`: a dict of int32 `[n, H_f]` arrays and, per user, the array of
        the real tag ids they prefer.
    """
    rows: dict[str, list[np.ndarray]] = {f"user_{f}": [] for f in FIELD_SIZES}
    preferred = []
    for _ in range(n):
        liked = 2 + rng.choice(REAL_TAGS, rng.integers(1, 4), replace=False)
        preferred.append(liked)
        draw = rng.random()
        length = 0 if draw < P_NO_TAGS + P_EMPTY else int(rng.integers(5, H_TAGS + 1))
        noise = 2 + rng.integers(0, REAL_TAGS, length)
        history = np.where(rng.random(length) < P_LIKED_IN_HISTORY, rng.choice(liked, length), noise)
        # Genres of the watched movies: those of the tags, or of the liked tags when the
        # movies carried no tags; none at all for empty users.
        genres = np.unique(genre_of(history if length else liked))[:H_GENRES]
        if draw < P_EMPTY:
            genres = genres[:0]
        rows["user_tags"].append(_unknown(rng, _padded(history, H_TAGS)))
        rows["user_categories"].append(_unknown(rng, _padded(genres, H_GENRES)))
        for field in ("gender", "age", "occupation"):
            value = 2 + rng.integers(0, FIELD_SIZES[field] - 2, 1)
            rows[f"user_{field}"].append(_unknown(rng, value))
    return {k: np.stack(v) for k, v in rows.items()}, preferred


def article(rng: np.random.Generator, liked: np.ndarray, with_liked: bool) -> np.ndarray:
    """Tags of one article, 0-padded to `N`: one liked tag or none, plus random others."""
    others = np.setdiff1d(np.arange(2, NUM_TAGS), liked)
    count = int(rng.integers(1, N + 1))
    tags = list(rng.choice(others, count - int(with_liked), replace=False))
    if with_liked:
        tags.insert(int(rng.integers(0, len(tags) + 1)), int(rng.choice(liked)))
    return _unknown(rng, _padded(tags, N))


def dataset(
    rng: np.random.Generator, n_users: int, articles_per_user: int = 16
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], list[np.ndarray]]:
    """Click examples of fresh users: half the articles have a liked tag, half do not.

    Returns:
        `(inputs, clicks, user_fields, preferred)`: the model inputs (user fields repeated
        per article, `article_tags`), int32 click labels `[n_users * articles_per_user]`,
        and `users()`' output for the same users (one row each).
    """
    fields, preferred = users(rng, n_users)
    tags, clicks = [], []
    for liked in preferred:
        for j in range(articles_per_user):
            with_liked = j % 2 == 0
            tags.append(article(rng, liked, with_liked))
            p = P_CLICK_PREFERRED if with_liked else P_CLICK_OTHER
            clicks.append(int(rng.random() < p))
    inputs = {k: np.repeat(v, articles_per_user, axis=0) for k, v in fields.items()}
    inputs["article_tags"] = np.stack(tags)
    order = rng.permutation(len(clicks))
    inputs = {k: v[order] for k, v in inputs.items()}
    return inputs, np.array(clicks, "int32")[order], fields, preferred
