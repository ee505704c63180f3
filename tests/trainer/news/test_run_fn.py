"""The Trainer's evaluation over whole impressions (`trainer.news.run.evaluate_impressions`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from news_fixtures import SIZES, impressions

from components.metrics import reference
from trainer.news.models import build_model
from trainer.news.run import compile_for_training, evaluate_impressions


def test_whole_impression_metrics_over_batches_of_different_shapes():
    keras.utils.set_random_seed(0)
    model = build_model("fum", "tiny", **SIZES)
    rng = np.random.default_rng(3)
    # Two batches as `padded_batch` gives them: different sizes and candidate counts, the
    # shorter impressions padded (cand_mask 0) within their batch.
    first, first_labels = impressions(rng, 3, width=7, clicks=2)
    first["cand_mask"][1, 5:] = 0.0
    second, second_labels = impressions(rng, 2, width=4)
    batches = [(first, first_labels, np.array([10, 11, 12])), (second, second_labels, np.array([13, 14]))]

    def spec(value: np.ndarray) -> tf.TensorSpec:
        return tf.TensorSpec((None, None) + value.shape[2:] if value.ndim > 1 else (None,), value.dtype)

    signature = ({k: spec(v) for k, v in first.items()}, spec(first_labels), spec(batches[0][2]))
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)

    metrics = evaluate_impressions(model, dataset)

    # The same metrics from Keras' own predictions, impression by impression.
    y, s, g = [], [], []
    for inputs, labels, ids in batches:
        scores = np.asarray(model.predict_on_batch(inputs))
        mask = inputs["cand_mask"] > 0
        y.append(labels[mask]), s.append(scores[mask]), g.append(np.broadcast_to(ids[:, None], mask.shape)[mask])
    y, s, g = (np.concatenate(a) for a in (y, s, g))
    assert metrics["impressions"] == 5
    np.testing.assert_allclose(metrics["auc"], reference.group_auc(y, s, g), rtol=1e-6)
    np.testing.assert_allclose(metrics["mrr"], reference.mrr(y, s, g), rtol=1e-6)
    np.testing.assert_allclose(metrics["ndcg@10"], reference.ndcg_at_k(y, s, g, 10), rtol=1e-6)


def test_training_auc_masks_padded_candidates():
    """The compiled "sampled AUC" of training counts only real candidates (padding scores -1e9)."""
    keras.utils.set_random_seed(1)
    model = build_model("nrms", "tiny", vocab_size=SIZES["vocab_size"])
    compile_for_training(model, 1e-3)  # as the Trainer compiles it
    rng = np.random.default_rng(5)
    inputs, labels = impressions(rng, 12, width=5)
    slots = np.argmax(labels, axis=1).astype("int32")
    # Padding as sampling leaves it: slots after the click's, in impressions with < K negatives.
    for row in range(0, 12, 2):
        inputs["cand_mask"][row, slots[row] + 1:] = 0.0
    scores = np.asarray(model.predict_on_batch(inputs))
    got = model.evaluate(inputs, slots, batch_size=12, verbose=0, return_dict=True)["sampled_auc"]

    mask = inputs["cand_mask"] > 0
    groups = np.broadcast_to(np.arange(12)[:, None], mask.shape)
    expected = reference.group_auc(labels[mask], scores[mask], groups[mask])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert expected < 0.99  # an untrained model: padding counted as negatives would push it up
