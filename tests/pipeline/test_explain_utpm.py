"""`usermodel explain utpm`: the explanation of a tiny trained UTPM (table and SVG), weights
restored from an exported SavedModel, and the command's one-line errors.

No pipeline run here (the tags end-to-end run trains YouTube-DNN only): the run-loading part
is exercised below the command, on a model exported the way the Trainer exports it (tracked by
a Keras `ExportArchive`)."""

import xml.etree.ElementTree as ET

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from components.errors import UserError
from pipeline import cli
from pipeline.explain import COMMANDS
from pipeline.explain.common import restore_weights
from pipeline.explain.utpm import UNKNOWN, explain, write
from tests.trainer.tags import tags_fixtures as fx
from trainer.tags.models.utpm import UTPM, UTPMConfig

FIELDS = ("tags", "categories", "gender")
VOCABULARIES = {f: ["<pad>", UNKNOWN, *(f"{f}{i}" for i in range(fx.FIELD_SIZES[f] - 2))] for f in FIELDS}


def _model(**overrides) -> UTPM:
    sizes = {f: fx.FIELD_SIZES[f] for f in FIELDS}
    return UTPM(UTPMConfig.preset("tiny", fields=FIELDS, field_sizes=sizes, num_tags=fx.NUM_TAGS, **overrides))


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    x, y, users, _ = fx.dataset(np.random.default_rng(0), 300, articles_per_user=4)
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit({k: v for k, v in x.items() if k.removeprefix("user_") in FIELDS or k == "article_tags"}, y,
              batch_size=64, epochs=1, verbose=0)
    return model, {k: v for k, v in users.items() if k.removeprefix("user_") in FIELDS}


def _one(users: dict, row: int) -> dict:
    return {k: v[row:row + 1] for k, v in users.items()}


def test_explanation_lists_real_inputs_with_their_weights(trained, tmp_path):
    model, users = trained
    row = next(i for i in range(len(users["user_tags"]))
               if (users["user_tags"][i] == 1).any() and (users["user_tags"][i] == 0).any())
    inputs = _one(users, row)
    result = explain(model, inputs, VOCABULARIES, "17")
    tags = inputs["user_tags"][0]
    assert result.values["tags"] == [UNKNOWN if t == 1 else f"tags{t - 2}" for t in tags[tags != 0]]
    assert len(result.within) == len(result.across) == 2  # one entry per head
    for within, across in zip(result.within, result.across):
        for field in FIELDS:
            assert len(within[field]) == len(result.values[field])
            assert within[field].sum() == pytest.approx(1.0, rel=1e-5)
        assert across.shape == (len(FIELDS),) and across.sum() == pytest.approx(1.0, rel=1e-5)
    # The weights are the model's: the fused vector rebuilt from them (eqs. 1-2) is the model's.
    vectors = model.user_encoder.embedding({f: inputs[f"user_{f}"] for f in FIELDS})
    rebuilt = sum(
        sum(across[k] * (within[f] @ np.asarray(ops.convert_to_numpy(vectors[f]))[0][inputs[f"user_{f}"][0] != 0])
            for k, f in enumerate(FIELDS))
        for within, across in zip(result.within, result.across))
    x, _ = model.user_encoder.fuse({f: inputs[f"user_{f}"] for f in FIELDS})
    np.testing.assert_allclose(np.asarray(ops.convert_to_numpy(x))[0], rebuilt, rtol=1e-4, atol=1e-5)

    md_path, svg_path = write(result, str(tmp_path / "explain"))
    table = open(md_path).read()
    assert "### Head 1" in table and "### Head 2" in table and "| tags |" in table and UNKNOWN in table
    values, rows, columns = result.matrix()
    assert values.shape == (2, sum(len(v) for v in result.values.values()) + len(FIELDS))
    root = ET.parse(svg_path).getroot()
    cells = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("stroke")]
    assert len(cells) == values.size and rows == ["head 1", "head 2"] and columns[-1] == "[gender]"


def test_user_without_history_tags_has_no_tag_weight(trained):
    model, users = trained
    empty_tags = next(i for i in range(len(users["user_tags"]))
                      if not users["user_tags"][i].any() and users["user_categories"][i].any())
    result = explain(model, _one(users, empty_tags), VOCABULARIES, "3")
    assert result.values["tags"] == []
    for across in result.across:
        assert across[0] == 0.0  # the tags field has no real id: no weight across fields
    assert "| tags | 0.0000 | (none) | |" in result.markdown()


def test_weights_restored_from_an_exported_model(trained, tmp_path):
    model, users = trained
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("user_embedding", lambda t, c, g: model.user_embedding(
        {"user_tags": t, "user_categories": c, "user_gender": g}),
        input_signature=[tf.TensorSpec([None, None], tf.int32)] * 3)
    archive.write_out(str(tmp_path / "saved"))
    fresh = _model()
    restore_weights(fresh, str(tmp_path / "saved"))
    np.testing.assert_array_equal(np.asarray(ops.convert_to_numpy(fresh.user_embedding(users))),
                                  np.asarray(ops.convert_to_numpy(model.user_embedding(users))))
    with pytest.raises(UserError, match="does not match"):
        restore_weights(_model(cross="dcn"), str(tmp_path / "saved"))


def test_command_is_registered_and_bad_run_dirs_give_one_line(tmp_path, capsys):
    assert "pipeline.explain.utpm" in COMMANDS
    assert cli.main(["explain", "utpm", "--output-dir", str(tmp_path), "--user", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "config.json not found" in err
