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

WIRED_DATASETS = ("synthetic", "movielens", "taobao", "mind")
"""Sources the CTR family trains on. Taobao has no ratings: its ExampleGen gives every behaviour
rating 5 (a click under `CLICK_RATING`) and adds sampled negatives with rating 0
(`components/ingest/negatives.py`; source option `negatives_per_click`). MIND's clicked articles
get rating 5 and its shown-not-clicked ones rating 0 (`components/ingest/sequence_examples.py`)."""


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
class InterestCentersConfig(DictConfig):
    """Algorithm 1's settings (MFN, Section 3.2), for the interest-centers pre-step
    (`components/interest_centers.py` → `interests.fit_interest_centers`).

    The paper gives none of them for the public data sets; the defaults fit the centers of a
    MovieLens-sized run in seconds and lower L_E on the tiny and demo runs (docs/mfn.md). K is
    not here: it is the MFN models' `num_interests` (one K for both levels, the paper's K), and
    the seed is the run's training seed.
    """

    steps: int = 300
    """Adam steps, each over a mini-batch of users."""
    batch_size: int = 128
    """Users per step."""
    learning_rate: float = 0.01
    """Adam's learning rate."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"interest_centers.{name}: must be at least 1, got {getattr(self, name)}")
        if not float(self.learning_rate) > 0:
            raise ValueError(f"interest_centers.learning_rate: must be > 0, got {self.learning_rate}")


@dataclasses.dataclass
class CTRTrainingConfig(TrainingConfig):
    """The generic training config and the settings of MFN's interest-centers pre-step."""

    model: str = "embedding_mlp"
    """Registry name in `trainer/ctr/models`."""
    eval_batch_size: int = 1024
    """(history, target) rows per batch of the Trainer's evaluation (`ctr_input.evaluation_batches`)."""
    interest_centers: InterestCentersConfig = dataclasses.field(default_factory=InterestCentersConfig)
    """Algorithm 1's settings (`families.ctr.training.interest_centers` in the pipeline config);
    they reach the centers pre-step, which runs before MFN's Trainer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.interest_centers, dict):  # from a config file or TFX custom_config
            try:
                self.interest_centers = InterestCentersConfig.from_dict(self.interest_centers)
            except TypeError as err:
                raise ValueError(f"interest_centers: {err}") from None
            except ValueError as err:
                raise ValueError(err if str(err).startswith("interest_centers") else f"interest_centers: {err}") from None


def check_section(section) -> None:
    """Settings of one `families.ctr` section that cannot go together (`Family.check_section`).

    Taobao's sampled negatives are events with rating 0: a history of every event
    (`history: all`) would show the model the negatives as behaviours, so that pairing is refused
    unless sampling is off (`negatives_per_click: 0`).
    """
    history = CTRTransformConfig.from_dict(section.transform).history
    sampling = str(section.source_options.get("negatives_per_click", "1")).strip() != "0"
    if section.dataset == "taobao" and history == "all" and sampling:
        raise ValueError(
            "transform.history: 'all' would put Taobao's sampled negatives (rating 0) into the histories; "
            "use history: clicked, or set source_options.negatives_per_click: 0"
        )


def prepare_data(dataset: str, data_dir: str, synthetic_preset: str, out: TextIO, **source_options: str) -> None:
    """The behaviour-sequence `prepare_data` for the sources the CTR family reads.

    Raises:
        UserError: for a source that is not wired, or a bad source option (the field named
            under `families.ctr`), before any data is read.
    """
    if dataset not in WIRED_DATASETS:
        raise UserError(
            f"families.ctr.dataset: {dataset!r} is not wired for the CTR family (it reads {', '.join(WIRED_DATASETS)})"
        )
    from components.ingest import sequence_example_gen

    try:
        sequence_example_gen.prepare_data(dataset, data_dir, synthetic_preset, out, **source_options)
    except UserError as err:
        if str(err).startswith("source_options."):
            raise UserError(f"families.ctr.{err}") from None
        raise
