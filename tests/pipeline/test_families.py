"""The family descriptors (`pipeline/families.py`): every dotted path resolves, and the config,
graph and report treat each family alike."""

from __future__ import annotations

import dataclasses
import os

import pytest
import tensorflow_model_analysis as tfma

from components.metrics import tfma_metrics
from pipeline import configs
from pipeline.families import FAMILIES, all_models, family_of
from trainer.config_base import DictConfig, ModelRegistry
from trainer.loop import TrainingConfig


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_descriptor_names_what_exists(name):
    family = FAMILIES[name]
    assert os.path.exists(family.schema_file)
    assert isinstance(family.registry(), ModelRegistry) and family.registry()
    assert issubclass(family.transform_config_class(), DictConfig)
    assert issubclass(family.training_config_class(), TrainingConfig)
    for dotted in (family.preprocessing_fn, family.run_fn, family.example_gen, family.prepare_data):
        module, _, attr = dotted.rpartition(".")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr)), dotted
    for class_name, _ in family.metrics.values():
        assert hasattr(tfma_metrics, class_name) or hasattr(tfma.metrics, class_name), class_name
    assert set(family.default_min_value) <= set(family.metrics) and set(family.default_max_drop) <= set(family.metrics)
    assert family.datasets[0] == "synthetic"
    for model, sibling in family.siblings.items():
        assert model in family.registry() and sibling in family.registry()


def test_every_model_has_one_family():
    owners = all_models()
    assert sum(len(f.registry()) for f in FAMILIES.values()) == len(owners)  # no name in two families
    assert family_of("fum").name == "news"
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        family_of("nope")


@pytest.mark.parametrize("preset", configs.PRESETS)
def test_presets_build_every_model_of_every_family(preset):
    config = configs.load_config(preset, overrides={"models": sorted(all_models())})
    assert {f.name for f in config.run_families()} == set(FAMILIES)
    for model in config.models:
        custom = config.training_for(model)
        assert custom["model"] == model
        assert all_models()[model].training_config_class().from_dict(custom).model == model


def test_data_dir_flags_name_their_family(tmp_path):
    config = configs.load_config("tiny", data_dirs=[f"news={tmp_path}"])
    news = config.families["news"]
    assert (news.data_dir, news.dataset) == (str(tmp_path), "mind")  # a real directory: the family's source
    plain = configs.load_config("tiny", data_dirs=[str(tmp_path)], dataset="mind")
    assert plain.families["news"] == dataclasses.replace(news)
    synthetic = configs.load_config("tiny", data_dirs=[str(tmp_path)], dataset="synthetic")
    assert synthetic.families["news"].dataset == "synthetic"  # generated into that directory
    with pytest.raises(configs.ConfigError, match="families.news.dataset: 'movielens' is not one of"):
        configs.load_config("tiny", data_dirs=[str(tmp_path)], dataset="movielens")


def test_sibling_baseline_and_pre_steps_in_the_graph(monkeypatch, tmp_path):
    """A model gated against a sibling of the run keeps its own gate (resolver baseline: its
    previous version, blessed by its combined blessing), is compared with the sibling's model of
    the run by a second Evaluator, and is pushed on the blessing that needs both; a model with a
    pre-step trains with TrainerWithInputs fed by it."""
    from components.trainer_with_inputs import TrainerWithInputs
    from pipeline import families
    from pipeline.pipeline import create_pipeline

    news = dataclasses.replace(
        families.NEWS, siblings={"fum": "nrms"},
        pre_steps={"fum": {"centers": "test_families.trivial_pre_step"}, "lstur": {"centers": "test_families.trivial_pre_step"}},
    )
    monkeypatch.setitem(families.FAMILIES, "news", news)
    seen_trainers.clear()
    config = configs.load_config("tiny", overrides={"models": ["nrms", "fum", "lstur"], "output_dir": str(tmp_path)})
    nodes = {c.id: c for c in create_pipeline(config).components}
    assert nodes["Evaluator.fum"].inputs["baseline_model"].producer_component_id == "Baseline.fum"
    assert nodes["Compare.fum"].inputs["baseline_model"].producer_component_id == "Trainer.nrms"
    assert nodes["Compare.fum"].inputs["model"].producer_component_id == "Trainer.fum"
    blessing = nodes["Blessing.fum"]
    assert {k: blessing.inputs[k].producer_component_id for k in ("own_gate", "sibling_gate")} == {
        "own_gate": "Evaluator.fum", "sibling_gate": "Compare.fum"}
    assert nodes["Pusher.fum"].inputs["model_blessing"].producer_component_id == "Blessing.fum"
    assert nodes["Pusher.nrms"].inputs["model_blessing"].producer_component_id == "Evaluator.nrms"
    assert "Compare.nrms" not in nodes and "Blessing.nrms" not in nodes
    resolver_config = {m: nodes[f"Baseline.{m}"].exec_properties["source_uri"] for m in ("fum", "nrms")}
    assert resolver_config["fum"]["blessing_id"] == "Blessing.fum"
    assert resolver_config["nrms"]["blessing_id"] == "Evaluator.nrms"
    assert isinstance(nodes["Trainer.fum"], TrainerWithInputs) and not isinstance(nodes["Trainer.nrms"], TrainerWithInputs)
    assert [i for i in nodes if i.startswith("PreStep")] == ["PreStep.centers"]  # built once, shared
    assert nodes["Trainer.lstur"].inputs["pre_step_centers"].producer_component_id == "PreStep.centers"
    assert seen_trainers == [["nrms"]]  # the factory saw the trainers without pre-steps, once
    with pytest.raises(configs.ConfigError, match="fum is gated against nrms of the same run; add nrms"):
        configs.load_config("tiny", overrides={"models": ["fum"]})


