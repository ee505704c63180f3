"""The serving subcommands of `usermodel`: ``serve``, ``query`` and ``bench serve``.

pipeline/cli.py owns the parser; it calls the ``add_*`` functions here, so serving flags live
beside the code they configure. User mistakes raise :class:`components.errors.UserError`
(one line naming the flag, exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

from components.console import quiet_native_stderr
from components.errors import UserError, positive, writable_file


# ---------------------------------------------------------------------------- serve
def add_serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve pushed models over TF Serving's gRPC (and REST) API")
    serve.add_argument("--model-base-path", required=True, help="the serving root: <root>/<model>/<version>/")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 picks a free one)")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (default 8501; -1 disables REST)")
    serve.add_argument("--host", default="0.0.0.0", help="interface to bind (default all; 127.0.0.1 for local only)")
    serve.add_argument("--model-config-file", help="TF Serving models.config: models, version policies, labels")
    serve.add_argument("--batching-parameters-file", help="TF Serving batching parameters (default: built-in)")
    serve.add_argument("--no-batching", action="store_true", help="run each request on its own")
    serve.add_argument("--poll-interval", type=float, default=1.0, help="seconds between looks for new versions")
    serve.add_argument("--write-deployment", metavar="DIR",
                       help="write models.config, batching.config and Kubernetes manifests to DIR and exit")
    serve.add_argument("--container-base-path", default="/models",
                       help="serving root as the TF Serving container mounts it (with --write-deployment)")
    serve.set_defaults(fn=_serve)


def _batching(args: argparse.Namespace):
    from serving import deploy
    from serving.batching import BatchingConfig

    if args.no_batching:
        return None
    if args.batching_parameters_file:
        if not os.path.isfile(args.batching_parameters_file):
            raise UserError(f"--batching-parameters-file: {args.batching_parameters_file} not found")
        return deploy.read_batching_parameters(args.batching_parameters_file)
    return BatchingConfig()


def _serve(args: argparse.Namespace) -> int:
    from serving import deploy

    if not os.path.isdir(args.model_base_path):
        raise UserError(f"--model-base-path: {args.model_base_path} is not a directory")
    if args.poll_interval <= 0:
        raise UserError(f"--poll-interval: must be > 0 seconds, got {args.poll_interval}")
    batching = _batching(args)
    if args.write_deployment:
        from serving.batching import BatchingConfig

        paths = deploy.write_bundle(args.write_deployment, deploy.discover_models(args.model_base_path),
                                    batching or BatchingConfig(), args.container_base_path)
        print("Wrote " + ", ".join(paths) + f"\nApply with: kubectl apply -k {args.write_deployment}")
        return 0
    dirs, policies = None, {}
    if args.model_config_file:
        if not os.path.isfile(args.model_config_file):
            raise UserError(f"--model-config-file: {args.model_config_file} not found")
        dirs, policies = deploy.read_model_config(args.model_config_file)


    with quiet_native_stderr():
        from serving.model_manager import ManagerConfig
        from serving.server import Server, ServerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    server = Server(
        ManagerConfig(args.model_base_path, poll_interval_s=args.poll_interval, policies=policies, model_dirs=dirs),
        ServerConfig(port=args.port, host=args.host, rest_port=None if args.rest_port < 0 else args.rest_port,
                     batching=batching),
    )
    try:
        server.start()
    except OSError as err:
        raise UserError(f"--port/--rest-port: {err}") from None
    stopping = threading.Event()

    def stop(signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            print(f"{signal.Signals(signum).name}: finishing in-flight requests, then stopping", flush=True)
            threading.Thread(target=server.stop).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rest = f", REST on {args.host}:{server.rest.port}" if server.rest else ""
    models = ", ".join(f"{m} ({', '.join(str(s.version) + ' ' + _state(s.state) for s in server.manager.status(m))})"
                       for m in server.manager.models()) or "none yet"
    print(f"Serving {models} from {args.model_base_path}: gRPC on {args.host}:{server.port}{rest}", flush=True)
    server.wait()
    print("Stopped.", flush=True)
    return 0


def _state(value: int) -> str:
    from serving.model_manager import State

    return next(k for k, v in vars(State).items() if v == value)


# ---------------------------------------------------------------------------- query
def add_query_parser(sub) -> None:
    query = sub.add_parser("query", help="call a served model (news scoring/encoding, top-K tags, pCTR, interests, status)")
    query.add_argument("--target", default="localhost:8500", help="gRPC host:port (default localhost:8500)")
    query.add_argument("--model", default="nrms", help="model name (default nrms)")
    query.add_argument("--version", type=int, help="a specific version (default: the latest served)")
    query.add_argument("--label", help="a version label (instead of --version)")
    query.add_argument("--timeout", type=float, default=5.0, help="seconds per attempt (default 5)")
    query.add_argument("--json", action="store_true", help="print JSON instead of a table")
    what = query.add_subparsers(dest="what", required=True)
    score = what.add_parser("score", help="rank candidate news for a user")
    score.add_argument("--user", default="", help="user id")
    score.add_argument("--history", nargs="*", default=[], help="clicked news ids, oldest first")
    score.add_argument("--candidates", nargs="+", required=True, help="news ids to rank")
    news = what.add_parser("encode-news", help="the vector of one raw article")
    news.add_argument("--title", required=True)
    news.add_argument("--abstract", default="")
    news.add_argument("--category", default="")
    news.add_argument("--subcategory", default="")
    news.add_argument("--entities", nargs="*", default=[], help="Wikidata ids of the article's entities")
    user = what.add_parser("encode-user", help="the vector of a user")
    user.add_argument("--user", default="")
    user.add_argument("--history", nargs="*", default=[])
    tags = what.add_parser("tags", help="a user's top-K tags among every tag, or with --among history among "
                                        "their own history tags (what the gate's prec@K ranks; docs/tags.md)")
    tags.add_argument("--user", default="")
    tags.add_argument("--history", nargs="*", default=[])
    tags.add_argument("--features", nargs="*", default=[], help="user fields as name=value")
    tags.add_argument("-k", type=int, default=10)
    tags.add_argument("--among", choices=("all", "history"), default="all",
                      help="all: rank every tag; history: only the user's history tags (UTPM's candidate selection)")
    pctr = what.add_parser("pctr", help="click probabilities of target items (CTR models)")
    pctr.add_argument("--user", default="")
    pctr.add_argument("--history", nargs="*", default=[])
    pctr.add_argument("--targets", nargs="+", required=True)
    pctr.add_argument("--cached", action="store_true",
                      help="encode the user's interests once (encode_user), then score all targets in one "
                           "pctr_from_interests request (models with cacheable interests: MFN)")
    interests = what.add_parser("interests", help="a user's cacheable interests (CTR models with them: MFN)")
    interests.add_argument("--user", default="")
    interests.add_argument("--history", nargs="*", default=[])
    what.add_parser("status", help="the model's versions and their states")
    query.set_defaults(fn=_query)


def _query(args: argparse.Namespace) -> int:

    with quiet_native_stderr():
        from serving.client import Article, ClientConfig, ServingClient, ServingError

    spec = {"version": args.version, "label": args.label}
    with ServingClient(ClientConfig(args.target, timeout_s=args.timeout)) as client:
        try:
            if args.what == "score":
                rows = client.score_candidates(args.model, args.user, args.history, args.candidates, **spec)
                result = [{"news_id": n, "score": s} for n, s in rows]
            elif args.what == "encode-news":
                article = Article(args.title, args.abstract, args.category, args.subcategory, tuple(args.entities))
                vector = client.encode_news(args.model, [article], **spec)[0]
                result = {"news_vector": [round(float(v), 6) for v in vector]}
            elif args.what == "encode-user":
                vector = client.encode_user(args.model, args.user, args.history, **spec)
                result = {"user_vector": [round(float(v), 6) for v in vector]}
            elif args.what == "interests":
                vector = client.user_interests(args.model, args.user, args.history, **spec)
                result = {"interests": [round(float(v), 6) for v in vector]}
            elif args.what == "tags":
                result = [{"tag": t, "score": s}
                          for t, s in client.top_tags(args.model, args.user, args.history, args.features, args.k,
                                                      among=args.among, **spec)]
            elif args.what == "pctr":
                if args.cached:
                    interests = client.user_interests(args.model, args.user, args.history, **spec)
                    probs = client.pctr_from_interests(args.model, interests, args.targets, **spec)
                else:
                    probs = client.pctr(args.model, args.user, args.history, args.targets, **spec)
                result = [{"item_id": t, "pctr": float(p)} for t, p in zip(args.targets, probs)]
            else:
                result = [dataclasses.asdict(v) for v in client.status(args.model, args.version)]
        except ServingError as err:
            flag = "--target" if err.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else "--model"
            raise UserError(f"{flag} {args.target if flag == '--target' else args.model}: {err}") from None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_table(result))
    return 0


def _table(result) -> str:
    if isinstance(result, dict):
        (name, vector), = result.items()
        return f"{name} ({len(vector)} dims): " + " ".join(f"{v:.4f}" for v in vector)
    if not result:
        return "(nothing)"
    keys = list(result[0])
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = [[fmt(r[k]) for k in keys] for r in result]
    widths = [max(len(k), *(len(r[i]) for r in rows)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- bench serve
def add_bench_serve_parser(bench_sub) -> None:
    bench = bench_sub.add_parser("serve", help="load-test a server: throughput and p50/p95/p99 latency")
    where = bench.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-base-path", help="start `usermodel serve` on this root (and the real binary if on PATH)")
    where.add_argument("--target", help="load an already running server at host:port")
    bench.add_argument("--model", default="nrms")
    bench.add_argument("--concurrency", type=positive(int), nargs="+", default=[1, 2, 4, 8])
    bench.add_argument("--duration", type=positive(float), default=10.0, help="measured seconds per concurrency level")
    bench.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each level")
    bench.add_argument("--mix", default="score=1", help="signature weights, e.g. score=8,encode_user=1")
    bench.add_argument("--history", type=int, default=50, help="history ids per request (default 50)")
    bench.add_argument("--candidates", type=positive(int), default=100, help="candidate ids per request (default 100)")
    bench.add_argument("--news-tsv", help="MIND news.tsv to draw real news ids and text from")
    bench.add_argument("--batching-parameters-file", help="batching of the started servers")
    bench.add_argument("--no-batching", action="store_true", help="start the servers without batching")
    bench.add_argument("--json", type=writable_file, help="also write the results here")
    bench.set_defaults(fn=_bench_serve)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_available(target: str, model: str, process: subprocess.Popen, timeout_s: float = 180.0) -> None:
    from serving.client import ClientConfig, ServingClient, ServingError

    deadline = time.monotonic() + timeout_s
    with ServingClient(ClientConfig(target, timeout_s=2.0, retries=0)) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise UserError(f"--model-base-path: the server exited with status {process.returncode} before serving")
            with contextlib.suppress(ServingError):
                if any(v.state == "AVAILABLE" for v in client.status(model)):
                    return
            time.sleep(0.5)
    raise UserError(f"--model {model}: not AVAILABLE after {timeout_s:.0f} s")


@contextlib.contextmanager
def _started(kind: str, args: argparse.Namespace) -> Iterator[str]:
    """Starts `usermodel serve` (kind "usermodel") or tensorflow_model_server on 127.0.0.1."""
    from serving import deploy
    from serving.batching import BatchingConfig

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "usermodel":
            cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--model-base-path", args.model_base_path,
                   "--host", "127.0.0.1", "--port", str(port), "--rest-port", "-1"]
            cmd += ["--no-batching"] if args.no_batching else []
            if args.batching_parameters_file:
                cmd += ["--batching-parameters-file", args.batching_parameters_file]
        else:
            models_config = os.path.join(tmp, deploy.MODELS_CONFIG)
            with open(models_config, "w") as f:
                f.write(deploy.model_server_config(deploy.discover_models(args.model_base_path),
                                                   os.path.abspath(args.model_base_path)))
            cmd = [shutil.which("tensorflow_model_server"), f"--port={port}", f"--model_config_file={models_config}"]
            if not args.no_batching:
                batching = os.path.join(tmp, deploy.BATCHING_CONFIG)
                with open(batching, "w") as f:
                    f.write(deploy.batching_parameters(_batching(args) or BatchingConfig()))
                cmd += ["--enable_batching=true", f"--batching_parameters_file={batching}"]
        log = open(os.path.join(tmp, "server.log"), "w")
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
        try:
            _wait_available(f"127.0.0.1:{port}", args.model, process)
            yield f"127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _bench_serve(args: argparse.Namespace) -> int:

    with quiet_native_stderr():
        from serving import load_test

    base = load_test.LoadConfig(
        target=args.target or "", model=args.model, mix=load_test.parse_mix(args.mix), duration_s=args.duration,
        warmup_s=args.warmup, history=args.history, candidates=args.candidates, news_tsv=args.news_tsv)
    if args.model_base_path and not os.path.isdir(args.model_base_path):
        raise UserError(f"--model-base-path: {args.model_base_path} is not a directory")
    servers = ["usermodel"] + (["tensorflow_model_server"] if shutil.which("tensorflow_model_server") else [])
    if args.target:
        servers = [args.target]
    elif len(servers) == 1:
        print("tensorflow_model_server is not on PATH: benchmarking `usermodel serve` only")
    results = []
    print("| server | concurrency | requests/s | p50 ms | p95 ms | p99 ms | failed |\n|---|---|---|---|---|---|---|")
    for server in servers:
        ctx = contextlib.nullcontext(server) if args.target else _started(server, args)
        with ctx as target:
            for level in args.concurrency:
                result = load_test.run_load(dataclasses.replace(base, target=target, concurrency=level))
                p = result.percentiles()
                print(f"| {server} | {level} | {result.throughput:.1f} | {p['p50']:.2f} | {p['p95']:.2f} | "
                      f"{p['p99']:.2f} | {sum(result.errors.values())} |", flush=True)
                results.append({"server": server, **result.to_dict()})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0
