"""The generic training loop's pieces (`trainer/loop.py`)."""

from __future__ import annotations

import pytest

from trainer import loop


def test_training_by_epochs_or_steps():
    assert loop.steps_per_epoch(100, 32) == 4 and loop.steps_per_epoch(0, 32) == 1
    assert loop.TrainingConfig(epochs=3, batch_size=32).total_steps(100, train_steps=None) == 3 * 4
    assert loop.TrainingConfig(epochs=3, batch_size=32).total_steps(100, train_steps=500) == 12  # epochs win
    assert loop.TrainingConfig(batch_size=32).total_steps(100, train_steps=500) == 500
    with pytest.raises(ValueError, match="epochs: must be at least 1"):
        loop.TrainingConfig(epochs=0)


def test_progress_plan_rounds_up_by_less_than_a_step_per_log():
    assert loop.progress_plan(600) == (600, 100)
    assert loop.progress_plan(60) == (60, 60)
    assert loop.progress_plan(239) == (240, 80)  # one epoch of the tiny data: 3 lines
    assert loop.progress_plan(3 * 1208) == (3626, 98)  # the demo data's 3 epochs: 37 lines of 98
    assert loop.progress_plan(1) == (1, 1)


def test_training_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"Unknown TrainingConfig fields: \['batchsize'\]"):
        loop.TrainingConfig.from_dict({"batchsize": 3})


def test_split_files(tmp_path):
    for split in ("train", "eval"):
        (tmp_path / f"Split-{split}").mkdir()
        (tmp_path / f"Split-{split}" / "data.gz").write_text("")
    assert loop.split_files([str(tmp_path / "Split-train")], "eval") == [str(tmp_path / "Split-eval" / "data.gz")]
    with pytest.raises(FileNotFoundError, match="split news"):
        loop.split_files([str(tmp_path / "Split-train")], "news")
