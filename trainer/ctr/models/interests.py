"""MFN's interest centers (Xie et al. 2021, Section 3.2, Algorithm 1 and eqs. 1-3).

A user's behaviours are assigned softly to `K` interest centers `C ∈ R^{K×d}` in the space of the
*fixed* pretrained behaviour embeddings `E` (GloVe for words, an auxiliary CTR model's vectors for
ids):

    P = softmax(E Cᵀ)                       (eq. 1; one row per behaviour, over the K centers)
    L_SE = mean over behaviours of H(P_i)   (eq. 2; each behaviour belongs to few centers)
    L_ME = H(mean over behaviours of P_i)   (eq. 3; together the behaviours use every center)
    L_E  = L_SE − L_ME                      (minimised over C, Algorithm 1)

with `H(p) = −Σ_k p_k log p_k`. Low `L_SE` makes the assignments crisp, high `L_ME` keeps the
centers from collapsing onto one dense region, so the centers are distinct interests.

Open choice (docs/mfn.md): the mean of eq. 3 is taken over every real behaviour of the
mini-batch of users, not per user. A per-user mean would push every user to spread over all K
centers, which contradicts eq. 2 for users with one interest; over the batch it asks that the
population uses all centers, which is what "non-redundant" means. Padded behaviours (mask 0) are
left out of both means.

`fit_interest_centers` runs Algorithm 1 (Adam over mini-batches of users, centers initialised
from randomly drawn real behaviours); the pipeline's pre-step calls it and writes the centers
artifact the MFN Trainer reads. Only `keras.ops` is used, so it runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["CenterFitConfig", "assignment", "entropy_terms", "fit_interest_centers", "initial_centers", "interest_loss"]

_EPS = 1e-9


def assignment(behaviours: Any, centers: Any) -> Any:
    """P = softmax(E Cᵀ) over the centers (eq. 1): `[..., n, d]`, `[K, d]` → `[..., n, K]`."""
    return ops.softmax(ops.matmul(behaviours, ops.transpose(centers)), axis=-1)


def _entropy(p: Any) -> Any:
    return -ops.sum(p * ops.log(p + _EPS), axis=-1)


def entropy_terms(p: Any, mask: Any) -> tuple[Any, Any]:
    """(L_SE, L_ME) of eqs. 2-3 over the real behaviours of a batch.

    Args:
        p: assignments `[B, n, K]`.
        mask: `[B, n]`, 1 for a real behaviour, 0 for padding.

    Returns:
        `L_SE`, the mean entropy of the real behaviours' assignments, and `L_ME`, the entropy of
        their mean assignment (scalars; 0 and 0 for a batch without a real behaviour).
    """
    mask = ops.cast(mask, p.dtype)
    count = ops.maximum(ops.sum(mask), 1.0)
    l_se = ops.sum(_entropy(p) * mask) / count
    mean = ops.sum(p * ops.expand_dims(mask, -1), axis=(0, 1)) / count
    l_me = ops.where(ops.sum(mask) > 0, _entropy(mean), 0.0)
    return l_se, l_me


def interest_loss(behaviours: Any, centers: Any, mask: Any) -> Any:
    """L_E = L_SE − L_ME for behaviour vectors `[B, n, d]` and centers `[K, d]` (Algorithm 1)."""
    l_se, l_me = entropy_terms(assignment(behaviours, centers), mask)
    return l_se - l_me


@dataclasses.dataclass
class CenterFitConfig:
    """Algorithm 1's settings. The paper gives none of them for the public data sets."""

    num_interests: int = 4
    """K, the number of interest centers (MFN's K; the paper's industrial setting is not stated
    for MovieLens; 4 matches the 2-3 genres a synthetic user prefers, plus room)."""
    steps: int = 300
    """Adam steps over mini-batches of users."""
    batch_size: int = 128
    """Users per step."""
    learning_rate: float = 0.01
    seed: int = 0


class _Centers(keras.Model):
    """The trainable centers, with L_E as the model's loss (no labels)."""

    def __init__(self, initial: np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.centers = self.add_weight(
            name="centers", shape=initial.shape, initializer=keras.initializers.Constant(initial)
        )

    def call(self, inputs: dict[str, Any]) -> Any:
        return assignment(inputs["behaviours"], self.centers)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        l_se, l_me = entropy_terms(y_pred, x["mask"])
        return l_se - l_me


def _draw_initial(behaviours: np.ndarray, mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    real = np.asarray(behaviours, "float32")[np.asarray(mask) > 0]
    if len(real) < k:
        raise ValueError(f"{len(real)} real behaviours cannot place {k} interest centers.")
    return real[rng.choice(len(real), k, replace=False)]


def initial_centers(behaviours: np.ndarray, mask: np.ndarray, config: CenterFitConfig) -> np.ndarray:
    """The centers Algorithm 1 starts from (`fit_interest_centers` draws the same ones): K
    randomly drawn real behaviours. Callers use them to report L_E before and after the fit."""
    return _draw_initial(behaviours, mask, config.num_interests, np.random.default_rng(config.seed))


def fit_interest_centers(behaviours: np.ndarray, mask: np.ndarray, config: CenterFitConfig) -> np.ndarray:
    """Algorithm 1: centers `[K, d]` minimising L_E over users' behaviour vectors.

    Args:
        behaviours: fixed pretrained vectors of each user's behaviours, `[users, n, d]`.
        mask: `[users, n]`, 1 for a real behaviour.
        config: K, steps, batch size, learning rate, seed.

    Raises:
        ValueError: with fewer real behaviours than centers (nothing to tell them apart).
    """
    behaviours = np.asarray(behaviours, "float32")
    mask = np.asarray(mask, "float32")
    rng = np.random.default_rng(config.seed)
    initial = _draw_initial(behaviours, mask, config.num_interests, rng)
    keras.utils.set_random_seed(config.seed)
    model = _Centers(initial, name="interest_centers")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    users = len(behaviours)
    order = rng.integers(0, users, (config.steps, min(config.batch_size, users)))
    for rows in order:
        model.train_on_batch({"behaviours": behaviours[rows], "mask": mask[rows]})
    return np.asarray(keras.ops.convert_to_numpy(model.centers))
