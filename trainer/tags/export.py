"""SavedModel export of a tag model with the tag signatures of `trainer/signatures.py`.

The Keras model only sees integer field ids; this module wraps it with the Transform graph,
the item table (item → its N tags and its genres) and the vocabularies, so that serving and
TFMA take raw inputs:

* ``serving_default(examples)`` — serialized raw eval examples (one user each, what TFMA
  feeds) → ``tag_scores`` ``[B, T]``: `u · t` for every tag id (T = tag table size; padding and
  unknown columns score -1e9). The fields come from ``history_item_ids`` / ``history_ratings``.
* ``labels(examples)`` — the same examples → ``clicked_tags`` ``[B, T]``, the multi-hot of the
  tags of the eval events rated ≥ the positive threshold (UTPM eq. 5's label), computed from
  the catalog inside the model, and ``candidate_tags`` ``[B, T]``, the multi-hot of the user's
  ``tags`` field (the history tags that UTPM's candidate selection ranks): TFMA runs it as a
  preprocessing function (`Family.label_signature`) and PrecisionAtK reads both.
* ``user_tags(user_id, history, features)`` — clicked item ids (``""`` = padding) and user
  fields ``name=value`` (ml-1m: ``gender=F``, ``age=25``, ``occupation=4``) → ``user_embedding``
  ``[B, U]``, the top K tags best first as raw strings (``tag_ids``) with their ``tag_scores``,
  and the top K among the user's own history tags (``history_tag_ids``, ``history_tag_scores``:
  the `tags` field, the candidates the gate's prec@K ranks; ``""``/0 past the user's own tags).
  Every given history item counts as a click. Unknown items have no tags and add nothing;
  unknown field values get the unknown id; unknown field names are ignored.

Raw examples go through the Transform graph and the same field code as training
(`trainer/tags/fields.py`); `user_tags` maps raw strings with lookup tables built from the
Transform's own vocabulary files (entry i → id i + 2, absent → 1, as `transform_ops.ids`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import signatures
from trainer.tags import fields as tag_fields
from trainer.tags.config import TagsTrainingConfig, TagsTransformConfig
from trainer.tags.input import ItemTable
from trainer.tags.preprocessing import DEMOGRAPHICS, ITEM_VOCAB, TAG_VOCAB
from trainer.transform_ops import FIRST_ID, PAD_ID, UNKNOWN_ID

LABELS = signatures.Signature(
    "labels", (signatures.TensorSpec("examples", "string", (None,)),),
    (signatures.TensorSpec("clicked_tags", "float32", (None, None)),
     signatures.TensorSpec("candidate_tags", "float32", (None, None))),
)
"""TFMA's label signature: serialized raw eval examples → the clicked-tag multi-hot and the
history candidates' multi-hot."""


def _lookup(keys: list[bytes]) -> tf.lookup.StaticHashTable:
    """Raw string → id with the reserved ids (vocabulary entry i → i + 2, absent → 1)."""
    values = tf.range(FIRST_ID, FIRST_ID + len(keys), dtype=tf.int64)
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), values)
    return tf.lookup.StaticHashTable(init, default_value=UNKNOWN_ID)


class TagTables(tf.Module):
    """The item table and the vocabularies that serving needs, kept in the SavedModel."""

    def __init__(self, table: ItemTable, tft_output: tft.TFTransformOutput, demographics: tuple[str, ...]):
        super().__init__()
        self.item_tags = tf.Variable(table.tags, trainable=False, name="item_tags")
        self.item_genres = tf.Variable(table.genres, trainable=False, name="item_genres")
        self.num_tags, self.num_genres = table.num_tags, table.num_genres
        names = [b"", b"<unknown>", *tft_output.vocabulary_by_name(TAG_VOCAB)]
        self.tag_names = tf.Variable(np.array(names[: table.num_tags], dtype=object), trainable=False, name="tag_names")
        self.items = _lookup(tft_output.vocabulary_by_name(ITEM_VOCAB))
        self.demographics = {f: _lookup(tft_output.vocabulary_by_name(f)) for f in demographics}

    def ids(self, table: tf.lookup.StaticHashTable, raw: tf.Tensor) -> tf.Tensor:
        return tf.where(raw == "", tf.constant(PAD_ID, tf.int64), table.lookup(raw))


def feature_values(features: tf.Tensor, name: str) -> tf.Tensor:
    """The value of `name=value` in each row of `features` [B, F] ("" if absent; values given
    twice are joined, which makes them unknown)."""
    has = tf.strings.regex_full_match(features, "[^=]*=.*")
    names = tf.strings.regex_replace(features, "=.*$", "")
    values = tf.strings.regex_replace(features, "^[^=]*=", "")
    return tf.strings.reduce_join(tf.where(has & (names == name), values, ""), axis=1)


