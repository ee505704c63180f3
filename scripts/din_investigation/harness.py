"""DIN vs Embedding&MLP investigation harness: trains CTR models directly on an existing
Transform output with the trainer's own input functions (trainer/ctr/input.py), so variants
cost ~1 min each instead of a full pipeline run.

usage (from the repo root, PYTHONPATH=$PWD):
  harness.py TRANSFORM_DIR MODEL [key=value ...]
  TRANSFORM_DIR: a run's pipeline/Transform.ctr (execution 6, H = 50), e.g.
                 /tmp/ctr_demo/pipeline/Transform.ctr; its eval `history` is the run's
                 families.ctr.transform.history (the measurements in docs/ctr.md used a run
                 from before that setting, whose eval history was every rated item, as `all`)
  keys: epochs (2), batch (128), lr (1e-3), dim (32), seed (42), activation, attn_units,
        hist=all|clicked (clicked: this prototype's history = earlier rating >= 4 events only,
        train and eval; unlike the trainer's `history: clicked` it keeps targets without an
        earlier click, with an empty history),
        l2 (item_l2: DIN's mini-batch aware L2), diag=1 (DIN: activation weights vs genre match)
Prints one JSON line: eval AUC (the Trainer's protocol) and train AUC (20k training samples).
"""
import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.metrics import reference
from trainer.ctr import input as ci
from trainer.ctr.config import CTRTransformConfig
from trainer.ctr.models import MODELS
from trainer.ctr.run import evaluate_users, model_sizes

root = sys.argv[1]; name = sys.argv[2]
opts = dict(a.split("=", 1) for a in sys.argv[3:])
epochs = int(opts.get("epochs", 2)); batch = int(opts.get("batch", 128)); lr = float(opts.get("lr", 1e-3))
dim = int(opts.get("dim", 32)); hist_mode = opts.get("hist", "all"); seed = int(opts.get("seed", 42))
l2 = float(opts.get("l2", 0)); H = 50
keras.utils.set_random_seed(seed)
tft_out = tft.TFTransformOutput(f"{root}/transform_graph/6")
ex = f"{root}/transformed_examples/6"
spec = tft_out.transformed_feature_spec()
cfg = CTRTransformConfig(history_length=H, title_length=16)
table = ci.load_item_table([f"{ex}/Split-items/transformed_examples-00000-of-00001.gz"], tft_out, cfg)
train_files = [f"{ex}/Split-train/transformed_examples-00000-of-00001.gz"]
eval_files = [f"{ex}/Split-eval/transformed_examples-00000-of-00001.gz"]

def clicked_samples(items, ratings, h):
    """Prototype: history = only the clicked (rating>=4) earlier events, most recent H."""
    n = tf.size(items)
    pos = tf.range(1, tf.maximum(n, 1))
    clicked = ratings >= 4.0
    # for each target position i, the clicked events at positions < i, last H
    j = tf.range(n)
    before = (j[None, :] < pos[:, None]) & clicked[None, :]                      # [n-1, n]
    rank_from_end = tf.cumsum(tf.cast(before, tf.int32), axis=1, reverse=True)   # 1 = most recent
    keep = before & (rank_from_end <= h)
    # slot index of kept item = (#kept up to and including it) - 1
    slot = tf.cumsum(tf.cast(keep, tf.int32), axis=1) - 1
    idx = tf.where(keep)
    rows = idx[:, 0]; cols = tf.gather_nd(slot, idx)
    vals = tf.gather(items, idx[:, 1])
    hist = tf.scatter_nd(tf.stack([rows, tf.cast(cols, tf.int64)], 1), vals,
                         tf.cast(tf.stack([tf.maximum(n - 1, 0), h]), tf.int64))
    return {"history": hist, "target": tf.gather(items, pos), "click": ci.clicks(tf.gather(ratings, pos))}

def all_samples(items, ratings, h):
    return ci.user_samples(items, ratings, h, "all")

sample_fn = all_samples if hist_mode == "all" else clicked_samples

