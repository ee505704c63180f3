"""`usermodel table`: aggregation over seeds on hand-made summaries, the seed loop (resumable)
with a stubbed runner, the command's argument errors, and one real run of the tiny preset."""

from __future__ import annotations

import json
import math
import os

import pytest

from components.errors import UserError
from pipeline import cli, tables
from pipeline.families import FAMILIES
from pipeline.tables import MFN_TABLE, UTPM_TABLE, SeedRun


def _seed(seed: int, models: dict[str, tuple[dict[str, float], bool]]) -> SeedRun:
    summary = {"data_dirs": {"ctr": "/data/ml-1m"},
               "models": [{"model": m, "metrics": metrics, "blessed": blessed}
                          for m, (metrics, blessed) in models.items()]}
    return SeedRun.from_summary(seed, f"/out/seed-{seed}", summary)


def _rows(text: str) -> dict[str, list[str]]:
    """The markdown table's cells by registry name."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 1 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = cells
    return rows


HAND_MADE = [
    _seed(1, {"embedding_mlp": ({"auc": 0.60}, True), "din": ({"auc": 0.61, "rela_impr": 0.10}, True)}),
    _seed(2, {"embedding_mlp": ({"auc": 0.62}, True), "din": ({"auc": 0.60, "rela_impr": -0.1667}, False)}),
    # Seed 3's comparison did not report RelaImpr (e.g. a failed sibling evaluation).
    _seed(3, {"embedding_mlp": ({"auc": 0.64}, True), "din": ({"auc": 0.65}, True)}),
]


def test_rows_are_mean_and_sample_std_over_the_seeds_in_the_papers_order():
    results = tables.aggregate(MFN_TABLE, HAND_MADE)
    assert [r.row.model for r in results] == MFN_TABLE.row_models()
    base, din = results[0], results[1]
    assert base.seeds == 3 and base.blessed == 3 and base.values == {"auc": [0.60, 0.62, 0.64]}
    assert base.cell(tables._AUC) == "0.6200 ± 0.0200"
    assert base.cell(tables._RELA_IMPR) == "-"  # the Base has no RelaImpr over itself
    assert din.cell(tables._AUC) == "0.6200 ± 0.0265"  # stdev(0.61, 0.60, 0.65) = 0.02646
    # RelaImpr in percent, over the two seeds that reported it.
    assert din.cell(tables._RELA_IMPR) == "-3.33 ± 18.86 (2/3)"
    assert din.blessed == 2


def test_markdown_marks_unblessed_and_unrun_rows_and_quotes_the_paper():
    text = tables.markdown(MFN_TABLE, HAND_MADE, command="usermodel table mfn --seed-list 1,2,3")
    rows = _rows(text)
    assert rows["embedding_mlp"][:4] == ["Base", "`embedding_mlp`", "3", "3/3"]
    assert rows["din"][0] == "DIN †" and rows["din"][3] == "2/3"  # still reported, with its metrics
    assert rows["din"][4] == "0.6200 ± 0.0265"
    assert rows["mind"][2:4] == ["0", "not run"] and rows["mind"][-1] == "1.37"  # the paper's number stays
    assert rows["mfn"][-1] == "2.20" and rows["din"][-1] == ""  # no paper number invented for DIN
    assert "`usermodel table mfn --seed-list 1,2,3`" in text
    assert "Seeds: 1, 2, 3 · data: ctr `/data/ml-1m`" in text
    assert "Not reported" not in text


def test_one_seed_has_no_spread_and_non_finite_values_count_nowhere():
    runs = [_seed(7, {"youtube_dnn": ({"prec@1": 0.25, "prec@2": math.nan, "prec@3": 0.2}, True)}),
            _seed(8, {"youtube_dnn": ({"prec@1": 0.25, "prec@2": 0.3, "prec@3": 0.2}, True),
                      "utpm": ({"prec@1": 0.5, "prec@2": 0.4, "prec@3": 0.3}, True)})]
    text = tables.markdown(UTPM_TABLE, runs)
    rows = _rows(text)
    # prec@1..3 shown, then the paper's; the all-tags columns no run reported are left out and named.
    assert rows["youtube_dnn"][2:] == ["2", "2/2", "0.2500 ± 0.0000", "0.3000 (1/2)", "0.2000 ± 0.0000",
                                       "0.7485", "0.7255", "0.7010"]
    assert rows["utpm"][2:] == ["1", "1/1", "0.5000", "0.4000", "0.3000", "0.7623", "0.7345", "0.7096"]
    assert rows["utpm_af1"][2:] == ["0", "not run", "", "", "", "", "", ""]
    assert "Not reported by these runs: Prec@1 all tags, Prec@2 all tags, Prec@3 all tags." in text


def test_table_specs_name_the_papers_rows():
    assert [r.label for r in MFN_TABLE.rows] == [
        "Base", "DIN", "MIND", "ComiRec-SA", "TransformerRec", "MFN w/o pretrain", "MFN w/o combination", "MFN"]
    quoted = {r.label: round(r.paper["rela_impr"] * 100, 2) for r in MFN_TABLE.rows if r.paper}
    assert quoted == {"MIND": 1.37, "ComiRec-SA": 1.39, "TransformerRec": 1.47, "MFN w/o pretrain": 1.50,
                      "MFN w/o combination": 1.71, "MFN": 2.20}
    assert UTPM_TABLE.rows[0].model == "youtube_dnn" and UTPM_TABLE.rows[-1].model == "utpm"


# --- the seed loop, with a stubbed runner ------------------------------------------------------


def _args(*argv: str):
    return cli.build_parser().parse_args(["table", *argv])


class StubRunner:
    """Writes what `local_runner.run` writes (config.json, summary.json), metrics by seed."""

    def __init__(self, fail_seed: int | None = None):
        self.seeds: list[int] = []
        self.fail_seed = fail_seed

    def __call__(self, config, out):
        seed = config.training.seed
        self.seeds.append(seed)
        os.makedirs(config.output_dir, exist_ok=True)
        with open(os.path.join(config.output_dir, tables.CONFIG_FILE), "w") as f:
            json.dump(config.to_dict(), f)
        if seed == self.fail_seed:
            raise RuntimeError("Trainer.din failed")
        models = [{"model": m, "metrics": {"auc": 0.6 + seed / 100}, "blessed": True} for m in config.models]
        with open(os.path.join(config.output_dir, tables.SUMMARY_FILE), "w") as f:
            json.dump({"data_dirs": {"ctr": config.families["ctr"].data_dir}, "models": models}, f)


def test_seeds_run_once_each_and_a_finished_seed_is_reused(tmp_path):
    out = tmp_path / "t"
    runner = StubRunner()
    args = _args("mfn", "--preset", "tiny", "--models", "embedding_mlp,din", "--seeds", "2", "--output-dir", str(out))
    log = tmp_path / "log.txt"
    with open(log, "w") as stream:
        assert tables._table(args, runner=runner, out=stream) == 0
    assert runner.seeds == [1, 2]
    text = (out / "table-mfn.md").read_text()
    assert _rows(text)["din"][4] == "0.6150 ± 0.0071"  # seeds 1, 2 → 0.61, 0.62
    assert f"--seed-list 1,2 --output-dir {out}" in text
    # More seeds later: 1 and 2 are reused, only 3 runs; a subset of the models reuses them too.
    args = _args("mfn", "--preset", "tiny", "--models", "embedding_mlp", "--seeds", "3", "--output-dir", str(out))
    with open(log, "w") as stream:
        tables._table(args, runner=runner, out=stream)
    assert runner.seeds == [1, 2, 3]
    assert log.read_text().count("reused") == 2
    assert _rows((out / "table-mfn.md").read_text())["embedding_mlp"][4] == "0.6200 ± 0.0100"


def test_seed_configs_share_generated_data_and_differ_only_in_seed_and_folder(tmp_path):
    by_seed = tables.build_configs(MFN_TABLE, _args("mfn", "--preset", "tiny", "--models", "embedding_mlp,din",
                                                    "--seed-list", "5,9", "--output-dir", str(tmp_path)))
    assert list(by_seed) == [5, 9]
    assert [c.training.seed for c in by_seed.values()] == [5, 9]
    assert by_seed[9].output_dir == str(tmp_path / "seed-9")
    data = {c.families["ctr"].data_dir for c in by_seed.values()}
    assert data == {str(tmp_path / "data" / "ctr-synthetic-small")}
    assert by_seed[5].models == ["embedding_mlp", "din"]


def test_tags_dir_reaches_the_tags_source_options(tmp_path):
    by_seed = tables.build_configs(UTPM_TABLE, _args(
        "utpm", "--models", "youtube_dnn,utpm", "--seeds", "1", "--dataset", "movielens",
        "--data-dir", "/d/ml-1m", "--tags-dir", "/d/ml-10m", "--output-dir", str(tmp_path)))
    section = by_seed[1].families["tags"]
    assert (section.dataset, section.data_dir, section.source_options) == ("movielens", "/d/ml-1m",
                                                                           {"tags_dir": "/d/ml-10m"})


def test_max_users_joins_the_source_options_of_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("families: {tags: {source_options: {tags_dir: /d/ml-10m}}}\n")
    args = _args("utpm", "--models", "youtube_dnn", "--seeds", "2", "--dataset", "movielens", "--data-dir", "/d/ml-1m",
                 "--config", str(path), "--max-users", "1500", "--output-dir", str(tmp_path / "t"))
    by_seed = tables.build_configs(UTPM_TABLE, args)
    for config in by_seed.values():
        assert config.families["tags"].source_options == {"tags_dir": "/d/ml-10m", "max_users": 1500}
    assert "--data-dir /d/ml-1m --max-users 1500 --models youtube_dnn" in tables._command(args, by_seed)
    ctr = tables.build_configs(MFN_TABLE, _args("mfn", "--preset", "tiny", "--models", "embedding_mlp", "--seeds", "1",
                                                "--max-users", "300", "--output-dir", str(tmp_path / "m")))
    assert ctr[1].families["ctr"].source_options == {"max_users": 300}


def test_a_table_with_another_max_users_is_not_mixed_in(tmp_path):
    runner = StubRunner()
    base = ("mfn", "--preset", "tiny", "--models", "embedding_mlp", "--seeds", "1", "--output-dir", str(tmp_path))
    tables._table(_args(*base, "--max-users", "100"), runner=runner, out=open(os.devnull, "w"))
    with pytest.raises(UserError, match=r"seed-1 holds a finished run with other settings \(families differ"):
        tables._table(_args(*base, "--max-users", "200"), runner=runner, out=open(os.devnull, "w"))
    assert runner.seeds == [1]


def test_a_folder_with_another_run_is_refused_not_mixed_in(tmp_path):
    runner = StubRunner()
    base = ("--models", "embedding_mlp", "--seeds", "1", "--output-dir", str(tmp_path))
    tables._table(_args("mfn", "--preset", "tiny", *base), runner=runner, out=open(os.devnull, "w"))
    with pytest.raises(UserError, match=r"seed-1 holds a finished run with other settings \(families, "):
        tables._table(_args("mfn", "--preset", "demo", *base), runner=runner, out=open(os.devnull, "w"))
    with pytest.raises(UserError, match=r"seed-1 holds a finished run without din: use another --output-dir"):
        tables._table(_args("mfn", "--preset", "tiny", "--models", "embedding_mlp,din", "--seeds", "1",
                            "--output-dir", str(tmp_path)), runner=runner, out=open(os.devnull, "w"))
    assert runner.seeds == [1]


def test_a_failed_seed_names_its_log_and_is_run_again_next_time(tmp_path):
    args = _args("mfn", "--preset", "tiny", "--models", "embedding_mlp", "--seeds", "2", "--output-dir", str(tmp_path))
    log = tmp_path / "log.txt"
    with open(log, "w") as stream, pytest.raises(RuntimeError):
        tables._table(args, runner=StubRunner(fail_seed=2), out=stream)
    assert f"Seed 2 failed; its logs: {tmp_path / 'seed-2' / 'logs' / 'tfx.log'}" in log.read_text()
    runner = StubRunner()
    tables._table(args, runner=runner, out=open(os.devnull, "w"))
    assert runner.seeds == [2]


# --- the command's argument errors -----------------------------------------------------------


def test_every_row_is_a_registered_model_and_a_missing_one_is_named():
    for spec in tables.TABLES.values():
        registry = FAMILIES[spec.family].registry()
        assert all(m in registry for m in spec.row_models()), spec.name
    with pytest.raises(UserError, match="models mind, comirec_sa, transformer_rec are not registered yet .*"
                                        "--models embedding_mlp,din,mfn_no_pretrain,mfn_no_combination,mfn"):
        tables._models(tables.MFN_TABLE, None, [m for m in tables.MFN_TABLE.row_models()
                                                if m not in ("mind", "comirec_sa", "transformer_rec")])


@pytest.mark.parametrize("argv, message", [
    (["mfn", "--models", "din,youtube_dnn"], "--models: youtube_dnn not in the mfn table; its rows: embedding_mlp, din"),
    (["mfn", "--models", "din"], "models: din is gated against embedding_mlp of the same run; add embedding_mlp"),
    (["mfn", "--models", "embedding_mlp", "--tags-dir", "x"], "--tags-dir: the mfn table's family (ctr) takes no"),
    (["mfn", "--models", "embedding_mlp", "--seed-list", "1,x"], "--seed-list: expected integers separated by commas"),
    (["mfn", "--models", "embedding_mlp", "--seed-list", "1,1"], "--seed-list: expected distinct seeds"),
    (["mfn", "--models", "embedding_mlp", "--dataset", "movielens"], "families.ctr.data_dir: required"),
    (["utpm", "--models", "youtube_dnn", "--dataset", "taobao"], "families.tags.dataset: 'taobao' is not one of"),
])
def test_argument_mistakes_are_one_line_errors(argv, message, tmp_path, capsys):
    assert cli.main(["table", *argv, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usermodel: error: ") and message in err and "Traceback" not in err
    assert not os.listdir(tmp_path)  # refused before any run


@pytest.mark.parametrize("argv", [["nope"], ["mfn", "--seeds", "0"], ["mfn", "--seeds", "2", "--seed-list", "1"],
                                  ["mfn", "--max-users", "0"], ["mfn", "--max-users", "1.5"]])
def test_usage_mistakes_exit_2(argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["table", *argv])
    assert exit_.value.code == 2
