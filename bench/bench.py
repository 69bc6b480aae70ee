#!/usr/bin/env python3
"""make bench: seqlab beside PyTorch CPU, same shapes, same threads, same run.

Prints one table: family, shape, seqlab time, PyTorch time, ratio (PyTorch / seqlab:
above 1 means seqlab is faster), seqlab's GFLOP/s and its fraction of the sgemm peak
measured in this run (OpenBLAS, whose Debian build runs AVX2 kernels on this CPU) and of
the machine's FMA peak (independent multiply-adds in registers, widest ISA), the peak
resident memory of the seqlab process, and how much the forward passes added to it
(x and y are allocated and touched before; this is the kernels' workspace). After the
table, a memory check: the same shapes at T and 4T must add the same (O(B * state)).
Models are written by PyTorch (state dicts through safetensors) so both sides run the
same weights. Results also go to bench/out/bench.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from safetensors.torch import save_file

OUT = "bench/out"


def best_time(fn, repeat=3, warmup=1):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_c(args):
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- recurrent families
def torch_rnn_case(kind, H, B, T):
    mod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](H, H, batch_first=True)
    path = os.path.join(OUT, f"{kind}_H{H}.bin")
    cfg = {"input_size": H, "hidden_size": H, "num_layers": 1}
    save_file({k: v.contiguous() for k, v in mod.state_dict().items()}, path,
              metadata={"seqlab.family": kind, "seqlab.config": json.dumps(cfg)})
    x = torch.randn(B, T, H)

    def fwd():
        with torch.no_grad():
            mod(x)

    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    flops = 2.0 * B * T * gates * H * (H + H)
    return path, fwd, flops


CASES = []
for kind in ("rnn", "lstm", "gru"):
    for (H, B, T) in ((256, 1, 1000), (256, 32, 1000), (1024, 1, 200), (1024, 32, 200)):
        CASES.append((kind, f"H={H} B={B} T={T}", lambda kind=kind, H=H, B=B, T=T: torch_rnn_case(kind, H, B, T), B, T))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--seqlab", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated families to run")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many runs, each side (shared machines are noisy)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    only = set(a.only.split(",")) if a.only else None
    peak = run_c([a.bench, "sgemm", "2048", str(a.threads)])
    fpk = run_c([a.bench, "fmapeak", str(a.threads)])
    print(f"sgemm peak (n=2048, {a.threads} threads): {peak['gflops']:.1f} GFLOP/s   "
          f"FMA peak ({fpk.get('lanes', 0)} lanes): {fpk['gflops']:.1f} GFLOP/s   torch {torch.__version__}")
    rows = []
    hdr = (f"{'family':<10} {'shape':<22} {'seqlab':>10} {'pytorch':>10} {'ratio':>7} {'GFLOP/s':>8} {'%peak':>6} "
           f"{'%fma':>6} {'RSS MB':>7} {'fwd MB':>7}")
    print(hdr)
    print("-" * len(hdr))
    for fam, shape, make, B, T in CASES:
        if only and fam not in only:
            continue
        path, fwd, flops = make()
        t_torch = best_time(fwd, repeat=a.repeat)
        r = run_c([a.bench, "forward", path, str(B), str(T), str(a.threads), "0", str(a.repeat)])
        t_sl = r["seconds"]
        gf = flops / t_sl * 1e-9
        fwd_mb = r["peak_rss_mb"] - r["rss_before_mb"]
        row = dict(family=fam, shape=shape, seqlab_s=t_sl, torch_s=t_torch, ratio=t_torch / t_sl, gflops=gf,
                   peak_frac=gf / peak["gflops"], fma_frac=gf / fpk["gflops"] if fpk["gflops"] else 0,
                   peak_rss_mb=r["peak_rss_mb"], fwd_mb=fwd_mb)
        rows.append(row)
        print(f"{fam:<10} {shape:<22} {t_sl*1e3:>8.1f}ms {t_torch*1e3:>8.1f}ms {row['ratio']:>6.2f}x {gf:>8.1f} "
              f"{100*row['peak_frac']:>5.1f}% {100*row['fma_frac']:>5.1f}% {r['peak_rss_mb']:>7.0f} {fwd_mb:>7.1f}",
              flush=True)
    # Memory check: the forward's workspace must not grow with T (no states kept).
    mem = []
    for fam in ("rnn", "lstm", "gru"):
        if only and fam not in only:
            continue
        path = os.path.join(OUT, f"{fam}_H1024.bin")
        if not os.path.exists(path):
            continue
        got = []
        for T in (200, 800):
            r = run_c([a.bench, "forward", path, "32", str(T), str(a.threads), "0", "1"])
            got.append((T, r["peak_rss_mb"], r["peak_rss_mb"] - r["rss_before_mb"]))
        ok = abs(got[1][2] - got[0][2]) < 1.0
        mem.append(dict(family=fam, runs=got, independent_of_T=ok))
        print(f"memory {fam} H=1024 B=32: " + ", ".join(f"T={T}: RSS {p:.0f} MB, forward added {d:.1f} MB"
                                                       for T, p, d in got)
              + ("  (independent of T)" if ok else "  (GROWS WITH T)"), flush=True)
    with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump({"sgemm_peak_gflops": peak["gflops"], "fma_peak_gflops": fpk["gflops"], "threads": a.threads,
                   "rows": rows, "memory": mem}, f, indent=1)


if __name__ == "__main__":
    main()
