"""MFN's pretrained inputs: the fixed tables and interest centers (Xie et al. 2021, Section 3.2).

The pipeline's pre-step (`components/interest_centers.py`) calls `compute`; MFN's Trainer reads
the result with `load` (`trainer/ctr/run.py`). Kept free of TFX so both sides and the tests use
one definition of the artifact:

``<artifact>/centers.npz`` holds

* the fixed tables: ``item`` ``[num_items, d]`` and ``categories`` ``[num_categories, d]``, the
  item-embedding tables of the auxiliary CTR model (the run's Embedding&MLP, "trained on the
  same behaviour data by an earlier pipeline step"), read from its serving SavedModel by
  variable path; ``words`` ``[vocab, 50]``, GloVe aligned with the Transform word vocabulary;
* the centers of Algorithm 1: ``category`` ``[K, 2d]`` and ``fine`` ``[K, 50]`` (``[K, d]``
  without title words, below), fitted on the fixed behaviour vectors of users' train
  histories, computed by `mfn.fixed_behaviours` (the model's own function, so the centers
  live in the space the model assigns in). A user's history is their last H train behaviours
  under `CTRTransformConfig.history` (clicked events by default), the definition the
  Transform, the Trainer and the export use (`preprocessing.behaviours`), so the centers
  summarise what the model will attend to.

Without title words in the data (Taobao) the fine level reads the item id alone (MFN's
documented substitute, `MFNConfig.fine_field`): no ``words`` table, and ``fine`` ``[K, d]`` is
fitted on the auxiliary model's item vectors (the ``item`` table). With words but without word
vectors (none configured, or not installed), ``words`` and ``fine`` are left out.
``<artifact>/centers.json`` records what was fitted: users read and used (subsampled to
`max_users`, uniformly, when there are more), per level the field it reads and L_E before and
after Algorithm 1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from keras import ops

from components.errors import UserError
from trainer import word_vectors
from trainer.config_base import DictConfig
from trainer.ctr import input as ctr_input
from trainer.ctr import preprocessing as ctr_preprocessing
from trainer.ctr.config import CTRTransformConfig
from trainer.ctr.models.interests import CenterFitConfig, fit_interest_centers, initial_centers, interest_loss
from trainer.ctr.models.mfn import CATEGORY, FINE, fixed_behaviours
from trainer.ctr.preprocessing import WORD_VOCAB, has_words

CENTERS_FILE = "centers.npz"
SUMMARY_FILE = "centers.json"
TABLES = ("item", "categories", "words")
LEVELS = (CATEGORY, FINE)
_VARIABLE_SUFFIX = {
    "item": "item_embedding/item_embedding/embeddings:0",
    "categories": "item_embedding/categories_embedding/embeddings:0",
}
"""How the auxiliary model's tables are named in its SavedModel (`CTRModel.item_embedding`)."""

LOG = logging.getLogger("usermodel.progress")


@dataclasses.dataclass
class CentersConfig(DictConfig):
    """Settings of the centers pre-step (Algorithm 1's and the data's)."""

    num_interests: int = 4
    """K; must equal the MFN models' `num_interests`."""
    steps: int = 300
    batch_size: int = 128
    learning_rate: float = 0.01
    seed: int = 0
    word_vectors: str = "glove-6b-50d"
    """A `trainer.word_vectors.SOURCES` name; "" leaves the fine level out on data with words
    (without words it reads item ids, no word vectors needed)."""
    max_users: int = 20_000
    """At most this many users' histories are held (a uniform reservoir sample beyond), which
    bounds memory to `max_users × history_length` behaviours."""

    def fit_config(self) -> CenterFitConfig:
        return CenterFitConfig(self.num_interests, self.steps, self.batch_size, self.learning_rate, self.seed)


