"""What the explanation commands share: rebuilt models get the run's trained weights, and labels
are shortened to fit a table cell and a heatmap axis."""

from __future__ import annotations

import os
from typing import Any

from components.errors import UserError

__all__ = ["load_run_config", "restore_weights", "short_label"]


def load_run_config(output_dir: str) -> Any:
    """The `PipelineConfig` a `usermodel run` wrote to `output_dir/config.json`.

    Raises:
        UserError: when `output_dir` holds no run.
    """
    path = os.path.join(output_dir, "config.json")
    if not os.path.exists(path):
        raise UserError(f"--output-dir: {path} not found: is {output_dir} the --output-dir of a `usermodel run`?")
    from pipeline import configs

    return configs.load_config("paper", path)


def restore_weights(model: Any, saved_model_dir: str) -> None:
    """Assigns the variables of a run's exported SavedModel to `model`, rebuilt from the run's
    config, matched by their path below the model's name (which Keras may number, so it is left
    out on both sides). An explanation needs Keras methods (attention weights, interests) that
    the exported signatures do not offer, hence the rebuild instead of the SavedModel itself.

    Raises:
        UserError: when the SavedModel's variables do not fit the model (another model or config).
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    saved = {v.name.split("/", 1)[-1].removesuffix(":0"): v for v in getattr(loaded, "variables", [])}
    if not model.built:
        model.build()
    missing = []
    for variable in model.weights:
        key = variable.path.split("/", 1)[-1]
        source = saved.get(key)
        if source is None or tuple(source.shape) != tuple(variable.shape):
            missing.append(key)
            continue
        variable.assign(source.numpy())
    if missing:
        raise UserError(f"{saved_model_dir}: the exported model does not match {type(model).__name__} "
                        f"with the run's config (missing or resized: {', '.join(missing[:5])})")


def short_label(label: str, chars: int) -> str:
    """`label` cut to `chars` characters, an ellipsis marking the cut."""
    return label if len(label) <= chars else label[: chars - 1] + "…"
