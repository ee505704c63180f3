"""SavedModel export of a CTR model with the CTR signatures of `trainer/signatures.py`.

The Keras model sees integer item ids and the item table's content; this module wraps it with
the item vocabulary (the Transform's ``items`` vocabulary file, so training and serving map an
id the same way) and the item table, so that serving takes raw ids:

* ``serving_default(examples)`` — serialized raw *eval* examples, one per user (what TFMA
  feeds): ``pctr`` ``[B, E_max]``, the click probability of each of the user's eval items
  (``item_ids``) against the user's last H train behaviours: ``history_item_ids`` filtered by
  ``history_ratings`` with the Transform's definition (`preprocessing.behaviours`; with
  ``history: clicked`` the clicked ones), so TFMA and the Trainer's own evaluation score the
  same histories; padded slots 0;
* ``labels(examples)`` — the same examples → ``clicks`` ``[B, E_max]``: 1.0 for a rating ≥ 4,
  0.0 below, −1.0 in padded slots (TFMA's labels: `Family.label_signature`);
* ``pctr(user_id, history, target)`` — item ids as strings, history oldest first with ``""``
  as padding → ``pctr`` ``[B]``. The last H non-empty history ids are used, as in training.
  The history is taken as given (it has no ratings to filter by): the caller must pass the
  user's behaviours as the model was trained on them, i.e. *clicked* item ids for the default
  ``history: clicked``. ``user_id`` is part of the family's contract but unused by the current
  models (they read behaviours only).

MFN (and its ablations) also exports its cacheable user side (`signatures.CACHED_INTERESTS`):

* ``encode_user(user_id, history)`` → ``interests`` ``[B, D]``, `MFN.encode_user` over the same
  last H history ids as ``pctr`` (taken as given, so the caller passes the user's clicked items,
  as for ``pctr``);
* ``pctr_from_interests(interests, candidates)`` → ``pctr`` ``[B, N]``: N candidate ids per row
  scored against that row's cached interests (`MFN.score`); ``""`` candidates score 0.

Ids unknown to the vocabulary (or not decimal) get the unknown id 1 and are scored; an empty
target scores 0.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_transform as tft

from trainer import signatures
from trainer.ctr import input as ctr_input
from trainer.ctr.config import CLICK_RATING, CTRTransformConfig
from trainer.ctr.models.mfn import MFN
from trainer.ctr.preprocessing import ITEM_VOCAB, behaviours
from trainer.transform_ops import FIRST_ID, PAD_ID, UNKNOWN_ID

SCORE_ROWS = 1024
"""(history, target) rows per model call in ``serving_default``."""

LABELS = signatures.Signature(
    "labels", (signatures.SERVING_DEFAULT.inputs[0],), (signatures.TensorSpec("clicks", "float32", (None, None)),)
)
"""TFMA's label signature (serialized raw eval examples → ``clicks``); not a serving API."""

RAW_SPEC = {
    "item_ids": tf.io.VarLenFeature(tf.int64),
    "ratings": tf.io.VarLenFeature(tf.float32),
    "history_item_ids": tf.io.VarLenFeature(tf.int64),
    "history_ratings": tf.io.VarLenFeature(tf.float32),
}