def serving_dir(model_uri: str) -> str:
    """The SavedModel directory of a TFX Model artifact (or `model_uri` itself if it is one)."""
    serving = os.path.join(model_uri, "Format-Serving")
    return serving if tf.io.gfile.exists(serving) else model_uri


def auxiliary_tables(model_uri: str) -> dict[str, np.ndarray]:
    """The auxiliary CTR model's `item` and `categories` embedding tables, by variable path.

    Raises:
        UserError: the SavedModel has no such variables (not a CTR model of this project).
    """
    loaded = tf.saved_model.load(serving_dir(model_uri))
    out = {}
    for table, suffix in _VARIABLE_SUFFIX.items():
        found = [v for v in loaded.variables if v.name.endswith(suffix)]
        if len(found) != 1:
            raise UserError(f"interest centers: the auxiliary model at {model_uri} has {len(found)} variables "
                            f"named */{suffix} (expected one: a CTR model's {table} table)")
        out[table] = found[0].numpy().astype("float32")
    return out


def word_table(tft_output: tft.TFTransformOutput, source: str, seed: int) -> np.ndarray | None:
    """GloVe rows of the Transform word vocabulary (`word_vectors.aligned_matrix`), or None
    without a source, without words in the data, or when the vectors are not installed."""
    if not source or not has_words(tft_output):
        return None
    words = [w.decode("utf-8") for w in tft_output.vocabulary_by_name(WORD_VOCAB)]
    try:
        vectors = word_vectors.aligned_matrix(words, source, seed=seed)
    except ImportError as err:
        LOG.warning("interest centers: %s unavailable (%s); the fine level is left out", source, err)
        return None
    LOG.info("interest centers: %s vectors for %d of %d words", source, vectors.found, vectors.total)
    return vectors.matrix


def user_histories(files: list[str], feature_spec: ctr_input.FeatureSpec, transform: CTRTransformConfig,
                   max_users: int, seed: int) -> tuple[np.ndarray, int]:
    """Each user's last `transform.history_length` train behaviours (`transform.history`)
    `[users, H]` (oldest first, padded with 0 at the end), and how many users had one (a user
    without any is left out: nothing to assign). Beyond `max_users` users a uniform reservoir
    sample is kept."""
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    seen = 0
    history_length = transform.history_length
    for user in ctr_input.users(files, feature_spec).as_numpy_iterator():
        past = ctr_preprocessing.behaviours(user["items"], user["ratings"], transform.history)
        items = np.asarray(past)[-history_length:]
        if not len(items):
            continue
        row = np.zeros(history_length, np.int64)
        row[: len(items)] = items
        seen += 1
        if len(kept) < max_users:
            kept.append(row)
        else:
            slot = rng.integers(seen)
            if slot < max_users:
                kept[slot] = row
    return (np.stack(kept) if kept else np.zeros((0, history_length), np.int64)), seen


