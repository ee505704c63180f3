"""The run report: for each model its metrics, every threshold with pass/fail, the baseline it
was compared with, whether it was blessed and where it was pushed — in plain words.

Everything is read back from ML Metadata (the newest execution of each node) and from the
artifacts it points to, so the report says what the pipeline decided, not what we expected.
Written as ``summary.json`` and ``summary.md`` in the output directory; `usermodel report`
prints it again later.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from components import gating
from pipeline.configs import PipelineConfig
from pipeline.families import FAMILIES, all_models


@dataclasses.dataclass
class ThresholdCheck:
    metric: str
    kind: str  # "floor" or "no regression"
    requirement: str
    observed: float | None
    passed: bool | None  # None: not applied (no baseline yet)

    def sentence(self) -> str:
        if self.passed is None:
            return f"{self.metric} {self.kind}: not applied — {self.requirement}"
        verdict = "passed" if self.passed else "FAILED"
        return f"{self.metric} {self.kind}: {verdict} ({self.requirement}; observed {_fmt(self.observed)})"


@dataclasses.dataclass
class ModelResult:
    model: str
    family: str
    metrics: dict[str, float]
    baseline: str | None
    baseline_metrics: dict[str, float]
    checks: list[ThresholdCheck]
    blessed: bool
    pushed_path: str | None
    sibling: str | None = None
    """The model of the same run this one was gated against, if its family says so."""

    def reason(self) -> str:
        """Why the model was or was not blessed, in one sentence."""
        failed = [c for c in self.checks if c.passed is False]
        if self.blessed:
            if self.baseline:
                against = f"not worse than the serving model {self.baseline}"
            else:
                against = "first run of this model, so only absolute floors applied"
            if self.sibling:
                against += f"; its gain thresholds over {self.sibling} of this run passed"
            return f"blessed: every threshold passed ({against})"
        if failed:
            return "NOT blessed: " + "; ".join(c.sentence() for c in failed)
        return "NOT blessed: the evaluation did not validate (see logs/tfx.log)"


@dataclasses.dataclass
class RunSummary:
    output_dir: str
    data_dirs: dict[str, str]
    """Family → the directory its ExampleGen read."""
    seconds: float
    ingest: dict[str, dict[str, Any]]
    """Family → its ExampleGen's ingest report."""
    models: list[ModelResult]
    metric_columns: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Family → its metric names for the data source of the run (`Family.metrics_of`)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def table(self) -> str:
        """One table per family (its own metric columns), then one sentence per model."""
        tables = []
        for name, family in FAMILIES.items():
            models = [m for m in self.models if m.family == name]
            if not models:
                continue
            columns = self.metric_columns.get(name) or list(family.metrics)
            header = ["model", *columns, "blessed", "pushed to"]
            rows = [[m.model, *(_fmt(m.metrics.get(c)) for c in columns), "yes" if m.blessed else "NO",
                     m.pushed_path or "-"] for m in models]
            tables += ([f"{family.task}:"] if len(self.data_dirs) > 1 else []) + [_markdown_table(header, rows), ""]
        return "\n".join(tables + [f"{m.model}: {m.reason()}" for m in self.models])

    def markdown(self) -> str:
        data = ", ".join(f"{family} `{path}`" for family, path in self.data_dirs.items())
        parts = [f"# Run summary\n\nData: {data} · {self.seconds:.0f} s\n", self.table(), ""]
        for m in self.models:
            parts.append(f"\n## {m.model}\n\nBaseline: {m.baseline or 'none (first run of this model)'}\n")
            rows = [[c.metric, c.kind, c.requirement, _fmt(c.observed),
                     {True: "pass", False: "FAIL", None: "not applied"}[c.passed]] for c in m.checks]
            parts.append(_markdown_table(["metric", "threshold", "requirement", "observed", "result"], rows))
        return "\n".join(parts) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


class _Metadata:
    """Read-only view of the run's MLMD store: the newest execution's outputs of a node."""

    def __init__(self, path: str, pipeline_name: str):
        import ml_metadata as mlmd
        from ml_metadata.proto import metadata_store_pb2

        cfg = metadata_store_pb2.ConnectionConfig()
        cfg.sqlite.filename_uri = path
        cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        self.store = mlmd.MetadataStore(cfg)
        self.pipeline = pipeline_name

    def outputs(self, node: str) -> dict[str, list]:
        from ml_metadata.proto import metadata_store_pb2

        context = self.store.get_context_by_type_and_name("node", f"{self.pipeline}.{node}")
        if context is None:
            return {}
        executions = self.store.get_executions_by_context(context.id)
        if not executions:
            return {}
        latest = max(executions, key=lambda e: e.id)
        found: dict[str, list] = {}
        for event in self.store.get_events_by_execution_ids([latest.id]):
            if event.type == metadata_store_pb2.Event.OUTPUT:
                (artifact,) = self.store.get_artifacts_by_id([event.artifact_id])
                found.setdefault(event.path.steps[0].key, []).append(artifact)
        return found

    def artifact_uri(self, artifact_id: int) -> str | None:
        found = self.store.get_artifacts_by_id([artifact_id])
        return found[0].uri if found else None


def _custom(artifact, key: str):
    value = artifact.custom_properties.get(key)
    if value is None:
        return None
    return value.int_value if value.HasField("int_value") else value.string_value


