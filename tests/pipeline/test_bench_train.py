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
    real = x["hist_mask"] > 0
    assert real.sum(axis=1).min() >= 3  # histories at least 60 % full
    assert (x["hist_title"][..., 0][real] > 0).all() and (x["cand_title"][..., 0] > 0).all()
    assert (x["hist_title"][~real] == 0).all() and (x["hist_category"][~real] == 0).all()


def test_lengths_from_a_mind_directory(tmp_path):
    (tmp_path / "news.tsv").write_text(
        "N1\tnews\tsub\tA short title!\tAn abstract of six tokens .\turl\t[]\t[]\n"
        "N2\tnews\tsub\tTwo words\t\turl\t[]\t[]\n"
    )
    (tmp_path / "behaviors.tsv").write_text("1\tU1\tdate\tN1 N2\tN1-1\n2\tU2\tdate\t\tN2-0\n")
    pools = bench_train.length_pools(str(tmp_path))
    assert sorted(pools["title"]) == [2, 4] and sorted(pools["abstract"]) == [0, 6]
    assert sorted(pools["history"]) == [0, 2]
    cfg = bench_train.BenchConfig(batch_size=64, history_length=5, title_length=3, abstract_length=6)
    x, _ = bench_train.synthetic_batch(np.random.default_rng(0), cfg, ("title",), pools)
    title_lengths = (x["cand_title"] > 0).sum(-1)
    assert set(np.unique(title_lengths)) == {2, 3}  # 4 capped at 3
    assert set(np.unique(x["hist_mask"].sum(1))) == {1, 2}  # empty histories keep one click
    with pytest.raises(Exception, match="lengths-from"):
        bench_train.length_pools(str(tmp_path / "missing"))


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
    assert args.fn is bench_train._run and args.steps == 3 and args.embedding_dim == 50
    assert cli.build_parser().parse_args(["bench", "train", "--embedding-dim", "300"]).embedding_dim == 300


    with pytest.raises(Exception, match="unknown"):
        bench_train._run(argparse.Namespace(models=["nrms,nope"], steps=1, windows=1, jit_compile=False,
                                            mixed_precision=False, batch_size=2, json=None,
                                            embedding_dim=8, lengths_from=None))
    run = cli.build_parser().parse_args(["run", "--preset", "tiny", "--models", "nrms,lstur", "fum"])
    assert cli._load_config(run, None).models == ["nrms", "lstur", "fum"]
