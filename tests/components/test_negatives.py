"""Tests for the Taobao negatives (components.ingest.negatives) and their place in a sequence."""

from __future__ import annotations

import numpy as np
import pytest

from components.ingest import negatives, taobao
from components.ingest import sequence_examples as ex

RNG = np.random.default_rng(7)
CATALOG = negatives.Catalog.from_pairs(
    (int(item), int(category)) for item, category in zip(RNG.choice(10**6, 500, replace=False), RNG.integers(1, 20, 500))
)


def _values(example, name: str) -> list:
    feature = example.features.feature[name]
    values = getattr(feature, feature.WhichOneof("kind")).value
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def test_catalog_is_sorted_with_categories_aligned() -> None:
    catalog = negatives.Catalog.from_pairs([(30, 3), (10, 1), (20, 2)])
    assert catalog.items.tolist() == [10, 20, 30]
    assert catalog.categories.tolist() == [1, 2, 3]
    assert len(negatives.Catalog.from_pairs([])) == 0


@pytest.mark.parametrize("user_id", [1, 2, 1_017_934, -5])
def test_negatives_avoid_the_users_items_and_are_deterministic(user_id: int) -> None:
    own = CATALOG.items[RNG.choice(len(CATALOG), 40, replace=False)].tolist() + [123_456_789]  # + an unknown id
    drawn = negatives.sample_negatives(CATALOG, own, 300, user_id)
    assert drawn.shape == (300,) and drawn.dtype == np.int64
    assert not set(CATALOG.items[drawn].tolist()) & set(own)
    assert np.array_equal(drawn, negatives.sample_negatives(CATALOG, reversed(own), 300, user_id))
    assert not np.array_equal(drawn, negatives.sample_negatives(CATALOG, own, 300, user_id + 1))
    assert not np.array_equal(drawn, negatives.sample_negatives(CATALOG, own, 300, user_id, seed=1))


def test_negatives_are_uniform_over_the_items_the_user_never_touched() -> None:
    catalog = negatives.Catalog.from_pairs((item, 0) for item in range(10))
    drawn = negatives.sample_negatives(catalog, [0, 1, 2, 3, 4, 5], 20_000, user_id=3)  # 60 % owned: complement
    counts = np.bincount(catalog.items[drawn], minlength=10)
    assert counts[:6].sum() == 0
    assert np.all(np.abs(counts[6:] / 20_000 - 0.25) < 0.02)
    drawn = negatives.sample_negatives(catalog, [0, 1], 20_000, user_id=3)  # 20 % owned: rejection
    counts = np.bincount(catalog.items[drawn], minlength=10)
    assert counts[:2].sum() == 0
    assert np.all(np.abs(counts[2:] / 20_000 - 0.125) < 0.015)


def test_no_negatives_when_the_user_touched_every_item_or_none_are_wanted() -> None:
    catalog = negatives.Catalog.from_pairs([(1, 0), (2, 0)])
    assert negatives.sample_negatives(catalog, [1, 2, 99], 5, user_id=1).size == 0
    assert negatives.sample_negatives(catalog, [1], 0, user_id=1).size == 0
    assert negatives.sample_negatives(catalog, [1], 3, user_id=1).tolist() == [1, 1, 1]


def _behavior(item: int, category: int, time: int, kind: str = "pv") -> taobao.Behavior:
    return taobao.Behavior(user_id=9, item_id=item, category_id=category, behavior=kind, time=time)


def test_each_click_is_followed_by_its_negatives_at_its_time() -> None:
    behaviors = [_behavior(CATALOG.items[i], 77, 100 + i, kind) for i, kind in enumerate(taobao.BEHAVIORS * 3)]
    train, eval_, counts = ex.taobao_user_examples(9, behaviors, CATALOG, negatives_per_click=2)
    assert counts[ex.TRAIN_EVENTS] == 9 and counts[ex.EVAL_EVENTS] == 3  # the clicks, split 80/20
    assert counts[ex.SAMPLED_NEGATIVES] == 24 and counts[ex.CLICKS_WITHOUT_NEGATIVES] == 0
    for example, clicks in ((train, behaviors[:9]), (eval_, behaviors[9:])):
        items, ratings = _values(example, "item_ids"), _values(example, "ratings")
        assert len(items) == len(ratings) == len(_values(example, "timestamps")) == 3 * len(clicks)
        assert ratings == [negatives.CLICK_RATING, negatives.NEGATIVE_RATING, negatives.NEGATIVE_RATING] * len(clicks)
        assert _values(example, "behaviors")[::3] == [c.behavior for c in clicks]
        assert set(_values(example, "behaviors")[1::3] + _values(example, "behaviors")[2::3]) == {"none"}
        assert _values(example, "timestamps") == [c.time for c in clicks for _ in range(3)]
        assert items[::3] == [c.item_id for c in clicks]
        negative_items = items[1::3] + items[2::3]
        assert not set(negative_items) & {b.item_id for b in behaviors}
        category = dict(zip(CATALOG.items.tolist(), CATALOG.categories.tolist()))
        categories = _values(example, "category_ids")
        assert categories[::3] == [77] * len(clicks)  # as logged
        assert categories[1::3] + categories[2::3] == [category[i] for i in negative_items]
    # The eval example's history is the train sequence, negatives included (rating 0).
    assert _values(eval_, "history_item_ids") == _values(train, "item_ids")
    assert _values(eval_, "history_ratings") == _values(train, "ratings")
    again = ex.taobao_user_examples(9, behaviors, CATALOG, negatives_per_click=2)
    assert again[0] == train and again[1] == eval_


def test_without_a_catalog_every_event_is_a_click() -> None:
    train, eval_, counts = ex.taobao_user_examples(9, [_behavior(5, 1, 10)], None, negatives_per_click=0)
    assert eval_ is None
    assert _values(train, "ratings") == [negatives.CLICK_RATING]
    assert ex.SAMPLED_NEGATIVES not in counts and counts[ex.USERS_WITHOUT_EVAL] == 1


def test_category_combines_are_order_free() -> None:
    """Beam combines partial results in any grouping: every grouping gives the same answer."""
    values = [(7, 2, 5, 1), (9, 3, 8, 1), (8, 3, 4, 1), (6, 1, 0, 1)]
    whole = ex.most_frequent_category(values)
    assert whole == (8, 3, 4, 4)  # most events; the earlier of the two tied at 3
    for split in range(1, len(values)):
        for order in (values, values[::-1]):
            parts = [ex.most_frequent_category(order[:split]), ex.most_frequent_category(order[split:])]
            assert ex.most_frequent_category(parts) == whole
    pairs = [(1, 9), (2, 3), (1, 7)]
    assert ex.count_and_first(pairs) == (4, 3)
    assert ex.count_and_first([ex.count_and_first(pairs[:1]), ex.count_and_first(pairs[1:])]) == (4, 3)
