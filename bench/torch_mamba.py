"""PyTorch peer for `make bench`: Hugging Face's MambaMixer slow path (the CPU path of
transformers/models/mamba/modeling_mamba.py, MambaMixer.slow_forward without a cache) with
MambaRMSNorm residual blocks, written out here so the bench needs only torch. Same tensor
names as a Hugging Face checkpoint, so seqlab runs the very same weights.
"""
import math

import torch
import torch.nn.functional as F


def mamba_weights(dm, N, K=4, expand=2, L=1, seed=0):
    """Random weights with HF names, initialised roughly as mamba_ssm does."""
    g = torch.Generator().manual_seed(seed)
    di, R = expand * dm, math.ceil(dm / 16)
    t = {}
    for l in range(L):
        p = f"backbone.layers.{l}."
        t[p + "norm.weight"] = torch.ones(dm)
        m = p + "mixer."
        t[m + "A_log"] = torch.log(torch.arange(1, N + 1).float()).repeat(di, 1)
        t[m + "D"] = torch.ones(di)
        t[m + "conv1d.weight"] = (torch.rand(di, 1, K, generator=g) * 2 - 1) / math.sqrt(K)
        t[m + "conv1d.bias"] = (torch.rand(di, generator=g) * 2 - 1) / math.sqrt(K)
        t[m + "in_proj.weight"] = (torch.rand(2 * di, dm, generator=g) * 2 - 1) / math.sqrt(dm)
        t[m + "x_proj.weight"] = (torch.rand(R + 2 * N, di, generator=g) * 2 - 1) / math.sqrt(di)
        t[m + "dt_proj.weight"] = (torch.rand(di, R, generator=g) * 2 - 1) / math.sqrt(R)
        dt = torch.exp(torch.rand(di, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        t[m + "dt_proj.bias"] = dt + torch.log(-torch.expm1(-dt))
        t[m + "out_proj.weight"] = (torch.rand(dm, di, generator=g) * 2 - 1) / math.sqrt(di)
    t["backbone.norm_f.weight"] = torch.ones(dm)
    return t, {"d_model": dm, "d_state": N, "d_conv": K, "expand": expand, "dt_rank": R, "n_layer": L}


def rmsnorm(x, w, eps=1e-5):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def mixer(p, x, N, K, R):
    B, T, _ = x.shape
    proj = F.linear(x, p["in_proj.weight"]).transpose(1, 2)
    hs, gate = proj.chunk(2, dim=1)
    di = hs.shape[1]
    hs = F.silu(F.conv1d(hs, p["conv1d.weight"], p["conv1d.bias"], padding=K - 1, groups=di)[..., :T])
    ssm_p = F.linear(hs.transpose(1, 2), p["x_proj.weight"])
    ts, Bm, Cm = torch.split(ssm_p, [R, N, N], dim=-1)
    dt = F.softplus(F.linear(ts, p["dt_proj.weight"], p["dt_proj.bias"])).transpose(1, 2)
    A = -torch.exp(p["A_log"].float())
    dA = torch.exp(A[None, :, None, :] * dt[:, :, :, None])
    dBu = dt[:, :, :, None] * Bm[:, None, :, :].float() * hs[:, :, :, None].float()
    state = torch.zeros(B, di, N)
    outs = []
    for i in range(T):
        state = dA[:, :, i, :] * state + dBu[:, :, i, :]
        outs.append(torch.matmul(state, Cm[:, i, :].unsqueeze(-1))[:, :, 0])
    y = torch.stack(outs, dim=-1)
    y = (y + hs * p["D"][None, :, None]) * F.silu(gate)
    return F.linear(y.transpose(1, 2), p["out_proj.weight"])


def forward(t, cfg, x):
    """The layer stack on features x [B, T, d_model] (what seqlab's forward computes)."""
    N, K, R = cfg["d_state"], cfg["d_conv"], cfg["dt_rank"]
    for l in range(cfg["n_layer"]):
        pre = f"backbone.layers.{l}.mixer."
        p = {k[len(pre):]: v for k, v in t.items() if k.startswith(pre)}
        x = x + mixer(p, rmsnorm(x, t[f"backbone.layers.{l}.norm.weight"]), N, K, R)
    return x
