"""The news-ranking family's Trainer hooks (its ``run_fn`` is ``trainer.news.run.run_fn``).

The generic loop (`trainer/loop.py`) calls them: the news table and the sampling counts are
read once (`prepare`), the model comes from the news registry sized by the Transform
vocabularies, training samples are one click + K negatives of an impression
(`trainer/news/input.py`), evaluation scores whole eval impressions with the reference metrics,
and the export carries the news signatures (`trainer/news/export.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.metrics import reference
from trainer import loop
from trainer.metrics import ImpressionAUC
from trainer.news import export as news_export
from trainer.news import input as news_input
from trainer.news.config import NewsTrainingConfig
from trainer.news.models import MODELS
from trainer.news.preprocessing import (
    CATEGORY_VOCAB,
    ENTITY_VOCAB,
    SUBCATEGORY_VOCAB,
    USER_VOCAB,
    WORD_VOCAB,
    NewsTransformConfig,
)

# Model config field → the Transform vocabulary that sizes it.
VOCABULARIES = {
    "vocab_size": WORD_VOCAB,
    "num_categories": CATEGORY_VOCAB,
    "num_subcategories": SUBCATEGORY_VOCAB,
    "num_users": USER_VOCAB,
    "num_entities": ENTITY_VOCAB,
}


@dataclasses.dataclass
class NewsData(loop.TrainingData):
    """The news table, the sampling counts and the transformed training files."""

    table: news_input.NewsTable
    counts: news_input.SamplingCounts
    train_files: list[str]
    feature_spec: news_input.FeatureSpec

    @property
    def samples(self) -> int:
        return self.counts.samples

    def describe(self) -> str:
        return self.counts.describe()


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


class NewsHooks(loop.FamilyHooks[NewsTrainingConfig, NewsData]):
    """Training, evaluation and export of the news-ranking models."""

    config_class = NewsTrainingConfig
    models = MODELS

    def prepare(self, fn_args: Any, cfg: NewsTrainingConfig, tft_output: tft.TFTransformOutput) -> NewsData:
        transform_cfg = NewsTransformConfig.from_dict(cfg.transform)
        table = news_input.load_news_table(loop.split_files(fn_args.train_files, "news"), tft_output, transform_cfg)
        spec = tft_output.transformed_feature_spec()
        train_files = loop.split_files(fn_args.train_files)
        return NewsData(table, news_input.sampling_counts(train_files, spec), train_files, spec)

    def build(self, cfg: NewsTrainingConfig, data: NewsData, tft_output: tft.TFTransformOutput) -> keras.Model:
        return MODELS.build(
            cfg.model, cfg.model_config,
            **loop.vocab_sizes(MODELS, cfg, tft_output, VOCABULARIES),
            **loop.pretrained_embeddings(cfg, tft_output, WORD_VOCAB),
        )

    def training_dataset(self, cfg: NewsTrainingConfig, data: NewsData, model: keras.Model) -> tf.data.Dataset:
        return news_input.training_dataset(
            data.train_files, data.feature_spec, data.table, model.news_fields, cfg.batch_size, cfg.negatives, cfg.seed
        )

    def compile(self, model: keras.Model, cfg: NewsTrainingConfig) -> None:
        compile_for_training(model, cfg.learning_rate)

    def evaluate(self, model: keras.Model, cfg: NewsTrainingConfig, data: NewsData, eval_files: list[str]) -> dict[str, float]:
        batches = news_input.evaluation_batches(
            eval_files, data.feature_spec, data.table, model.news_fields, cfg.eval_batch_size
        )
        return evaluate_impressions(model, batches)

    def export(self, model: keras.Model, data: NewsData, tft_output: tft.TFTransformOutput, path: str) -> None:
        news_export.export(model, tft_output, data.table, path)


HOOKS = NewsHooks()


def run_fn(fn_args: Any) -> None:
    """TFX Trainer entry point of the news-ranking family."""
    loop.run(fn_args, HOOKS)
