"""MFN's cacheable interests through the project's server: `encode_user` once, then one
`pctr_from_interests` request for many candidates, equal to the `pctr` signature over gRPC, and
`usermodel query ... pctr --cached` / `interests`."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline import cli
from trainer.ctr import input as ctr_input
from trainer.ctr.export import export
from trainer.ctr.models import build_model

H = 5
RAW_IDS = [str(i) for i in range(100, 112)]  # item id = position + 2


@pytest.fixture(scope="module")
def mfn_root(tmp_path_factory) -> str:
    """<root>/mfn/1: a tiny untrained MFN over a 12-item vocabulary (seeded)."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("mfn_serving")
    vocab = root / "items"
    vocab.write_text("\n".join(RAW_IDS) + "\n")
    rng = np.random.default_rng(0)
    rows = len(RAW_IDS) + 2
    categories, words = rng.integers(2, 6, (rows, 2)).astype(np.int32), rng.integers(2, 9, (rows, 3)).astype(np.int32)
    categories[:2] = words[:2] = 0
    table = ctr_input.ItemTable({"categories": categories, "words": words})
    model = build_model("mfn", "tiny", num_items=rows, num_categories=6, vocab_size=9)
    model(ctr_input.to_model_inputs(tf.zeros([1, H], tf.int64), tf.constant([2], tf.int64), table, model.item_fields))
    export(model, str(vocab), table, H, str(root / "serving" / "mfn" / "1"))
    return str(root / "serving")


HISTORY = ["100", "103", "unknown-item", "107"]
CANDIDATES = ["101", "104", "110", "also-unknown", "100"]


def test_cached_interests_over_grpc_equal_pctr(mfn_root, start_server, client_for):
    client = client_for(start_server(mfn_root))
    interests = client.user_interests("mfn", "U1", HISTORY)
    assert interests.ndim == 1 and np.abs(interests).max() > 0
    cached = client.pctr_from_interests("mfn", interests, CANDIDATES)
    direct = client.pctr("mfn", "U1", HISTORY, CANDIDATES)
    assert cached.shape == (5,) and len(set(cached.tolist())) > 1
    np.testing.assert_allclose(cached, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(client.user_interests("mfn", "U2", []), 0.0)  # no history, no interest


def test_query_pctr_cached_and_interests(mfn_root, start_server, capsys):
    server = start_server(mfn_root)
    target = ["--target", f"127.0.0.1:{server.port}", "--model", "mfn", "--json"]
    rows = {}
    for mode in ([], ["--cached"]):
        assert cli.main(["query", *target, "pctr", "--history", *HISTORY, "--targets", *CANDIDATES, *mode]) == 0
        rows[bool(mode)] = json.loads(capsys.readouterr().out)
    assert [r["item_id"] for r in rows[True]] == CANDIDATES
    np.testing.assert_allclose([r["pctr"] for r in rows[True]], [r["pctr"] for r in rows[False]], rtol=1e-5)
    assert cli.main(["query", *target, "interests", "--history", *HISTORY]) == 0
    assert len(json.loads(capsys.readouterr().out)["interests"]) > 0
