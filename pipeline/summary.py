"""The run summary: per model its metrics, gate result, blessing and pushed path.

Read back from the artifacts the run wrote (newest execution of each component under the
pipeline root), so it reports what the pipeline actually decided, not what we expected.
Written as ``summary.json`` and ``summary.md`` in the output directory and printed as a table.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any

from pipeline.configs import PipelineConfig

METRIC_COLUMNS = ("group_auc", "mrr", "ndcg@5", "ndcg@10")


@dataclasses.dataclass
class ModelResult:
    model: str
    metrics: dict[str, float]
    failed_thresholds: list[str]
    blessed: bool
    pushed_path: str | None


@dataclasses.dataclass
class RunSummary:
    output_dir: str
    data_dir: str
    seconds: float
    ingest: dict[str, Any]
    models: list[ModelResult]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def table(self) -> str:
        header = ["model", *METRIC_COLUMNS, "blessed", "pushed to"]
        rows = [
            [m.model, *(_fmt(m.metrics.get(c)) for c in METRIC_COLUMNS), "yes" if m.blessed else "NO",
             m.pushed_path or "-"]
            for m in self.models
        ]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
        out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
        for m in self.models:
            if m.failed_thresholds:
                out.append(f"{m.model} not blessed: " + "; ".join(m.failed_thresholds))
        return "\n".join(out)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _latest_output(pipeline_root: str, component: str, key: str) -> str | None:
    runs = glob.glob(os.path.join(pipeline_root, component, key, "*"))
    runs = [r for r in runs if os.path.basename(r).isdigit()]
    return max(runs, key=lambda r: int(os.path.basename(r))) if runs else None


def _evaluation(uri: str | None) -> tuple[dict[str, float], list[str]]:
    import tensorflow_model_analysis as tfma

    if uri is None:
        return {}, ["no evaluation found"]
    metrics: dict[str, float] = {}
    for slice_key, by_output in _load_metrics(uri):
        if slice_key:
            continue
        metrics.update(by_output)
    validation = tfma.load_validation_result(uri)
    failed = []
    for failure in validation.metric_validations_per_slice:
        for f in failure.failures:
            failed.append(f"{f.metric_key.name} = {f.metric_value.double_value.value:.4f} fails {f.metric_threshold}".replace("\n", " "))
    return metrics, failed


def _load_metrics(uri: str):
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri)
    for slice_key, by_output in result.slicing_metrics:
        values = {}
        for sub_keys in by_output.values():
            for metrics in sub_keys.values():
                for name, value in metrics.items():
                    if "doubleValue" in value:
                        values[name] = float(value["doubleValue"])
        yield slice_key, values


def collect(config: PipelineConfig, started_at: float) -> RunSummary:
    """Reads the newest Evaluator/Pusher outputs of each model under the pipeline root."""
    import time

    from tfx.types import standard_artifacts

    from components.ingest.example_gen_utils import load_report

    root = os.path.abspath(config.pipeline_root)
    ingest = {}
    ingest_uri = _latest_output(root, "MindExampleGen", "examples")
    if ingest_uri:
        examples = standard_artifacts.Examples()
        examples.uri = ingest_uri
        ingest = load_report(examples)
    models = []
    for model in config.models:
        metrics, failed = _evaluation(_latest_output(root, f"Evaluator.{model}", "evaluation"))
        blessing = _latest_output(root, f"Evaluator.{model}", "blessing")
        blessed = bool(blessing and os.path.exists(os.path.join(blessing, "BLESSED")))
        models.append(ModelResult(model, metrics, failed, blessed, _pushed_version(config, model) if blessed else None))
    return RunSummary(os.path.abspath(config.output_dir), config.resolved_data_dir(), time.time() - started_at, ingest, models)


def _pushed_version(config: PipelineConfig, model: str) -> str | None:
    versions = glob.glob(os.path.join(os.path.abspath(config.serving_root), model, "*"))
    versions = [v for v in versions if os.path.basename(v).isdigit()]
    return max(versions, key=lambda v: int(os.path.basename(v))) if versions else None


def write(summary: RunSummary, output_dir: str) -> None:
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(summary.to_dict(), f, indent=2)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(f"# Run summary\n\nData: `{summary.data_dir}` · {summary.seconds:.0f} s\n\n{summary.table()}\n")
