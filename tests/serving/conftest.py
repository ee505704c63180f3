"""Fixtures: one serving root with a model of each family (built once per session), and servers
on loopback over copies of it that stop by themselves at the end of each test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from serving.batching import BatchingConfig
from serving.client import ClientConfig, ServingClient
from serving.model_manager import ManagerConfig
from serving.server import Server, ServerConfig
from tests.serving import saved_models


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> str:
    """<root>/{nrms,fum,lstur,ctr,tags}/1/ — never modified; tests copy it."""
    root = tmp_path_factory.mktemp("models")
    for name in saved_models.NEWS_MODELS:
        saved_models.export_news(name, str(root / name / "1"))
    saved_models.export_contract(saved_models.CtrContract(), str(root / "ctr" / "1"))
    saved_models.export_contract(saved_models.TagsContract(), str(root / "tags" / "1"))
    return str(root)


def add_version(root: str, model: str, version: int, source: str) -> str:
    """Publishes `source` as <root>/<model>/<version> atomically (copy aside, then rename), as the
    Pusher does, so the server never sees a half-written version."""
    final = os.path.join(root, model, str(version))
    staging = os.path.join(root, model, f".staging-{version}")
    shutil.copytree(source, staging)
    os.rename(staging, final)
    return final


@pytest.fixture
def serving_root(model_root, tmp_path) -> str:
    root = tmp_path / "serving"
    shutil.copytree(model_root, root)
    return str(root)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Starts servers on 127.0.0.1 with free ports; all are stopped when the test ends."""
    started: list[Server] = []

    def start(root: str, batching: BatchingConfig | None = BatchingConfig(), rest: bool = False,
              **manager) -> Server:
        server = Server(ManagerConfig(root, **{"poll_interval_s": 0.1, **manager}),
                        ServerConfig(port=0, host="127.0.0.1", rest_port=0 if rest else None, batching=batching,
                                     shutdown_grace_s=5.0))
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client_for() -> Iterator[Callable[[Server], ServingClient]]:
    clients: list[ServingClient] = []

    def make(server: Server, **config) -> ServingClient:
        clients.append(ServingClient(ClientConfig(f"127.0.0.1:{server.port}", **config)))
        return clients[-1]

    yield make
    for c in clients:
        c.close()
