"""`usermodel table mfn|utpm`: a paper's results table, measured over several training seeds.

MFN's Table 1 (AUC and RelaImpr against the run's Base) and UTPM's Tables 2-4 (Prec@1/2/3)
compare models whose gaps are small (the UTPM paper's MovieLens gaps are at most 0.004), so one
run per model says little: a gap may be a reseed. The command runs the pipeline once per seed,
with exactly the code path of `usermodel run` (`local_runner.run`, in this process), each seed in
``<output-dir>/seed-<s>`` with its own metadata store, so every seed's models are gated as a
first run; then it reads each seed's ``summary.json`` (the Evaluator's TFMA metrics, RelaImpr
from the sibling comparison, the blessing) and writes one markdown table: rows in the paper's
order, each metric as mean ± sample standard deviation over the seeds, the paper's numbers
beside.

Only the training seed changes between seeds (`TrainingConfig.seed`: initialisation, shuffling,
sampling, MFN's interest centers). The data and their split are the same for every seed
(generated data are generated once, in ``<output-dir>/data``), so the spread is the models'
own, not the data's.

A table is data (:class:`TableSpec`): its family, its rows (registry name, the paper's label,
the paper's numbers as the issues quote them) and its metric columns. Rows whose models are not
registered yet keep their place; running them is refused with the list of what is missing, and
``--models`` runs a subset.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from components.console import quiet_native_stderr
from components.errors import UserError, positive, writable_file
from pipeline.families import FAMILIES

if TYPE_CHECKING:  # pipeline.configs imports TFX and TFMA; only the CLI needs it at run time
    from pipeline.configs import PipelineConfig

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"  # local_runner.CONFIG_FILE, without importing the runner (TFX) here


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric column: the run summary's metric name and how the table shows it."""

    key: str
    """Metric name in `summary.json` (the family's gate metric table)."""
    label: str
    """Column header."""
    scale: float = 1.0
    """Shown as value × scale (RelaImpr as a percentage, as the MFN paper quotes it)."""
    digits: int = 4
    """Decimals shown."""

    def show(self, value: float) -> str:
        return f"{value * self.scale:.{self.digits}f}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One model of a paper's table."""

    model: str
    """Registry name of the model (`pipeline/families.py`)."""
    label: str
    """The paper's name of the row."""
    paper: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Metric name → the paper's value in the metric's own units (RelaImpr 0.022 = 2.20 %); only
    numbers the issues quote, the other cells stay empty."""


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """A paper's results table as the pipeline reproduces it."""

    name: str
    """`usermodel table NAME`."""
    family: str
    """The task family of every row."""
    title: str
    """Heading of the written table."""
    rows: tuple[Row, ...]
    """The paper's rows, in the paper's order."""
    metrics: tuple[Metric, ...]
    """Our metric columns; one no seed reported is left out of the table (and named below it)."""
    paper_metrics: tuple[Metric, ...]
    """Columns of the paper's numbers."""
    paper_source: str
    """Where the paper's numbers come from and what they were measured on."""

    def row_models(self) -> list[str]:
        return [row.model for row in self.rows]


_AUC = Metric("auc", "AUC")
_RELA_IMPR = Metric("rela_impr", "RelaImpr %", scale=100.0, digits=2)

MFN_TABLE = TableSpec(
    name="mfn",
    family="ctr",
    title="MFN Table 1: AUC and RelaImpr over the run's Base (Embedding&MLP)",
    rows=(
        Row("embedding_mlp", "Base"),
        Row("din", "DIN"),
        Row("mind", "MIND", {"rela_impr": 0.0137}),
        Row("comirec_sa", "ComiRec-SA", {"rela_impr": 0.0139}),
        Row("transformer_rec", "TransformerRec", {"rela_impr": 0.0147}),
        Row("mfn_no_pretrain", "MFN w/o pretrain", {"rela_impr": 0.0150}),
        Row("mfn_no_combination", "MFN w/o combination", {"rela_impr": 0.0171}),
        Row("mfn", "MFN", {"rela_impr": 0.0220}),
    ),
    metrics=(_AUC, _RELA_IMPR),
    paper_metrics=(Metric("rela_impr", "paper RelaImpr %", scale=100.0, digits=2),),
    paper_source=("MFN paper, Table 1, industrial data set (RelaImpr over its Base, as quoted by issue 12; "
                  "the paper's AUCs and DIN's RelaImpr are not quoted here)"),
)

