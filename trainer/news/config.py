"""The news family's Transform and training settings, in a module of their own: the pipeline
config and the benchmark read them without importing TensorFlow."""

from __future__ import annotations

import dataclasses

from trainer.config_base import DictConfig, TrainingConfig


@dataclasses.dataclass
class NewsTransformConfig(DictConfig):
    """Sizes fixed at Transform time (passed as TFX ``custom_config``)."""

    history_length: int = 50
    """Clicks kept per user (most recent); the papers use 50."""
    title_length: int = 30
    """Title tokens kept per article (NRMS/FUM use 30)."""
    abstract_length: int = 50
    """Abstract tokens kept per article (FUM's official code: 50)."""
    entity_length: int = 8
    """Entities kept per article: the title's, then the abstract's (Wikidata ids)."""
    max_words: int = 100_000
    """Word vocabulary cap (most frequent first)."""
    min_word_count: int = 1
    """Words seen fewer times than this map to unknown."""


@dataclasses.dataclass
class NewsTrainingConfig(TrainingConfig):
    """The generic training config plus news sampling (the papers: 1 click + 4 negatives)."""

    negatives: int = 4
    """K negatives per click (NRMS/FUM: 4)."""
