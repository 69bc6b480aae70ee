#!/usr/bin/env python3
"""Spectrum timings for `make bench` (issue: spectrum and timescales).

seqlab spectrum end to end (model load, points, structured eigenvalues, no figure, no
run store writes beyond the run itself) beside numpy.linalg.eigvals on the dense
transition matrices, in the same run:
  - LSTM H=1024 at the origin: the 2048 x 2048 Jacobian (computed here with
    torch.autograd, as a user without seqlab would), one numpy.linalg.eigvals;
  - Mamba d_model=768, d_state=16 at 64 random inputs: each sample's A_t is
    diagonal, 24576 x 24576 per layer. numpy cannot take the eigenvalues of
    that matrix in reasonable time (it is 4.8 GB and O(n^3)), so it is timed on
    a 2048 x 2048 dense slice of one sample's A_t and scaled linearly to the 12
    slices and 64 samples: a lower bound on numpy's time for the dense route.
"""
import json
import os
import subprocess
import time

import numpy as np
import torch
from safetensors.torch import save_file

OUT = "bench/out"


def seqlab_time(seqlab, args, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([seqlab, "spectrum", *args, "--no-plot", "--format", "csv", "--db", os.path.join(OUT, "bench.db")],
                       check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def lstm_origin(seqlab, threads):
    H = 1024
    torch.manual_seed(0)
    m = torch.nn.LSTM(H, H)
    path = os.path.join(OUT, "spectrum_lstm_H1024.bin")
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, path,
              metadata={"seqlab.family": "lstm", "seqlab.config": json.dumps({"input_size": H, "hidden_size": H})})
    sd = {k: v.double() for k, v in m.state_dict().items()}

    def step(state):
        h, c = state[:H], state[H:]
        g = sd["weight_hh_l0"] @ h + sd["bias_ih_l0"] + sd["bias_hh_l0"]
        i, f, gg, o = g[:H].sigmoid(), g[H:2 * H].sigmoid(), g[2 * H:3 * H].tanh(), g[3 * H:].sigmoid()
        c2 = f * c + i * gg
        return torch.cat([o * torch.tanh(c2), c2])

    A = torch.autograd.functional.jacobian(step, torch.zeros(2 * H, dtype=torch.float64)).numpy()
    t0 = time.perf_counter()
    ev = np.linalg.eigvals(A)
    t_np = time.perf_counter() - t0
    t_sl = seqlab_time(seqlab, [path, "--at", "origin", "--threads", str(threads)])
    return dict(case="lstm H=1024 origin", matrix="2048x2048 dense", seqlab_s=t_sl, numpy_s=t_np,
                ratio=t_np / t_sl, numpy_radius=float(np.abs(ev).max()))


def mamba_random(seqlab, threads):
    path = os.path.join(OUT, "spectrum_mamba_768.bin")
    subprocess.run([seqlab, "init", "--family", "mamba", "--d-model", "768", "--d-state", "16", "--seed", "1", "-o", path],
                   check=True, capture_output=True)
    t_sl = seqlab_time(seqlab, [path, "--at", "random", "--samples", "64", "--seed", "3", "--threads", str(threads)])
    # numpy: one 2048 x 2048 slice of a diagonal A_t (values as Mamba's: exp(dt A) in (0, 1)).
    rng = np.random.default_rng(0)
    D = np.diag(np.exp(-rng.uniform(0.001, 0.1, 2048) * rng.uniform(1, 16, 2048)))
    t0 = time.perf_counter()
    np.linalg.eigvals(D)
    t_slice = time.perf_counter() - t0
    n_state = 2 * 768 * 16
    t_np = t_slice * (n_state / 2048) * 64
    return dict(case="mamba d=768 N=16, 64 random", matrix=f"{n_state}x{n_state} diag x64",
                seqlab_s=t_sl, numpy_s=t_np, ratio=t_np / t_sl, numpy_slice_s=t_slice)


def run(seqlab, threads):
    os.makedirs(OUT, exist_ok=True)
    rows = [lstm_origin(seqlab, threads), mamba_random(seqlab, threads)]
    print()
    hdr = f"{'spectrum':<30} {'matrices':<24} {'seqlab':>10} {'numpy':>10} {'ratio':>8}"
    print(hdr + "   (ratio = numpy.linalg.eigvals on the dense matrices / seqlab spectrum end to end)")
    print("-" * len(hdr))
    for r in rows:
        note = " (numpy lower bound: 2048 slice scaled)" if "numpy_slice_s" in r else ""
        print(f"{r['case']:<30} {r['matrix']:<24} {r['seqlab_s']*1e3:>8.0f}ms {r['numpy_s']*1e3:>8.0f}ms "
              f"{r['ratio']:>7.1f}x{note}", flush=True)
    return rows


if __name__ == "__main__":
    import sys
    torch.set_num_threads(2)
    run(sys.argv[1] if len(sys.argv) > 1 else "build/seqlab", 2)
