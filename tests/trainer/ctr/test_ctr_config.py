"""The CTR family's configs and data-source check (trainer/ctr/config.py)."""

from __future__ import annotations

import io

import pytest

from components.errors import UserError
from pipeline import configs
from trainer.ctr.config import CTRTransformConfig, prepare_data


def test_taobao_is_wired_and_its_negatives_option_checked_before_the_run(tmp_path):
    (tmp_path / "UserBehavior.csv").write_text("1,2,3,pv,1511544070\n")
    config = configs.load_config("tiny", overrides={"models": ["embedding_mlp"]}, data_dirs=[str(tmp_path)],
                                 dataset="taobao")
    assert config.families["ctr"].dataset == "taobao"
    prepare_data("taobao", str(tmp_path), "tiny", io.StringIO(), negatives_per_click="2")
    with pytest.raises(UserError, match="families.ctr.source_options.negatives_per_click: 'x' is not"):
        prepare_data("taobao", str(tmp_path), "tiny", io.StringIO(), negatives_per_click="x")
    with pytest.raises(UserError, match="families.ctr.source_options.negatives_per_click: only Taobao"):
        prepare_data("movielens", str(tmp_path), "tiny", io.StringIO(), negatives_per_click="1")
    with pytest.raises(UserError, match="families.ctr.dataset: 'criteo' is not wired"):
        prepare_data("criteo", str(tmp_path), "tiny", io.StringIO())


def test_transform_config_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="history_length: must be at least 1"):
        CTRTransformConfig(history_length=0)
    with pytest.raises(configs.ConfigError, match="families.ctr.transform: .*max_categories"):
        configs.load_config("tiny", overrides={"models": ["din", "embedding_mlp"],
                                               "families": {"ctr": {"transform": {"max_categories": 0}}}})


def test_history_definition_is_validated_with_the_field_named():
    assert CTRTransformConfig().history == "clicked" and CTRTransformConfig(history="all").history == "all"
    with pytest.raises(ValueError, match="history: must be one of 'clicked', 'all', got 'clicks'"):
        CTRTransformConfig(history="clicks")
    with pytest.raises(configs.ConfigError, match="families.ctr.transform: history: must be one of"):
        configs.load_config("tiny", overrides={"models": ["din", "embedding_mlp"],
                                               "families": {"ctr": {"transform": {"history": "everything"}}}})
    # The one section reaches the Transform, every Trainer and the centers pre-step alike.
    config = configs.load_config("tiny", overrides={"models": ["din", "embedding_mlp"],
                                                    "families": {"ctr": {"transform": {"history": "all"}}}})
    assert config.families["ctr"].transform["history"] == "all"
    assert all(config.training_for(m)["transform"]["history"] == "all" for m in ("din", "embedding_mlp"))
