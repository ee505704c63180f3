"""The CTR family's Transform and training settings, in a module of their own: the pipeline
config and the CLI read them without importing TensorFlow.

Also the family's click rule and the data sources it can read, so the docs, the Transform, the
input pipeline and the export all cite one definition.
"""

from __future__ import annotations

import dataclasses
from typing import TextIO

from components.errors import UserError
from trainer.config_base import DictConfig, TrainingConfig

CLICK_RATING = 4.0
"""MovieLens has ratings, not clicks: a rating ≥ 4 (of 5) counts as a click, anything lower as
an impression without a click (the usual explicit-to-implicit rule of CTR work on MovieLens,
e.g. MFN's preprocessing). Which events make up a history is `CTRTransformConfig.history`."""

HISTORIES = ("clicked", "all")
"""What a user's history (the behaviours a target is scored against) is made of:

* ``"clicked"`` (the default): the user's earlier *clicked* events only. DIN's and MFN's user
  behaviours are clicked items, the models' input contract says so (`models/ctr_model.py`:
  ``hist_item`` = clicked item ids), and sampled negative events (Taobao) must never become
  behaviours. Measured on the demo data in docs/ctr.md.
* ``"all"``: every earlier rated event, clicked or not (the family's first definition), kept so
  the two can be compared.
"""

WIRED_DATASETS = ("synthetic", "movielens")
"""Sources the CTR family trains on now. Taobao has no ratings (its behaviours need a click
rule and negative sampling of their own) and is refused before the run starts."""


@dataclasses.dataclass
class CTRTransformConfig(DictConfig):
    """Sizes fixed at Transform time (passed as TFX ``custom_config``)."""

    history_length: int = 50
    """Most recent behaviours kept as a target's history (DIN/MFN truncate to tens; 50 as the
    news papers)."""
    title_length: int = 16
    """Title words kept per item (MovieLens titles are short; the year is dropped)."""
    max_categories: int = 4
    """Categories (MovieLens genres, the Taobao category) kept per item; ml movies have ≤ 10."""
    max_words: int = 100_000
    """Title-word vocabulary cap (most frequent first)."""
    history: str = "clicked"
    """Which earlier events form a history, one of `HISTORIES`. Read by the Transform (eval
    users' ``history``), the Trainer (training samples), the export (``serving_default``'s raw
    history) and MFN's interest-centers pre-step, which all get this one config section."""

    def __post_init__(self) -> None:
        for name in ("history_length", "title_length", "max_categories", "max_words"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.history not in HISTORIES:
            raise ValueError(f"history: must be one of {', '.join(map(repr, HISTORIES))}, got {self.history!r}")


@dataclasses.dataclass
class CTRTrainingConfig(TrainingConfig):
    """The generic training config; CTR training is pointwise, with no family fields yet."""

    model: str = "embedding_mlp"
    """Registry name in `trainer/ctr/models`."""


def prepare_data(dataset: str, data_dir: str, synthetic_preset: str, out: TextIO, **source_options: str) -> None:
    """The behaviour-sequence `prepare_data` for the sources the CTR family reads.

    Raises:
        UserError: for a source that is not wired yet (Taobao), before any data is read.
    """
    if dataset not in WIRED_DATASETS:
        raise UserError(
            f"families.ctr.dataset: {dataset!r} is not wired yet for the CTR family "
            f"(it reads {', '.join(WIRED_DATASETS)}; Taobao has no ratings to derive clicks from)"
        )
    from components.ingest import sequence_example_gen

    sequence_example_gen.prepare_data(dataset, data_dir, synthetic_preset, out, **source_options)
