"""The TFX pipeline: one definition for any subset of models (DESIGN.md section 1).

    MindExampleGen → StatisticsGen, ImportSchemaGen → Transform → per model:
        Trainer → Evaluator (TFMA: AUC, MRR, nDCG@5/10; value thresholds) → Pusher

Module functions are referenced by dotted path (the TFX template style), so every runner imports
them from the installed project instead of packaging user code.
"""

from __future__ import annotations

import json
import os

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.ingest.mind_example_gen import MindExampleGen
from pipeline.configs import PipelineConfig

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schemas", "mind.pbtxt")
METRICS_MODULE = "components.metrics.tfma_metrics"
TRANSFORM_SPLITS = tfx.proto.SplitsConfig(analyze=["train", "news"], transform=["train", "eval", "news"])


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA config: impression-level metrics on the whole eval split, with value thresholds."""
    def metric(class_name: str, lower: float | None = None, **kwargs) -> tfma.MetricConfig:
        threshold = None
        if lower is not None and lower > 0:
            threshold = tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower})
            )
        return tfma.MetricConfig(
            class_name=class_name, module=METRICS_MODULE, config=json.dumps(kwargs) if kwargs else "",
            threshold=threshold,
        )

    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key="labels", prediction_key="scores")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    metric("GroupAUC", config.gate.min_auc),
                    metric("MRR"),
                    metric("NDCGAtK", k=5),
                    metric("NDCGAtK", config.gate.min_ndcg10, k=10),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
    )


def create_pipeline(config: PipelineConfig, data_dir: str) -> tfx.dsl.Pipeline:
    """Builds the pipeline for `config.models` over the MIND-format data in `data_dir`."""
    example_gen = MindExampleGen(input_base=data_dir)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=SCHEMA_FILE)
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
            train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.train_steps),
            eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=1),
            custom_config=config.training_for(model).__dict__,
        ).with_id(f"Trainer.{model}")
        evaluator = tfx.components.Evaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            eval_config=eval_config(config),
            example_splits=["eval"],
        ).with_id(f"Evaluator.{model}")
        pusher = tfx.components.Pusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(
                    base_directory=os.path.join(os.path.abspath(config.serving_root), model)
                )
            ),
        ).with_id(f"Pusher.{model}")
        components += [trainer, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=os.path.abspath(config.pipeline_root),
        components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.abspath(config.metadata_path)
        ),
        beam_pipeline_args=list(config.beam_args),
        enable_cache=False,
    )
