"""`usermodel explain utpm`: which of a user's input tags and fields each UTPM head attends to.

    usermodel explain utpm --output-dir RUN_DIR --user USER_ID [--model utpm] [--out DIR]

As the paper's Fig. 3 and Table 5: for one user of the run's eval data, per attention head, the
weight of every input value inside its field (eq. 1) and the weight of every field (eq. 2).
Printed as a markdown table and written as `utpm-user-<id>.md` and `utpm-user-<id>.svg` (a
heatmap, heads × inputs) under `--out` (default `RUN_DIR/explain`).

The run is read as `usermodel report` reads it: `config.json` in the run directory, then ML
Metadata for the newest Trainer and Transform outputs. The Keras model is rebuilt from the
Trainer's own config (`PipelineConfig.training_for`, sized by the Transform vocabularies as the
Trainer sized it) and its weights are restored from the exported SavedModel by variable path, so
the explanation uses exactly the trained weights. The user's fields come from their eval example
(history → catalog → `trainer/tags/fields.py`), as the evaluation built them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from components.errors import UserError
from pipeline.explain.common import load_run_config, restore_weights, short_label
from pipeline.explain.heatmap import write_heatmap

__all__ = ["Explanation", "add_parser", "explain"]

UNKNOWN, LABEL_CHARS = "<unknown>", 24


@dataclasses.dataclass
class Explanation:
    """One user's attention weights, real inputs only (padding has weight 0 and is left out)."""

    user: str
    model: str
    fields: tuple[str, ...]
    values: dict[str, list[str]]
    """Per field, the user's input values in input order (the unknown id as `<unknown>`)."""
    within: list[dict[str, np.ndarray]]
    """Per head, per field: the weights of `values[field]` (eq. 1)."""
    across: list[np.ndarray]
    """Per head: the weight of each field, in `fields` order (eq. 2)."""

    def markdown(self) -> str:
        """Per head, one table: field, its weight, then each of its values with its weight, best first."""
        parts = [f"## {self.model}: user {self.user}", ""]
        for h, (within, across) in enumerate(zip(self.within, self.across)):
            parts += [f"### Head {h + 1}", "", "| field | field weight | input | weight in field |",
                      "|---|---|---|---|"]
            for k in np.argsort(-across, kind="stable"):
                field = self.fields[k]
                order = np.argsort(-within[field], kind="stable")
                if not len(order):
                    parts.append(f"| {field} | {across[k]:.4f} | (none) | |")
                for rank, i in enumerate(order):
                    head = f"| {field} | {across[k]:.4f} " if rank == 0 else "| | "
                    parts.append(f"{head}| {self.values[field][i]} | {within[field][i]:.4f} |")
            parts.append("")
        return "\n".join(parts)

    def matrix(self) -> tuple[np.ndarray, list[str], list[str]]:
        """Heads × (every input value's weight in its field, then every field's weight)."""
        columns = [short_label(f"{f}: {v}", LABEL_CHARS) for f in self.fields for v in self.values[f]]
        columns += [f"[{f}]" for f in self.fields]
        rows = [np.concatenate([*(within[f] for f in self.fields), across])
                for within, across in zip(self.within, self.across)]
        return np.stack(rows), [f"head {h + 1}" for h in range(len(rows))], columns


def explain(model: Any, inputs: dict[str, np.ndarray], vocabularies: dict[str, Sequence[str]], user: str,
            name: str = "utpm") -> Explanation:
    """The attention weights of one user.

    Args:
        model: a UTPM (`trainer/tags/models/utpm.py`).
        inputs: the user's `user_<f>` ids, int `[1, H_f]` each.
        vocabularies: per field, the value of id `i` at position `i` (ids 0 and 1 included).
        user: the user's id, for the title.
        name: the model's registry name, for the title.
    """
    from keras import ops

    weights = model.attention_weights(inputs)
    fields = tuple(model.config.fields)
    ids = {f: np.asarray(inputs[f"user_{f}"])[0] for f in fields}
    real = {f: np.flatnonzero(ids[f]) for f in fields}
    values = {f: [UNKNOWN if ids[f][i] == 1 else vocabularies[f][ids[f][i]] for i in real[f]] for f in fields}
    within = [{f: np.asarray(ops.convert_to_numpy(head[f]))[0][real[f]] for f in fields} for head in weights]
    across = [np.asarray(ops.convert_to_numpy(head["fields"]))[0] for head in weights]
    return Explanation(user, name, fields, values, within, across)


def write(explanation: Explanation, out_dir: str) -> tuple[str, str]:
    """Writes `utpm-user-<id>.md` and the heatmap `utpm-user-<id>.svg`; returns both paths."""
    stem = os.path.join(out_dir, f"{explanation.model}-user-{explanation.user}")
    os.makedirs(out_dir, exist_ok=True)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(explanation.markdown())
    values, rows, columns = explanation.matrix()
    title = f"{explanation.model}, user {explanation.user}: weight in field | [field weight]"
    return stem + ".md", write_heatmap(stem + ".svg", values, rows, columns, title)


@dataclasses.dataclass
class _Run:
    """What the explanation needs from a pipeline run."""

    model: Any
    eval_files: list[str]
    feature_spec: dict[str, Any]
    table: Any
    cfg: Any
    transform: Any
    vocabularies: dict[str, list[str]]


