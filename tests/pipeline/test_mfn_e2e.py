"""End-to-end run of MFN with its pretrained interest centers (LocalDagRunner, TFMA).

`--preset tiny --models embedding_mlp,mfn`: the run's Base is trained first, the centers
pre-step reads its item tables, GloVe and the users' train histories, MFN trains on them, TFMA
evaluates it on its own and against the Base (RelaImpr), and its `pctr` signature answers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.metrics import reference
from pipeline import configs, local_runner
from pipeline.summary import _Metadata
from trainer.ctr import centers as ctr_centers

pytestmark = pytest.mark.slow

MODELS = ["embedding_mlp", "mfn"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mfn_run")
    config = configs.load_config("tiny", overrides={"output_dir": str(out), "models": MODELS})
    assert config.families["ctr"].training["epochs"] == 2  # the CTR tiny schedule, whatever ran before
    with open(out / "progress.txt", "w") as progress:
        summary = local_runner.run(config, out=progress)
    return config, {m.model: m for m in summary.models}, out


def test_centers_step_runs_and_mfn_is_trained_on_them(run):
    config, _, out = run
    progress = (out / "progress.txt").read_text()
    for component in ("Trainer.embedding_mlp", "InterestCenters.ctr", "Trainer.mfn", "Evaluator.mfn", "Compare.mfn",
                      "Blessing.mfn"):
        assert f"✔ {component}" in progress
    metadata = _Metadata(config.metadata_path, config.pipeline_name)
    uri = metadata.outputs("InterestCenters.ctr")["centers"][0].uri
    summary = json.loads(open(os.path.join(uri, ctr_centers.SUMMARY_FILE)).read())
    for level in ("category", "fine"):
        assert summary["levels"][level]["loss_end"] < summary["levels"][level]["loss_start"]
    _, centers = ctr_centers.load(uri)
    model_uri = metadata.outputs("Trainer.mfn")["model"][0].uri
    served = tf.saved_model.load(os.path.join(model_uri, "Format-Serving"))
    by_name = {v.name: v.numpy() for v in served.variables}
    trained = [v for n, v in by_name.items() if n.endswith("category_centers:0")]
    np.testing.assert_array_equal(trained[0], centers["category"])  # the artifact's centers, kept fixed


def test_mfn_is_evaluated_against_the_base_and_its_pctr_works(run):
    config, results, _ = run
    mfn = results["mfn"]
    expected = reference.rela_impr(mfn.metrics["auc"], results["embedding_mlp"].metrics["auc"])
    assert mfn.metrics["rela_impr"] == pytest.approx(expected, abs=1e-6)
    assert mfn.metrics["auc"] > 0.55, mfn.metrics
    assert (mfn.pushed_path is not None) == mfn.blessed
    uri = _Metadata(config.metadata_path, config.pipeline_name).outputs("Trainer.mfn")["model"][0].uri
    served = tf.saved_model.load(os.path.join(uri, "Format-Serving"))
    vocab = ["1", "2", "3"]
    out = served.signatures["pctr"](user_id=tf.constant(["u"] * 2), history=tf.constant([vocab, ["", "", ""]]),
                                    target=tf.constant(["4", "5"]))["pctr"].numpy()
    assert out.shape == (2,) and ((out > 0) & (out < 1)).all()
