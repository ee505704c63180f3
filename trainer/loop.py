"""The Trainer's generic loop, shared by every task family (DESIGN.md section 8).

A family's TFX ``run_fn`` is one line, ``loop.run(fn_args, HOOKS)``: this module reads the
config from ``custom_config``, seeds, opens the Transform output, asks the family's
:class:`FamilyHooks` for its data and model, decides the number of steps (``train_steps`` or
``epochs`` over the family's sample count), fits with one progress line per 100 steps, has the
family evaluate on its eval split (logged and saved beside the model for monitoring; the gate is
TFMA's) and export the serving signatures. The paper's loss lives in each model's
``compute_loss``, so the loop needs no per-family training code.

Pre-step artifacts (MFN's interest centers, Tiny-NewsRec's teachers) arrive as URIs in
``TrainingConfig.pre_steps``, written by the Trainer variant of `components/trainer_with_inputs.py`.
"""

from __future__ import annotations

import abc
import dataclasses
import glob
import json
import logging
import os
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import keras
import tensorflow as tf
import tensorflow_transform as tft

from components.errors import UserError
from trainer import word_vectors
from trainer.config_base import ModelRegistry, TrainingConfig, steps_per_epoch
from trainer.transform_ops import table_size

TRAINING_METRICS_FILE = "training_metrics.json"
PROGRESS = logging.getLogger("usermodel.progress")  # shown on the terminal by pipeline/local_runner.py


_Config = TypeVar("_Config", bound=TrainingConfig)
_Data = TypeVar("_Data")


class TrainingData(abc.ABC):
    """What a family prepared for training: at least how many samples one epoch has."""

    @property
    @abc.abstractmethod
    def samples(self) -> int:
        """Training samples in one pass over the train split."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for the run log: what was read, used and dropped."""


class FamilyHooks(abc.ABC, Generic[_Config, _Data]):
    """The run-time part of a task family: what `run` calls, in order."""

    config_class: type[TrainingConfig] = TrainingConfig
    models: ModelRegistry

    @abc.abstractmethod
    def prepare(self, fn_args: Any, cfg: _Config, tft_output: tft.TFTransformOutput) -> _Data:
        """Reads what training and export need (tables, counts) from the Transform output."""

    @abc.abstractmethod
    def build(self, cfg: _Config, data: _Data, tft_output: tft.TFTransformOutput) -> keras.Model:
        """The family's model `cfg.model`, sized by the Transform vocabularies."""

    @abc.abstractmethod
    def training_dataset(self, cfg: _Config, data: _Data, model: keras.Model) -> tf.data.Dataset:
        """Endless shuffled batches of (inputs, targets) for `fit`."""

    @abc.abstractmethod
    def compile(self, model: keras.Model, cfg: _Config) -> None:
        """Optimizer and progress metrics (the loss is the model's `compute_loss`)."""

    @abc.abstractmethod
    def evaluate(self, model: keras.Model, cfg: _Config, data: _Data, eval_files: list[str]) -> dict[str, float]:
        """The family's reference metrics on the eval split."""

    @abc.abstractmethod
    def export(self, model: keras.Model, data: _Data, tft_output: tft.TFTransformOutput, path: str) -> None:
        """Writes the SavedModel with the family's serving signatures."""


def split_files(patterns: list[str], split: str | None = None) -> list[str]:
    """Files of the TFX Trainer's file patterns, or of another split of the same artifact."""
    files = []
    for pattern in patterns:
        if split:
            pattern = pattern.replace("Split-train", f"Split-{split}")
        files.extend(sorted(glob.glob(pattern if any(c in pattern for c in "*?[") else os.path.join(pattern, "*"))))
    if not files:
        raise FileNotFoundError(f"no input files match {patterns} (split {split or 'as given'})")
    return files


def parse_transformed(files: list[str], feature_spec: dict[str, Any], keys: Iterable[str],
                      batch_size: int = 1024) -> tf.data.Dataset:
    """Batches of the transformed features `keys` of gzipped TFRecord `files` (variable-length
    ones as SparseTensors): every family's reader of Transform output."""
    spec = {k: v for k, v in feature_spec.items() if k in set(keys)}
    # No autotuning model thread (the option reaches every pipeline built on this one). Freeing
    # an iterator waits for that thread, and in about half of our pipeline runs it sat out a
    # timed wait: `fit` returned 17-25 s after its last step (seen with gdb: the main thread in
    # ~RootDataset::Iterator, the model thread in Model::OptimizeLoop). AUTOTUNE parallel maps
    # then use one call per core, and prefetch keeps its own buffer autotuning.
    options = tf.data.Options()
    options.autotune.enabled = False
    return (
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .batch(batch_size)
        .map(lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE)
        .with_options(options)
    )