mc = {"embedding_dim": dim}
if "activation" in opts: mc["activation"] = opts["activation"]
if l2: mc["item_l2"] = l2  # DIN's mini-batch aware L2 (CTRConfig.item_l2)
if "attn_units" in opts: mc["attention_units"] = [int(u) for u in opts["attn_units"].split(",")]
model = MODELS.build(name, mc, **model_sizes(tft_out))
fields = model.item_fields
counts = ci.sample_counts(train_files, spec, "all")  # both modes make one sample per event after the first
steps = epochs * (counts.samples // batch)

def ds():
    tf.random.set_seed(seed)
    return (ci.users(train_files, spec).repeat()
            .flat_map(lambda u: tf.data.Dataset.from_tensor_slices(sample_fn(u["items"], u["ratings"], H)))
            .shuffle(10_000, seed=seed).batch(batch, drop_remainder=True)
            .map(lambda s: (ci.to_model_inputs(s["history"], s["target"], table, fields), s["click"]),
                 num_parallel_calls=tf.data.AUTOTUNE).prefetch(4))

model.compile(optimizer=keras.optimizers.Adam(lr))
t0 = time.time()
model.fit(ds(), steps_per_epoch=steps, epochs=1, verbose=0)
train_time = time.time() - t0

# eval: user's last H train events (or last H clicked train events) as history
if hist_mode == "all":
    ev = evaluate_users(model, ci.evaluation_batches(eval_files, spec, table, fields, 1024))
else:
    # join eval users with their train sequences by user_id
    tr = {int(u["user_id"]): (u["items"].numpy(), u["ratings"].numpy())
          for u in ci.users(train_files, spec, ("user_id", "items", "ratings"))}
    labels, scores = [], []
    for u in ci.users(eval_files, spec, ("user_id", "items", "ratings")):
        it, r = tr[int(u["user_id"])]
        hc = it[r >= 4.0][-H:]
        hist = np.zeros(H, np.int64); hist[:len(hc)] = hc
        tg = u["items"].numpy()
        x = ci.to_model_inputs(tf.constant(np.repeat(hist[None], len(tg), 0)), tf.constant(tg), table, fields)
        scores.append(model(x, training=False).numpy()); labels.append((u["ratings"].numpy() >= 4).astype(float))
    y, s = np.concatenate(labels), np.concatenate(scores)
    ev = {"auc": reference.global_auc(y, s), "events": len(y)}

# train AUC: on 20k training samples (same construction), inference mode
tr_ds = (ci.users(train_files, spec)
         .flat_map(lambda u: tf.data.Dataset.from_tensor_slices(sample_fn(u["items"], u["ratings"], H)))
         .shuffle(100_000, seed=1).take(20_000).batch(512)
         .map(lambda s: (ci.to_model_inputs(s["history"], s["target"], table, fields), s["click"])))
ys, ss = [], []
for x, y in tr_ds:
    ss.append(model(x, training=False).numpy()); ys.append(y.numpy())
train_auc = reference.global_auc(np.concatenate(ys), np.concatenate(ss))
print(json.dumps({"model": name, **opts, "steps": steps, "eval_auc": round(ev["auc"], 4),
                  "train_auc": round(train_auc, 4), "train_s": round(train_time)}), flush=True)

if opts.get("diag") and name == "din":
    # Do the learned activation weights track genre overlap with the target?
    x, y = next(iter(ci.evaluation_batches(eval_files, spec, table, fields, 1024)))
    hist, tgt = model.embed_items(x)
    wts = model.attention(hist, tgt, x["hist_mask"], training=False).numpy()
    hc, tc = x["hist_categories"].numpy(), x["target_categories"].numpy()
    share = np.array([[len((set(h) - {0}) & (set(t) - {0})) > 0 for h in hr] for hr, t in zip(hc, tc)])
    m = (x["hist_mask"].numpy() > 0)
    print(json.dumps({"diag": "attention", "w_mean_genre_match": float(wts[m & share].mean()),
                      "w_mean_no_match": float(wts[m & ~share].mean()), "w_std": float(wts[m].std()),
                      "corr_w_match": float(np.corrcoef(wts[m], share[m])[0, 1])}))
