"""End-to-end runs of the CTR and tags families on MIND-format data (LocalDagRunner, TFMA).

Synthetic MIND data (`usermodel data generate mind --preset tiny`: 190 users, 600 articles,
2,000 impressions) read by MindSequenceExampleGen, then the families' own Transform, Trainer,
Evaluator and gate, as `usermodel run --preset tiny --dataset mind --data-dir FAMILY=DIR` does
(about 2 minutes each on 2 cores). Checks: clicked articles are clicks and shown-not-clicked
ones non-clicks under each family's rule (CTR: rating >= 4; tags: >= 3.5 / <= 1.5, no neutral
event), TFMA's metrics equal the reference metrics on the trained model's own outputs, the tags
family reports UTPM's news cut-offs K in {1, 5, 10, 20, 50}, and both models learn the planted
topic preferences (above chance).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.ingest import synthetic
from components.metrics import reference
from pipeline import configs, local_runner
from pipeline.summary import _Metadata

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mind_dir(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("mind-tiny")
    synthetic.generate_mind(out, synthetic.SyntheticMindConfig.preset("tiny"))
    return str(out)


def _run(out, family: str, model: str, data_dir: str):
    config = configs.load_config("tiny", overrides={"output_dir": str(out), "models": [model]},
                                 data_dirs=[f"{family}={data_dir}"], dataset="mind")
    with open(out / "progress.txt", "w") as progress:
        summary = local_runner.run(config, out=progress)
    return config, summary.models[0], (out / "progress.txt").read_text()


def _split(config, node: str, key: str, split: str) -> list[bytes]:
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs(node)[key][0].uri
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _trained(config, model: str):
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs(f"Trainer.{model}")["model"][0].uri
    return tf.saved_model.load(os.path.join(uri, "Format-Serving"))


def _ratings(examples: list[bytes]) -> list[list[float]]:
    return [list(tf.train.Example.FromString(e).features.feature["ratings"].float_list.value) for e in examples]


@pytest.fixture(scope="module")
def ctr_run(tmp_path_factory, mind_dir):
    return _run(tmp_path_factory.mktemp("ctr-mind"), "ctr", "embedding_mlp", mind_dir)


@pytest.fixture(scope="module")
def tags_run(tmp_path_factory, mind_dir):
    return _run(tmp_path_factory.mktemp("tags-mind"), "tags", "youtube_dnn", mind_dir)


def test_ctr_clicks_are_the_clicked_articles_and_tfma_auc_is_the_reference(ctr_run):
    config, result, progress = ctr_run
    assert "✔ ExampleGen.ctr" in progress and "✔ Evaluator.embedding_mlp" in progress
    examples = _split(config, "ExampleGen.ctr", "examples", "eval")
    served = _trained(config, "embedding_mlp")
    batch = tf.constant(examples)
    pctr = served.signatures["serving_default"](examples=batch)["pctr"].numpy()
    clicks = served.signatures["labels"](examples=batch)["clicks"].numpy()
    for row, ratings in zip(clicks, _ratings(examples)):
        assert row[: len(ratings)].tolist() == [float(r == 5.0) for r in ratings]  # 5 clicked, 0 shown only
        assert (row[len(ratings):] == -1).all()
    real = clicks >= 0
    auc = reference.global_auc(clicks[real], pctr[real])
    assert result.metrics["auc"] == pytest.approx(auc, abs=1e-6)
    assert auc > 0.58, f"AUC {auc:.3f} on planted topic preferences (chance 0.5)"


def test_tags_news_cut_offs_and_click_mapping(tags_run):
    config, result, progress = tags_run
    assert " 0 neutral ratings" in progress  # every MIND event is a click (5) or a non-click (0)
    ks = (1, 5, 10, 20, 50)
    assert set(result.metrics) >= {f"prec@{k}" for k in ks} | {f"prec@{k}_all" for k in ks}
    assert "prec@2" not in result.metrics
    served = _trained(config, "youtube_dnn")
    examples = _split(config, "ExampleGen.tags", "examples", "eval")
    item_tags = {}
    for serialized in _split(config, "ExampleGen.tags", "examples", "items"):
        f = tf.train.Example.FromString(serialized).features.feature
        item_tags[f["item_id"].int64_list.value[0]] = [t.decode() for t in f["tags"].bytes_list.value]
    assert all(len(tags) == 1 for tags in item_tags.values())  # news_tags: subcategory (the default)
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs("Transform.tags")["transform_graph"][0].uri
    tag_id = {t.decode(): i + 2 for i, t in enumerate(tft.TFTransformOutput(uri).vocabulary_by_name("tags"))}
    expected = np.zeros((len(examples), len(tag_id) + 2), np.float32)
    for row, serialized in enumerate(examples):
        f = tf.train.Example.FromString(serialized).features.feature
        for item, rating in zip(f["item_ids"].int64_list.value, f["ratings"].float_list.value):
            if rating == 5.0:
                expected[row, [tag_id[t] for t in item_tags.get(item, []) if t in tag_id]] = 1
    batch = tf.constant(examples)
    labels = served.signatures["labels"](examples=batch)["clicked_tags"].numpy()
    np.testing.assert_array_equal(labels, expected)
    scores = served.signatures["serving_default"](examples=batch)["tag_scores"].numpy()
    users, tags = scores.shape
    clicked = {u: np.flatnonzero(expected[u]).tolist() for u in range(users)}
    for k in ks:
        prec = reference.prec_at_k(np.repeat(np.arange(users), tags), np.tile(np.arange(tags), users),
                                   scores.reshape(-1), clicked, k)
        assert result.metrics[f"prec@{k}_all"] == pytest.approx(prec, abs=1e-6)
    with_clicks = expected[expected.sum(1) > 0]
    random_prec1 = float(np.mean(with_clicks.sum(1) / (tags - 2)))  # a random tag per user
    assert result.metrics["prec@1_all"] > 2 * random_prec1, (result.metrics, random_prec1)
