"""The tags Trainer's reference evaluation: per-batch Prec@K equals Prec@K over all users."""

from __future__ import annotations

import numpy as np
import pytest

from components.metrics import reference
from trainer.tags import run as tags_run


class _ScoresAreInputs:
    """A stand-in model whose tag scores are given as its input."""

    def user_embedding(self, inputs):
        return inputs["scores"]

    def tag_scores(self, user_embedding):
        return user_embedding


def test_prec_at_ks_over_batches_equals_the_reference_over_all_users():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(23, 9)).astype("float32")
    scores[:, :2] = -1e9  # padding and unknown
    labels = (rng.random((23, 9)) < 0.3).astype("float32")
    labels[:, :2] = 0
    labels[[3, 4, 20]] = 0  # users without a clicked tag count nowhere
    candidates = (rng.random((23, 9)) < 0.4).astype("float32")
    candidates[:, :2] = 0
    candidates[[5, 8, 16]] = 0  # users without a history tag count only over all tags
    batches = [({"scores": scores[i : i + 8]}, labels[i : i + 8], candidates[i : i + 8]) for i in range(0, 23, 8)]
    got = tags_run.prec_at_ks(_ScoresAreInputs(), batches)
    users, tags = np.repeat(np.arange(23), 9), np.tile(np.arange(9), 23)
    clicked = {u: np.flatnonzero(labels[u]).tolist() for u in range(23)}
    history = {u: np.flatnonzero(candidates[u]).tolist() for u in range(23)}
    for k in (1, 2, 3):
        every_tag = reference.prec_at_k(users, tags, scores.reshape(-1), clicked, k)
        assert got[f"prec@{k}_all"] == pytest.approx(every_tag)
        assert got[f"prec@{k}"] == pytest.approx(reference.prec_at_k(users, tags, scores.reshape(-1), clicked, k, history))
        assert got[f"prec@{k}"] != pytest.approx(every_tag)
    assert got["users"] == int((labels.sum(1) > 0).sum()) < 23
    assert got["history_users"] == int(((labels.sum(1) > 0) & (candidates.sum(1) > 0)).sum()) < got["users"]
