"""Model-validation gating: what a candidate must reach to be blessed and pushed.

Each task family brings its metric table (`pipeline/families.py`); the thresholds are the same
two kinds for every family, per metric, in a typed policy:

* **value floors** — absolute minimums (e.g. per-impression AUC ≥ 0.55): a model must be
  measurably good;
* **allowed drops** — the most the candidate may fall below the *latest blessed model of the
  same name* (the one serving now), e.g. AUC may not drop by more than 0.01: no regressions.

The first run of a model has no blessed predecessor. TFX's Evaluator then ignores change
thresholds on purpose (it runs TFMA with ``rubber_stamp=True``), so the first candidate is gated by
the value floors alone; the report says "no baseline (first run): only absolute floors apply".

The baseline is found by :class:`LatestBlessedModelOf`, a resolver strategy restricted to one
Trainer's models: the stock LatestBlessedModelStrategy would take the newest blessed model of
*any* Trainer in a multi-model pipeline (FUM gated against NRMS).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from tensorflow_model_analysis.proto import config_pb2
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.types import standard_artifacts

METRICS_MODULE = "components.metrics.tfma_metrics"
CANDIDATE = "candidate"
BASELINE = "baseline"

MetricTable = Mapping[str, tuple[str, dict[str, Any]]]
"""A family's gate metrics: name → (TFMA metric class, its config). A class without a module in
`components.metrics.tfma_metrics` is TFMA's own (e.g. `AUC`)."""


@dataclasses.dataclass
class GateConfig:
    """Blessing policy for one task family (its metric names: `pipeline/families.py`)."""

    min_value: dict[str, float] = dataclasses.field(default_factory=dict)
    """Absolute floors by metric name (news: `group_auc`, `mrr`, `ndcg@5`, `ndcg@10`)."""
    max_drop: dict[str, float] = dataclasses.field(default_factory=dict)
    """Largest allowed decrease against the latest blessed model of the same name."""
    min_gain: dict[str, float] = dataclasses.field(default_factory=dict)
    """Smallest allowed gain over the sibling model of the same run (candidate − sibling), for
    models their family gates against a sibling (CTR: `rela_impr` ≥ 0 against Embedding&MLP,
    MFN eq. 13); a second Evaluator checks it (`pipeline/pipeline.py`)."""

    def validate(self, metrics: MetricTable) -> None:
        from components.errors import UserError

        for field in ("min_value", "max_drop", "min_gain"):
            unknown = set(getattr(self, field)) - set(metrics)
            if unknown:
                raise UserError(f"gate.{field}: unknown metrics {sorted(unknown)}; known: {', '.join(metrics)}")
        negative = [m for m, v in self.max_drop.items() if v < 0]
        if negative:
            raise UserError(f"gate.max_drop: must be ≥ 0 (a tolerance), got negative for {negative}")


def _module(class_name: str) -> str:
    """Where TFMA finds a metric class: ours, or TFMA's built-in ones (empty module)."""
    from components.metrics import tfma_metrics

    return METRICS_MODULE if hasattr(tfma_metrics, class_name) else ""


def eval_config(
    gate: GateConfig, metrics: MetricTable, label_key: str, prediction_key: str, label_signature: str | None = None,
    against_sibling: bool = False,
) -> config_pb2.EvalConfig:
    """TFMA config: candidate and baseline specs, the family's metrics, the gate's thresholds.

    `label_signature`: a model signature TFMA runs on the raw examples first, whose outputs
    hold `label_key` (TFMA's "transformed features"). `against_sibling`: the config of the
    comparison with a sibling model of the run, whose only thresholds are `gate.min_gain` (as
    change thresholds: candidate − sibling ≥ gain); otherwise the floors and allowed drops.
    """
    spec = dict(signature_name="serving_default", label_key=label_key, prediction_key=prediction_key,
                preprocessing_function_names=[label_signature] if label_signature else [])
    configs = []
    for name, (class_name, kwargs) in metrics.items():
        floor = None if against_sibling else gate.min_value.get(name)
        change = gate.min_gain.get(name) if against_sibling else _negated(gate.max_drop.get(name))
        threshold = config_pb2.MetricThreshold()
        if floor is not None:
            threshold.value_threshold.lower_bound.value = floor
        if change is not None:
            threshold.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
            threshold.change_threshold.absolute.value = change
        configs.append(
            config_pb2.MetricConfig(
                class_name=class_name, module=_module(class_name), config=json.dumps(kwargs) if kwargs else "",
                threshold=threshold if floor is not None or change is not None else None,
            )
        )
    configs.append(config_pb2.MetricConfig(class_name="ExampleCount"))
    return config_pb2.EvalConfig(
        model_specs=[config_pb2.ModelSpec(name=CANDIDATE, **spec), config_pb2.ModelSpec(name=BASELINE, is_baseline=True, **spec)],
        slicing_specs=[config_pb2.SlicingSpec()],
        metrics_specs=[config_pb2.MetricsSpec(metrics=configs)],
    )


def _negated(value: float | None) -> float | None:
    return None if value is None else -value


class LatestBlessedModelOf(latest_blessed_model_strategy.LatestBlessedModelStrategy):
    """The latest blessed Model produced by one Trainer node, blessed by one gate node.

    Args:
        trainer_id: the component id of the Trainer whose models count.
        blessing_id: the component id whose blessings count: the model's Evaluator, or the
            `CombinedBlessing` of a model that is also gated against a sibling (a model that
            passed its own gate but not the comparison was not pushed and is no baseline).
    """

    def __init__(self, trainer_id: str, blessing_id: str | None = None):
        self._trainer_id = trainer_id
        self._blessing_id = blessing_id

    def resolve_artifacts(self, store, input_dict):
        for key, artifacts in input_dict.items():
            if artifacts and isinstance(artifacts[0], standard_artifacts.Model):
                producer = self._trainer_id
            elif artifacts and isinstance(artifacts[0], standard_artifacts.ModelBlessing) and self._blessing_id:
                producer = self._blessing_id
            else:
                continue
            input_dict = {**input_dict, key: [a for a in artifacts if _produced_by(store, a.id, producer)]}
        return super().resolve_artifacts(store, input_dict)


def _produced_by(store, artifact_id: int, node_id: str) -> bool:
    """Whether the node `node_id` (of any run of the pipeline) output the artifact."""
    from ml_metadata.proto import metadata_store_pb2

    events = store.get_events_by_artifact_ids([artifact_id])
    for execution_id in {e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}:
        for context in store.get_contexts_by_execution(execution_id):
            if context.name.endswith(f".{node_id}"):
                return True
    return False
