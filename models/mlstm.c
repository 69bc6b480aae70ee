/*
** The mlstm family: xLSTM's matrix LSTM (Beck et al. 2024, "xLSTM"). Tensor
** names and config keys are flash-linear-attention's MLSTM model
** (fla/layers/mlstm.py, model_type "mlstm"), the same block as the other
** fla families; the recurrence is NX-AI's mlstm_kernels native step
** (mlstm_recurrent_step__native_fw), whose stabiliser starts at m = 0, so the
** zero carry is its start state:
**
**     x_m, z = split(proj_up x);  x_c = silu(conv1d(x_m))
**     q = q_proj(x_c), k = k_proj(x_c), v = v_proj(x_m)     (block-diagonal, blocks of qkv_proj_blocksize)
**     i_t, f_t = igate([q, k, v]), fgate([q, k, v])           (one per head)
**     m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)
**     f~ = exp(logsigmoid(f_t) + m_{t-1} - m_t),  i~ = exp(i_t - m_t)
**     C_t = f~ C_{t-1} + i~ k_t v_t^T,  n_t = f~ n_{t-1} + i~ k_t
**     h_t = (s q_t^T C_t) / (max(|s q_t^T n_t|, exp(-m_t)) + 1e-6),  s = d^-1/2
**     out = proj_down((groupnorm(h) + learnable_skip . x_c) . silu(z))
**
** The normaliser n is kept as an extra value column of the state
** (S = [C | n], d_s = d_v + 1, u_t = [v_t, 1]), so one scalar-gated scan
** gives both; m is context in the carry. The linear system's output is
** [s q^T C, s q^T n] per head, before the division. fla's own mLSTM kernels
** start the stabiliser at -inf and put eps inside the max; where
** |s q.n| < exp(-m) their outputs differ slightly from NX-AI's, which seqlab
** follows (the reference). The GroupedLinear
** weights are read as [groups, blocksize, blocksize] (out, in), as xLSTM's
** LinearHeadwiseExpand stores them; a [inner, blocksize] tensor (the same
** bytes) is accepted too.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "matblock.h"
#include "util.h"

typedef struct ml_cfg {
    sl_mb_common c;
    double pf;
    int64_t blk, conv_k, mult, inner, dh;
    int conv_bias, bias, round_up;
} ml_cfg;

static int ml_config(json_t *cfg, ml_cfg *d, sl_err *err)
{
    int rc;
    if ((rc = sl_config_double(cfg, "proj_factor", 2.0, &d->pf, err)) ||
        (rc = sl_config_int(cfg, "qkv_proj_blocksize", 4, &d->blk, err)) ||
        (rc = sl_config_int(cfg, "conv_size", 4, &d->conv_k, err)) ||
        (rc = sl_config_bool(cfg, "conv_bias", 1, &d->conv_bias, err)) ||
        (rc = sl_config_bool(cfg, "attn_bias", 0, &d->bias, err)) ||
        (rc = sl_config_int(cfg, "round_proj_up_to_multiple_of", 64, &d->mult, err)) ||
        (rc = sl_config_bool(cfg, "round_proj_up_dim_up", 1, &d->round_up, err)))
        return rc;
    if (d->mult < 1 || d->blk < 1 || d->conv_k < 1) return sl_err_set(err, SL_EFORMAT, "bad mLSTM sizes in the config");
    double v = d->pf * (double)d->c.hid / (double)d->mult;
    d->inner = (int64_t)(d->round_up ? ceil(v) : floor(v)) * d->mult;
    if (d->inner <= 0 || d->inner % d->c.H || d->inner % d->blk)
        return sl_err_set(err, SL_EFORMAT, "inner size %lld must be a positive multiple of num_heads (%lld) and qkv_proj_blocksize (%lld)",
                          (long long)d->inner, (long long)d->c.H, (long long)d->blk);
    d->dh = d->inner / d->c.H;
    return SL_OK;
}

/* GroupedLinear weight: [G, blk, blk] or [inner, blk]. */
static int ml_grouped(sl_model *m, int l, const char *what, const ml_cfg *d, const float **w, const float **b, sl_err *err)
{
    char nm[128], full[160];
    snprintf(nm, sizeof nm, "attn.%s.weight", what);
    snprintf(full, sizeof full, "model.layers.%d.%s", l, nm);
    const sl_tensor *t = sl_tensors_find(m->tensors, full);
    int64_t s3[3] = { d->inner / d->blk, d->blk, d->blk }, s2[2] = { d->inner, d->blk }, sb[1] = { d->inner };
    int rc = (t && t->ndim == 2) ? sl_mb_tensor(m, l, nm, 2, s2, 0, w, err) : sl_mb_tensor(m, l, nm, 3, s3, 0, w, err);
    if (rc) return rc;
    snprintf(nm, sizeof nm, "attn.%s.bias", what);
    return sl_mb_tensor(m, l, nm, 1, sb, !d->bias, b, err);
}