def behaviour_vectors(tables: dict[str, np.ndarray], histories: np.ndarray, table: ctr_input.ItemTable,
                      fine: str | None = None, batch: int = 1024) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fixed behaviour vectors per level `[users, H, d]` and the mask `[users, H]`, in batches
    through `mfn.fixed_behaviours`; `fine` is the fine level's field (`words`, `item`) or None
    for the category level only."""
    lookups = {name: (lambda ids, t=np.asarray(t): ops.take(t, ids, axis=0)) for name, t in tables.items()}
    fields = ("item", "categories", "words") if fine == "words" else ("item", "categories")
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(histories), batch):
        history = tf.constant(histories[start: start + batch])
        inputs = ctr_input.to_model_inputs(history, tf.zeros([len(history)], tf.int64), table, fields)
        for level, vectors in fixed_behaviours(lookups, inputs, fine).items():
            parts.setdefault(level, []).append(np.asarray(ops.convert_to_numpy(vectors)))
    return {level: np.concatenate(v) for level, v in parts.items()}, (histories != 0).astype("float32")


def compute(examples_uri: str, transform_graph_uri: str, model_uri: str, out_dir: str, cfg: CentersConfig,
            transform: CTRTransformConfig) -> dict[str, Any]:
    """Writes `centers.npz` and `centers.json` into `out_dir`; returns the summary.

    Args:
        examples_uri: the transformed Examples artifact (splits `train`, `items`).
        transform_graph_uri: the Transform graph artifact.
        model_uri: the auxiliary CTR model (a TFX Model artifact).
        out_dir: the output artifact's directory.
        cfg: Algorithm 1's settings, word vectors, user cap.
        transform: the Transform settings (history length, item table widths).
    """
    tft_output = tft.TFTransformOutput(transform_graph_uri)
    spec = tft_output.transformed_feature_spec()
    table = ctr_input.load_item_table(_split_files(examples_uri, "items"), tft_output, transform)
    tables = auxiliary_tables(model_uri)
    fine, words = fine_level(tft_output, cfg)
    if words is not None:
        tables["words"] = words
    histories, users = user_histories(_split_files(examples_uri, "train"), spec, transform, cfg.max_users, cfg.seed)
    vectors, mask = behaviour_vectors(tables, histories, table, fine)
    if not mask.sum():
        raise UserError(f"interest centers: no user has a train behaviour "
                        f"(families.ctr.transform.history: {transform.history!r})")
    fit = cfg.fit_config()
    centers, summary = {}, {"users": users, "users_used": int(len(histories)), "behaviours": int(mask.sum()),
                            "levels": {}}
    for level, behaviours in vectors.items():
        start = float(ops.convert_to_numpy(interest_loss(behaviours, initial_centers(behaviours, mask, fit), mask)))
        centers[level] = fit_interest_centers(behaviours, mask, fit)
        end = float(ops.convert_to_numpy(interest_loss(behaviours, centers[level], mask)))
        reads = "item, categories" if level == CATEGORY else fine
        summary["levels"][level] = {"reads": reads, "shape": list(centers[level].shape), "loss_start": start,
                                    "loss_end": end}
        LOG.info("interest centers: %s level (%s), K=%d, L_E %.4f -> %.4f over %d users", level, reads,
                 fit.num_interests, start, end, len(histories))
    tf.io.gfile.makedirs(out_dir)
    buffer = io.BytesIO()  # np.savez seeks, a GFile being written cannot
    np.savez(buffer, **tables, **centers)
    with tf.io.gfile.GFile(os.path.join(out_dir, CENTERS_FILE), "wb") as f:
        f.write(buffer.getvalue())
    with tf.io.gfile.GFile(os.path.join(out_dir, SUMMARY_FILE), "w") as f:
        json.dump({**summary, "config": cfg.to_dict()}, f, indent=2)
    return summary


def fine_level(tft_output: tft.TFTransformOutput, cfg: CentersConfig) -> tuple[str | None, np.ndarray | None]:
    """What the fine level's centers are fitted on, and its word table: `item` when the data
    have no words (the substitute; the auxiliary `item` table is its fixed table), else `words`
    with the GloVe table, or None (no fine level) when word vectors are not configured or not
    installed."""
    if not has_words(tft_output):
        LOG.info("interest centers: no title words in the data; the fine level reads the item id")
        return "item", None
    words = word_table(tft_output, cfg.word_vectors, cfg.seed)
    return ("words" if words is not None else None), words


def load(uri: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`(fixed tables, centers)` from a centers artifact directory (or its `centers.npz`)."""
    path = uri if uri.endswith(".npz") else os.path.join(uri, CENTERS_FILE)
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    with np.load(io.BytesIO(data)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {k: v for k, v in arrays.items() if k in TABLES}, {k: v for k, v in arrays.items() if k in LEVELS}


def _split_files(examples_uri: str, split: str) -> list[str]:
    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    if not files:
        raise UserError(f"interest centers: no {split} files under {examples_uri}")
    return sorted(files)