_PREC = tuple(Metric(f"prec@{k}", f"Prec@{k}") for k in (1, 2, 3))

UTPM_TABLE = TableSpec(
    name="utpm",
    family="tags",
    title="UTPM Tables 2-4: Prec@1/2/3 of the user's top tags",
    # The variants in the order Tables 2-4 add them: attention fusion (2), the cross layer and its
    # alternatives (3), the joint loss (4). Rows before the last train the "separate" loss.
    rows=(
        Row("youtube_dnn", "YouTube", {"prec@1": 0.7485, "prec@2": 0.7255, "prec@3": 0.7010}),
        Row("utpm_af1_unshared", "AF-1head-unshared"),
        Row("utpm_af1", "AF-1head"),
        Row("utpm_af2", "AF-2head"),
        Row("utpm_af2_cf", "AF-2head+CF"),
        Row("utpm_af2_afm", "AF-2head+AFM"),
        Row("utpm_af2_nfm", "AF-2head+NFM"),
        Row("utpm_af2_dcn", "AF-2head+DCN"),
        Row("utpm_af2_autoint", "AF-2head+AutoInt"),
        Row("utpm", "AF-2head+CF+joint-loss", {"prec@1": 0.7623, "prec@2": 0.7345, "prec@3": 0.7096}),
    ),
    # Prec@K over the user's own history tags (the paper's candidates, the gate's metrics), then
    # over all tags where the Evaluator reports them (issue 13 asks for both).
    metrics=(*_PREC, *(Metric(f"prec@{k}_all", f"Prec@{k} all tags") for k in (1, 2, 3))),
    paper_metrics=tuple(Metric(m.key, f"paper {m.label}") for m in _PREC),
    paper_source=("UTPM paper, Tables 2-4, MovieLens (the two rows issue 13 quotes; the other rows' "
                  "numbers are not quoted here and left empty)"),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (MFN_TABLE, UTPM_TABLE)}


# --- aggregation ---------------------------------------------------------------------------------


@dataclasses.dataclass
class SeedRun:
    """What one seed's finished pipeline run reported, per model (from its `summary.json`)."""

    seed: int
    output_dir: str
    data_dirs: dict[str, str]
    metrics: dict[str, dict[str, float]]
    """Model → metric name → value."""
    blessed: dict[str, bool]
    """Model → whether the pipeline blessed (and pushed) it."""

    @classmethod
    def from_summary(cls, seed: int, output_dir: str, summary: Mapping[str, Any]) -> SeedRun:
        models = summary.get("models", [])
        return cls(seed, output_dir, dict(summary.get("data_dirs", {})),
                   {m["model"]: dict(m.get("metrics") or {}) for m in models},
                   {m["model"]: bool(m.get("blessed")) for m in models})


@dataclasses.dataclass
class RowResult:
    """A table row over the seeds."""

    row: Row
    seeds: int
    """Seeds whose run trained the row's model (0: not run)."""
    blessed: int
    """Of those, the seeds in which it was blessed."""
    values: dict[str, list[float]]
    """Metric name → one value per seed that reported it."""

    def cell(self, metric: Metric) -> str:
        """Mean ± sample standard deviation; `(k/n)` when only k of the n seeds reported it."""
        values = self.values.get(metric.key, [])
        if not values:
            return "-"
        text = metric.show(statistics.fmean(values))
        if len(values) > 1:
            text += f" ± {metric.show(statistics.stdev(values))}"
        if len(values) < self.seeds:
            text += f" ({len(values)}/{self.seeds})"
        return text


