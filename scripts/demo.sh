#!/usr/bin/env bash
# make demo: the main job on bundled examples. Usage: scripts/demo.sh path/to/seqlab
set -euo pipefail
SEQLAB=${1:-build/seqlab}
OUT=${SEQLAB_DEMO_OUT:-out/demo}
mkdir -p "$OUT"
echo "== seqlab info on a bundled PyTorch LSTM (tests/fixtures/torch_lstm.safetensors)"
"$SEQLAB" info tests/fixtures/torch_lstm.safetensors
"$SEQLAB" info tests/fixtures/torch_lstm.safetensors --format json > "$OUT/torch_lstm.info.json"
echo
echo "demo output: $OUT/torch_lstm.info.json"
