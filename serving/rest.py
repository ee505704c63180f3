"""TF Serving's REST API (the subset clients use), on the standard library's HTTP server.

* ``POST /v1/models/<model>[/versions/<n> | /labels/<label>]:predict`` with
  ``{"signature_name": ..., "instances": [...]}`` (row format → ``{"predictions": [...]}``) or
  ``{"inputs": {...}}`` (columnar → ``{"outputs": {...}}``). Strings are JSON strings, or
  ``{"b64": "..."}`` for bytes.
* ``GET /v1/models/<model>[/versions/<n>]`` → the model status, as TF Serving writes it;
* ``GET /v1/models/<model>[/versions/<n>]/metadata`` → the SignatureDefs; it answers 200 only
  when a version is AVAILABLE, so the Kubernetes readiness probe polls it.

Errors are ``{"error": message}`` with 400 (bad request), 404 (unknown model, version or
signature) or 429 (overload). It shares :class:`serving.predictor.Predictor` with gRPC, so both
give the same results and messages.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from serving.batching import QueueFull
from serving.model_manager import ModelNotFound, State
from serving.predictor import InvalidInput, Predictor

_PATH = re.compile(r"^/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<verb>:predict|/metadata)?$")
log = logging.getLogger("usermodel.serving")
_STATE_NAMES = {v: k for k, v in vars(State).items() if not k.startswith("_")}


def _from_json(name: str, value, spec: tf.TensorSpec) -> np.ndarray:
    def strings(x):
        if isinstance(x, list):
            return [strings(v) for v in x]
        if isinstance(x, dict) and set(x) == {"b64"}:
            return base64.b64decode(x["b64"])
        if isinstance(x, str):
            return x.encode()
        raise InvalidInput(f"input '{name}': expected strings, got {type(x).__name__}")

    try:
        if spec.dtype == tf.string:
            return np.array(strings(value), dtype=object)
        return np.array(value, dtype=spec.dtype.as_numpy_dtype)
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"input '{name}': {err}") from None


def _to_json(value: np.ndarray):
    if value.dtype == object and value.size:
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist()
    return value.tolist()


class _Handler(BaseHTTPRequestHandler):
    predictor: Predictor  # set on the subclass made per server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # access logs would flood the terminal under load
        pass

    def _reply(self, status: HTTPStatus, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, verbs: tuple[str | None, ...]):
        match = _PATH.match(self.path)
        if not match or match["verb"] not in verbs:
            raise ModelNotFound(f"no such endpoint: {self.command} {self.path}")
        version = int(match["version"]) if match["version"] else None
        return match["model"], version, match["label"], match["verb"]

    def _handle(self, fn) -> None:
        try:
            self._reply(HTTPStatus.OK, fn())
        except ModelNotFound as err:
            self._reply(HTTPStatus.NOT_FOUND, {"error": str(err)})
        except InvalidInput as err:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except QueueFull as err:
            self._reply(HTTPStatus.TOO_MANY_REQUESTS, {"error": str(err)})
        except Exception as err:  # noqa: BLE001 — a server fault is a 500 with its message, not a dropped connection
            log.error("internal error", exc_info=err)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})

    def do_GET(self) -> None:
        def status():
            model, version, label, verb = self._route((None, "/metadata"))
            if verb:
                servable = self.predictor.manager.resolve(model, version, label)
                return {"model_spec": {"name": model, "version": str(servable.version)},
                        "metadata": {"signature_def": {"signature_def": {
                            k: json_format.MessageToDict(v) for k, v in servable.signature_defs.items()}}}}
            statuses = self.predictor.manager.status(model, version, label)
            return {"model_version_status": [
                {"version": str(s.version), "state": _STATE_NAMES[s.state],
                 "status": {"error_code": "OK" if not s.error_code else str(s.error_code), "error_message": s.error}}
                for s in statuses]}
        self._handle(status)

    def do_POST(self) -> None:
        self._handle(self._predict)

    def _predict(self) -> dict:
        model, version, label, _ = self._route((":predict",))
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as err:
            raise InvalidInput(f"request body is not JSON: {err}") from None
        if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
            raise InvalidInput('request body must be a JSON object with exactly one of "instances" or "inputs"')
        servable = self.predictor.manager.resolve(model, version, label)
        sig = self.predictor.signature(servable, body.get("signature_name", ""))
        row_format = "instances" in body
        if row_format:
            inputs = self._instances(body["instances"], sig)
        else:
            columns = body["inputs"] if isinstance(body["inputs"], dict) else {_only(sig.inputs): body["inputs"]}
            inputs = {k: _from_json(k, v, sig.inputs[k]) if k in sig.inputs else np.array(v) for k, v in columns.items()}
        outputs = self.predictor.predict(servable, sig.name, inputs).outputs
        if not row_format:
            return {"outputs": {k: _to_json(v) for k, v in outputs.items()}}
        rows = len(next(iter(outputs.values())))
        if len(outputs) == 1:
            return {"predictions": _to_json(next(iter(outputs.values())))}
        return {"predictions": [{k: _to_json(np.asarray(v[i], v.dtype)) for k, v in outputs.items()}
                                for i in range(rows)]}

    @staticmethod
    def _instances(instances, sig) -> dict[str, np.ndarray]:
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list')
        if not all(isinstance(i, dict) for i in instances):
            name = _only(sig.inputs)
            return {name: _from_json(name, instances, sig.inputs[name])}
        names = set(instances[0])
        if any(set(i) != names for i in instances):
            raise InvalidInput('"instances": every instance must name the same inputs')
        return {k: _from_json(k, [i[k] for i in instances], sig.inputs[k]) if k in sig.inputs
                else np.array([]) for k in names}


def _only(inputs: dict) -> str:
    if len(inputs) != 1:
        raise InvalidInput(f"the signature has inputs {', '.join(sorted(inputs))}: name them")
    return next(iter(inputs))


class RestServer:
    """Serves the REST API on a background thread until `stop()`."""

    def __init__(self, predictor: Predictor, host: str, port: int):
        handler = type("Handler", (_Handler,), {"predictor": predictor})
        self._http = ThreadingHTTPServer((host, port), handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, name="rest", daemon=True)

    def start(self) -> RestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
