"""The batcher on its own: exact split-back, key separation, bounds, and error isolation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving.batching import Batcher, BatchingConfig, QueueFull


class _Recorder:
    """A run function that doubles `x` and records the batch sizes it saw."""

    def __init__(self):
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, inputs):
        with self._lock:
            self.batches.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2, "rows": np.arange(len(inputs["x"]))}


def _submit_all(batcher: Batcher, run, arrays: list[np.ndarray]):
    futures = [batcher.submit(Batcher.key("m", {"x": a}), run, {"x": a}, len(a)) for a in arrays]
    return [f.result(10) if f.exception(10) is None else f.exception() for f in futures]


def test_concurrent_requests_share_a_batch_and_get_their_own_rows_back():
    batcher = Batcher(BatchingConfig(max_batch_size=16, batch_timeout_micros=200_000, num_batch_threads=1))
    run = _Recorder()
    arrays = [np.arange(n, dtype=np.float32).reshape(n, 1) + 10 * i for i, n in enumerate([1, 3, 2, 4])]
    results = _submit_all(batcher, run, arrays)
    batcher.close()
    assert run.batches == [10]
    for a, r in zip(arrays, results):
        np.testing.assert_array_equal(r["y"], a * 2)
    assert [r["rows"].tolist() for r in results] == [[0], [1, 2, 3], [4, 5], [6, 7, 8, 9]]


def test_batches_never_exceed_max_batch_size():
    batcher = Batcher(BatchingConfig(max_batch_size=4, batch_timeout_micros=100_000, num_batch_threads=1))
    run = _Recorder()
    results = _submit_all(batcher, run, [np.ones((n, 1)) for n in [3, 2, 1, 2, 3]])
    batcher.close()
    assert all(b <= 4 for b in run.batches) and sum(run.batches) == 11
    assert all(not isinstance(r, Exception) for r in results)


def test_different_inner_shapes_or_dtypes_get_different_keys():
    a = {"x": np.zeros((2, 5), np.float32)}
    assert Batcher.key("m", a) == Batcher.key("m", {"x": np.ones((7, 5), np.float32)})
    assert Batcher.key("m", a) != Batcher.key("m", {"x": np.zeros((2, 6), np.float32)})
    assert Batcher.key("m", a) != Batcher.key("m", {"x": np.zeros((2, 5), np.float64)})
    assert Batcher.key("m", a) != Batcher.key("other", a)


def test_a_failing_request_fails_alone():
    batcher = Batcher(BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    run = _Recorder()
    results = _submit_all(batcher, run, [np.ones((1, 1)), -np.ones((1, 1)), np.full((2, 1), 3.0)])
    batcher.close()
    assert isinstance(results[1], ValueError)
    np.testing.assert_array_equal(results[0]["y"], [[2.0]])
    np.testing.assert_array_equal(results[2]["y"], [[6.0], [6.0]])


def test_outputs_that_are_not_batch_major_are_computed_per_request():
    batcher = Batcher(BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    total = lambda inputs: {"sum": np.array([inputs["x"].sum()])}  # noqa: E731 — one row, whatever the batch
    results = _submit_all(batcher, total, [np.ones((2, 1)), np.full((3, 1), 2.0)])
    batcher.close()
    assert [r["sum"].tolist() for r in results] == [[2.0], [6.0]]


def test_queue_bound_refuses_with_queue_full():
    batcher = Batcher(BatchingConfig(max_batch_size=2, batch_timeout_micros=10_000_000, max_enqueued_batches=1))
    run = _Recorder()
    first = batcher.submit("k", run, {"x": np.ones((1, 1))}, 1)
    with pytest.raises(QueueFull, match="queue full"):
        batcher.submit("k2", run, {"x": np.ones((2, 1))}, 2)
    batcher.close()  # runs what is queued
    np.testing.assert_array_equal(first.result(10)["y"], [[2.0]])
    with pytest.raises(QueueFull, match="shutting down"):
        batcher.submit("k", run, {"x": np.ones((1, 1))}, 1)


@pytest.mark.parametrize("field", ["max_batch_size", "max_enqueued_batches", "num_batch_threads"])
def test_config_is_validated(field):
    with pytest.raises(ValueError, match=field):
        BatchingConfig(**{field: 0}).validate()
