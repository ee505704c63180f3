"""What the dataclass configs of every family share: a strict dict round trip (`DictConfig`),
and for models named presets, the check of an optional pretrained word-vector matrix
(`ModelConfig`) and a name → (config, model) registry (`ModelRegistry`).

The configs themselves (NRMSConfig, FUMConfig, the Transform and training configs) stay plain
dataclasses with attribute docstrings; they inherit these methods so that the registries, the
pipeline config and `get_config`/`from_config` treat every model alike. Unknown keys are errors
everywhere: a misspelt field never falls back silently to its default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = ["DictConfig", "ModelConfig", "ModelRegistry", "TrainingConfig", "steps_per_epoch"]

_C = TypeVar("_C", bound="DictConfig")


class DictConfig:
    """Mixin for `@dataclasses.dataclass` configs built from plain dicts (TFX custom_config, JSON)."""

    @classmethod
    def from_dict(cls: type[_C], values: dict[str, Any]) -> _C:
        """Builds a config from `to_dict()` output; unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} fields: {sorted(unknown)}; known: {sorted(names)}.")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


class ModelConfig(DictConfig):
    """Mixin for `@dataclasses.dataclass` model configs.

    Subclasses define `PRESETS` (preset name -> field overrides) and, if they take pretrained
    word vectors, the fields `pretrained_embeddings`, `vocab_size` and `embedding_dim`.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def preset(cls: type[_C], name: str, **overrides: Any) -> _C:
        """A named configuration with optional field overrides.

        Args:
            name: a key of `PRESETS` (e.g. `"paper"`, `"tiny"`).
            **overrides: field values replacing the preset's.

        Returns:
            A new config.
        """
        if name not in cls.PRESETS:
            raise ValueError(f"Unknown {cls.__name__} preset {name!r}; known: {sorted(cls.PRESETS)}.")
        return cls(**{**cls.PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable fields (without `pretrained_embeddings`: the saved weights carry it)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name != "pretrained_embeddings"
        }

    def _check_pretrained_embeddings(self) -> None:
        """Validates `pretrained_embeddings` (if given) as `[vocab_size, embedding_dim]` float32.

        A zero `vocab_size` is taken from the matrix, so a config can be built from vectors alone.
        """
        if self.pretrained_embeddings is None:  # type: ignore[attr-defined]
            return
        matrix = np.asarray(self.pretrained_embeddings, dtype="float32")  # type: ignore[attr-defined]
        if matrix.ndim != 2:
            raise ValueError("pretrained_embeddings must be 2-D.")
        if self.vocab_size in (0, None):  # type: ignore[attr-defined]
            self.vocab_size = matrix.shape[0]
        expected = (self.vocab_size, self.embedding_dim)  # type: ignore[attr-defined]
        if matrix.shape != expected:
            raise ValueError(f"pretrained_embeddings has shape {matrix.shape}, expected {expected}.")
        self.pretrained_embeddings = matrix


class ModelRegistry(dict):
    """A family's models: registry name → (config dataclass, Keras model class).

    Every family has one (`trainer/<family>/models/__init__.py: MODELS`); the pipeline's family
    descriptors name it, so a model name says which family trains it.
    """

    def make_config(self, name: str, config: Any = None, **overrides: Any) -> Any:
        """The config dataclass instance for model `name`.

        Args:
            name: a registry key.
            config: `None` (the model's defaults), a preset name (str), a dict of
                fields, or an instance of the model's config class.
            **overrides: field values applied on top.

        Returns:
            An instance of the model's config class.
        """
        if name not in self:
            raise ValueError(f"Unknown model {name!r}; known: {sorted(self)}.")
        config_cls, _ = self[name]
        if config is None:
            config = config_cls()
        elif isinstance(config, str):
            config = config_cls.preset(config)
        elif isinstance(config, dict):
            config = config_cls.from_dict(config)
        elif not isinstance(config, config_cls):
            raise TypeError(
                f"config for {name!r} must be {config_cls.__name__}, a dict, a "
                f"preset name or None; got {type(config).__name__}."
            )
        if overrides:
            config = dataclasses.replace(config, **overrides)
        return config

    def build(self, name: str, config: Any = None, **overrides: Any) -> Any:
        """Instantiates model `name` from a config (see `make_config`); unbuilt, uncompiled."""
        config = self.make_config(name, config, **overrides)
        return self[name][1](config)


@dataclasses.dataclass
class TrainingConfig(DictConfig):
    """What every family's Trainer needs beyond the data (passed as TFX ``custom_config``).

    Families with more training settings subclass it (news: `negatives`)."""

    model: str = "nrms"
    """Registry name in the family's `trainer/<family>/models`."""
    model_config: dict[str, Any] | str | None = None
    """A preset name of the model's config, or field overrides, or None for paper defaults."""
    batch_size: int = 32
    """Samples per step; the papers use 32."""
    learning_rate: float = 1e-4
    """Adam learning rate (the papers: 1e-4)."""
    epochs: int | None = None
    """Train for this many passes over the training samples instead of `train_steps` (the
    official FUM run: 3 epochs at batch 32); steps per epoch = samples / batch size."""
    seed: int = 42
    """Seeds sampling, shuffling and initialisation."""
    eval_batch_size: int = 64
    """Examples per batch when evaluating after training."""
    transform: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The family's Transform config fields the Transform ran with (lengths)."""
    word_vectors: str | None = None
    """Pretrained word vectors to initialise the word embeddings with (`glove-6b-50d`, as the
    NRMS reference setup; needs `embedding_dim` 50), or None for random initialisation."""
    pre_steps: dict[str, str] = dataclasses.field(default_factory=dict)
    """URIs of pre-step artifacts by input name (set by the pipeline, not by users)."""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs: must be at least 1 (or unset to train by steps), got {self.epochs}")

    def total_steps(self, samples: int, train_steps: int | None) -> int:
        """`epochs` x steps per epoch when training by epochs, else the Trainer's `train_steps`."""
        if self.epochs is not None:
            return self.epochs * steps_per_epoch(samples, self.batch_size)
        if not train_steps:
            raise ValueError("neither training.epochs nor train_steps is set")
        return int(train_steps)


def steps_per_epoch(samples: int, batch_size: int) -> int:
    """Steps that show every sample once on average (at least one)."""
    return max(1, -(-samples // batch_size))
