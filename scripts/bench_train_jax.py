"""The news models under the JAX backend: a smoke run of each, then training speed; with `ctr`,
the CTR models' training speed instead.

Model code is `keras.ops` only, so the TFX Trainer's models also train with JAX (on a GPU
machine, say). This script trains each news model for a few steps on the test fixtures' planted
data, checks the loss is finite and that a save/load round trip predicts the same, then times
`train_on_batch` at `usermodel bench train`'s paper-style setting (random word vectors: GloVe
needs pyarrow, which such a machine may lack). Under JAX the padded computation runs (no
trimming, `trainer/news/models/padding.py`).

    KERAS_BACKEND=jax python scripts/bench_train_jax.py      # from the repository root
    KERAS_BACKEND=jax python scripts/bench_train_jax.py ctr  # Embedding&MLP, DIN, MFN

The CTR models train on `pipeline/bench_ctr.py`'s batches (the same for every model), their
windows interleaved as in `usermodel bench train`.
"""

import dataclasses
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path[:0] = [".", "tests/trainer/news"]

import keras  # noqa: E402
import numpy as np  # noqa: E402
from news_fixtures import NUM_ENTITIES, NUM_USERS, SIZES, impressions  # noqa: E402

from pipeline import bench_ctr  # noqa: E402
from pipeline.bench_train import VARIANTS, BenchConfig, synthetic_batch  # noqa: E402
from trainer.news.models import build_model, make_config  # noqa: E402


def _build(name: str, preset, sizes: dict):
    declared = {f.name for f in dataclasses.fields(make_config(name))}
    return build_model(name, preset, **{k: v for k, v in sizes.items() if k in declared})


def smoke() -> None:
    x, labels = impressions(np.random.default_rng(0), 16, width=5, clicks=1)
    y = labels.argmax(-1).astype("int32")
    for name in ["nrms", "lstur", "fum", "fum_no_coarse", "fum_no_fine"]:
        model = _build(name, "tiny", {**SIZES, "num_users": NUM_USERS, "num_entities": NUM_ENTITIES})
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        losses = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]
        scores = np.asarray(model.predict(x, verbose=0))
        assert np.isfinite(scores).all() and np.isfinite(losses).all(), name
        path = f"/tmp/{name}.keras"
        model.save(path)
        restored = keras.models.load_model(path)
        np.testing.assert_allclose(np.asarray(restored.predict(x, verbose=0)), scores, rtol=1e-4, atol=1e-4)
        print(f"{name}: ok, loss {[round(v, 4) for v in losses]}", flush=True)


def speed(variants=("nrms", "fum_title", "fum"), steps: int = 20, windows: int = 5) -> None:
    cfg = BenchConfig()
    sizes = {"vocab_size": cfg.vocab_size, "num_categories": cfg.num_categories,
             "num_subcategories": cfg.num_subcategories, "num_users": cfg.num_users,
             "embedding_dim": cfg.embedding_dim}
    for variant in variants:
        name, overrides = VARIANTS[variant]
        model = _build(name, None, {**sizes, **overrides})
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
        rng = np.random.default_rng(cfg.seed)
        batches = [synthetic_batch(rng, cfg, tuple(model.news_fields)) for _ in range(4)]
        model.train_on_batch(*batches[0])  # compiles
        times = []
        for _ in range(windows):
            start = time.perf_counter()
            for i in range(steps):
                model.train_on_batch(*batches[i % len(batches)])
            times.append(time.perf_counter() - start)
        rate = cfg.batch_size * steps / statistics.median(times)
        print(f"{variant}: {rate:.0f} train samples/s (windows {[round(t, 3) for t in times]} s per {steps} steps)",
              flush=True)


def speed_ctr(models=bench_ctr.DEFAULT_MODELS + ("mfn_no_combination",), steps: int = 50, windows: int = 5) -> None:
    cfg = bench_ctr.CTRBenchConfig()
    batches = bench_ctr.batches(cfg)
    built = {}
    for name in models:
        model = bench_ctr.build(name, cfg, np.random.default_rng(cfg.seed + 1))
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
        for x, y in batches:  # compiles
            model.train_on_batch(x, y)
        built[name] = model
    times = {name: [] for name in models}
    for _ in range(windows):
        for name, model in built.items():
            start = time.perf_counter()
            for i in range(steps):
                model.train_on_batch(*batches[i % len(batches)])
            times[name].append(time.perf_counter() - start)
    for name in models:
        median = statistics.median(times[name])
        print(f"{name}: {cfg.batch_size * steps / median:.0f} train samples/s, {1000 * median / steps:.2f} ms/step "
              f"(windows {[round(t, 3) for t in times[name]]} s per {steps} steps)", flush=True)


if __name__ == "__main__":
    print("backend", keras.backend.backend(), flush=True)
    if sys.argv[1:] == ["ctr"]:
        speed_ctr()
    else:
        smoke()
        speed()
