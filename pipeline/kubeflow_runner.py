"""Compiles the pipeline for Kubeflow Pipelines (YAML) or Vertex AI Pipelines (JSON).

Nothing runs here: `KubeflowV2DagRunner` only writes the pipeline spec, and each step later runs
in a container built from this project (see the Dockerfile). So everything the spec names must
make sense inside those pods: the data and output locations are URIs (gs://…) or absolute
paths they mount, and the schema file is the copy inside the image.

The file's extension picks the format, as KubeflowV2DagRunner does: `.yaml`/`.yml` writes the
PipelineSpec (what the Kubeflow Pipelines UI, `kfp.Client().create_run_from_pipeline_package`
and `kfp.components.load_component_from_file` read); any other name writes the PipelineJob
JSON that Vertex AI's `aiplatform.PipelineJob(template_path=...)` reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import yaml

from components.errors import UserError
from pipeline.configs import PipelineConfig

DEFAULT_IMAGE = "usermodel-tfx:latest"
IMAGE_PROJECT_DIR = "/usermodel-tfx"
"""Where the Dockerfile copies the project in the image; the schema file is read from there."""


@dataclasses.dataclass
class CompiledPipeline:
    """What `compile_pipeline` wrote, for the CLI to report."""

    path: str
    format: str
    """`yaml` (Kubeflow Pipelines PipelineSpec) or `json` (Vertex AI PipelineJob)."""
    image: str
    baseline_parameters: dict[str, str | None]
    """Runtime parameter name → its default URI (None: must be set per run); empty without baseline."""


def compile_pipeline(
    config: PipelineConfig,
    output: str,
    image: str = DEFAULT_IMAGE,
    baseline_uris: Mapping[str, str] | None = None,
    with_baseline: bool = False,
) -> CompiledPipeline:
    """Writes the pipeline spec for `config` to `output`.

    Kubeflow's open-source backend cannot run our Resolver (latest blessed model of one
    Trainer), so the baseline is either absent, which suits a first run since there is nothing
    to compare with yet, or imported from a URI given as a runtime parameter per model.

    Args:
        config: the pipeline configuration; every family's `data_dir` and `output_dir` must be
            URIs or absolute paths that the pods can read and write.
        output: the file to write; `.yaml`/`.yml` for Kubeflow Pipelines, else JSON for Vertex.
        image: the container image every step runs in.
        baseline_uris: model name → URI of the Model artifact to gate against, the default of
            the runtime parameter `baseline_model_uri_<model>`; implies a baseline.
        with_baseline: import a baseline for every model even without a default URI (the
            parameter must then be set for each run).

    Raises:
        UserError: when the config's locations cannot work in a pod, or `baseline_uris` names
            a model that is not in the pipeline.
    """
    from tfx import v1 as tfx

    from pipeline.pipeline import baseline_parameter, create_pipeline

    _check_locations(config)
    unknown = sorted(set(baseline_uris or {}) - set(config.models))
    if unknown:
        raise UserError(f"--baseline-uri: {', '.join(unknown)} not among the models ({', '.join(config.models)})")
    importing = with_baseline or bool(baseline_uris)
    parameters = {baseline_parameter(m): (baseline_uris or {}).get(m) for m in config.models} if importing else {}
    defaults = {name: uri for name, uri in parameters.items() if uri}
    pipeline = create_pipeline(
        config,
        baseline="importer" if importing else "none",
        schema_dir=f"{IMAGE_PROJECT_DIR}/pipeline/schemas",
        sqlite_metadata=False,
    )
    # Schema 2.1 is the one kfp 2 writes and reads (typed `parameterType` inputs).
    runner_config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
        default_image=image, use_pipeline_spec_2_1=True
    )
    job = tfx.orchestration.experimental.KubeflowV2DagRunner(runner_config).run(
        pipeline, parameter_values=defaults, write_out=False
    )
    _set_parameter_defaults(job["pipelineSpec"], defaults)
    spec_format = "yaml" if output.endswith((".yaml", ".yml")) else "json"
    _write(job["pipelineSpec"] if spec_format == "yaml" else job, output)
    return CompiledPipeline(path=output, format=spec_format, image=image, baseline_parameters=parameters)


def _set_parameter_defaults(pipeline_spec: dict, defaults: Mapping[str, str]) -> None:
    """Writes `defaults` into the spec's pipeline inputs, where Kubeflow Pipelines and Vertex both
    read them; KubeflowV2DagRunner puts them only in the PipelineJob's runtimeConfig, which a
    YAML PipelineSpec does not contain."""
    for name, value in defaults.items():
        pipeline_spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] = value


def _write(document: dict, path: str) -> None:
    """Writes `document` as YAML or JSON by `path`'s extension, to a local path or a URI."""
    from tfx.dsl.io import fileio

    parent = os.path.dirname(path)
    if parent and not fileio.exists(parent):
        fileio.makedirs(parent)
    with fileio.open(path, "w") as f:
        if path.endswith((".yaml", ".yml")):
            yaml.safe_dump(document, f, sort_keys=True)
        else:
            json.dump(document, f, indent=2, sort_keys=True)


PATH_SOURCE_OPTIONS = ("tags_dir",)
"""Source options that name a directory the pods read (the others, such as `max_users: 1500`
or `news_tags: entities`, are values, not locations)."""


def _check_locations(config: PipelineConfig) -> None:
    """Fails early, with the flag to fix, on locations that would only fail inside a pod."""
    locations = [("--output-dir", config.output_dir)]
    for family in config.run_families():
        data_dir = config.families[family.name].data_dir
        if not data_dir:
            raise UserError(
                f"compile: --data-dir is required for the {family.name} family: its data directory as the "
                "pods see it (synthetic data is generated only by `usermodel run`)"
            )
        locations.append(("--data-dir", data_dir))
        locations += [(f"families.{family.name}.source_options.{k}", v)
                      for k, v in config.families[family.name].source_options.items() if k in PATH_SOURCE_OPTIONS]
    for flag, path in locations:
        if "://" not in path and not os.path.isabs(path):
            raise UserError(f"compile: {flag} {path} is relative; give a URI or an absolute path the pods mount")
