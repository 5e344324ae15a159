#!/usr/bin/env bash
# Create the TorchGeo benchmark venv (.venv-bench, gitignored): the newest torchgeo pip finds, plus
# minewatch itself without dependencies (so the TorchGeo side builds the network with minewatch's own
# train/models.py). TorchGeo is never a dependency of minewatch: it lives only here.
#
# Usage: bash bench/setup_torchgeo.sh [VENV]      (default .venv-bench; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-bench}"
PYTHON="${PYTHON:-python3}"
if "$VENV/bin/python" -c "import torchgeo.datasets, torchgeo.samplers, minewatch.train" >/dev/null 2>&1; then
  exit 0
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torchgeo.datasets imports requests (openstreetmap.py) without declaring it in 0.8.1.
"$VENV/bin/python" -m pip install -q torchgeo requests
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -c "import torchgeo.datasets, torchgeo, torch; print('torchgeo', torchgeo.__version__, 'torch', torch.__version__)"
