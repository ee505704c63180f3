"""Small news-ranking batches with planted interests, for the model tests.

Each of `TOPICS` topics owns a category, `SUBS_PER_TOPIC` sub-categories and a
disjoint range of title/abstract word ids. A user is interested in one or two
topics; their history holds articles of those topics, the clicked candidate
is from one of them and the negatives are from other topics. A model that
matches words or categories between history and candidates ranks the click
first; chance is AUC 0.5.
"""

from __future__ import annotations

import numpy as np

TOPICS, WORDS_PER_TOPIC, SUBS_PER_TOPIC = 8, 12, 2
L, A, H = 8, 6, 10  # title length, abstract length, clicks
VOCAB = 2 + TOPICS * WORDS_PER_TOPIC
NUM_CATEGORIES = 2 + TOPICS
NUM_SUBCATEGORIES = 2 + TOPICS * SUBS_PER_TOPIC
NUM_USERS = 2 + 64
ENTITIES_PER_TOPIC, E = 3, 4  # entity ids per topic, entities per article
NUM_ENTITIES = 2 + TOPICS * ENTITIES_PER_TOPIC
# Fixed per user, so training and evaluation sets agree (LSTUR's user embedding).
_USER_RNG = np.random.default_rng(1234)
USER_TOPICS = [_USER_RNG.choice(TOPICS, _USER_RNG.integers(1, 3), replace=False) for _ in range(NUM_USERS)]
SIZES = {
    "vocab_size": VOCAB,
    "num_categories": NUM_CATEGORIES,
    "num_subcategories": NUM_SUBCATEGORIES,
}


def article(rng: np.random.Generator, topic: int) -> dict[str, np.ndarray]:
    """One article of `topic`: words of its range, its category, a sub-category."""

    def text(length: int) -> np.ndarray:
        n = rng.integers(length // 2, length + 1)
        tokens = np.zeros(length, "int32")
        tokens[:n] = 2 + topic * WORDS_PER_TOPIC + rng.integers(0, WORDS_PER_TOPIC, n)
        return tokens

    return {
        "title": text(L),
        "abstract": text(A),
        "category": np.int32(2 + topic),
        "subcategory": np.int32(2 + topic * SUBS_PER_TOPIC + rng.integers(SUBS_PER_TOPIC)),
        "entities": text_entities(rng, topic),
    }


def text_entities(rng: np.random.Generator, topic: int) -> np.ndarray:
    """0 to `E` entity ids of `topic`, right-padded."""
    ids = np.zeros(E, "int32")
    n = rng.integers(0, E + 1)
    ids[:n] = 2 + topic * ENTITIES_PER_TOPIC + rng.integers(0, ENTITIES_PER_TOPIC, n)
    return ids


def _articles(rows: list[dict], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}_{k}": np.stack([r[k] for r in rows]) for k in rows[0]}


def _empty() -> dict[str, np.ndarray]:
    return {
        "title": np.zeros(L, "int32"),
        "abstract": np.zeros(A, "int32"),
        "category": np.int32(0),
        "subcategory": np.int32(0),
        "entities": np.zeros(E, "int32"),
    }


def impressions(rng: np.random.Generator, n: int, width: int = 5, clicks: int = 1):
    """`n` impressions of `width` candidates (`clicks` clicked, the rest
    negatives), candidates in random order.

    Returns:
        `(inputs, labels)`: the model's input dict (all four news fields,
        masks, `user_index`) and `[n, width]` click labels.
    """
    batch: dict[str, list] = {}
    labels = []
    for _ in range(n):
        user = int(rng.integers(2, NUM_USERS))
        topics = USER_TOPICS[user]
        others = np.setdiff1d(np.arange(TOPICS), topics)
        count = int(rng.integers(3, H + 1))
        hist = [article(rng, rng.choice(topics)) for _ in range(count)]
        hist += [_empty() for _ in range(H - count)]
        cands = [article(rng, rng.choice(topics)) for _ in range(clicks)]
        cands += [article(rng, rng.choice(others)) for _ in range(width - clicks)]
        order = rng.permutation(width)
        row = {
            **_articles(hist, "hist"),
            **_articles([cands[i] for i in order], "cand"),
            "hist_mask": np.array([1.0] * count + [0.0] * (H - count), "float32"),
            "cand_mask": np.ones(width, "float32"),
            "user_index": np.int32(user),
        }
        for key, value in row.items():
            batch.setdefault(key, []).append(value)
        labels.append((order < clicks).astype("int32"))
    return {k: np.stack(v) for k, v in batch.items()}, np.stack(labels)


def training_set(rng: np.random.Generator, n: int, negatives: int = 4):
    """`(inputs, clicked_slot)` with one click and `negatives` negatives."""
    inputs, labels = impressions(rng, n, width=1 + negatives, clicks=1)
    return inputs, np.argmax(labels, axis=1).astype("int32")


def impression_auc(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> float:
    """Mean per-impression ROC AUC over impressions with both labels."""
    aucs = []
    for s, y, m in zip(scores, labels, mask):
        s, y = s[m > 0], y[m > 0]
        pos, neg = s[y > 0], s[y == 0]
        if len(pos) and len(neg):
            wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
            aucs.append(wins.mean())
    return float(np.mean(aucs))
