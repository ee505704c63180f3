"""The TFX pipeline: one definition for any subset of models and any runner (DESIGN.md section 1).

One subgraph per task family present in the run (`pipeline/families.py`):

    ExampleGen.<family> → StatisticsGen.<family>, ImportSchemaGen.<family> → Transform.<family>
        → per model: Trainer → Evaluator (TFMA: the family's metrics; floors, and no regression
          against a baseline model of that name) → Pusher
          (a model with a sibling, e.g. DIN: also Compare (TFMA against the sibling model of the
          run, e.g. RelaImpr ≥ 0) → Blessing (both gates passed) → Pusher)
        a model with pre-steps (MFN): the family's pre-step components (MFN's InterestCenters,
        reading the Transform and the Base's Trainer) → its TrainerWithInputs

The baseline is the one part that differs between runners (see `Baseline`). Module functions
are referenced by dotted path (the TFX template style), so every runner imports them from the
installed project instead of packaging user code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from tfx import v1 as tfx
from tfx.dsl.components.common import importer

from components import gating
from components.blessing import CombinedBlessing
from components.trainer_with_inputs import TrainerWithInputs
from pipeline.configs import PipelineConfig
from pipeline.families import SCHEMA_DIR, Family, load

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
    data_dirs: Mapping[str, str] | None = None,
    baseline: Baseline = "resolver",
    schema_dir: str = SCHEMA_DIR,
    sqlite_metadata: bool = True,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline for `config.models`, one subgraph per family.

    Args:
        config: the pipeline configuration; its output locations may be local paths or URIs.
        data_dirs: family name → the directory its ExampleGen reads; default: the config's
            (`PipelineConfig.data_dir_of`).
        baseline: how each Evaluator gets its baseline model (see `Baseline`).
        schema_dir: where ImportSchemaGen reads the families' schemas, as seen by the machine
            that runs it (a container image has the project at another path than the
            compiling machine).
        sqlite_metadata: keep ML Metadata in `config.metadata_path` (runners on this machine);
            False for Kubeflow, whose backend has its own store.

    Raises:
        ValueError: for an unknown `baseline`.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline: {baseline!r} is not one of {', '.join(BASELINES)}")
    components = []
    for family in config.run_families():
        data_dir = (data_dirs or {}).get(family.name) or config.data_dir_of(family)
        components += _family_components(config, family, data_dir, baseline, schema_dir)
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


def _family_components(config: PipelineConfig, family: Family, data_dir: str, baseline: Baseline,
                       schema_dir: str) -> list:
    """ExampleGen, statistics, schema and Transform of one family, then per model Trainer,
    baseline, Evaluator and Pusher."""
    section = config.families[family.name]
    example_gen = family.make_example_gen(section.dataset, data_dir, **section.source_options).with_id(
        f"ExampleGen.{family.name}")
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        f"StatisticsGen.{family.name}")
    schema_gen = tfx.components.ImportSchemaGen(schema_file=os.path.join(schema_dir, family.schema)).with_id(
        f"ImportSchemaGen.{family.name}")
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=family.preprocessing_fn,
        splits_config=tfx.proto.SplitsConfig(
            analyze=list(family.analyze_splits), transform=list(family.transform_splits)
        ),
        custom_config=dict(section.transform),
    ).with_id(f"Transform.{family.name}")
    components = [example_gen, statistics_gen, schema_gen, transform]
    # Trainers without pre-steps first: a pre-step may read their models (MFN's centers read
    # the run's Base), then the pre-steps, then the trainers they feed.
    models = config.models_of(family)
    needs = {model: family.pre_steps.get(model, {}) for model in models}
    trainers = {model: _trainer(config, family, model, transform, {}) for model in models if not needs[model]}
    plain = dict(trainers)
    pre_steps: dict[str, tuple] = {}  # factory path → (component, output key), built once per run
    for model in models:
        inputs = {}
        for name, factory in needs[model].items():
            if factory not in pre_steps:
                pre_steps[factory] = load(factory)(example_gen, transform, plain, config)
            component, key = pre_steps[factory]
            inputs[name] = component.outputs[key]
        if inputs:
            trainers[model] = _trainer(config, family, model, transform, inputs)
    components += [component for component, _ in pre_steps.values()]
    trainers = {model: trainers[model] for model in models}  # the run's order
    for model, trainer in trainers.items():
        components.append(trainer)
        components += _gate_and_push(config, family, model, trainers, example_gen, baseline)
    return components


def _evaluator(config: PipelineConfig, family: Family, example_gen, model_channel, baseline_model,
               against_sibling: bool):
    """A TFMA Evaluator of one model on the family's raw eval split."""
    table = config.metrics_of(family)
    metrics = table if against_sibling else {
        name: metric for name, metric in table.items() if name not in family.sibling_metrics
    }
    return tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=model_channel,
        baseline_model=baseline_model,
        eval_config=gating.eval_config(
            config.gate_of(family), metrics, family.label_key, family.prediction_key, family.label_signature,
            against_sibling=against_sibling,
        ),
        example_splits=["eval"],
    )


