"""Typed pipeline configuration: one dataclass, loadable from YAML/JSON, overridable by flags.

Defaults follow the papers where a paper fixes a value (batch 32, 4 negatives, Adam 1e-4,
50 clicks, 30 title tokens); presets scale the run down (``demo`` is the README's default run
on a 2-core CPU, ``tiny`` is for tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import yaml

from components.errors import UserError
from components.gating import GateConfig

from trainer.preprocessing import NewsTransformConfig
from trainer.run_fn import TrainingConfig

DATASETS = ("synthetic", "mind")


@dataclasses.dataclass
class PipelineConfig:
    """Everything `usermodel run` needs; see the README for the flags that override it."""

    pipeline_name: str = "usermodel"
    """Name of the pipeline (MLMD context and Kubeflow pipeline name)."""
    output_dir: str = "runs/default"
    """Holds pipeline artifacts, the metadata store, the serving root, logs and the summary."""
    dataset: str = "synthetic"
    """`synthetic` (generated with planted structure) or `mind` (a MIND-format directory)."""
    data_dir: str | None = None
    """MIND-format directory (behaviors.tsv, news.tsv); for `synthetic` it is generated here."""
    synthetic_preset: str = "demo"
    """Preset of components.ingest.synthetic used when dataset is `synthetic`."""
    models: list[str] = dataclasses.field(default_factory=lambda: ["nrms"])
    """Models to train, evaluate, gate and push (trainer/models registry names)."""
    train_steps: int = 2000
    """Training steps per model, unless `training.epochs` is set (then epochs decide)."""
    transform: NewsTransformConfig = dataclasses.field(default_factory=NewsTransformConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    """Training hyper-parameters shared by all models (model/model_config are set per model)."""
    model_configs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per model: a config preset name or field overrides."""
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)
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

    def resolved_data_dir(self) -> str:
        return self.data_dir or os.path.join(self.output_dir, "data", f"synthetic-{self.synthetic_preset}")

    def training_for(self, model: str) -> TrainingConfig:
        return dataclasses.replace(
            self.training, model=model, model_config=self.model_configs.get(model),
            transform=dataclasses.asdict(self.transform),
        )

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset: {self.dataset!r} is not one of {', '.join(DATASETS)}")
        if self.dataset == "mind" and not self.data_dir:
            raise ConfigError("data_dir: required when dataset is 'mind' (a directory with behaviors.tsv, news.tsv)")
        from trainer.models import MODELS

        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(f"models: {unknown or 'none given'} — known models: {', '.join(sorted(MODELS))}")
        if self.training.epochs is None and self.train_steps < 1:
            raise ConfigError("train_steps: must be at least 1")
        self._validate_word_vectors(self._model_configs())
        try:
            self.gate.validate()
        except UserError as err:
            raise ConfigError(str(err)) from None

    def _model_configs(self) -> dict[str, Any]:
        """Every model's config, built now so that a misspelt or out-of-range field stops the
        run before ingestion rather than in its Trainer."""
        from trainer.models import make_config

        configs = {}
        for model in self.models:
            try:
                configs[model] = make_config(model, self.model_configs.get(model))
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


# FUM at the demo scale (news and user vectors 128-d, as NRMS's 8 x 16); its ablations share it,
# the fine-only one with its fine model as wide as the coarse model (8 x 16 heads, 128-d clicks),
# as the official fine-only variant (trainer/models/fum.py: FUMNoCoarseConfig).
_DEMO_FUM = {"embedding_dim": 64, "num_heads": 8, "head_dim": 16, "attention_hidden_dim": 64,
             "category_dim": 32, "news_dim": 128, "fine_num_heads": 2, "fine_head_dim": 16,
             "fine_news_dim": 32, "fine_dim": 32, "entity_num_heads": 4, "entity_head_dim": 16}
_DEMO_FUM_NO_COARSE = {**_DEMO_FUM, "fine_num_heads": 8, "fine_news_dim": 128}

PRESETS: dict[str, dict[str, Any]] = {
    # The README's default run: minutes on a 2-core CPU, clearly above chance. It trains the
    # NRMS baseline and FUM, the paper model that beats it, and gates and pushes both.
    "demo": {"synthetic_preset": "demo", "train_steps": 600, "models": ["nrms", "fum"],
             "training": {"learning_rate": 1e-3},
             "transform": {"history_length": 30, "title_length": 16, "abstract_length": 16},
             "model_configs": {"nrms": {"embedding_dim": 64, "num_heads": 8, "head_dim": 16,
                                        "attention_hidden_dim": 64},
                               "lstur": {"embedding_dim": 64, "num_filters": 96, "category_dim": 16,
                                         "attention_hidden_dim": 64},
                               "fum": _DEMO_FUM, "fum_no_fine": _DEMO_FUM, "fum_no_coarse": _DEMO_FUM_NO_COARSE}},
    # Unit/e2e tests: seconds per component.
    "tiny": {"synthetic_preset": "tiny", "train_steps": 60,
             "training": {"learning_rate": 3e-3, "batch_size": 16},
             "transform": {"history_length": 10, "title_length": 10, "abstract_length": 8},
             "model_configs": {"nrms": "tiny", "lstur": "tiny", "fum": "tiny", "fum_no_fine": "tiny",
                               "fum_no_coarse": "tiny"},
             "gate": {"min_value": {"group_auc": 0.5}}},
    # The papers' settings (for real MIND on a real machine): the official FUM run trains
    # 3 epochs at batch 32.
    "paper": {"training": {"epochs": 3}},
}


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
        kwargs[key] = value
    try:
        return dataclasses.replace(base, **kwargs)
    except (TypeError, ValueError) as err:  # a dataclass's own check (__post_init__)
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: {err}") from None


def load_config(preset: str = "demo", path: str | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Preset, then a YAML/JSON file, then flag overrides (later wins); validated."""
    if preset not in PRESETS:
        raise ConfigError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
    config = _merge(PipelineConfig, PipelineConfig(), PRESETS[preset], "")
    if path:
        text = pathlib.Path(path).read_text()
        try:
            values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {err}") from None
        config = _merge(PipelineConfig, config, values or {}, f"{path}: ")
    config = _merge(PipelineConfig, config, {k: v for k, v in (overrides or {}).items() if v is not None}, "")
    config.validate()
    return config
