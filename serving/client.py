"""A typed client for the served model families, on the tensorflow-serving-api stubs.

It only uses TF Serving's public gRPC API (PredictionService, ModelService), so it works the
same against ``usermodel serve`` and a real ``tensorflow_model_server``. Helpers per family
(signature contracts in `trainer/signatures.py`, described in docs/serving.md):

* news ranking: :meth:`ServingClient.score_candidates`, :meth:`~ServingClient.encode_news`,
  :meth:`~ServingClient.encode_user`;
* tag profiling: :meth:`~ServingClient.top_tags`;
* CTR: :meth:`~ServingClient.pctr`; for models with cacheable interests (MFN)
  :meth:`~ServingClient.user_interests` and :meth:`~ServingClient.pctr_from_interests`.

Every call has a deadline; UNAVAILABLE (server restarting, connection refused) and
RESOURCE_EXHAUSTED (overload) are retried with exponential backoff, since they mean "not now";
every other error is raised at once as :class:`ServingError` with the server's message.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from trainer import signatures

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class ServingError(RuntimeError):
    """A failed RPC; `code` is the gRPC status code, the message is the server's."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """Attributes:
    target: ``host:port`` of the gRPC endpoint.
    timeout_s: deadline of each attempt.
    retries: further attempts after a retryable failure.
    backoff_s: wait before the first retry, doubled after each.
    """

    target: str = "localhost:8500"
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.05


@dataclasses.dataclass(frozen=True)
class Article:
    """Raw news content, as `encode_news` takes it."""

    title: str
    abstract: str = ""
    category: str = ""
    subcategory: str = ""
    entities: tuple[str, ...] = ()
    """Wikidata ids of the article's entities (MIND's `title_entities`, then `abstract_entities`)."""


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    version: int
    state: str
    error: str


def _strings(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """A [len(rows), widest] string matrix, right-padded with "" (padding in every contract)."""
    width = max((len(r) for r in rows), default=1) or 1
    out = np.full((len(rows), width), b"", dtype=object)
    for i, row in enumerate(rows):
        out[i, : len(row)] = [s.encode() for s in row]
    return out


def _vector(values: Sequence[str]) -> np.ndarray:
    return np.array([v.encode() for v in values], dtype=object)


class ServingClient:
    """One channel to a TF Serving-compatible server; thread-safe, reuse it across requests."""

    def __init__(self, config: ClientConfig = ClientConfig()):
        self.config = config
        self._channel = grpc.insecure_channel(config.target, options=[
            ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request):
        delay = self.config.backoff_s
        for attempt in range(self.config.retries + 1):
            try:
                return method(request, timeout=self.config.timeout_s)
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE or attempt == self.config.retries:
                    raise ServingError(err.code(), err.details() or "") from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    @staticmethod
    def _spec(spec, model: str, version: int | None, label: str | None, signature: str | None = None) -> None:
        spec.name = model
        if version is not None:
            spec.version.value = version
        if label:
            spec.version_label = label
        if signature:
            spec.signature_name = signature

    # ------------------------------------------------------------------ generic API
    def predict(self, model: str, signature: str, inputs: Mapping[str, np.ndarray], *,
                version: int | None = None, label: str | None = None) -> dict[str, np.ndarray]:
        """One Predict call; inputs and outputs are NumPy arrays (strings as bytes objects)."""
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label, signature)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self._predict.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def status(self, model: str, version: int | None = None) -> list[ModelVersion]:
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, None)
        response = self._call(self._models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [ModelVersion(s.version, states.Name(s.state), s.status.error_message)
                for s in response.model_version_status]

    def signatures(self, model: str, version: int | None = None) -> dict[str, object]:
        """The served SignatureDefs (``tensorflow.core.protobuf.meta_graph_pb2.SignatureDef``)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, None)
        response = self._call(self._predict.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return dict(signatures.signature_def)

    def _signature(self, model: str, signature: signatures.Signature, *inputs: np.ndarray,
                   **spec) -> dict[str, np.ndarray]:
        """Calls a contract signature (`trainer/signatures.py`) with its inputs in order."""
        return self.predict(model, signature.name, dict(zip(signature.input_names, inputs, strict=True)), **spec)

    # ------------------------------------------------------------------ news ranking
    def score_candidates(self, model: str, user_id: str, history: Sequence[str], candidates: Sequence[str],
                         **spec) -> list[tuple[str, float]]:
        """Scores candidate news ids for one user (history = clicked news ids, oldest first);
        returns (news id, score) best first."""
        if not candidates:
            return []
        out = self._signature(model, signatures.SCORE, _vector([user_id]), _strings([history]),
                              _strings([candidates]), **spec)
        scores = out["scores"][0, : len(candidates)]
        return sorted(zip(candidates, scores.tolist()), key=lambda p: -p[1])

    def encode_news(self, model: str, articles: Sequence[Article], **spec) -> np.ndarray:
        """News vectors [N, D] for raw articles (cacheable: they don't depend on the user)."""
        out = self._signature(
            model, signatures.ENCODE_NEWS, _vector([a.title for a in articles]),
            _vector([a.abstract for a in articles]), _vector([a.category for a in articles]),
            _vector([a.subcategory for a in articles]), _strings([list(a.entities) for a in articles]), **spec,
        )
        return out["news_vector"]

    def encode_user(self, model: str, user_id: str, history: Sequence[str], **spec) -> np.ndarray:
        """The user vector [D]; a news score is its dot product with the news vector."""
        out = self._signature(model, signatures.ENCODE_USER, _vector([user_id]), _strings([history]), **spec)
        return out["user_vector"][0]

    # ------------------------------------------------------------------ tag profiling
    def top_tags(self, model: str, user_id: str, history: Sequence[str], features: Sequence[str] = (),
                 k: int | None = None, among: str = "all", **spec) -> list[tuple[str, float]]:
        """A user's top tags, best first (at most `k`, at most the K the model was exported with).

        `features` are the user's categorical fields as ``"name=value"`` strings. `among`:
        ``"all"`` ranks every tag, ``"history"`` only the user's own history tags (UTPM's
        candidate selection, what the gate's prec@K ranks)."""
        if among not in ("all", "history"):
            raise ValueError(f"among: 'all' or 'history', got {among!r}")
        out = self._signature(model, signatures.USER_TAGS, _vector([user_id]), _strings([history]),
                              _strings([features]), **spec)
        prefix = "history_" if among == "history" else ""
        if f"{prefix}tag_ids" not in out:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"model {model!r} has no history tags in user_tags (exported before they existed): "
                               "export it again")
        tags = [(t.decode(), float(s)) for t, s in zip(out[f"{prefix}tag_ids"][0], out[f"{prefix}tag_scores"][0]) if t]
        return tags[:k] if k is not None else tags

    # ------------------------------------------------------------------ CTR
    def pctr(self, model: str, user_id: str, history: Sequence[str], targets: Sequence[str], **spec) -> np.ndarray:
        """Click probabilities [len(targets)] of target items for one user (one row per target)."""
        if not targets:
            return np.zeros([0], np.float32)
        rows = len(targets)
        out = self._signature(model, signatures.PCTR, _vector([user_id] * rows), _strings([history] * rows),
                              _vector(targets), **spec)
        return out["pctr"]

    def user_interests(self, model: str, user_id: str, history: Sequence[str], **spec) -> np.ndarray:
        """A user's interests `[D]` (MFN's `encode_user`): cache them, then score candidates with
        :meth:`pctr_from_interests` without sending the history again."""
        out = self._signature(model, signatures.ENCODE_INTERESTS, _vector([user_id]), _strings([history]), **spec)
        return out["interests"][0]

    def pctr_from_interests(self, model: str, interests: np.ndarray, candidates: Sequence[str], **spec) -> np.ndarray:
        """Click probabilities `[len(candidates)]` of candidate items against cached interests
        (from :meth:`user_interests`), all in one request; equal to :meth:`pctr`'s."""
        if not candidates:
            return np.zeros([0], np.float32)
        out = self._signature(model, signatures.PCTR_FROM_INTERESTS, np.asarray(interests, np.float32)[None],
                              _strings([candidates]), **spec)
        return out["pctr"][0, : len(candidates)]
