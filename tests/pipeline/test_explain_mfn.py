"""`usermodel explain mfn` below the CLI (`explain_user` on a tiny MFN with planted centers) and
the command's user mistakes. The command on a real trained run is in test_mfn_e2e.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import keras
import numpy as np
import pytest

from pipeline import cli, configs
from pipeline.explain import COMMANDS, heatmap
from pipeline.explain.mfn import explain_user
from trainer.ctr.models.mfn import MFN, MFNConfig

K, PER_TOPIC, H = 4, 3, 6
NUM_ITEMS, NUM_CATEGORIES, VOCAB = 2 + K * PER_TOPIC, 2 + K, 2 + 2 * K


def _topic(item: int) -> int:
    return (item - 2) // PER_TOPIC


def _catalogue() -> dict[str, np.ndarray]:
    """Item i of topic t: category 2 + t, title words 2 + 2t and 3 + 2t (rows 0, 1 empty)."""
    categories = np.zeros((NUM_ITEMS, 2), np.int32)
    words = np.zeros((NUM_ITEMS, 3), np.int32)
    for item in range(2, NUM_ITEMS):
        t = _topic(item)
        categories[item, 0] = 2 + t
        words[item, :2] = [2 + 2 * t, 3 + 2 * t]
    return {"categories": categories, "words": words}


def _planted(**overrides) -> MFN:
    """Fixed vectors: a topic's items and words point along the topic's axis; center k is that
    axis, so center k's nearest items and words are topic k's, and P assigns by topic."""
    keras.utils.set_random_seed(0)
    onehot = np.eye(8, dtype="float32") * 4.0
    item = np.zeros((NUM_ITEMS, 8), "float32")
    item[2:] = onehot[[_topic(i) for i in range(2, NUM_ITEMS)]]
    word = np.zeros((VOCAB, 8), "float32")
    word[2:] = onehot[[(w - 2) // 2 for w in range(2, VOCAB)]]
    fixed = {"item": item, "categories": np.zeros((NUM_CATEGORIES, 8), "float32"), "words": word}
    centers = {"category": np.eye(K, 16, dtype="float32"), "fine": np.eye(K, 8, dtype="float32")}
    config = MFNConfig.preset("tiny", **{"num_items": NUM_ITEMS, "num_categories": NUM_CATEGORIES,
                                         "vocab_size": VOCAB, "num_interests": K, **overrides})
    model = MFN(config, fixed_embeddings=fixed, centers=centers)
    model.build()
    return model


def _user(history: list[int]) -> dict[str, np.ndarray]:
    table = _catalogue()
    ids = np.zeros((1, H), np.int32)
    ids[0, : len(history)] = history
    return {"hist_item": ids, "hist_mask": (ids > 0).astype(np.float32),
            "hist_categories": table["categories"][ids], "hist_words": table["words"][ids]}


LABELS = ["", "(unknown item)"] + [f"item{i}-t{_topic(i)}" for i in range(2, NUM_ITEMS)]
WORDS = ["", "(unknown)"] + [f"w{w}-t{(w - 2) // 2}" for w in range(2, VOCAB)]
HISTORY = [2, 3, 8, 4, 11]  # topics 0, 0, 2, 0, 3; one padded slot


def test_centers_show_their_topic_and_weights_follow_the_model(tmp_path):
    model = _planted()
    inputs = _user(HISTORY)
    explanation = explain_user(model, inputs, _catalogue(), LABELS, WORDS, user="7", top=2)  # 2 words a topic
    assert explanation.history == [LABELS[i] for i in HISTORY]  # padding left out
    kinds = [(r.level, r.kind) for r in explanation.rows]
    assert kinds == [(lv, kd) for lv in ("category", "fine") for kd in ("similarity",) * K + ("combination",) * K]
    for row in explanation.rows:
        if row.kind == "similarity":
            tag = f"t{row.index}"
            assert len(row.center) == 2 and all(name.endswith(tag) for name in row.center), (row.label, row.center)
        else:
            assert row.center == [] and row.weights.sum() == pytest.approx(1.0, abs=1e-5)  # A: over the items
    sim = np.stack([r.weights for r in explanation.rows if r.level == "category" and r.kind == "similarity"])
    np.testing.assert_allclose(sim.sum(0), 1.0, rtol=1e-5)  # P: each item over the K centers
    assert [int(np.argmax(sim[:, j])) for j in range(len(HISTORY))] == [_topic(i) for i in HISTORY]
    # The rows are the weights the model makes its interests with: R_s = Pᵀ 𝓔, R_c = A 𝓔.
    parts = model.interests(inputs)
    history = keras.ops.convert_to_numpy(model._split(model._embed(inputs, "hist"))["fine"])[0, : len(HISTORY)]
    rows = {(r.level, r.kind, r.index): r.weights for r in explanation.rows}
    for kind in ("similarity", "combination"):
        expected = keras.ops.convert_to_numpy(parts["fine"][kind])[0]
        got = np.stack([rows["fine", kind, k] @ history for k in range(K)])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    table = explanation.markdown(top=2)
    assert table.count("\n| category sim") == K and "no center" in table and LABELS[8] in table
    path = heatmap.write_heatmap(tmp_path / "u.svg", explanation.matrix(), [r.label for r in explanation.rows],
                                 explanation.history)
    assert ET.parse(path).getroot().tag.endswith("svg") and explanation.matrix().shape == (4 * K, len(HISTORY))


def test_without_words_the_fine_centers_show_items():
    """No words (Taobao): the fine level's centers live in the fixed item-vector space, so their
    nearest entries are items (center k along topic k's axis: topic k's items)."""
    model = _planted(vocab_size=0)
    inputs = {k: v for k, v in _user(HISTORY).items() if k != "hist_words"}
    explanation = explain_user(model, inputs, {"categories": _catalogue()["categories"]}, LABELS, ["", "(unknown)"],
                               top=2)
    fine = [r for r in explanation.rows if r.level == "fine" and r.kind == "similarity"]
    assert len(fine) == K
    for row in fine:
        assert len(row.center) == 2 and all(name in LABELS and name.endswith(f"t{row.index}") for name in row.center)
    np.testing.assert_allclose(np.stack([r.weights for r in fine]).sum(0), 1.0, rtol=1e-5)


def test_ablation_without_combination_has_k_rows_per_level():
    explanation = explain_user(_planted(use_combination=False), _user(HISTORY[:2]), _catalogue(), LABELS, WORDS)
    assert [(r.level, r.kind) for r in explanation.rows] == [("category", "similarity")] * K + [("fine", "similarity")] * K
    assert explanation.matrix().shape == (2 * K, 2)


def test_command_is_registered_and_user_mistakes_are_one_line(tmp_path, capsys):
    assert "pipeline.explain.mfn" in COMMANDS
    assert cli.main(["explain", "mfn", "--output-dir", str(tmp_path / "nowhere"), "--user", "1"]) == 2
    assert "config.json not found" in capsys.readouterr().err
    config = configs.load_config("tiny", overrides={"models": ["embedding_mlp", "din"], "output_dir": str(tmp_path)})
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    assert cli.main(["explain", "mfn", "--output-dir", str(tmp_path), "--user", "1"]) == 2
    err = capsys.readouterr().err
    assert "trained no MFN model 'mfn'" in err and "embedding_mlp, din" in err and "Traceback" not in err
