"""MFN's Algorithm 1: interest centers that lower L_E and are not redundant on planted clusters."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from trainer.ctr.models.interests import CenterFitConfig, assignment, entropy_terms, fit_interest_centers, interest_loss

CLUSTERS, DIM, USERS, SLOTS = 4, 8, 400, 10


def _planted(seed: int = 0):
    """Users whose behaviours come from 1-2 of 4 well-separated clusters; variable lengths,
    some empty, padding filled with garbage vectors that the mask must hide."""
    rng = np.random.default_rng(seed)
    means = 3.0 * np.linalg.qr(rng.normal(size=(DIM, DIM)))[0][:CLUSTERS]
    vectors = rng.normal(size=(USERS, SLOTS, DIM)) * 50.0  # garbage where padded
    mask = np.zeros((USERS, SLOTS), "float32")
    labels = np.full((USERS, SLOTS), -1)
    for user in range(USERS):
        length = 0 if user % 25 == 0 else rng.integers(1, SLOTS + 1)
        own = rng.choice(CLUSTERS, rng.integers(1, 3), replace=False)
        for slot in range(length):
            labels[user, slot] = rng.choice(own)
            vectors[user, slot] = means[labels[user, slot]] + 0.3 * rng.normal(size=DIM)
        mask[user, :length] = 1
    return vectors.astype("float32"), mask, labels


def test_entropy_terms_by_hand():
    p = np.array([[[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]]], "float32")
    mask = np.array([[1.0, 1.0, 0.0]], "float32")  # the third behaviour is padding
    l_se, l_me = (float(v) for v in entropy_terms(ops.convert_to_tensor(p), ops.convert_to_tensor(mask)))
    assert l_se == pytest.approx((0.0 + np.log(2)) / 2, abs=1e-5)
    mean = np.array([0.75, 0.25])
    assert l_me == pytest.approx(-(mean * np.log(mean)).sum(), abs=1e-5)
    empty = entropy_terms(ops.convert_to_tensor(p), ops.zeros((1, 3)))
    assert [float(v) for v in empty] == [0.0, 0.0]


def test_padding_does_not_change_the_loss():
    vectors, mask, _ = _planted()
    centers = np.random.default_rng(1).normal(size=(CLUSTERS, DIM)).astype("float32")
    loss = float(interest_loss(vectors, centers, mask))
    other = np.where(mask[..., None] > 0, vectors, -vectors * 3.0)
    assert float(interest_loss(other, centers, mask)) == pytest.approx(loss, rel=1e-5)


def test_algorithm_1_lowers_the_loss_and_finds_distinct_interests():
    vectors, mask, labels = _planted()
    config = CenterFitConfig(num_interests=CLUSTERS, steps=300, batch_size=64, learning_rate=0.05, seed=3)
    rng = np.random.default_rng(config.seed)
    real = vectors[mask > 0]
    initial = real[rng.choice(len(real), CLUSTERS, replace=False)]  # what the fit starts from
    centers = fit_interest_centers(vectors, mask, config)
    assert centers.shape == (CLUSTERS, DIM) and np.isfinite(centers).all()
    assert float(interest_loss(vectors, centers, mask)) < float(interest_loss(vectors, initial, mask)) - 0.1

    def owners(c):
        """The center most behaviours of each planted cluster go to, and the mean top share."""
        p = np.asarray(assignment(vectors, c))[mask > 0]
        top = p.argmax(1)
        return sorted(np.bincount(top[labels[mask > 0] == k], minlength=CLUSTERS).argmax() for k in range(CLUSTERS)), \
            p.max(1).mean()

    assert owners(initial)[0] != list(range(CLUSTERS))  # the start shares a center between clusters
    owner, crispness = owners(centers)
    assert owner == list(range(CLUSTERS)), owner  # each cluster its own center: not redundant
    assert crispness > 0.9


def test_too_few_behaviours_is_a_clear_error():
    with pytest.raises(ValueError, match="2 real behaviours cannot place 4 interest centers"):
        fit_interest_centers(np.zeros((1, 3, 2)), np.array([[1, 1, 0]]), CenterFitConfig(num_interests=4))
