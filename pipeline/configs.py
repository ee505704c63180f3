"""Typed pipeline configuration: one dataclass, loadable from YAML/JSON, overridable by flags.

Defaults follow the papers where a paper fixes a value (batch 32, 4 negatives, Adam 1e-4,
50 clicks, 30 title tokens); presets scale the run down (``demo`` is the README's default run
on a 2-core CPU, ``tiny`` is for tests).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pathlib
from typing import Any

import yaml

from components.errors import UserError
from components.gating import GateConfig, MetricTable
from pipeline.families import FAMILIES, Family, all_models, load
from trainer.config_base import TrainingConfig


@dataclasses.dataclass
class FamilyConfig:
    """One task family's data, Transform settings, family training settings and gate."""

    dataset: str = "synthetic"
    """`synthetic` (generated with planted structure) or one of the family's real sources
    (news: `mind`)."""
    data_dir: str | None = None
    """Directory of the real source; for `synthetic` the data are generated here (default:
    `<output_dir>/data/<family>-synthetic-<preset>`)."""
    synthetic_preset: str = "demo"
    """Preset of the family's synthetic generator."""
    source_options: dict[str, str] = dataclasses.field(default_factory=dict)
    """Extra settings of a real source (`Family.source_options`; tags: `tags_dir`, e.g. ml-10m's
    tags for ml-1m ratings; CTR and tags: `max_users`, e.g. 1500 of ml-1m's users)."""
    transform: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Fields of the family's Transform config (news: `NewsTransformConfig`)."""
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The family's own training fields (news: `negatives`), on top of the shared `training`."""
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)
    """Floors, allowed drops and gains over a sibling, over the family's gate metrics (defaults:
    the family's)."""


def _default_families() -> dict[str, FamilyConfig]:
    return {
        name: FamilyConfig(gate=GateConfig(min_value=dict(f.default_min_value), max_drop=dict(f.default_max_drop),
                                           min_gain=dict(f.default_min_gain)))
        for name, f in FAMILIES.items()
    }


