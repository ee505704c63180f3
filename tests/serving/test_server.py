"""The server over real gRPC on loopback: predictions of every family, parity with in-process
SavedModel calls for every signature, metadata, status, error codes, overload and shutdown."""

from __future__ import annotations

import dataclasses
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_service_pb2_grpc

from serving.batching import BatchingConfig
from serving.client import Article, ClientConfig, ServingClient, ServingError
from tests.serving import saved_models
from trainer import signatures as contract

NEWS = saved_models.NEWS_IDS


def _strings(rows) -> np.ndarray:
    return np.array([[s.encode() for s in r] for r in rows], dtype=object)


def _vector(values) -> np.ndarray:
    return np.array([v.encode() for v in values], dtype=object)


def _concurrently(fn, items) -> None:
    """Calls `fn(item)` for every item, each on its own thread, and waits for all."""
    threads = [threading.Thread(target=fn, args=(item,)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _example(features: dict[str, list[str]]) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[x.encode() for x in v]))
        for k, v in features.items()})).SerializeToString()


ARTICLES = saved_models.news_rows()

# One request per signature of every model (two rows each, with "" padding where it is allowed).
NEWS_REQUESTS = {
    "score": {"user_id": _vector(["U1", "U-unknown"]),
              "history": _strings([NEWS[:4], [NEWS[5], ""] + [""] * 2]),
              "candidates": _strings([[NEWS[6], NEWS[7], NEWS[8]], [NEWS[1], "N-unknown", ""]])},
    "encode_news": {**{k: _vector([a[k] for a in ARTICLES[:3]]) for k in ("title", "abstract", "category", "subcategory")},
                    "entities": _strings([["Q1", "Q2"], ["", ""], ["Q3", ""]])},
    "encode_user": {"user_id": _vector(["U1", "U2"]), "history": _strings([NEWS[:3], NEWS[3:6]])},
    "serving_default": {"examples": np.array([
        _example({"user_id": ["U1"], "history": NEWS[:3], "candidates": NEWS[4:7]}),
        _example({"user_id": ["U2"], "history": NEWS[2:4], "candidates": NEWS[8:11]})], dtype=object)},
}
REQUESTS = {
    **{(model, sig): inputs for model in saved_models.NEWS_MODELS for sig, inputs in NEWS_REQUESTS.items()},
    ("ctr", "pctr"): {"user_id": _vector(["U1", "U2"]), "history": _strings([["I1", "I2", ""], ["I3", "I4", "I5"]]),
                      "target": _vector(["I9", "I2"])},
    ("ctr", "serving_default"): {"examples": np.array([
        _example({"user_id": ["U1"], "history": ["I1", "I2"], "target": ["I9"]}),
        _example({"user_id": ["U2"], "history": ["I3"], "target": ["I2"]})], dtype=object)},
    ("tags", "user_tags"): {"user_id": _vector(["U1", "U2"]), "history": _strings([["I1", "I2"], ["I3", ""]]),
                            "features": _strings([["age=30", "gender=f"], ["age=50", ""]])},
    ("tags", "serving_default"): {"examples": np.array([
        _example({"user_id": ["U1"], "history": ["I1", "I2"], "features": ["age=30", "gender=f"]}),
        _example({"user_id": ["U2"], "history": ["I3"], "features": ["age=50"]})], dtype=object)},
}


@pytest.fixture(scope="module")
def server(model_root):
    """One server for the tests that only read (default batching), stopped after the module."""
    from serving.model_manager import ManagerConfig
    from serving.server import Server, ServerConfig

    with Server(ManagerConfig(model_root), ServerConfig(port=0, host="127.0.0.1")) as running:
        yield running


def test_every_signature_of_every_family_is_covered(model_root):
    for model in (*saved_models.NEWS_MODELS, "ctr", "tags"):
        loaded = tf.saved_model.load(f"{model_root}/{model}/1")
        assert {s for m, s in REQUESTS if m == model} == set(loaded.signatures), model


