"""TFX Trainer entry point for the news-ranking family (referenced as ``trainer.run_fn.run_fn``).

Generic over models: the model name and its config arrive in ``custom_config`` (written by
pipeline/pipeline.py from a :class:`TrainingConfig`), the registry in trainer/models builds it,
and the paper's loss lives in the model's ``compute_loss``. After fitting, the model is scored on
whole eval impressions with the reference metrics (logged and saved beside the model, for
monitoring; the gate is TFMA's) and exported with the serving signatures.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.errors import UserError
from components.metrics import reference
from trainer import news_export, news_input, word_vectors
from trainer.metrics import ImpressionAUC
from trainer.models import build_model, make_config
from trainer.preprocessing import NewsTransformConfig

TRAINING_METRICS_FILE = "training_metrics.json"
PROGRESS = logging.getLogger("usermodel.progress")  # shown on the terminal by pipeline/local_runner.py


@dataclasses.dataclass
class TrainingConfig:
    """What the Trainer needs beyond the data (passed as TFX ``custom_config``)."""

    model: str = "nrms"
    """Registry name in trainer/models."""
    model_config: dict[str, Any] | str | None = None
    """A preset name of the model's config, or field overrides, or None for paper defaults."""
    batch_size: int = 32
    """Samples (one click + K negatives each) per step; the papers use 32."""
    negatives: int = 4
    """K negatives per click (NRMS/FUM: 4)."""
    learning_rate: float = 1e-4
    """Adam learning rate (the papers: 1e-4)."""
    epochs: int | None = None
    """Train for this many passes over the training samples instead of `train_steps` (the
    official FUM run: 3 epochs at batch 32); steps per epoch = samples / batch size."""
    seed: int = 42
    """Seeds sampling, shuffling and initialisation."""
    eval_batch_size: int = 64
    """Impressions per batch when scoring whole impressions after training."""
    transform: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The NewsTransformConfig fields the Transform ran with (lengths)."""
    word_vectors: str | None = None
    """Pretrained word vectors to initialise the word embeddings with (`glove-6b-50d`, as the
    NRMS reference setup; needs `embedding_dim` 50), or None for random initialisation."""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs: must be at least 1 (or unset to train by steps), got {self.epochs}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "TrainingConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values or {}) - names
        if unknown:
            raise ValueError(f"unknown training config fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**(values or {}))

    def total_steps(self, counts: news_input.SamplingCounts, train_steps: int | None) -> int:
        """`epochs` x steps per epoch when training by epochs, else the Trainer's `train_steps`."""
        if self.epochs is not None:
            return self.epochs * counts.steps_per_epoch(self.batch_size)
        if not train_steps:
            raise ValueError("neither training.epochs nor train_steps is set")
        return int(train_steps)


def _files(patterns: list[str], split: str | None = None) -> list[str]:
    files = []
    for pattern in patterns:
        if split:
            pattern = pattern.replace("Split-train", f"Split-{split}")
        files.extend(sorted(glob.glob(pattern if any(c in pattern for c in "*?[") else os.path.join(pattern, "*"))))
    if not files:
        raise FileNotFoundError(f"no input files match {patterns} (split {split or 'as given'})")
    return files


class _ProgressLog(keras.callbacks.Callback):
    """One line per `log_every` steps on the ``usermodel.progress`` logger (shown on the terminal)."""

    def __init__(self, model_name: str, log_every: int, total: int):
        super().__init__()
        self._name, self._every, self._total = model_name, log_every, total

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        PROGRESS.info("%s: step %d/%d  loss %.4f  sampled AUC %.4f", self._name, (epoch + 1) * self._every,
                      self._total, logs.get("loss", float("nan")), logs.get("sampled_auc", float("nan")))


def evaluate_impressions(model: keras.Model, dataset: tf.data.Dataset) -> dict[str, float]:
    """Group AUC, MRR, nDCG@5/@10 over whole impressions (reference semantics).

    Batches differ in size and candidate count; the forward pass is traced once for the
    dataset's relaxed shapes instead of once per new shape (a FUM trace takes seconds).
    """
    predict = tf.function(lambda x: model(x, training=False), input_signature=[dataset.element_spec[0]])
    labels, scores, groups = [], [], []
    for inputs, batch_labels, ids in dataset:
        batch_scores = predict(inputs).numpy()
        mask = inputs["cand_mask"].numpy() > 0
        labels.append(batch_labels.numpy()[mask])
        scores.append(batch_scores[mask])
        groups.append(np.broadcast_to(ids.numpy()[:, None], mask.shape)[mask])
    y, s, g = (np.concatenate(a) for a in (labels, scores, groups))
    return {
        "auc": reference.group_auc(y, s, g),
        "mrr": reference.mrr(y, s, g),
        "ndcg@5": reference.ndcg_at_k(y, s, g, 5),
        "ndcg@10": reference.ndcg_at_k(y, s, g, 10),
        "impressions": int(len(np.unique(g))),
    }


