"""Typed config loading (preset → file → flags) and the CLI's user-facing behaviour."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from components.errors import UserError
from components.gating import GateConfig, eval_config
from pipeline import cli, configs
from pipeline.families import NEWS
from pipeline.pipeline import create_pipeline


def test_preset_file_and_flags_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_steps: 7\ntraining:\n  batch_size: 8\nfamilies:\n  news:\n    transform:\n      title_length: 12\n")
    config = configs.load_config("tiny", str(path), {"train_steps": 9, "output_dir": str(tmp_path)})
    assert config.train_steps == 9  # the flag wins over the file
    assert config.training.batch_size == 8 and config.training.learning_rate == 3e-3  # file, then preset
    assert config.families["news"].transform == {"title_length": 12}  # a file's section replaces the preset's
    assert config.training_for("nrms")["model_config"] == "tiny"
    assert config.training_for("nrms")["negatives"] == 4 and config.training_for("nrms")["batch_size"] == 8


@pytest.mark.parametrize(
    "text, message",
    [
        ("trainig: {}\n", "c.yaml: trainig: unknown field"),
        ("training:\n  batchsize: 3\n", "c.yaml: training.batchsize: unknown field"),
        ("models: [fum2]\n", "models: ['fum2']"),
        ("families:\n  news: {dataset: mind}\n", "families.news.data_dir: required"),
        ("families:\n  news: {dataset: movielens}\n", "families.news.dataset: 'movielens' is not one of synthetic, mind"),
        ("families:\n  news:\n    transform: {title_lenght: 3}\n", "families.news.transform: Unknown NewsTransformConfig fields"),
        ("families:\n  news:\n    training: {negativs: 3}\n", "families.news.training: Unknown NewsTrainingConfig fields"),
        ("families:\n  newz: {}\n", "c.yaml: families.newz: unknown family"),
        ("families:\n  news:\n    gate:\n      max_drop: {auc: 0.1}\n", "families.news.gate.max_drop: unknown metrics"),
        ("train_steps: [\n", "c.yaml: not valid YAML"),
        ("models: [fum]\nmodel_configs:\n  fum: {fine_use_bais: true}\n",
         "model_configs.fum: Unknown FUMConfig fields: ['fine_use_bais']"),
        ("models: [fum]\nmodel_configs:\n  fum: {fine_dim: 900}\n", "model_configs.fum: fine_dim must be in"),
        ("model_configs:\n  nrms: huge\n", "model_configs.nrms: Unknown NRMSConfig preset 'huge'"),
        ("training:\n  epochs: 0\n", "c.yaml: training: epochs: must be at least 1"),
        ("models: [embedding_mlp]\nfamilies:\n  ctr: {dataset: taobao, data_dir: /d, transform: {history: all}}\n",
         "families.ctr.transform.history: 'all' would put Taobao's sampled negatives"),
    ],
)
def test_config_mistakes_name_the_field(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(configs.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        configs.load_config("tiny", str(path))


def test_taobao_takes_every_event_as_history_only_without_sampled_negatives(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models: [embedding_mlp]\nfamilies:\n  ctr: {dataset: taobao, data_dir: /d, transform: {history: all},\n"
                    "        source_options: {negatives_per_click: 0}}\n")
    assert configs.load_config("tiny", str(path)).families["ctr"].transform["history"] == "all"


def test_pipeline_has_one_trainer_evaluator_pusher_per_model(tmp_path):
    config = configs.load_config("tiny", overrides={"output_dir": str(tmp_path)})
    ids = [c.id for c in create_pipeline(config).components]
    assert sorted(ids) == sorted(["ExampleGen.news", "StatisticsGen.news", "ImportSchemaGen.news", "Transform.news",
                                  "Trainer.nrms", "Baseline.nrms", "Evaluator.nrms", "Pusher.nrms"])
    metrics = eval_config(config.gate_of(NEWS), NEWS.metrics, "labels", "scores").metrics_specs[0].metrics
    floors = {m.class_name + m.config: m.threshold.value_threshold.lower_bound.value
              for m in metrics if m.threshold.HasField("value_threshold")}
    drops = {m.class_name + m.config: -m.threshold.change_threshold.absolute.value
             for m in metrics if m.threshold.HasField("change_threshold")}
    assert floors == {"GroupAUC": 0.5}
    assert drops == {"GroupAUC": 0.01, 'NDCGAtK{"k": 10}': 0.01}


def test_sibling_comparison_checks_only_the_gains():
    """The comparison with a sibling has `min_gain` as its only thresholds (candidate − sibling ≥
    gain); the model's own gate keeps floors and drops and no gains."""
    gate = GateConfig(min_value={"group_auc": 0.6}, max_drop={"group_auc": 0.01}, min_gain={"mrr": 0.0})
    gate.validate(NEWS.metrics)

    def thresholds(against_sibling):
        metrics = eval_config(gate, NEWS.metrics, "labels", "scores", against_sibling=against_sibling)
        return {m.class_name: json_format.MessageToDict(m.threshold)
                for m in metrics.metrics_specs[0].metrics if m.HasField("threshold")}

    assert thresholds(True) == {"MRR": {"changeThreshold": {"direction": "HIGHER_IS_BETTER", "absolute": 0.0}}}
    assert thresholds(False) == {"GroupAUC": {
        "valueThreshold": {"lowerBound": 0.6},
        "changeThreshold": {"direction": "HIGHER_IS_BETTER", "absolute": -0.01}}}
    with pytest.raises(UserError, match=r"gate.min_gain: unknown metrics \['rela_impr'\]"):
        GateConfig(min_gain={"rela_impr": 0.0}).validate(NEWS.metrics)


