"""MFN's interest-centers pre-step (components/interest_centers.py, trainer/ctr/centers.py) on a
real tiny Transform output, and MFN's Trainer hook reading its artifact.

No `from __future__ import annotations`: the module defining the component is imported here.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ctr_transform import SEQUENCES, TRANSFORM, artifacts, item_table
from tfx.types import standard_artifacts

from components.errors import UserError
from components.interest_centers import InterestCenters, InterestCentersArtifact
from trainer import word_vectors
from trainer.ctr import centers as ctr_centers
from trainer.ctr import export as ctr_export
from trainer.ctr import input as ctr_input
from trainer.ctr import run as ctr_run
from trainer.ctr.config import CLICK_RATING, CTRTrainingConfig, CTRTransformConfig
from trainer.ctr.models.interests import CenterFitConfig, fit_interest_centers
from trainer.ctr.preprocessing import ITEM_VOCAB, WORD_VOCAB

K = 4  # MFNConfig.num_interests


def _artifact(cls, uri, **properties):
    artifact = cls()
    artifact.uri = uri
    for key, value in properties.items():
        setattr(artifact, key, value)
    return artifact


def run_executor(out_dir: str, seed: int, words: bool = True) -> str:
    """The component's executor, as TFX calls it (`words=False`: on the data without titles)."""
    uris = artifacts(words)
    inputs = {
        "transformed_examples": [_artifact(standard_artifacts.Examples, uris["examples"],
                                           split_names='["train", "items"]')],
        "transform_graph": [_artifact(standard_artifacts.TransformGraph, uris["transform_graph"])],
        "auxiliary_model": [_artifact(standard_artifacts.Model, uris["model"])],
    }
    outputs = {"centers": [_artifact(InterestCentersArtifact, out_dir)]}
    params = {"transform_config": json.dumps(TRANSFORM), "num_interests": K, "steps": 60, "batch_size": 4,
              "learning_rate": 0.05, "seed": seed, "word_vectors": "glove-6b-50d", "max_users": 1000}
    InterestCenters.EXECUTOR_SPEC.executor_class().Do(inputs, outputs, params)
    return out_dir


@pytest.fixture(scope="module")
def centers_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("centers")
    return run_executor(str(root / "a"), 0), run_executor(str(root / "b"), 1)


def test_artifact_holds_the_auxiliary_tables_glove_and_fitted_centers(centers_dirs):
    fixed, centers = ctr_centers.load(centers_dirs[0])
    tft_output = tft.TFTransformOutput(artifacts()["transform_graph"])
    sizes = ctr_run.model_sizes(tft_output)
    assert fixed["item"].shape == (sizes["num_items"], 8) and fixed["categories"].shape == (sizes["num_categories"], 8)
    assert fixed["words"].shape == (sizes["vocab_size"], 50)
    assert centers["category"].shape == (K, 16) and centers["fine"].shape == (K, 50)
    served = tf.saved_model.load(os.path.join(artifacts()["model"], "Format-Serving"))
    # The model's own name may carry a suffix (Keras numbers models built in one process).
    by_path = {v.name.partition("/")[2]: v.numpy() for v in served.variables}
    np.testing.assert_array_equal(fixed["item"], by_path["item_embedding/item_embedding/embeddings:0"])
    np.testing.assert_array_equal(fixed["categories"], by_path["item_embedding/categories_embedding/embeddings:0"])
    words = [w.decode() for w in tft_output.vocabulary_by_name(WORD_VOCAB)]
    np.testing.assert_array_equal(fixed["words"], word_vectors.aligned_matrix(words, "glove-6b-50d", seed=0).matrix)
    index, glove = word_vectors.load("glove-6b-50d")
    np.testing.assert_array_equal(fixed["words"][2 + words.index("love")], glove[index["love"]])
    summary = json.loads(open(os.path.join(centers_dirs[0], ctr_centers.SUMMARY_FILE)).read())
    assert summary["users"] == summary["users_used"] == 5  # user 5's only train event is no click
    for level in ("category", "fine"):
        loss = summary["levels"][level]
        assert loss["loss_end"] < loss["loss_start"], (level, loss)  # Algorithm 1 ran