def aggregate(spec: TableSpec, runs: Sequence[SeedRun]) -> list[RowResult]:
    """One result per row of `spec`, in the paper's order, over `runs`.

    A model that ran but was not blessed keeps its metrics (the table measures, the gate decides
    pushing); a metric a seed did not report (an evaluation that failed, a sibling metric of the
    Base) counts only in the seeds that have it, and non-finite values count nowhere.
    """
    results = []
    for row in spec.rows:
        present = [r for r in runs if row.model in r.metrics]
        values: dict[str, list[float]] = {}
        for run in present:
            for name, value in run.metrics[row.model].items():
                if value is not None and math.isfinite(value):
                    values.setdefault(name, []).append(float(value))
        results.append(RowResult(row, len(present), sum(r.blessed.get(row.model, False) for r in present), values))
    return results


def markdown(spec: TableSpec, runs: Sequence[SeedRun], command: str = "") -> str:
    """The table with its provenance: command, seeds, data, and the marks' meanings."""
    results = aggregate(spec, runs)
    shown = [m for m in spec.metrics if any(r.values.get(m.key) for r in results)]
    header = ["model", "registry name", "seeds", "blessed", *(m.label for m in shown),
              *(m.label for m in spec.paper_metrics)]
    lines = []
    for result in results:
        row = result.row
        paper = [m.show(row.paper[m.key]) if m.key in row.paper else "" for m in spec.paper_metrics]
        if not result.seeds:
            lines.append([row.label, f"`{row.model}`", "0", "not run", *("" for _ in shown), *paper])
            continue
        mark = "" if result.blessed == result.seeds else " †"
        lines.append([row.label + mark, f"`{row.model}`", str(result.seeds), f"{result.blessed}/{result.seeds}",
                      *(result.cell(m) for m in shown), *paper])
    data = sorted({f"{family} `{path}`" for run in runs for family, path in run.data_dirs.items()})
    parts = [f"## {spec.title}", ""]
    if command:
        parts += [f"`{command}`", ""]
    parts += [f"Seeds: {', '.join(str(r.seed) for r in runs) or 'none'} · data: {', '.join(data) or '-'}", "",
              _markdown_table(header, lines), "",
              "Cells: mean ± sample standard deviation over the seeds; `(k/n)`: only k of the n seeds reported "
              "the metric. † not blessed in every seed (its metrics still count; why: "
              "`<output-dir>/seed-<s>/summary.md`).",
              f"Paper columns: {spec.paper_source}."]
    missing = [m.label for m in spec.metrics if m not in shown]
    if missing:
        parts.append(f"Not reported by these runs: {', '.join(missing)}.")
    return "\n".join(parts) + "\n"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


# --- the seed loop -------------------------------------------------------------------------------


