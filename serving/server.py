"""A gRPC server speaking TF Serving's API (tensorflow-serving-api protos) for the serving root.

Implements PredictionService ``Predict`` and ``GetModelMetadata`` and ModelService
``GetModelStatus``; the other methods answer UNIMPLEMENTED, as the generated base classes do.
Clients written against real TF Serving (``serving/client.py`` among them) work unchanged.

Status codes follow TF Serving: unknown model, version, label or signature → NOT_FOUND;
tensors that don't fit the signature → INVALID_ARGUMENT; a full batching queue or too many
concurrent RPCs → RESOURCE_EXHAUSTED. ``stop()`` shuts down gracefully: new RPCs are refused,
in-flight ones finish (within the grace period), then batching and version polling stop.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.batching import BatchingConfig, QueueFull
from serving.model_manager import ManagerConfig, ModelManager, ModelNotFound
from serving.predictor import InvalidInput, Predictor

log = logging.getLogger("usermodel.serving")

MAX_MESSAGE_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Attributes:
    port: gRPC port (TF Serving's default 8500; 0 picks a free one).
    host: interface to bind; tests and benchmarks use 127.0.0.1.
    rest_port: REST port (TF Serving's default 8501); None serves no REST.
    grpc_threads: RPC handler threads; they mostly wait on batches, so more than the cores.
    max_concurrent_rpcs: RPCs beyond this are refused with RESOURCE_EXHAUSTED.
    batching: server-side batching, or None to run each request on its own.
    shutdown_grace_s: how long in-flight RPCs may finish on shutdown.
    """

    port: int = 8500
    host: str = "0.0.0.0"
    rest_port: int | None = None
    grpc_threads: int = 32
    max_concurrent_rpcs: int = 256
    batching: BatchingConfig | None = dataclasses.field(default_factory=BatchingConfig)
    shutdown_grace_s: float = 10.0


def _abort(context: grpc.ServicerContext, err: Exception) -> None:
    code = {
        ModelNotFound: grpc.StatusCode.NOT_FOUND,
        InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
        QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    }.get(type(err), grpc.StatusCode.INTERNAL)
    message = str(err)
    if code == grpc.StatusCode.INTERNAL:
        log.error("internal error", exc_info=err)
        message = f"{type(err).__name__}: {err}"
    context.abort(code, message)


def _spec_version(spec) -> tuple[int | None, str | None]:
    version = spec.version.value if spec.HasField("version") else None
    return version, (spec.version_label or None)


def _input_array(name: str, proto, expected: tf.TensorSpec) -> np.ndarray:
    if proto.dtype != expected.dtype.as_datatype_enum:
        got = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "DT_INVALID"
        raise InvalidInput(f"input '{name}': expected dtype {expected.dtype.name}, got {got}")
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"input '{name}': malformed TensorProto: {err}") from None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        try:
            version, label = _spec_version(request.model_spec)
            servable = self.predictor.manager.resolve(request.model_spec.name, version, label)
            sig = self.predictor.signature(servable, request.model_spec.signature_name)
            inputs = {}
            for name, proto in request.inputs.items():
                if name not in sig.inputs:
                    raise InvalidInput(f"input '{name}' is not an input of signature '{sig.name}'; "
                                       f"expected: {', '.join(sorted(sig.inputs))}")
                inputs[name] = _input_array(name, proto, sig.inputs[name])
            result = self.predictor.predict(servable, sig.name, inputs, tuple(request.output_filter))
        except Exception as err:  # noqa: BLE001 — every failure becomes a status code, never a hang-up
            _abort(context, err)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = result.servable.model
        response.model_spec.version.value = result.servable.version
        response.model_spec.signature_name = result.signature.name
        for name, value in result.outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise InvalidInput(f"metadata_field: only 'signature_def' is supported, got {list(request.metadata_field)}")
            servable = self.predictor.manager.resolve(request.model_spec.name, *_spec_version(request.model_spec))
        except (ModelNotFound, InvalidInput) as err:
            _abort(context, err)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, sig_def in servable.signature_defs.items():
            signatures.signature_def[name].CopyFrom(sig_def)
        packed = any_pb2.Any()
        packed.Pack(signatures)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.model
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        try:
            statuses = self.manager.status(request.model_spec.name, *_spec_version(request.model_spec))
        except ModelNotFound as err:
            _abort(context, err)
        response = get_model_status_pb2.GetModelStatusResponse()
        for s in statuses:
            entry = response.model_version_status.add(version=s.version, state=s.state)
            entry.status.error_code = s.error_code
            entry.status.error_message = s.error
        return response


class Server:
    """The gRPC (and optional REST) front ends over one model manager."""

    def __init__(self, manager_config: ManagerConfig, config: ServerConfig):
        self.config = config
        self.manager = ModelManager(manager_config)
        self.predictor = Predictor(self.manager, config.batching)
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.grpc_threads, thread_name_prefix="grpc"),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.so_reuseport", 0)],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(self.predictor), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.manager), self._grpc)
        self.port = 0
        self.rest = None
        self._stopped = False

    def start(self) -> Server:
        """Binds the ports (failing fast if taken), loads the models on disk, then serves;
        `port` (and `rest.port`) hold the bound ports."""
        address = f"{self.config.host}:{self.config.port}"
        try:
            self.port = self._grpc.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {address} (in use?)")
        if self.config.rest_port is not None:
            from serving.rest import RestServer

            try:
                self.rest = RestServer(self.predictor, self.config.host, self.config.rest_port)
            except OSError as err:
                raise OSError(f"cannot bind REST port {self.config.host}:{self.config.rest_port}: {err.strerror}") from None
        self.manager.start()
        self._grpc.start()
        if self.rest:
            self.rest.start()
        return self

    def stop(self) -> None:
        """Graceful: refuse new RPCs, let in-flight ones finish, then stop batching and polling."""
        if self._stopped:
            return
        self._stopped = True
        if self.rest:
            self.rest.stop()
        self._grpc.stop(self.config.shutdown_grace_s).wait()
        self.predictor.close()
        self.manager.stop()

    def wait(self) -> None:
        self._grpc.wait_for_termination()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
