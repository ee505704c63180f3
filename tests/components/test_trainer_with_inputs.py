"""TrainerWithInputs: a pre-step's artifact reaches the family's run_fn (a real LocalDagRunner run).

No `from __future__ import annotations`: TFX reads the component's type hints as objects.
"""


import json
import os

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from components.trainer_with_inputs import PRE_STEPS, TrainerWithInputs

CENTERS = "0.5 0.25\n-1.0 2.0\n"


@tfx.dsl.components.component
def WriteCenters(centers: tfx.dsl.components.OutputArtifact[standard_artifacts.ExternalArtifact]):  # noqa: N802
    """A trivial pre-step: writes a small file into its output artifact."""
    with tf.io.gfile.GFile(os.path.join(centers.uri, "centers.txt"), "w") as f:
        f.write(CENTERS)


def record_run_fn(fn_args) -> None:
    """A run_fn that records what it was given and reads the pre-step's file."""
    with tf.io.gfile.GFile(os.path.join(fn_args.custom_config[PRE_STEPS]["centers"], "centers.txt")) as f:
        centers = f.read()
    tf.io.gfile.makedirs(fn_args.serving_model_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, "record.json"), "w") as f:
        json.dump({"custom_config": fn_args.custom_config, "centers": centers,
                   "train_files": fn_args.train_files}, f)


def test_pre_step_artifact_reaches_run_fn(tmp_path):
    examples_dir = tmp_path / "examples"
    for split in ("train", "eval"):
        (examples_dir / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(examples_dir / f"Split-{split}" / "data.gz"), options="GZIP") as w:
            w.write(tf.train.Example().SerializeToString())
    examples = tfx.dsl.Importer(
        source_uri=str(examples_dir), artifact_type=standard_artifacts.Examples,
        properties={"split_names": '["train", "eval"]'},
    ).with_id("examples")
    pre_step = WriteCenters().with_id("centers")
    trainer = TrainerWithInputs(
        examples=examples.outputs["result"], transform_graph=None,
        run_fn=f"{__name__}.record_run_fn",
        train_args=tfx.proto.TrainArgs(num_steps=1), eval_args=tfx.proto.EvalArgs(num_steps=1),
        custom_config={"model": "m"}, pre_steps={"centers": pre_step.outputs["centers"]},
    ).with_id("Trainer.m")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="pre_steps", pipeline_root=str(tmp_path / "root"),
        components=[examples, pre_step, trainer],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "mlmd.sqlite")),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)

    (record_file,) = tf.io.gfile.glob(str(tmp_path / "root" / "Trainer.m" / "model" / "*" / "Format-Serving" / "record.json"))
    record = json.loads(open(record_file).read())
    assert record["centers"] == CENTERS
    assert record["custom_config"]["model"] == "m"  # the family's own config is kept
    assert os.path.basename(record["custom_config"][PRE_STEPS]["centers"]).isdigit()  # the artifact's URI
    assert record["train_files"] == [str(examples_dir / "Split-train" / "*")]  # the stock Trainer's inputs too
