"""NumPy reference implementation of every evaluation metric in the project.

This module is the single source of truth for metric semantics: the TFMA custom
metrics and the Keras metrics are tested against it. All inputs are flat 1-D
arrays with one entry per scored item; grouping (impressions, users) is given by
an id array aligned with the scores.

Conventions shared by all functions:

* AUC uses the Mann-Whitney definition: a (positive, negative) pair with equal
  scores counts 1/2, exactly as ``sklearn.metrics.roc_auc_score``.
* Ranking metrics (MRR, nDCG@k, Prec@K) rank items by score descending with a
  *stable* order: among equal scores the item that appears first in the input
  ranks first. (MIND's ``evaluate.py`` uses ``np.argsort(score)[::-1]``, which
  puts the *last* of tied items first; the two agree whenever scores are
  distinct.)
* Groups that a metric is undefined for (no positive label; for AUC also no
  negative label) are excluded from the mean. When no group qualifies the
  result is ``nan``. MIND's ``evaluate.py`` has no such rule because every
  MIND impression holds a click and a non-click: on a single-class impression
  it would fail (``roc_auc_score`` raises) or turn the mean into NaN
  (``mrr_score`` and ``ndcg_score`` divide 0 by 0). Sampled or filtered data
  (synthetic sets, truncated impressions) can produce such groups, so they are
  skipped here, consistently for every metric.
* Invalid input raises ``ValueError`` naming the offending argument: arrays that
  are not 1-D or have mismatched lengths, NaN scores, non-binary labels where
  binary labels are required, negative or NaN graded labels.

References:
    - MIND evaluation script (``evaluate.py``: ``roc_auc_score`` per impression,
      ``mrr_score``, ``ndcg_score``), Wu et al., "MIND: A Large-scale Dataset
      for News Recommendation", ACL 2020.
    - UTPM: "Learning to Build User-tag Profile in Recommendation System",
      CIKM 2020, eq. 5 (Prec@K).
    - MFN paper, eq. 13 (RelaImpr), which takes the metric from Yan et al.,
      "Coupled Group Lasso for Web-Scale CTR Prediction in Display
      Advertising", ICML 2014.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np

__all__ = [
    "global_auc",
    "group_auc",
    "mrr",
    "ndcg_at_k",
    "prec_at_k",
    "rela_impr",
]


def _as_1d(name: str, values: object, length: int | None = None) -> np.ndarray:
    """Returns `values` as a 1-D array, checking its length against `length`."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array, got shape {array.shape}.")
    if length is not None and array.shape[0] != length:
        raise ValueError(
            f"`{name}` has length {array.shape[0]}, expected {length} "
            "(all inputs must have one entry per scored item)."
        )
    return array


def _scores(values: object, length: int | None = None) -> np.ndarray:
    """Validates scores: 1-D, numeric, no NaN. Returns float64."""
    array = _as_1d("scores", values, length)
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError("`scores` must be numeric.") from error
    if np.isnan(array).any():
        raise ValueError("`scores` contains NaN.")
    return array


def _binary_labels(values: object) -> np.ndarray:
    """Validates labels in {0, 1}. Returns float64."""
    array = _as_1d("labels", values)
    if not np.isin(array, (0, 1)).all():
        raise ValueError("`labels` must be binary (0 or 1).")
    return array.astype(np.float64)


def _graded_labels(values: object) -> np.ndarray:
    """Validates finite, non-negative (possibly graded) labels. Returns float64."""
    array = _as_1d("labels", values)
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError("`labels` must be numeric.") from error
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError("`labels` must be finite and >= 0.")
    return array


def _group_codes(group_ids: object, length: int) -> tuple[np.ndarray, int]:
    """Maps arbitrary group ids to contiguous codes 0..G-1."""
    ids = _as_1d("group_ids", group_ids, length)
    uniques, codes = np.unique(ids, return_inverse=True)
    return codes.reshape(-1), uniques.shape[0]


