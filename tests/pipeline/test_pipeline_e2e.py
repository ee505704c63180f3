"""End-to-end runs of the real pipeline (LocalDagRunner, MLMD on SQLite, TFMA).

A first run on generated data (tiny preset, a few minutes on 2 cores) checks what users rely
on: a blessed model is pushed to <serving_root>/<model>/<version>/, the TFMA gate metrics equal
the reference metrics on the pushed model's own predictions, and the exported signatures agree
with each other. The last test then runs the same pipeline twice more in the same output
directory: a deliberately worse candidate must not be blessed or pushed (no regression against
the first model, which is serving), and a better one must be.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from components.metrics import reference
from pipeline import configs, local_runner
from pipeline.families import NEWS
from pipeline.summary import _Metadata

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = configs.load_config("tiny", overrides={"output_dir": str(out)})
    with open(out / "progress.txt", "w") as progress:
        summary = local_runner.run(config, out=progress)
    return config, summary, out


@pytest.fixture(scope="module")
def served(run):
    _, summary, _ = run
    return tf.saved_model.load(summary.models[0].pushed_path)


@pytest.fixture(scope="module")
def eval_examples(run):
    config, _, _ = run
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs("ExampleGen.news")["examples"][0].uri
    files = glob.glob(os.path.join(uri, "Split-eval", "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _features(serialized: bytes) -> dict:
    ex = tf.train.Example.FromString(serialized).features.feature
    return {
        "user_id": ex["user_id"].bytes_list.value[0].decode(),
        "history": [v.decode() for v in ex["history"].bytes_list.value],
        "candidates": [v.decode() for v in ex["candidates"].bytes_list.value],
        "labels": list(ex["labels"].int64_list.value),
        "impression_id": ex["impression_id"].int64_list.value[0],
    }


def test_blessed_model_is_pushed_to_the_serving_layout(run):
    config, summary, out = run
    (result,) = summary.models
    assert result.blessed, result.failed_thresholds
    version = os.path.basename(result.pushed_path)
    assert version.isdigit()
    assert os.path.dirname(result.pushed_path) == os.path.join(os.path.abspath(config.serving_root), "nrms")
    assert os.path.exists(os.path.join(result.pushed_path, "saved_model.pb"))
    written = json.loads((out / "summary.json").read_text())
    assert written["models"][0]["blessed"] is True
    assert "| nrms" in (out / "summary.md").read_text()
    progress = (out / "progress.txt").read_text()
    for component in ("ExampleGen.news", "Transform.news", "Trainer.nrms", "Evaluator.nrms", "Pusher.nrms"):
        assert f"✔ {component}" in progress
    assert written["ingest"]["news"]["counters"]["impressions"] > 0
    # The sampling counts and the step plan are in the run log.
    assert re.search(r"nrms: \d+ training impressions: \d+ used, .* \d+ samples, \d+ dropped", progress)
    assert re.search(r"nrms: 60 steps of 16 samples, \d+ steps per epoch", progress)


def test_learns_planted_structure(run):
    _, summary, _ = run
    assert summary.models[0].metrics["group_auc"] > 0.6  # chance is 0.5


def test_tfma_metrics_equal_reference_on_the_pushed_model(run, served, eval_examples):
    _, summary, _ = run
    scores = served.signatures["serving_default"](examples=tf.constant(eval_examples))["scores"].numpy()
    labels, preds, groups = [], [], []
    for i, serialized in enumerate(eval_examples):
        y = _features(serialized)["labels"]
        labels += y
        preds += list(scores[i, : len(y)])
        groups += [i] * len(y)
    labels, preds, groups = map(np.asarray, (labels, preds, groups))
    tfma_metrics = summary.models[0].metrics
    assert tfma_metrics["group_auc"] == pytest.approx(reference.group_auc(labels, preds, groups), abs=1e-6)
    assert tfma_metrics["mrr"] == pytest.approx(reference.mrr(labels, preds, groups), abs=1e-6)
    assert tfma_metrics["ndcg@5"] == pytest.approx(reference.ndcg_at_k(labels, preds, groups, 5), abs=1e-6)
    assert tfma_metrics["ndcg@10"] == pytest.approx(reference.ndcg_at_k(labels, preds, groups, 10), abs=1e-6)


def test_raw_id_scoring_matches_serving_default(served, eval_examples):
    rows = [_features(s) for s in eval_examples[:4]]
    width_h = max(len(r["history"]) for r in rows)
    width_c = max(len(r["candidates"]) for r in rows)
    pad = lambda xs, n: xs + [""] * (n - len(xs))  # noqa: E731
    out = served.signatures["score"](
        user_id=tf.constant([r["user_id"] for r in rows]),
        history=tf.constant([pad(r["history"], width_h) for r in rows]),
        candidates=tf.constant([pad(r["candidates"], width_c) for r in rows]),
    )
    reference_scores = served.signatures["serving_default"](examples=tf.constant(eval_examples[:4]))["scores"]
    for i, r in enumerate(rows):
        n = len(r["candidates"])
        np.testing.assert_allclose(out["scores"][i, :n], reference_scores[i, :n], rtol=1e-5, atol=1e-5)
        assert out["candidate_mask"][i, :n].numpy().all() and not out["candidate_mask"][i, n:].numpy().any()


def _entity_ids(cols: list[str], width: int = 8) -> list[str]:
    """The Wikidata ids of a news.tsv row (title's, then abstract's), padded with ""."""
    ids = [e["WikidataId"] for text in cols[6:8] for e in json.loads(text or "[]")][:width]
    return ids + [""] * (width - len(ids))


def test_score_is_user_vector_dot_cached_news_vectors(run, served, eval_examples):
    """The papers' cacheable property: encode_news once, encode_user once, score by dot product."""
    config, _, _ = run
    news = {}
    with open(os.path.join(config.data_dir_of(NEWS), "news.tsv"), encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            news[cols[0]] = cols
    row = _features(eval_examples[0])
    cands = [c for c in row["candidates"] if c in news]
    vectors = served.signatures["encode_news"](
        title=tf.constant([news[c][3] for c in cands]),
        abstract=tf.constant([news[c][4] for c in cands]),
        category=tf.constant([news[c][1] for c in cands]),
        subcategory=tf.constant([news[c][2] for c in cands]),
        entities=tf.constant([_entity_ids(news[c]) for c in cands]),
    )["news_vector"].numpy()
    user = served.signatures["encode_user"](
        user_id=tf.constant([row["user_id"]]), history=tf.constant([row["history"]])
    )["user_vector"].numpy()
    scores = served.signatures["score"](
        user_id=tf.constant([row["user_id"]]), history=tf.constant([row["history"]]),
        candidates=tf.constant([cands]),
    )["scores"].numpy()[0]
    np.testing.assert_allclose(vectors @ user[0], scores, rtol=1e-4, atol=1e-4)


def test_unknown_ids_are_scored_not_crashed(served):
    out = served.signatures["score"](
        user_id=tf.constant(["U-never-seen", ""]),
        history=tf.constant([["N-unknown-1", "N-unknown-2"], ["", ""]]),
        candidates=tf.constant([["N-unknown-3", ""], ["N-unknown-4", "N-unknown-5"]]),
    )
    scores = out["scores"].numpy()
    assert np.isfinite(scores).all()
    assert out["candidate_mask"].numpy().tolist() == [[1.0, 0.0], [1.0, 1.0]]


def _serving_versions(config) -> list[str]:
    return sorted(glob.glob(os.path.join(os.path.abspath(config.serving_root), "nrms", "*")))


def test_worse_candidate_is_refused_and_better_one_is_pushed(run):
    """Runs last: it adds two runs to the module's output directory."""
    config, first, out = run
    first_model = first.models[0]
    assert first_model.baseline is None  # first run: floors only, said in the report
    assert any(c.passed is None and "first run" in c.requirement for c in first_model.checks)

    # Deliberately worse: one step at a vanishing learning rate, floors off, so only the
    # no-regression check against the blessed first model can refuse it.
    news = config.families["news"]
    worse = dataclasses.replace(
        config, train_steps=1,
        training=dataclasses.replace(config.training, learning_rate=1e-9),
        families={"news": dataclasses.replace(news, gate=dataclasses.replace(news.gate, min_value={}))},
    )
    with open(out / "progress-worse.txt", "w") as progress:
        second = local_runner.run(worse, out=progress).models[0]
    assert not second.blessed
    assert second.pushed_path is None
    assert _serving_versions(config) == [first_model.pushed_path]
    assert second.baseline is not None and "Trainer.nrms" in second.baseline
    failed = [c for c in second.checks if c.passed is False]
    assert failed and all(c.kind == "no regression" for c in failed)
    assert "group_auc no regression: FAILED" in second.reason()

    better = dataclasses.replace(config, train_steps=200)
    with open(out / "progress-better.txt", "w") as progress:
        third = local_runner.run(better, out=progress).models[0]
    assert third.blessed, third.reason()
    assert third.baseline == second.baseline  # still compared with the model that is serving
    assert third.metrics["group_auc"] >= first_model.metrics["group_auc"] - config.gate_of(NEWS).max_drop["group_auc"]
    assert _serving_versions(config) == [first_model.pushed_path, third.pushed_path]
    report = (out / "summary.md").read_text()
    assert "blessed: every threshold passed (not worse than the serving model" in report


def test_training_by_epochs(tmp_path, capsys):
    """`--epochs` (the `paper` preset's way): the Trainer gets no step count and plans its steps
    from the sample count it logs."""
    from pipeline import cli

    assert cli.main(["run", "--preset", "tiny", "--epochs", "1", "--output-dir", str(tmp_path)]) == 0
    log = (tmp_path / "logs" / "tfx.log").read_text()
    samples = int(re.search(r"nrms: \d+ training impressions: .* (\d+) samples, \d+ dropped", log).group(1))
    per_epoch = -(-samples // 16)
    match = re.search(r"nrms: (\d+) steps of 16 samples, (\d+) steps per epoch \(([\d.]+) epochs\), training by epochs", log)
    assert int(match.group(2)) == per_epoch
    assert per_epoch <= int(match.group(1)) < per_epoch + 4 and match.group(3) == "1.00"
    assert "| nrms" in capsys.readouterr().out
