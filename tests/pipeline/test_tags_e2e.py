"""End-to-end run of the tag-profiling family (LocalDagRunner, MLMD on SQLite, TFMA).

`usermodel run --preset tiny --models youtube_dnn` on generated MovieLens-format data with
planted tag preferences (the `tags-tiny` synthetic preset, about 1.5 minutes on 2 cores): the
model is blessed and pushed, TFMA's Prec@1/2/3 over the history tags and over all tags equal the
reference metric on the pushed model's own scores with labels recomputed here from the raw eval
events and the catalog, Prec@1 beats random tags clearly, the floor sits above a random history
tag, and the pushed model answers `user_tags` consistently with its scores. The
last test runs the pipeline again in the same directory: an untrained candidate must be refused
by the no-regression check against the serving model (TFMA runs the `labels` signature of both).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.metrics import reference
from pipeline import cli, configs, local_runner
from pipeline.families import TAGS
from pipeline.summary import _Metadata
from serving.model_manager import ManagerConfig
from serving.server import Server, ServerConfig

pytestmark = pytest.mark.slow

POSITIVE, N = 3.5, 3  # the protocol's click threshold and tags per article (docs/tags.md)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = configs.load_config("tiny", overrides={"output_dir": str(out), "models": ["youtube_dnn"]})
    with open(out / "progress.txt", "w") as progress:
        summary = local_runner.run(config, out=progress)
    return config, summary, out


@pytest.fixture(scope="module")
def served(run):
    _, summary, _ = run
    return tf.saved_model.load(summary.models[0].pushed_path)


def _split(config, node: str, key: str, split: str) -> list[bytes]:
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs(node)[key][0].uri
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


@pytest.fixture(scope="module")
def eval_examples(run):
    config, _, _ = run
    return _split(config, "ExampleGen.tags", "examples", "eval")


@pytest.fixture(scope="module")
def expected_labels(run, eval_examples):
    """Clicked-tag multi-hots [users, T] computed here from the raw catalog and eval events."""
    config, _, _ = run
    item_tags = {}
    for serialized in _split(config, "ExampleGen.tags", "examples", "items"):
        f = tf.train.Example.FromString(serialized).features.feature
        item_tags[f["item_id"].int64_list.value[0]] = [t.decode() for t in f["tags"].bytes_list.value[:N]]
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs("Transform.tags")["transform_graph"][0].uri
    vocab = [v.decode() for v in tft.TFTransformOutput(uri).vocabulary_by_name("tags")]
    tag_id = {t: i + 2 for i, t in enumerate(vocab)}
    labels = np.zeros((len(eval_examples), len(vocab) + 2), np.float32)
    for row, serialized in enumerate(eval_examples):
        f = tf.train.Example.FromString(serialized).features.feature
        for item, rating in zip(f["item_ids"].int64_list.value, f["ratings"].float_list.value):
            if rating >= POSITIVE:
                labels[row, [tag_id[t] for t in item_tags.get(item, []) if t in tag_id]] = 1
    return labels


def _prec(scores: np.ndarray, labels: np.ndarray, k: int, candidates: np.ndarray | None = None) -> float:
    users, tags = scores.shape
    clicked = {u: np.flatnonzero(labels[u]).tolist() for u in range(users)}
    history = None if candidates is None else {u: np.flatnonzero(candidates[u]).tolist() for u in range(users)}
    return reference.prec_at_k(np.repeat(np.arange(users), tags), np.tile(np.arange(tags), users),
                               scores.reshape(-1), clicked, k, history)


def test_blessed_model_is_pushed(run):
    config, summary, out = run
    (result,) = summary.models
    assert result.family == "tags"
    assert result.blessed, result.reason()
    assert os.path.dirname(result.pushed_path) == os.path.join(os.path.abspath(config.serving_root), "youtube_dnn")
    assert os.path.exists(os.path.join(result.pushed_path, "saved_model.pb"))
    progress = (out / "progress.txt").read_text()
    for component in ("ExampleGen.tags", "Transform.tags", "Trainer.youtube_dnn", "Evaluator.youtube_dnn",
                      "Pusher.youtube_dnn"):
        assert f"✔ {component}" in progress
    assert "| youtube_dnn" in (out / "summary.md").read_text()


def test_labels_signature_matches_raw_catalog_labels(served, eval_examples, expected_labels):
    labels = served.signatures["labels"](examples=tf.constant(eval_examples))["clicked_tags"].numpy()
    np.testing.assert_array_equal(labels, expected_labels)


def test_tfma_prec_at_k_equals_reference_and_beats_random(run, served, eval_examples, expected_labels):
    _, summary, _ = run
    scores = served.signatures["serving_default"](examples=tf.constant(eval_examples))["tag_scores"].numpy()
    candidates = served.signatures["labels"](examples=tf.constant(eval_examples))["candidate_tags"].numpy()
    metrics = summary.models[0].metrics
    for k in (1, 2, 3):
        assert metrics[f"prec@{k}_all"] == pytest.approx(_prec(scores, expected_labels, k), abs=1e-6)
        assert metrics[f"prec@{k}"] == pytest.approx(_prec(scores, expected_labels, k, candidates), abs=1e-6)
    # Random tags: expected Prec@1 of a user = |clicked tags| / real tags.
    users = expected_labels[expected_labels.sum(1) > 0]
    random_prec1 = float(np.mean(users.sum(1) / (users.shape[1] - 2)))
    assert metrics["prec@1_all"] > 1.5 * random_prec1, (metrics, random_prec1)
    # A random history tag: |clicked ∩ history| / |history| per user with both; the floor sits above.
    both = (expected_labels.sum(1) > 0) & (candidates.sum(1) > 0)
    chance = float(np.mean((expected_labels * candidates).sum(1)[both] / candidates.sum(1)[both]))
    assert metrics["prec@1"] > TAGS.default_min_value["prec@1"] > chance, (metrics, chance)


def test_user_tags_answers_with_the_top_of_the_scores(served, eval_examples):
    scores = served.signatures["serving_default"](examples=tf.constant(eval_examples[:4]))["tag_scores"].numpy()
    histories = []
    for serialized in eval_examples[:4]:
        f = tf.train.Example.FromString(serialized).features.feature
        items = f["history_item_ids"].int64_list.value
        ratings = f["history_ratings"].float_list.value
        histories.append([str(i) for i, r in zip(items, ratings) if r >= POSITIVE])
    width = max(map(len, histories))
    out = served.signatures["user_tags"](
        user_id=tf.constant(["u"] * 4), history=tf.constant([h + [""] * (width - len(h)) for h in histories]),
        features=tf.constant([[""]] * 4))
    k = out["tag_ids"].shape[1]
    assert k == 10 and out["user_embedding"].shape == (4, 16)
    for i in range(4):
        np.testing.assert_allclose(out["tag_scores"][i].numpy(), np.sort(scores[i])[::-1][:k], rtol=1e-5, atol=1e-5)


def test_usermodel_query_tags_against_the_served_push(run, served, eval_examples, capsys):
    """`usermodel serve` over the run's serving root answers `usermodel query tags` with the
    pushed model's own `user_tags` (raw item ids in, raw tag strings out)."""
    config, _, _ = run
    f = tf.train.Example.FromString(eval_examples[0]).features.feature
    history = [str(i) for i in f["history_item_ids"].int64_list.value] + ["no-such-movie"]
    server = Server(ManagerConfig(os.path.abspath(config.serving_root), poll_interval_s=0.1),
                    ServerConfig(port=0, host="127.0.0.1", shutdown_grace_s=5.0)).start()
    try:
        argv = ["query", "--target", f"127.0.0.1:{server.port}", "--model", "youtube_dnn", "--json", "tags",
                "--user", "u", "--history", *history, "-k", "3"]
        assert cli.main(argv) == 0
        answered = json.loads(capsys.readouterr().out)
    finally:
        server.stop()
    out = served.signatures["user_tags"](user_id=tf.constant(["u"]), history=tf.constant([history]),
                                         features=tf.constant([[""]]))
    expected = [t.decode() for t in out["tag_ids"][0].numpy()[:3]]
    assert [row["tag"] for row in answered] == expected and all(expected)
    np.testing.assert_allclose([row["score"] for row in answered], out["tag_scores"][0].numpy()[:3], rtol=1e-5)


def test_worse_candidate_is_refused(run):
    """Runs last: it adds a run to the module's output directory."""
    config, first, out = run
    tags = config.families["tags"]
    worse = dataclasses.replace(
        config, training=dataclasses.replace(config.training, learning_rate=1e-9),
        families={**config.families, "tags": dataclasses.replace(
            tags, training={"epochs": 1}, gate=dataclasses.replace(tags.gate, min_value={}))},
    )
    with open(out / "progress-worse.txt", "w") as progress:
        second = local_runner.run(worse, out=progress).models[0]
    assert not second.blessed and second.pushed_path is None
    assert second.baseline is not None and "Trainer.youtube_dnn" in second.baseline
    failed = [c for c in second.checks if c.passed is False]
    assert failed and all(c.kind == "no regression" and c.metric == "prec@1" for c in failed)
    assert second.baseline_metrics["prec@1"] == pytest.approx(first.models[0].metrics["prec@1"], abs=1e-6)