def _check_k(k: int) -> None:
    """Raises unless `k` is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")


def _ranks_desc(
    scores: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable descending sort by score within each group.

    Returns:
        `(order, sorted_codes, ranks)`: the permutation sorting items by
        (group, score descending, input position), the group code of each
        sorted item and its 1-based rank inside its group.
    """
    order = np.lexsort((-scores, codes))
    sorted_codes = codes[order]
    counts = np.bincount(codes, minlength=n_groups)
    ranks = np.arange(order.shape[0]) - (np.cumsum(counts) - counts)[sorted_codes] + 1
    return order, sorted_codes, ranks


def _mean_or_nan(values: np.ndarray) -> float:
    """Mean of `values`, or NaN when no group qualified."""
    return float(values.mean()) if values.size else float("nan")


def _auc_per_group(
    labels: np.ndarray, scores: np.ndarray, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """Mann-Whitney AUC of each group; NaN where a group lacks a label class.

    Scores are ranked ascending inside each group with tied scores sharing
    their average rank, so that AUC = (R_pos - n_pos (n_pos + 1) / 2) /
    (n_pos n_neg) counts tied (positive, negative) pairs as 1/2.
    """
    n = labels.shape[0]
    order = np.lexsort((scores, codes))
    sorted_codes = codes[order]
    sorted_scores = scores[order]
    new_block = np.ones(n, dtype=bool)
    new_block[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (
        sorted_scores[1:] != sorted_scores[:-1]
    )
    block_first = np.flatnonzero(new_block)
    block_last = np.append(block_first[1:], n) - 1
    average_position = ((block_first + block_last) / 2.0)[np.cumsum(new_block) - 1]

    counts = np.bincount(codes, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    ranks = average_position - starts[sorted_codes] + 1.0

    sorted_labels = labels[order]
    n_pos = np.bincount(sorted_codes, weights=sorted_labels, minlength=n_groups)
    n_neg = counts - n_pos
    rank_sum = np.bincount(
        sorted_codes, weights=sorted_labels * ranks, minlength=n_groups
    )
    auc = np.full(n_groups, np.nan)
    valid = (n_pos > 0) & (n_neg > 0)
    auc[valid] = (rank_sum[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2.0) / (
        n_pos[valid] * n_neg[valid]
    )
    return auc


def group_auc(labels: object, scores: object, group_ids: object) -> float:
    """Mean per-impression ROC AUC (MIND's AUC).

    Follows MIND ``evaluate.py``: ``roc_auc_score`` per impression, averaged
    over impressions. Impressions whose labels are all 1 or all 0 have no AUC
    and are excluded from the mean (MIND's script would raise on them). Tied
    scores count 1/2 (Mann-Whitney, as ``sklearn.metrics.roc_auc_score``).

    Args:
        labels: Binary click labels, shape `[n]`.
        scores: Predicted scores, shape `[n]`, no NaN.
        group_ids: Impression id of each item, shape `[n]`, any sortable type.

    Returns:
        The mean AUC over qualifying impressions, or ``nan`` when no
        impression has both a positive and a negative label.

    Raises:
        ValueError: On non-1-D or mismatched inputs, non-binary labels or NaN
            scores.
    """
    y = _binary_labels(labels)
    s = _scores(scores, y.shape[0])
    codes, n_groups = _group_codes(group_ids, y.shape[0])
    auc = _auc_per_group(y, s, codes, n_groups)
    return _mean_or_nan(auc[~np.isnan(auc)])


def global_auc(labels: object, scores: object) -> float:
    """ROC AUC over all items at once (CTR models).

    Tied scores count 1/2 (Mann-Whitney, as ``sklearn.metrics.roc_auc_score``).

    Args:
        labels: Binary click labels, shape `[n]`.
        scores: Predicted scores, shape `[n]`, no NaN.

    Returns:
        The AUC, or ``nan`` when the labels are all 0 or all 1.

    Raises:
        ValueError: On non-1-D or mismatched inputs, non-binary labels or NaN
            scores.
    """
    y = _binary_labels(labels)
    s = _scores(scores, y.shape[0])
    return float(_auc_per_group(y, s, np.zeros(y.shape[0], dtype=np.intp), 1)[0])


def mrr(labels: object, scores: object, group_ids: object) -> float:
    """Mean reciprocal rank over all clicked items (MIND's ``mrr_score``).

    Per impression: ``sum_i y_i / rank_i / sum_i y_i``, where ranks are 1-based
    positions after sorting the impression by score descending (stable: among
    equal scores, the earlier input item ranks first). Every clicked item
    contributes, not only the first. Impressions without a click are
    excluded from the mean.

    Args:
        labels: Binary click labels, shape `[n]`.
        scores: Predicted scores, shape `[n]`, no NaN.
        group_ids: Impression id of each item, shape `[n]`.

    Returns:
        The mean over impressions with at least one click, or ``nan`` if none.

    Raises:
        ValueError: On non-1-D or mismatched inputs, non-binary labels or NaN
            scores.
    """
    y = _binary_labels(labels)
    s = _scores(scores, y.shape[0])
    codes, n_groups = _group_codes(group_ids, y.shape[0])
    order, sorted_codes, ranks = _ranks_desc(s, codes, n_groups)
    sorted_labels = y[order]
    reciprocal = np.bincount(
        sorted_codes, weights=sorted_labels / ranks, minlength=n_groups
    )
    n_pos = np.bincount(sorted_codes, weights=sorted_labels, minlength=n_groups)
    valid = n_pos > 0
    return _mean_or_nan(reciprocal[valid] / n_pos[valid])


def ndcg_at_k(labels: object, scores: object, group_ids: object, k: int) -> float:
    """Mean per-impression nDCG@k (MIND's ``ndcg_score``).

    DCG@k = ``sum_{rank <= k} (2^y - 1) / log2(rank + 1)`` with 1-based ranks
    from sorting by score descending (stable: among equal scores, the earlier
    input item ranks first); the ideal DCG@k sorts the impression by its own
    labels. A `k` larger than an impression uses the whole impression.
    Impressions without any positive label (ideal DCG = 0, nDCG undefined) are
    excluded from the mean (MIND's script would average in a NaN).

    Args:
        labels: Relevance labels, shape `[n]`; binary or graded, finite, >= 0.
        scores: Predicted scores, shape `[n]`, no NaN.
        group_ids: Impression id of each item, shape `[n]`.
        k: Cut-off, a positive integer.

    Returns:
        The mean over impressions with a positive label, or ``nan`` if none.

    Raises:
        ValueError: On non-1-D or mismatched inputs, negative or non-finite
            labels, NaN scores or a non-positive `k`.
    """
    _check_k(k)
    y = _graded_labels(labels)
    s = _scores(scores, y.shape[0])
    codes, n_groups = _group_codes(group_ids, y.shape[0])
    gains = np.exp2(y) - 1.0

    def dcg(ranking_key: np.ndarray) -> np.ndarray:
        order, sorted_codes, ranks = _ranks_desc(ranking_key, codes, n_groups)
        discounted = np.where(ranks <= k, gains[order] / np.log2(ranks + 1.0), 0.0)
        return np.bincount(sorted_codes, weights=discounted, minlength=n_groups)

    ideal = dcg(y)
    valid = ideal > 0
    return _mean_or_nan(dcg(s)[valid] / ideal[valid])


def prec_at_k(
    user_ids: object,
    tag_ids: object,
    scores: object,
    clicked_tags: Mapping[Hashable, Iterable[Hashable]],
    k: int,
    candidate_tags: Mapping[Hashable, Iterable[Hashable]] | None = None,
) -> float:
    """Mean per-user precision of the top-K predicted tags (UTPM eq. 5).

    For each user, the (tag, score) pairs are ranked by score descending
    (stable: among equal scores, the earlier input pair ranks first); a tag
    listed several times keeps its best-ranked occurrence, and the first `k`
    unique tags form the prediction. Precision is
    ``|top-K ∩ clicked_tags[user]| / min(k, |clicked_tags[user]|)``, so a user
    with fewer clicked tags than `k` is not penalised for the shortfall.

    With `candidate_tags` (UTPM's candidate selection: the tags of the user's
    own history), only the pairs whose tag is one of the user's candidates are
    ranked, so the prediction holds at most ``|candidates|`` tags. The
    denominator stays ``min(k, |clicked_tags[user]|)`` over *all* clicked tags,
    candidates or not: the ground truth of eq. 5 is what the user clicked, so
    a clicked tag outside the candidate set is a miss the candidate selection
    causes, and both candidate sets are measured against the same truth.

    The mean is over users that appear in `user_ids` and have at least one
    clicked tag; users absent from `clicked_tags` (or with an empty set) and
    users in `clicked_tags` without any scored pair are excluded; with
    `candidate_tags`, so are users without a candidate (absent or empty).

    Args:
        user_ids: User of each scored pair, shape `[n]`.
        tag_ids: Tag of each scored pair, shape `[n]`.
        scores: Score of each pair, shape `[n]`, no NaN.
        clicked_tags: Maps a user id to the tags of the articles it clicked.
        k: Cut-off K, a positive integer.
        candidate_tags: Optional; maps a user id to the tags that may be
            ranked for it. None ranks every scored pair.

    Returns:
        The mean precision, or ``nan`` when no user qualifies.

    Raises:
        ValueError: On non-1-D or mismatched inputs, NaN scores or a
            non-positive `k`.
    """
    _check_k(k)
    users = _as_1d("user_ids", user_ids)
    tags = _as_1d("tag_ids", tag_ids, users.shape[0])
    s = _scores(scores, users.shape[0])
    if candidate_tags is not None:
        allowed = {user: set(user_tags) for user, user_tags in candidate_tags.items()}
        keep = np.fromiter(
            (tag in allowed.get(user, ()) for user, tag in zip(users.tolist(), tags.tolist())),
            dtype=bool,
            count=users.shape[0],
        )
        users, tags, s = users[keep], tags[keep], s[keep]

    user_values, user_codes = np.unique(users, return_inverse=True)
    tag_values, tag_codes = np.unique(tags, return_inverse=True)
    user_codes = user_codes.reshape(-1)
    tag_codes = tag_codes.reshape(-1).astype(np.int64)
    n_users, n_tags = user_values.shape[0], tag_values.shape[0]

    # Best-ranked occurrence of each (user, tag) pair, kept in ranking order.
    order = np.lexsort((-s, user_codes))
    sorted_users = user_codes[order]
    pair_keys = sorted_users.astype(np.int64) * n_tags + tag_codes[order]
    _, first = np.unique(pair_keys, return_index=True)
    kept = np.sort(first)
    top_keys = pair_keys[kept]
    top_users = sorted_users[kept]
    counts = np.bincount(top_users, minlength=n_users)
    ranks = np.arange(kept.shape[0]) - (np.cumsum(counts) - counts)[top_users] + 1
    in_top_k = ranks <= k

    user_index = {user: code for code, user in enumerate(user_values.tolist())}
    tag_index = {tag: code for code, tag in enumerate(tag_values.tolist())}
    denominator = np.zeros(n_users)
    clicked_keys = []
    for user, user_tags in clicked_tags.items():
        code = user_index.get(user)
        if code is None:
            continue
        unique_tags = set(user_tags)
        denominator[code] = min(k, len(unique_tags))
        clicked_keys.extend(
            code * n_tags + tag_index[tag] for tag in unique_tags if tag in tag_index
        )

    hit = in_top_k & np.isin(top_keys, np.asarray(clicked_keys, dtype=np.int64))
    hits = np.bincount(top_users[hit], minlength=n_users)
    valid = denominator > 0
    return _mean_or_nan(hits[valid] / denominator[valid])


def rela_impr(auc_model: float, auc_base: float) -> float:
    """Relative AUC improvement over a baseline (MFN eq. 13).

    ``RelaImpr = (AUC_model - 0.5) / (AUC_base - 0.5) - 1``: the gain over the
    baseline measured above the random-guess AUC of 0.5.

    Args:
        auc_model: AUC of the candidate model.
        auc_base: AUC of the baseline model.

    Returns:
        The relative improvement (0.1 means 10 % better above random).

    Raises:
        ValueError: If `auc_base` is 0.5 (a random baseline leaves the ratio
            undefined).
    """
    if auc_base == 0.5:
        raise ValueError(
            "`auc_base` is 0.5 (random guessing): RelaImpr is undefined because "
            "its denominator AUC_base - 0.5 is zero."
        )
    return (auc_model - 0.5) / (auc_base - 0.5) - 1.0
