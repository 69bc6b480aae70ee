#!/usr/bin/env python3
"""The transition eigenvalues a trained DeltaNet (seqlab train --family delta_net, with the
trainer's input projection encoder.*) applies along a bit stream, read with seqlab itself:
the bits go through encoder.* into the layers' features, `seqlab spectrum --at trajectory`
gives every head's eigenvalues at every step (the closed form of I - beta k k^T: one
eigenvalue 1 - beta ||k||^2 per head, the others 1), and this prints, per layer and head,
the smallest eigenvalue after 0 bits and after 1 bits. Needs numpy and safetensors.

    python3 scripts/deltanet_parity_eigs.py MODEL.bin [BITS]     (BITS default: 64 random bits, seed 0)
"""
import csv
import io
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file


def main():
    path = sys.argv[1]
    rng = np.random.default_rng(0)
    bits = np.array([int(c) for c in sys.argv[2]] if len(sys.argv) > 2 else rng.integers(0, 2, 64), dtype=np.float32)
    t = load_file(path)
    u = (bits[:, None] @ t["encoder.weight"].T + t["encoder.bias"])[None].astype(np.float32)
    binary = os.environ.get("SEQLAB", "build/seqlab")
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "u.safetensors")
        save_file({"u": u}, inp)
        out = subprocess.run([binary, "spectrum", path, "--at", "trajectory", "--input", inp, "--format", "csv",
                              "--db", os.path.join(d, "runs.db"), "--no-plot"], check=True, capture_output=True,
                             text=True).stdout
    low = {}
    for r in csv.DictReader(io.StringIO(out)):
        key = (int(r["layer"]), int(r["block"]), int(r["point"]))
        low[key] = min(low.get(key, 9.0), float(r["re"]))
    print("bits:", "".join(str(int(b)) for b in bits))
    for layer, head in sorted({(k[0], k[1]) for k in low}):
        ev = {b: [low[(layer, head, s)] for s in range(len(bits)) if bits[s] == b and (layer, head, s) in low]
              for b in (0, 1)}
        print(f"layer {layer} head {head}: smallest eigenvalue after a 0: {min(ev[0]):+.3f} .. {max(ev[0]):+.3f}; "
              f"after a 1: {min(ev[1]):+.3f} .. {max(ev[1]):+.3f}")


if __name__ == "__main__":
    main()
