"""Times the microsoft/recommenders NRMS train step on `usermodel bench train`'s batches.

The issue's speed target compares our NRMS with "the well-known TF implementation" of NRMS:
`recommenders.models.newsrec.models.nrms.NRMSModel` (TF1-style graph mode, legacy Keras 2).
That package cannot be installed beside this stack, so this script imports its model code
from a checkout of https://github.com/recommenders-team/recommenders and trains it, with the
same optimizer settings, on the batches `pipeline/bench_train.py` generates (batch 32,
50-click histories, 30-token titles, 1 + 4 candidates, 50-d GloVe, 20 heads x 20).

    git clone https://github.com/recommenders-team/recommenders /tmp/recommenders
    .venv/bin/python scripts/bench_reference_nrms.py /tmp/recommenders [--lengths-from DIR]

Prints the median samples/s over timed windows of 10 steps (`train_on_batch`, as ours).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # the reference is Keras 2 code
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recommenders", help="a checkout of recommenders-team/recommenders")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lengths-from", help="MIND-format directory (as `usermodel bench train`)")
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, args.recommenders)
    # Only its download helper needs `retrying`; the model never downloads.
    sys.modules.setdefault("retrying", types.SimpleNamespace(retry=lambda *a, **k: (lambda f: f)))
    from pipeline import bench_train

    cfg = bench_train.BenchConfig(lengths_from=args.lengths_from)
    matrix = bench_train.glove_matrix(cfg)

    from recommenders.models.newsrec.models.nrms import NRMSModel
    from recommenders.models.newsrec.newsrec_utils import prepare_hparams

    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/embedding.npy", matrix)
        hparams = prepare_hparams(
            None, wordEmb_file=f"{tmp}/embedding.npy", wordDict_file="-", userDict_file="-",
            title_size=cfg.title_length, his_size=cfg.history_length, npratio=cfg.negatives,
            data_format="news", support_quick_scoring=True, word_emb_dim=cfg.embedding_dim,
            head_num=20, head_dim=20, attention_hidden_dim=200, dropout=0.2, learning_rate=1e-4,
            optimizer="adam", loss="cross_entropy_loss", batch_size=cfg.batch_size, epochs=1,
            show_step=10**9, metrics=["group_auc"], model_type="nrms",
        )
        model = NRMSModel(hparams, lambda *a, **k: None, seed=cfg.seed).model  # no data iterators

    rng = np.random.default_rng(cfg.seed)
    pools = bench_train.length_pools(cfg.lengths_from) if cfg.lengths_from else None
    batches = []
    for _ in range(4):
        x, slot = bench_train.synthetic_batch(rng, cfg, ("title",), pools)
        labels = np.eye(1 + cfg.negatives, dtype="float32")[slot]
        batches.append(([x["hist_title"], x["cand_title"]], labels))
    model.train_on_batch(*batches[0])  # warm-up
    times = []
    for window in range(args.windows):
        start = time.perf_counter()
        for i in range(args.steps):
            model.train_on_batch(*batches[i % len(batches)])
        times.append(time.perf_counter() - start)
        print(f"window {window + 1}/{args.windows}: {times[-1]:.2f} s", flush=True)
    rate = cfg.batch_size * args.steps / statistics.median(times)
    print(f"reference NRMS (microsoft/recommenders): {rate:.1f} train samples/s, median of {args.windows} windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
