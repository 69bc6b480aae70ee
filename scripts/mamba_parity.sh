#!/usr/bin/env bash
# Mamba half of "Unlocking State-Tracking in Linear RNNs Through Negative
# Eigenvalues" (Grazzi et al., ICLR 2025), reproduced in kind: one Mamba block
# trained on running parity at length 64 (every prefix 1..64 scored), with the
# state transition's eigenvalues in [0,1] (Mamba) and in [-1,1]
# (A_bar -> 2 A_bar - 1), then evaluated on fresh sequences of length 64 and
# 256. Results and discussion: docs/mamba-parity.md.
#
#   scripts/mamba_parity.sh [SEEDS] [STEPS] [OUTDIR]     (defaults: "0 1 2", 2000, out/mamba-parity)
#
# About 40 s per run on one core of an idle machine (--threads 1; the two
# ranges of a seed run side by side).
set -euo pipefail
BIN=${SEQLAB:-build/seqlab}
SEEDS=${1:-0 1 2}
STEPS=${2:-2000}
OUT=${3:-out/mamba-parity}
mkdir -p "$OUT"
run() {   # name eig_range seed
  "$BIN" train --family mamba --d-model 32 --d-state 8 --n-layer 1 --eig-range "$2" \
    --task parity --length 64 --steps "$STEPS" --batch 32 --lr 2e-3 --seed "$3" --eval-every 500 \
    --threads 1 -o "$OUT/$1.bin" --db "$OUT/runs.db" --no-plot -q > "$OUT/$1.train.txt"
  "$BIN" eval "$OUT/$1.bin" --task parity --lengths 64,256 --db "$OUT/runs.db" --no-plot --threads 1 \
    --format csv > "$OUT/$1.eval.csv"
}
for s in $SEEDS; do
  run "neg-s$s" "[-1,1]" "$s" &
  run "pos-s$s" "[0,1]" "$s" &
  wait
done
printf '%-8s %-6s %5s %12s %13s %14s\n' eig_range seed steps "acc@64" "acc@256" "last@256"
for s in $SEEDS; do
  for k in neg pos; do
    r=$([ $k = neg ] && echo "[-1,1]" || echo "[0,1]")
    a64=$(awk -F, '$1 == 64 {print $2}' "$OUT/$k-s$s.eval.csv")
    a256=$(awk -F, '$1 == 256 {print $2}' "$OUT/$k-s$s.eval.csv")
    l256=$(awk -F, '$1 == 256 {print $3}' "$OUT/$k-s$s.eval.csv")
    printf '%-8s %-6s %5s %12s %13s %14s\n' "$r" "$s" "$STEPS" "$a64" "$a256" "$l256"
  done
done