def seed_dir(output_dir: str, seed: int) -> str:
    return os.path.join(output_dir, f"seed-{seed}")


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as JSON would store it, without its models (a finished run of more models serves
    a table of fewer)."""
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k != "models"}


def finished_run(config: PipelineConfig, seed: int) -> SeedRun | None:
    """The seed's run in `config.output_dir` if it finished with this config (any superset of its
    models), else None.

    Raises:
        UserError: the folder holds a finished run of another config, which must not be mixed
            into the table (nor overwritten).
    """
    directory = config.output_dir
    summary_path = os.path.join(directory, SUMMARY_FILE)
    if not os.path.exists(summary_path):
        return None
    with open(os.path.join(directory, CONFIG_FILE)) as f:
        stored = json.load(f)
    where = f"{directory} holds a finished run"
    advice = f"use another --output-dir, or delete {directory} to run this seed again"
    missing = [m for m in config.models if m not in stored.get("models", [])]
    if missing:
        raise UserError(f"{where} without {', '.join(missing)}: {advice}")
    new = _comparable(config.to_dict())
    changed = sorted(k for k in new.keys() | stored.keys() if k != "models" and new.get(k) != stored.get(k))
    if changed:
        raise UserError(f"{where} with other settings ({', '.join(changed)} differ from this table's): {advice}")
    with open(summary_path) as f:
        return SeedRun.from_summary(seed, directory, json.load(f))


Runner = Callable[..., Any]
"""`local_runner.run(config, out=...)`: runs the pipeline and writes the summary."""


def run_seeds(configs_by_seed: Mapping[int, PipelineConfig], out: TextIO, runner: Runner) -> list[SeedRun]:
    """Runs every seed's pipeline whose run has not finished yet; returns every seed's results."""
    runs = []
    for i, (seed, config) in enumerate(configs_by_seed.items(), 1):
        done = finished_run(config, seed)
        if done is not None:
            out.write(f"Seed {seed} ({i} of {len(configs_by_seed)}): finished run in {config.output_dir}, reused\n")
            runs.append(done)
            continue
        out.write(f"Seed {seed} ({i} of {len(configs_by_seed)}): running in {config.output_dir}\n")
        try:
            runner(config, out=out)
        except Exception:
            out.write(f"Seed {seed} failed; its logs: {os.path.join(config.output_dir, 'logs', 'tfx.log')}\n")
            raise
        finished = finished_run(config, seed)
        if finished is None:
            raise UserError(f"{config.output_dir}: the run of seed {seed} wrote no {SUMMARY_FILE}")
        runs.append(finished)
    return runs


# --- the command -----------------------------------------------------------------------------------


def _models(spec: TableSpec, flags: list[str] | None, registered: Sequence[str]) -> list[str]:
    """The table's models to run, in the paper's order: all rows, or the `--models` subset."""
    rows = spec.row_models()
    if flags:
        asked = [m for arg in flags for m in arg.split(",") if m]
        unknown = [m for m in asked if m not in rows]
        if unknown:
            raise UserError(f"--models: {', '.join(unknown)} not in the {spec.name} table; its rows: {', '.join(rows)}")
        models = [m for m in rows if m in asked]
    else:
        models = rows
    missing = [m for m in models if m not in registered]
    if missing:
        ready = [m for m in models if m in registered]
        raise UserError(f"the {spec.name} table's models {', '.join(missing)} are not registered yet "
                        f"(pipeline/families.py); run the others with --models {','.join(ready)}")
    return models


def _seeds(args: argparse.Namespace) -> list[int]:
    if args.seed_list:
        try:
            seeds = [int(s) for s in args.seed_list.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--seed-list: expected integers separated by commas, got {args.seed_list!r}") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise UserError(f"--seed-list: expected distinct seeds, got {args.seed_list!r}")
        return seeds
    return list(range(1, args.seeds + 1))


def _source_flags(spec: TableSpec, args: argparse.Namespace) -> dict[str, Any]:
    """The source options the flags set (`--tags-dir`, `--max-users`), checked against the
    table's family."""
    family = FAMILIES[spec.family]
    options: dict[str, Any] = {}
    for flag, key, value in (("--tags-dir", "tags_dir", args.tags_dir), ("--max-users", "max_users", args.max_users)):
        if value is None:
            continue
        if key not in family.source_options:
            raise UserError(f"{flag}: the {spec.name} table's family ({spec.family}) takes no {key} source option")
        options[key] = value
    return options


def build_configs(spec: TableSpec, args: argparse.Namespace) -> dict[int, PipelineConfig]:
    """Seed → the pipeline config of that seed's run: preset, then `--config`, then the flags,
    then the table's models, the seed and the seed's folder.

    The source flags join the `--config` file's `source_options` (a file's `tags_dir` stays when
    only `--max-users` is given), so they are applied after loading and the config validated again.
    """
    from pipeline import configs

    family = FAMILIES[spec.family]
    models = _models(spec, args.models, list(family.registry()))
    overrides: dict[str, Any] = {"models": models}
    source_flags = _source_flags(spec, args)
    data_dirs = [f"{spec.family}={args.data_dir}"] if args.data_dir else []
    by_seed = {}
    for seed in _seeds(args):
        config = configs.load_config(
            args.preset, args.config,
            {**overrides, "output_dir": seed_dir(args.output_dir, seed), "training": {"seed": seed}},
            data_dirs=data_dirs, dataset=args.dataset,
        )
        section = config.families[spec.family]
        if source_flags:
            section.source_options = {**section.source_options, **source_flags}
            config.validate()
        if section.dataset == "synthetic" and not section.data_dir:  # generate once, for every seed
            section.data_dir = os.path.join(args.output_dir, "data", f"{spec.family}-synthetic-{section.synthetic_preset}")
        by_seed[seed] = config
    return by_seed