class _ProgressLog(keras.callbacks.Callback):
    """One line per `log_every` steps on the ``usermodel.progress`` logger (shown on the terminal)."""

    def __init__(self, model_name: str, log_every: int, total: int):
        super().__init__()
        self._name, self._every, self._total = model_name, log_every, total

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in (logs or {}).items())
        PROGRESS.info("%s: step %d/%d  %s", self._name, (epoch + 1) * self._every, self._total, values)


def progress_plan(steps: int, every: int = 100) -> tuple[int, int]:
    """(steps to train, steps per progress line): a line about every `every` steps.

    Each progress line is one Keras epoch of `fit`, and epochs have one length, so the steps
    are split into ceil(steps / every) equal logs, rounded up by less than one step per log
    (239 steps: 3 logs of 80, 240 steps), never a whole extra log.
    """
    logs = max(1, -(-steps // every))
    log_every = -(-steps // logs)
    return logs * log_every, log_every


def run(fn_args: Any, hooks: FamilyHooks) -> None:
    """Trains, evaluates and exports one model of `hooks`' family (TFX FnArgs in)."""
    cfg = hooks.config_class.from_dict(fn_args.custom_config or {})
    keras.utils.set_random_seed(cfg.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    data = hooks.prepare(fn_args, cfg, tft_output)
    PROGRESS.info("%s: %s", cfg.model, data.describe())
    if not data.samples:
        raise UserError(f"{cfg.model}: no training samples in the train split ({data.describe()})")
    model = hooks.build(cfg, data, tft_output)
    steps = cfg.total_steps(data.samples, fn_args.train_steps)
    steps, log_every = progress_plan(steps)
    per_epoch = steps_per_epoch(data.samples, cfg.batch_size)
    PROGRESS.info("%s: %d steps of %d samples, %d steps per epoch (%.2f epochs)%s", cfg.model, steps,
                  cfg.batch_size, per_epoch, steps / per_epoch,
                  f", training by epochs ({cfg.epochs})" if cfg.epochs else "")
    train = hooks.training_dataset(cfg, data, model)
    hooks.compile(model, cfg)
    # Create the weights and Adam's slots now: Keras (TF backend, no distribution strategy)
    # would create them while tracing the train step and then trace it a second time, which
    # costs FUM ~6 s per run.
    model.build()
    model.optimizer.build(model.trainable_variables)
    model.fit(
        train, steps_per_epoch=log_every, epochs=steps // log_every, verbose=0,
        callbacks=[_ProgressLog(cfg.model, log_every, steps)],
    )
    metrics = hooks.evaluate(model, cfg, data, split_files(fn_args.eval_files))
    PROGRESS.info("%s: eval (reference metrics) %s", cfg.model, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
    hooks.export(model, data, tft_output, fn_args.serving_model_dir)


def vocab_sizes(
    models: ModelRegistry, cfg: TrainingConfig, tft_output: tft.TFTransformOutput, vocabularies: dict[str, str]
) -> dict[str, int]:
    """Embedding-table sizes for the config fields the model declares (field → vocabulary name)."""
    declared = {f.name for f in dataclasses.fields(models.make_config(cfg.model, cfg.model_config))}
    return {field: table_size(tft_output, vocab) for field, vocab in vocabularies.items() if field in declared}


def pretrained_embeddings(cfg: TrainingConfig, tft_output: tft.TFTransformOutput, vocabulary: str = "words") -> dict[str, Any]:
    """`pretrained_embeddings` aligned with a word vocabulary, when `word_vectors` is set."""
    if not cfg.word_vectors:
        return {}
    words = [w.decode("utf-8") for w in tft_output.vocabulary_by_name(vocabulary)]
    vectors = word_vectors.aligned_matrix(words, cfg.word_vectors, seed=cfg.seed)
    PROGRESS.info("%s: %s vectors for %d of %d vocabulary words (%.1f%%)", cfg.model, cfg.word_vectors,
                  vectors.found, vectors.total, 100 * vectors.coverage)
    return {"pretrained_embeddings": vectors.matrix}
