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
