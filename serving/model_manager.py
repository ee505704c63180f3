"""Version discovery, load → switch → unload, and per-version status for the serving root.

The Pusher writes ``<root>/<model>/<version>/`` (DESIGN.md §4), the layout TF Serving watches.
:class:`ModelManager` polls that tree the way TF Serving's file-system source does and keeps,
per model, the versions its :class:`VersionPolicy` asks for (the latest one by default):

* a new version is loaded *beside* the serving one, then requests switch to it with one
  reference swap, then the old one is unloaded once its in-flight requests have finished —
  so a swap never drops or fails a request;
* a version that fails to load is reported as ``END`` with its error in GetModelStatus and
  is not retried until its directory changes; whatever served before keeps serving.

Everything the request path needs about a signature (its concrete function and input/output
specs) is extracted once at load time, so Predict does no per-request reflection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401 — registers the tokenizer ops of the in-graph Transform (TF Serving links them too)
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

log = logging.getLogger("usermodel.serving")

SAVED_MODEL_FILE = "saved_model.pb"


class State:
    """ModelVersionStatus.State values (tensorflow_serving/apis/get_model_status.proto)."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve, as TF Serving's ``model_version_policy``.

    Attributes:
        latest: serve the N highest version numbers found on disk.
        specific: also serve exactly these versions (when present on disk).
        labels: version labels (e.g. ``{"stable": 3}``); a labelled version is always served.
    """

    latest: int = 1
    specific: tuple[int, ...] = ()
    labels: dict[str, int] = dataclasses.field(default_factory=dict)

    def wanted(self, on_disk: list[int]) -> set[int]:
        newest = sorted(on_disk)[-self.latest:] if self.latest > 0 else []
        pinned = set(self.specific) | set(self.labels.values())
        return set(newest) | (pinned & set(on_disk))


@dataclasses.dataclass(frozen=True)
class Signature:
    """One callable signature of a loaded version, with its specs resolved at load time."""

    name: str
    function: tf.types.experimental.ConcreteFunction
    inputs: dict[str, tf.TensorSpec]
    outputs: dict[str, tf.TensorSpec]


class Servable:
    """A loaded SavedModel version; counts in-flight requests so unloading can wait for them."""

    def __init__(self, model: str, version: int, path: str):
        self.model, self.version, self.path = model, version, path
        self._loaded = tf.saved_model.load(path)
        self.signature_defs = _signature_defs(path)
        self.signatures: dict[str, Signature] = {}
        for name, fn in self._loaded.signatures.items():
            _, kwargs = fn.structured_input_signature
            self.signatures[name] = Signature(name, fn, dict(kwargs), dict(fn.structured_outputs))
        self._in_flight = 0
        self._idle = threading.Condition()

    @contextmanager
    def use(self) -> Iterator[Servable]:
        with self._idle:
            self._in_flight += 1
        try:
            yield self
        finally:
            with self._idle:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def warm_up(self) -> None:
        """Runs each all-string signature once on a padding-only row, so the first real request
        after a swap does not pay TensorFlow's first-call graph optimisation. A model may reject
        such a row; that only skips its warm-up."""
        for sig in self.signatures.values():
            if not all(spec.dtype == tf.string for spec in sig.inputs.values()):
                continue
            args = {k: tf.constant(np.full([1] * max(spec.shape.rank or 1, 1), b"", object)) for k, spec in sig.inputs.items()}
            try:
                sig.function(**args)
            except (tf.errors.OpError, ValueError, TypeError) as err:
                log.info("warm-up of %s:%d/%s skipped: %s", self.model, self.version, sig.name, err)


def _signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDef protos as written in saved_model.pb (what GetModelMetadata returns)."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, SAVED_MODEL_FILE), "rb") as f:
        proto.ParseFromString(f.read())
    return {k: v for k, v in proto.meta_graphs[0].signature_def.items() if not k.startswith("__")}


@dataclasses.dataclass
class VersionStatus:
    """What GetModelStatus reports for one version."""

    version: int
    state: int
    error: str = ""
    error_code: int = 0  # a tensorflow.error.Code; 0 = OK


class ModelNotFound(LookupError):
    """Unknown model, version, label or signature (gRPC NOT_FOUND); the message names it."""


@dataclasses.dataclass
class _Model:
    """Per-model state: the serving versions (swapped as a whole dict) and statuses."""

    name: str
    policy: VersionPolicy
    serving: dict[int, Servable] = dataclasses.field(default_factory=dict)
    status: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    failed: dict[int, float] = dataclasses.field(default_factory=dict)  # version → mtime that failed


@dataclasses.dataclass(frozen=True)
class ManagerConfig:
    """Attributes:
    base_path: the serving root (``<root>/<model>/<version>/``).
    poll_interval_s: how often to look for new versions (TF Serving's
        ``--file_system_poll_wait_seconds``, default 1 s there as here).
    unload_grace_s: how long an old version may keep finishing in-flight requests.
    policies: per-model version policy; models not named get the default (latest 1).
    model_dirs: serve exactly these models from these directories (a TF Serving model config's
        ``name``/``base_path``); None: every model directory under base_path.
    warm_up: run each signature once after loading, before switching to it.
    """

    base_path: str
    poll_interval_s: float = 1.0
    unload_grace_s: float = 30.0
    policies: dict[str, VersionPolicy] = dataclasses.field(default_factory=dict)
    model_dirs: dict[str, str] | None = None
    warm_up: bool = True


class ModelManager:
    """Discovers, loads, switches and unloads model versions under the serving root."""

    def __init__(self, config: ManagerConfig):
        self.config = config
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()  # serialises polls; request lookups read dicts lock-free
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Loads what is on disk now (blocking), then keeps polling in the background."""
        self.poll()
        self._thread = threading.Thread(target=self._poll_loop, name="model-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.config.poll_interval_s):
            try:
                self.poll()
            except OSError as err:  # the root vanished or is unreadable for a moment
                log.warning("polling %s failed: %s", self.config.base_path, err)

    # ------------------------------------------------------------------ discovery
    def _model_names(self) -> list[str]:
        if self.config.model_dirs is not None:
            return sorted(self.config.model_dirs)
        root = self.config.base_path
        return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))

    def _versions_on_disk(self, model: str) -> dict[int, str]:
        """Numeric version directories that hold a SavedModel (TF Serving ignores the rest)."""
        root = (self.config.model_dirs or {}).get(model) or os.path.join(self.config.base_path, model)
        if not os.path.isdir(root):
            return {}
        found = {}
        for entry in os.listdir(root):
            path = os.path.join(root, entry)
            if entry.isdigit() and os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
                found[int(entry)] = path
        return found

    def poll(self) -> None:
        """One pass: load wanted versions not yet serving, switch, unload unwanted ones."""
        with self._lock:
            # Models known but gone from disk are synced too: their versions get unloaded.
            for name in sorted(set(self._model_names()) | set(self._models)):
                model = self._models.get(name)
                if model is None:
                    model = _Model(name, self.config.policies.get(name, VersionPolicy()))
                    self._models[name] = model
                self._sync(model)

    def _sync(self, model: _Model) -> None:
        on_disk = self._versions_on_disk(model.name)
        wanted = model.policy.wanted(list(on_disk))
        loaded: dict[int, Servable] = {}
        for version in sorted(wanted - set(model.serving), reverse=True):
            servable = self._load(model, version, on_disk[version])
            if servable is not None:
                loaded[version] = servable
        # A wanted version that failed to load must not take down what serves: keep the newest
        # serving versions in its place so the model stays available.
        keep = {v: s for v, s in model.serving.items() if v in wanted}
        serving = {**keep, **loaded}
        shortfall = min(model.policy.latest, len(wanted)) - len(serving)
        for v in sorted(set(model.serving) - set(serving), reverse=True)[: max(shortfall, 0)]:
            serving[v] = model.serving[v]
        retired = [s for v, s in model.serving.items() if v not in serving]
        model.serving = serving  # the switch: one reference assignment, seen by new requests
        for servable in retired:
            threading.Thread(target=self._unload, args=(model, servable), daemon=True).start()

    def _load(self, model: _Model, version: int, path: str) -> Servable | None:
        mtime = os.path.getmtime(path)
        if model.failed.get(version) == mtime:
            return None
        model.status[version] = VersionStatus(version, State.LOADING)
        started = time.monotonic()
        try:
            servable = Servable(model.name, version, path)
            if self.config.warm_up:
                servable.warm_up()
        except Exception as err:  # noqa: BLE001 — any load failure is reported, never fatal
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            code = err.error_code if isinstance(err, tf.errors.OpError) else tf.errors.UNKNOWN
            model.status[version] = VersionStatus(version, State.END, message, code)
            model.failed[version] = mtime
            log.error("loading %s version %d from %s failed: %s", model.name, version, path, message)
            return None
        model.failed.pop(version, None)
        model.status[version] = VersionStatus(version, State.AVAILABLE)
        log.info("loaded %s version %d (%.1f s)", model.name, version, time.monotonic() - started)
        return servable

    def _unload(self, model: _Model, servable: Servable) -> None:
        model.status[servable.version] = VersionStatus(servable.version, State.UNLOADING)
        if not servable.wait_idle(self.config.unload_grace_s):
            log.warning("%s version %d still busy after %.0f s; unloading anyway",
                        model.name, servable.version, self.config.unload_grace_s)
        model.status[servable.version] = VersionStatus(servable.version, State.END)
        log.info("unloaded %s version %d", model.name, servable.version)

    # ------------------------------------------------------------------ lookups
    def models(self) -> list[str]:
        return sorted(self._models)

    def resolve(self, model: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request: a given version, a labelled one, or the latest serving."""
        state = self._models.get(model)
        if state is None:
            raise ModelNotFound(f"model '{model}' not found; serving: {', '.join(self.models()) or 'none'}")
        serving = state.serving
        if label:
            if label not in state.policy.labels:
                raise ModelNotFound(f"version label '{label}' of model '{model}' not found")
            version = state.policy.labels[label]
        if version is None:
            if not serving:
                raise ModelNotFound(f"model '{model}' has no version available{self._why(state)}")
            return serving[max(serving)]
        if version not in serving:
            raise ModelNotFound(f"version {version} of model '{model}' is not available; "
                                f"serving: {sorted(serving) or 'none'}{self._why(state)}")
        return serving[version]

    @staticmethod
    def _why(state: _Model) -> str:
        errors = [f"version {s.version}: {s.error}" for s in state.status.values() if s.error]
        return f" ({'; '.join(errors)})" if errors else ""

    def status(self, model: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        """GetModelStatus: every version seen (or the one asked for), newest first."""
        state = self._models.get(model)
        if state is None:
            raise ModelNotFound(f"model '{model}' not found; serving: {', '.join(self.models()) or 'none'}")
        if label:
            if label not in state.policy.labels:
                raise ModelNotFound(f"version label '{label}' of model '{model}' not found")
            version = state.policy.labels[label]
        statuses = dict(state.status)
        if version is not None:
            if version not in statuses:
                raise ModelNotFound(f"version {version} of model '{model}' not found")
            return [statuses[version]]
        return [statuses[v] for v in sorted(statuses, reverse=True)]
