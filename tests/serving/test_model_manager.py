"""Versions: hot swap under concurrent load, a corrupt version, requested versions and labels."""

from __future__ import annotations

import collections
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.model_manager import VersionPolicy
from tests.serving import saved_models
from tests.serving.conftest import add_version


def _wait_for(predicate, timeout_s: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _states(server, model: str) -> dict[int, str]:
    names = {10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}
    return {s.version: names[s.state] for s in server.manager.status(model)}


class _Load:
    """Threads sending one Predict request back to back until stopped; counts what came back."""

    def __init__(self, port: int, request: predict_pb2.PredictRequest, threads: int = 4):
        self.versions: collections.Counter[int] = collections.Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.versions[stub.Predict(request, timeout=30).model_spec.version.value] += 1
                except grpc.RpcError as err:
                    self.failures.append(f"{err.code().name}: {err.details()}")

        self._threads = [threading.Thread(target=run) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self._channel.close()


def _request(model: str, signature: str, inputs: dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    for k, v in inputs.items():
        request.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    return request


SCORE = _request("nrms", "score", {
    "user_id": np.array([b"U1"], dtype=object),
    "history": np.array([[n.encode() for n in saved_models.NEWS_IDS[:5]]], dtype=object),
    "candidates": np.array([[n.encode() for n in saved_models.NEWS_IDS[5:11]]], dtype=object),
})
PCTR = _request("ctr", "pctr", {"user_id": np.array([b"U1"], dtype=object),
                                "history": np.array([[b"I1", b"I2"]], dtype=object),
                                "target": np.array([b"I3"], dtype=object)})


def test_new_version_is_swapped_in_under_load_without_a_failed_request(serving_root, start_server):
    server = start_server(serving_root, model_dirs={"nrms": f"{serving_root}/nrms"})
    load = _Load(server.port, SCORE)
    try:
        _wait_for(lambda: load.versions[1] >= 20, what="requests on version 1")
        add_version(serving_root, "nrms", 2, f"{serving_root}/nrms/1")
        _wait_for(lambda: _states(server, "nrms") == {2: "AVAILABLE", 1: "END"}, what="the swap")
        seen = load.versions[2]
        _wait_for(lambda: load.versions[2] >= seen + 20, what="requests on version 2")
    finally:
        load.stop()
    assert load.failures == []
    assert load.versions[1] >= 20 and load.versions[2] >= 20


def test_corrupt_version_is_reported_and_the_previous_keeps_serving(serving_root, start_server, client_for, tmp_path):
    server = start_server(serving_root, model_dirs={"ctr": f"{serving_root}/ctr"})
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    load = _Load(server.port, PCTR, threads=2)
    try:
        add_version(serving_root, "ctr", 2, str(corrupt))
        _wait_for(lambda: _states(server, "ctr").get(2) == "END", what="version 2 to fail")
        time.sleep(0.5)  # a few more polls: the failed version is not retried, v1 keeps serving
    finally:
        load.stop()
    assert load.failures == [] and set(load.versions) == {1}
    status = {v.version: v for v in client_for(server).status("ctr")}
    assert status[1].state == "AVAILABLE"
    assert status[2].state == "END" and status[2].error  # the load error, for the operator

    # A good version after the bad one is picked up as usual.
    add_version(serving_root, "ctr", 3, f"{serving_root}/ctr/1")
    _wait_for(lambda: _states(server, "ctr").get(3) == "AVAILABLE", what="version 3")
    _wait_for(lambda: _states(server, "ctr").get(1) == "END", what="version 1 to unload")
    assert client_for(server).pctr("ctr", "U1", ["I1"], ["I2"]).shape == (1,)


def test_requested_version_and_label(serving_root, start_server, client_for, tmp_path):
    other = tmp_path / "ctr-v2"
    saved_models.export_contract(saved_models.CtrContract(buckets=89), str(other))
    add_version(serving_root, "ctr", 2, str(other))
    server = start_server(serving_root, model_dirs={"ctr": f"{serving_root}/ctr"},
                          policies={"ctr": VersionPolicy(latest=1, labels={"stable": 1})})
    client = client_for(server)
    args = ("ctr", "U1", ["I1", "I2"], ["I3", "I4"])
    latest, v1, stable = client.pctr(*args), client.pctr(*args, version=1), client.pctr(*args, label="stable")
    v2 = client.pctr(*args, version=2)
    np.testing.assert_array_equal(latest, v2)
    np.testing.assert_array_equal(stable, v1)
    assert not np.allclose(v1, v2)  # two different models, so the versions are told apart
    assert _states(server, "ctr") == {2: "AVAILABLE", 1: "AVAILABLE"}


@pytest.mark.parametrize(("policy", "on_disk", "wanted"), [
    (VersionPolicy(), [3, 1, 2], {3}),
    (VersionPolicy(latest=2), [3, 1, 2], {2, 3}),
    (VersionPolicy(latest=0, specific=(1, 5)), [3, 1, 2], {1}),
    (VersionPolicy(labels={"stable": 1}), [3, 1, 2], {1, 3}),
    (VersionPolicy(), [], set()),
])
def test_version_policy(policy, on_disk, wanted):
    assert policy.wanted(on_disk) == wanted


def test_a_removed_version_is_unloaded_and_the_next_newest_serves(serving_root, start_server, client_for):
    add_version(serving_root, "ctr", 2, f"{serving_root}/ctr/1")
    server = start_server(serving_root, model_dirs={"ctr": f"{serving_root}/ctr"})
    assert _states(server, "ctr") == {2: "AVAILABLE"}
    shutil.rmtree(f"{serving_root}/ctr/2")  # e.g. a bad push rolled back by hand
    _wait_for(lambda: _states(server, "ctr") == {2: "END", 1: "AVAILABLE"}, what="the roll-back")
    assert client_for(server).pctr("ctr", "U1", ["I1"], ["I2"]).shape == (1,)
