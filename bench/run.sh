#!/usr/bin/env bash
# make bench: seqlab beside PyTorch CPU on the same shapes, threads and machine,
# in one run. PyTorch and numpy are installed here (with pip) when missing; the
# tests and CI never need them.
set -euo pipefail
BUILD=${BUILD:-build}
mkdir -p bench/out
if ! python3 -c "import torch, numpy, safetensors" >/dev/null 2>&1; then
  echo "bench: installing torch, numpy, safetensors with pip (CPU wheels)"
  python3 -m pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch ||
    python3 -m pip install --quiet torch
  python3 -m pip install --quiet numpy safetensors
fi
exec python3 bench/bench.py --bench "$BUILD/bench/seqlab_bench" --seqlab "${1:-$BUILD/seqlab}" "${@:2}"