def _train_args(config, tmp_path):
    trainer = next(c for c in create_pipeline(config).components if c.id == "Trainer.nrms")
    train_args = json.loads(trainer.exec_properties["train_args"])  # the proto as JSON
    return train_args, json.loads(trainer.exec_properties["custom_config"])


def test_paper_preset_trains_by_epochs_and_flags_choose_steps_or_epochs(tmp_path):
    out = {"output_dir": str(tmp_path)}
    paper = configs.load_config("paper", overrides=out)
    assert paper.training.epochs == 3 and paper.training.batch_size == 32  # the official FUM run
    train_args, custom = _train_args(paper, tmp_path)
    assert "num_steps" not in train_args and custom["epochs"] == 3
    args = cli.build_parser().parse_args(["run", "--preset", "paper", "--train-steps", "50"])
    by_steps = cli._load_config(args, None)
    assert by_steps.training.epochs is None and by_steps.train_steps == 50
    assert _train_args(by_steps, tmp_path)[0]["num_steps"] == 50
    args = cli.build_parser().parse_args(["run", "--preset", "tiny", "--epochs", "2"])
    assert cli._load_config(args, None).training.epochs == 2
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--epochs", "2", "--train-steps", "5"])


def test_length_flags_decide_for_families_whose_preset_trains_by_epochs():
    """The demo CTR section trains 2 epochs; `--train-steps` / `--epochs` still decide."""
    def din_training(*flags):
        args = cli.build_parser().parse_args(["run", "--models", "embedding_mlp,din", *flags])
        return cli._load_config(args, None).training_for("din")

    assert din_training()["epochs"] == 2 and din_training()["batch_size"] == 128
    assert din_training("--train-steps", "50")["epochs"] is None
    assert din_training("--epochs", "1")["epochs"] == 1
    assert din_training()["epochs"] == 2  # the flags changed those configs, not the preset


def test_demo_fine_only_ablation_is_as_wide_as_the_coarse_model():
    from trainer.news.models import make_config

    demo = configs.load_config("demo")
    fine_only = make_config("fum_no_coarse", demo.model_configs["fum_no_coarse"])
    assert fine_only.fine_num_heads * fine_only.fine_head_dim == fine_only.num_heads * fine_only.head_dim
    assert fine_only.fine_news_dim == fine_only.news_dim == 128


