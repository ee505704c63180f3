"""Deployment config generation, the REST API, and `usermodel serve` / `query` / `bench serve`."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from components.errors import UserError
from pipeline import cli
from serving import deploy
from serving.batching import BatchingConfig
from serving.model_manager import VersionPolicy
from tests.serving import saved_models

NEWS = saved_models.NEWS_IDS
REPO = pathlib.Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- config files
def test_model_config_round_trips_through_tf_servings_proto(tmp_path):
    policies = {"nrms": VersionPolicy(latest=2, labels={"stable": 3}), "ctr": VersionPolicy(latest=0, specific=(4,))}
    path = tmp_path / "models.config"
    path.write_text(deploy.model_server_config(["nrms", "ctr"], "/models", policies))
    dirs, read = deploy.read_model_config(str(path))
    assert dirs == {"nrms": "/models/nrms", "ctr": "/models/ctr"}
    assert read == policies


def test_batching_parameters_round_trip_and_errors(tmp_path):
    config = BatchingConfig(max_batch_size=16, batch_timeout_micros=500, max_enqueued_batches=8, num_batch_threads=2)
    path = tmp_path / "batching.config"
    path.write_text(deploy.batching_parameters(config))
    assert deploy.read_batching_parameters(str(path)) == config
    path.write_text("max_batch_size { value: 16 }\nallowed_batch_sizes: 4\n")
    with pytest.raises(UserError, match="unsupported line 'allowed_batch_sizes: 4'"):
        deploy.read_batching_parameters(str(path))
    path.write_text("max_batch_size { value: 0 }\n")
    with pytest.raises(UserError, match="max_batch_size must be >= 1"):
        deploy.read_batching_parameters(str(path))


def test_checked_in_manifests_match_the_generator_and_the_tensorflow_release():
    with open(os.path.join(deploy.K8S_DIR, "models.config")) as f:
        assert f.read() == deploy.model_server_config(["nrms"])
    with open(os.path.join(deploy.K8S_DIR, "batching.config")) as f:
        assert f.read() == deploy.batching_parameters(BatchingConfig())
    with open(os.path.join(deploy.K8S_DIR, "deployment.yaml")) as f:
        deployment = f.read()
    (tag,) = re.findall(r"image: tensorflow/serving:(\S+)", deployment)
    assert tag.split(".")[:2] == tf.__version__.split(".")[:2]  # TF Serving pinned to the training TF
    assert deploy.PROBE_PATH in deployment


def test_write_deployment_from_a_serving_root(model_root, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert cli.main(["serve", "--model-base-path", model_root, "--write-deployment", str(out)]) == 0
    assert "kubectl apply -k" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["batching.config", "deployment.yaml", "kustomization.yaml", "models.config",
                                       "service.yaml"]
    dirs, _ = deploy.read_model_config(str(out / "models.config"))
    assert dirs == {m: f"/models/{m}" for m in ("ctr", "fum", "lstur", "nrms", "tags")}
    assert "path: /v1/models/ctr/metadata" in (out / "deployment.yaml").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["serve", "--model-base-path", "/no/such/root"], "--model-base-path: /no/such/root is not a directory"),
    (["serve", "--model-base-path", ".", "--poll-interval", "0"], "--poll-interval: must be > 0 seconds, got 0.0"),
    (["serve", "--model-base-path", ".", "--batching-parameters-file", "/no/such.config"],
     "--batching-parameters-file: /no/such.config not found"),
    (["query", "--target", "127.0.0.1:1", "--timeout", "1", "status"], "--target 127.0.0.1:1: UNAVAILABLE"),
    (["bench", "serve", "--target", "127.0.0.1:1", "--mix", "score=x"], "--mix: bad weight in 'score=x'"),
])
def test_cli_mistakes_are_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usermodel: error: {message}") and err.count("\n") == 1, err


def test_serve_on_a_taken_port_is_one_line_and_exit_2(model_root, start_server, capsys):
    server = start_server(model_root, model_dirs={"ctr": f"{model_root}/ctr"})
    argv = ["serve", "--model-base-path", model_root, "--host", "127.0.0.1", "--port", str(server.port)]
    assert cli.main(argv + ["--rest-port", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == f"usermodel: error: --port/--rest-port: cannot bind gRPC port 127.0.0.1:{server.port} (in use?)\n"


def test_usermodel_serve_process_reads_tf_serving_config_and_stops_gracefully_on_sigterm(model_root, tmp_path):
    """The real command in its own process: models.config + batching.config in, SIGTERM out."""
    from serving.client import ClientConfig, ServingClient, ServingError

    config = tmp_path / "models.config"
    config.write_text(deploy.model_server_config(["ctr"], model_root,
                                                 {"ctr": VersionPolicy(labels={"stable": 1})}))
    batching = tmp_path / "batching.config"
    batching.write_text(deploy.batching_parameters(BatchingConfig(max_batch_size=4)))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--model-base-path", model_root, "--host", "127.0.0.1",
         "--port", "0", "--rest-port", "-1", "--model-config-file", str(config),
         "--batching-parameters-file", str(batching)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line = process.stdout.readline()
        assert line.startswith("Serving ctr (1 AVAILABLE)"), line
        port = int(line.rsplit(":", 1)[1])
        with ServingClient(ClientConfig(f"127.0.0.1:{port}")) as client:
            assert client.pctr("ctr", "U1", ["I1"], ["I2"], label="stable").shape == (1,)
            with pytest.raises(ServingError, match="model 'nrms' not found"):  # only the configured model
                client.status("nrms")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert "Stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------- query / bench
def test_query_commands_against_a_running_server(model_root, start_server, capsys):
    server = start_server(model_root)
    target = ["--target", f"127.0.0.1:{server.port}"]
    assert cli.main(["query", *target, "--json", "score", "--user", "U1", "--history", *NEWS[:3],
                     "--candidates", *NEWS[5:9]]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert sorted(r["news_id"] for r in ranked) == sorted(NEWS[5:9])
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)

    assert cli.main(["query", *target, "--model", "tags", "tags", "--user", "U1", "--history", "I1", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["tag", "score"] and len(lines) == 3
    assert cli.main(["query", *target, "--model", "tags", "tags", "--history", "I1", "--among", "history"]) == 0
    assert {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]} == {"tag0", "tag1", "tag2", "tag3"}
    assert cli.main(["query", *target, "--model", "ctr", "pctr", "--history", "I1", "--targets", "I2", "I3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert cli.main(["query", *target, "encode-news", "--title", "storm news"]) == 0
    assert capsys.readouterr().out.startswith("news_vector (")
    assert cli.main(["query", *target, "status"]) == 0
    assert "AVAILABLE" in capsys.readouterr().out
    assert cli.main(["query", *target, "--model", "nope", "status"]) == 2
    assert "--model nope: NOT_FOUND" in capsys.readouterr().err


def test_bench_serve_reports_throughput_and_latency(model_root, start_server, tmp_path, capsys):
    server = start_server(model_root)
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "serve", "--target", f"127.0.0.1:{server.port}", "--model", "nrms",
                     "--concurrency", "2", "--duration", "1", "--warmup", "0.2", "--history", "5",
                     "--candidates", "4", "--mix", "score=3,encode_user=1", "--json", str(out)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| 127.0.0.1:{server.port}")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2" and float(cells[2]) > 0 and cells[-1] == "0"
    (result,) = json.loads(out.read_text())
    assert result["errors"] == {} and set(result["by_signature"]) == {"score", "encode_user"}
    p = result["latency_ms"]
    assert 0 < p["p50"] <= p["p95"] <= p["p99"]


FAKE_TF_SERVING = """#!{python}
# Stands in for tensorflow_model_server: maps its flags onto `usermodel serve`, so the test
# checks what `bench serve` passes to the real binary (flags and generated config files).
import os, sys
flags = dict(a[2:].split("=", 1) for a in sys.argv[1:])
config = flags.pop("model_config_file")
cmd = ["-m", "pipeline.cli", "serve", "--model-base-path", os.path.dirname(config), "--host", "127.0.0.1",
       "--port", flags.pop("port"), "--rest-port", "-1", "--model-config-file", config]
