"""End-to-end run of the CTR family (LocalDagRunner, MLMD on SQLite, TFMA).

`--preset tiny --models embedding_mlp,din` on generated MovieLens-format data (planted genre
preferences: users rate movies of their preferred genres higher): ingest, Transform, training,
TFMA on per-user eval examples, gating and pushing. Checks what users rely on: Embedding&MLP is
pushed, TFMA's `auc` is the reference AUC on each trained model's own predictions, the models
learn the planted structure, `pctr` agrees with `serving_default`, and DIN is compared with its
sibling Embedding&MLP of the run (RelaImpr, MFN eq. 13) on top of its own gate: it is blessed
and pushed exactly when both gates pass.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.metrics import reference
from pipeline import cli, configs, local_runner
from pipeline.summary import _Metadata
from serving.model_manager import ManagerConfig
from serving.server import Server, ServerConfig

pytestmark = pytest.mark.slow

MODELS = ["embedding_mlp", "din"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ctr_run")
    config = configs.load_config("tiny", overrides={"output_dir": str(out), "models": MODELS})
    with open(out / "progress.txt", "w") as progress:
        summary = local_runner.run(config, out=progress)
    return config, {m.model: m for m in summary.models}, out


@pytest.fixture(scope="module")
def eval_examples(run):
    config, _, _ = run
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs("ExampleGen.ctr")["examples"][0].uri
    files = glob.glob(os.path.join(uri, "Split-eval", "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _trained(run, model: str):
    """The model as its Trainer exported it (pushed or not)."""
    config, _, _ = run
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs(f"Trainer.{model}")["model"][0].uri
    return tf.saved_model.load(os.path.join(uri, "Format-Serving"))


def _flat_predictions(served, examples: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(clicks, pctr) of every real (user, eval item) slot, from the model's own signatures."""
    batch = tf.constant(examples)
    pctr = served.signatures["serving_default"](examples=batch)["pctr"].numpy()
    clicks = served.signatures["labels"](examples=batch)["clicks"].numpy()
    real = clicks >= 0
    return clicks[real], pctr[real]


def test_base_is_blessed_and_pushed(run):
    config, results, out = run
    result = results["embedding_mlp"]
    assert result.blessed, result.reason()
    assert os.path.basename(result.pushed_path).isdigit()
    assert os.path.dirname(result.pushed_path) == os.path.join(os.path.abspath(config.serving_root), "embedding_mlp")
    progress = (out / "progress.txt").read_text()
    for component in ("ExampleGen.ctr", "Transform.ctr", "Trainer.din", "Evaluator.din", "Compare.din", "Blessing.din",
                      "Pusher.embedding_mlp", "Pusher.din"):
        assert f"✔ {component}" in progress
    assert "samples (every event after a user's first click, history = clicked events)" in progress


@pytest.mark.parametrize("model", MODELS)
def test_tfma_auc_equals_reference_on_the_pushed_model_and_beats_chance(run, eval_examples, model):
    _, results, _ = run
    clicks, pctr = _flat_predictions(_trained(run, model), eval_examples)
    expected = reference.global_auc(clicks, pctr)
    assert results[model].metrics["auc"] == pytest.approx(expected, abs=1e-6)
    assert expected > 0.57, f"{model}: AUC {expected:.3f} on planted genre preferences (chance 0.5)"


def test_pctr_signature_on_the_clicked_history_equals_serving_default(run, eval_examples):
    """`pctr` takes the history as given; the user's clicked train items (rating >= 4) give what
    serving_default computes from the raw eval example (the default `history: clicked`)."""
    served = _trained(run, "din")
    for raw in eval_examples:  # a user whose train events hold clicks and non-clicks: the filter matters
        example = tf.train.Example.FromString(raw).features.feature
        ratings = example["history_ratings"].float_list.value
        history = [str(v) for v, r in zip(example["history_item_ids"].int64_list.value, ratings) if r >= 4.0]
        if 0 < len(history) < len(ratings):
            break
    else:
        pytest.fail("no eval user has both clicked and non-clicked train events")
    targets = [str(v) for v in example["item_ids"].int64_list.value]
    expected = served.signatures["serving_default"](examples=tf.constant([raw]))["pctr"].numpy()[0]
    out = served.signatures["pctr"](
        user_id=tf.constant([str(example["user_id"].int64_list.value[0])] * len(targets)),
        history=tf.constant([history] * len(targets)), target=tf.constant(targets),
    )["pctr"].numpy()
    np.testing.assert_allclose(out, expected[: len(targets)], rtol=1e-5, atol=1e-6)


def test_din_is_pushed_exactly_when_it_passes_its_gate_and_beats_its_sibling(run):
    config, results, _ = run
    din = results["din"]
    expected = reference.rela_impr(din.metrics["auc"], results["embedding_mlp"].metrics["auc"])
    assert din.metrics["rela_impr"] == pytest.approx(expected, abs=1e-6)  # from Compare.din
    kinds = {(c.metric, c.kind): c for c in din.checks}
    sibling = kinds[("rela_impr", "vs embedding_mlp")]
    assert sibling.observed == pytest.approx(expected, abs=1e-6) and sibling.passed == (expected >= 0)
    own = kinds[("auc", "floor")]
    assert own.passed == (din.metrics["auc"] >= config.families["ctr"].gate.min_value["auc"])
    assert din.blessed == (sibling.passed and own.passed), din.reason()
    assert (din.pushed_path is not None) == din.blessed
    if not din.blessed:
        assert "NOT blessed" in din.reason() and "FAILED" in din.reason()


def test_usermodel_query_pctr_against_the_served_push(run, eval_examples, capsys):
    """`usermodel serve` over the run's serving root answers `usermodel query pctr` with what
    the pushed SavedModel computes itself."""
    config, results, _ = run
    server = Server(ManagerConfig(os.path.abspath(config.serving_root), poll_interval_s=0.1),
                    ServerConfig(port=0, host="127.0.0.1", shutdown_grace_s=5.0)).start()
    try:
        example = tf.train.Example.FromString(eval_examples[0]).features.feature
        history = [str(v) for v in example["history_item_ids"].int64_list.value]
        targets = [str(v) for v in example["item_ids"].int64_list.value][:3] + ["no-such-item"]
        argv = ["query", "--target", f"127.0.0.1:{server.port}", "--model", "embedding_mlp", "--json", "pctr",
                "--user", "u", "--history", *history, "--targets", *targets]
        assert cli.main(argv) == 0
        served = [row["pctr"] for row in json.loads(capsys.readouterr().out)]
    finally:
        server.stop()
    pushed = tf.saved_model.load(results["embedding_mlp"].pushed_path)
    expected = pushed.signatures["pctr"](
        user_id=tf.constant(["u"] * len(targets)), history=tf.constant([history] * len(targets)),
        target=tf.constant(targets))["pctr"].numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-5)
    assert all(0 < p < 1 for p in served)
