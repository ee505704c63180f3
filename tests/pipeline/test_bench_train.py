"""Tests for `usermodel bench train` (the harness, not the speed: speed is measured, not tested)."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from pipeline import bench_ctr, bench_train, cli


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


def _args(**overrides) -> argparse.Namespace:
    """`bench train` arguments as the parser gives them without flags, plus `overrides`."""
    return argparse.Namespace(**{**vars(cli.build_parser().parse_args(["bench", "train"])), **overrides})


def test_cli_wiring():
    args = cli.build_parser().parse_args(["bench", "train", "--models", "nrms,fum", "lstur", "--steps", "3"])
    assert args.fn is bench_train._run and args.steps == 3 and args.embedding_dim is None
    assert cli.build_parser().parse_args(["bench", "train", "--embedding-dim", "300"]).embedding_dim == 300

    with pytest.raises(Exception, match="unknown"):
        bench_train._run(_args(models=["nrms,nope"]))
    run = cli.build_parser().parse_args(["run", "--preset", "tiny", "--models", "nrms,lstur", "fum"])
    assert cli._load_config(run, None).models == ["nrms", "lstur", "fum"]


def test_models_name_their_family():
    assert bench_train._family(_args()) == ("news", [])
    assert bench_train._family(_args(models=["din,mfn", "embedding_mlp"])) == ("ctr", ["din", "mfn", "embedding_mlp"])
    assert bench_train._family(_args(family="ctr")) == ("ctr", [])
    for wrong in (_args(models=["nrms,din"]), _args(models=["nrms"], family="ctr")):
        with pytest.raises(Exception, match="one family per run"):
            bench_train._family(wrong)
    with pytest.raises(Exception, match="lengths-from"):
        bench_train._run(_args(models=["din"], lengths_from="/tmp"))


def _ctr_cfg(**overrides) -> bench_ctr.CTRBenchConfig:
    return bench_ctr.CTRBenchConfig(**{"batch_size": 16, "history_length": 7, "max_categories": 3, "title_length": 5,
                                       "num_items": 60, "num_categories": 9, "vocab_size": 40, **overrides})


def test_ctr_batches_have_padding_empty_histories_and_unknown_ids():
    cfg = _ctr_cfg()
    first, second = bench_ctr.batches(cfg, 2), bench_ctr.batches(cfg, 2)
    for (x, y), (x2, y2) in zip(first, second):  # the same batches for every model
        assert all(np.array_equal(x[k], x2[k]) for k in x) and np.array_equal(y, y2)
    batches = bench_ctr.batches(_ctr_cfg(batch_size=256), 1) + first
    for x, y in batches:
        b = len(y)
        assert x["hist_item"].shape == (b, 7) and x["hist_categories"].shape == (b, 7, 3)
        assert x["hist_words"].shape == (b, 7, 5) and x["target_words"].shape == (b, 5)
        assert x["target_categories"].shape == (b, 3) and x["target_item"].shape == (b,)
        real = x["hist_mask"] > 0
        assert real.sum(1).min() < 7  # padding in every batch
        assert (real == (np.arange(7) < real.sum(1, keepdims=True))).all()  # padded at the end
        assert (x["hist_item"][real] >= 1).all() and (x["hist_item"][~real] == 0).all()
        assert (x["hist_words"][~real] == 0).all() and (x["hist_categories"][~real] == 0).all()
        assert (x["hist_categories"][..., 0][real] >= 2).all()  # every item has a genre
        assert (x["target_words"][:, 0] >= 1).all() and set(np.unique(y)) <= {0.0, 1.0}
    x, _ = batches[0]
    counts = x["hist_mask"].sum(1)
    assert (counts == 0).any() and 0.6 < (counts == 7).mean() < 0.8  # empty and full histories
    assert (x["hist_item"] == 1).any() and (x["target_item"] == 1).any() and (x["hist_words"] == 1).any()
    lengths = (x["hist_words"] > 0).sum(-1)[x["hist_mask"] > 0]
    assert lengths.min() == 1 and lengths.max() > 3  # titles of varying length


def test_ctr_measure_reports_every_model_on_the_same_batches():
    cfg = _ctr_cfg(models=["embedding_mlp", "din", "mfn", "mfn_no_pretrain"], embedding_dim=4, word_dim=6,
                   steps=2, windows=2)
    lines = []
    results = bench_ctr.measure(cfg, lines.append)
    assert [r["model"] for r in results] == cfg.models and len(lines) == 2
    for result in results:
        assert result["parameters"] > 0 and len(result["train_window_s"]) == 2
        assert "cached_inference_users_per_s" not in result
        for key in ("train_samples_per_s", "train_ms_per_step", "train_cpu_ms_per_step",
                    "full_inference_samples_per_s"):
            assert np.isfinite(result[key]) and result[key] > 0, key
    table = bench_ctr.markdown(results)
    assert table.count("\n") == 5 and "| 100% |" in table and "cached" not in table
    assert table.splitlines()[0].count("|") == table.splitlines()[2].count("|") == 8


def test_ctr_mfn_gets_fixed_tables_and_centers():
    cfg = _ctr_cfg(embedding_dim=4, word_dim=6)
    rng = np.random.default_rng(0)
    model = bench_ctr.build("mfn", cfg, rng)
    model.build()
    assert model.config.fixed_dim == 4 and tuple(model.centers["category"].shape) == (4, 8)
    assert tuple(model.centers["fine"].shape) == (4, 6) and not model.centers["fine"].trainable
    assert float(np.abs(np.asarray(model.fixed["words"].embeddings)).mean()) > 0.5  # not a small init
    assert not bench_ctr.build("mfn_no_pretrain", cfg, rng).fixed