@dataclasses.dataclass
class PipelineConfig:
    """Everything `usermodel run` needs; see the README for the flags that override it."""

    pipeline_name: str = "usermodel"
    """Name of the pipeline (MLMD context and Kubeflow pipeline name)."""
    output_dir: str = "runs/default"
    """Holds pipeline artifacts, the metadata store, the serving root, logs and the summary."""
    models: list[str] = dataclasses.field(default_factory=lambda: ["nrms"])
    """Models to train, evaluate, gate and push (registry names of any family)."""
    train_steps: int = 2000
    """Training steps per model, unless `training.epochs` is set (then epochs decide)."""
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    """Training settings shared by all models (model/model_config are set per model)."""
    families: dict[str, FamilyConfig] = dataclasses.field(default_factory=_default_families)
    """Per task family (`news`, ...): data, Transform, the family's training fields, gate."""
    model_configs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per model: a config preset name or field overrides."""
    beam_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    )
    """Beam pipeline args (DirectRunner locally; pass Dataflow/Flink/Spark flags here)."""

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "pipeline")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_root(self) -> str:
        return os.path.join(self.output_dir, "serving")

    def run_families(self) -> list[Family]:
        """The families of `models`, in registry order."""
        owners = all_models()
        present = {owners[m].name for m in self.models if m in owners}
        return [f for name, f in FAMILIES.items() if name in present]

    def models_of(self, family: Family) -> list[str]:
        owners = all_models()
        return [m for m in self.models if owners.get(m) is family]

    def data_dir_of(self, family: Family) -> str:
        section = self.families[family.name]
        return section.data_dir or os.path.join(
            self.output_dir, "data", f"{family.name}-synthetic-{section.synthetic_preset}"
        )

    def gate_of(self, family: Family) -> GateConfig:
        return self.families[family.name].gate

    def metrics_of(self, family: Family) -> MetricTable:
        """The family's metric table for the data source this run reads (`Family.metrics_of`)."""
        return family.metrics_of(self.families[family.name].dataset)

    def _family_training(self, family: Family) -> dict[str, Any]:
        """The shared training fields set away from their defaults, then the data source's
        (`Family.dataset_training`), with the family's own on top.

        A shared field left at its default does not override the family config class's own
        default (the CTR family evaluates 1024 rows per batch, not the shared 64 examples)."""
        defaults = TrainingConfig()
        shared = {f.name: getattr(self.training, f.name) for f in dataclasses.fields(TrainingConfig)
                  if getattr(self.training, f.name) != getattr(defaults, f.name)}
        section = self.families[family.name]
        return {**shared, **family.dataset_training.get(section.dataset, {}), **section.training}

    def training_for(self, model: str) -> dict[str, Any]:
        """The Trainer's custom_config of `model`: shared and family training fields, the
        model's config and the Transform settings it must agree with."""
        family = all_models()[model]
        values = {**self._family_training(family), "model": model, "model_config": self.model_configs.get(model),
                  "transform": dict(self.families[family.name].transform)}
        return family.training_config_class().from_dict(values).to_dict()

    def validate(self) -> None:
        owners = all_models()
        unknown = [m for m in self.models if m not in owners]
        if unknown or not self.models:
            known = "; ".join(f"{f.name}: {', '.join(sorted(f.registry()))}" for f in FAMILIES.values())
            raise ConfigError(f"models: {unknown or 'none given'} — known models: {known}")
        if self.training.epochs is None and self.train_steps < 1:
            raise ConfigError("train_steps: must be at least 1")
        for family in self.run_families():
            self._validate_family(family)
        self._validate_word_vectors(self._model_configs())

    def _validate_family(self, family: Family) -> None:
        where = f"families.{family.name}"
        section = self.families[family.name]
        if section.dataset not in family.datasets:
            raise ConfigError(f"{where}.dataset: {section.dataset!r} is not one of {', '.join(family.datasets)}")
        unknown = set(section.source_options) - set(family.source_options)
        if unknown:
            raise ConfigError(f"{where}.source_options: unknown {sorted(unknown)}; known: "
                              f"{', '.join(family.source_options) or 'none for this family'}")
        if section.dataset != "synthetic" and not section.data_dir:
            raise ConfigError(f"{where}.data_dir: required when dataset is {section.dataset!r}")
        try:
            family.transform_config_class().from_dict(section.transform)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}.transform: {err}") from None
        if family.check_section:
            try:
                load(family.check_section)(section)
            except ValueError as err:
                raise ConfigError(f"{where}.{err}") from None
        try:
            family.training_config_class().from_dict(self._family_training(family))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}.training: {err}") from None
        try:
            self.gate_of(family).validate(self.metrics_of(family))
        except UserError as err:
            raise ConfigError(f"{where}.{err}") from None
        for model in self.models_of(family):
            sibling = family.siblings.get(model)
            if sibling and sibling not in self.models:
                raise ConfigError(f"models: {model} is gated against {sibling} of the same run; "
                                  f"add {sibling} to the models")

    def _model_configs(self) -> dict[str, Any]:
        """Every model's config, built now so that a misspelt or out-of-range field stops the
        run before ingestion rather than in its Trainer."""
        owners = all_models()
        configs = {}
        for model in self.models:
            try:
                configs[model] = owners[model].registry().make_config(model, self.model_configs.get(model))
            except (TypeError, ValueError) as err:
                raise ConfigError(f"model_configs.{model}: {err}") from None
        return configs

    def _validate_word_vectors(self, model_configs: dict[str, Any]) -> None:
        source = self.training.word_vectors
        if not source:
            return
        from trainer.word_vectors import SOURCES

        if source not in SOURCES:
            raise ConfigError(f"training.word_vectors: {source!r} is not one of {', '.join(SOURCES)}")
        for model, config in model_configs.items():
            dim = getattr(config, "embedding_dim", None)
            if dim != SOURCES[source]:
                raise ConfigError(
                    f"model_configs.{model}.embedding_dim: {dim} does not match training.word_vectors "
                    f"{source!r} ({SOURCES[source]}-d vectors)"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The shared part of each preset; every family adds its section and model configs
# (`Family.presets` in pipeline/families.py).
_SHARED_PRESETS: dict[str, dict[str, Any]] = {
    # The README's default run: minutes on a 2-core CPU, clearly above chance. It trains the
    # NRMS baseline and FUM, the paper model that beats it, and gates and pushes both.
    "demo": {"train_steps": 600, "models": ["nrms", "fum"], "training": {"learning_rate": 1e-3}},
    # Unit/e2e tests: seconds per component.
    "tiny": {"train_steps": 60, "training": {"learning_rate": 3e-3, "batch_size": 16}},
    # The papers' settings (for real data on a real machine): the official FUM run trains
    # 3 epochs at batch 32.
    "paper": {"training": {"epochs": 3}},
}


def preset_values(name: str) -> dict[str, Any]:
    """The config values of preset `name`: the shared part plus every family's.

    A deep copy: a config built from it may be changed (the CLI's length flags) without
    changing the preset for later configs of the same process.
    """
    values = {**_SHARED_PRESETS[name], "families": {}, "model_configs": {}}
    for family in FAMILIES.values():
        part = family.presets.get(name, {})
        values["families"][family.name] = dict(part.get("section", {}))
        values["model_configs"].update(part.get("model_configs", {}))
    return copy.deepcopy(values)


PRESETS = tuple(_SHARED_PRESETS)


class ConfigError(UserError, ValueError):
    """A user-facing configuration mistake (the message names the field)."""


def _merge(cls, base, values: dict[str, Any], where: str):
    """Builds dataclass `cls` from `base` with `values` applied (nested dataclasses merged)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}{key}: unknown field; known: {', '.join(sorted(fields))}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = _merge(type(current), current, value, f"{where}{key}.")
        elif key == "families":  # a section per family, each merged like a nested dataclass
            value = _merge_families(current, value, f"{where}{key}.")
        kwargs[key] = value
    try:
        return dataclasses.replace(base, **kwargs)
    except (TypeError, ValueError) as err:  # a dataclass's own check (__post_init__)
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: {err}") from None


def _merge_families(current: dict[str, FamilyConfig], values: Any, where: str) -> dict[str, FamilyConfig]:
    if not isinstance(values, dict):
        raise ConfigError(f"{where.rstrip('.')}: expected a mapping of family sections, got {type(values).__name__}")
    unknown = set(values) - set(current)
    if unknown:
        raise ConfigError(f"{where}{sorted(unknown)[0]}: unknown family; known: {', '.join(current)}")
    return {name: _merge(FamilyConfig, section, values[name], f"{where}{name}.") if name in values else section
            for name, section in current.items()}


def load_config(
    preset: str = "demo",
    path: str | None = None,
    overrides: dict[str, Any] | None = None,
    data_dirs: list[str] | None = None,
    dataset: str | None = None,
) -> PipelineConfig:
    """Preset, then a YAML/JSON file, then flag overrides (later wins); validated.

    `data_dirs` are `--data-dir` flags: `FAMILY=DIR`, or a plain `DIR` when the run's models are
    of one family. `dataset` (`--dataset`) names that family's source; a data directory without
    it means the family's first real source (news: `mind`).
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
    config = _merge(PipelineConfig, PipelineConfig(), preset_values(preset), "")
    if path:
        text = pathlib.Path(path).read_text()
        try:
            values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {err}") from None
        config = _merge(PipelineConfig, config, values or {}, f"{path}: ")
    config = _merge(PipelineConfig, config, {k: v for k, v in (overrides or {}).items() if v is not None}, "")
    config = _apply_data_flags(config, data_dirs or [], dataset)
    config.validate()
    return config


def _apply_data_flags(config: PipelineConfig, data_dirs: list[str], dataset: str | None) -> PipelineConfig:
    """`--data-dir [FAMILY=]DIR` and `--dataset NAME` applied to their families' sections."""
    changes: dict[str, dict[str, Any]] = {}
    for item in data_dirs:
        name, sep, path = item.partition("=")
        if not (sep and name in FAMILIES):
            name, path = _only_family(config, "--data-dir"), item
        changes.setdefault(name, {})["data_dir"] = path
    if dataset:
        for name in changes or [_only_family(config, "--dataset")]:
            changes.setdefault(name, {})["dataset"] = dataset
    for name, change in changes.items():
        if "dataset" not in change and config.families[name].dataset == "synthetic":
            change["dataset"] = FAMILIES[name].datasets[1]
    return _merge(PipelineConfig, config, {"families": changes}, "") if changes else config


def _only_family(config: PipelineConfig, flag: str) -> str:
    families = [f.name for f in config.run_families()]
    if len(families) != 1:
        raise ConfigError(f"{flag}: the models span the families {', '.join(families) or 'none'}; "
                          f"name one as FAMILY=DIR (families: {', '.join(FAMILIES)})")
    return families[0]
