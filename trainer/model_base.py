"""What every family's Keras model shares: a config dataclass behind `get_config`, and the
paper's loss inside the model (the TFRS pattern), so `fit`/`evaluate` need no custom loop and
distillation or joint losses need no custom training code.

Only `keras` / `keras.ops` are used, so models run under TensorFlow and JAX.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
from keras import ops

from trainer.config_base import ModelConfig

__all__ = ["ConfiguredModel", "sigmoid_cross_entropy"]


def sigmoid_cross_entropy(y_true: Any, logits: Any, sample_weight: Any | None = None) -> Any:
    """Pointwise binary cross-entropy on logits: the CTR loss (MFN eq. 12, DIN Section 4.2) and
    UTPM's joint loss over an article's tags (eq. 4).

    `L = -mean_i w_i [y_i log σ(z_i) + (1 - y_i) log(1 - σ(z_i))]`, computed as
    `max(z, 0) - z y + log(1 + exp(-|z|))`, exact and finite for any logit. As in Keras'
    losses, weights scale the rows and the mean is over all rows.

    Args:
        y_true: labels in {0, 1}, `[B]` or `[B, 1]`.
        logits: float `[B]` (or `[B, 1]`).
        sample_weight: optional `[B]` row weights.

    Returns:
        Scalar float32.
    """
    z = ops.reshape(ops.cast(logits, "float32"), (-1,))
    y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
    per_row = ops.maximum(z, 0.0) - z * y + ops.log1p(ops.exp(-ops.abs(z)))
    if sample_weight is not None:
        per_row = per_row * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.mean(per_row)


class ConfiguredModel(keras.Model):
    """A Keras model built from one config dataclass, with the paper's loss in the model.

    Subclasses set `config_class` and implement `paper_loss(x, y, y_pred, sample_weight)`.
    `compute_loss` adds the layers' `losses` to it; a `loss` given to `compile` takes
    precedence (Keras' own handling). `get_config` / `from_config` go through the config's
    dict round trip, so a saved model needs nothing but its file.

    Args:
        config: an instance of `config_class`, its `to_dict()`, or None for the defaults.
        **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    config_class: ClassVar[type[ModelConfig]]

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = self.config_class.from_dict(config)
        self.config = config

    def paper_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """The paper's training loss (scalar float32)."""
        raise NotImplementedError

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None, training: bool = True
    ) -> Any:
        """`paper_loss` plus the layers' losses (or the compiled loss, when one was given)."""
        if getattr(self, "_compile_loss", None) is not None:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        losses = [self.paper_loss(x, y, y_pred, sample_weight)] if y is not None else []
        losses.extend(ops.cast(loss, "float32") for loss in self.losses)
        if not losses:
            return ops.zeros((), dtype="float32")
        return losses[0] if len(losses) == 1 else ops.sum(ops.stack(losses))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["config"] = self.config.to_dict()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConfiguredModel:
        config = dict(config)
        return cls(cls.config_class.from_dict(config.pop("config")), **config)
