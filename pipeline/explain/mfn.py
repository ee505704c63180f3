"""`usermodel explain mfn`: a user's MFN interests, what each interest's center stands for, and
which of the user's history items each interest attends to.

MFN's claimed explainability (Xie et al. 2021, Section 3) rests on two weight matrices over the
user's behaviours, one row per interest:

* **similarity interests** (eqs. 4-5): the assignment `P = softmax(E Cᵀ)`; row k of the picture
  is column k of P, how much of each history item interest k takes (each item's weights sum to
  1 over the K centers). Interest k's **center** `C_k` is shown by its nearest catalogue entries
  in the space P is computed in: at the category level the items whose fixed vectors (item ⊕
  mean category, `mfn.fixed_behaviours`) have the largest logit `E_i · C_k`, at the fine level
  the title words whose fixed vectors do (without words, Taobao: the items again, by their
  item-id vector alone, the fine level's substitute). The logit, not P, ranks them: P
  normalises each item over the centers, so many items tie at P ≈ 1 and the order says
  nothing.
* **combination interests** (eqs. 6-7): the structured attention `A`; row k is A's row k, a
  distribution over the history items. These interests have no center (W₁, W₂ are learned), so
  the table shows their most attended items instead.

`explain_user` works on a Keras `MFN` and one user's input rows (tested below the CLI); the
command (`run`) loads the run's trained MFN and the user's history from the run's artifacts
(ML Metadata), prints a markdown table and writes an SVG heatmap (interests × history items,
item titles as labels) with `heatmap.write_heatmap`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from components.errors import UserError, positive
from pipeline.explain import heatmap
from pipeline.explain.common import load_run_config, restore_weights, short_label

__all__ = ["Explanation", "InterestRow", "TrainedRun", "add_parser", "explain_user", "load_run", "run"]

_LABEL_CHARS = 28
"""Item labels are cut to this many characters (the heatmap's column labels)."""


@dataclasses.dataclass
class InterestRow:
    """One interest of one level: its center's nearest entries and its weights over the history."""

    level: str
    kind: str
    """`similarity` (eqs. 4-5, has a center) or `combination` (eqs. 6-7, no center)."""
    index: int
    center: list[str]
    """Nearest items (category level; fine level without words) or words (fine level) of the
    center; empty for combination."""
    weights: np.ndarray
    """`[n]` over the user's real history items: P's column (similarity) or A's row (combination)."""

    @property
    def label(self) -> str:
        return f"{self.level} {self.kind[:3]} {self.index + 1}"


@dataclasses.dataclass
class Explanation:
    user: str
    history: list[str]
    """Labels of the user's real history items, oldest first (the model's last H)."""
    rows: list[InterestRow]

    def matrix(self) -> np.ndarray:
        """`[interests, history items]`, the heatmap's values."""
        return np.stack([r.weights for r in self.rows]) if self.rows else np.zeros((0, len(self.history)))

    def markdown(self, top: int) -> str:
        """One line per interest: its center's nearest entries and its `top` most weighted items."""
        lines = [f"MFN interests of user {self.user} ({len(self.history)} history items)", "",
                 "| interest | center: nearest items / words | most weighted history items |",
                 "|---|---|---|"]
        for row in self.rows:
            order = np.argsort(-row.weights, kind="stable")[:top]
            attended = ", ".join(f"{self.history[i]} ({row.weights[i]:.2f})" for i in order if row.weights[i] > 0)
            center = ", ".join(row.center) if row.center else "- (no center: eq. 6)"
            lines.append(f"| {row.label} | {_cell(center)} | {_cell(attended or '-')} |")
        return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "/")


def _np(x: Any) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x))


