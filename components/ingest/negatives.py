"""Sampled negatives for Taobao UserBehavior, the CTR protocol of DIN and MFN on Taobao.

UserBehavior logs only what users did (pv, cart, fav, buy): every row is a click, and the
data has no shown-but-not-clicked items. The usual protocol (DIN's and MFN's experiments on
Taobao data) makes the negatives: for each click, items the user never interacted with,
drawn uniformly from the item catalog. Here:

* every logged behaviour is a click with rating `CLICK_RATING` (5.0, so the CTR family's
  rule "click = rating >= 4", `trainer/ctr/config.py: CLICK_RATING`, applies unchanged);
* each click gets `negatives_per_click` sampled items, inserted right after it with the same
  timestamp, rating `NEGATIVE_RATING` (0.0), behaviour `NEGATIVE_BEHAVIOR` and the item's
  catalog category;
* a negative is an independent uniform draw (with replacement) from the catalog items the
  user never interacted with in any split, so two clicks may share a negative, and a user's
  negatives are never one of the user's items;
* the draws are seeded by (`seed`, user id): a rerun, or another Beam worker (Dataflow,
  Flink) handling the same user, draws the same negatives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

CLICK_RATING = 5.0
"""The rating of a logged behaviour: every pv, cart, fav and buy is a click."""
NEGATIVE_RATING = 0.0
"""The rating of a sampled negative (below the CTR click threshold)."""
NEGATIVE_BEHAVIOR = "none"
"""The `behaviors` entry of a sampled negative: the user did nothing with the item."""
SEED = 20171125
"""The seed of the Taobao negatives (the first day of the data), mixed with each user id."""


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The items negatives are drawn from, with their catalog category.

    Attributes:
        items: Item ids, sorted ascending, unique.
        categories: The category of each item of `items`.
    """

    items: np.ndarray
    categories: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> Catalog:
        """Builds a catalog from (item id, category id) pairs with unique item ids."""
        table = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
        return cls(items=table[:, 0].copy(), categories=table[:, 1].copy())

    def __len__(self) -> int:
        return len(self.items)


def sample_negatives(catalog: Catalog, user_items: Iterable[int], count: int, user_id: int,
                     seed: int = SEED) -> np.ndarray:
    """Returns `count` catalog indices of items the user never interacted with.

    Each index is an independent uniform draw over the catalog items outside `user_items`.
    Draws are made by rejection (draw over the whole catalog, drop the user's own items),
    which touches only the user's few items per draw; when the user's items are most of the
    catalog (small test catalogs), the complement is listed instead.

    Args:
        catalog: The items to draw from.
        user_items: Every item id the user interacted with (any split).
        count: How many indices to draw.
        user_id: Seeds the draws together with `seed`, so they do not depend on the worker,
            the order users are processed in, or other users.
        seed: The run-wide seed.

    Returns:
        An int64 array of `count` indices into `catalog.items`, or an empty array when the
        user interacted with every catalog item.
    """
    own = np.unique(np.fromiter(user_items, dtype=np.int64))
    owned = int(np.isin(own, catalog.items, assume_unique=True).sum())
    available = len(catalog) - owned
    if count <= 0 or available <= 0:
        return np.zeros(0, dtype=np.int64)
    # SeedSequence needs non-negative entries; the modulo maps any int64 id to one.
    rng = np.random.default_rng([seed % 2**64, user_id % 2**64])
    if 2 * owned > len(catalog):
        complement = np.flatnonzero(~np.isin(catalog.items, own, assume_unique=True))
        return complement[rng.integers(0, len(complement), size=count)]
    drawn = np.zeros(0, dtype=np.int64)
    while len(drawn) < count:
        candidates = rng.integers(0, len(catalog), size=count - len(drawn))
        keep = ~np.isin(catalog.items[candidates], own)
        drawn = np.concatenate([drawn, candidates[keep]])
    return drawn