@pytest.mark.parametrize(("model", "signature"), list(REQUESTS))
def test_grpc_predictions_equal_in_process_savedmodel(model_root, server, client_for, model, signature):
    inputs = REQUESTS[(model, signature)]
    served = client_for(server).predict(model, signature, inputs)
    expected = tf.saved_model.load(f"{model_root}/{model}/1").signatures[signature](
        **{k: tf.constant(v) for k, v in inputs.items()})
    assert set(served) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(served[name], value.numpy(), err_msg=f"{model}/{signature}/{name}")


def test_typed_helpers_for_each_family(server, client_for):
    client = client_for(server)
    ranked = client.score_candidates("nrms", "U1", NEWS[:4], [NEWS[6], NEWS[7], "N-unknown"])
    assert sorted(n for n, _ in ranked) == sorted([NEWS[6], NEWS[7], "N-unknown"])
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)

    articles = [Article(a["title"], a["abstract"], a["category"], a["subcategory"]) for a in ARTICLES[6:8]]
    news = client.encode_news("nrms", articles)
    user = client.encode_user("nrms", "U1", NEWS[:4])
    assert news.shape == (2, user.shape[0])
    # The cacheable property through the server: score = user vector · news vector.
    np.testing.assert_allclose(news @ user, [dict(ranked)[NEWS[6]], dict(ranked)[NEWS[7]]], rtol=1e-4, atol=1e-6)

    tags = client.top_tags("tags", "U1", ["I1", "I2"], ["age=30"], k=3)
    assert len(tags) == 3 and all(t.startswith("tag") for t, _ in tags)
    assert [s for _, s in tags] == sorted((s for _, s in tags), reverse=True)
    own = client.top_tags("tags", "U1", ["I1", "I2"], ["age=30"], among="history")
    assert {t for t, _ in own} == {"tag0", "tag1", "tag2", "tag3"}  # the stand-in's "history tags"
    assert [s for _, s in own] == sorted((s for _, s in own), reverse=True)

    probs = client.pctr("ctr", "U1", ["I1", "I2"], ["I9", "I2", "I3"])
    assert probs.shape == (3,) and ((probs > 0) & (probs < 1)).all()
    assert len(set(probs.tolist())) == 3


@pytest.mark.parametrize("model, family", [("nrms", "news"), ("fum", "news"), ("lstur", "news"),
                                           ("ctr", "ctr"), ("tags", "tags")])
def test_served_signatures_follow_the_contract(server, client_for, model, family):
    """Every served model exports exactly its family's signatures of `trainer/signatures.py`."""
    served = client_for(server).signatures(model)
    expected = (contract.SERVING_DEFAULT, *contract.BY_FAMILY[family])
    assert set(served) == {s.name for s in expected}
    for signature in expected:
        got = served[signature.name]
        assert set(got.inputs) == set(signature.input_names)
        for spec in signature.inputs:
            assert [d.size for d in got.inputs[spec.name].tensor_shape.dim] == [-1 if n is None else n for n in spec.shape]
        if signature.outputs:
            assert set(got.outputs) == set(signature.output_names)


def test_status_reports_the_served_version(server, client_for):
    client = client_for(server)
    (status,) = client.status("nrms")
    assert (status.version, status.state, status.error) == (1, "AVAILABLE", "")


def _code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(ServingError) as err:
        fn()
    return err.value.code, str(err.value)


