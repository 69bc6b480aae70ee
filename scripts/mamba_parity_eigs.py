#!/usr/bin/env python3
"""The transition eigenvalues a trained one-block Mamba (seqlab train --family mamba, with the
trainer's input projection encoder.*) produces on a steady stream of 0 bits and of 1 bits:
abar = exp(-delta exp(A_log)) (2 abar - 1 for eig_range [-1,1]), delta from the block's own
path with every conv tap seeing the same input. A parity "flip-flop" is a state entry with
abar ~ +1 on a 0 and ~ -1 on a 1. Needs numpy and safetensors.

    python3 scripts/mamba_parity_eigs.py MODEL.bin [MODEL.bin ...]
"""
import json
import struct
import sys

import numpy as np
from safetensors.numpy import load_file


def eigs(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["__metadata__"]
    cfg = json.loads(meta["seqlab.config"])
    neg = cfg.get("eig_range", "[0,1]").replace(" ", "") == "[-1,1]"
    eps = cfg.get("norm_epsilon", 1e-5)
    t = load_file(path)
    p = "backbone.layers.0."
    m = lambda k: t[p + "mixer." + k].astype(np.float64)
    out = {}
    for bit in (0.0, 1.0):
        x = t["encoder.weight"][:, 0].astype(np.float64) * bit + t["encoder.bias"]
        xn = x / np.sqrt((x * x).mean() + eps) * t[p + "norm.weight"]
        proj = m("in_proj.weight") @ xn + (m("in_proj.bias") if p + "mixer.in_proj.bias" in t else 0)
        di = proj.shape[0] // 2
        xcp = m("conv1d.weight")[:, 0, :].sum(1) * proj[:di] + (m("conv1d.bias") if p + "mixer.conv1d.bias" in t else 0)
        xc = xcp / (1 + np.exp(-xcp))
        dbc = m("x_proj.weight") @ xc
        R = m("dt_proj.weight").shape[1]
        dpre = m("dt_proj.weight") @ dbc[:R] + m("dt_proj.bias")
        delta = np.where(dpre > 20, dpre, np.log1p(np.exp(np.minimum(dpre, 20))))
        a = np.exp(-delta[:, None] * np.exp(m("A_log")))
        out[bit] = 2 * a - 1 if neg else a
    return cfg.get("eig_range", "[0,1]"), out


for path in sys.argv[1:]:
    rng, ab = eigs(path)
    flip = (ab[0.0] > 0.9) & (ab[1.0] < -0.9)
    print(f"{path} ({rng}): eigenvalues on 0s in [{ab[0.0].min():+.3f}, {ab[0.0].max():+.3f}], "
          f"on 1s in [{ab[1.0].min():+.3f}, {ab[1.0].max():+.3f}]; flip-flops (> 0.9 on 0, < -0.9 on 1): "
          f"{flip.sum()} of {flip.size} state entries, in {np.unique(np.nonzero(flip)[0]).size} channels")
