#!/usr/bin/env python3
"""make bench: seqlab beside PyTorch CPU, same shapes, same threads, same run.

Prints one table: family, shape, seqlab time, PyTorch time, ratio (PyTorch / seqlab:
above 1 means seqlab is faster), seqlab's GFLOP/s and its fraction of the sgemm peak
measured in this run, and the peak resident memory of the seqlab process.

Then training throughput: an LSTM (input 1, H = 128) with a linear readout trained on
running parity of length 64, cross-entropy at every step, Adam(W) lr 1e-3 without decay,
gradient norm clipped to 1, batch 64: sequences per second of seqlab (seqlab_bench train,
the library's training step) and of the same model trained with PyTorch CPU, in this run.
On CPUs with AVX-512 a second seqlab row runs with OPENBLAS_CORETYPE=SkylakeX, because
OpenBLAS releases before 0.3.22 do not recognise AMD Zen 4/5 and run their AVX2 (Haswell)
kernels there.
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


# ---------------------------------------------------------------- training
TRAIN = dict(H=128, T=64, B=64, steps=30)


def torch_train_seq_per_s(H, T, B, steps, repeat):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(1, H, batch_first=True)
    ro = torch.nn.Linear(H, 2)
    params = list(lstm.parameters()) + list(ro.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        u = torch.randint(0, 2, (B, T, 1)).float()
        tgt = (torch.cumsum(u[..., 0], 1) % 2).long()
        y, _ = lstm(u)
        loss = torch.nn.functional.cross_entropy(ro(y).reshape(-1, 2), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    t = best_time(lambda: [step() for _ in range(steps)], repeat=repeat, warmup=1)
    return steps * B / t


def has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


def train_rows(a):
    H, T, B, steps = TRAIN["H"], TRAIN["T"], TRAIN["B"], TRAIN["steps"]
    shape = f"H={H} T={T} B={B}"
    t_sps = torch_train_seq_per_s(H, T, B, steps, a.repeat)
    rows = []
    variants = [("", None)]
    if has_avx512():
        variants.append((" (OpenBLAS AVX-512)", "SkylakeX"))
    for label, core in variants:
        env = dict(os.environ)
        if core:
            env["OPENBLAS_CORETYPE"] = core
        out = subprocess.run([a.bench, "train", "lstm", str(H), str(T), str(B), str(steps), str(a.threads),
                              str(a.repeat)], check=True, capture_output=True, text=True, env=env).stdout
        r = json.loads(out.strip().splitlines()[-1])
        row = dict(family="lstm train" + label, shape=shape, seqlab_seq_per_s=r["seq_per_s"], torch_seq_per_s=t_sps,
                   ratio=r["seq_per_s"] / t_sps, peak_rss_mb=r["peak_rss_mb"])
        rows.append(row)
        print(f"{row['family']:<32} {shape:<18} {r['seq_per_s']:>9.0f}/s {t_sps:>9.0f}/s {row['ratio']:>6.2f}x "
              f"{r['peak_rss_mb']:>7.0f}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--seqlab", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated families to run (\"train\": the training row)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    only = set(a.only.split(",")) if a.only else None
    peak = run_c([a.bench, "sgemm", "2048", str(a.threads)])
    print(f"sgemm peak (n=2048, {a.threads} threads): {peak['gflops']:.1f} GFLOP/s   torch {torch.__version__}")
    rows = []
    hdr = f"{'family':<10} {'shape':<22} {'seqlab':>10} {'pytorch':>10} {'ratio':>7} {'GFLOP/s':>8} {'%peak':>6} {'RSS MB':>7}"
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
        row = dict(family=fam, shape=shape, seqlab_s=t_sl, torch_s=t_torch, ratio=t_torch / t_sl, gflops=gf,
                   peak_frac=gf / peak["gflops"], peak_rss_mb=r["peak_rss_mb"])
        rows.append(row)
        print(f"{fam:<10} {shape:<22} {t_sl*1e3:>8.1f}ms {t_torch*1e3:>8.1f}ms {row['ratio']:>6.2f}x {gf:>8.1f} "
              f"{100*row['peak_frac']:>5.1f}% {r['peak_rss_mb']:>7.0f}", flush=True)
    train = []
    if not only or "train" in only:
        print()
        hdr = f"{'training (sequences/s)':<32} {'shape':<18} {'seqlab':>11} {'pytorch':>11} {'ratio':>7} {'RSS MB':>7}"
        print(hdr)
        print("-" * len(hdr))
        train = train_rows(a)
    with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump({"sgemm_peak_gflops": peak["gflops"], "threads": a.threads, "rows": rows, "train": train}, f, indent=1)


if __name__ == "__main__":
    main()
