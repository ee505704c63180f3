"""Non-learned Prec@K baselines of the MovieLens tags protocol (docs/tags.md), from the raw files.

Why: every UTPM variant sat within 0.05 of chance on ml-1m ratings + ml-10m tags. This script
rebuilds the protocol without TensorFlow (each user's ratings by time, first 80 % → fields,
rest → labels; click = rating ≥ 4 on whole stars; an article = its N most applied tags; the
user's ``tags`` field = the H most frequent tags of the positive history items, ties to the
tag on more catalog articles) and ranks each user's history tags with rules that need no
training, so the learned rows can be read against what the data allow:

* ``chance``: the expected Prec@K of a random order of the history tags;
* ``count``: the user's own order (most frequent in the positive history first);
* ``label popularity``: tags ordered by how many users clicked them in the label period,
  counted on the other half of the users (two folds), the best a user-independent score does;
* ``catalog``: tags on more articles first (what the tie rule alone gives);
* ``oracle``: Prec@K of the best possible order of the history tags (the candidate set's ceiling).

Usage: PYTHONPATH=$PWD .venv/bin/python scripts/tags_baselines.py RATINGS_DIR TAGS_DIR [--ks 1,2,3]
(e.g. ../shared/datasets/movielens/ml-1m ../shared/datasets/movielens/ml-10m-tags).
"""

from __future__ import annotations

import argparse
import collections
import math
import random

from components.ingest import movielens
from components.ingest.report import IngestReport
from components.ingest.sequence_examples import ranked_tags


def load(ratings_dir: str, tags_dir: str, n_tags: int, vocabulary: int | None):
    data = movielens.load_movielens(ratings_dir, IngestReport(), tags_dir=tags_dir)
    rated = {r.item_id for r in data.ratings}
    by_tag = collections.Counter(t.tag for t in data.tags if t.item_id in rated)
    kept = {t for t, _ in by_tag.most_common(vocabulary)} if vocabulary else set(by_tag)
    applied = collections.defaultdict(collections.Counter)
    for t in data.tags:
        if t.tag in kept:
            applied[t.item_id][t.tag] += 1
    article = {m: ranked_tags(c.items())[:n_tags] for m, c in applied.items()}
    per_user = collections.defaultdict(list)
    for r in data.ratings:
        per_user[r.user_id].append(r)
    return article, per_user


def prec(ranked: list[str], clicked: set[str], k: int) -> float:
    return len(set(ranked[:k]) & clicked) / min(k, len(clicked))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ratings_dir")
    parser.add_argument("tags_dir")
    parser.add_argument("--ks", default="1,2,3")
    parser.add_argument("--history", type=int, default=10, help="H: history tags per user")
    parser.add_argument("--article-tags", type=int, default=3, help="N: tags per article")
    parser.add_argument("--positive", type=float, default=3.5)
    parser.add_argument("--vocabulary", type=int, help="keep only the most applied tags (on rated movies)")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    article, per_user = load(args.ratings_dir, args.tags_dir, args.article_tags, args.vocabulary)
    on_articles = collections.Counter(t for tags in article.values() for t in tags)
    users = []
    for uid, events in per_user.items():
        events.sort(key=lambda r: r.time)
        cut = max(1, math.floor(len(events) * 0.8 + 1e-9))
        counts = collections.Counter(t for r in events[:cut] if r.rating >= args.positive for t in article.get(r.item_id, []))
        history = sorted(counts, key=lambda t: (-counts[t], -on_articles[t], t))[: args.history]
        clicked = {t for r in events[cut:] if r.rating >= args.positive for t in article.get(r.item_id, [])}
        if clicked and history:
            users.append((uid, history, clicked))
    folds = [collections.Counter(), collections.Counter()]
    for uid, _, clicked in users:
        folds[uid % 2].update(clicked)
    rng = random.Random(0)
    rules = {
        "count": lambda uid, h: h,
        "label popularity": lambda uid, h: sorted(h, key=lambda t: -folds[1 - uid % 2][t]),
        "catalog": lambda uid, h: sorted(h, key=lambda t: -on_articles[t]),
        "random (one draw)": lambda uid, h: rng.sample(h, len(h)),
    }
    print(f"{len(article)} tagged articles, {len(on_articles)} distinct tags on them (N = {args.article_tags}); "
          f"{len(users)} users with history tags and a clicked tag; "
          f"{sum(len(h) for _, h, _ in users) / len(users):.2f} history tags, "
          f"{sum(len(c) for _, _, c in users) / len(users):.2f} clicked tags, "
          f"{sum(len(set(h) & c) for _, h, c in users) / len(users):.2f} of the history tags clicked, per user")
    print("| rule | " + " | ".join(f"Prec@{k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    chance = [sum(min(k, len(h)) * len(set(h) & c) / len(h) / min(k, len(c)) for _, h, c in users) / len(users) for k in ks]
    print("| chance (expected) | " + " | ".join(f"{v:.4f}" for v in chance) + " |")
    for name, rule in rules.items():
        print(f"| {name} | " + " | ".join(f"{sum(prec(rule(u, h), c, k) for u, h, c in users) / len(users):.4f}" for k in ks) + " |")
    oracle = [sum(prec(sorted(h, key=lambda t: t not in c), c, k) for _, h, c in users) / len(users) for k in ks]
    print("| oracle order | " + " | ".join(f"{v:.4f}" for v in oracle) + " |")


if __name__ == "__main__":
    main()