static int ml_build(sl_model *m, sl_err *err)
{
    ml_cfg d;
    int rc = sl_mb_common_config(m, 16, 1e-5, &d.c, err);
    if (rc || (rc = ml_config(m->config, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, I = d.inner;
    sl_mb *mbs = calloc((size_t)d.c.L, sizeof *mbs);
    if (!mbs) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int64_t su[2] = { 2 * I, hid }, sub[1] = { 2 * I }, sc[3] = { I, 1, d.conv_k }, si[1] = { I }, sg[2] = { H, 3 * I },
            sh[1] = { H }, sd[2] = { hid, I }, sdb[1] = { hid };
    for (int l = 0; l < d.c.L && !rc; l++) {
        sl_mb *p = &mbs[l];
        p->kind = SL_MB_MLSTM;
        p->hid = hid; p->H = H; p->dk = p->dv = d.dh; p->eps = d.c.eps;
        p->inner = I; p->blk = d.blk; p->conv_k = d.conv_k;
        if ((rc = sl_mb_bind_block(m, l, p, err)) || (rc = sl_mb_tensor(m, l, "attn.proj_up.weight", 2, su, 0, &p->up_w, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.proj_up.bias", 1, sub, !d.bias, &p->up_b, err)) ||
            (rc = ml_grouped(m, l, "q_proj", &d, &p->gq_w, &p->gq_b, err)) ||
            (rc = ml_grouped(m, l, "k_proj", &d, &p->gk_w, &p->gk_b, err)) ||
            (rc = ml_grouped(m, l, "v_proj", &d, &p->gv_w, &p->gv_b, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.conv1d.weight", 3, sc, 0, &p->conv_w[0], err)) ||
            (rc = sl_mb_tensor(m, l, "attn.conv1d.bias", 1, si, !d.conv_bias, &p->conv_b[0], err)) ||
            (rc = sl_mb_tensor(m, l, "attn.igate.weight", 2, sg, 0, &p->ig_w, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.igate.bias", 1, sh, 0, &p->ig_b, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.fgate.weight", 2, sg, 0, &p->fg_w, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.fgate.bias", 1, sh, 0, &p->fg_b, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.o_norm.weight", 1, si, 1, &p->onorm_w, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.learnable_skip", 1, si, 0, &p->skip, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.proj_down.weight", 2, sd, 0, &p->down_w, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.proj_down.bias", 1, sdb, !d.bias, &p->down_b, err)))
            break;
        p->onorm = SL_MB_ONORM_GROUP;
    }
    if (!rc) rc = sl_mb_build_layers(m, "mlstm", mbs, (int)d.c.L, sl_mb_summary("mlstm", &d.c, d.dh, d.dh, NULL), err);
    free(mbs);
    return rc;
}

static int ml_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    ml_cfg d;
    int rc = sl_mb_init_common(cfg, 4, 1e-5, &d.c, err);
    if (!rc && !json_object_get(cfg, "round_proj_up_to_multiple_of")) json_object_set_new(cfg, "round_proj_up_to_multiple_of", json_integer(8));
    if (rc || (rc = ml_config(cfg, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, I = d.inner;
    int64_t inter = sl_mb_intermediate(cfg, hid, err, &rc);
    if (rc) return rc;
    void *rng = sl_mb_rng_new(seed);
    if (!rng) return sl_err_set(err, SL_ENOMEM, "out of memory");
    char nm[128];
    const double sd = d.c.std;
    int64_t su[2] = { 2 * I, hid }, sc[3] = { I, 1, d.conv_k }, si[1] = { I }, sg[2] = { H, 3 * I }, sh[1] = { H },
            sdn[2] = { hid, I }, sgl[3] = { I / d.blk, d.blk, d.blk };
#define INIT(what, nd, shp, s) \
    (snprintf(nm, sizeof nm, "model.layers.%d.attn.%s", l, what), sl_mb_init_tensor(ts, rng, nm, nd, shp, s, err))
    rc = sl_mb_init_model(ts, rng, json_integer_value(json_object_get(cfg, "vocab_size")), hid, sd, err);
    for (int l = 0; l < d.c.L && !rc; l++) {
        if ((rc = INIT("proj_up.weight", 2, su, sd)) || (rc = INIT("q_proj.weight", 3, sgl, sd)) ||
            (rc = INIT("k_proj.weight", 3, sgl, sd)) || (rc = INIT("v_proj.weight", 3, sgl, sd)) ||
            (rc = INIT("conv1d.weight", 3, sc, sd)) || (d.conv_bias && (rc = INIT("conv1d.bias", 1, si, 0))) ||
            (rc = INIT("igate.weight", 2, sg, 0)) || (rc = INIT("igate.bias", 1, sh, 0.1)) ||
            (rc = INIT("fgate.weight", 2, sg, 0)) || (rc = INIT("fgate.bias", 1, sh, 0)) ||
            (rc = INIT("o_norm.weight", 1, si, -1)) || (rc = INIT("learnable_skip", 1, si, -1)) ||
            (rc = INIT("proj_down.weight", 2, sdn, sd)))
            break;
        /* fla: forget-gate bias linspace(3, 6) over the heads. */
        snprintf(nm, sizeof nm, "model.layers.%d.attn.fgate.bias", l);
        sl_tensor *fb = sl_tensors_find(ts, nm);
        for (int64_t h = 0; h < H; h++) fb->data[h] = (float)(H > 1 ? 3.0 + 3.0 * (double)h / (double)(H - 1) : 3.0);
        rc = sl_mb_init_block(ts, rng, l, hid, inter, 0, sd, err);
    }
#undef INIT
    sl_mb_rng_free(rng);
    return rc;
}

static const sl_config_key ml_keys[] = {
    {"hidden_size", "int", "model width (required)"},
    {"num_heads", "int", "heads (default 4)"},
    {"num_hidden_layers", "int", "blocks (default 1)"},
    {"proj_factor", "float", "inner width / hidden_size before rounding (default 2)"},
    {"round_proj_up_to_multiple_of", "int", "round the inner width to this multiple (seqlab init default 8; fla 64)"},
    {"qkv_proj_blocksize", "int", "block size of the q, k, v projections (default 4)"},
    {"conv_size", "int", "short convolution length (default 4)"},
    {"conv_bias", "bool", "bias in the short convolution (default true)"},
    {"hidden_ratio", "int", "MLP width ratio (default 4)"},
    {"intermediate_size", "int", "MLP width (default from hidden_ratio)"},
    {"norm_eps", "float", "norm epsilon (default 1e-5)"},
    {"initializer_range", "float", "std of the normal init (default 0.02)"},
    {"vocab_size", "int", "add embeddings and lm_head of this vocabulary (default none)"},
    {0, 0, 0},
};

static const char *const ml_hf[] = { "mlstm", NULL };

const sl_family sl_family_mlstm = {
    .name = "mlstm",
    .summary = "xLSTM mLSTM (fla names, NX-AI native step): exponential input gate, normaliser, max-stabiliser",
    .hf_model_types = ml_hf,
    .build = ml_build,
    .init = ml_init,
    .keys = ml_keys,
};