@pytest.mark.parametrize("history", ["clicked", "all"])
def test_user_histories_follow_the_transform_history_definition(history):
    """Each user's last H train behaviours, as the Transform builds an eval user's history."""
    uris = artifacts()
    tft_output = tft.TFTransformOutput(uris["transform_graph"])
    vocab = [int(v) for v in tft_output.vocabulary_by_name(ITEM_VOCAB)]
    files = tf.io.gfile.glob(os.path.join(uris["examples"], "Split-train", "*"))
    cfg = CTRTransformConfig.from_dict({**TRANSFORM, "history": history})
    histories, users = ctr_centers.user_histories(files, tft_output.transformed_feature_spec(), cfg, 1000, 0)
    expected = []
    for items, ratings in SEQUENCES.values():
        kept = [i for i, r in zip(items, ratings) if history == "all" or r >= CLICK_RATING][-cfg.history_length:]
        if kept:  # a user without a behaviour is left out (user 5 with `clicked`)
            ids = [vocab.index(i) + 2 if i in vocab else 1 for i in kept]
            expected.append(ids + [0] * (cfg.history_length - len(ids)))
    assert users == len(expected) == (5 if history == "clicked" else 6)
    np.testing.assert_array_equal(histories, expected)


def test_behaviours_are_the_models_fixed_vectors_with_padding_masked():
    """History of user 1 (the last H=4 clicks of 10 30 50 10 30: 10 30 10 30): item vector ⊕
    mean real-category vector."""
    uris = artifacts()
    tft_output = tft.TFTransformOutput(uris["transform_graph"])
    table = item_table(tft_output, uris["examples"])
    files = tf.io.gfile.glob(os.path.join(uris["examples"], "Split-train", "*"))
    cfg = CTRTransformConfig.from_dict(TRANSFORM)
    histories, users = ctr_centers.user_histories(files, tft_output.transformed_feature_spec(), cfg, 1000, 0)
    assert users == 5 and histories.shape == (5, 4)
    assert (histories[1, 2:] == 0).all() and (histories[1, :2] > 1).all()  # user 2: two clicks, then padding
    rng = np.random.default_rng(0)
    tables = {"item": rng.normal(size=(table.num_items, 3)), "categories": rng.normal(size=(20, 3))}
    vectors, mask = ctr_centers.behaviour_vectors(tables, histories, table)
    np.testing.assert_array_equal(mask, histories != 0)
    item, cats = histories[0, 1], table.fields["categories"][histories[0, 1]]
    real = cats[cats != 0]
    expected = np.concatenate([tables["item"][item], tables["categories"][real].mean(0)])
    np.testing.assert_allclose(vectors["category"][0, 1], expected, rtol=1e-5)
    assert "fine" not in vectors  # no word table, no fine level
    subsample, seen = ctr_centers.user_histories(files, tft_output.transformed_feature_spec(), cfg, 2, 0)
    assert seen == 5 and len(subsample) == 2


def _training_config(model: str, centers_uri: str | None) -> CTRTrainingConfig:
    return CTRTrainingConfig(model=model, model_config="tiny", transform=dict(TRANSFORM),
                             pre_steps={"centers": centers_uri} if centers_uri else {})


def _inputs(model):
    uris = artifacts()
    tft_output = tft.TFTransformOutput(uris["transform_graph"])
    table = item_table(tft_output, uris["examples"])
    history = tf.constant([[2, 3, 4, 0], [5, 6, 0, 0], [7, 2, 3, 4]], tf.int64)
    targets = tf.constant([5, 2, 6], tf.int64)
    return ctr_input.to_model_inputs(history, targets, table, model.item_fields), tft_output, table


def test_other_centers_artifact_gives_other_predictions(centers_dirs, tmp_path):
    """The acceptance test: the centers really reach MFN's Trainer hook. The same fixed tables
    with the centers of another Algorithm 1 run (another seed) give other predictions."""
    fixed, centers_a = ctr_centers.load(centers_dirs[0])
    _, centers_b = ctr_centers.load(centers_dirs[1])
    assert np.abs(centers_a["category"] - centers_b["category"]).max() > 1e-3
    other = tmp_path / "other.npz"
    np.savez(other, **fixed, **centers_b)  # only the centers differ
    sizes = ctr_run.model_sizes(tft.TFTransformOutput(artifacts()["transform_graph"]))
    models = []
    for uri in (centers_dirs[0], str(other)):
        keras.utils.set_random_seed(0)
        model = ctr_run.build_model(_training_config("mfn", uri), sizes)
        model.build()
        models.append(model)
    assert (models[0].config.fixed_dim, models[0].config.word_dim) == (8, 50)  # from the arrays
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(models[0].centers["fine"]), centers_a["fine"])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(models[0].fixed["item"].embeddings), fixed["item"])
    for a, b in zip(models[0].weights, models[1].weights):
        if "centers" not in a.path:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    x, _, _ = _inputs(models[0])
    first, second = (keras.ops.convert_to_numpy(m(x)) for m in models)
    assert np.abs(first - second).max() > 1e-6


