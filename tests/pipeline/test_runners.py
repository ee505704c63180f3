"""The runners besides LocalDagRunner: Kubeflow compilation and one BeamDagRunner run.

The compile tests read the written spec the way Kubeflow Pipelines and Vertex do: which tasks
exist, which image runs them, what the Evaluator is configured with, and how the baseline Model
arrives (an Importer fed by a runtime parameter, since Kubeflow cannot run our Resolver). The
Beam run checks what `usermodel run --runner beam` promises: the same progress lines, a blessed
model pushed to the serving layout, and the summary.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import yaml

from components.errors import UserError
from pipeline import cli, configs, kubeflow_runner, local_runner
from pipeline.pipeline import create_pipeline

DATA_DIR = "gs://bucket/mind-small"
OUTPUT_DIR = "gs://bucket/usermodel"
BASELINE_URI = "gs://bucket/usermodel/pipeline/run-1/Trainer.nrms/model"
IMAGE = "europe-docker.pkg.dev/p/r/usermodel-tfx:1"
COMPONENTS = {"ExampleGen.news", "StatisticsGen.news", "ImportSchemaGen.news", "Transform.news", "Trainer.nrms",
              "Evaluator.nrms", "Pusher.nrms"}


def _config() -> configs.PipelineConfig:
    return configs.load_config("tiny", overrides={"output_dir": OUTPUT_DIR}, data_dirs=[DATA_DIR])


def _pipeline_spec(path: str) -> dict:
    """The PipelineSpec in either format: YAML holds it alone, JSON wraps it in a PipelineJob."""
    with open(path) as f:
        return yaml.safe_load(f) if path.endswith(".yaml") else json.load(f)["pipelineSpec"]


def _parameter(spec: dict, task: str, name: str):
    """A constant input parameter of a task (protos and dicts arrive as JSON strings)."""
    return spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]["runtimeValue"]["constant"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, str]:
    """The tiny pipeline compiled twice: YAML with a baseline URI, JSON (first run) without."""
    out = tmp_path_factory.mktemp("compiled")
    config = _config()
    with_baseline = kubeflow_runner.compile_pipeline(
        config, str(out / "kfp.yaml"), image=IMAGE, baseline_uris={"nrms": BASELINE_URI}
    )
    first_run = kubeflow_runner.compile_pipeline(config, str(out / "vertex.json"), image=IMAGE)
    assert with_baseline.format == "yaml" and first_run.format == "json"
    assert with_baseline.baseline_parameters == {"baseline_model_uri_nrms": BASELINE_URI}
    assert first_run.baseline_parameters == {}
    return {"yaml": with_baseline.path, "json": first_run.path}


@pytest.mark.parametrize("kind, baseline", [("yaml", {"Baseline.nrms"}), ("json", set())])
def test_spec_has_every_component_in_the_image(compiled, kind, baseline):
    spec = _pipeline_spec(compiled[kind])
    assert set(spec["root"]["dag"]["tasks"]) == COMPONENTS | baseline
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    assert len(containers) == len(COMPONENTS)
    assert {c["image"] for c in containers} == {IMAGE}
    assert spec["schemaVersion"] == "2.1.0"


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_evaluator_loads_the_custom_metrics_by_module_path(compiled, kind):
    eval_config = json.loads(_parameter(_pipeline_spec(compiled[kind]), "Evaluator.nrms", "eval_config"))
    metrics = eval_config["metrics_specs"][0]["metrics"]
    custom = {m["class_name"] for m in metrics if m.get("module") == "components.metrics.tfma_metrics"}
    assert custom == {"GroupAUC", "MRR", "NDCGAtK"}
    assert [m["is_baseline"] for m in eval_config["model_specs"] if "is_baseline" in m] == [True]


def test_baseline_is_imported_from_a_runtime_parameter(compiled):
    spec = _pipeline_spec(compiled["yaml"])
    assert spec["root"]["inputDefinitions"]["parameters"]["baseline_model_uri_nrms"] == {
        "parameterType": "STRING", "defaultValue": BASELINE_URI
    }
    tasks = spec["root"]["dag"]["tasks"]
    uri = tasks["Baseline.nrms"]["inputs"]["parameters"]["artifact_uri"]
    assert uri == {"componentInputParameter": "baseline_model_uri_nrms"}
    executor = spec["deploymentSpec"]["executors"][spec["components"]["Baseline.nrms"]["executorLabel"]]
    assert executor["importer"]["typeSchema"]["instanceSchema"].startswith("title: tfx.Model")
    source = tasks["Evaluator.nrms"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert source["producerTask"] == "Baseline.nrms"


def test_first_run_spec_has_no_baseline(compiled):
    spec = _pipeline_spec(compiled["json"])
    assert "inputDefinitions" not in spec["root"]
    assert "baseline_model" not in spec["root"]["dag"]["tasks"]["Evaluator.nrms"]["inputs"]["artifacts"]


def test_locations_pass_through_for_the_pods(compiled):
    with open(compiled["json"]) as f:
        job = json.load(f)
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"{OUTPUT_DIR}/pipeline"
    spec = job["pipelineSpec"]
    assert _parameter(spec, "ExampleGen.news", "input_base") == DATA_DIR
    assert _parameter(spec, "ImportSchemaGen.news", "schema_file") == "/usermodel-tfx/pipeline/schemas/news.pbtxt"
    push = json.loads(_parameter(spec, "Pusher.nrms", "push_destination"))
    assert push["filesystem"]["base_directory"] == f"{OUTPUT_DIR}/serving/nrms"


def test_kfp_loads_the_yaml_with_its_parameter(compiled):
    from kfp import components

    pipeline = components.load_component_from_file(compiled["yaml"])
    assert pipeline.component_spec.inputs["baseline_model_uri_nrms"].default == BASELINE_URI


def test_with_baseline_and_no_uri_the_parameter_is_required(tmp_path):
    result = kubeflow_runner.compile_pipeline(_config(), str(tmp_path / "p.yaml"), with_baseline=True)
    assert result.baseline_parameters == {"baseline_model_uri_nrms": None}
    assert _pipeline_spec(result.path)["root"]["inputDefinitions"]["parameters"] == {
        "baseline_model_uri_nrms": {"parameterType": "STRING"}
    }
    assert result.image == kubeflow_runner.DEFAULT_IMAGE


@pytest.mark.parametrize("baseline, node", [("resolver", "Resolver"), ("importer", "Importer"), ("none", None)])
def test_create_pipeline_baseline_options(tmp_path, baseline, node):
    config = configs.load_config("tiny", overrides={"output_dir": str(tmp_path)})
    components = {c.id: c for c in create_pipeline(config, {"news": str(tmp_path)}, baseline=baseline).components}
    assert type(components.get("Baseline.nrms")).__name__ == (node or "NoneType")
    assert set(components) - {"Baseline.nrms"} == COMPONENTS


def test_compile_cli_writes_the_spec(tmp_path, capsys):
    output = tmp_path / "spec" / "p.yaml"
    argv = ["compile", "--preset", "tiny", "--data-dir", DATA_DIR, "--output-dir", OUTPUT_DIR, "--output", str(output)]
    assert cli.main(argv + ["--baseline-uri", f"nrms={BASELINE_URI}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"Wrote Kubeflow Pipelines PipelineSpec (YAML) to {output}; every step runs in image usermodel-tfx:latest",
        f"Runtime parameter baseline_model_uri_nrms: default {BASELINE_URI}",
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "compile: --data-dir is required"),
        (["--data-dir", DATA_DIR, "--output-dir", "runs/x"], "compile: --output-dir runs/x is relative"),
        (["--data-dir", "data/mind", "--output-dir", OUTPUT_DIR], "compile: --data-dir data/mind is relative"),
        (["--data-dir", DATA_DIR, "--output-dir", OUTPUT_DIR, "--baseline-uri", "gs://m"],
         "--baseline-uri: expected MODEL=URI"),
        (["--data-dir", DATA_DIR, "--output-dir", OUTPUT_DIR, "--baseline-uri", "fum=gs://m"],
         "--baseline-uri: fum not among the models (nrms)"),
    ],
)
def test_compile_cli_mistakes_are_one_line_and_status_2(tmp_path, capsys, flags, message):
    assert cli.main(["compile", "--preset", "tiny", "--output", str(tmp_path / "p.json"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"usermodel: error: {message}"), err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_beam_runner_blesses_and_pushes(tmp_path):
    config = configs.load_config("tiny", overrides={"output_dir": str(tmp_path)})
    with open(tmp_path / "progress.txt", "w") as progress:
        summary = local_runner.run(config, out=progress, runner="beam")
    (result,) = summary.models
    assert result.blessed, result.failed_thresholds
    assert os.path.exists(os.path.join(result.pushed_path, "saved_model.pb"))
    assert os.path.dirname(result.pushed_path) == os.path.join(os.path.abspath(config.serving_root), "nrms")
    progress = (tmp_path / "progress.txt").read_text()
    assert "with BeamDagRunner" in progress
    for component in COMPONENTS | {"Baseline.nrms"}:  # the Launcher wrapper fires under Beam too
        assert f"✔ {component}" in progress, progress
    assert json.loads((tmp_path / "summary.json").read_text())["models"][0]["blessed"] is True


def test_compile_covers_the_ctr_and_tags_families_and_the_sibling_gate(tmp_path):
    """DIN's two gates and their combined blessing compile into tasks of the image, next to
    the CTR and tags families' own ingestion and Transform (tags: ml-1m with ml-10m tags)."""
    config = configs.load_config(
        "tiny", overrides={"output_dir": OUTPUT_DIR, "models": ["embedding_mlp", "din", "youtube_dnn"],
                           "families": {"tags": {"source_options": {"tags_dir": "/mnt/ml-10m-tags"}}}},
        data_dirs=["ctr=gs://bucket/ml-1m", "tags=/mnt/ml-1m"])
    path = kubeflow_runner.compile_pipeline(config, str(tmp_path / "ctr.yaml"), image=IMAGE).path
    spec = _pipeline_spec(path)
    tasks = spec["root"]["dag"]["tasks"]
    assert {"ExampleGen.ctr", "Transform.ctr", "Trainer.din", "Evaluator.din", "Compare.din", "Blessing.din",
            "Pusher.din", "Pusher.embedding_mlp", "ExampleGen.tags", "Transform.tags", "Trainer.youtube_dnn",
            "Evaluator.youtube_dnn", "Pusher.youtube_dnn"} <= set(tasks)
    assert _parameter(spec, "ExampleGen.tags", "tags_dir") == "/mnt/ml-10m-tags"
    assert "Compare.embedding_mlp" not in tasks
    assert set(tasks["Blessing.din"]["dependentTasks"]) == {"Trainer.din", "Evaluator.din", "Compare.din"}
    assert "Blessing.din" in tasks["Pusher.din"]["dependentTasks"]
    compare = json.loads(_parameter(spec, "Compare.din", "eval_config"))
    assert {m["class_name"] for m in compare["metrics_specs"][0]["metrics"]} >= {"GlobalAUC", "RelaImpr"}
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values() if "container" in e} == {IMAGE}
    relative = dataclasses.replace(config, families={
        **config.families, "tags": dataclasses.replace(config.families["tags"], source_options={"tags_dir": "tags"})})
    with pytest.raises(UserError, match="families.tags.source_options.tags_dir tags is relative"):
        kubeflow_runner.compile_pipeline(relative, str(tmp_path / "x.yaml"), image=IMAGE)


def test_compile_checks_only_the_source_options_that_are_locations():
    """`max_users: 1500` and `news_tags: entities` are values, not paths the pods must reach."""
    config = configs.load_config(
        "tiny", overrides={"output_dir": OUTPUT_DIR, "models": ["embedding_mlp", "youtube_dnn"],
                           "families": {"ctr": {"source_options": {"max_users": 1500}},
                                        "tags": {"source_options": {"max_users": "40", "tags_dir": "/mnt/tags"}}}},
        data_dirs=["ctr=gs://bucket/ml-1m", "tags=/mnt/ml-1m"])
    kubeflow_runner._check_locations(config)  # no error
