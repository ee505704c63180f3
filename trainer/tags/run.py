"""The tag-profiling family's Trainer hooks (its ``run_fn`` is ``trainer.tags.run.run_fn``).

The generic loop (`trainer/loop.py`) calls them: the item table and the training samples are
built once (`prepare`, protocol in `trainer/tags/input.py`), the model comes from the tags
registry sized by the Transform vocabularies, training fits clicks with the model's own loss
(UTPM eq. 4), evaluation is Prec@1/2/3 over the eval users, history tags and all tags ranked,
with the reference metric (the gate's is TFMA's on the exported model), and the export carries
`serving_default`, `labels` and `user_tags` (`trainer/tags/export.py`).
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
from trainer.tags import export as tags_export
from trainer.tags import input as tags_input
from trainer.tags.config import TagsTrainingConfig, TagsTransformConfig
from trainer.tags.models import MODELS
from trainer.tags.preprocessing import DEMOGRAPHICS, GENRE_VOCAB, TAG_VOCAB
from trainer.transform_ops import FIRST_ID, table_size


@dataclasses.dataclass
class TagsData(loop.TrainingData):
    """The item table, the in-memory training samples and the transformed feature spec."""

    table: tags_input.ItemTable
    train: tags_input.TrainingSamples
    feature_spec: tags_input.FeatureSpec
    transform: TagsTransformConfig
    cfg: TagsTrainingConfig
    """The run's training config (the export needs the click threshold and K)."""

    @property
    def samples(self) -> int:
        return self.train.samples

    def describe(self) -> str:
        return self.train.describe()


def field_sizes(model_fields: tuple[str, ...], tft_output: tft.TFTransformOutput) -> dict[str, int]:
    """Embedding rows per user field, from the Transform vocabularies."""
    vocab = {"tags": TAG_VOCAB, "categories": GENRE_VOCAB, **{f: f for f in DEMOGRAPHICS}}
    return {f: table_size(tft_output, vocab[f]) for f in model_fields}


def prec_at_ks(model: keras.Model, batches, ks=(1, 2, 3)) -> dict[str, float]:
    """Reference Prec@K (UTPM eq. 5) over eval users, under the gate's names: `prec@K` ranks the
    user's history tags, `prec@K_all` every tag (pipeline/families.py: `prec_at_k_metrics`).

    The reference runs per batch of users (a user's value needs only their own row) and the
    batch means are weighted by the users that have a value, so memory stays at one batch x T
    scores whatever the number of users. `users` counts the users with a clicked tag,
    `history_users` those of them that also have a history tag.
    """
    names = {"": "_all", "history_": ""}
    totals = {(prefix, k): 0.0 for prefix in names for k in ks}
    users = dict.fromkeys(names, 0)
    for inputs, labels, candidates in batches:
        scores = keras.ops.convert_to_numpy(model.tag_scores(model.user_embedding(inputs)))
        b, t = scores.shape
        clicked = {i: np.flatnonzero(labels[i]).tolist() for i in range(b)}
        history = {i: np.flatnonzero(candidates[i]).tolist() for i in range(b)}
        counts = {"": sum(1 for v in clicked.values() if v),
                  "history_": sum(1 for i, v in clicked.items() if v and history[i])}
        user_ids, tag_ids = np.repeat(np.arange(b), t), np.tile(np.arange(t), b)
        for prefix, n in counts.items():
            if not n:
                continue
            allowed = history if prefix else None
            for k in ks:
                totals[prefix, k] += n * reference.prec_at_k(user_ids, tag_ids, scores.reshape(-1), clicked, k, allowed)
            users[prefix] += n
    metrics = {f"prec@{k}{suffix}": totals[prefix, k] / users[prefix] if users[prefix] else float("nan")
               for prefix, suffix in names.items() for k in ks}
    metrics.update({f"{prefix}users": users[prefix] for prefix in names})
    return metrics


class TagsHooks(loop.FamilyHooks[TagsTrainingConfig, TagsData]):
    """Training, evaluation and export of the tag-profiling models."""

    config_class = TagsTrainingConfig
    models = MODELS

    def _fields(self, cfg: TagsTrainingConfig) -> tuple[str, ...]:
        return tuple(MODELS.make_config(cfg.model, cfg.model_config).fields)

    def prepare(self, fn_args: Any, cfg: TagsTrainingConfig, tft_output: tft.TFTransformOutput) -> TagsData:
        transform = TagsTransformConfig.from_dict(cfg.transform)
        table = tags_input.load_item_table(loop.split_files(fn_args.train_files, "items"), tft_output, transform)
        if not (table.tags >= FIRST_ID).any():
            raise UserError(f"{cfg.model}: no catalog item has a tag, so there is nothing to profile users with; "
                            "families.tags.data_dir needs a MovieLens release with a tags file "
                            "(ml-latest-small, ml-25m; ml-1m has none)")
        spec = tft_output.transformed_feature_spec()
        train = tags_input.training_samples(loop.split_files(fn_args.train_files), spec, table, cfg, transform,
                                            self._fields(cfg))
        return TagsData(table, train, spec, transform, cfg)

    def build(self, cfg: TagsTrainingConfig, data: TagsData, tft_output: tft.TFTransformOutput) -> keras.Model:
        return MODELS.build(cfg.model, cfg.model_config, field_sizes=field_sizes(self._fields(cfg), tft_output),
                            num_tags=data.table.num_tags)

    def training_dataset(self, cfg: TagsTrainingConfig, data: TagsData, model: keras.Model) -> tf.data.Dataset:
        return tags_input.training_dataset(data.train, cfg.batch_size, cfg.seed, cfg.sampled_negatives,
                                           data.table.num_tags)

    def compile(self, model: keras.Model, cfg: TagsTrainingConfig) -> None:
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                      metrics=[keras.metrics.AUC(from_logits=True, name="auc")])

    def evaluate(self, model: keras.Model, cfg: TagsTrainingConfig, data: TagsData, eval_files: list[str]) -> dict[str, float]:
        batches = tags_input.eval_users(eval_files, data.feature_spec, data.table, cfg, data.transform,
                                        tuple(model.config.fields))
        return prec_at_ks(model, batches, tuple(int(k) for k in cfg.eval_ks))

    def export(self, model: keras.Model, data: TagsData, tft_output: tft.TFTransformOutput, path: str) -> None:
        tags_export.export(model, tft_output, data.table, data.cfg, path)


HOOKS = TagsHooks()


def run_fn(fn_args: Any) -> None:
    """TFX Trainer entry point of the tag-profiling family."""
    loop.run(fn_args, HOOKS)