def _catalogue_inputs(table_fields: dict[str, np.ndarray], fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Every real catalogue item (ids 2…) as one long history, for the centers' nearest items."""
    ids = np.arange(2, len(table_fields["categories"]), dtype=np.int32)[None]
    out = {"hist_item": ids, "hist_mask": np.ones(ids.shape, np.float32)}
    for f in fields:
        if f != "item":
            out[f"hist_{f}"] = table_fields[f][ids]
    return out


def _center_space(model, level: str, catalogue: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """The vectors P compares with level `level`'s centers, one per candidate entry, and the id
    of the first entry: catalogue items (category level, and the fine level without words; ids
    from 2) or words (fine level; the word table's rows, ids from 2), fixed vectors with
    pretraining, trainable ones without."""
    from trainer.ctr.models.mfn import CATEGORY

    if level == CATEGORY or model.config.fine_field == "item":
        vectors = model._fixed_behaviours(catalogue) if model.config.use_pretrain else model._split(
            model._embed(catalogue, "hist"))
        return _np(vectors[level])[0], 2
    table = model.fixed["words"] if model.config.use_pretrain else model.item_embedding.tables["words"]
    return _np(table.embeddings)[2:], 2


def explain_user(model, inputs: dict[str, np.ndarray], table_fields: dict[str, np.ndarray],
                 item_labels: Sequence[str], words: Sequence[str], user: str = "", top: int = 5) -> Explanation:
    """The explanation of one user from a Keras MFN.

    Args:
        model: a built `trainer.ctr.models.mfn.MFN` (any variant).
        inputs: the user's `hist_*` inputs, batch of one (`ctr_input.to_model_inputs`).
        table_fields: the item table's `categories` and `words` by item id (`ItemTable.fields`).
        item_labels: a label per item id (0 padding, 1 unknown, then the catalogue).
        words: the title-word vocabulary by word id (0 padding, 1 unknown, …); unused without a
            fine level.
        user: the user's id, for the title.
        top: nearest entries per center.

    Returns:
        An `Explanation` with one row per interest: per level K similarity rows, then K
        combination rows (none when ablated).
    """
    from trainer.ctr.models.mfn import CATEGORY

    mask = np.asarray(inputs["hist_mask"])[0] > 0
    ids = np.asarray(inputs["hist_item"])[0][mask]
    parts = model.interests(inputs)
    catalogue = _catalogue_inputs(table_fields, model.item_fields)
    rows: list[InterestRow] = []
    for level in model.config.levels:
        space, first = _center_space(model, level, catalogue)
        logits = space @ _np(model.centers[level]).T  # [entries, K], eq. 1's logits
        names = item_labels if level == CATEGORY or model.config.fine_field == "item" else words
        p = _np(parts[level]["assignment"])[0][mask]  # [n, K]
        for k in range(model.config.num_interests):
            nearest = np.argsort(-logits[:, k], kind="stable")[:top] + first
            rows.append(InterestRow(level, "similarity", k, [short_label(str(names[i]), _LABEL_CHARS) for i in nearest], p[:, k]))
        if "attention" in parts[level]:
            a = _np(parts[level]["attention"])[0][:, mask]  # [K, n]
            rows += [InterestRow(level, "combination", k, [], a[k]) for k in range(model.config.num_interests)]
    return Explanation(user, [short_label(str(item_labels[i]), _LABEL_CHARS) for i in ids], rows)


# ---------------------------------------------------------------------------- the run's artifacts
def _outputs(metadata, node: str, key: str, what: str) -> str:
    found = metadata.outputs(node).get(key)
    if not found:
        raise UserError(f"--output-dir: the run has no {what} ({node} has not run, or its metadata is missing)")
    return found[0].uri


def _item_titles(raw_examples_uri: str) -> dict[str, str]:
    """Raw item id → title, from the ExampleGen's catalog split (empty when it has none)."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(raw_examples_uri, "Split-items", "*"))
    spec = {"item_id": tf.io.VarLenFeature(tf.int64), "title": tf.io.VarLenFeature(tf.string)}
    titles = {}
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024):
        parsed = tf.io.parse_example(batch, spec)
        ids = tf.sparse.to_dense(parsed["item_id"], -1).numpy()[:, :1]
        text = tf.sparse.to_dense(parsed["title"], b"").numpy()[:, :1]
        titles.update({str(i[0]): t[0].decode("utf-8") for i, t in zip(ids, text) if i[0] >= 0 and t[0]})
    return titles


def _user_history(examples_uri: str, feature_spec, user: str, history_length: int) -> np.ndarray:
    """The user's last H train items (transformed ids): the eval row's `history` (what TFMA
    scores with), else the end of the user's train sequence.

    Raises:
        UserError: `user` is not an integer id or not in the run's data.
    """
    from trainer import loop
    from trainer.ctr import input as ctr_input

    try:
        wanted = int(user)
    except ValueError:
        raise UserError(f"--user: {user!r} is not a user id of this run (CTR user ids are integers)") from None
    for split, keys in (("eval", ("user_id", "history")), ("train", ("user_id", "items"))):
        files = loop.split_files([os.path.join(examples_uri, f"Split-{split}", "*")])
        for row in ctr_input.users(files, feature_spec, keys).as_numpy_iterator():
            if int(row["user_id"]) == wanted:
                items = row["history"] if split == "eval" else row["items"][-history_length:]
                out = np.zeros(history_length, np.int64)
                real = np.asarray(items)[np.asarray(items) != 0]
                out[: len(real)] = real
                return out
    raise UserError(f"--user: user {user} is not in the run's train or eval data")


@dataclasses.dataclass
class TrainedRun:
    """What the explanation needs from a run: the trained Keras MFN and the data around it."""

    model: Any
    serving_dir: str
    table: Any
    """The item table (`ctr_input.ItemTable`)."""
    labels: list[str]
    """Item labels by item id: "title [raw id]" where the catalog has a title."""
    words: list[str]
    """The title-word vocabulary by word id."""
    examples_uri: str
    feature_spec: dict[str, Any]
    history_length: int


def load_run(output_dir: str, model_name: str = "mfn") -> TrainedRun:
    """The run's trained `model_name` as a Keras MFN (rebuilt from the run's config and
    artifacts, weights copied from its SavedModel), its item table and labels.

    Raises:
        UserError: no such run, a model that is not an MFN of the run, a missing artifact.
    """
    from components.console import quiet_native_stderr

    config = load_run_config(output_dir)
    with quiet_native_stderr():
        import tensorflow as tf
        import tensorflow_transform as tft

        from pipeline.summary import _Metadata
        from trainer import loop
        from trainer.ctr import input as ctr_input
        from trainer.ctr import run as ctr_run
        from trainer.ctr.config import CTRTrainingConfig, CTRTransformConfig
        from trainer.ctr.models import MFN, MODELS
        from trainer.ctr.preprocessing import ITEM_VOCAB, WORD_VOCAB
    mfns = [m for m in config.models if m in MODELS and issubclass(MODELS[m][1], MFN)]
    if model_name not in mfns:
        raise UserError(f"--model: the run in {output_dir} trained no MFN model {model_name!r} (its MFN models: "
                        f"{', '.join(mfns) or 'none'}; all its models: {', '.join(config.models)})")
    metadata = _Metadata(os.path.abspath(config.metadata_path), config.pipeline_name)
    model_uri = _outputs(metadata, f"Trainer.{model_name}", "model", f"trained {model_name}")
    graph_uri = _outputs(metadata, "Transform.ctr", "transform_graph", "CTR Transform graph")
    examples_uri = _outputs(metadata, "Transform.ctr", "transformed_examples", "transformed CTR examples")
    cfg = CTRTrainingConfig.from_dict(config.training_for(model_name))
    model_config = MODELS.make_config(model_name, cfg.model_config)
    if model_config.use_pretrain:  # built with the centers artifact's tables (their widths size the model)
        cfg.pre_steps = {"centers": _outputs(metadata, "InterestCenters.ctr", "centers", "interest centers")}
    tft_output = tft.TFTransformOutput(graph_uri)
    transform = CTRTransformConfig.from_dict(cfg.transform)
    model = ctr_run.build_model(cfg, ctr_run.model_sizes(tft_output))
    model.build()
    serving = os.path.join(model_uri, "Format-Serving")
    serving = serving if tf.io.gfile.exists(serving) else model_uri
    restore_weights(model, serving)
    table = ctr_input.load_item_table(
        loop.split_files([os.path.join(examples_uri, "Split-items", "*")]), tft_output, transform)
    raw_ids = [b.decode() for b in tft_output.vocabulary_by_name(ITEM_VOCAB)]
    raw_uri = metadata.outputs("ExampleGen.ctr").get("examples")
    titles = _item_titles(raw_uri[0].uri) if raw_uri else {}
    labels = ["", "(unknown item)"] + [f"{titles[r]} [{r}]" if r in titles else r for r in raw_ids]
    labels += ["?"] * (table.num_items - len(labels))
    words = ["", "(unknown)"]
    if tft_output.vocabulary_size_by_name(WORD_VOCAB):
        words += [w.decode("utf-8", "replace") for w in tft_output.vocabulary_by_name(WORD_VOCAB)]
    return TrainedRun(model, serving, table, labels, words, examples_uri, tft_output.transformed_feature_spec(),
                      transform.history_length)


def run(output_dir: str, user: str, model_name: str = "mfn", out_dir: str | None = None,
        top: int = 5) -> tuple[Explanation, str]:
    """Explains `user` with the run's trained `model_name` and writes the SVG; returns both.

    Raises:
        UserError: as `load_run`, or an unknown user, or a user without history.
    """
    import tensorflow as tf

    from trainer.ctr import input as ctr_input

    trained = load_run(output_dir, model_name)
    history = _user_history(trained.examples_uri, trained.feature_spec, user, trained.history_length)
    inputs = ctr_input.to_model_inputs(tf.constant(history[None]), tf.zeros([1], tf.int64), trained.table,
                                      trained.model.item_fields)
    inputs = {k: np.asarray(v) for k, v in inputs.items() if k.startswith("hist_")}
    explanation = explain_user(trained.model, inputs, trained.table.fields, trained.labels, trained.words,
                               user=user, top=top)
    if not explanation.history:
        raise UserError(f"--user: user {user} has no history items to attend to")
    path = os.path.join(out_dir or os.path.join(output_dir, "explain"), f"{model_name}_user_{user}.svg")
    heatmap.write_heatmap(path, explanation.matrix(), [r.label for r in explanation.rows], explanation.history,
                          title=f"{model_name}: interests x history items of user {user}")
    return explanation, path


def _command(args: argparse.Namespace) -> int:
    explanation, path = run(args.output_dir, args.user, args.model, args.out, args.top)
    print(explanation.markdown(args.top))
    print(f"\nHeatmap (interests x history items) written to {path}")
    return 0


def add_parser(explain_sub: argparse._SubParsersAction) -> None:
    parser = explain_sub.add_parser(
        "mfn", help="an MFN user's interests: each center's nearest items/words and the attention over the history")
    parser.add_argument("--output-dir", required=True, help="the run's --output-dir (config.json, metadata)")
    parser.add_argument("--user", required=True, help="a user id of the run's data")
    parser.add_argument("--model", default="mfn", help="the run's MFN variant (default mfn)")
    parser.add_argument("--out", help="directory of the SVG (default <output-dir>/explain)")
    parser.add_argument("--top", type=positive(), default=5, help="entries per center and attended items (default 5)")
    parser.set_defaults(fn=_command)