def test_cli_user_mistakes_are_one_line_and_status_2(tmp_path, capsys):
    assert cli.main(["run", "--data-dir", str(tmp_path / "missing"), "--output-dir", str(tmp_path)]) == 2
    assert cli.main(["data", "inspect", "mind", str(tmp_path / "missing")]) == 2
    assert cli.main(["run", "--preset", "huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"usermodel: error: MIND directory {tmp_path / 'missing'} does not exist"
    assert err[-1].startswith("usermodel: error: preset: 'huge'")
    assert not any("Traceback" in line for line in err)


def test_cli_generates_and_inspects_data(tmp_path, capsys):
    out = tmp_path / "mind"
    assert cli.main(["data", "generate", "mind", "--out", str(out), "--preset", "tiny", "--seed", "3"]) == 0
    assert cli.main(["data", "inspect", "mind", str(out), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counters"]["impressions"] == 2000
    assert "| counter | count |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["bench", "train", "--steps", "0"], "must be positive, got 0"),
    (["bench", "train", "--windows", "-1"], "must be positive, got -1"),
    (["bench", "train", "--batch-size", "two"], "not a number: 'two'"),
    (["bench", "train", "--embedding-dim", "0"], "must be positive"),
    (["bench", "train", "--json", "/no/such/folder/out.json"], "folder /no/such/folder does not exist"),
    (["bench", "serve", "--target", "localhost:1", "--concurrency", "1", "0"], "must be positive"),
    (["bench", "serve", "--target", "localhost:1", "--duration", "0"], "must be positive"),
    (["bench", "serve", "--target", "localhost:1", "--candidates", "-5"], "must be positive"),
    (["bench", "serve", "--target", "localhost:1", "--json", "/"], "/ is a folder, not a file"),
    (["data", "inspect", "mind", "data", "--json", "/no/such/folder/out.json"], "folder /no/such/folder does not exist"),
])
def test_bad_counts_and_output_files_are_usage_errors(argv, message, capsys):
    # Rejected while parsing, before any model is built or measured.
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    flag = next(a for a in reversed(argv) if a.startswith("--"))
    assert f"argument {flag}: {message}" in err and "Traceback" not in err


def test_shared_training_fields_left_at_default_keep_the_family_default(tmp_path):
    """The CTR Trainer evaluates 1024 rows per batch unless someone sets `eval_batch_size`."""
    config = configs.load_config("tiny", None, {"output_dir": str(tmp_path), "models": ["embedding_mlp", "nrms"]})
    assert config.training_for("embedding_mlp")["eval_batch_size"] == 1024
    assert config.training_for("nrms")["eval_batch_size"] == 64
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  eval_batch_size: 256\n")
    config = configs.load_config("tiny", str(path), {"output_dir": str(tmp_path), "models": ["embedding_mlp"]})
    assert config.training_for("embedding_mlp")["eval_batch_size"] == 256


def test_the_tags_trainer_reports_the_data_sources_prec_at_k(tmp_path):
    """MIND's Prec@K cut-offs reach the tags Trainer's reference eval, as they reach TFMA's."""
    def eval_ks(dataset, training=None):
        families = {"tags": {"dataset": dataset, "data_dir": str(tmp_path), "training": training or {}}}
        config = configs.load_config("tiny", None, {"output_dir": str(tmp_path), "models": ["youtube_dnn"],
                                                    "families": families})
        return config.training_for("youtube_dnn")["eval_ks"]

    assert eval_ks("movielens") == [1, 2, 3]
    assert eval_ks("mind") == [1, 5, 10, 20, 50]
    assert eval_ks("mind", {"eval_ks": [1, 3]}) == [1, 3]  # the user's setting wins
