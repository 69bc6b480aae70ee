"""Pure-PyTorch chunked forms of the delta rule and of gated linear attention, and
the fla-style block around them: the PyTorch peer of seqlab's matrix-state
families in `make bench` (no fla, no triton).

chunk_delta: the WY / UT representation (Yang et al. 2024): per chunk,
  T = (I + tril(diag(beta) K K^T, -1))^-1, U = T (beta V), W = T (beta K);
  then sequentially over chunks U_c = U - W S, O = Q S + tril(Q K^T) U_c, S += K^T U_c.
chunk_gla: decay-weighted scores inside a chunk, with queries and keys scaled by
  exp(+-G) relative to the chunk start (fine for the benchmark's gates), and the
  state carried between chunks.
"""
import torch
import torch.nn.functional as F


def rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _pad(x, C):
    T = x.shape[2]
    n = (-T) % C
    return F.pad(x, (0, 0, 0, n)) if n else x


def chunk_delta(q, k, v, beta, C=64):
    # q, k [B, H, T, dk], v [B, H, T, dv], beta [B, H, T]
    B, H, T, dk = q.shape
    dv = v.shape[-1]
    q = q * dk ** -0.5
    b = beta[..., None]
    q, k, v, kb, vb = (_pad(x, C) for x in (q, k, v, k * b, v * b))
    N = q.shape[2] // C
    q, k, v, kb, vb = (x.view(B, H, N, C, -1) for x in (q, k, v, kb, vb))
    eye = torch.eye(C, dtype=q.dtype)
    M = eye + (kb @ k.transpose(-1, -2)).tril(-1)
    Tm = torch.linalg.solve_triangular(M, eye.expand_as(M), upper=False)
    u, w = Tm @ vb, Tm @ kb
    S = q.new_zeros(B, H, dk, dv)
    o = torch.empty_like(v)
    for i in range(N):
        qi, ki = q[:, :, i], k[:, :, i]
        ui = u[:, :, i] - w[:, :, i] @ S
        o[:, :, i] = qi @ S + (qi @ ki.transpose(-1, -2)).tril() @ ui
        S = S + ki.transpose(-1, -2) @ ui
    return o.view(B, H, N * C, dv)[:, :, :T]


def chunk_gla(q, k, v, g, C=64):
    # g: log decay [B, H, T, dk]
    B, H, T, dk = q.shape
    dv = v.shape[-1]
    q = q * dk ** -0.5
    q, k, v, g = (_pad(x, C) for x in (q, k, v, g))
    N = q.shape[2] // C
    q, k, v, g = (x.view(B, H, N, C, -1) for x in (q, k, v, g))
    G = g.cumsum(-2)
    mask = torch.ones(C, C, dtype=torch.bool).tril()
    S = q.new_zeros(B, H, dk, dv)
    o = torch.empty_like(v)
    for i in range(N):
        Gi = G[:, :, i]
        qe, ke = q[:, :, i] * Gi.exp(), k[:, :, i] * (-Gi).exp()
        A = (qe @ ke.transpose(-1, -2)).masked_fill(~mask, 0)
        o[:, :, i] = qe @ S + A @ v[:, :, i]
        Gl = Gi[:, :, -1:, :]
        S = Gl.transpose(-1, -2).exp() * S + (k[:, :, i] * (Gl - Gi).exp()).transpose(-1, -2) @ v[:, :, i]
    return o.view(B, H, N * C, dv)[:, :, :T]


def short_conv(x, w):
    # x [B, T, C], w [C, 1, K]: causal depthwise conv + SiLU
    T = x.shape[1]
    return F.silu(F.conv1d(x.transpose(1, 2), w, padding=w.shape[-1] - 1, groups=x.shape[2])[..., :T].transpose(1, 2))


def block(sd, family, x, H, C=64):
    """One fla-style block (layer 0 of sd) on x [B, T, hid]."""
    p = "model.layers.0."
    B, T, hid = x.shape
    xn = rms(x, sd[p + "attn_norm.weight"])
    lin = lambda n, y: F.linear(y, sd[p + n])
    if family == "delta_net":
        q = short_conv(lin("attn.q_proj.weight", xn), sd[p + "attn.q_conv1d.weight"])
        k = short_conv(lin("attn.k_proj.weight", xn), sd[p + "attn.k_conv1d.weight"])
        v = short_conv(lin("attn.v_proj.weight", xn), sd[p + "attn.v_conv1d.weight"])
        q, k, v = (y.view(B, T, H, -1).transpose(1, 2).contiguous() for y in (q, k, v))
        q, k = F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6)
        beta = torch.sigmoid(lin("attn.b_proj.weight", xn)).transpose(1, 2).contiguous()
        o = chunk_delta(q, k, v, beta, C)
        o = rms(o, sd[p + "attn.o_norm.weight"])
    else:
        q, k, v = (lin(f"attn.{n}_proj.weight", xn).view(B, T, H, -1).transpose(1, 2).contiguous() for n in "qkv")
        gk = F.linear(lin("attn.gk_proj.0.weight", xn), sd[p + "attn.gk_proj.1.weight"], sd[p + "attn.gk_proj.1.bias"])
        gk = (F.logsigmoid(gk) / 16).view(B, T, H, -1).transpose(1, 2).contiguous()
        o = chunk_gla(q, k, v, gk, C)
        g = lin("attn.g_proj.weight", xn).view(B, T, H, -1).transpose(1, 2)
        o = rms(o, sd[p + "attn.g_norm_swish_gate.weight"]) * F.silu(g)
    o = lin("attn.o_proj.weight", o.transpose(1, 2).reshape(B, T, -1))
    h = x + o
    hn = rms(h, sd[p + "mlp_norm.weight"])
    return h + lin("mlp.down_proj.weight", F.silu(lin("mlp.gate_proj.weight", hn)) * lin("mlp.up_proj.weight", hn))