class TagsServing:
    """Builds the serving functions from a trained model, the Transform output and the item table."""

    def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput, table: ItemTable,
                 cfg: TagsTrainingConfig):
        self.model = model
        self.cfg = cfg
        self.length = TagsTransformConfig.from_dict(cfg.transform).field_length
        self.fields = tuple(model.config.fields)
        self.tft_layer = tft_output.transform_features_layer()
        self.raw_spec = tft_output.raw_feature_spec()
        self.tables = TagTables(table, tft_output, tuple(f for f in self.fields if f in DEMOGRAPHICS))
        self.top_k = min(cfg.top_k, table.num_tags - FIRST_ID)

    def _fields(self, items: tf.Tensor, positive: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self.tables
        return tag_fields.user_fields(items, positive, t.item_tags, t.item_genres, t.num_tags, t.num_genres, self.length)

    def _inputs(self, built: dict[str, tf.Tensor], demographics: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The model's `user_<f>` inputs from built fields (`_fields`) and demographic ids."""
        inputs = {f"user_{f}": built[f] for f in self.fields if f in built}
        inputs.update({f"user_{f}": tf.cast(tf.reshape(v, [-1, 1]), tf.int32) for f, v in demographics.items()})
        return inputs

    def _transformed(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.tft_layer(tf.io.parse_example(examples, self.raw_spec))

    def _history(self, t: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """(history items [B, L], positively rated [B, L]) of transformed eval examples."""
        history = tag_fields.dense(t["history_item_index"])
        return history, tag_fields.dense(t["history_ratings"]) >= self.cfg.positive_rating

    def serving_default(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self._transformed(examples)
        inputs = self._inputs(self._fields(*self._history(t)), {f: t[f] for f in self.fields if f in DEMOGRAPHICS})
        return {"tag_scores": self.model.tag_scores(self.model.user_embedding(inputs))}

    def labels(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self._transformed(examples)
        clicked = tag_fields.dense(t["ratings"]) >= self.cfg.positive_rating
        items = tag_fields.dense(t["item_index"])
        num_tags = self.tables.num_tags
        return {
            "clicked_tags": tag_fields.clicked_tags(items, clicked, self.tables.item_tags, num_tags),
            # The tags field whether or not the model reads it: the candidates are the data's.
            "candidate_tags": tag_fields.candidate_tags(self._fields(*self._history(t))["tags"], num_tags),
        }

    def user_tags(self, user_id: tf.Tensor, history: tf.Tensor, features: tf.Tensor) -> dict[str, tf.Tensor]:
        del user_id  # the tag models read fields, not the id; kept in the contract for logging
        items = self.tables.ids(self.tables.items, history)
        demographics = {f: self.tables.ids(table, feature_values(features, f))
                        for f, table in self.tables.demographics.items()}
        built = self._fields(items, items != PAD_ID)
        embedding = self.model.user_embedding(self._inputs(built, demographics))
        all_scores = self.model.tag_scores(embedding)
        ids, scores = self.model.top_of(all_scores, self.top_k)
        history_ids, history_scores = self._top_history_tags(built["tags"], all_scores)
        return {
            "user_embedding": embedding,
            "tag_ids": tf.gather(self.tables.tag_names, ids),
            "tag_scores": scores,
            "history_tag_ids": history_ids,
            "history_tag_scores": history_scores,
        }

    def _top_history_tags(self, history_tags: tf.Tensor, scores: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The best `top_k` (at most H) of the user's history tags ``[B, H]`` (0 = padding) by
        their ``[B, T]`` scores: names ``[B, k]`` (``""`` past the user's own tags) and scores (0 there)."""
        real = history_tags > PAD_ID
        own = tf.where(real, tf.gather(scores, history_tags, batch_dims=1), -np.inf)
        top, slots = tf.math.top_k(own, k=min(self.top_k, int(history_tags.shape[1])))
        ids = tf.gather(history_tags, slots, batch_dims=1)
        present = tf.math.is_finite(top)
        return (tf.where(present, tf.gather(self.tables.tag_names, ids), ""),
                tf.where(present, top, tf.zeros_like(top)))


def export(model: keras.Model, tft_output: tft.TFTransformOutput, table: ItemTable, cfg: TagsTrainingConfig,
           path: str) -> None:
    """Writes the SavedModel with `serving_default`, `labels` and `user_tags` to `path`."""
    if not model.built:  # every weight shape follows from the config (TagModel.build)
        model.build()
    serving = TagsServing(model, tft_output, table, cfg)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(serving.tft_layer)
    archive.track(serving.tables)
    for signature in (signatures.SERVING_DEFAULT, LABELS, *signatures.BY_FAMILY["tags"]):
        archive.add_endpoint(signature.name, getattr(serving, signature.name), signature.tf_specs())
    archive.write_out(path, verbose=False)