def _gate_and_push(config: PipelineConfig, family: Family, model: str, trainers: dict, example_gen,
                   baseline: Baseline) -> list:
    """Baseline node, Evaluator(s) and Pusher of one model.

    Every model has its own gate (`Evaluator.<model>`: floors, and no regression against its
    previous blessed version). A model with a sibling is also compared with the sibling model of
    this run (`Compare.<model>`: `gate.min_gain`), and `Blessing.<model>` blesses it only when
    both did; the Pusher reads that blessing.
    """
    sibling = family.siblings.get(model)
    model_channel = trainers[model].outputs["model"]
    baseline_node = _baseline_node(model, baseline, f"Blessing.{model}" if sibling else f"Evaluator.{model}")
    baseline_model = baseline_node.outputs[_baseline_key(baseline_node)] if baseline_node else None
    own = _evaluator(config, family, example_gen, model_channel, baseline_model, False).with_id(f"Evaluator.{model}")
    nodes = [*([baseline_node] if baseline_node else []), own]
    blessing = own.outputs["blessing"]
    if sibling:
        compare = _evaluator(config, family, example_gen, model_channel, trainers[sibling].outputs["model"],
                             True).with_id(f"Compare.{model}")
        combined = CombinedBlessing(
            model=model_channel, own_gate=own.outputs["blessing"], sibling_gate=compare.outputs["blessing"]
        ).with_id(f"Blessing.{model}")
        nodes += [compare, combined]
        blessing = combined.outputs["blessing"]
    pusher = tfx.components.Pusher(
        model=model_channel,
        model_blessing=blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=_absolute(os.path.join(config.serving_root, model))
            )
        ),
    ).with_id(f"Pusher.{model}")
    return [*nodes, pusher]


def _trainer(config: PipelineConfig, family: Family, model: str, transform, pre_steps: dict):
    """The model's Trainer: TFX's own, or `TrainerWithInputs` when pre-step artifacts feed it."""
    kwargs = dict(
        run_fn=family.run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        # Training by epochs: run_fn counts the samples and sets the steps itself.
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=None if config.training.epochs else config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=1),
        custom_config=config.training_for(model),
    )
    if pre_steps:
        return TrainerWithInputs(pre_steps=pre_steps, **kwargs).with_id(f"Trainer.{model}")
    return tfx.components.Trainer(**kwargs).with_id(f"Trainer.{model}")


def _baseline_node(model: str, baseline: Baseline, blessing_id: str):
    """The Resolver or Importer node `Baseline.<model>` that yields the baseline Model, if any
    (the resolver counts the blessings of the node `blessing_id` only)."""
    if baseline == "resolver":
        return tfx.dsl.Resolver(
            strategy_class=gating.LatestBlessedModelOf,
            config={"trainer_id": f"Trainer.{model}", "blessing_id": blessing_id},
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