def test_mfn_centers_pre_step_in_the_ctr_graph(tmp_path):
    """MFN's interest centers are built once for mfn and mfn_no_combination, read the run's
    Base (Trainer.embedding_mlp) and the CTR Transform, and feed both MFN Trainers; the
    w/o-pretrain ablation needs no centers; every MFN is gated against the Base."""
    from components.trainer_with_inputs import TrainerWithInputs
    from pipeline.pipeline import create_pipeline

    models = ["embedding_mlp", "mfn", "mfn_no_pretrain", "mfn_no_combination"]
    config = configs.load_config("tiny", overrides={"models": models, "output_dir": str(tmp_path)})
    nodes = {c.id: c for c in create_pipeline(config).components}
    assert [i for i in nodes if i.startswith("InterestCenters")] == ["InterestCenters.ctr"]
    centers = nodes["InterestCenters.ctr"]
    assert {k: c.producer_component_id for k, c in centers.inputs.items()} == {
        "transformed_examples": "Transform.ctr", "transform_graph": "Transform.ctr",
        "auxiliary_model": "Trainer.embedding_mlp"}
    assert centers.exec_properties["num_interests"] == 4
    for model in ("mfn", "mfn_no_combination"):
        assert isinstance(nodes[f"Trainer.{model}"], TrainerWithInputs)
        assert nodes[f"Trainer.{model}"].inputs["pre_step_centers"].producer_component_id == "InterestCenters.ctr"
    assert not isinstance(nodes["Trainer.mfn_no_pretrain"], TrainerWithInputs)
    assert not isinstance(nodes["Trainer.embedding_mlp"], TrainerWithInputs)
    for model in models[1:]:
        assert nodes[f"Compare.{model}"].inputs["baseline_model"].producer_component_id == "Trainer.embedding_mlp"
        assert nodes[f"Pusher.{model}"].inputs["model_blessing"].producer_component_id == f"Blessing.{model}"
    with pytest.raises(configs.ConfigError, match="mfn is gated against embedding_mlp of the same run"):
        configs.load_config("tiny", overrides={"models": ["mfn"]})


seen_trainers: list = []


def trivial_pre_step(example_gen, transform, trainers, config):
    """A pre-step factory for the graph test: imports an artifact."""
    seen_trainers.append(sorted(trainers))
    from tfx import v1 as tfx
    from tfx.types import standard_artifacts

    node = tfx.dsl.Importer(source_uri="/tmp/centers", artifact_type=standard_artifacts.ExternalArtifact)
    return node.with_id("PreStep.centers"), "result"


def test_source_options_reach_the_example_gen_and_unknown_ones_are_named(tmp_path):
    """ml-1m ratings with ml-10m tags (UTPM's MovieLens protocol): `tags_dir` reaches the
    MovieLens ExampleGen; an option the family does not take is a config error naming it."""
    from pipeline.pipeline import create_pipeline

    tags_dir = str(tmp_path / "ml-10m-tags")
    config = configs.load_config("tiny", overrides={
        "models": ["youtube_dnn"], "output_dir": str(tmp_path),
        "families": {"tags": {"dataset": "movielens", "data_dir": str(tmp_path / "ml-1m"),
                              "source_options": {"tags_dir": tags_dir}}}})
    nodes = {c.id: c for c in create_pipeline(config).components}
    assert nodes["ExampleGen.tags"].exec_properties["tags_dir"] == tags_dir
    with pytest.raises(configs.ConfigError, match=r"families.news.source_options: unknown \['tags_dir'\]"):
        configs.load_config("tiny", overrides={"families": {"news": {"source_options": {"tags_dir": "x"}}}})


