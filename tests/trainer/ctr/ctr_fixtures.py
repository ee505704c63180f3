"""CTR batches with planted multi-interest users, for the model tests.

A fixed catalogue of items belongs to `TOPICS` topics. An item's topic shows in its fields: its
first category is the topic's category (a second, shared "genre" category carries no topic),
its title words come from the topic's word range, and its id is one of the topic's ids. A user
is interested in 2 or 3 topics, drawn by a skewed topic popularity; their history holds 0 to
`H` clicked items of those topics. The target is from one of the user's topics half of the
time (else from another topic, uniformly) and is clicked with probability `P_IN` if its topic
is one of the user's, `P_OUT` otherwise.

So the click depends on whether the target's topic is among the history's topics, which only a
model that reads the history can learn (Bayes AUC 0.95); a history-agnostic model can only
learn the topic popularity (AUC about 0.6). Realistic nuisances: histories of every length
(padding in every batch, some empty), items and words outside the vocabulary (id 1), items
with a second, uninformative category.
"""

from __future__ import annotations

import keras
import numpy as np

from components.metrics import reference
from trainer.ctr.models import build_model

TOPICS, ITEMS_PER_TOPIC, WORDS_PER_TOPIC, SHARED_CATEGORIES = 8, 20, 10, 3
H, C, L = 12, 3, 6  # history slots, categories per item, title words per item
NUM_ITEMS = 2 + TOPICS * ITEMS_PER_TOPIC
NUM_CATEGORIES = 2 + TOPICS + SHARED_CATEGORIES
VOCAB = 2 + TOPICS * WORDS_PER_TOPIC
SIZES = {"num_items": NUM_ITEMS, "num_categories": NUM_CATEGORIES, "vocab_size": VOCAB}
P_IN, P_OUT = 0.95, 0.05
EMPTY_HISTORY, UNKNOWN_ITEM, UNKNOWN_WORD = 0.05, 0.1, 0.1
POPULARITY = 1.0 / np.arange(1, TOPICS + 1) ** 0.7
POPULARITY /= POPULARITY.sum()
TRAIN_ROWS, BATCH_SIZE, EPOCHS, LEARNING_RATE = 24576, 64, 2, 3e-3  # 768 steps


def _catalogue(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Categories `[items, C]` and words `[items, L]` of every item id (rows 0, 1 empty)."""
    categories = np.zeros((NUM_ITEMS, C), "int32")
    words = np.zeros((NUM_ITEMS, L), "int32")
    for item in range(2, NUM_ITEMS):
        topic = (item - 2) // ITEMS_PER_TOPIC
        categories[item, 0] = 2 + topic
        if rng.random() < 0.5:
            categories[item, 1] = 2 + TOPICS + rng.integers(SHARED_CATEGORIES)
        n = rng.integers(2, L + 1)
        words[item, :n] = 2 + topic * WORDS_PER_TOPIC + rng.integers(0, WORDS_PER_TOPIC, n)
    words[(rng.random(words.shape) < UNKNOWN_WORD) & (words > 0)] = 1
    return categories, words


CATEGORIES, WORDS = _catalogue(np.random.default_rng(1234))


def _item_of(rng: np.random.Generator, topics: np.ndarray) -> int:
    return int(2 + rng.choice(topics) * ITEMS_PER_TOPIC + rng.integers(ITEMS_PER_TOPIC))


def batch(rng: np.random.Generator, n: int, interests: tuple[int, ...] = (2, 3)):
    """`n` rows of (history, target, click).

    Args:
        rng: the random generator.
        n: rows.
        interests: how many topics a user may have (drawn uniformly from these).

    Returns:
        `(inputs, clicks, num_interests)`: the model input dict (all three item fields),
        float32 clicks `[n]` and each row's number of interest topics `[n]`.
    """
    hist = np.zeros((n, H), "int32")
    mask = np.zeros((n, H), "float32")
    target = np.zeros(n, "int32")
    clicks = np.zeros(n, "float32")
    counts = np.zeros(n, "int32")
    for row in range(n):
        count = int(rng.choice(interests))
        topics = rng.choice(TOPICS, count, replace=False, p=POPULARITY)
        length = 0 if rng.random() < EMPTY_HISTORY else int(rng.integers(1, H + 1))
        hist[row, :length] = [_item_of(rng, topics) for _ in range(length)]
        mask[row, :length] = 1.0
        relevant = rng.random() < 0.5
        pool = topics if relevant else np.setdiff1d(np.arange(TOPICS), topics)
        target[row] = _item_of(rng, pool)
        clicks[row] = rng.random() < (P_IN if relevant else P_OUT)
        counts[row] = count
    inputs = {
        "hist_categories": CATEGORIES[hist],
        "hist_words": WORDS[hist],
        "hist_mask": mask,
        "target_categories": CATEGORIES[target],
        "target_words": WORDS[target],
    }
    # Some items are outside the item vocabulary; their categories and words still are known.
    inputs["hist_item"] = np.where(rng.random(hist.shape) < UNKNOWN_ITEM, 1, hist) * (hist > 0)
    inputs["target_item"] = np.where(rng.random(n) < UNKNOWN_ITEM, 1, target)
    inputs = {k: v.astype("float32" if k == "hist_mask" else "int32") for k, v in inputs.items()}
    return inputs, clicks, counts


def without_history(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same rows with every history slot padding (a history-agnostic view)."""
    return {k: np.zeros_like(v) if k.startswith("hist_") else v for k, v in inputs.items()}


def rows(inputs: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of `inputs` selected by the boolean or index array `keep`."""
    return {k: v[keep] for k, v in inputs.items()}


def garbage_in_padding(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`inputs` with random real ids in every field of every padded history slot."""
    padded = inputs["hist_mask"] == 0
    noisy = dict(inputs)
    for key, high in (("hist_item", NUM_ITEMS), ("hist_categories", NUM_CATEGORIES), ("hist_words", VOCAB)):
        values = inputs[key]
        where = padded if values.ndim == 2 else padded[..., None]
        noisy[key] = np.where(where, rng.integers(2, high, values.shape), values).astype("int32")
    return noisy


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Global ROC AUC (ties count one half): the project's reference, scores first."""
    return reference.global_auc(np.asarray(labels).ravel(), np.asarray(scores, "float64").ravel())


def train(model: keras.Model, inputs: dict[str, np.ndarray], clicks: np.ndarray) -> keras.Model:
    """Fits `model` with the loss of its `compute_loss` (the recipe every learning test uses)."""
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    model.fit(inputs, clicks, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=0)
    return model


def predict(model: keras.Model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Logits `[n]` as NumPy."""
    return np.asarray(model.predict(inputs, batch_size=1024, verbose=0))


def learn_planted(name: str) -> dict[str, float]:
    """CTR model `name` (`tiny` preset, seed 0) trained on `TRAIN_ROWS` planted rows; AUCs on
    4,000 held-out rows: `untrained`, `trained`, and `no_history` (the trained model with every
    history removed, which tells whether it reads the history)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train, _ = batch(rng, TRAIN_ROWS)
    x_eval, y_eval, _ = batch(rng, 4000)
    model = build_model(name, "tiny", **SIZES)
    untrained = auc(predict(model, x_eval), y_eval)
    train(model, x_train, y_train)
    return {"untrained": untrained, "trained": auc(predict(model, x_eval), y_eval),
            "no_history": auc(predict(model, without_history(x_eval)), y_eval)}
