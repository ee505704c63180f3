"""The CTR preprocessing_fn's eval ``history`` (trainer/ctr/preprocessing.py: `recent_history`) in a
real tf.Transform run (tests/components/ctr_transform.py), for both history definitions.

The expected histories are computed here from the raw train sequences with NumPy (the last H
train events with a rating ≥ 4, or the last H events), so the Transform's ragged filter is
checked against an independent formulation.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_transform as tft
from ctr_transform import EVAL, SEQUENCES, TRANSFORM, run_transform

from trainer.ctr.config import CLICK_RATING
from trainer.ctr.preprocessing import ITEM_VOCAB

H = TRANSFORM["history_length"]


def _expected(history: str) -> list[list[int]]:
    """Raw item ids of each eval user's history (oldest first), computed from the raw rows."""
    out = []
    for row in EVAL:
        items, ratings = np.asarray(row["history_item_ids"]), np.asarray(row["history_ratings"])
        keep = ratings >= CLICK_RATING if history == "clicked" else np.ones(len(items), bool)
        out.append(items[keep][-H:].tolist())
    return out


@pytest.mark.parametrize("history", ["clicked", "all"])
def test_eval_history_is_the_last_h_train_behaviours_padded_and_masked(history):
    graph, transformed = run_transform(history)
    vocab = [int(v) for v in tft.TFTransformOutput(graph).vocabulary_by_name(ITEM_VOCAB)]
    to_id = lambda raw: vocab.index(raw) + 2 if raw in vocab else 1  # noqa: E731 (99: not in the catalog)
    for row, raw in zip(transformed["eval"], _expected(history)):
        expected = [to_id(i) for i in raw] + [0] * (H - len(raw))
        assert list(row["history"]) == expected, (history, row["user_id"], raw)
        np.testing.assert_array_equal(row["history_mask"], [1.0] * len(raw) + [0.0] * (H - len(raw)))


def test_the_definitions_differ_where_non_clicks_are_in_the_window():
    clicked, everything = _expected("clicked"), _expected("all")
    users = list(SEQUENCES)
    assert clicked[users.index(5)] == [] and everything[users.index(5)] == [60]  # no click: an empty history
    assert clicked[users.index(6)] == [50, 99]  # an unknown item is a behaviour too (id 1)
    _, transformed = run_transform("clicked")
    assert not transformed["eval"][users.index(5)]["history_mask"].any()
    # Train rows carry no history (it is built per target by the trainer).
    assert all(not row["history_mask"].any() for row in transformed["train"])
