"""Tests for `usermodel bench train` (the harness, not the speed: speed is measured, not tested)."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from pipeline import bench_train, cli


def test_synthetic_batch_layout():
    cfg = bench_train.BenchConfig(batch_size=3, history_length=5, title_length=4, abstract_length=6)
    x, y = bench_train.synthetic_batch(np.random.default_rng(0), cfg, ("title", "abstract", "category"))
    assert x["hist_title"].shape == (3, 5, 4) and x["cand_abstract"].shape == (3, 5, 6)
    assert x["cand_category"].shape == (3, 5) and y.shape == (3,) and y.max() < 5
    assert x["hist_mask"].sum(axis=1).min() >= 3  # histories at least 60 % full
    assert (x["hist_title"][..., 0] > 0).all()  # no empty title


def test_measure_reports_rates_for_every_model_kind():
    cfg = bench_train.BenchConfig(batch_size=2, history_length=3, title_length=4, abstract_length=4,
                                  embedding_dim=8, vocab_size=40, num_users=10, steps=1, windows=1,
                                  inference_candidates=3)
    lines = []
    results = bench_train.measure(dataclasses.replace(cfg, models=["lstur", "fum_no_coarse"]), lines.append)
    assert [r["model"] for r in results] == ["lstur", "fum_no_coarse"] and len(lines) == 1
    for result in results:
        assert result["parameters"] > 0 and len(result["train_window_s"]) == 1
        for key in ("train_samples_per_s", "full_inference_samples_per_s", "cached_inference_users_per_s"):
            assert np.isfinite(result[key]) and result[key] > 0, key
    table = bench_train.markdown([result, result], cfg)
    assert table.count("\n") == 3 and "| 100% |" in table


def test_cli_wiring():
    args = cli.build_parser().parse_args(["bench", "train", "--models", "nrms,fum", "lstur", "--steps", "3"])
    assert args.fn is bench_train._run and args.steps == 3
    with pytest.raises(Exception, match="unknown"):
        bench_train._run(argparse.Namespace(models=["nrms,nope"], steps=1, windows=1, jit_compile=False,
                                            mixed_precision=False, batch_size=2, json=None))
    run = cli.build_parser().parse_args(["run", "--preset", "tiny", "--models", "nrms,lstur", "fum"])
    assert cli._load_config(run, None).models == ["nrms", "lstur", "fum"]
