"""TF Serving deployment config from the pipeline's models, and reading it back for `usermodel serve`.

Production serving is TF Serving; the files here are its own formats, so one pair of files
configures both servers:

* ``models.config`` — a ``ModelServerConfig`` text proto (TF Serving's ``--model_config_file``),
  one entry per model found under the serving root, written with TF Serving's own proto;
* ``batching.config`` — TF Serving's ``--batching_parameters_file`` text proto, from
  :class:`serving.batching.BatchingConfig`.

:func:`write_bundle` writes both plus the Kubernetes manifests of ``serving/k8s/`` (with the
readiness probe pointed at a served model) into one directory for ``kubectl apply -k``.
"""

from __future__ import annotations

import dataclasses
import os
import re

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.errors import UserError
from serving.batching import BatchingConfig
from serving.model_manager import SAVED_MODEL_FILE, VersionPolicy

K8S_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s")
MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching.config"
CONTAINER_BASE_PATH = "/models"
PROBE_PATH = "/v1/models/nrms/metadata"  # as checked in; the bundle points it at its first model


def discover_models(base_path: str) -> list[str]:
    """Model directories under the serving root that hold at least one numeric SavedModel version."""
    if not os.path.isdir(base_path):
        raise UserError(f"--model-base-path: {base_path} is not a directory")
    models = []
    for name in sorted(os.listdir(base_path)):
        root = os.path.join(base_path, name)
        if os.path.isdir(root) and any(
            v.isdigit() and os.path.isfile(os.path.join(root, v, SAVED_MODEL_FILE)) for v in os.listdir(root)
        ):
            models.append(name)
    return models


def model_server_config(models: list[str], base_path: str = CONTAINER_BASE_PATH,
                        policies: dict[str, VersionPolicy] | None = None) -> str:
    """TF Serving's model config text for `models` under `base_path` (as the server sees it)."""
    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
        policy = (policies or {}).get(name, VersionPolicy())
        entry = config.model_config_list.config.add(
            name=name, base_path=f"{base_path.rstrip('/')}/{name}", model_platform="tensorflow")
        if policy.specific:
            entry.model_version_policy.specific.versions.extend(sorted({*policy.specific, *policy.labels.values()}))
        else:
            entry.model_version_policy.latest.num_versions = policy.latest
        for label, version in policy.labels.items():
            entry.version_labels[label] = version
    return text_format.MessageToString(config)


def read_model_config(path: str) -> tuple[dict[str, str], dict[str, VersionPolicy]]:
    """Parses a models.config: model directories and version policies, keyed by model name."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        with open(path, encoding="utf-8") as f:
            text_format.Parse(f.read(), config)
    except text_format.ParseError as err:
        raise UserError(f"--model-config-file {path}: {err}") from None
    dirs, policies = {}, {}
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise UserError(f"--model-config-file {path}: every config needs a name and a base_path")
        dirs[entry.name] = entry.base_path
        policy = entry.model_version_policy
        labels = dict(entry.version_labels)
        if policy.HasField("specific"):
            policies[entry.name] = VersionPolicy(latest=0, specific=tuple(policy.specific.versions), labels=labels)
        elif policy.HasField("all"):
            raise UserError(f"--model-config-file {path}: model '{entry.name}': the 'all' version policy "
                            "is not supported; use latest or specific")
        else:
            policies[entry.name] = VersionPolicy(latest=policy.latest.num_versions or 1, labels=labels)
    return dirs, policies


def batching_parameters(config: BatchingConfig) -> str:
    """TF Serving's batching parameters text (its BatchingParameters proto uses wrapper types)."""
    fields = [f"{f.name} {{ value: {getattr(config, f.name)} }}" for f in dataclasses.fields(config)]
    return "\n".join(fields + ["pad_variable_length_inputs: false"]) + "\n"


def read_batching_parameters(path: str) -> BatchingConfig:
    """Parses the fields :func:`batching_parameters` writes; an unknown field is a user mistake."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    known = {f.name for f in dataclasses.fields(BatchingConfig)}
    values: dict[str, int] = {}
    for line in filter(None, (ln.split("#")[0].strip() for ln in text.splitlines())):
        match = re.fullmatch(r"(\w+)\s*\{\s*value:\s*(\d+)\s*\}", line)
        if line == "pad_variable_length_inputs: false":
            continue
        if not match or match[1] not in known:
            raise UserError(f"--batching-parameters-file {path}: unsupported line {line!r}; "
                            f"supported: {', '.join(sorted(known))} (as NAME {{ value: N }})")
        values[match[1]] = int(match[2])
    config = BatchingConfig(**values)
    try:
        config.validate()
    except ValueError as err:
        raise UserError(f"--batching-parameters-file {path}: {err}") from None
    return config


def write_bundle(out_dir: str, models: list[str], batching: BatchingConfig,
                 base_path: str = CONTAINER_BASE_PATH) -> list[str]:
    """Writes models.config, batching.config and the Kubernetes manifests; returns the paths."""
    if not models:
        raise UserError("no models to deploy: the serving root has no <model>/<version>/saved_model.pb")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, text in ((MODELS_CONFIG, model_server_config(models, base_path)),
                       (BATCHING_CONFIG, batching_parameters(batching))):
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    for name in sorted(n for n in os.listdir(K8S_DIR) if n.endswith(".yaml")):
        with open(os.path.join(K8S_DIR, name), encoding="utf-8") as f:
            text = f.read().replace(PROBE_PATH, f"/v1/models/{models[0]}/metadata")
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written
