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

    def validate(self, metrics: MetricTable) -> None:
        from components.errors import UserError

        for field in ("min_value", "max_drop"):
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
    gate: GateConfig, metrics: MetricTable, label_key: str, prediction_key: str, label_signature: str | None = None
) -> config_pb2.EvalConfig:
    """TFMA config: candidate and baseline specs, the family's metrics, the gate's thresholds.

    `label_signature`: a model signature TFMA runs on the raw examples first, whose outputs
    hold `label_key` (TFMA's "transformed features").
    """
    spec = dict(signature_name="serving_default", label_key=label_key, prediction_key=prediction_key,
                preprocessing_function_names=[label_signature] if label_signature else [])
    configs = []
    for name, (class_name, kwargs) in metrics.items():
        threshold = config_pb2.MetricThreshold()
        if name in gate.min_value:
            threshold.value_threshold.lower_bound.value = gate.min_value[name]
        if name in gate.max_drop:
            threshold.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
            threshold.change_threshold.absolute.value = -gate.max_drop[name]
        configs.append(
            config_pb2.MetricConfig(
                class_name=class_name, module=_module(class_name), config=json.dumps(kwargs) if kwargs else "",
                threshold=threshold if name in gate.min_value or name in gate.max_drop else None,
            )
        )
    configs.append(config_pb2.MetricConfig(class_name="ExampleCount"))
    return config_pb2.EvalConfig(
        model_specs=[config_pb2.ModelSpec(name=CANDIDATE, **spec), config_pb2.ModelSpec(name=BASELINE, is_baseline=True, **spec)],
        slicing_specs=[config_pb2.SlicingSpec()],
        metrics_specs=[config_pb2.MetricsSpec(metrics=configs)],
    )


class LatestBlessedModelOf(latest_blessed_model_strategy.LatestBlessedModelStrategy):
    """The latest blessed Model produced by one Trainer node (by its component id)."""

    def __init__(self, trainer_id: str):
        self._trainer_id = trainer_id

    def resolve_artifacts(self, store, input_dict):
        for key, artifacts in input_dict.items():
            if artifacts and isinstance(artifacts[0], standard_artifacts.Model):
                mine = [m for m in artifacts if self._produced_by_trainer(store, m.id)]
                input_dict = {**input_dict, key: mine}
        return super().resolve_artifacts(store, input_dict)

    def _produced_by_trainer(self, store, artifact_id: int) -> bool:
        events = store.get_events_by_artifact_ids([artifact_id])
        for execution_id in {e.execution_id for e in events}:
            for context in store.get_contexts_by_execution(execution_id):
                if context.name.endswith(f".{self._trainer_id}"):
                    return True
        return False
