"""What the demo data's clicks depend on, and how much of it each kind of pooling can see.

AUCs on the CTR eval protocol (each user's last 20 % of ratings by time, history = their
train ratings), from the generator's true world and from simple history statistics.
"""
import sys

import numpy as np
import pandas as pd

from components.ingest.synthetic.movielens import MOVIELENS_GENRES, MovieLensWorld, SyntheticMovieLensConfig
from components.metrics.reference import global_auc

data = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ctr_demo/data/ctr-synthetic-demo"
c = SyntheticMovieLensConfig.preset("demo"); w = MovieLensWorld.build(c)
r = pd.read_csv(f"{data}/ratings.csv"); m = pd.read_csv(f"{data}/movies.csv")
idx = {int(mid): i for i, mid in enumerate(w.movie_ids)}
G = np.array([[g in s.split("|") for g in MOVIELENS_GENRES] for s in m.genres]); mg = dict(zip(m.movieId, G))
r["click"] = (r.rating >= 4).astype(float)
r = r.sort_values(["userId", "timestamp"], kind="stable")
rows = []
train_parts = []
for u, df in r.groupby("userId", sort=False):
    n = len(df); k = max(1, int(np.floor(n * 0.8)))
    tr, ev = df.iloc[:k], df.iloc[k:]
    train_parts.append(tr)
    ug = w.user_genres[u - 1]; ut = w.user_tags[u - 1]
    trg = np.stack([mg[x] for x in tr.movieId]).astype(float)
    hist_all = trg.sum(0)                                 # genre histogram, all rated
    hist_last = trg[-50:].sum(0)                          # last 50 (the model's window)
    hist_clk = trg[tr.rating.values >= 4].sum(0)          # clicked only
    for mid, y in zip(ev.movieId, ev.click):
        i = idx[mid]; tgen = mg[mid].astype(float)
        pref = float((w.movie_genres[i] & ug).any()); tags = float((w.movie_tags[i] & ut).sum())
        rows.append(dict(y=y, u=u, mid=mid,
            oracle=c.genre_weight * pref + c.tag_weight * tags + w.movie_bias[i] + w.user_bias[u - 1],
            oracle_no_user=c.genre_weight * pref + c.tag_weight * tags + w.movie_bias[i],
            oracle_genre_movie=c.genre_weight * pref + w.movie_bias[i],
            pref=pref, movie_bias=w.movie_bias[i],
            sum_hist=(hist_last / max(len(tr[-50:]), 1)) @ tgen,   # share of last-50 history in target genres
            max_hist=((hist_last / max(len(tr[-50:]), 1)) * tgen).max(),
            overlap_last50=float((trg[-50:] @ tgen > 0).sum()),     # items sharing a genre w/ target
            clicked_share=(hist_clk / max(hist_clk.sum(), 1)) @ tgen))
E = pd.DataFrame(rows); T = pd.concat(train_parts)
ctr = T.groupby("movieId").click.agg(["sum", "count"]); prior = T.click.mean()
E["item_ctr"] = E.mid.map(((ctr["sum"] + 5 * prior) / (ctr["count"] + 5))).fillna(prior)
print(f"eval events {len(E)}, clicks {E.y.mean():.3f}; train events {len(T)}")
for col in ["oracle", "oracle_no_user", "oracle_genre_movie", "pref", "movie_bias", "item_ctr",
            "sum_hist", "max_hist", "overlap_last50", "clicked_share"]:
    print(f"{col:20s} AUC {global_auc(E.y.values, E[col].values):.4f}")
# history statistic + item ctr (logit-ish combination, fitted crude by grid)
best = max(((global_auc(E.y.values, a * E.max_hist + np.log(E.item_ctr / (1 - E.item_ctr))), a) for a in [1, 2, 4, 8, 16]))
print("max_hist + logit(item_ctr) best", best)
# how well the history identifies preferred genres: top-k genres of the last-50 histogram vs truth
