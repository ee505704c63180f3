"""Tests for the NumPy reference metrics (components/metrics/reference.py).

Three layers: hand-computed golden cases (worked out in the comments), a
randomized comparison against deliberately naive loop implementations written
here (pairwise counting, explicit Python sorts), and input validation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.metrics import reference

# ---------------------------------------------------------------------------
# Golden cases.
# ---------------------------------------------------------------------------

# One impression: labels [1, 0, 0, 1], scores [0.9, 0.8, 0.3, 0.1].
#   AUC: pairs (pos, neg) = (0.9, 0.8) win, (0.9, 0.3) win, (0.1, 0.8) loss,
#        (0.1, 0.3) loss -> 2 / 4 = 1/2.
#   Ranking by score: 0.9 (y=1) r1, 0.8 r2, 0.3 r3, 0.1 (y=1) r4.
#   MRR: (1/1 + 1/4) / 2 = 5/8.
#   DCG@4 = 1/log2(2) + 1/log2(5);  IDCG@4 = 1/log2(2) + 1/log2(3).
#   DCG@2 = 1;                      IDCG@2 = 1 + 1/log2(3).
#   DCG@1 = IDCG@1 = 1.
SINGLE_LABELS = [1, 0, 0, 1]
SINGLE_SCORES = [0.9, 0.8, 0.3, 0.1]
SINGLE_GROUPS = [7, 7, 7, 7]


def test_single_impression_auc():
    assert reference.group_auc(SINGLE_LABELS, SINGLE_SCORES, SINGLE_GROUPS) == 0.5


def test_single_impression_mrr():
    assert reference.mrr(SINGLE_LABELS, SINGLE_SCORES, SINGLE_GROUPS) == pytest.approx(
        5 / 8
    )


@pytest.mark.parametrize(
    "k, expected",
    [
        (1, 1.0),
        (2, 1.0 / (1.0 + 1.0 / math.log2(3))),
        (4, (1.0 + 1.0 / math.log2(5)) / (1.0 + 1.0 / math.log2(3))),
        # k beyond the impression size uses the whole impression (same as k=4).
        (10, (1.0 + 1.0 / math.log2(5)) / (1.0 + 1.0 / math.log2(3))),
    ],
)
def test_single_impression_ndcg(k, expected):
    assert reference.ndcg_at_k(
        SINGLE_LABELS, SINGLE_SCORES, SINGLE_GROUPS, k
    ) == pytest.approx(expected)


# Four impressions, items interleaved in the input:
#   "a": labels [1, 0, 0, 1], scores [0.9, 0.8, 0.3, 0.1] -> as above:
#        AUC 1/2, MRR 5/8, nDCG@2 = 1 / (1 + 1/log2 3).
#   "b": labels [0, 1, 0], scores [0.1, 0.5, 0.3] -> the positive beats both
#        negatives: AUC 1; it ranks first: MRR 1, nDCG 1.
#   "c": labels [1, 1], scores [0.3, 0.4] -> only positives: no AUC (excluded);
#        ranks 2 and 1: MRR (1/2 + 1/1) / 2 = 3/4; every order is ideal: nDCG 1.
#   "d": labels [0, 0, 0] -> only negatives: excluded from AUC, MRR and nDCG.
# group AUC = (1/2 + 1) / 2 = 3/4        (c and d excluded)
# MRR       = (5/8 + 1 + 3/4) / 3 = 19/24 (d excluded)
# nDCG@2    = (1 / (1 + 1/log2 3) + 1 + 1) / 3
MULTI = [
    # (group, label, score)
    ("a", 1, 0.9),
    ("b", 0, 0.1),
    ("c", 1, 0.3),
    ("d", 0, 0.2),
    ("a", 0, 0.8),
    ("b", 1, 0.5),
    ("d", 0, 0.6),
    ("c", 1, 0.4),
    ("a", 0, 0.3),
    ("b", 0, 0.3),
    ("d", 0, 0.4),
    ("a", 1, 0.1),
]
MULTI_GROUPS = [row[0] for row in MULTI]
MULTI_LABELS = [row[1] for row in MULTI]
MULTI_SCORES = [row[2] for row in MULTI]


def test_group_auc_excludes_single_class_impressions():
    assert reference.group_auc(
        MULTI_LABELS, MULTI_SCORES, MULTI_GROUPS
    ) == pytest.approx(3 / 4)


def test_mrr_excludes_impressions_without_clicks():
    assert reference.mrr(MULTI_LABELS, MULTI_SCORES, MULTI_GROUPS) == pytest.approx(
        19 / 24
    )


def test_ndcg_excludes_impressions_without_positives():
    expected = (1.0 / (1.0 + 1.0 / math.log2(3)) + 1.0 + 1.0) / 3
    assert reference.ndcg_at_k(
        MULTI_LABELS, MULTI_SCORES, MULTI_GROUPS, 2
    ) == pytest.approx(expected)


def test_no_qualifying_group_gives_nan():
    # Every impression is single-class: AUC undefined everywhere.
    assert math.isnan(reference.group_auc([1, 1, 0], [0.1, 0.2, 0.3], [1, 1, 2]))
    # No clicks at all: MRR and nDCG undefined everywhere.
    assert math.isnan(reference.mrr([0, 0], [0.1, 0.2], [1, 2]))
    assert math.isnan(reference.ndcg_at_k([0, 0], [0.1, 0.2], [1, 2], 5))
    assert math.isnan(reference.global_auc([1, 1], [0.1, 0.2]))
    assert math.isnan(reference.group_auc([], [], []))


def test_auc_ties_count_half():
    # labels [1, 0, 1, 0], scores [0.5, 0.5, 0.7, 0.2]:
    #   (0.5, 0.5) tie 1/2, (0.5, 0.2) 1, (0.7, 0.5) 1, (0.7, 0.2) 1 -> 3.5/4 = 7/8.
    labels, scores = [1, 0, 1, 0], [0.5, 0.5, 0.7, 0.2]
    assert reference.group_auc(labels, scores, [0, 0, 0, 0]) == pytest.approx(7 / 8)
    assert reference.global_auc(labels, scores) == pytest.approx(7 / 8)
    # All scores equal: every pair is a tie -> 1/2.
    assert reference.group_auc([0, 1, 1], [3, 3, 3], [0, 0, 0]) == 0.5


def test_global_auc_pools_all_items():
    # labels [1, 0, 1, 0, 0], scores [0.8, 0.8, 0.4, 0.6, 0.1]:
    #   pos 0.8 vs negs 0.8, 0.6, 0.1 -> 1/2 + 1 + 1 = 2.5
    #   pos 0.4 vs negs 0.8, 0.6, 0.1 -> 0 + 0 + 1   = 1
    #   (2.5 + 1) / (2 * 3) = 7/12.
    assert reference.global_auc(
        [1, 0, 1, 0, 0], [0.8, 0.8, 0.4, 0.6, 0.1]
    ) == pytest.approx(7 / 12)


def test_ranking_ties_are_stable():
    # Equal scores: the earlier input item ranks first.
    # labels [0, 1, 0] all scored 0.5 -> the positive ranks 2nd: MRR 1/2.
    assert reference.mrr([0, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0]) == 0.5
    # labels [1, 0] tied -> the positive ranks 1st: MRR 1.
    assert reference.mrr([1, 0], [0.5, 0.5], [0, 0]) == 1.0
    # labels [0, 1] tied, k=2 -> DCG = 1/log2(3), IDCG = 1.
    assert reference.ndcg_at_k([0, 1], [0.4, 0.4], [0, 0], 2) == pytest.approx(
        1 / math.log2(3)
    )
    # ... and k=1 keeps only the earlier (negative) item: nDCG@1 = 0.
    assert reference.ndcg_at_k([0, 1], [0.4, 0.4], [0, 0], 1) == 0.0


def test_ndcg_graded_labels():
    # labels [2, 0, 1], scores [0.1, 0.9, 0.5]; gains 2^y - 1 = [3, 0, 1].
    #   predicted order: y=0 (r1), y=1 (r2), y=2 (r3)
    #     DCG  = 0/log2(2) + 1/log2(3) + 3/log2(4) = 1/log2 3 + 3/2
    #   ideal order: y=2, y=1, y=0
    #     IDCG = 3/log2(2) + 1/log2(3) + 0         = 3 + 1/log2 3
    expected = (1 / math.log2(3) + 1.5) / (3 + 1 / math.log2(3))
    assert reference.ndcg_at_k([2, 0, 1], [0.1, 0.9, 0.5], [0, 0, 0], 3) == (
        pytest.approx(expected)
    )


# Prec@K (UTPM eq. 5). Scored (user, tag, score) pairs:
#   u1: (a, 0.9) (a, 0.85) (b, 0.8) (c, 0.6) (d, 0.5); clicked {a, c, e}
#       unique ranking a, b, c, d (a's duplicate is dropped)
#       k=1: {a}        -> 1 hit / min(1, 3) = 1
#       k=2: {a, b}     -> 1 / 2
#       k=3: {a, b, c}  -> 2 / 3 (without de-duplication top-3 would be a, a, b: 1/3)
#       k=5: {a, b, c, d} (only 4 unique) -> 2 / min(5, 3) = 2/3
#   u2: (x, 0.1) (y, 0.2); clicked {y}: top-1 {y} -> 1/1; for k >= 2 the
#       denominator is min(k, 1) = 1 -> 1.
#   u3: scored but absent from clicked_tags -> excluded.
#   u4: clicked {a} but never scored -> excluded.
#   u5: scored, empty clicked set -> excluded.
# mean: k=1 (1 + 1)/2 = 1; k=2 (1/2 + 1)/2 = 3/4; k=3 and k=5 (2/3 + 1)/2 = 5/6.
PREC_PAIRS = [
    ("u1", "a", 0.9),
    ("u2", "x", 0.1),
    ("u1", "a", 0.85),
    ("u3", "a", 0.3),
    ("u1", "b", 0.8),
    ("u2", "y", 0.2),
    ("u1", "c", 0.6),
    ("u5", "a", 0.5),
    ("u1", "d", 0.5),
]
PREC_CLICKED = {"u1": {"a", "c", "e"}, "u2": ["y"], "u4": {"a"}, "u5": set()}


@pytest.mark.parametrize("k, expected", [(1, 1.0), (2, 3 / 4), (3, 5 / 6), (5, 5 / 6)])
def test_prec_at_k_golden(k, expected):
    users, tags, scores = zip(*PREC_PAIRS)
    assert reference.prec_at_k(users, tags, scores, PREC_CLICKED, k) == pytest.approx(
        expected
    )


def test_prec_at_k_duplicate_tag_keeps_best_score():
    # Tag "a" first at 0.1, again at 0.9: its best score ranks it first.
    precision = reference.prec_at_k(
        [1, 1, 1], ["a", "b", "a"], [0.1, 0.5, 0.9], {1: ["a"]}, 1
    )
    assert precision == 1.0


def test_prec_at_k_ties_are_stable():
    # Tied scores: the earlier pair wins the single top-1 slot.
    assert reference.prec_at_k([0, 0], [10, 20], [0.5, 0.5], {0: [20]}, 1) == 0.0
    assert reference.prec_at_k([0, 0], [20, 10], [0.5, 0.5], {0: [20]}, 1) == 1.0


def test_prec_at_k_no_qualifying_user_gives_nan():
    assert math.isnan(reference.prec_at_k([0], [1], [0.3], {1: [1]}, 1))


# History candidates (UTPM's candidate selection): u1 may rank b, c, d only (a, its best-scored
# tag, is not a candidate), u2 only x, u3 has an empty set, u5 no entry at all.
PREC_CANDIDATES = {"u1": ["b", "c", "d", "zz"], "u2": ["x"], "u3": [], "u4": ["a"]}


@pytest.mark.parametrize("k, expected", [(1, 0.0), (2, 1 / 4), (3, 1 / 6), (5, 1 / 6)])
def test_prec_at_k_history_candidates_golden(k, expected):
    # u1: candidates ranked b (0.8), c (0.6), d (0.5); clicked {a, c, e} → hits at K ≥ 2 over
    # min(K, 3). u2: x only, clicked y → 0. u3: no candidate, u4: not scored, u5: no clicked
    # tag → left out. The denominator counts the clicked tags outside the candidates (a, e).
    users, tags, scores = zip(*PREC_PAIRS)
    got = reference.prec_at_k(users, tags, scores, PREC_CLICKED, k, candidate_tags=PREC_CANDIDATES)
    assert got == pytest.approx(expected)


def test_prec_at_k_candidates_exclude_users_without_candidates():
    # The only clicked user has no candidate: no value rather than 0.
    assert math.isnan(reference.prec_at_k([0, 0], [1, 2], [0.3, 0.2], {0: [1]}, 1, candidate_tags={0: []}))
    assert math.isnan(reference.prec_at_k([0, 0], [1, 2], [0.3, 0.2], {0: [1]}, 1, candidate_tags={}))
    # Every tag a candidate: the same as ranking all tags.
    assert reference.prec_at_k([0, 0], [1, 2], [0.2, 0.3], {0: [1]}, 1, candidate_tags={0: [1, 2]}) == 0.0


@pytest.mark.parametrize(
    "auc_model, auc_base, expected",
    [
        (0.75, 0.7, 0.25),  # 0.25 / 0.2 - 1
        (0.6, 0.7, -0.5),  # 0.1 / 0.2 - 1
        (0.7, 0.7, 0.0),
    ],
)
def test_rela_impr(auc_model, auc_base, expected):
    assert reference.rela_impr(auc_model, auc_base) == pytest.approx(expected)


# ---------------------------------------------------------------------------
# Randomized comparison against naive loop implementations.
# ---------------------------------------------------------------------------


def _groups(group_ids):
    """Indices of each group, in input order."""
    groups: dict = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(g, []).append(i)
    return groups.values()


def _stable_desc(indices, scores):
    # Python's sort is stable: equal scores keep input order.
    return sorted(indices, key=lambda i: -scores[i])


def naive_auc(labels, scores):
    pos = [s for y, s in zip(labels, scores) if y == 1]
    neg = [s for y, s in zip(labels, scores) if y == 0]
    if not pos or not neg:
        return None
    wins = 0.0
    for p in pos:
        for n in neg:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(pos) * len(neg))


def _mean(values):
    return sum(values) / len(values) if values else math.nan


def naive_group_auc(labels, scores, group_ids):
    aucs = []
    for idx in _groups(group_ids):
        auc = naive_auc([labels[i] for i in idx], [scores[i] for i in idx])
        if auc is not None:
            aucs.append(auc)
    return _mean(aucs)


def naive_mrr(labels, scores, group_ids):
    values = []
    for idx in _groups(group_ids):
        ranked = _stable_desc(idx, scores)
        clicks = sum(labels[i] for i in idx)
        if clicks == 0:
            continue
        rr = sum(labels[i] / (rank + 1) for rank, i in enumerate(ranked))
        values.append(rr / clicks)
    return _mean(values)


def naive_ndcg(labels, scores, group_ids, k):
    values = []
    for idx in _groups(group_ids):
        ranked = _stable_desc(idx, scores)[:k]
        ideal = sorted((labels[i] for i in idx), reverse=True)[:k]
        dcg = sum((2 ** labels[i] - 1) / math.log2(r + 2) for r, i in enumerate(ranked))
        idcg = sum((2**y - 1) / math.log2(r + 2) for r, y in enumerate(ideal))
        if idcg > 0:
            values.append(dcg / idcg)
    return _mean(values)


def naive_prec(user_ids, tag_ids, scores, clicked, k, candidates=None):
    values = []
    for idx in _groups(user_ids):
        user = user_ids[idx[0]]
        truth = set(clicked.get(user, ()))
        if not truth:
            continue
        if candidates is not None:
            idx = [i for i in idx if tag_ids[i] in set(candidates.get(user, ()))]
            if not idx:
                continue
        top = []
        for i in _stable_desc(idx, scores):
            if tag_ids[i] not in top:
                top.append(tag_ids[i])
            if len(top) == k:
                break
        values.append(len(set(top) & truth) / min(k, len(truth)))
    return _mean(values)


def _random_impressions(seed, *, tied):
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(5, 60))
    sizes = rng.integers(1, 25, size=n_groups)
    group_ids = np.repeat(rng.permutation(10_000)[:n_groups], sizes)
    positive_rate = rng.uniform(0.05, 0.6, size=n_groups).repeat(sizes)
    labels = (rng.random(group_ids.size) < positive_rate).astype(int)
    scores = rng.random(group_ids.size)
    if tied:
        scores = np.round(scores, 1)
    perm = rng.permutation(group_ids.size)  # interleave impressions
    return labels[perm].tolist(), scores[perm].tolist(), group_ids[perm].tolist()


SEEDS = [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_group_metrics_match_naive(seed, tied):
    labels, scores, groups = _random_impressions(seed, tied=tied)
    assert reference.group_auc(labels, scores, groups) == pytest.approx(
        naive_group_auc(labels, scores, groups), rel=1e-12
    )
    assert reference.global_auc(labels, scores) == pytest.approx(
        naive_group_auc(labels, scores, [0] * len(labels)), rel=1e-12
    )
    assert reference.mrr(labels, scores, groups) == pytest.approx(
        naive_mrr(labels, scores, groups), rel=1e-12
    )
    for k in (1, 3, 5, 10, 50):
        assert reference.ndcg_at_k(labels, scores, groups, k) == pytest.approx(
            naive_ndcg(labels, scores, groups, k), rel=1e-12
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graded_ndcg_matches_naive(seed):
    rng = np.random.default_rng(100 + seed)
    groups = rng.integers(0, 40, size=400).tolist()
    labels = rng.choice([0, 0, 0, 1, 2, 3], size=400).tolist()
    scores = np.round(rng.random(400), 2).tolist()
    for k in (1, 5, 20):
        assert reference.ndcg_at_k(labels, scores, groups, k) == pytest.approx(
            naive_ndcg(labels, scores, groups, k), rel=1e-12
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_random_prec_at_k_matches_naive(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(50, 800))
    users = rng.integers(0, 30, size=n).tolist()
    tags = rng.integers(0, 40, size=n).tolist()  # many duplicate (user, tag) pairs
    scores = np.round(rng.random(n), 2).tolist()  # many ties
    clicked = {
        u: set(rng.integers(0, 45, size=int(rng.integers(0, 12))).tolist())
        for u in range(35)  # some users never scored, tags 40..44 never scored
    }
    for k in (1, 2, 3, 5, 10, 20, 50):
        assert reference.prec_at_k(users, tags, scores, clicked, k) == pytest.approx(
            naive_prec(users, tags, scores, clicked, k), rel=1e-12
        )
    # History candidates: random subsets, some empty, some users without an entry.
    candidates = {u: set(rng.integers(0, 45, size=int(rng.integers(0, 10))).tolist()) for u in range(25)}
    for k in (1, 2, 3, 5, 10, 20, 50):
        got = reference.prec_at_k(users, tags, scores, clicked, k, candidate_tags=candidates)
        assert got == pytest.approx(naive_prec(users, tags, scores, clicked, k, candidates), rel=1e-12, nan_ok=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_group_auc_matches_sklearn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    labels, scores, groups = _random_impressions(seed, tied=True)
    labels, scores, groups = map(np.asarray, (labels, scores, groups))
    aucs = [
        metrics.roc_auc_score(labels[groups == g], scores[groups == g])
        for g in np.unique(groups)
        if 0 < labels[groups == g].sum() < (groups == g).sum()
    ]
    assert reference.group_auc(labels, scores, groups) == pytest.approx(
        float(np.mean(aucs)), rel=1e-12
    )
    assert reference.global_auc(labels, scores) == pytest.approx(
        metrics.roc_auc_score(labels, scores), rel=1e-12
    )


# ---------------------------------------------------------------------------
# Input validation.
# ---------------------------------------------------------------------------

GROUP_FUNCTIONS = [
    reference.group_auc,
    reference.mrr,
    lambda y, s, g: reference.ndcg_at_k(y, s, g, 3),
]


@pytest.mark.parametrize("fn", GROUP_FUNCTIONS)
def test_group_metrics_validate_inputs(fn):
    with pytest.raises(ValueError, match="`scores` has length 2"):
        fn([1, 0, 1], [0.1, 0.2], [0, 0, 0])
    with pytest.raises(ValueError, match="`group_ids` has length 2"):
        fn([1, 0, 1], [0.1, 0.2, 0.3], [0, 0])
    with pytest.raises(ValueError, match="`scores` contains NaN"):
        fn([1, 0], [0.1, np.nan], [0, 0])
    with pytest.raises(ValueError, match="`labels` must be a 1-D array"):
        fn([[1, 0]], [0.1, 0.2], [0, 0])


@pytest.mark.parametrize("fn", [reference.group_auc, reference.mrr])
def test_binary_metrics_reject_non_binary_labels(fn):
    with pytest.raises(ValueError, match="`labels` must be binary"):
        fn([1, 2], [0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="`labels` must be binary"):
        fn([1, np.nan], [0.1, 0.2], [0, 0])


def test_global_auc_validates_inputs():
    with pytest.raises(ValueError, match="`labels` must be binary"):
        reference.global_auc([0.5, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="`scores` has length 1"):
        reference.global_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="`scores` contains NaN"):
        reference.global_auc([0, 1], [np.nan, 0.1])


def test_ndcg_validates_labels_and_k():
    assert not math.isnan(reference.ndcg_at_k([2, 0], [0.1, 0.2], [0, 0], 2))
    with pytest.raises(ValueError, match="`labels` must be finite and >= 0"):
        reference.ndcg_at_k([-1, 1], [0.1, 0.2], [0, 0], 2)
    with pytest.raises(ValueError, match="`labels` must be finite and >= 0"):
        reference.ndcg_at_k([np.nan, 1], [0.1, 0.2], [0, 0], 2)
    for bad_k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`k` must be a positive integer"):
            reference.ndcg_at_k([1, 0], [0.1, 0.2], [0, 0], bad_k)


def test_prec_at_k_validates_inputs():
    with pytest.raises(ValueError, match="`tag_ids` has length 1"):
        reference.prec_at_k([0, 0], [1], [0.1, 0.2], {0: [1]}, 1)
    with pytest.raises(ValueError, match="`scores` has length 1"):
        reference.prec_at_k([0, 0], [1, 2], [0.1], {0: [1]}, 1)
    with pytest.raises(ValueError, match="`scores` contains NaN"):
        reference.prec_at_k([0, 0], [1, 2], [0.1, np.nan], {0: [1]}, 1)
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        reference.prec_at_k([0], [1], [0.1], {0: [1]}, 0)


def test_rela_impr_rejects_random_baseline():
    with pytest.raises(ValueError, match="`auc_base` is 0.5"):
        reference.rela_impr(0.7, 0.5)
