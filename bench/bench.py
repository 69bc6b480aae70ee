#!/usr/bin/env python3
"""make bench: seqlab beside PyTorch CPU, same shapes, same threads, same run.

Prints one table: family, shape, seqlab time, PyTorch time, ratio (PyTorch / seqlab:
above 1 means seqlab is faster), seqlab's GFLOP/s and its fraction of the sgemm peak
measured in this run (OpenBLAS, whose Debian build runs AVX2 kernels on this CPU) and of
the machine's FMA peak (independent multiply-adds in registers, widest ISA), the peak
resident memory of the seqlab process, and how much the forward passes added to it
(x and y are allocated and touched before; this is the kernels' workspace). After the
table, a memory check: the same shapes at T and 4T must add the same (O(B * state)).

Then the state-space rows (LSSL recurrence vs convolution, Mamba vs Hugging Face's slow
path), the matrix-state rows (chunked vs recurrent vs a PyTorch chunked peer), training
throughput: an LSTM (input 1, H = 128) with a linear readout trained on running parity of
length 64, cross-entropy at every step, Adam(W) lr 1e-3 without decay, gradient norm
clipped to 1, batch 64: sequences per second of seqlab (seqlab_bench train, the library's
training step) and of the same model trained with PyTorch CPU, in this run. On CPUs with
AVX-512 a second seqlab row runs with OPENBLAS_CORETYPE=SkylakeX, because OpenBLAS releases
before 0.3.22 do not recognise AMD Zen 4/5 and run their AVX2 (Haswell) kernels there.
Last, spectrum timings beside numpy.linalg.eigvals (bench_spectrum.py).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mamba  # noqa: E402  (the HF Mamba slow path, for the mamba rows)

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


# ---------------------------------------------------------------- matrix-state families
def torch_matrix_case(kind, H, dk, B, T):
    """A one-block fla-style model (H heads of dk = dv), written by PyTorch; the peer is the
    pure-torch chunked form of the same block (bench/torch_chunked.py)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_chunked
    hid, K, r = H * dk, 4, 16
    inter = 256 * ((int(hid * 4 * 2 / 3) + 255) // 256)
    g = torch.Generator().manual_seed(0)
    rn = lambda *s: torch.randn(*s, generator=g) * 0.02
    p = "model.layers.0."
    sd = {p + "attn_norm.weight": torch.ones(hid), p + "mlp_norm.weight": torch.ones(hid),
          p + "mlp.gate_proj.weight": rn(inter, hid), p + "mlp.up_proj.weight": rn(inter, hid),
          p + "mlp.down_proj.weight": rn(hid, inter), p + "attn.o_proj.weight": rn(hid, hid)}
    for n in "qkv":
        sd[p + f"attn.{n}_proj.weight"] = rn(hid, hid)
    if kind == "delta_net":
        for n in "qkv":
            sd[p + f"attn.{n}_conv1d.weight"] = rn(hid, 1, K) * 10
        sd[p + "attn.b_proj.weight"] = rn(H, hid)
        sd[p + "attn.o_norm.weight"] = torch.ones(dk)
        cfg = dict(hidden_size=hid, num_heads=H, num_hidden_layers=1, expand_k=1.0, expand_v=1.0, conv_size=K,
                   intermediate_size=inter)
    else:
        sd[p + "attn.g_proj.weight"] = rn(hid, hid)
        sd[p + "attn.gk_proj.0.weight"] = rn(r, hid)
        sd[p + "attn.gk_proj.1.weight"] = rn(hid, r)
        sd[p + "attn.gk_proj.1.bias"] = torch.zeros(hid)
        sd[p + "attn.g_norm_swish_gate.weight"] = torch.ones(dk)
        cfg = dict(hidden_size=hid, num_heads=H, num_hidden_layers=1, expand_k=1.0, expand_v=1.0, intermediate_size=inter)
    path = os.path.join(OUT, f"{kind}_H{H}x{dk}.bin")
    save_file({k: v.contiguous() for k, v in sd.items()}, path,
              metadata={"seqlab.family": kind, "seqlab.config": json.dumps(cfg)})
    x = torch.randn(B, T, hid)

    def fwd():
        with torch.no_grad():
            torch_chunked.block(sd, kind, x, H)

    flops = 2.0 * B * T * hid * (4 * hid + 3 * inter) + 2.0 * B * T * H * (4 * dk * dk + 2 * 64 * dk)
    return path, fwd, flops


CASES = []
for kind in ("rnn", "lstm", "gru"):
    for (H, B, T) in ((256, 1, 1000), (256, 32, 1000), (1024, 1, 200), (1024, 32, 200)):
        CASES.append((kind, f"H={H} B={B} T={T}", lambda kind=kind, H=H, B=B, T=T: torch_rnn_case(kind, H, B, T), B, T))
MATRIX_CASES = []
for kind in ("delta_net", "gla"):
    MATRIX_CASES.append((kind, "4x64 B=4 T=4096", lambda kind=kind: torch_matrix_case(kind, 4, 64, 4, 4096), 4, 4096))


# ---------------------------------------------------------------- state-space families
def lssl_rows(a, seqlab, bench, H=64, N=64, B=1, T=4096):
    """LSSL (HiPPO-LegS, bilinear) with H channels of state N: seqlab's recurrence (algo 1)
    against its convolution (algo 3), cold (kernel computed in the timed call) and warm
    (kernel cached, as the layer keeps it); PyTorch's peer is an FFT convolution with the
    same precomputed kernel."""
    path = os.path.join(OUT, f"lssl_H{H}_N{N}.bin")
    subprocess.run([seqlab, "init", "--family", "lssl", "--d-model", str(H), "--d-state", str(N), "-o", path],
                   check=True, capture_output=True)
    shape = f"H={H} N={N} B={B} T={T}"
    rec = run_c([bench, "forward", path, str(B), str(T), str(a.threads), "1", str(a.repeat)])
    cold = run_c([bench, "forward", path, str(B), str(T), str(a.threads), "3", "1"])
    warm = run_c([bench, "forward", path, str(B), str(T), str(a.threads), "3", str(a.repeat)])
    k = torch.randn(H, T, dtype=torch.float64)
    x = torch.randn(B, T, H)

    def fftconv():
        with torch.no_grad():
            kf = torch.fft.rfft(k, n=2 * T)
            uf = torch.fft.rfft(x.double().transpose(1, 2), n=2 * T)
            torch.fft.irfft(uf * kf, n=2 * T)[..., :T].transpose(1, 2).float()

    t_torch = best_time(fftconv, repeat=a.repeat)
    flops_rec = 2.0 * B * T * H * N * N
    out = []
    for algo, r, tt, note in (("recurrent", rec, None, ""),
                              ("conv cold", cold, None, f"conv(cold)/rec {cold['seconds'] / rec['seconds']:.3f}"),
                              ("conv warm", warm, t_torch, f"conv/rec {warm['seconds'] / rec['seconds']:.3f}")):
        out.append(dict(family="lssl", shape=f"{shape} {algo}", seqlab_s=r["seconds"], torch_s=tt,
                        ratio=(tt / r["seconds"]) if tt else None, gflops=flops_rec / r["seconds"] * 1e-9 if algo == "recurrent" else None,
                        peak_frac=None, peak_rss_mb=r["peak_rss_mb"], note=note))
    return out


def mamba_rows(a, bench, dm=768, N=16, T=2048, batches=(1, 8)):
    """One Mamba block (d_model 768, d_state 16, expand 2) against Hugging Face's slow path."""
    t, cfg = torch_mamba.mamba_weights(dm, N)
    path = os.path.join(OUT, f"mamba_{dm}.bin")
    save_file({k: v.contiguous() for k, v in t.items()}, path,
              metadata={"seqlab.family": "mamba", "seqlab.config": json.dumps(cfg)})
    di, R = 2 * dm, cfg["dt_rank"]
    out = []
    for B in batches:
        x = torch.randn(B, T, dm)

        def fwd():
            with torch.no_grad():
                torch_mamba.forward(t, cfg, x)

        try:
            t_torch = best_time(fwd, repeat=max(1, a.repeat - 1))
        except RuntimeError as e:   # the slow path materialises [B, d_inner, T, d_state] tensors
            print(f"mamba B={B}: PyTorch failed: {e}", file=sys.stderr)
            t_torch = None
        r = run_c([bench, "forward", path, str(B), str(T), str(a.threads), "0", str(a.repeat)])
        flops = 2.0 * B * T * (dm * 2 * di + di * (R + 2 * N) + R * di + di * dm) + 8.0 * B * T * di * N
        out.append(dict(family="mamba", shape=f"d={dm} N={N} B={B} T={T}", seqlab_s=r["seconds"], torch_s=t_torch,
                        ratio=(t_torch / r["seconds"]) if t_torch else None, gflops=flops / r["seconds"] * 1e-9,
                        peak_frac=None, peak_rss_mb=r["peak_rss_mb"], note="vs HF slow path"))
    return out


def fmt_row(row, peak):
    def ms(v):
        return f"{v*1e3:>8.1f}ms" if v is not None else f"{'-':>10}"
    ratio = f"{row['ratio']:>6.2f}x" if row.get("ratio") is not None else f"{'-':>7}"
    gf = row.get("gflops")
    gfs = f"{gf:>8.1f}" if gf is not None else f"{'-':>8}"
    pk = f"{100 * gf / peak:>5.1f}%" if gf is not None else f"{'-':>6}"
    fm = f"{100 * row['fma_frac']:>5.1f}%" if row.get("fma_frac") else f"{'-':>6}"
    fw = f"{row['fwd_mb']:>7.1f}" if row.get("fwd_mb") is not None else f"{'-':>7}"
    return (f"{row['family']:<10} {row['shape']:<22} {ms(row['seqlab_s'])} {ms(row.get('torch_s'))} {ratio} {gfs} "
            f"{pk} {fm} {row['peak_rss_mb']:>7.0f} {fw}  {row.get('note', '')}")


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


TRAIN_MAMBA = dict(dm=32, N=16, T=64, B=32, steps=20)


def torch_mamba_train_seq_per_s(dm, N, T, B, steps, repeat):
    """The same model trained with PyTorch CPU: Hugging Face's slow path (torch_mamba.py) between an
    input projection Linear(1, dm) and a readout Linear(dm, 2), Adam, clipping to 1."""
    t, cfg = torch_mamba.mamba_weights(dm, N)
    params = [v.clone().requires_grad_(True) for v in t.values()]
    tp = dict(zip(t.keys(), params))
    enc, ro = torch.nn.Linear(1, dm), torch.nn.Linear(dm, 2)
    params += list(enc.parameters()) + list(ro.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        u = torch.randint(0, 2, (B, T, 1)).float()
        tgt = (torch.cumsum(u[..., 0], 1) % 2).long()
        y = torch_mamba.forward(tp, cfg, enc(u))
        loss = torch.nn.functional.cross_entropy(ro(y).reshape(-1, 2), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    tm = best_time(lambda: [step() for _ in range(steps)], repeat=repeat, warmup=1)
    return steps * B / tm


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
    # Mamba (d_state 16, the family's default) on the same task, through the trainer's input projection.
    m = TRAIN_MAMBA
    shape = f"d={m['dm']} N={m['N']} T={m['T']} B={m['B']}"
    t_sps = torch_mamba_train_seq_per_s(m["dm"], m["N"], m["T"], m["B"], m["steps"], a.repeat)
    out = subprocess.run([a.bench, "train", "mamba", str(m["dm"]), str(m["T"]), str(m["B"]), str(m["steps"]),
                          str(a.threads), str(a.repeat)], check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    row = dict(family="mamba train", shape=shape, seqlab_seq_per_s=r["seq_per_s"], torch_seq_per_s=t_sps,
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
    ap.add_argument("--only", default="", help="comma-separated families to run (\"train\": the training rows, \"spectrum\": spectra)")
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
           f"{'%fma':>6} {'RSS MB':>7} {'fwd MB':>7}  note")
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
        print(fmt_row(row, peak["gflops"]), flush=True)
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
    if not only or "lssl" in only:
        for row in lssl_rows(a, a.seqlab, a.bench):
            rows.append(row)
            print(fmt_row(row, peak["gflops"]), flush=True)
    if not only or "mamba" in only:
        for row in mamba_rows(a, a.bench):
            rows.append(row)
            print(fmt_row(row, peak["gflops"]), flush=True)
    # Matrix-state families: seqlab's chunked form against its recurrent form and PyTorch's chunked form.
    mhdr = (f"{'family':<10} {'shape':<22} {'chunked':>10} {'recurr.':>10} {'rec/chk':>7} {'pytorch':>10} "
            f"{'ratio':>7} {'GFLOP/s':>8} {'RSS MB':>7}")
    for fam, shape, make, B, T in MATRIX_CASES:
        if only and fam not in only:
            continue
        if mhdr:
            print()
            print(mhdr + "   (ratio = PyTorch chunked / seqlab chunked; rec/chk = seqlab recurrent / chunked)")
            print("-" * len(mhdr))
            mhdr = None
        path, fwd, flops = make()
        t_torch = best_time(fwd, repeat=a.repeat)
        # The two forms alternate, best of each kept, so a busy machine hits both alike.
        rc = rr = None
        for _ in range(a.repeat):
            c = run_c([a.bench, "forward", path, str(B), str(T), str(a.threads), "2", "2"])
            r = run_c([a.bench, "forward", path, str(B), str(T), str(a.threads), "1", "2"])
            rc = c if rc is None or c["seconds"] < rc["seconds"] else rc
            rr = r if rr is None or r["seconds"] < rr["seconds"] else rr
        t_c, t_r = rc["seconds"], rr["seconds"]
        gf = flops / t_c * 1e-9
        row = dict(family=fam, shape=shape, seqlab_s=t_c, seqlab_recurrent_s=t_r, chunked_speedup=t_r / t_c,
                   torch_s=t_torch, ratio=t_torch / t_c, gflops=gf, peak_rss_mb=rc["peak_rss_mb"])
        rows.append(row)
        print(f"{fam:<10} {shape:<22} {t_c*1e3:>8.1f}ms {t_r*1e3:>8.1f}ms {t_r/t_c:>6.2f}x {t_torch*1e3:>8.1f}ms "
              f"{row['ratio']:>6.2f}x {gf:>8.1f} {rc['peak_rss_mb']:>7.0f}", flush=True)
    # The scan alone (kernels/matstate.c), where the two forms differ; the layer rows above
    # also hold the projections and the MLP, which are the same GEMMs for both.
    scans = [("delta_net", "delta"), ("gla", "vector"), ("gated_delta_net", "gdelta"), ("retnet/mlstm", "scalar"),
             ("linear_attn", "gated")]
    shdr = f"{'scan':<16} {'form':<8} {'shape':<22} {'chunked':>10} {'recurr.':>10} {'rec/chk':>7}"
    for fam, form, in scans:
        if only and not any(f in fam for f in only):
            continue
        if shdr:
            print()
            print(shdr + "   (the scan alone: 4 x 4 heads of d_k = d_v = 64, T = 4096)")
            print("-" * len(shdr))
            shdr = None
        rc = rr = None
        for _ in range(a.repeat):
            c = run_c([a.bench, "scan", form, "4", "4", "4096", "64", str(a.threads), "2", "2"])
            r = run_c([a.bench, "scan", form, "4", "4", "4096", "64", str(a.threads), "1", "2"])
            rc = c if rc is None or c["seconds"] < rc["seconds"] else rc
            rr = r if rr is None or r["seconds"] < rr["seconds"] else rr
        rows.append(dict(family=fam, shape="scan B=4 H=4 T=4096 d=64", form=form, chunk=rc["chunk"],
                         seqlab_s=rc["seconds"], seqlab_recurrent_s=rr["seconds"],
                         chunked_speedup=rr["seconds"] / rc["seconds"]))
        print(f"{fam:<16} {form:<8} {'B=4 H=4 T=4096 C=' + str(rc['chunk']):<22} {rc['seconds']*1e3:>8.1f}ms "
              f"{rr['seconds']*1e3:>8.1f}ms {rr['seconds']/rc['seconds']:>6.2f}x", flush=True)
    train = []
    if not only or "train" in only:
        print()
        hdr = f"{'training (sequences/s)':<32} {'shape':<18} {'seqlab':>11} {'pytorch':>11} {'ratio':>7} {'RSS MB':>7}"
        print(hdr)
        print("-" * len(hdr))
        train = train_rows(a)
    spectra = []
    if not only or "spectrum" in only:
        import bench_spectrum
        spectra = bench_spectrum.run(a.seqlab, a.threads)
    with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump({"sgemm_peak_gflops": peak["gflops"], "fma_peak_gflops": fpk["gflops"], "threads": a.threads,
                   "rows": rows, "memory": mem, "train": train, "spectrum": spectra}, f, indent=1)


if __name__ == "__main__":
    main()
