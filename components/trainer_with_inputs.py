"""A TFX Trainer that also takes artifacts made by earlier pipeline steps.

The stock Trainer's inputs are fixed (examples, transform graph, schema, base model,
hyperparameters). MFN trains with interest centers computed by a pre-step (its Algorithm 1) and
Tiny-NewsRec distils from teacher models trained by earlier steps, so their Trainers need more
inputs. :class:`TrainerWithInputs` is the stock Trainer with extra named input channels of any
artifact type; its executor hands each artifact's URI to ``run_fn`` as
``custom_config["pre_steps"][name]`` (`trainer/loop.py: TrainingConfig.pre_steps`), so a family's
run_fn needs no TFX code to find them. MLMD records them as the Trainer's inputs, so the lineage
of a model names the centers or teachers it was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

PRE_STEPS = "pre_steps"
"""The `custom_config` key (and `TrainingConfig` field) that holds the pre-step URIs."""
_PREFIX = "pre_step_"


class Executor(trainer_executor.GenericExecutor):
    """The generic Trainer executor, with the pre-step artifacts' URIs in `custom_config`."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        uris = {
            key[len(_PREFIX):]: artifact_utils.get_single_uri(artifacts)
            for key, artifacts in input_dict.items() if key.startswith(_PREFIX)
        }
        fn_args.custom_config = {**(fn_args.custom_config or {}), PRE_STEPS: uris}
        return fn_args


def _spec_class(channels: Mapping[str, types.BaseChannel]) -> type[standard_component_specs.TrainerSpec]:
    """TrainerSpec with one more input per pre-step, typed by its channel's artifact type."""
    extra = {_PREFIX + name: component_spec.ChannelParameter(type=channel.type) for name, channel in channels.items()}
    return type("TrainerWithInputsSpec", (standard_component_specs.TrainerSpec,),
                {"INPUTS": {**standard_component_specs.TrainerSpec.INPUTS, **extra}})


class TrainerWithInputs(base_component.BaseComponent):
    """The TFX Trainer (`run_fn` by dotted path) plus `pre_steps`: name → channel of any type.

    Args:
        examples: the (transformed) Examples channel.
        transform_graph: the Transform graph channel, if the family has one.
        run_fn: dotted path of the family's run_fn.
        train_args: as the stock Trainer's.
        eval_args: as the stock Trainer's.
        custom_config: a JSON-serializable dict; `pre_steps` is added to it at run time.
        pre_steps: name → the channel of a pre-step's output artifact (one artifact each).
    """

    SPEC_CLASS = standard_component_specs.TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel | None,
        run_fn: str,
        train_args: trainer_pb2.TrainArgs,
        eval_args: trainer_pb2.EvalArgs,
        custom_config: dict[str, Any],
        pre_steps: Mapping[str, types.BaseChannel],
    ):
        bad = [name for name in pre_steps if not name.isidentifier()]
        if bad:
            raise ValueError(f"pre-step names must be identifiers, got {bad}")
        spec = _spec_class(pre_steps)(
            examples=examples,
            transform_graph=transform_graph,
            train_args=train_args,
            eval_args=eval_args,
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
            **{_PREFIX + name: channel for name, channel in pre_steps.items()},
        )
        super().__init__(spec=spec)