def test_max_users_from_a_config_file_reaches_both_sequence_example_gens(tmp_path):
    """`families: {ctr: {source_options: {max_users: 1500}}}` (YAML gives an int) is what
    `usermodel run --config` needs for a user subset; the tags family takes it too, news not."""
    from pipeline.pipeline import create_pipeline

    path = tmp_path / "c.yaml"
    path.write_text("models: [embedding_mlp, youtube_dnn]\n"
                    "families:\n"
                    "  ctr: {dataset: movielens, data_dir: /d/ml-1m, source_options: {max_users: 1500}}\n"
                    "  tags: {dataset: movielens, data_dir: /d/ml-1m, source_options: {max_users: '40'}}\n")
    config = configs.load_config("tiny", str(path), overrides={"output_dir": str(tmp_path)})
    nodes = {c.id: c for c in create_pipeline(config).components}
    assert nodes["ExampleGen.ctr"].exec_properties["max_users"] == 1500
    assert nodes["ExampleGen.tags"].exec_properties["max_users"] == 40
    with pytest.raises(configs.ConfigError, match=r"families.news.source_options: unknown \['max_users'\]"):
        configs.load_config("tiny", overrides={"families": {"news": {"source_options": {"max_users": 5}}}})


def test_tags_gate_reports_both_candidate_sets():
    """Prec@K over the user's history tags carries the gate; Prec@K over all tags is reported."""
    from pipeline.families import TAGS

    assert list(TAGS.metrics) == ["prec@1", "prec@2", "prec@3", "prec@1_all", "prec@2_all", "prec@3_all"]
    assert TAGS.metrics["prec@2"] == ("PrecisionAtK", {"k": 2, "candidates_key": "candidate_tags"})
    assert TAGS.metrics["prec@2_all"] == ("PrecisionAtK", {"k": 2, "name": "prec@2_all"})
    assert set(TAGS.default_min_value) | set(TAGS.default_max_drop) == {"prec@1"}
    for preset in configs.PRESETS:
        assert set(configs.load_config(preset).families["tags"].gate.min_value) == {"prec@1"}


def test_a_data_source_names_its_own_cut_offs(monkeypatch, tmp_path):
    """The K set is the data source's: a source with its own Prec@K table (news: 1, 5, 10, 20,
    50) gets those metrics in its Evaluator and report, the others keep the family's; a gate on
    a K the source does not compute is a config error naming it."""
    import json

    from pipeline import families
    from pipeline.pipeline import create_pipeline

    tags = dataclasses.replace(families.TAGS, dataset_metrics={"movielens": families.prec_at_k_metrics((1, 5, 50))})
    monkeypatch.setitem(families.FAMILIES, "tags", tags)
    real = {"families": {"tags": {"dataset": "movielens", "data_dir": str(tmp_path / "ml")}}}
    config = configs.load_config("tiny", overrides={"models": ["youtube_dnn"], "output_dir": str(tmp_path), **real})
    assert list(config.metrics_of(tags)) == ["prec@1", "prec@5", "prec@50", "prec@1_all", "prec@5_all", "prec@50_all"]
    nodes = {c.id: c for c in create_pipeline(config).components}
    eval_config = json.loads(nodes["Evaluator.youtube_dnn"].exec_properties["eval_config"])
    metrics = {m["class_name"] + m.get("config", "") for m in eval_config["metrics_specs"][0]["metrics"]}
    assert 'PrecisionAtK{"k": 50, "candidates_key": "candidate_tags"}' in metrics
    assert 'PrecisionAtK{"k": 50, "name": "prec@50_all"}' in metrics
    assert not any('"k": 2' in m for m in metrics)
    synthetic = configs.load_config("tiny", overrides={"models": ["youtube_dnn"]})
    assert list(synthetic.metrics_of(tags)) == list(families.TAGS.metrics)
    with pytest.raises(configs.ConfigError, match=r"families.tags.gate.min_value: unknown metrics \['prec@2'\]"):
        configs.load_config("tiny", overrides={"models": ["youtube_dnn"], "families": {
            "tags": {**real["families"]["tags"], "gate": {"min_value": {"prec@2": 0.5}}}}})
