"""The TFX pipeline: one definition for any subset of models and any runner (DESIGN.md section 1).

    MindExampleGen → StatisticsGen, ImportSchemaGen → Transform → per model:
        Trainer → Evaluator (TFMA: AUC, MRR, nDCG@5/10; floors, and no regression against a
                  baseline model of that name) → Pusher

The baseline is the one part that differs between runners (see `Baseline`). Module functions
are referenced by dotted path (the TFX template style), so every runner imports them from the
installed project instead of packaging user code.
"""

from __future__ import annotations

import os
from typing import Literal

from tfx import v1 as tfx
from tfx.dsl.components.common import importer

from components import gating
from components.ingest.mind_example_gen import MindExampleGen
from pipeline.configs import PipelineConfig

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schemas", "mind.pbtxt")
TRANSFORM_SPLITS = tfx.proto.SplitsConfig(analyze=["train", "news"], transform=["train", "eval", "news"])

Baseline = Literal["resolver", "importer", "none"]
"""Where each Evaluator's baseline (the model a candidate may not regress against) comes from.

* ``resolver``: the latest blessed model of the same Trainer, found in MLMD by a Resolver
  (LocalDagRunner, BeamDagRunner).
* ``importer``: a Model artifact URI given as the runtime parameter ``baseline_model_uri_<model>``
  (Kubeflow, whose open-source backend cannot run a Resolver).
* ``none``: no baseline, so only the absolute floors gate (a first Kubeflow run).
"""
BASELINES: tuple[Baseline, ...] = ("resolver", "importer", "none")


def baseline_parameter(model: str) -> str:
    """The runtime parameter that holds `model`'s baseline URI when `baseline="importer"`."""
    return f"baseline_model_uri_{model}"


def create_pipeline(
    config: PipelineConfig,
    data_dir: str,
    baseline: Baseline = "resolver",
    schema_file: str = SCHEMA_FILE,
    sqlite_metadata: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline for `config.models` over the MIND-format data in `data_dir`.

    Args:
        config: the pipeline configuration; its output locations may be local paths or URIs.
        data_dir: the MIND-format directory that MindExampleGen reads.
        baseline: how each Evaluator gets its baseline model (see `Baseline`).
        schema_file: the schema ImportSchemaGen reads, as seen by the machine that runs it
            (a container image has the project at another path than the compiling machine).
        sqlite_metadata: keep ML Metadata in `config.metadata_path` (runners on this machine);
            False for Kubeflow, whose backend has its own store.

    Raises:
        ValueError: for an unknown `baseline`.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline: {baseline!r} is not one of {', '.join(BASELINES)}")
    example_gen = MindExampleGen(input_base=data_dir)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="trainer.preprocessing.preprocessing_fn",
        splits_config=TRANSFORM_SPLITS,
        custom_config=config.transform.__dict__,
    )
    components = [example_gen, statistics_gen, schema_gen, transform]
    for model in config.models:
        trainer = tfx.components.Trainer(
            run_fn="trainer.run_fn.run_fn",
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            # Training by epochs: run_fn counts the samples and sets the steps itself.
            train_args=tfx.proto.TrainArgs(
                splits=["train"], num_steps=None if config.training.epochs else config.train_steps
            ),
            eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=1),
            custom_config=config.training_for(model).__dict__,
        ).with_id(f"Trainer.{model}")
        baseline_node = _baseline_node(model, baseline)
        evaluator = tfx.components.Evaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=baseline_node.outputs[_baseline_key(baseline_node)] if baseline_node else None,
            eval_config=gating.eval_config(config.gate),
            example_splits=["eval"],
        ).with_id(f"Evaluator.{model}")
        pusher = tfx.components.Pusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(
                    base_directory=_absolute(os.path.join(config.serving_root, model))
                )
            ),
        ).with_id(f"Pusher.{model}")
        components += [trainer, *([baseline_node] if baseline_node else []), evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=_absolute(config.pipeline_root),
        components=components,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(_absolute(config.metadata_path))
            if sqlite_metadata else None
        ),
        beam_pipeline_args=list(config.beam_args),
        enable_cache=False,
    )


def _baseline_node(model: str, baseline: Baseline):
    """The Resolver or Importer node `Baseline.<model>` that yields the baseline Model, if any."""
    if baseline == "resolver":
        return tfx.dsl.Resolver(
            strategy_class=gating.LatestBlessedModelOf,
            config={"trainer_id": f"Trainer.{model}"},
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id(f"Baseline.{model}")
    if baseline == "importer":
        # The compiler drops a RuntimeParameter's default: kubeflow_runner writes defaults itself.
        uri = tfx.dsl.experimental.RuntimeParameter(name=baseline_parameter(model), ptype=str)
        return tfx.dsl.Importer(source_uri=uri, artifact_type=tfx.types.standard_artifacts.Model).with_id(
            f"Baseline.{model}"
        )
    return None


def _baseline_key(node) -> str:
    """The output of a baseline node that holds the Model."""
    return "model" if isinstance(node, tfx.dsl.Resolver) else importer.IMPORT_RESULT_KEY


def _absolute(path: str) -> str:
    """`path` made absolute unless it is a URI (gs://, s3://…), which must stay as given."""
    return path if "://" in path else os.path.abspath(path)
