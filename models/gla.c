/*
** The gla family: Gated Linear Attention as flash-linear-attention builds it
** (fla/layers/gla.py, model_type "gla"; Yang et al. 2023, "Gated Linear
** Attention Transformers with Hardware-Efficient Training"). Per head, with a
** data-dependent diagonal decay from a low-rank projection,
**
**     g_t = logsigmoid(gk_proj.1(gk_proj.0(x_t))) / 16   (per key dimension; clamp_min optional)
**     S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,           o_t = d_k^-1/2 S_t^T q_t
**
** A_t = diag(exp(g_t)) (x) I: its eigenvalues are the gate entries. Optional
** short convolutions (SiLU) and a feature map on q, k (silu, relu). Output:
** the swish-gated RMSNorm attn.g_norm_swish_gate with g_proj (or attn.g_norm
** without the fused gate), then o_proj.
*/
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "matblock.h"
#include "util.h"

typedef struct gla_cfg {
    sl_mb_common c;
    double ek, ev, clamp;
    int use_conv, gate, has_clamp, fmap, fuse;
    int64_t conv_k, dk, dv, rank;
} gla_cfg;

static int gla_config(json_t *cfg, gla_cfg *d, sl_err *err)
{
    int rc;
    const char *fm, *act;
    if ((rc = sl_config_double(cfg, "expand_k", 0.5, &d->ek, err)) || (rc = sl_config_double(cfg, "expand_v", 1.0, &d->ev, err)) ||
        (rc = sl_config_bool(cfg, "use_short_conv", 0, &d->use_conv, err)) ||
        (rc = sl_config_int(cfg, "conv_size", 4, &d->conv_k, err)) ||
        (rc = sl_config_bool(cfg, "use_output_gate", 1, &d->gate, err)) ||
        (rc = sl_config_bool(cfg, "fuse_norm", 1, &d->fuse, err)) ||
        (rc = sl_config_str(cfg, "feature_map", NULL, &fm, err)) || (rc = sl_config_str(cfg, "hidden_act", "swish", &act, err)) ||
        (rc = sl_config_int(cfg, "gate_low_rank_dim", 16, &d->rank, err)))
        return rc;
    json_t *cm = json_object_get(cfg, "clamp_min");
    d->has_clamp = cm && json_is_number(cm);
    d->clamp = d->has_clamp ? json_number_value(cm) : 0;
    d->fmap = sl_mb_act_by_name(fm);
    if (d->fmap < 0 || d->fmap == SL_MB_ACT_ELU1) return sl_err_set(err, SL_EUNSUP, "feature_map \"%s\" (none, silu, relu)", fm);
    if (sl_mb_act_by_name(act) != SL_MB_ACT_SILU) return sl_err_set(err, SL_EUNSUP, "hidden_act \"%s\" (swish only)", act);
    const int64_t kd = (int64_t)(d->c.hid * d->ek), vd = (int64_t)(d->c.hid * d->ev);
    if (kd <= 0 || vd <= 0 || kd % d->c.H || vd % d->c.H)
        return sl_err_set(err, SL_EFORMAT, "hidden_size * expand_k (%lld) and * expand_v (%lld) must be positive multiples of num_heads",
                          (long long)kd, (long long)vd);
    d->dk = kd / d->c.H;
    d->dv = vd / d->c.H;
    if (!d->use_conv) d->conv_k = 0;
    return SL_OK;
}

