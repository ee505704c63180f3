"""The CTR family's Trainer hooks (its ``run_fn`` is ``trainer.ctr.run.run_fn``).

The generic loop (`trainer/loop.py`) calls them: the item table and the sample counts are read
once (`prepare`), the model comes from the CTR registry sized by the Transform vocabularies
(no title words, as on Taobao: ``vocab_size`` 0), training samples are (history, target,
click) rows of each user's train sequence (`trainer/ctr/input.py`), evaluation is the global
ROC AUC over every eval user's later events scored against their train history (the reference
of TFMA's gate), and the export carries ``pctr`` (`trainer/ctr/export.py`). What a history is
(`CTRTransformConfig.history`) comes from the Transform section the Trainer's custom config
carries (`TrainingConfig.transform`), the same section the Transform ran with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components.errors import UserError
from components.metrics import reference
from trainer import loop
from trainer.ctr import centers as ctr_centers
from trainer.ctr import export as ctr_export
from trainer.ctr import input as ctr_input
from trainer.ctr.config import CTRTrainingConfig, CTRTransformConfig
from trainer.ctr.models import MFN, MODELS
from trainer.ctr.models.mfn import FINE
from trainer.ctr.preprocessing import CATEGORY_VOCAB, ITEM_VOCAB, WORD_VOCAB, has_words
from trainer.transform_ops import table_size


@dataclasses.dataclass
class CTRData(loop.TrainingData):
    """The item table, the sample counts, the transformed training files and the Transform sizes."""

    table: ctr_input.ItemTable
    counts: ctr_input.SampleCounts
    train_files: list[str]
    feature_spec: ctr_input.FeatureSpec
    transform: CTRTransformConfig

    @property
    def samples(self) -> int:
        return self.counts.samples

    def describe(self) -> str:
        return self.counts.describe()


def model_sizes(tft_output: tft.TFTransformOutput) -> dict[str, int]:
    """Table sizes of the CTR models; ``vocab_size`` 0 when the catalog has no title words
    (`preprocessing.has_words`: tf.Transform's dummy entry of an empty vocabulary is no word)."""
    return {
        "num_items": table_size(tft_output, ITEM_VOCAB),
        "num_categories": table_size(tft_output, CATEGORY_VOCAB),
        "vocab_size": table_size(tft_output, WORD_VOCAB) if has_words(tft_output) else 0,
    }


def evaluate_users(model: keras.Model, dataset: tf.data.Dataset) -> dict[str, float]:
    """Global ROC AUC over every (eval user, eval event) pair (`reference.global_auc`)."""
    predict = tf.function(lambda x: model(x, training=False), input_signature=[dataset.element_spec[0]])
    labels, scores = [], []
    for inputs, clicks in dataset:
        labels.append(clicks.numpy())
        scores.append(predict(inputs).numpy())
    y, s = np.concatenate(labels), np.concatenate(scores)
    return {"auc": reference.global_auc(y, s), "events": int(len(y)), "clicks": int(y.sum())}


def build_model(cfg: CTRTrainingConfig, sizes: dict[str, int]) -> keras.Model:
    """The CTR model `cfg.model` sized by the Transform; MFN with pretraining also gets the
    fixed tables and interest centers of the centers pre-step (`cfg.pre_steps["centers"]`,
    `trainer/ctr/centers.py`), whose widths set `fixed_dim` and `word_dim`.

    Raises:
        UserError: MFN with pretraining but no centers artifact, or centers for another K or
            for a fine level of other data (words vs item ids).
    """
    _, model_class = MODELS[cfg.model]
    config = MODELS.make_config(cfg.model, cfg.model_config, **sizes)
    if not (issubclass(model_class, MFN) and config.use_pretrain):
        return model_class(config)
    uri = cfg.pre_steps.get("centers")
    if not uri:
        raise UserError(f"{cfg.model}: MFN with pretrained interests needs the centers pre-step's artifact "
                        "(TrainingConfig.pre_steps['centers']); the pipeline adds it for the models of "
                        "Family.pre_steps, or use mfn_no_pretrain")
    fixed, centers = ctr_centers.load(uri)
    k = centers["category"].shape[0]
    if k != config.num_interests:
        raise UserError(f"{cfg.model}: the centers artifact has K={k} interest centers, the model "
                        f"num_interests={config.num_interests}")
    widths = {"fixed_dim": int(fixed["item"].shape[1])}
    if "words" in fixed:
        widths["word_dim"] = int(fixed["words"].shape[1])
    # The fine level reads words, or the item id alone on data without words (fixed: `item`).
    fine_width = widths.get("word_dim") if config.fine_field == "words" else widths["fixed_dim"]
    if FINE not in centers:
        loop.PROGRESS.warning("%s: the centers artifact has no fine level; the fine level (%s) keeps random "
                              "centers%s", cfg.model, config.fine_field,
                              " and fixed word vectors" if config.fine_field == "words" else "")
    elif centers[FINE].shape[1] != fine_width:
        raise UserError(f"{cfg.model}: the centers artifact {uri} has fine centers of width {centers[FINE].shape[1]}, "
                        f"the model's fine level reads {config.fine_field} ({fine_width}-d fixed vectors): an "
                        "artifact of other data")
    config = dataclasses.replace(config, **widths)
    loop.PROGRESS.info("%s: fixed tables %s and centers %s from %s", cfg.model,
                       {k: v.shape for k, v in fixed.items()}, {k: v.shape for k, v in centers.items()}, uri)
    return model_class(config, fixed_embeddings=fixed, centers=centers)


class CTRHooks(loop.FamilyHooks[CTRTrainingConfig, CTRData]):
    """Training, evaluation and export of the CTR models."""

    config_class = CTRTrainingConfig
    models = MODELS

    def prepare(self, fn_args: Any, cfg: CTRTrainingConfig, tft_output: tft.TFTransformOutput) -> CTRData:
        transform_cfg = CTRTransformConfig.from_dict(cfg.transform)
        table = ctr_input.load_item_table(loop.split_files(fn_args.train_files, "items"), tft_output, transform_cfg)
        spec = tft_output.transformed_feature_spec()
        train_files = loop.split_files(fn_args.train_files)
        counts = ctr_input.sample_counts(train_files, spec, transform_cfg.history)
        return CTRData(table, counts, train_files, spec, transform_cfg)

    def build(self, cfg: CTRTrainingConfig, data: CTRData, tft_output: tft.TFTransformOutput) -> keras.Model:
        return build_model(cfg, model_sizes(tft_output))

    def training_dataset(self, cfg: CTRTrainingConfig, data: CTRData, model: keras.Model) -> tf.data.Dataset:
        return ctr_input.training_dataset(
            data.train_files, data.feature_spec, data.table, model.item_fields,
            data.transform.history_length, data.transform.history, cfg.batch_size, cfg.seed,
        )

    def compile(self, model: keras.Model, cfg: CTRTrainingConfig) -> None:
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                      metrics=[keras.metrics.AUC(from_logits=True, name="auc")])

    def evaluate(self, model: keras.Model, cfg: CTRTrainingConfig, data: CTRData, eval_files: list[str]) -> dict[str, float]:
        batches = ctr_input.evaluation_batches(eval_files, data.feature_spec, data.table, model.item_fields,
                                               cfg.eval_batch_size)
        return evaluate_users(model, batches)

    def export(self, model: keras.Model, data: CTRData, tft_output: tft.TFTransformOutput, path: str) -> None:
        ctr_export.export(model, ctr_export.item_vocabulary_file(tft_output), data.table, data.transform.history_length, path,
                          history=data.transform.history)


HOOKS = CTRHooks()


def run_fn(fn_args: Any) -> None:
    """TFX Trainer entry point of the CTR family."""
    loop.run(fn_args, HOOKS)