def compile_for_training(model: keras.Model, learning_rate: float) -> None:
    """Adam and the "sampled AUC" progress metric over each sample's 1 + K candidates.

    The metric is a *weighted* metric: Keras passes sample weights only to those, and
    `NewsRankingModel.compute_metrics` makes the candidate mask its weight, so padded slots
    (scored -1e9) do not count as well-ranked negatives.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), weighted_metrics=[ImpressionAUC(name="sampled_auc")]
    )


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports one news-ranking model (TFX FnArgs in)."""
    cfg = TrainingConfig.from_dict(fn_args.custom_config)
    transform_cfg = NewsTransformConfig.from_custom_config(cfg.transform)
    keras.utils.set_random_seed(cfg.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    table = news_input.load_news_table(_files(fn_args.train_files, "news"), tft_output, transform_cfg)
    model = build_model(
        cfg.model,
        cfg.model_config,
        **_vocab_sizes(cfg.model, cfg.model_config, tft_output),
        **_pretrained(cfg, tft_output),
    )
    fields = model.news_fields
    spec = tft_output.transformed_feature_spec()
    train_files = _files(fn_args.train_files)
    counts = news_input.sampling_counts(train_files, spec)
    PROGRESS.info("%s: %s", cfg.model, counts.describe())
    if not counts.samples:
        raise UserError(f"{cfg.model}: no training samples: no training impression has a click and a real negative")
    steps = cfg.total_steps(counts, fn_args.train_steps)
    # Progress is logged every `log_every` steps (one Keras epoch each): round up to whole logs.
    log_every = max(1, min(steps, 100))
    steps = -(-steps // log_every) * log_every
    per_epoch = counts.steps_per_epoch(cfg.batch_size)
    PROGRESS.info("%s: %d steps of %d samples, %d steps per epoch (%.2f epochs)%s", cfg.model, steps,
                  cfg.batch_size, per_epoch, steps / per_epoch,
                  f", training by epochs ({cfg.epochs})" if cfg.epochs else "")
    train = news_input.training_dataset(train_files, spec, table, fields, cfg.batch_size, cfg.negatives, cfg.seed)
    compile_for_training(model, cfg.learning_rate)
    # Create the weights and Adam's slots now: Keras (TF backend, no distribution strategy)
    # would create them while tracing the train step and then trace it a second time, which
    # costs FUM ~6 s per run.
    model.build()
    model.optimizer.build(model.trainable_variables)
    model.fit(
        train, steps_per_epoch=log_every, epochs=steps // log_every, verbose=0,
        callbacks=[_ProgressLog(cfg.model, log_every, steps)],
    )
    eval_batches = news_input.evaluation_batches(_files(fn_args.eval_files), spec, table, fields, cfg.eval_batch_size)
    metrics = evaluate_impressions(model, eval_batches)
    PROGRESS.info("%s: eval impressions (reference metrics) %s", cfg.model,
                  ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
    news_export.export(model, tft_output, table, fn_args.serving_model_dir)


def _pretrained(cfg: TrainingConfig, tft_output: tft.TFTransformOutput) -> dict[str, Any]:
    """`pretrained_embeddings` aligned with the word vocabulary, when `word_vectors` is set."""
    if not cfg.word_vectors:
        return {}
    vocabulary = [w.decode("utf-8") for w in tft_output.vocabulary_by_name("words")]
    vectors = word_vectors.aligned_matrix(vocabulary, cfg.word_vectors, seed=cfg.seed)
    PROGRESS.info("%s: %s vectors for %d of %d vocabulary words (%.1f%%)", cfg.model, cfg.word_vectors,
                  vectors.found, vectors.total, 100 * vectors.coverage)
    return {"pretrained_embeddings": vectors.matrix}


def _vocab_sizes(model: str, model_config, tft_output: tft.TFTransformOutput) -> dict[str, int]:
    """Vocabulary sizes (+2 reserved ids) for the config fields the model declares."""
    sizes = {
        "vocab_size": tft_output.vocabulary_size_by_name("words") + 2,
        "num_categories": tft_output.vocabulary_size_by_name("categories") + 2,
        "num_subcategories": tft_output.vocabulary_size_by_name("subcategories") + 2,
        "num_users": tft_output.vocabulary_size_by_name("users") + 2,
        "num_entities": tft_output.vocabulary_size_by_name("entities") + 2,
    }
    declared = {f.name for f in dataclasses.fields(make_config(model, model_config))}
    return {k: v for k, v in sizes.items() if k in declared}