def _load_run(output_dir: str, name: str) -> _Run:
    from pipeline.families import all_models
    from pipeline.summary import _Metadata
    from trainer import loop
    from trainer.tags import input as tags_input
    from trainer.tags import run as tags_run
    from trainer.tags.config import TagsTrainingConfig, TagsTransformConfig
    from trainer.tags.models import MODELS, UTPM
    from trainer.tags.preprocessing import DEMOGRAPHICS, GENRE_VOCAB, TAG_VOCAB

    config = load_run_config(output_dir)
    if name not in config.models:
        raise UserError(f"--model {name}: not trained in {output_dir} (its models: {', '.join(config.models)})")
    if name not in MODELS or MODELS[name][1] is not UTPM:
        utpms = sorted(m for m, (_, cls) in MODELS.items() if cls is UTPM)
        raise UserError(f"--model {name}: not a UTPM model; `explain utpm` explains {', '.join(utpms)}")
    family = all_models()[name]
    md = _Metadata(os.path.abspath(config.metadata_path), config.pipeline_name)
    trained = md.outputs(f"Trainer.{name}").get("model")
    transform = md.outputs(f"Transform.{family.name}")
    if not trained or "transform_graph" not in transform:
        raise UserError(f"{output_dir}: no trained {name} in the run's metadata (did its Trainer finish?)")

    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(transform["transform_graph"][0].uri)
    examples = transform["transformed_examples"][0].uri
    cfg = TagsTrainingConfig.from_dict(config.training_for(name))
    transform_cfg = TagsTransformConfig.from_dict(cfg.transform)
    table = tags_input.load_item_table(loop.split_files([os.path.join(examples, "Split-items")]), tft_output,
                                       transform_cfg)
    fields = tuple(MODELS.make_config(name, cfg.model_config).fields)
    model = MODELS.build(name, cfg.model_config, field_sizes=tags_run.field_sizes(fields, tft_output),
                         num_tags=table.num_tags)
    restore_weights(model, os.path.join(trained[0].uri, "Format-Serving"))
    vocab_names = {"tags": TAG_VOCAB, "categories": GENRE_VOCAB, **{f: f for f in DEMOGRAPHICS}}
    vocabularies = {f: ["<pad>", UNKNOWN, *(v.decode("utf-8", "replace") for v in
                                           tft_output.vocabulary_by_name(vocab_names[f]))] for f in fields}
    return _Run(model, loop.split_files([os.path.join(examples, "Split-eval")]),
                tft_output.transformed_feature_spec(), table, cfg, transform_cfg, vocabularies)


def user_inputs(run: _Run, user: str) -> dict[str, np.ndarray]:
    """The `user_<f>` inputs `[1, H_f]` of `user`'s eval example, as the evaluation builds them."""
    from trainer import loop
    from trainer.tags import fields as tag_fields
    from trainer.tags import input as tags_input

    try:
        wanted = int(user)
    except ValueError:
        raise UserError(f"--user {user}: MovieLens user ids are integers") from None
    fields = tuple(run.model.config.fields)
    for batch in loop.parse_transformed(run.eval_files, run.feature_spec, ("user_id", *tags_input.SEQUENCE_FEATURES),
                                        batch_size=512):
        rows = np.flatnonzero(np.asarray(batch["user_id"]).reshape(-1) == wanted)
        if not len(rows):
            continue
        history = tag_fields.dense(batch["history_item_index"]).numpy()[rows[:1]]
        ratings = tag_fields.dense(batch["history_ratings"]).numpy()[rows[:1]]
        built = run.table.fields(history, ratings >= run.cfg.positive_rating, run.transform.field_length)
        inputs = {f"user_{k}": np.asarray(v) for k, v in built.items() if k in fields}
        inputs.update({k: v[rows[:1]] for k, v in tags_input.demographic_inputs(batch, fields).items()})
        return inputs
    raise UserError(f"--user {user}: no eval example of this user in the run's eval split")


def _main(args: argparse.Namespace) -> int:
    from components.console import quiet_native_stderr

    with quiet_native_stderr():
        run = _load_run(args.output_dir, args.model)
    explanation = explain(run.model, user_inputs(run, args.user), run.vocabularies, args.user, args.model)
    md, svg = write(explanation, args.out or os.path.join(args.output_dir, "explain"))
    print(explanation.markdown())
    print(f"written: {md}, {svg}")
    return 0


def add_parser(explain_sub: argparse._SubParsersAction) -> None:
    """Registers `usermodel explain utpm`."""
    parser = explain_sub.add_parser(
        "utpm", help="per head, the attention weights of a user's input tags and fields (UTPM Fig. 3, Table 5)")
    parser.add_argument("--output-dir", required=True, help="the run's --output-dir")
    parser.add_argument("--user", required=True, help="a user id of the run's eval data")
    parser.add_argument("--model", default="utpm", help="the UTPM model of the run (utpm or a utpm_* variant)")
    parser.add_argument("--out", help="where to write the table and the SVG (default OUTPUT_DIR/explain)")
    parser.set_defaults(fn=_main)
