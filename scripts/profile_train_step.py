"""Where a news or CTR model's training step spends its time, by model part (TensorFlow profiler).

    python scripts/profile_train_step.py nrms fum_title
    python scripts/profile_train_step.py din mfn

Each model (a `usermodel bench train` model, at its family's benchmark setting) is warmed up,
then 5 `train_on_batch` steps run under the TensorFlow profiler. Kernel times are summed per
part of the model (news: news encoder, each user-encoder part; CTR: each top-level layer;
the optimizer; forward and backward separately) and averaged per step. Kernels of both cores
are added up, so the total exceeds the step's wall time; the parts' shares are what the numbers are for (docs/benchmarks.md,
"Targets").
"""

from __future__ import annotations

import collections
import glob
import re
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from pipeline import bench_ctr, bench_train

STEPS = 5


def part(op_name: str, model_scope: str = "") -> str:
    """The model part of a kernel: `model/news_encoder`, `model/user_encoder/<part>`,
    `<model_scope>/<layer>` (CTR), or else its top-level scope (e.g. `adam`, `model`); `[bwd]`
    for gradient kernels."""
    backward = op_name.startswith("gradient_tape/")
    scopes = re.sub(r"_\d+(?=/|$)", "", op_name.removeprefix("gradient_tape/")).split("/")
    depth = {"news_encoder": 2, "user_encoder": 3}.get(scopes[1] if len(scopes) > 2 else "", 1)
    if scopes[0] == model_scope:
        depth = 2
    return "/".join(scopes[:depth]) + ("  [bwd]" if backward else "")


def kernel_times(logdir: str, model_scope: str = "") -> collections.Counter:
    """Milliseconds per model part over all host kernels in the profile under `logdir`."""
    (path,) = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals: collections.Counter = collections.Counter()
    for plane in space.planes:
        if "host" not in plane.name.lower():
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Kernel events are "op_name:OpType"; runtime events have no type suffix.
                if ":" in name and not name.startswith(("Eager", "Kernel", "Executor", "Threadpool")):
                    totals[part(name.rsplit(":", 1)[0], model_scope)] += event.duration_ps / 1e9
    return totals


def profile(variant: str) -> None:
    if variant in bench_train.VARIANTS:
        cfg = bench_train.BenchConfig()
        model = bench_train.build(variant, cfg)
        rng = np.random.default_rng(cfg.seed)
        batches = [bench_train.synthetic_batch(rng, cfg, tuple(model.news_fields)) for _ in range(4)]
    else:
        cfg = bench_ctr.CTRBenchConfig()
        model = bench_ctr.build(variant, cfg, np.random.default_rng(cfg.seed + 1))
        batches = bench_ctr.batches(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    for x, y in batches:  # warm-up: tracing and the first steps
        model.train_on_batch(x, y)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for i in range(STEPS):
            model.train_on_batch(*batches[i % len(batches)])
        tf.profiler.experimental.stop()
        # A CTR model's parts are its top-level layers (news models: the depths of `part`).
        totals = kernel_times(logdir, "" if variant in bench_train.VARIANTS else model.name)
    print(f"\n{variant}: {sum(totals.values()) / STEPS:.0f} ms of kernel time per step")
    for name, ms in totals.most_common(12):
        print(f"  {ms / STEPS:8.1f} ms  {name}")


if __name__ == "__main__":
    for variant in sys.argv[1:] or ["nrms", "fum_title"]:
        profile(variant)