class CTRScorer(tf.Module):
    """Raw string item ids → click probabilities; holds the vocabulary table and the item table.

    The item table lives in non-trainable variables (kept out of the graph proto); the
    vocabulary is a text-file table, saved as an asset of the SavedModel.
    """

    def __init__(self, model: keras.Model, vocabulary_file: str, table: ctr_input.ItemTable, history_length: int):
        super().__init__()
        self.model = model
        self.history_length = history_length
        self.fields = tuple(model.item_fields)
        self.vocabulary = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=-1,
        )
        self.table = {k: tf.Variable(v, trainable=False, name=k) for k, v in table.fields.items()}

    def ids(self, keys: tf.Tensor) -> tf.Tensor:
        """String ids → item ids: known ≥ 2, unknown 1, "" → 0 (padding)."""
        index = self.vocabulary.lookup(keys)
        item = tf.where(index < 0, tf.constant(UNKNOWN_ID, tf.int64), index + FIRST_ID)
        return tf.where(keys == "", tf.constant(PAD_ID, tf.int64), item)

    def history(self, keys: tf.RaggedTensor) -> tf.Tensor:
        """Ragged string histories (oldest first) → ids ``[B, H]``: the last H non-empty ones."""
        keys = tf.ragged.boolean_mask(keys, keys != "")[:, -self.history_length:]
        return keys.with_flat_values(self.ids(keys.flat_values)).to_tensor(
            default_value=PAD_ID, shape=[None, self.history_length]
        )

    def pctr(self, history: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """Click probabilities ``[N]`` of target ids ``[N]`` after histories ``[N, H]``; 0 for
        a padding target."""
        content = [f for f in self.fields if f != "item"]
        inputs = {"hist_item": tf.cast(history, tf.int32), "target_item": tf.cast(target, tf.int32),
                  "hist_mask": tf.cast(history != PAD_ID, tf.float32)}
        for f in content:
            inputs[f"hist_{f}"] = tf.gather(self.table[f], history)
            inputs[f"target_{f}"] = tf.gather(self.table[f], target)
        probability = tf.sigmoid(tf.cast(self.model(inputs, training=False), tf.float32))
        return tf.where(target == PAD_ID, tf.zeros_like(probability), probability)

    def pctr_in_chunks(self, history: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """`pctr` over rows ``[N, H]`` / ``[N]``, `SCORE_ROWS` rows per model call, so memory
        stays bounded however many rows a request (or TFMA's batch) brings."""
        n = tf.shape(target)[0]
        chunks = (n + SCORE_ROWS - 1) // SCORE_ROWS
        out = tf.TensorArray(tf.float32, size=chunks, infer_shape=False, element_shape=tf.TensorShape([None]))

        def body(i, out):
            start = i * SCORE_ROWS
            end = tf.minimum(start + SCORE_ROWS, n)
            return i + 1, out.write(i, self.pctr(history[start:end], target[start:end]))

        _, out = tf.while_loop(lambda i, _: i < chunks, body, (tf.constant(0), out))
        return tf.reshape(out.concat(), [n])


def item_vocabulary_file(tft_output: tft.TFTransformOutput) -> str:
    return tft_output.vocabulary_file_by_name(ITEM_VOCAB)


def _as_strings(sparse: tf.SparseTensor) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_sparse(tf.SparseTensor(sparse.indices, tf.strings.as_string(sparse.values), sparse.dense_shape))


class CTRServing:
    """The serving functions over one scorer; `history` is `CTRTransformConfig.history`, which
    raw eval examples' train events are behaviours."""

    def __init__(self, scorer: CTRScorer, history: str):
        self.scorer = scorer
        self.history = history

    def serving_default(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, RAW_SPEC)
        past = behaviours(_as_strings(raw["history_item_ids"]), tf.RaggedTensor.from_sparse(raw["history_ratings"]),
                          self.history)
        history = self.scorer.history(past)  # [B, H]
        targets = _as_strings(raw["item_ids"])
        targets = targets.with_flat_values(self.scorer.ids(targets.flat_values))
        # Only real (user, item) rows are scored, SCORE_ROWS at a time: TFMA batches up to
        # 1000 users, and a padded [B * E_max, H, ...] batch of ml-1m users took 18 GB.
        rows = tf.gather(history, targets.value_rowids())
        scores = self.scorer.pctr_in_chunks(rows, targets.flat_values)
        return {"pctr": targets.with_flat_values(scores).to_tensor(default_value=0.0)}

    def labels(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, RAW_SPEC)
        ratings = tf.RaggedTensor.from_sparse(raw["ratings"])
        clicks = tf.cast(ratings >= CLICK_RATING, tf.float32)
        return {"clicks": clicks.to_tensor(default_value=-1.0)}

    def pctr(self, user_id: tf.Tensor, history: tf.Tensor, target: tf.Tensor) -> dict[str, tf.Tensor]:
        del user_id  # in the contract; the current models read behaviours only
        ids = self.scorer.history(tf.RaggedTensor.from_tensor(history))
        return {"pctr": self.scorer.pctr(ids, self.scorer.ids(target))}


def export(model: keras.Model, vocabulary_file: str, table: ctr_input.ItemTable, history_length: int, path: str,
           history: str = CTRTransformConfig.history) -> None:
    """Writes the SavedModel with ``serving_default``, ``labels`` and ``pctr`` to `path`.

    `history`: the Transform's `CTRTransformConfig.history` (which raw train events
    ``serving_default`` keeps as behaviours).

    `vocabulary_file`: the Transform's item vocabulary (`item_vocabulary_file`), one decimal id
    per line, line i = item id i + 2.
    """
    scorer = CTRScorer(model, vocabulary_file, table, history_length)
    serving = CTRServing(scorer, history)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(scorer)
    for signature in (signatures.SERVING_DEFAULT, LABELS, *signatures.BY_FAMILY["ctr"]):
        archive.add_endpoint(signature.name, getattr(serving, signature.name), signature.tf_specs())
    if isinstance(model, MFN):
        add_interest_endpoints(archive, scorer)
    archive.write_out(path, verbose=False)


class InterestServing:
    """MFN's cacheable user side over a scorer's vocabulary and item table."""

    def __init__(self, scorer: CTRScorer):
        self.scorer = scorer
        self.model = scorer.model

    def _fields(self, side: str, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """The model's `hist_*` or `target_*` inputs of item ids (content from the item table)."""
        inputs = {f"{side}_item": tf.cast(ids, tf.int32)}
        for f in self.scorer.fields:
            if f != "item":
                inputs[f"{side}_{f}"] = tf.gather(self.scorer.table[f], ids)
        if side == "hist":
            inputs["hist_mask"] = tf.cast(ids != PAD_ID, tf.float32)
        return inputs

    def encode_user(self, user_id: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        del user_id  # in the contract; the interests read behaviours only
        ids = self.scorer.history(tf.RaggedTensor.from_tensor(history))
        return {"interests": tf.cast(self.model.encode_user(self._fields("hist", ids)), tf.float32)}

    def pctr_from_interests(self, interests: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = self.scorer.ids(candidates)  # [B, N]
        flat = tf.reshape(ids, [-1])
        rows = tf.repeat(interests, tf.shape(ids)[1], axis=0)  # each user's row once per candidate
        probability = tf.sigmoid(tf.cast(self.model.score(rows, self._fields("target", flat), training=False),
                                         tf.float32))
        probability = tf.where(flat == PAD_ID, tf.zeros_like(probability), probability)
        return {"pctr": tf.reshape(probability, tf.shape(ids))}


def add_interest_endpoints(archive: keras.export.ExportArchive, scorer: CTRScorer) -> None:
    """Adds `signatures.CACHED_INTERESTS` (MFN's ``encode_user``, ``pctr_from_interests``)."""
    serving = InterestServing(scorer)
    for signature in signatures.CACHED_INTERESTS:
        archive.add_endpoint(signature.name, getattr(serving, signature.name), signature.tf_specs())
