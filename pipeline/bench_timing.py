"""The timing machinery of `usermodel bench train`, shared by every family's speed benchmark.

A family brings its configuration (a `TimingConfig` subclass), its models and its batches; this
module compiles each model, times it in windows of `steps` calls, interleaves the models'
windows and reports medians. Interleaving is what keeps the ratios meaningful on this shared
machine: model A, B, C, then A, B, C again, so every model sees the same background load even
when the absolute rates move between windows.

Timed kinds (one `<kind>_window` method each on a `Subject`):

* `train`: the compiled train step of `fit`, run by `train_on_batch` on ready tensors. Windows
  timed around one `fit` call each took up to ~4.5 s longer than their steps on this machine
  (durations stuck at multiples of ~5.1 s), so `fit` is not timed;
* `full`: the model's forward pass on a training batch (`training=False`);
* family-specific kinds (news: `cached`, serving-style scoring from cached news vectors).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Result key of each timed kind's median rate.
RATE_KEYS = {
    "train": "train_samples_per_s",
    "full": "full_inference_samples_per_s",
    "cached": "cached_inference_users_per_s",
}


@dataclasses.dataclass
class TimingConfig:
    """What every family's speed benchmark has; families subclass it with their batch shapes."""

    models: list[str] = dataclasses.field(default_factory=list)
    """Models to measure, in table order (the first is the reference of the "vs" column)."""
    batch_size: int = 32
    """Samples per step (NRMS, FUM and DIN all train at 32)."""
    embedding_dim: int = 50
    """Embedding width (each family sets its papers' default)."""
    steps: int = 10
    """Calls per timed window."""
    windows: int = 5
    """Timed windows; the median is reported."""
    jit_compile: bool = False
    """Compile the train/predict steps with XLA."""
    mixed_precision: bool = False
    """Compute in bfloat16 with float32 weights (Keras' `mixed_bfloat16` policy)."""
    seed: int = 0
    """Seeds inputs and initialization."""


class Subject:
    """One model under test: its ready batches, compiled train step and forward pass.

    Every subject of a run gets the same batches (the caller draws them from the same seed), so
    the rates compare the models, not the inputs; the batches cycle, so the inputs change
    between steps and no cache helps.

    Args:
        variant: the name the results report.
        model: an unbuilt, uncompiled Keras model that computes its own loss.
        batches: `(inputs, labels)` NumPy pairs, cycled through in every window.
        cfg: the benchmark's settings.
    """

    kinds: tuple[str, ...] = ("train", "full")

    def __init__(self, variant: str, model: Any, batches: Sequence[tuple[dict, np.ndarray]], cfg: TimingConfig):
        import keras
        import tensorflow as tf

        self.variant, self.model, self.cfg = variant, model, cfg
        model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=cfg.jit_compile)
        self.inputs = [{k: tf.constant(v) for k, v in x.items()} for x, _ in batches]
        self.labels = [tf.constant(y) for _, y in batches]
        self.forward = tf.function(lambda x: model(x, training=False), jit_compile=cfg.jit_compile)
        # Warm-up (untimed): builds the model and traces the steps (XLA compiles here).
        self.train_window()
        self.forward(self.inputs[0])

    def window(self, kind: str) -> tuple[float, float]:
        """One timed window of `kind`: `cfg.steps` calls of its `<kind>_step`, cycling through
        the batches. Returns wall-clock and process CPU seconds (all threads)."""
        step = getattr(self, f"{kind}_step")
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(self.cfg.steps):
            step(i)
        return time.perf_counter() - wall, time.process_time() - cpu

    def train_window(self) -> float:
        """Wall seconds of one training window (the warm-up's)."""
        return self.window("train")[0]

    def train_step(self, i: int) -> None:
        self.model.train_on_batch(self.inputs[i % len(self.inputs)], self.labels[i % len(self.labels)])

    def full_step(self, i: int) -> None:
        np.asarray(self.forward(self.inputs[i % len(self.inputs)]))


def measure(
    cfg: TimingConfig,
    make_subject: Callable[[str, TimingConfig], Subject],
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Median rates of every kind for each of `cfg.models`, their windows interleaved.

    Args:
        cfg: the settings; `cfg.models` in table order.
        make_subject: builds (and warms up) the subject of one model.
        progress: called with one line per round of windows.

    Returns:
        One dict per model: `model`, `parameters`, the median rate of each timed kind
        (`RATE_KEYS`), the median wall-clock and CPU milliseconds of a training step
        (`train_ms_per_step`, `train_cpu_ms_per_step`) and the raw `train_window_s`.
    """
    import keras

    keras.utils.set_random_seed(cfg.seed)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if cfg.mixed_precision else "float32")
    try:
        subjects = [make_subject(variant, cfg) for variant in cfg.models]
        timings = {s.variant: {kind: [] for kind in s.kinds} for s in subjects}
        cpu = {s.variant: [] for s in subjects}
        for window in range(cfg.windows):
            for s in subjects:
                for kind in s.kinds:
                    wall, seconds = s.window(kind)
                    timings[s.variant][kind].append(wall)
                    if kind == "train":
                        cpu[s.variant].append(seconds)
            if progress:
                progress(f"window {window + 1}/{cfg.windows}: " + ", ".join(
                    f"{v} {t['train'][-1]:.2f} s" for v, t in timings.items()))
    finally:
        keras.config.set_dtype_policy(previous)
    samples = cfg.steps * cfg.batch_size
    results = []
    for s in subjects:
        times = timings[s.variant]
        result = {"model": s.variant, "parameters": int(s.model.count_params())}
        result.update({RATE_KEYS[kind]: samples / statistics.median(times[kind]) for kind in s.kinds})
        result["train_ms_per_step"] = 1000 * statistics.median(times["train"]) / cfg.steps
        result["train_cpu_ms_per_step"] = 1000 * statistics.median(cpu[s.variant]) / cfg.steps
        result["train_window_s"] = [round(t, 3) for t in times["train"]]
        results.append(result)
    return results


def markdown(results: list[dict[str, Any]], headers: dict[str, str]) -> str:
    """The results as a Markdown table, training rates also relative to the first model.

    Args:
        results: `measure`'s output.
        headers: result key → column header, for the rate columns after the training ones
            (`RATE_KEYS` values other than training); keys absent from the results are skipped.
    """
    first = results[0]
    extra = [key for key in headers if key in first]
    columns = ["model", "parameters", "train samples/s", "train ms/step", "train CPU ms/step",
               f"vs {first['model']}", *(headers[key] for key in extra)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        cells = [r["model"], f"{r['parameters']:,}", f"{r['train_samples_per_s']:.1f}",
                 f"{r['train_ms_per_step']:.1f}", f"{r['train_cpu_ms_per_step']:.1f}",
                 f"{r['train_samples_per_s'] / first['train_samples_per_s']:.0%}", *(f"{r[key]:.1f}" for key in extra)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
