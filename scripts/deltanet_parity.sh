#!/usr/bin/env bash
# DeltaNet half of "Unlocking State-Tracking in Linear RNNs Through Negative
# Eigenvalues" (Grazzi et al., ICLR 2025), reproduced in kind: one DeltaNet
# block trained on running parity at length 64 (every prefix 1..64 scored),
# with beta in [0,1] (transition eigenvalues 1 - beta ||k||^2 in [0,1]) and
# with allow_neg_eigval (beta in [0,2]: eigenvalues in [-1,1]), then
# evaluated on fresh sequences of length 64, 256 and 1024. Results and
# discussion: docs/deltanet-parity.md.
#
#   scripts/deltanet_parity.sh [SEEDS] [STEPS] [OUTDIR]   (defaults: "0 1 2", 3000, out/deltanet-parity)
#
# About 40 s per run on one core of an idle machine (--threads 1; the two
# settings of a seed run side by side).
set -euo pipefail
BIN=${SEQLAB:-build/seqlab}
SEEDS=${1:-0 1 2}
STEPS=${2:-3000}
OUT=${3:-out/deltanet-parity}
mkdir -p "$OUT"
run() {   # name seed [--allow-neg-eigval]
  "$BIN" train --family delta_net --hidden-size 32 --num-heads 2 --intermediate-size 64 ${3:-} \
    --task parity --length 64 --steps "$STEPS" --batch 32 --lr 3e-3 --warmup 100 --seed "$2" --eval-every 500 \
    --threads 1 -o "$OUT/$1.bin" --db "$OUT/runs.db" --no-plot -q > "$OUT/$1.train.txt"
  "$BIN" eval "$OUT/$1.bin" --task parity --lengths 64,256,1024 --db "$OUT/runs.db" --no-plot --threads 1 \
    --format csv > "$OUT/$1.eval.csv"
}
for s in $SEEDS; do
  run "neg-s$s" "$s" --allow-neg-eigval &
  run "pos-s$s" "$s" &
  wait
done
printf '%-16s %-5s %6s %10s %10s %10s %10s\n' allow_neg_eigval seed steps "acc@64" "acc@256" "last@256" "acc@1024"
for s in $SEEDS; do
  for k in neg pos; do
    f="$OUT/$k-s$s.eval.csv"
    col() { awk -F, -v L="$1" -v C="$2" '$1 == L {print $C}' "$f"; }
    printf '%-16s %-5s %6s %10s %10s %10s %10s\n' "$([ $k = neg ] && echo true || echo false)" "$s" "$STEPS" \
      "$(col 64 2)" "$(col 256 2)" "$(col 256 3)" "$(col 1024 2)"
  done
done
