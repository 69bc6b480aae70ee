#!/usr/bin/env bash
# make demo: the main job on example models the demo makes itself.
# Usage: scripts/demo.sh path/to/seqlab   (output under out/demo, run store out/demo/seqlab.db)
set -euo pipefail
SEQLAB=${1:-build/seqlab}
OUT=${SEQLAB_DEMO_OUT:-out/demo}
mkdir -p "$OUT"
export SEQLAB_DB="$OUT/seqlab.db"
rm -f "$SEQLAB_DB" "$SEQLAB_DB-wal" "$SEQLAB_DB-shm"

say() { printf '\n== %s\n' "$*"; }

say "example models"
"$SEQLAB" init --family lstm --input-size 4 --hidden-size 64 --seed 1 -o "$OUT/lstm.bin"
"$SEQLAB" init --family rnn --leaky --tau 8 --input-size 4 --hidden-size 64 --seed 2 -o "$OUT/leaky_rnn.bin"
"$SEQLAB" init --family lssl --measure legs --d-model 8 --d-state 32 --seed 3 -o "$OUT/lssl_legs.bin"

say "an LSTM trained on running parity (length 32) in a few seconds"
"$SEQLAB" train --family lstm --hidden-size 32 --task parity --length 32 --steps 800 --batch 64 --lr 3e-3 --seed 1 \
  --quiet -o "$OUT/lstm_parity.bin" --figure "$OUT/lstm_parity-train.png"
"$SEQLAB" eval "$OUT/lstm_parity.bin" --task parity --lengths 32,128 --no-plot | sed -n '1,4p'

say "seqlab spectrum (eigenvalues of every layer's transition)"
for m in "$OUT"/*.bin; do
  "$SEQLAB" spectrum "$m" -o "$OUT/$(basename "${m%.bin}")-spectrum.png" | sed -n 1p
done
"$SEQLAB" spectrum "$OUT/lstm.bin" --at random --samples 64 --seed 7 -o "$OUT/lstm-spectrum-random.png" | sed -n 1p

say "seqlab timescales (modes, single-unit and network-mediated)"
"$SEQLAB" timescales "$OUT/leaky_rnn.bin" --steps 8000 --seed 5 -o "$OUT/leaky_rnn-timescales.png" | sed -n 1p
"$SEQLAB" timescales "$OUT/lstm_parity.bin" --steps 8000 --seed 5 -o "$OUT/lstm_parity-timescales.png" | sed -n 1p

if [ -f ../shared/models/silero_vad_16k.safetensors ]; then
  say "a real trained model: Silero VAD's LSTM"
  "$SEQLAB" spectrum ../shared/models/silero_vad_16k.safetensors -o "$OUT/silero_vad_16k-spectrum.png" | sed -n 1p
fi

say "the run store: $SEQLAB_DB"
"$SEQLAB" sql "SELECT r.id, r.command, m.family, mt.key, round(mt.value, 4) AS value
               FROM metrics mt JOIN runs r ON r.id = mt.run_id JOIN models m ON m.id = r.model_id
               WHERE mt.key IN ('spectral_radius', 'l0.tau_net_median') ORDER BY r.id"

say "figures"
ls -1 "$OUT"/*.png
echo
echo "demo output: $OUT (figures above, run store $SEQLAB_DB; try: SEQLAB_DB=$SEQLAB_DB $SEQLAB runs)"