def _command(args: argparse.Namespace, by_seed: Mapping[int, PipelineConfig]) -> str:
    """The command that reproduces the table, seeds and models spelt out."""
    models = next(iter(by_seed.values())).models
    parts = ["usermodel table", args.table, "--preset", args.preset]
    for flag, value in (("--config", args.config), ("--dataset", args.dataset), ("--data-dir", args.data_dir),
                        ("--tags-dir", args.tags_dir), ("--max-users", args.max_users)):
        if value:
            parts += [flag, str(value)]
    if args.models:
        parts += ["--models", ",".join(models)]
    return " ".join([*parts, "--seed-list", ",".join(map(str, by_seed)), "--output-dir", args.output_dir])


def _table(args: argparse.Namespace, runner: Runner | None = None, out: TextIO = sys.stdout) -> int:
    spec = TABLES[args.table]
    with quiet_native_stderr():  # TensorFlow's start-up lines: the models and the runner import it
        FAMILIES[spec.family].registry()
        if runner is None:
            from pipeline import local_runner

            runner = local_runner.run
    args.output_dir = args.output_dir or os.path.join("runs", f"table-{args.table}")
    by_seed = build_configs(spec, args)
    runs = run_seeds(by_seed, out, runner)
    text = markdown(spec, runs, _command(args, by_seed))
    path = args.markdown or os.path.join(args.output_dir, f"table-{spec.name}.md")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    out.write(f"\n{text}\nWritten to {path}\n")
    return 0


def add_table_parser(sub: argparse._SubParsersAction) -> None:
    """Adds `usermodel table` to the CLI's subcommands."""
    parser = sub.add_parser(
        "table", help="a paper's results table over several seeds (MFN Table 1, UTPM Tables 2-4)",
        description="Runs the pipeline once per training seed with the table's models, each seed in "
                    "OUTPUT_DIR/seed-<s>, and writes the table (mean ± std over the seeds, the paper's "
                    "numbers beside). Resumable: a seed whose run finished (its summary.json exists, with "
                    "the same settings) is not run again, so an interrupted table continues where it "
                    "stopped and more seeds add to it. Exit status 0 even when a model is not blessed: "
                    "the table marks it.")
    parser.add_argument("table", choices=list(TABLES), help="mfn: MFN's Table 1; utpm: UTPM's Tables 2-4")
    parser.add_argument("--models", nargs="+", help="a subset of the table's rows (registry names, comma- or "
                                                    "space-separated); default: every row")
    parser.add_argument("--dataset", help="the family's source: synthetic (default), movielens, taobao (mfn)")
    parser.add_argument("--data-dir", help="directory of the real source (MovieLens release, Taobao)")
    parser.add_argument("--tags-dir", help="utpm: a directory whose tags file joins the ratings "
                                           "(ml-10m's tags for ml-1m, UTPM's MovieLens setting)")
    parser.add_argument("--max-users", type=positive(int), metavar="N",
                        help="keep N of the source's users, the same N on every run (the smallest CRC-32 "
                             "hashes of their ids; source option max_users): a shorter table")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=positive(int), default=3, help="run seeds 1..N (default 3)")
    seeds.add_argument("--seed-list", metavar="S1,S2,...", help="run these training seeds instead")
    parser.add_argument("--preset", default="demo", help="demo (default), tiny or paper: the models' and "
                                                          "training settings, as for `usermodel run`")
    parser.add_argument("--config", help="YAML/JSON file with PipelineConfig fields, as for `usermodel run`")
    parser.add_argument("--output-dir", help="where the seeds' runs go (default runs/table-<table>)")
    parser.add_argument("--markdown", type=writable_file,
                        help="write the table here (default OUTPUT_DIR/table-<table>.md)")
    parser.set_defaults(fn=_table)
