"""Runs the pipeline from this machine with TFX's LocalDagRunner or BeamDagRunner (MLMD on SQLite).

Both orchestrate in this process and launch every component through TFX's portable
`Launcher`, so data preparation, logging, progress lines and the summary are shared:
`local` runs the components one after another; `beam` schedules them as a Beam pipeline on
the DirectRunner, while the components' own Beam work goes wherever `config.beam_args` say
(DirectRunner by default; Dataflow, Flink or Spark by their flags). Kubeflow is compiled,
not run from here: see pipeline/kubeflow_runner.py.

TFX, Beam and TensorFlow log a lot, partly from C++ straight to file descriptor 2; all of it
goes to ``<output_dir>/logs/tfx.log`` (the descriptors are redirected for the run) and the
terminal gets one line per component start/finish plus training progress.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Literal, TextIO

from pipeline import summary as summary_lib
from pipeline.configs import PipelineConfig

Runner = Literal["local", "beam"]
RUNNERS: tuple[Runner, ...] = ("local", "beam")
CONFIG_FILE = "config.json"
PROGRESS_LOGGER = "usermodel.progress"
"""Records of this logger (e.g. training steps from trainer/news/run.py) are shown on the terminal."""


class _Progress(logging.Handler):
    """Shows records of the progress logger on the terminal."""

    def __init__(self, stream: TextIO):
        super().__init__(logging.INFO)
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == PROGRESS_LOGGER:
            self._stream.write(f"      {record.getMessage()}\n")
            self._stream.flush()


@contextlib.contextmanager
def component_progress(stream: TextIO) -> Iterator[None]:
    """Prints a line when each component starts and finishes.

    Wraps the portable launcher (one `launch()` per component) instead of parsing the runner's
    absl log lines: components such as Transform reconfigure logging mid-run and those lines
    stop arriving. Both runners construct `launcher.Launcher` in this process (BeamDagRunner
    from a DoFn on the in-memory DirectRunner), so patching the class reaches both.
    """
    from tfx.orchestration.portable import launcher

    original = launcher.Launcher.launch

    def launch(self, *args, **kwargs):
        node = self._pipeline_node.node_info.id
        stream.write(f"  ▶ {node} ...\n")
        stream.flush()
        started = time.monotonic()
        try:
            result = original(self, *args, **kwargs)
        except BaseException:
            stream.write(f"  ✘ {node} failed after {time.monotonic() - started:.0f}s\n")
            raise
        stream.write(f"  ✔ {node} ({time.monotonic() - started:.0f}s)\n")
        stream.flush()
        return result

    launcher.Launcher.launch = launch
    try:
        yield
    finally:
        launcher.Launcher.launch = original


@contextlib.contextmanager
def tfx_logs_to_file(path: str, progress: TextIO) -> Iterator[None]:
    """Sends everything written to stdout/stderr and all logging to `path` while the pipeline
    runs; component progress goes to `progress` (the terminal) through a saved descriptor."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    progress.flush()
    try:  # a descriptor of its own, so the redirect below doesn't swallow progress lines
        terminal = os.fdopen(os.dup(progress.fileno()), "w", buffering=1, encoding="utf-8")
    except (AttributeError, io.UnsupportedOperation):  # an in-memory stream (tests)
        terminal = progress
    log = open(path, "a", buffering=1, encoding="utf-8")
    saved_fds = [os.dup(1), os.dup(2)]
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    root = logging.getLogger()
    file_handler = logging.StreamHandler(log)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = root.handlers[:], root.level
    root.handlers = [file_handler, _Progress(terminal)]
    root.setLevel(logging.INFO)
    tf_logger = logging.getLogger("tensorflow")
    tf_handlers, tf_logger.handlers = tf_logger.handlers[:], []  # it prints to stderr on its own
    try:
        with component_progress(terminal):
            yield
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        root.handlers, level = saved
        root.setLevel(level)
        tf_logger.handlers = tf_handlers
        log.close()
        if terminal is not progress:
            terminal.close()


def prepare_data(config: PipelineConfig, out: TextIO) -> dict[str, str]:
    """Family name → the directory its ExampleGen reads; synthetic sets are generated on first use."""
    data_dirs = {}
    for family in config.run_families():
        section = config.families[family.name]
        data_dir = config.data_dir_of(family)
        family.prepare(section.dataset, data_dir, section.synthetic_preset, out, **section.source_options)
        data_dirs[family.name] = os.path.abspath(data_dir)
    return data_dirs


def run(config: PipelineConfig, out: TextIO = sys.stdout, runner: Runner = "local") -> summary_lib.RunSummary:
    """Runs the whole pipeline with `runner` and returns (and writes) its summary."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.pipeline import create_pipeline

    dag_runner = _dag_runner(runner)
    data_dirs = prepare_data(config, out)
    os.makedirs(config.output_dir, exist_ok=True)
    with open(os.path.join(config.output_dir, CONFIG_FILE), "w") as f:  # what `usermodel report` reads
        json.dump(config.to_dict(), f, indent=2)
    log_path = os.path.join(config.output_dir, "logs", "tfx.log")
    out.write(
        f"Running pipeline '{config.pipeline_name}' for {', '.join(config.models)} with "
        f"{type(dag_runner).__name__} (TFX logs: {log_path})\n"
    )
    started = time.time()
    with tfx_logs_to_file(log_path, out):
        dag_runner.run(create_pipeline(config, data_dirs, baseline="resolver"))
    result = summary_lib.collect(config, started_at=started)
    summary_lib.write(result, config.output_dir)
    return result


def _dag_runner(runner: Runner):
    """The TFX runner named `runner`; both keep MLMD in the config's SQLite file, which the
    Resolver (latest blessed model) and the summary read."""
    from tfx import v1 as tfx

    if runner == "local":
        return tfx.orchestration.LocalDagRunner()
    if runner == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        return BeamDagRunner()
    raise ValueError(f"runner: {runner!r} is not one of {', '.join(RUNNERS)}")
