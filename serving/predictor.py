"""The Predict path shared by the gRPC and REST front ends: resolve, validate, batch, run.

Kept apart from the wire formats so both front ends give the same answers and the same
errors: every user mistake becomes an exception whose message names the model, signature,
input or output at fault, which the front end maps to its status code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from serving.batching import Batcher, BatchingConfig
from serving.model_manager import ModelManager, ModelNotFound, Servable, Signature

DEFAULT_SIGNATURE = "serving_default"


class InvalidInput(ValueError):
    """A request whose tensors don't fit the signature (gRPC INVALID_ARGUMENT)."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    servable: Servable
    signature: Signature
    outputs: dict[str, np.ndarray]


def _accepts(spec: tf.TensorSpec, value: np.ndarray) -> bool:
    if spec.dtype == tf.string:
        return value.dtype.kind in "OSU"
    return value.dtype == spec.dtype.as_numpy_dtype


class Predictor:
    """Runs Predict requests against the manager's servables, batching when configured."""

    def __init__(self, manager: ModelManager, batching: BatchingConfig | None):
        self.manager = manager
        self.batcher = Batcher(batching) if batching else None

    def close(self) -> None:
        if self.batcher:
            self.batcher.close()

    def signature(self, servable: Servable, name: str) -> Signature:
        sig = servable.signatures.get(name or DEFAULT_SIGNATURE)
        if sig is None:
            raise ModelNotFound(f"signature '{name or DEFAULT_SIGNATURE}' not found in model '{servable.model}' "
                                f"version {servable.version}; signatures: {', '.join(sorted(servable.signatures))}")
        return sig

    def predict(self, servable: Servable, signature: str, inputs: dict[str, np.ndarray],
                output_filter: tuple[str, ...] = ()) -> Prediction:
        """Runs one request on a servable from `manager.resolve` (resolved once per request, so a
        version switch mid-request cannot turn it into NOT_FOUND)."""
        with servable.use():
            sig = self.signature(servable, signature)
            rows = self.validate(sig, inputs)
            unknown = [k for k in output_filter if k not in sig.outputs]
            if unknown:
                raise InvalidInput(f"output_filter: '{unknown[0]}' is not an output of signature '{sig.name}'; "
                                   f"outputs: {', '.join(sorted(sig.outputs))}")
            run = lambda arrays: _call(sig, arrays)  # noqa: E731
            if self.batcher is None or rows is None:
                outputs = run(inputs)
            else:
                key = Batcher.key((servable.model, servable.version, id(servable), sig.name), inputs)
                outputs = self.batcher.submit(key, run, inputs, rows).result()
            if output_filter:
                outputs = {k: outputs[k] for k in output_filter}
            return Prediction(servable, sig, outputs)

    @staticmethod
    def validate(sig: Signature, inputs: dict[str, np.ndarray]) -> int | None:
        """Checks names, dtypes, shapes and a common first dimension; returns that batch size, or
        None when an input is a scalar (then the request is not batched)."""
        expected = ", ".join(f"{k} {spec.dtype.name} {spec.shape}" for k, spec in sorted(sig.inputs.items()))
        for name in inputs:
            if name not in sig.inputs:
                raise InvalidInput(f"input '{name}' is not an input of signature '{sig.name}'; expected: {expected}")
        for name, spec in sorted(sig.inputs.items()):
            if name not in inputs:
                raise InvalidInput(f"input '{name}' missing for signature '{sig.name}'; expected: {expected}")
            value = inputs[name]
            if not _accepts(spec, value):
                raise InvalidInput(f"input '{name}': expected dtype {spec.dtype.name}, got {value.dtype}")
            if not spec.shape.is_compatible_with(value.shape):
                raise InvalidInput(f"input '{name}': expected shape {spec.shape}, got {list(value.shape)}")
        rows = {k: v.shape[0] for k, v in inputs.items() if v.ndim}
        if len(set(rows.values())) > 1:
            # TF Serving's batching refuses these too; without the check a model may silently
            # broadcast one request's rows against another input's.
            raise InvalidInput("inputs disagree on the batch (first) dimension: "
                               + ", ".join(f"{k} {n}" for k, n in sorted(rows.items())))
        if not rows or len(rows) != len(inputs):
            return None
        return next(iter(rows.values()))


def _call(sig: Signature, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        outputs = sig.function(**{k: tf.constant(v) for k, v in arrays.items()})
    except tf.errors.InvalidArgumentError as err:
        raise InvalidInput(f"signature '{sig.name}': {err.message.splitlines()[0]}") from None
    return {k: v.numpy() for k, v in outputs.items()}