@pytest.fixture(scope="module")
def no_words_dirs(tmp_path_factory):
    """Centers of the data without titles (Taobao-like), two Algorithm 1 seeds."""
    root = tmp_path_factory.mktemp("centers_no_words")
    return run_executor(str(root / "a"), 0, words=False), run_executor(str(root / "b"), 1, words=False)


def _no_words_sizes() -> dict:
    return ctr_run.model_sizes(tft.TFTransformOutput(artifacts(False)["transform_graph"]))


def test_without_words_the_fine_level_is_fitted_on_the_auxiliary_item_vectors(no_words_dirs):
    """No words in the data: no `words` table, and `fine` [K, d] is Algorithm 1 over the
    auxiliary model's item vectors of the users' histories (the substitute)."""
    uris = artifacts(False)
    tft_output = tft.TFTransformOutput(uris["transform_graph"])
    assert _no_words_sizes()["vocab_size"] == 0
    fixed, centers = ctr_centers.load(no_words_dirs[0])
    assert set(fixed) == {"item", "categories"} and set(centers) == {"category", "fine"}
    assert centers["category"].shape == (K, 16) and centers["fine"].shape == (K, 8)
    summary = json.loads(open(os.path.join(no_words_dirs[0], ctr_centers.SUMMARY_FILE)).read())
    assert summary["levels"]["fine"]["reads"] == "item" and summary["levels"]["category"]["reads"] == "item, categories"
    for level in ("category", "fine"):
        assert summary["levels"][level]["loss_end"] < summary["levels"][level]["loss_start"], level
    # The same fit, redone here from the item vectors of the same histories, gives the same centers.
    files = tf.io.gfile.glob(os.path.join(uris["examples"], "Split-train", "*"))
    histories, _ = ctr_centers.user_histories(files, tft_output.transformed_feature_spec(),
                                              CTRTransformConfig.from_dict(TRANSFORM), 1000, 0)
    vectors, mask = ctr_centers.behaviour_vectors(fixed, histories, item_table(tft_output, uris["examples"]), "item")
    np.testing.assert_allclose(vectors["fine"][mask > 0], fixed["item"][histories[mask > 0]], rtol=1e-6)
    refit = fit_interest_centers(vectors["fine"], mask, CenterFitConfig(K, steps=60, batch_size=4, learning_rate=0.05))
    np.testing.assert_allclose(centers["fine"], refit, rtol=1e-5, atol=1e-6)


def test_without_words_the_trainer_reads_the_fine_centers_from_the_artifact(no_words_dirs, tmp_path):
    """The fine level's centers reach MFN's Trainer hook: the same artifact with only the fine
    centers of another seed gives other predictions; a words artifact is refused."""
    fixed, centers_a = ctr_centers.load(no_words_dirs[0])
    _, centers_b = ctr_centers.load(no_words_dirs[1])
    assert np.abs(centers_a["fine"] - centers_b["fine"]).max() > 1e-3
    other = tmp_path / "other_fine.npz"
    np.savez(other, **fixed, category=centers_a["category"], fine=centers_b["fine"])
    models = []
    for uri in (no_words_dirs[0], str(other)):
        keras.utils.set_random_seed(0)
        model = ctr_run.build_model(_training_config("mfn", uri), _no_words_sizes())
        model.build()
        models.append(model)
    assert models[0].config.levels == ("category", "fine") and models[0].config.fine_field == "item"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(models[0].centers["fine"]), centers_a["fine"])
    for a, b in zip(models[0].weights, models[1].weights):
        if "fine_centers" not in a.path:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    uris = artifacts(False)
    table = item_table(tft.TFTransformOutput(uris["transform_graph"]), uris["examples"])
    history = tf.constant([[2, 3, 4, 0], [5, 6, 0, 0], [7, 2, 3, 4], [0, 0, 0, 0]], tf.int64)
    x = ctr_input.to_model_inputs(history, tf.constant([5, 2, 6, 3], tf.int64), table, models[0].item_fields)
    first, second = (keras.ops.convert_to_numpy(m(x)) for m in models)
    assert np.abs(first[:3] - second[:3]).max() > 1e-6
    np.testing.assert_allclose(first[3], second[3], rtol=1e-6)  # an empty history has no fine interest
    with pytest.raises(UserError, match="mfn: the centers artifact .* has fine centers of width 8, the model's fine "
                                        "level reads words"):
        ctr_run.build_model(_training_config("mfn", no_words_dirs[0]), ctr_run.model_sizes(
            tft.TFTransformOutput(artifacts()["transform_graph"])))


