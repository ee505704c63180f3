"""What every model's dataclass config shares: named presets, a dict round trip, and the check of
an optional pretrained word-vector matrix.

The configs themselves (NRMSConfig, LSTURConfig, FUMConfig) stay plain dataclasses with attribute
docstrings; they inherit these methods so that the registry (`trainer/models/__init__.py`), the
pipeline config and `get_config`/`from_config` treat every model alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = ["ModelConfig"]

_C = TypeVar("_C", bound="ModelConfig")


class ModelConfig:
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

    @classmethod
    def from_dict(cls: type[_C], values: dict[str, Any]) -> _C:
        """Builds a config from `to_dict()` output; unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} fields: {sorted(unknown)}.")
        return cls(**values)

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