def test_error_codes_for_bad_requests(server, client_for):
    client = client_for(server, retries=0)
    score = REQUESTS[("nrms", "score")]
    nf = grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.predict("nope", "score", score)) == (nf, "NOT_FOUND: model 'nope' not found; serving: ctr, fum, lstur, nrms, tags")
    code, msg = _code(lambda: client.predict("nrms", "score", score, version=7))
    assert code == nf and "version 7" in msg
    code, msg = _code(lambda: client.predict("nrms", "score", score, label="canary"))
    assert code == nf and "label 'canary'" in msg
    code, msg = _code(lambda: client.predict("nrms", "rank", score))
    assert code == nf and "signature 'rank'" in msg
    code, _ = _code(lambda: client.status("nope"))
    assert code == nf

    bad = grpc.StatusCode.INVALID_ARGUMENT
    cases = {
        "input 'history' missing": {k: v for k, v in score.items() if k != "history"},
        "input 'clicks' is not an input": {**score, "clicks": score["history"]},
        "input 'user_id': expected dtype string, got float": {**score, "user_id": np.zeros(2, np.float32)},
        "input 'history': expected shape (None, None), got [2]": {**score, "history": _vector(["a", "b"])},
    }
    for message, inputs in cases.items():
        code, msg = _code(lambda: client.predict("nrms", "score", inputs))
        assert code == bad and message in msg, msg
    # Rows that disagree between inputs would be broadcast silently by the model: refused.
    ragged = {**score, "user_id": _vector(["U1"])}
    code, msg = _code(lambda: client.predict("nrms", "score", ragged))
    assert code == bad and "batch (first) dimension: candidates 2, history 2, user_id 1" in msg
    # An error raised inside the model is INVALID_ARGUMENT too, with the model's message.
    code, msg = _code(lambda: client.predict("nrms", "serving_default", {"examples": _vector(["not a proto"])}))
    assert code == bad and "signature 'serving_default'" in msg


def test_output_filter(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "nrms", "score"
        for k, v in REQUESTS[("nrms", "score")].items():
            request.inputs[k].CopyFrom(tf.make_tensor_proto(v))
        request.output_filter.append("scores")
        response = stub.Predict(request, timeout=10)
        assert set(response.outputs) == {"scores"} and response.model_spec.version.value == 1
        request.output_filter.append("logits")
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'logits'" in err.value.details()


def test_a_server_fault_is_internal_with_its_message(model_root, start_server, client_for):
    server = start_server(model_root, model_dirs={"ctr": f"{model_root}/ctr"})
    signatures = server.manager.resolve("ctr").signatures

    def boom(**_):
        raise RuntimeError("disk on fire")

    signatures["pctr"] = dataclasses.replace(signatures["pctr"], function=boom)
    code, msg = _code(lambda: client_for(server, retries=0).pctr("ctr", "U1", ["I1"], ["I2"]))
    assert code == grpc.StatusCode.INTERNAL and "RuntimeError: disk on fire" in msg


def test_overload_is_resource_exhausted(model_root, start_server, client_for):
    """With the one batch thread busy and the queue at its bound, a request is refused at once."""
    server = start_server(model_root, BatchingConfig(max_batch_size=1, batch_timeout_micros=0,
                                                     max_enqueued_batches=1, num_batch_threads=1),
                          model_dirs={"ctr": f"{model_root}/ctr"})
    release = threading.Event()
    blocked = lambda _inputs: release.wait(10) and {"x": np.zeros(1)}  # noqa: E731
    one = {"x": np.zeros(1)}
    busy = server.predictor.batcher.submit("held", blocked, one, 1)
    deadline = time.monotonic() + 5
    while not busy.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = server.predictor.batcher.submit("held", blocked, one, 1)  # fills the bound of 1 row
    try:
        client = client_for(server, retries=0)
        code, msg = _code(lambda: client.predict("ctr", "pctr", REQUESTS[("ctr", "pctr")]))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in msg
    finally:
        release.set()
    assert busy.result(10) and queued.result(10)
    # And the client's retries ride out a short overload.
    assert client_for(server, retries=3).pctr("ctr", "U1", ["I1"], ["I2"]).shape == (1,)


def test_concurrent_requests_are_batched_and_split_back_exactly(model_root, start_server, client_for):
    server = start_server(model_root, BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000),
                          model_dirs={"ctr": f"{model_root}/ctr"})
    client = client_for(server)
    users = [f"U{i}" for i in range(8)]
    results: dict[str, np.ndarray] = {}

    def call(user: str) -> None:
        results[user] = client.pctr("ctr", user, ["I1", "I2"], ["I3", "I4"])

    _concurrently(call, users)
    pctr = tf.saved_model.load(f"{model_root}/ctr/1").signatures["pctr"]
    for user in users:
        expected = pctr(user_id=tf.constant([user] * 2), history=tf.constant([["I1", "I2"]] * 2),
                        target=tf.constant(["I3", "I4"]))["pctr"].numpy()
        np.testing.assert_allclose(results[user], expected, rtol=1e-6)


