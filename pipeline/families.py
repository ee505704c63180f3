"""Task families at graph time: what the pipeline needs to build one family's subgraph.

A :class:`Family` names everything from raw data to a gated model that is the family's own
(DESIGN.md section 8): its data sources and synthetic generator, its ExampleGen, schema,
Transform splits, the dotted paths of its ``preprocessing_fn`` and ``run_fn``, its Transform and
training config types, its model registry, its gate metric table with the label and prediction
keys TFMA reads, and which models are gated against a sibling model of the same run.
`pipeline/pipeline.py` builds one subgraph per family present in a run; the runners, MLMD,
Pusher, summary and serving are shared. Adding a family is one :class:`Family` in `FAMILIES`
plus its folder under `trainer/`.

Everything heavy (Keras models, ExampleGen classes) is imported lazily, so reading this module
costs nothing until a family is used.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from typing import Any

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schemas")


def load(dotted: str) -> Any:
    """The object at a dotted path `package.module.attr`."""
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True, repr=False)
class Family:
    """One task family's graph-time descriptor."""

    name: str
    """Short name: node ids end in it (`Transform.news`) and configs are keyed by it."""
    task: str
    """What the family does, in a few words (shown by the CLI and the report)."""
    datasets: tuple[str, ...]
    """Data sources the ExampleGen reads; `synthetic` is generated with planted structure."""
    example_gen: str
    """Dotted path of ``example_gen(dataset, data_dir, **source_options) -> component``."""
    prepare_data: str
    """Dotted path of ``prepare_data(dataset, data_dir, synthetic_preset, out, **source_options)
    -> None``: generates the synthetic set on first use and checks a real directory before the
    run starts."""
    schema: str
    """File in `pipeline/schemas` that ImportSchemaGen reads (the raw examples' schema)."""
    analyze_splits: tuple[str, ...]
    """Transform analyzes these splits (vocabularies)."""
    transform_splits: tuple[str, ...]
    """Transform writes these splits (the Trainer reads `train`, `eval` and any catalog split)."""
    preprocessing_fn: str
    """Dotted path of the Transform ``preprocessing_fn``."""
    run_fn: str
    """Dotted path of the Trainer ``run_fn``."""
    transform_config: str
    """Dotted path of the Transform config dataclass (a `DictConfig`)."""
    training_config: str
    """Dotted path of the training config dataclass (a `loop.TrainingConfig`)."""
    models: str
    """Dotted path of the family's `ModelRegistry`."""
    metrics: Mapping[str, tuple[str, dict[str, Any]]]
    """Gate metric name → (TFMA metric class in `components.metrics.tfma_metrics` or TFMA's own,
    its config). The Evaluator computes all of them; the report shows them as columns."""
    label_key: str
    """The eval examples' label feature that TFMA reads."""
    prediction_key: str
    """The `serving_default` output that TFMA reads."""
    default_min_value: Mapping[str, float]
    """Default absolute floors (gate metric → minimum)."""
    default_max_drop: Mapping[str, float]
    """Default largest allowed drop against the latest blessed model of the same name."""
    default_min_gain: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Default smallest gain over the sibling model of the run, for models with a sibling
    (CTR: `rela_impr` ≥ 0)."""
    sibling_metrics: tuple[str, ...] = ()
    """Metrics that only mean something against a sibling (RelaImpr against the run's base
    model): computed by the sibling comparison only, not against a model's previous version."""
    label_signature: str | None = None
    """A SavedModel signature (serialized raw examples → features) that TFMA runs before
    reading `label_key`, for labels the raw eval example does not hold as such (CTR clicks
    from ratings, a user's clicked tags from the catalog inside the model); None: `label_key`
    is a raw feature."""
    source_options: tuple[str, ...] = ()
    """Extra settings of the data source that `FamilyConfig.source_options` may hold, passed to
    `example_gen` and `prepare_data` (tags: `tags_dir`, a directory whose tags file joins the
    ratings, e.g. ml-10m's tags for ml-1m ratings, UTPM's MovieLens protocol; CTR and tags:
    `max_users`, a fixed subset of the source's users for shorter runs)."""
    presets: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Pipeline preset name → {"section": this family's `FamilyConfig` values, "model_configs":
    its models' configs at that scale}; merged into the preset by `pipeline/configs.py`."""
    siblings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Model → a model of the same family and run it is also gated against, for metrics relative
    to a base model such as RelaImpr: a second Evaluator (TFMA baseline = the sibling's model of
    this run) checks `gate.min_gain`, the model's own Evaluator keeps its floors and no-regression
    checks, and the model is pushed only when both bless it (`components/blessing.py`)."""
    dataset_metrics: Mapping[str, Mapping[str, tuple[str, dict[str, Any]]]] = dataclasses.field(default_factory=dict)
    """Data source → its own metric table, replacing `metrics` for runs on it (a paper that
    reports other cut-offs on other data: UTPM's Prec@K at K ∈ {1, 2, 3} on MovieLens and
    {1, 5, 10, 20, 50} on news, `prec_at_k_metrics`). `metrics_of` picks."""
    dataset_training: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Data source → training fields it sets by default, under the user's `families.<f>.training`
    (the tags Trainer's own Prec@K cut-offs on MIND, matching `dataset_metrics`)."""
    check_section: str | None = None
    """Dotted path of ``check(section: FamilyConfig) -> None`` raising ValueError for settings
    that are valid one by one but not together (CTR: Taobao's sampled negatives with
    `history: all`); the config's validation names the family in the error."""
    pre_steps: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    """Model → {input name: dotted path of ``factory(example_gen, transform, trainers, config) ->
    (component, output key)``}: steps that run before the model's Trainer (MFN's interest
    centers, Tiny-NewsRec's teachers). `trainers` maps model name → the run's Trainer node, for
    the models without pre-steps (MFN's centers read the Base's item tables). Each factory's
    component is built once per run and its artifact's URI reaches run_fn as
    `TrainingConfig.pre_steps[name]`."""

    def __repr__(self) -> str:
        return f"Family({self.name!r})"

    def metrics_of(self, dataset: str) -> Mapping[str, tuple[str, dict[str, Any]]]:
        """The metric table of a run on `dataset` (`dataset_metrics`, else `metrics`)."""
        return self.dataset_metrics.get(dataset, self.metrics)

    @property
    def schema_file(self) -> str:
        return os.path.join(SCHEMA_DIR, self.schema)

    def registry(self):
        """The family's `ModelRegistry` (imports its models)."""
        return load(self.models)

    def transform_config_class(self) -> type:
        return load(self.transform_config)

    def training_config_class(self) -> type:
        return load(self.training_config)

    def make_example_gen(self, dataset: str, data_dir: str, **source_options: str):
        return load(self.example_gen)(dataset, data_dir, **source_options)

    def prepare(self, dataset: str, data_dir: str, synthetic_preset: str, out, **source_options: str) -> None:
        load(self.prepare_data)(dataset, data_dir, synthetic_preset, out, **source_options)


# FUM at the demo scale (news and user vectors 128-d, as NRMS's 8 x 16); its ablations share it,
# the fine-only one with its fine model as wide as the coarse model (8 x 16 heads, 128-d clicks),
# as the official fine-only variant (trainer/news/models/fum.py: FUMNoCoarseConfig).
_DEMO_FUM = {"embedding_dim": 64, "num_heads": 8, "head_dim": 16, "attention_hidden_dim": 64,
             "category_dim": 32, "news_dim": 128, "fine_num_heads": 2, "fine_head_dim": 16,
             "fine_news_dim": 32, "fine_dim": 32, "entity_num_heads": 4, "entity_head_dim": 16}
_DEMO_FUM_NO_COARSE = {**_DEMO_FUM, "fine_num_heads": 8, "fine_news_dim": 128}

NEWS = Family(
    name="news",
    task="news ranking (MIND format)",
    datasets=("synthetic", "mind"),
    example_gen="components.ingest.mind_example_gen.example_gen",
    prepare_data="components.ingest.mind_example_gen.prepare_data",
    schema="news.pbtxt",
    analyze_splits=("train", "news"),
    transform_splits=("train", "eval", "news"),
    preprocessing_fn="trainer.news.preprocessing.preprocessing_fn",
    run_fn="trainer.news.run.run_fn",
    transform_config="trainer.news.config.NewsTransformConfig",
    training_config="trainer.news.config.NewsTrainingConfig",
    models="trainer.news.models.MODELS",
    metrics={
        "group_auc": ("GroupAUC", {}),
        "mrr": ("MRR", {}),
        "ndcg@5": ("NDCGAtK", {"k": 5}),
        "ndcg@10": ("NDCGAtK", {"k": 10}),
    },
    label_key="labels",
    prediction_key="scores",
    default_min_value={"group_auc": 0.55},
    default_max_drop={"group_auc": 0.01, "ndcg@10": 0.01},
    presets={
        "demo": {
            "section": {"synthetic_preset": "demo",
                        "transform": {"history_length": 30, "title_length": 16, "abstract_length": 16}},
            "model_configs": {
                "nrms": {"embedding_dim": 64, "num_heads": 8, "head_dim": 16, "attention_hidden_dim": 64},
                "lstur": {"embedding_dim": 64, "num_filters": 96, "category_dim": 16, "attention_hidden_dim": 64},
                "fum": _DEMO_FUM, "fum_no_fine": _DEMO_FUM, "fum_no_coarse": _DEMO_FUM_NO_COARSE,
            },
        },
        "tiny": {
            "section": {"synthetic_preset": "tiny",
                        "transform": {"history_length": 10, "title_length": 10, "abstract_length": 8},
                        "gate": {"min_value": {"group_auc": 0.5}}},
            "model_configs": {m: "tiny" for m in ("nrms", "lstur", "fum", "fum_no_fine", "fum_no_coarse")},
        },
    },
)

_MFN = ("mfn", "mfn_no_pretrain", "mfn_no_combination")
"""MFN and its Table 1 ablations (trainer/ctr/models/mfn.py)."""

_BASELINES = ("mind", "comirec_sa", "transformer_rec")
"""The other Table 1 baselines (docs/mfn.md, "Table 1 baselines")."""

CTR = Family(
    name="ctr",
    task="click-through rate (behaviour sequences)",
    # Taobao: every behaviour is a click, with sampled negatives (components/ingest/negatives.py);
    # MIND: clicked and shown-not-clicked articles of impressions (docs/ctr.md, "MIND").
    datasets=("synthetic", "movielens", "taobao", "mind"),
    example_gen="components.ingest.sequence_example_gen.example_gen",
    prepare_data="trainer.ctr.config.prepare_data",
    source_options=("negatives_per_click", "max_users"),
    schema="ctr.pbtxt",
    analyze_splits=("train", "items"),
    transform_splits=("train", "eval", "items"),
    preprocessing_fn="trainer.ctr.preprocessing.preprocessing_fn",
    run_fn="trainer.ctr.run.run_fn",
    transform_config="trainer.ctr.config.CTRTransformConfig",
    training_config="trainer.ctr.config.CTRTrainingConfig",
    models="trainer.ctr.models.MODELS",
    # One TFMA example = one eval user: `pctr` scores their eval items against their train
    # history, the `labels` signature gives the clicks (rating >= 4, padding -1); `auc` is the
    # exact global AUC over every real (user, item) slot. RelaImpr (MFN eq. 13) needs a baseline:
    # DIN's is its sibling Embedding&MLP of the same run.
    metrics={
        "auc": ("GlobalAUC", {}),
        "rela_impr": ("RelaImpr", {"auc_metric": "auc"}),
    },
    label_key="clicks",
    prediction_key="pctr",
    label_signature="labels",
    default_min_value={"auc": 0.55},
    default_max_drop={"auc": 0.01},
    # DIN and MFN must not lose to the run's Base (MFN's RelaImpr ≥ 0), on top of their own gates.
    default_min_gain={"rela_impr": 0.0},
    sibling_metrics=("rela_impr",),
    presets={
        "demo": {
            # Two epochs at batch 128 (1,192 steps; the shared 600 steps of 32 are 0.25 epochs
            # of the 76k demo samples, and left both models near AUC 0.55-0.62).
            "section": {"synthetic_preset": "demo", "transform": {"history_length": 50, "title_length": 16},
                        "training": {"epochs": 2, "batch_size": 128}},
            # DIN's mini-batch aware L2 (its Section 5.1) for the Base and DIN, so RelaImpr compares
            # the pooling alone: without it DIN's attention barely learns (docs/ctr.md).
            "model_configs": {"embedding_mlp": {"embedding_dim": 32, "item_l2": 1e-3},
                              "din": {"embedding_dim": 32, "item_l2": 1e-3},
                              # MFN's fixed id vectors are the Base's 32-d tables (fixed_dim is set
                              # from the centers artifact); the trainable width matches the Base.
                              **{m: {"embedding_dim": 32, "item_l2": 1e-3} for m in _MFN + _BASELINES}},
        },
        "tiny": {
            # 300 users ("small"): with tiny's 60 the models memorise item ids (train AUC 0.95,
            # eval 0.55); two epochs of ~9k samples learn the planted genre preferences.
            "section": {"synthetic_preset": "small",
                        "transform": {"history_length": 10, "title_length": 8, "max_categories": 3},
                        "training": {"epochs": 2, "batch_size": 32}},
            "model_configs": {"embedding_mlp": "tiny", "din": "tiny", **{m: "tiny" for m in _MFN + _BASELINES}},
        },
    },
    # DIN and MFN must not lose to the run's Base (RelaImpr ≥ 0), on top of their own gates.
    siblings={"din": "embedding_mlp", **{m: "embedding_mlp" for m in _MFN + _BASELINES}},
    # MFN's interest centers (Algorithm 1) over the Base's item tables and GloVe, computed once
    # per run; "w/o pretrain" trains random centers itself and needs none.
    check_section="trainer.ctr.config.check_section",
    pre_steps={m: {"centers": "components.interest_centers.factory"} for m in ("mfn", "mfn_no_combination")},
)

CANDIDATE_TAGS = "candidate_tags"
"""The tag models' `labels` output with each user's history tags (trainer/tags/export.py)."""


def prec_at_k_metrics(ks: tuple[int, ...]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Prec@K (UTPM eq. 5) at each K for both candidate sets: `prec@K` ranks the user's own
    history tags (UTPM's candidate selection; what the gate uses), `prec@K_all` every tag."""
    history = {f"prec@{k}": ("PrecisionAtK", {"k": k, "candidates_key": CANDIDATE_TAGS}) for k in ks}
    every_tag = {f"prec@{k}_all": ("PrecisionAtK", {"k": k, "name": f"prec@{k}_all"}) for k in ks}
    return {**history, **every_tag}


TAGS = Family(
    name="tags",
    task="user-tag profiling (MovieLens ratings + tags, MIND news tags)",
    # MIND: UTPM's news setting, article tags = sub-categories or entities (docs/tags.md, "MIND").
    datasets=("synthetic", "movielens", "mind"),
    example_gen="components.ingest.sequence_example_gen.example_gen",
    prepare_data="components.ingest.sequence_example_gen.prepare_data",
    schema="tags.pbtxt",
    analyze_splits=("train", "items"),
    transform_splits=("train", "eval", "items"),
    preprocessing_fn="trainer.tags.preprocessing.preprocessing_fn",
    run_fn="trainer.tags.run.run_fn",
    transform_config="trainer.tags.config.TagsTransformConfig",
    training_config="trainer.tags.config.TagsTrainingConfig",
    models="trainer.tags.models.MODELS",
    # One TFMA example = one eval user; Prec@K over the user's history tags and over all tags,
    # at UTPM's MovieLens cut-offs (docs/tags.md), and at its news cut-offs on MIND.
    metrics=prec_at_k_metrics((1, 2, 3)),
    dataset_metrics={"mind": prec_at_k_metrics((1, 5, 10, 20, 50))},
    dataset_training={"mind": {"eval_ks": [1, 5, 10, 20, 50]}},
    label_key="clicked_tags",
    prediction_key="tag_scores",
    label_signature="labels",
    source_options=("tags_dir", "news_tags", "max_users"),
    # Floor on history-tag ranking. tags-tiny: a random history tag gives Prec@1 0.388 (a random
    # tag 0.107), YouTube-DNN 0.605 (docs/tags.md, "Floors").
    default_min_value={"prec@1": 0.5},
    default_max_drop={"prec@1": 0.02},
    presets={
        # tags-demo: a random history tag gives Prec@1 0.488 (a random tag 0.213); 8 epochs at
        # 3e-3 reach 0.81 (YouTube-DNN) and 0.83 (UTPM), the shared demo schedule (600 steps at
        # 1e-3) stays near chance (docs/tags.md).
        "demo": {"section": {"synthetic_preset": "tags-demo", "training": {"epochs": 8, "learning_rate": 3e-3},
                             "gate": {"min_value": {"prec@1": 0.6}}}},
        # 8 passes over the ~1,200 training samples (about 620 steps; 60 steps, the shared
        # tiny count, leave Prec@1 at chance).
        "tiny": {"section": {"synthetic_preset": "tags-tiny", "training": {"epochs": 8}},
                 "model_configs": {"youtube_dnn": "tiny"}},
    },
)

FAMILIES: dict[str, Family] = {f.name: f for f in (NEWS, CTR, TAGS)}
"""Every family, by name."""


def family_of(model: str) -> Family:
    """The family whose registry holds `model`."""
    for family in FAMILIES.values():
        if model in family.registry():
            return family
    known = {f.name: sorted(f.registry()) for f in FAMILIES.values()}
    raise KeyError(f"unknown model {model!r}; known: {known}")


def all_models() -> dict[str, Family]:
    """Model name → its family, over every family."""
    return {model: family for family in FAMILIES.values() for model in family.registry()}