def _metrics(uri: str) -> dict[str, dict[str, float]]:
    """Overall-slice metric values by model name ('' = the only model, when no baseline ran)."""
    import tensorflow_model_analysis as tfma

    values: dict[str, dict[str, float]] = {}
    for per_slice in tfma.load_metrics(uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for item in per_slice.metric_keys_and_values:
            if not item.key.is_diff and item.value.HasField("double_value"):
                values.setdefault(item.key.model_name, {})[item.key.name] = item.value.double_value.value
    return values


def _checks(gate: gating.GateConfig, names, metrics, baseline_metrics, failures, has_baseline) -> list[ThresholdCheck]:
    """The floors, then the no-regression checks against the model's previous version."""
    checks = []
    for name in names:
        if name in gate.min_value:
            checks.append(ThresholdCheck(
                name, "floor", f"≥ {gate.min_value[name]}", metrics.get(name), (name, False) not in failures,
            ))
        if name in gate.max_drop:
            if not has_baseline:
                checks.append(ThresholdCheck(name, "no regression", "no baseline yet (first run)", None, None))
                continue
            change = None
            if name in metrics and name in baseline_metrics:
                change = metrics[name] - baseline_metrics[name]
            checks.append(ThresholdCheck(
                name, "no regression", f"change vs baseline ≥ −{gate.max_drop[name]}", change,
                (name, True) not in failures,
            ))
    return checks


def _sibling_checks(gate: gating.GateConfig, sibling: str, metrics, sibling_metrics, failures) -> list[ThresholdCheck]:
    """The comparison with the sibling model of the run: candidate − sibling ≥ `min_gain`."""
    checks = []
    for name, gain in gate.min_gain.items():
        change = metrics[name] - sibling_metrics.get(name, 0.0) if name in metrics else None
        checks.append(ThresholdCheck(
            name, f"vs {sibling}", f"gain over {sibling} of this run ≥ {gain}", change, (name, True) not in failures,
        ))
    return checks


def _failures(uri: str) -> set[tuple[str, bool]]:
    """(metric name, is change threshold) of every failed threshold, from TFMA's validation."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(uri)
    return {(f.metric_key.name, f.metric_key.is_diff)
            for per_slice in result.metric_validations_per_slice for f in per_slice.failures}


def collect(config: PipelineConfig, started_at: float) -> RunSummary:
    """The summary of the newest run in `config.output_dir`."""
    import time

    from tfx.types import standard_artifacts

    from components.ingest.example_gen_utils import load_report

    md = _Metadata(os.path.abspath(config.metadata_path), config.pipeline_name)
    ingest = {}
    for family in config.run_families():
        for artifact in md.outputs(f"ExampleGen.{family.name}").get("examples", []):
            examples = standard_artifacts.Examples()
            examples.uri = artifact.uri
            ingest[family.name] = load_report(examples)
    models = [_model_result(md, config, model) for model in config.models]
    data_dirs = {f.name: os.path.abspath(config.data_dir_of(f)) for f in config.run_families()}
    columns = {f.name: list(config.metrics_of(f)) for f in config.run_families()}
    return RunSummary(os.path.abspath(config.output_dir), data_dirs, time.time() - started_at, ingest, models, columns)


def _evaluation(md: _Metadata, node: str) -> tuple[dict[str, dict[str, float]], set, Any]:
    """An Evaluator's metrics by model name, its failed thresholds and its blessing artifact."""
    outputs = md.outputs(node)
    evaluation = outputs.get("evaluation", [None])[0]
    if evaluation is None:
        return {}, set(), outputs.get("blessing", [None])[0]
    return _metrics(evaluation.uri), _failures(evaluation.uri), outputs.get("blessing", [None])[0]


def _model_result(md: _Metadata, config: PipelineConfig, model: str) -> ModelResult:
    family = all_models()[model]
    gate = config.gate_of(family)
    by_model, failures, blessing = _evaluation(md, f"Evaluator.{model}")
    baseline_id = _custom(blessing, "baseline_model_id") if blessing is not None else None
    baseline = md.artifact_uri(baseline_id) if baseline_id else None
    metrics = by_model.get(gating.CANDIDATE) or by_model.get("", {})
    baseline_metrics = by_model.get(gating.BASELINE, {})
    checks = _checks(gate, config.metrics_of(family), metrics, baseline_metrics, failures, baseline is not None)
    sibling = family.siblings.get(model)
    if sibling:
        compared, compare_failures, _ = _evaluation(md, f"Compare.{model}")
        candidate = compared.get(gating.CANDIDATE, {})
        # Metrics relative to the sibling (RelaImpr) exist only in the comparison.
        metrics = {**metrics, **{n: v for n, v in candidate.items() if n in family.sibling_metrics}}
        checks += _sibling_checks(gate, sibling, candidate, compared.get(gating.BASELINE, {}), compare_failures)
        blessing = md.outputs(f"Blessing.{model}").get("blessing", [None])[0]
    blessed = bool(blessing is not None and _custom(blessing, "blessed") == 1)
    pushed = md.outputs(f"Pusher.{model}").get("pushed_model", [None])[0]
    pushed_path = None
    if blessed and pushed is not None and _custom(pushed, "pushed") == 1:
        pushed_path = _custom(pushed, "pushed_destination")
    return ModelResult(model, family.name, metrics, baseline, baseline_metrics, checks, blessed, pushed_path, sibling)


def write(summary: RunSummary, output_dir: str) -> None:
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(summary.to_dict(), f, indent=2)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(summary.markdown())
