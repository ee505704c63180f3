"""The TFX pipeline: one definition for any subset of models (DESIGN.md section 1).

    MindExampleGen → StatisticsGen, ImportSchemaGen → Transform → per model:
        Trainer → Evaluator (TFMA: AUC, MRR, nDCG@5/10; floors, and no regression against
                  the latest blessed model of that name, found by a Resolver) → Pusher

Module functions are referenced by dotted path (the TFX template style), so every runner imports
them from the installed project instead of packaging user code.
"""

from __future__ import annotations

import os

from tfx import v1 as tfx

from components import gating
from components.ingest.mind_example_gen import MindExampleGen
from pipeline.configs import PipelineConfig

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schemas", "mind.pbtxt")
TRANSFORM_SPLITS = tfx.proto.SplitsConfig(analyze=["train", "news"], transform=["train", "eval", "news"])


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
        baseline = tfx.dsl.Resolver(
            strategy_class=gating.LatestBlessedModelOf,
            config={"trainer_id": f"Trainer.{model}"},
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id(f"Baseline.{model}")
        evaluator = tfx.components.Evaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=baseline.outputs["model"],
            eval_config=gating.eval_config(config.gate),
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
        components += [trainer, baseline, evaluator, pusher]
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