static int gla_build(sl_model *m, sl_err *err)
{
    gla_cfg d;
    int rc = sl_mb_common_config(m, 4, 1e-6, &d.c, err);
    if (rc || (rc = gla_config(m->config, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    const sl_tensor *g0 = sl_tensors_find(m->tensors, "model.layers.0.attn.gk_proj.0.weight");
    if (g0 && g0->ndim == 2) d.rank = g0->shape[0];
    sl_mb *mbs = calloc((size_t)d.c.L, sizeof *mbs);
    if (!mbs) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int64_t sv[2] = { vd, hid }, s0[2] = { d.rank, hid }, s1[2] = { kd, d.rank }, sb[1] = { kd }, so[1] = { d.dv };
    for (int l = 0; l < d.c.L && !rc; l++) {
        sl_mb *p = &mbs[l];
        p->kind = SL_MB_GLA;
        p->hid = hid; p->H = H; p->dk = d.dk; p->dv = d.dv; p->eps = d.c.eps;
        const char *nw = d.gate && d.fuse ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight";
        if ((rc = sl_mb_bind_block(m, l, p, err)) || (rc = sl_mb_bind_qkv(m, l, p, d.conv_k, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.gk_proj.0.weight", 2, s0, 0, &p->gk0, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.gk_proj.1.weight", 2, s1, 0, &p->gk1, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.gk_proj.1.bias", 1, sb, 1, &p->gk1_b, err)) ||
            (rc = sl_mb_tensor(m, l, nw, 1, so, 1, &p->onorm_w, err)))
            break;
        if (d.gate && (rc = sl_mb_tensor(m, l, "attn.g_proj.weight", 2, sv, 0, &p->wg, err))) break;
        p->act[0] = p->act[1] = p->act[2] = d.conv_k ? SL_MB_ACT_SILU : SL_MB_ACT_NONE;
        p->fmap = d.fmap;
        p->gk_rank = d.rank;
        p->gk_normalizer = 16.0;
        p->has_clamp = d.has_clamp;
        p->clamp_min = d.clamp;
        p->onorm = d.gate ? SL_MB_ONORM_RMS_GATED : SL_MB_ONORM_RMS;
    }
    if (!rc) rc = sl_mb_build_layers(m, "gla", mbs, (int)d.c.L, sl_mb_summary("gla", &d.c, d.dk, d.dv, NULL), err);
    free(mbs);
    return rc;
}

static int gla_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    gla_cfg d;
    int rc = sl_mb_init_common(cfg, 4, 1e-6, &d.c, err);
    if (rc || (rc = gla_config(cfg, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    int64_t inter = sl_mb_intermediate(cfg, hid, err, &rc);
    if (rc) return rc;
    void *rng = sl_mb_rng_new(seed);
    if (!rng) return sl_err_set(err, SL_ENOMEM, "out of memory");
    char nm[128];
    int64_t sv[2] = { vd, hid }, s0[2] = { d.rank, hid }, s1[2] = { kd, d.rank }, sb[1] = { kd }, so[1] = { d.dv };
#define INIT(what, nd, shp, sd) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, what), sl_mb_init_tensor(ts, rng, nm, nd, shp, sd, err))
    rc = sl_mb_init_model(ts, rng, json_integer_value(json_object_get(cfg, "vocab_size")), hid, d.c.std, err);
    for (int l = 0; l < d.c.L && !rc; l++) {
        if ((rc = sl_mb_init_qkv(ts, rng, l, hid, kd, vd, d.conv_k, d.c.std, err)) ||
            (rc = INIT("attn.gk_proj.0.weight", 2, s0, d.c.std)) || (rc = INIT("attn.gk_proj.1.weight", 2, s1, d.c.std)) ||
            (rc = INIT("attn.gk_proj.1.bias", 1, sb, 0)) ||
            (rc = INIT(d.gate ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight", 1, so, -1)))
            break;
        if (d.gate && (rc = INIT("attn.g_proj.weight", 2, sv, d.c.std))) break;
        rc = sl_mb_init_block(ts, rng, l, hid, inter, vd, d.c.std, err);
    }
#undef INIT
    sl_mb_rng_free(rng);
    return rc;
}

static const sl_config_key gla_keys[] = {
    {"hidden_size", "int", "model width (required)"},
    {"num_heads", "int", "heads (default 4)"},
    {"num_hidden_layers", "int", "blocks (default 1)"},
    {"expand_k", "float", "key width / hidden_size (default 0.5)"},
    {"expand_v", "float", "value width / hidden_size (default 1)"},
    {"gate_low_rank_dim", "int", "rank of the gate projection gk_proj (default 16)"},
    {"clamp_min", "float", "lower clamp of the log gate (default none)"},
    {"feature_map", "string", "feature map on q, k: none (default), silu, relu"},
    {"use_short_conv", "bool", "short convolutions on q, k, v (default false)"},
    {"conv_size", "int", "short convolution length (default 4)"},
    {"use_output_gate", "bool", "swish-gated output norm with g_proj (default true)"},
    {"hidden_ratio", "int", "MLP width ratio (default 4)"},
    {"intermediate_size", "int", "MLP width (default from hidden_ratio)"},
    {"norm_eps", "float", "RMSNorm epsilon (default 1e-6)"},
    {"initializer_range", "float", "std of the normal init (default 0.02)"},
    {"vocab_size", "int", "add embeddings and lm_head of this vocabulary (default none)"},
    {0, 0, 0},
};

static const char *const gla_hf[] = { "gla", NULL };

const sl_family sl_family_gla = {
    .name = "gla",
    .summary = "Gated Linear Attention (fla): S_t = diag(exp(g_t)) S_{t-1} + k v^T, g_t = logsigmoid(low-rank)/16",
    .hf_model_types = gla_hf,
    .build = gla_build,
    .init = gla_init,
    .keys = gla_keys,
};
