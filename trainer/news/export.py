"""SavedModel export of a news-ranking model with the news signatures of `trainer/signatures.py`.

The Keras model only sees integer tensors; this module wraps it with the Transform graph
(string ids → indices, in-graph tokenization) and the news table (index → content), so that
serving takes raw inputs:

* ``serving_default(examples)`` — serialized raw impression tf.Examples (what TFMA feeds) →
  ``scores`` ``[B, C]`` for the candidates in order, ``candidate_mask`` ``[B, C]``;
* ``score(user_id, history, candidates)`` — news ids, ``""`` = padding → ``scores``, ``candidate_mask``;
* ``encode_news(title, abstract, category, subcategory, entities)`` — raw articles (entities: Wikidata
  ids, ``""`` = padding) → ``news_vector`` (cacheable);
* ``encode_user(user_id, history)`` → ``user_vector``.

Padded candidate slots score -1e9 (finite), so clients may sort rows without masking first.

Scoring reads cached news vectors (the papers' "cacheable news encoder"): at export time every
article of the news table is encoded once and the vectors are stored beside the table, so
``score`` and ``serving_default`` gather candidate and clicked-news vectors instead of running the
news encoder on up to ``B * (H + C)`` articles per request. The user encoder still runs per
request; models that read more than the clicks' vectors (FUM's fine-grained model reads their
words, LSTUR the user id) get those inputs gathered from the table too. Candidates unknown to the
table have index 1 and get row 1's vector, the encoding of an empty article.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import signatures
from trainer.news import input as news_input


def _dense_to_sparse(ids: tf.Tensor) -> tf.SparseTensor:
    """[B, N] strings with "" padding → a [B, None] sparse feature (what the raw schema parses to)."""
    where = tf.where(ids != "")
    return tf.SparseTensor(where, tf.gather_nd(ids, where), tf.shape(ids, out_type=tf.int64))


def _scalar_to_sparse(values: tf.Tensor) -> tf.SparseTensor:
    return _dense_to_sparse(values[:, None])


def encode_table(model: keras.Model, table: news_input.NewsTable, batch_size: int = 1024) -> np.ndarray:
    """News vectors ``[num_news, D]`` (float32) of every table row, in batches, dropout off."""
    fields = tuple(model.news_fields)
    chunks = []
    for start in range(0, table.num_news, batch_size):
        news = {f: table.fields[f][start : start + batch_size] for f in fields}
        chunks.append(np.asarray(keras.ops.convert_to_numpy(model.encode_news(news, training=False)), np.float32))
    return np.concatenate(chunks)


class CachedScorer(tf.Module):
    """Scores candidates from cached news vectors; holds the news table and the vectors.

    Both live in non-trainable variables (kept out of the graph proto). `scores` is what the
    serving signatures run: one gather of the candidates' and clicks' vectors, one user-encoder
    call and one batched dot product, whatever the number of candidates.
    """

    def __init__(self, model: keras.Model, table: news_input.NewsTable):
        super().__init__()
        self.model = model
        self.news_fields = tuple(model.news_fields)
        self.fields = {k: tf.Variable(v, trainable=False, name=k) for k, v in table.fields.items()}
        self.vectors = tf.Variable(encode_table(model, table), trainable=False, name="news_vectors")

    def gather(self, indices: tf.Tensor, fields) -> dict[str, tf.Tensor]:
        return {f: tf.gather(self.fields[f], indices) for f in fields}

    def _vectors(self, indices: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.gather(self.vectors, indices), self.model.compute_dtype)

    def user_vectors(self, ids: dict[str, tf.Tensor]) -> tf.Tensor:
        """User vectors from ``history`` [B, H], ``history_mask`` and ``user_index`` (ids)."""
        inputs = {f"hist_{k}": v for k, v in self.gather(ids["history"], self.news_fields).items()}
        inputs["hist_mask"] = ids["history_mask"]
        inputs["user_index"] = tf.cast(ids["user_index"], tf.int32)
        return self.model.user_representation(self._vectors(ids["history"]), inputs, training=False)

    def scores(self, ids: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """``scores`` [B, C] and ``candidate_mask`` for ids plus ``candidates`` [B, C]."""
        mask = tf.cast(ids["candidates"] > 0, tf.float32)
        scores = self.model.score(self.user_vectors(ids), self._vectors(ids["candidates"]), mask)
        return {"scores": tf.cast(scores, tf.float32), "candidate_mask": mask}


class NewsServing:
    """Builds the serving functions from a trained model, the Transform output and the table."""

    def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput, table: news_input.NewsTable):
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self.raw_spec = tft_output.raw_feature_spec()
        self.table = CachedScorer(model, table)
        self.fields = tuple(model.news_fields)

    def _transform(self, batch_size: tf.Tensor, **given: tf.SparseTensor) -> dict[str, tf.Tensor]:
        """Runs the Transform graph; raw features not given are absent (empty) for every row."""
        raw = {}
        for name, spec in self.raw_spec.items():
            raw[name] = given.get(name) or tf.SparseTensor(
                tf.zeros([0, 2], tf.int64), tf.zeros([0], spec.dtype), tf.stack([batch_size, 0])
            )
        return self.tft_layer(raw)

    def _ids(self, t: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # An unknown candidate has index 1 (> 0), so it stays in the mask and is scored.
        return {"history": t["history"], "history_mask": t["history_mask"], "user_index": t["user_index"],
                "candidates": tf.sparse.to_dense(t["candidates"])}

    def _scores(self, t: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.table.scores(self._ids(t))

    def serving_default(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, self.raw_spec)
        return self._scores(self.tft_layer(raw))

    def score(self, user_id: tf.Tensor, history: tf.Tensor, candidates: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self._transform(
            tf.shape(user_id, out_type=tf.int64)[0],
            user_id=_scalar_to_sparse(user_id),
            history=_dense_to_sparse(history),
            candidates=_dense_to_sparse(candidates),
        )
        return self._scores(t)

    def encode_news(self, title, abstract, category, subcategory, entities) -> dict[str, tf.Tensor]:
        n = tf.shape(title, out_type=tf.int64)[0]
        t = self._transform(
            n,
            title=_scalar_to_sparse(title),
            abstract=_scalar_to_sparse(abstract),
            category=_scalar_to_sparse(category),
            subcategory=_scalar_to_sparse(subcategory),
            # The Transform keeps the title's entities, then the abstract's: given as one list.
            title_entities=_dense_to_sparse(entities),
        )
        lengths = {f: self.table.fields[f].shape[1] for f in ("title", "abstract", "entities")}
        news = {}
        for f in self.fields:
            value = t[f]
            if isinstance(value, tf.SparseTensor):
                value = tf.sparse.to_dense(tf.sparse.reset_shape(value, [n, lengths[f]]))
            news[f] = tf.cast(value, tf.int32)
        return {"news_vector": self.model.encode_news(news)}

    def encode_user(self, user_id: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self._transform(
            tf.shape(user_id, out_type=tf.int64)[0],
            user_id=_scalar_to_sparse(user_id),
            history=_dense_to_sparse(history),
        )
        return {"user_vector": self.table.user_vectors(self._ids(t))}


def export(model: keras.Model, tft_output: tft.TFTransformOutput, table: news_input.NewsTable, path: str) -> None:
    """Writes the SavedModel with all four signatures to `path`."""
    serving = NewsServing(model, tft_output, table)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(serving.tft_layer)
    archive.track(serving.table)
    for signature in (signatures.SERVING_DEFAULT, *signatures.BY_FAMILY["news"]):
        archive.add_endpoint(signature.name, getattr(serving, signature.name), signature.tf_specs())
    archive.write_out(path, verbose=False)
