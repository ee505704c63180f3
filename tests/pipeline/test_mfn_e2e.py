"""End-to-end run of MFN with its pretrained interest centers (LocalDagRunner, TFMA).

`--preset tiny --models embedding_mlp,mfn`: the run's Base is trained first, the centers
pre-step reads its item tables, GloVe and the users' train histories, MFN trains on them, TFMA
evaluates it on its own and against the Base (RelaImpr), and its `pctr` signature answers;
`usermodel explain mfn` explains one of the run's users.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.metrics import reference
from pipeline import cli, configs, local_runner
from pipeline.explain import mfn as explain_mfn
from pipeline.summary import _Metadata
from trainer.ctr import centers as ctr_centers
from trainer.ctr import export as ctr_export
from trainer.ctr import input as ctr_input

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


def test_explain_mfn_for_a_user_of_the_run(run, tmp_path, capsys):
    config, _, out = run
    metadata = _Metadata(config.metadata_path, config.pipeline_name)
    transform = metadata.outputs("Transform.ctr")
    tft_output = tft.TFTransformOutput(transform["transform_graph"][0].uri)
    trained = explain_mfn.load_run(str(out), "mfn")
    # The rebuilt Keras MFN carries the trained weights: it scores like the served model.
    served = tf.saved_model.load(trained.serving_dir)
    history = np.array([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0]])
    x = ctr_input.to_model_inputs(tf.constant(history), tf.constant([6, 7]), trained.table, trained.model.item_fields)
    vocab = [line.strip() for line in open(ctr_export.item_vocabulary_file(tft_output))]
    raw = [[vocab[i - 2] if i >= 2 else "" for i in row] for row in history]
    pctr = served.signatures["pctr"](user_id=tf.constant(["u", "u"]), history=tf.constant(raw),
                                     target=tf.constant([vocab[4], vocab[5]]))["pctr"].numpy()
    np.testing.assert_allclose(tf.sigmoid(trained.model(x)).numpy(), pctr, rtol=1e-5, atol=1e-6)

    files = tf.io.gfile.glob(os.path.join(transform["transformed_examples"][0].uri, "Split-eval", "*"))
    spec = tft_output.transformed_feature_spec()
    user = str(next(ctr_input.users(files, spec, ("user_id",)).as_numpy_iterator())["user_id"])
    assert cli.main(["explain", "mfn", "--output-dir", str(out), "--user", user, "--out", str(tmp_path), "--top", "3"]) == 0
    table = capsys.readouterr().out
    assert table.count("| category sim") == table.count("| fine com") == 4, table
    svg = ET.parse(tmp_path / f"mfn_user_{user}.svg").getroot()
    cells = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("stroke")]
    assert len(cells) % 16 == 0 and cells  # 2 levels x 2K interests, one column per history item
    assert cli.main(["explain", "mfn", "--output-dir", str(out), "--user", "987654"]) == 2
    assert "user 987654 is not in the run's train or eval data" in capsys.readouterr().err
