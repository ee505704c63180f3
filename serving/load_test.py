"""A closed-loop load generator for TF Serving-compatible servers (``usermodel bench serve``).

`concurrency` workers each send Predict requests back to back for `duration_s`, drawing the
signature from a weighted mix. Requests are built before the clock starts from the served
signatures (GetModelMetadata), so the generator measures the server, not protobuf building,
and works against any model family and against a real ``tensorflow_model_server``:

* ``[B]`` string inputs get one value, ``[B, N]`` string matrices get ``N`` ids (``history`` →
  `history`, ``candidates`` → `candidates`, others → `width`); ids and article text come from
  a MIND ``news.tsv`` when given (so news ids hit the model's tables), else synthetic ones;
* ``serving_default``'s ``examples`` get serialized impression tf.Examples of the same shape.

Latency is measured per request on the client (monotonic clock, send to response), after a
warm-up period that is not counted. The generator runs in its own process; on a 2-core machine
its CPU competes with the server's, which the report states.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections import Counter

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from components.errors import UserError


@dataclasses.dataclass(frozen=True)
class LoadConfig:
    """Attributes:
    target: ``host:port`` of the gRPC endpoint.
    model: model name.
    mix: signature → weight (e.g. ``{"score": 8, "encode_user": 1}``).
    concurrency: workers, each with one request in flight.
    duration_s: measured period.
    warmup_s: unmeasured period before it.
    history: ids per ``history`` row (the issue's target: 50 clicks).
    candidates: ids per ``candidates`` row (target: 100).
    width: ids per row of any other ``[B, N]`` string input.
    rows: rows (B) per request.
    timeout_s: deadline per request; a request past it counts as failed.
    news_tsv: MIND news.tsv for real news ids and text; None: synthetic ones.
    seed: request contents are deterministic given the seed.
    """

    target: str
    model: str
    mix: dict[str, float] = dataclasses.field(default_factory=lambda: {"score": 1.0})
    concurrency: int = 4
    duration_s: float = 10.0
    warmup_s: float = 2.0
    history: int = 50
    candidates: int = 100
    width: int = 8
    rows: int = 1
    timeout_s: float = 5.0
    news_tsv: str | None = None
    seed: int = 0


@dataclasses.dataclass
class LoadResult:
    """What one load run measured (latencies in milliseconds)."""

    config: LoadConfig
    requests: int
    errors: dict[str, int]
    seconds: float
    latencies_ms: dict[str, list[float]]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentiles(self, signature: str | None = None) -> dict[str, float]:
        values = [v for s, vs in self.latencies_ms.items() if signature in (None, s) for v in vs]
        if not values:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}

    def to_dict(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config), "requests": self.requests, "errors": self.errors,
            "seconds": self.seconds, "throughput_rps": self.throughput, "latency_ms": self.percentiles(),
            "by_signature": {s: {"requests": len(v), **self.percentiles(s)} for s, v in self.latencies_ms.items()},
        }


class _Corpus:
    """Ids and article text that requests are filled from."""

    def __init__(self, news_tsv: str | None, rng: random.Random):
        self.rng = rng
        self.news: list[list[str]] = []
        if news_tsv:
            if not os.path.isfile(news_tsv):
                raise UserError(f"--news-tsv: {news_tsv} not found")
            with open(news_tsv, encoding="utf-8") as f:
                self.news = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        if not self.news:
            self.news = [[f"N{i}", f"category{i % 7}", f"sub{i % 31}", f"title words {i}", f"abstract {i}"]
                         for i in range(1, 2001)]

    def ids(self, n: int) -> list[bytes]:
        return [self.rng.choice(self.news)[0].encode() for _ in range(n)]

    def value(self, name: str) -> bytes:
        article = self.rng.choice(self.news)
        column = {"category": 1, "subcategory": 2, "title": 3, "abstract": 4}.get(name)
        if column is not None and column < len(article):
            return article[column].encode()
        if name == "user_id":
            return f"U{self.rng.randrange(1, 1000)}".encode()
        return article[0].encode()


def _example(corpus: _Corpus, cfg: LoadConfig) -> bytes:
    features = {
        "user_id": [corpus.value("user_id")], "history": corpus.ids(cfg.history),
        "candidates": corpus.ids(cfg.candidates),
    }
    example = tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)) for k, v in features.items()}))
    return example.SerializeToString()


def build_requests(cfg: LoadConfig, signature_defs: dict, count: int = 64) -> dict[str, list[predict_pb2.PredictRequest]]:
    """`count` distinct requests per signature of the mix, shaped from its SignatureDef."""
    corpus = _Corpus(cfg.news_tsv, random.Random(cfg.seed))
    out = {}
    for name in cfg.mix:
        if name not in signature_defs:
            raise UserError(f"--mix: model '{cfg.model}' has no signature '{name}'; "
                            f"signatures: {', '.join(sorted(signature_defs))}")
        requests = []
        for _ in range(count):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = cfg.model
            request.model_spec.signature_name = name
            for key, info in signature_defs[name].inputs.items():
                rank = len(info.tensor_shape.dim)
                dtype = tf.dtypes.as_dtype(info.dtype)
                if key == "examples":
                    value = np.array([_example(corpus, cfg) for _ in range(cfg.rows)], dtype=object)
                elif dtype != tf.string:
                    value = np.zeros([cfg.rows] * min(rank, 1) + [cfg.width] * max(rank - 1, 0), dtype.as_numpy_dtype)
                elif rank <= 1:
                    value = np.array([corpus.value(key) for _ in range(cfg.rows)], dtype=object).reshape([cfg.rows] * rank or [])
                else:
                    n = {"history": cfg.history, "candidates": cfg.candidates}.get(key, cfg.width)
                    value = np.array([corpus.ids(n) for _ in range(cfg.rows)], dtype=object)
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            requests.append(request)
        out[name] = requests
    return out


def signature_defs(stub, model: str, timeout_s: float = 30.0) -> dict:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    response = stub.GetModelMetadata(request, timeout=timeout_s)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    return dict(defs.signature_def)


def run_load(cfg: LoadConfig) -> LoadResult:
    """Runs the closed loop and returns what it measured."""
    with grpc.insecure_channel(cfg.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            requests = build_requests(cfg, signature_defs(stub, cfg.model))
        except grpc.RpcError as err:
            raise UserError(f"--target {cfg.target}: {err.code().name}: {err.details()}") from None
        names = list(cfg.mix)
        weights = [cfg.mix[n] for n in names]
        start = time.monotonic() + cfg.warmup_s
        end = start + cfg.duration_s
        lock = threading.Lock()
        latencies: dict[str, list[float]] = {n: [] for n in names}
        errors: Counter[str] = Counter()

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            while (sent := time.monotonic()) < end:
                name = rng.choices(names, weights)[0]
                try:
                    stub.Predict(rng.choice(requests[name]), timeout=cfg.timeout_s)
                    failed = None
                except grpc.RpcError as err:
                    failed = err.code().name
                done = time.monotonic()
                if sent >= start:
                    with lock:
                        if failed:
                            errors[failed] += 1
                        else:
                            latencies[name].append((done - sent) * 1e3)

        threads = [threading.Thread(target=worker, args=(cfg.seed + i,)) for i in range(cfg.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ok = sum(len(v) for v in latencies.values())
    return LoadResult(cfg, ok, dict(errors), cfg.duration_s, latencies)


def parse_mix(text: str) -> dict[str, float]:
    """``"score=8,encode_user=1"`` → weights; a bare name has weight 1."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"--mix: bad weight in {part!r}; expected NAME=WEIGHT") from None
        if mix[name] <= 0:
            raise UserError(f"--mix: weight of {name} must be > 0")
    if not mix:
        raise UserError("--mix: give at least one signature, e.g. score=1")
    return mix

