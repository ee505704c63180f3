"""The `usermodel` command: run or compile the pipeline, make or fetch data, and inspect it.

    usermodel run [--runner local|beam] [--preset demo|tiny|paper] [--config FILE]
                  [--dataset synthetic|mind] [--data-dir [FAMILY=]DIR ...] [--models nrms ...]
                  [--train-steps N | --epochs N] [--output-dir DIR]
    usermodel compile --data-dir [FAMILY=]URI ... --output-dir URI --output FILE.yaml|FILE.json
                  [--image IMAGE] [--baseline-uri MODEL=URI ...] [--with-baseline]
                  [--preset ...] [--config FILE] [--models ...] [--train-steps N | --epochs N]
    usermodel report [--output-dir DIR]
    usermodel data generate mind|movielens --out DIR [--preset tiny|demo] [--seed N]
    usermodel data download mind-small|mind-large|ml-1m|ml-latest-small [--out DIR]
    usermodel data inspect mind|movielens|taobao DIR
    usermodel serve --model-base-path DIR [--port N] [--rest-port N] [--model-config-file FILE]
    usermodel query [--target HOST:PORT] [--model NAME] score|encode-news|encode-user|tags|pctr|interests|status ...
    usermodel bench serve (--model-base-path DIR | --target HOST:PORT) [--concurrency N ...] [--mix SIG=W,...]
    usermodel bench train [--models nrms,lstur,fum_title,fum | --family ctr] [--steps N] [--windows N] [--embedding-dim D]
                          [--lengths-from DIR] [--jit-compile] [--mixed-precision] [--json FILE]

User mistakes (a missing file, a bad config field, an unreachable download) print one line
naming the file or field and exit with status 2; they never show a stack trace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from components.console import quiet_native_stderr
from components.errors import UserError, positive, writable_file
from pipeline import bench_train, explain, tables
from serving import commands as serving_commands


def _load_config(args: argparse.Namespace, dataset: str | None):
    """Preset, then --config, then the flags shared by `run` and `compile`."""
    from pipeline import configs

    # `--models nrms,lstur,fum` and `--models nrms lstur fum` mean the same.
    models = [m for arg in args.models for m in arg.split(",") if m] if args.models else None
    overrides: dict = {"models": models, "train_steps": args.train_steps, "output_dir": args.output_dir}
    # --train-steps trains by steps even where the preset trains by epochs (`paper`), and either
    # flag decides for every family, also those whose preset section trains by epochs (CTR).
    if args.train_steps or args.epochs:
        overrides["training"] = {"epochs": args.epochs}
    config = configs.load_config(args.preset, args.config, overrides, data_dirs=args.data_dir, dataset=dataset)
    if args.train_steps or args.epochs:
        for section in config.families.values():
            section.training = {k: v for k, v in section.training.items() if k != "epochs"}
    return config


def _run(args: argparse.Namespace) -> int:
    with quiet_native_stderr():
        from pipeline import local_runner

    config = _load_config(args, args.dataset)
    summary = local_runner.run(config, runner=args.runner)
    print()
    print(summary.table())
    print(f"\nSummary written to {config.output_dir}/summary.json and summary.md ({summary.seconds:.0f} s)")
    return 0 if all(m.blessed for m in summary.models) else 1


def _compile(args: argparse.Namespace) -> int:
    with quiet_native_stderr():
        from pipeline import kubeflow_runner

    config = _load_config(args, None)
    compiled = kubeflow_runner.compile_pipeline(
        config, args.output, image=args.image or kubeflow_runner.DEFAULT_IMAGE,
        baseline_uris=_model_uris(args.baseline_uri), with_baseline=args.with_baseline,
    )
    kind = "Kubeflow Pipelines PipelineSpec (YAML)" if compiled.format == "yaml" else "Vertex AI PipelineJob (JSON)"
    print(f"Wrote {kind} to {compiled.path}; every step runs in image {compiled.image}")
    if not compiled.baseline_parameters:
        print("No baseline: only the absolute floors gate. Once a model is blessed, compile again with "
              "--baseline-uri MODEL=URI of its Model artifact to also gate against regressions.")
    for name, default in compiled.baseline_parameters.items():
        print(f"Runtime parameter {name}: " + (f"default {default}" if default else "required, no default"))
    return 0


def _model_uris(pairs: list[str] | None) -> dict[str, str]:
    """`MODEL=URI` flag values as a mapping; a value without `=` is a user mistake."""
    uris = {}
    for pair in pairs or []:
        model, sep, uri = pair.partition("=")
        if not sep or not model or not uri:
            raise UserError(f"--baseline-uri: expected MODEL=URI, got {pair!r}")
        uris[model] = uri
    return uris


def _report(args: argparse.Namespace) -> int:
    path = os.path.join(args.output_dir, "config.json")
    if not os.path.exists(path):
        raise UserError(f"{path} not found: is {args.output_dir} the --output-dir of a `usermodel run`?")
    with quiet_native_stderr():
        from pipeline import configs, summary

    config = configs.load_config("paper", path)
    result = summary.collect(config, started_at=os.path.getmtime(path))
    summary.write(result, config.output_dir)
    print(result.markdown())
    return 0


def _data_generate(args: argparse.Namespace) -> int:
    from components.ingest import synthetic

    if args.kind == "mind":
        cfg = synthetic.SyntheticMindConfig.preset(args.preset)
        if args.seed is not None:
            cfg.seed = args.seed
        result = synthetic.generate_mind(args.out, cfg)
    else:
        cfg = synthetic.SyntheticMovieLensConfig.preset(args.preset)
        if args.seed is not None:
            cfg.seed = args.seed
        result = synthetic.generate_movielens(args.out, cfg)
    print(f"Wrote {args.kind} data to {args.out}: {result}")
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from components.ingest import download

    path = download.download(args.name, args.out)
    print(f"Downloaded {args.name} to {path}")
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from components.ingest import inspect as inspect_lib

    report = inspect_lib.inspect(args.kind, args.dir)
    print(report.to_markdown())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usermodel", description="User-interest models on TFX.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the TFX pipeline end to end from here (MLMD on SQLite)")
    run.add_argument("--runner", choices=["local", "beam"], default="local",
                     help="local: LocalDagRunner (default); beam: BeamDagRunner, components' Beam work per beam_args")
    _add_config_flags(run)
    run.add_argument("--dataset", help="the data source of the models' family: synthetic, or a real one (news: mind)")
    run.add_argument("--data-dir", action="append", metavar="[FAMILY=]DIR",
                     help="a family's data directory (news: MIND format); FAMILY= when the models span families")
    run.add_argument("--output-dir", help="where artifacts, metadata, serving root and summary go")
    run.set_defaults(fn=_run)

    comp = sub.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (.yaml) or Vertex AI (.json)")
    _add_config_flags(comp)
    comp.add_argument("--data-dir", action="append", metavar="[FAMILY=]DIR",
                      help="a family's data directory as the pods see it (an absolute mounted path)")
    comp.add_argument("--output-dir", help="pipeline root and serving root the pods write (gs:// or absolute)")
    comp.add_argument("--output", required=True, help="spec to write: .yaml/.yml for Kubeflow, else JSON for Vertex")
    comp.add_argument("--image", help="container image of every step (default usermodel-tfx:latest)")
    comp.add_argument("--baseline-uri", action="append", metavar="MODEL=URI",
                      help="gate MODEL against this Model artifact (default of parameter baseline_model_uri_MODEL)")
    comp.add_argument("--with-baseline", action="store_true",
                      help="import a baseline for every model even without --baseline-uri (set the parameter per run)")
    comp.set_defaults(fn=_compile)

    report = sub.add_parser("report", help="show a run's metrics, thresholds, baseline and blessing decision")
    report.add_argument("--output-dir", default="runs/default")
    report.set_defaults(fn=_report)

    data = sub.add_parser("data", help="generate, download or inspect datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="synthetic data with planted structure")
    gen.add_argument("kind", choices=["mind", "movielens"])
    gen.add_argument("--out", required=True)
    gen.add_argument("--preset", default="demo")
    gen.add_argument("--seed", type=int)
    gen.set_defaults(fn=_data_generate)
    dl = data_sub.add_parser("download", help="fetch an official dataset (needs network)")
    dl.add_argument("name", choices=["mind-small", "mind-large", "ml-1m", "ml-latest-small"])
    dl.add_argument("--out", default="data")
    dl.set_defaults(fn=_data_download)
    ins = data_sub.add_parser("inspect", help="parse a dataset and report rows, malformed lines, unknown ids")
    ins.add_argument("kind", choices=["mind", "movielens", "taobao"])
    ins.add_argument("dir")
    ins.add_argument("--json", type=writable_file, help="also write the report as JSON here")
    ins.set_defaults(fn=_data_inspect)

    serving_commands.add_serve_parser(sub)
    serving_commands.add_query_parser(sub)
    bench = sub.add_parser("bench", help="benchmarks; record results with their command in docs/benchmarks.md")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    serving_commands.add_bench_serve_parser(bench_sub)
    bench_train.add_bench_train_parser(bench_sub)
    explain.add_explain_parser(sub)
    tables.add_table_parser(sub)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The config flags that `run` and `compile` share."""
    parser.add_argument("--preset", default="demo", help="demo (default), tiny or paper")
    parser.add_argument("--config", help="YAML/JSON file with PipelineConfig fields")
    parser.add_argument("--models", nargs="+", help="models to train, e.g. nrms,lstur,fum")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--train-steps", type=positive(), help="training steps per model")
    length.add_argument("--epochs", type=positive(), help="train each model for N epochs instead of steps")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fn: Callable[[argparse.Namespace], int] = args.fn
    try:
        return fn(args)
    except (UserError, FileNotFoundError) as err:
        print(f"usermodel: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("usermodel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