def test_batched_news_scores_equal_single_calls(model_root, start_server, client_for):
    """Concurrent `score` requests of one shape share a batch; each gets exactly its own scores."""
    server = start_server(model_root, BatchingConfig(max_batch_size=8, batch_timeout_micros=300_000),
                          model_dirs={"fum": f"{model_root}/fum"})
    client = client_for(server)
    signatures = server.manager.resolve("fum").signatures
    original, batch_sizes = signatures["score"].function, []

    def spy(**inputs):
        batch_sizes.append(int(inputs["user_id"].shape[0]))
        return original(**inputs)

    signatures["score"] = dataclasses.replace(signatures["score"], function=spy)
    users = {f"U{i}": (NEWS[i:i + 4], [NEWS[(i + 5 + j) % 12] for j in range(3)]) for i in range(6)}
    results: dict[str, dict] = {}

    def call(user: str) -> None:
        history, candidates = users[user]
        results[user] = client.predict("fum", "score", {"user_id": _vector([user]), "history": _strings([history]),
                                                        "candidates": _strings([candidates])})

    _concurrently(call, users)
    score = tf.saved_model.load(f"{model_root}/fum/1").signatures["score"]
    for user, (history, candidates) in users.items():
        expected = score(user_id=tf.constant([user]), history=tf.constant([history]),
                         candidates=tf.constant([candidates]))
        np.testing.assert_array_equal(results[user]["scores"], expected["scores"].numpy(), err_msg=user)
    assert sum(batch_sizes) == 6 and max(batch_sizes) > 1, batch_sizes  # they were batched


def test_graceful_shutdown_finishes_in_flight_requests(model_root, start_server, client_for):
    # A long batch timeout keeps the request queued while the server is asked to stop.
    server = start_server(model_root, BatchingConfig(max_batch_size=64, batch_timeout_micros=500_000),
                          model_dirs={"ctr": f"{model_root}/ctr"})
    client = client_for(server, retries=0)
    result = {}
    worker = threading.Thread(target=lambda: result.update(p=client.pctr("ctr", "U1", ["I1"], ["I2"])))
    worker.start()
    time.sleep(0.2)
    server.stop()
    worker.join(10)
    assert result["p"].shape == (1,)
    code, _ = _code(lambda: client.status("ctr"))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_works_unchanged_against_real_tf_serving(model_root, tmp_path):
    """Same client and parity against tensorflow_model_server when it is installed."""
    import shutil
    import subprocess

    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip("tensorflow_model_server is not on PATH (it cannot be installed here; see docs/serving.md)")
    from serving import deploy

    config = tmp_path / "models.config"
    models = [*saved_models.NEWS_MODELS, "ctr", "tags"]
    config.write_text(deploy.model_server_config(models, model_root))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([binary, f"--port={port}", f"--model_config_file={config}"])
    try:
        client = ServingClient(ClientConfig(f"127.0.0.1:{port}", retries=20, backoff_s=0.5))
        deadline = time.monotonic() + 120
        while not all(any(v.state == "AVAILABLE" for v in _status_or_empty(client, m)) for m in models):
            assert time.monotonic() < deadline, "tensorflow_model_server did not load the models"
            time.sleep(0.5)
        for (model, signature), inputs in REQUESTS.items():
            served = client.predict(model, signature, inputs)
            expected = tf.saved_model.load(f"{model_root}/{model}/1").signatures[signature](
                **{k: tf.constant(v) for k, v in inputs.items()})
            for name, value in expected.items():
                np.testing.assert_allclose(served[name], value.numpy(), rtol=1e-5) if value.dtype != tf.string \
                    else np.testing.assert_array_equal(served[name], value.numpy())
        client.close()
    finally:
        process.terminate()
        process.wait(30)


def _status_or_empty(client: ServingClient, model: str):
    try:
        return client.status(model)
    except ServingError:
        return []


def test_status_proto_states_are_tf_servings():
    states = get_model_status_pb2.ModelVersionStatus.State
    from serving.model_manager import State

    assert {k: v for k, v in vars(State).items() if not k.startswith("_")} == {
        k: states.Value(k) for k in ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")}
