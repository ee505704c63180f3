"""Tests for the CTR SavedModel (trainer/ctr/export.py): the exported signatures agree with
each other and with the Keras model on the trainer's inputs, and odd ids are scored.

A tiny untrained DIN (and MFN, for its cacheable interests) over an 8-item vocabulary file; raw
ids are the decimal strings the Transform's vocabulary holds (line i = item id i + 2). Raw eval
examples carry the user's train events with their ratings (``history_ratings``); ``serving_default``
keeps the clicked ones (the default `history: clicked`) or all of them (an export with
`history="all"`).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer import signatures
from trainer.ctr import input as ctr_input
from trainer.ctr.export import export
from trainer.ctr.models import build_model

H = 4
RAW_IDS = ["101", "205", "17", "3000", "42", "7", "999", "64"]  # item id = position + 2


def _table() -> ctr_input.ItemTable:
    rng = np.random.default_rng(0)
    categories = rng.integers(2, 6, (len(RAW_IDS) + 2, 2)).astype(np.int32)
    words = rng.integers(2, 9, (len(RAW_IDS) + 2, 3)).astype(np.int32)
    categories[:2] = words[:2] = 0
    return ctr_input.ItemTable({"categories": categories, "words": words})


def _export(root, name: str, **overrides):
    vocab = root / "items"
    vocab.write_text("\n".join(RAW_IDS) + "\n")
    table = _table()
    model = build_model(name, "tiny", **{"num_items": len(RAW_IDS) + 2, "num_categories": 6, "vocab_size": 9,
                                         **overrides})
    x = ctr_input.to_model_inputs(tf.zeros([2, H], tf.int64), tf.constant([2, 3], tf.int64), table, model.item_fields)
    model(x)  # builds, as training does
    export(model, str(vocab), table, H, str(root / name))
    return model, table, tf.saved_model.load(str(root / name))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """DIN exported twice: clicked histories (the default) and `history="all"`."""
    root = tmp_path_factory.mktemp("ctr_export")
    model, table, clicked = _export(root, "din")
    export(model, str(root / "items"), table, H, str(root / "din_all"), history="all")
    return model, table, clicked, tf.saved_model.load(str(root / "din_all"))


@pytest.fixture(scope="module", params=["mfn", "mfn_no_combination", "mfn without words"])
def exported_mfn(tmp_path_factory, request):
    """MFN, its ablation, and MFN on data without words (the fine level reads item ids)."""
    name, _, words = request.param.partition(" without ")
    overrides = {"vocab_size": 0} if words else {}
    return _export(tmp_path_factory.mktemp("mfn_export"), name, **overrides)


def _eval_example(history: list[int], history_ratings: list[float], items: list[int], ratings: list[float]) -> bytes:
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    floats = lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=v))  # noqa: E731
    feature = {"user_id": ints([1]), "item_ids": ints(items), "history_item_ids": ints(history),
               "history_ratings": floats(history_ratings), "ratings": floats(ratings)}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


USERS = [  # raw ids; more clicks than H, one empty history, one without clicks, unknown ids on both sides
    {"history": [101, 205, 17, 3000, 42, 7, 64], "history_ratings": [5.0, 4.0, 2.0, 4.5, 4.0, 1.0, 4.0],
     "items": [999, 64, 5555], "ratings": [4.0, 3.5, 5.0]},
    {"history": [], "history_ratings": [], "items": [17], "ratings": [1.0]},
    {"history": [64, 123456, 42], "history_ratings": [4.5, 4.0, 3.0], "items": [205, 101], "ratings": [4.5, 2.0]},
    {"history": [17, 42], "history_ratings": [1.0, 3.5], "items": [7], "ratings": [4.0]},
]


def _behaviours(user: dict, history: str = "clicked") -> list[int]:
    """The user's last H behaviours (raw ids), computed here from the raw example's fields."""
    return [i for i, r in zip(user["history"], user["history_ratings"]) if history == "all" or r >= 4.0][-H:]


def _to_id(raw) -> int:
    return RAW_IDS.index(str(raw)) + 2 if str(raw) in RAW_IDS else 1


def _keras_pctr(model, table, history: list[int], targets: list[int]) -> np.ndarray:
    """The Keras model's click probabilities on the trainer's ids."""
    ids = [_to_id(h) for h in history] + [0] * (H - len(history))
    x = ctr_input.to_model_inputs(tf.constant([ids] * len(targets), tf.int64),
                                  tf.constant([_to_id(t) for t in targets], tf.int64), table, model.item_fields)
    return tf.sigmoid(model(x, training=False)).numpy()


def test_serving_default_scores_each_eval_item_and_labels_mark_padding(exported):
    _, _, served, _ = exported
    examples = tf.constant([_eval_example(**u) for u in USERS])
    pctr = served.signatures["serving_default"](examples=examples)["pctr"].numpy()
    clicks = served.signatures["labels"](examples=examples)["clicks"].numpy()
    assert pctr.shape == clicks.shape == (4, 3)
    np.testing.assert_array_equal(clicks, [[1, 0, 1], [0, -1, -1], [1, 0, -1], [1, -1, -1]])
    assert ((pctr > 0) & (pctr < 1))[clicks >= 0].all() and (pctr[clicks < 0] == 0).all()


@pytest.mark.parametrize("history", ["clicked", "all"])
def test_served_predictions_equal_the_keras_model_on_the_behaviour_history(exported, history):
    """serving_default keeps the last H behaviours of the raw train events (clicked ones by
    default; a user without clicks gets an empty history), as the Transform does for the Trainer."""
    model, table, clicked, everything = exported
    served = clicked if history == "clicked" else everything
    by_user = served.signatures["serving_default"](examples=tf.constant([_eval_example(**u) for u in USERS]))
    by_user = by_user["pctr"].numpy()
    for i, user in enumerate(USERS):
        expected = _keras_pctr(model, table, _behaviours(user, history), user["items"])
        np.testing.assert_allclose(by_user[i, : len(user["items"])], expected, rtol=1e-5, atol=1e-6)
    assert _behaviours(USERS[0]) != _behaviours(USERS[0], "all") and not _behaviours(USERS[3])
    # The filter matters: user 1's scores differ between the two exports.
    other = (everything if history == "clicked" else clicked).signatures["serving_default"](
        examples=tf.constant([_eval_example(**USERS[0])]))["pctr"].numpy()
    assert np.abs(other[0] - by_user[0]).max() > 1e-6


def test_serving_default_scores_in_chunks_of_rows(exported, tmp_path, monkeypatch):
    """Rows are scored `SCORE_ROWS` at a time (bounded memory for TFMA's large batches): with
    chunks of 2 rows, which split users, the scores equal the default export's; a batch whose
    users have no eval item gives an empty [B, 0]."""
    from trainer.ctr import export as ctr_export

    model, table, served, _ = exported
    monkeypatch.setattr(ctr_export, "SCORE_ROWS", 2)
    (tmp_path / "items").write_text("\n".join(RAW_IDS) + "\n")
    export(model, str(tmp_path / "items"), table, H, str(tmp_path / "chunked"))
    chunked = tf.saved_model.load(str(tmp_path / "chunked"))
    examples = tf.constant([_eval_example(**u) for u in USERS])
    np.testing.assert_allclose(chunked.signatures["serving_default"](examples=examples)["pctr"].numpy(),
                               served.signatures["serving_default"](examples=examples)["pctr"].numpy(), rtol=1e-6)
    empty = tf.constant([_eval_example([17], [5.0], [], [])] * 3)
    assert chunked.signatures["serving_default"](examples=empty)["pctr"].shape == (3, 0)


def test_pctr_on_the_clicked_history_equals_serving_default(exported):
    """`pctr` takes the history as given: the clicked items reproduce serving_default's scores."""
    _, _, served, _ = exported
    by_user = served.signatures["serving_default"](examples=tf.constant([_eval_example(**u) for u in USERS]))
    by_user = by_user["pctr"].numpy()
    for i, user in enumerate(USERS):
        n, history = len(user["items"]), [str(h) for h in _behaviours(user)]
        history += [""] * (H - len(history))
        out = served.signatures["pctr"](
            user_id=tf.constant(["u"] * n), history=tf.constant([history] * n),
            target=tf.constant([str(t) for t in user["items"]]),
        )["pctr"].numpy()
        np.testing.assert_allclose(out, by_user[i, :n], rtol=1e-5, atol=1e-6)


def test_unknown_and_empty_ids_are_scored_not_crashed(exported):
    _, _, served, _ = exported
    out = served.signatures["pctr"](
        user_id=tf.constant(["nobody", "", "x"]),
        history=tf.constant([["not-a-number", "", "101"], ["", "", ""], ["", "17", ""]]),
        target=tf.constant(["I-unknown", "64", ""]),
    )["pctr"].numpy()
    assert np.isfinite(out).all() and (out[:2] > 0).all() and out[2] == 0.0  # an empty target scores 0
    # "" inside a history is padding: the same as the compacted history.
    compact = served.signatures["pctr"](
        user_id=tf.constant(["x"]), history=tf.constant([["17"]]), target=tf.constant(["64"]))["pctr"].numpy()
    padded = served.signatures["pctr"](
        user_id=tf.constant(["x"]), history=tf.constant([["", "17", ""]]), target=tf.constant(["64"]))["pctr"].numpy()
    np.testing.assert_allclose(compact, padded, rtol=1e-6)


def test_only_mfn_exports_the_cached_interest_signatures(exported, exported_mfn):
    ctr = {"serving_default", "labels", *(s.name for s in signatures.BY_FAMILY["ctr"])}
    assert set(exported[2].signatures) == ctr
    assert set(exported_mfn[2].signatures) == ctr | {s.name for s in signatures.CACHED_INTERESTS}


def test_scores_from_cached_interests_equal_pctr(exported_mfn):
    """`encode_user` once per user, then `pctr_from_interests` over N candidates per row, gives
    the `pctr` signature's probability of every (user, candidate); padded candidates score 0."""
    model, _, served = exported_mfn
    histories = [["101", "205", "17", "3000", "42", "7"], ["", "", "", "", "", ""], ["64", "I-unknown", "", "", "", ""]]
    candidates = [["999", "64", "5555", "17"], ["17", "", "", ""], ["205", "101", "not-an-id", ""]]
    interests = served.signatures["encode_user"](user_id=tf.constant(["a", "b", "c"]),
                                                 history=tf.constant(histories))["interests"]
    assert interests.shape == (3, model.interest_size)
    e, k = model.config.embedding_dim, model.config.num_interests  # category level 2e wide, fine level e
    assert model.interest_size == k * 3 * e * (2 if model.config.use_combination else 1)
    np.testing.assert_array_equal(interests.numpy()[1], 0.0)  # an empty history has no interest
    cached = served.signatures["pctr_from_interests"](interests=interests,
                                                      candidates=tf.constant(candidates))["pctr"].numpy()
    assert cached.shape == (3, 4)
    for i, (history, row) in enumerate(zip(histories, candidates)):
        direct = served.signatures["pctr"](user_id=tf.constant(["u"] * len(row)), history=tf.constant([history] * len(row)),
                                           target=tf.constant(row))["pctr"].numpy()
        np.testing.assert_allclose(cached[i], direct, rtol=1e-5, atol=1e-6)
    assert (cached[1, 1:] == 0).all() and cached[2, 3] == 0 and (cached[0] > 0).all()