if flags.pop("enable_batching", "false") == "true":
    cmd += ["--batching-parameters-file", flags.pop("batching_parameters_file")]
assert not flags, flags
os.chdir({repo!r})
os.execv(sys.executable, [sys.executable] + cmd)
"""


def test_bench_serve_also_runs_against_tensorflow_model_server_when_on_path(model_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    shutil.copytree(f"{model_root}/ctr", root / "ctr")
    binary = tmp_path / "bin" / "tensorflow_model_server"
    binary.parent.mkdir()
    binary.write_text(FAKE_TF_SERVING.format(python=sys.executable, repo=str(REPO)))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    assert cli.main(["bench", "serve", "--model-base-path", str(root), "--model", "ctr", "--mix", "pctr=1",
                     "--concurrency", "1", "--duration", "0.5", "--warmup", "0.1"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [(r[1].strip(), r[-2].strip()) for r in rows[1:]] == [("usermodel", "0"), ("tensorflow_model_server", "0")]


def test_load_requests_have_the_asked_shapes(model_root):
    from serving import load_test
    from serving.model_manager import Servable

    defs = Servable("nrms", 1, f"{model_root}/nrms/1").signature_defs
    cfg = load_test.LoadConfig(target="", model="nrms", mix={"score": 1, "serving_default": 1})
    requests = load_test.build_requests(cfg, defs, count=2)
    score = requests["score"][0].inputs
    assert [tf.make_ndarray(score[k]).shape for k in ("user_id", "history", "candidates")] == [(1,), (1, 50), (1, 100)]
    (example,) = tf.make_ndarray(requests["serving_default"][0].inputs["examples"])
    assert len(tf.train.Example.FromString(example).features.feature["candidates"].bytes_list.value) == 100
    with pytest.raises(UserError, match="no signature 'rank'"):
        load_test.build_requests(load_test.LoadConfig(target="", model="nrms", mix={"rank": 1}), defs)


# ---------------------------------------------------------------------------- REST
def _http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_rest_predict_status_and_metadata(model_root, start_server):
    server = start_server(model_root, rest=True)
    base = f"http://127.0.0.1:{server.rest.port}/v1/models"
    history, candidates = NEWS[:3], NEWS[5:8]
    code, body = _http("POST", f"{base}/nrms:predict", {
        "signature_name": "score", "instances": [{"user_id": "U1", "history": history, "candidates": candidates}]})
    assert code == 200
    expected = tf.saved_model.load(f"{model_root}/nrms/1").signatures["score"](
        user_id=tf.constant(["U1"]), history=tf.constant([history]), candidates=tf.constant([candidates]))
    np.testing.assert_allclose(body["predictions"][0]["scores"], expected["scores"].numpy()[0], rtol=1e-6)

    code, body = _http("POST", f"{base}/tags/versions/1:predict", {
        "signature_name": "user_tags",
        "inputs": {"user_id": ["U1"], "history": [["I1", "I2"]], "features": [[{"b64": "YWdlPTMw"}]]}})
    assert code == 200 and len(body["outputs"]["tag_ids"][0]) == 5 and body["outputs"]["tag_ids"][0][0].startswith("tag")

    assert _http("GET", f"{base}/nrms") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    code, body = _http("GET", f"{base}/nrms/metadata")
    assert code == 200 and set(body["metadata"]["signature_def"]["signature_def"]) == {
        "serving_default", "score", "encode_news", "encode_user"}

    code, body = _http("POST", f"{base}/nope:predict", {"instances": [1]})
    assert code == 404 and "model 'nope' not found" in body["error"]
    code, body = _http("POST", f"{base}/nrms:predict", {"signature_name": "score", "instances": [{"user_id": 3}]})
    assert code == 400 and "input 'user_id': expected strings" in body["error"]
    code, body = _http("POST", f"{base}/nrms:predict", {"signature_name": "score", "inputs": {"user_id": ["U1"]}})
    assert code == 400 and "input 'candidates' missing" in body["error"]