def test_mfn_without_centers_is_a_user_error_and_the_ablation_needs_none():
    sizes = ctr_run.model_sizes(tft.TFTransformOutput(artifacts()["transform_graph"]))
    with pytest.raises(UserError, match="mfn: MFN with pretrained interests needs the centers"):
        ctr_run.build_model(_training_config("mfn", None), sizes)
    assert not ctr_run.build_model(_training_config("mfn_no_pretrain", None), sizes).config.use_pretrain
    assert type(ctr_run.build_model(_training_config("embedding_mlp", None), sizes)).__name__ == "EmbeddingMLP"


def test_mfn_exports_with_the_ctr_signatures(centers_dirs, tmp_path):
    sizes = ctr_run.model_sizes(tft.TFTransformOutput(artifacts()["transform_graph"]))
    model = ctr_run.build_model(_training_config("mfn", centers_dirs[0]), sizes)
    x, tft_output, table = _inputs(model)
    expected = keras.ops.convert_to_numpy(keras.ops.sigmoid(model(x)))
    ctr_export.export(model, ctr_export.item_vocabulary_file(tft_output), table, TRANSFORM["history_length"],
                      str(tmp_path / "mfn"))
    served = tf.saved_model.load(str(tmp_path / "mfn"))
    vocab = [line.strip() for line in open(ctr_export.item_vocabulary_file(tft_output))]
    raw = lambda ids: [vocab[i - 2] if i >= 2 else "" for i in ids]  # noqa: E731
    history = [raw(h) for h in x["hist_item"].numpy()]
    out = served.signatures["pctr"](user_id=tf.constant(["u"] * 3), history=tf.constant(history),
                                    target=tf.constant(raw(x["target_item"].numpy())))["pctr"].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_algorithm_1_settings_reach_the_pre_step_and_are_validated(tmp_path):
    """`families.ctr.training.interest_centers` → the InterestCenters node's parameters
    (defaults: 300 steps, batch 128, Adam 0.01); bad values name their field."""
    from pipeline import configs
    from pipeline.pipeline import create_pipeline

    def centers_node(**settings):
        overrides = {"models": ["embedding_mlp", "mfn"], "output_dir": str(tmp_path)}
        if settings:
            overrides["families"] = {"ctr": {"training": {"interest_centers": settings}}}
        nodes = {c.id: c for c in create_pipeline(configs.load_config("tiny", overrides=overrides)).components}
        props = nodes["InterestCenters.ctr"].exec_properties
        return props["steps"], props["batch_size"], props["learning_rate"]

    assert centers_node() == (300, 128, 0.01)
    assert centers_node(steps=7, batch_size=5, learning_rate=0.2) == (7, 5, 0.2)
    for bad, message in (({"steps": 0}, "interest_centers.steps: must be at least 1"),
                         ({"learning_rate": -1.0}, "interest_centers.learning_rate: must be > 0"),
                         ({"stepz": 3}, "interest_centers: Unknown InterestCentersConfig fields: \\['stepz'\\]")):
        with pytest.raises(configs.ConfigError, match=f"families.ctr.training: {message}"):
            centers_node(**bad)


def test_component_parameters_reach_fit_interest_centers(monkeypatch, tmp_path):
    """The executor's `steps`/`batch_size`/`learning_rate` (non-default in `run_executor`) are
    the settings Algorithm 1 runs with."""
    from trainer.ctr.models import interests

    seen = []

    def recording_fit(behaviours, mask, config):
        seen.append(config)
        return interests.initial_centers(behaviours, mask, config)

    monkeypatch.setattr(ctr_centers, "fit_interest_centers", recording_fit)
    run_executor(str(tmp_path / "c"), 0)
    assert [(c.num_interests, c.steps, c.batch_size, c.learning_rate) for c in seen] == [(K, 60, 4, 0.05)] * 2
