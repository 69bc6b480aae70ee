/*
** The retnet family: multi-scale retention as flash-linear-attention builds
** it (fla/layers/multiscale_retention.py, model_type "retnet"; Sun et al.
** 2023, "Retentive Network"). Per head h a fixed decay
** gamma_h = 1 - 2^(-5-h) and rotary position embeddings on q and k (fla's
** RotaryEmbedding: GPT-NeoX halves, base 10000):
**
**     S_t = gamma_h S_{t-1} + k_t v_t^T,   o_t = d_k^-1/2 S_t^T q_t
**
** A is constant (gamma_h I per head; B_t and C_t depend on the input). The
** rotary embedding needs the absolute position, which the carry keeps as
** context ("pos"). Output: swish-gated RMSNorm attn.g_norm_swish_gate with
** g_proj (or attn.g_norm without the output gate), then o_proj.
*/
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "matblock.h"
#include "util.h"

typedef struct ret_cfg {
    sl_mb_common c;
    double ek, ev;
    int use_conv, gate, fmap, fuse;
    int64_t conv_k, dk, dv;
} ret_cfg;

static int ret_config(json_t *cfg, ret_cfg *d, sl_err *err)
{
    int rc;
    const char *fm, *act;
    if ((rc = sl_config_double(cfg, "expand_k", 1.0, &d->ek, err)) || (rc = sl_config_double(cfg, "expand_v", 2.0, &d->ev, err)) ||
        (rc = sl_config_bool(cfg, "use_short_conv", 0, &d->use_conv, err)) ||
        (rc = sl_config_int(cfg, "conv_size", 4, &d->conv_k, err)) ||
        (rc = sl_config_bool(cfg, "use_output_gate", 1, &d->gate, err)) ||
        (rc = sl_config_bool(cfg, "fuse_norm", 1, &d->fuse, err)) ||
        (rc = sl_config_str(cfg, "feature_map", NULL, &fm, err)) || (rc = sl_config_str(cfg, "hidden_act", "swish", &act, err)))
        return rc;
    d->fmap = sl_mb_act_by_name(fm);
    if (d->fmap < 0 || d->fmap == SL_MB_ACT_ELU1) return sl_err_set(err, SL_EUNSUP, "feature_map \"%s\" (none, silu, relu)", fm);
    if (sl_mb_act_by_name(act) != SL_MB_ACT_SILU) return sl_err_set(err, SL_EUNSUP, "hidden_act \"%s\" (swish only)", act);
    const int64_t kd = (int64_t)(d->c.hid * d->ek + 0.5), vd = (int64_t)(d->c.hid * d->ev + 0.5);
    if (kd <= 0 || vd <= 0 || kd % d->c.H || vd % d->c.H || (kd / d->c.H) % 2)
        return sl_err_set(err, SL_EFORMAT, "hidden_size * expand_k (%lld) and * expand_v (%lld) must be multiples of num_heads, "
                          "with an even key head size", (long long)kd, (long long)vd);
    d->dk = kd / d->c.H;
    d->dv = vd / d->c.H;
    if (!d->use_conv) d->conv_k = 0;
    return SL_OK;
}

static int ret_build(sl_model *m, sl_err *err)
{
    ret_cfg d;
    int rc = sl_mb_common_config(m, 8, 1e-6, &d.c, err);
    if (rc || (rc = ret_config(m->config, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, vd = H * d.dv;
    sl_mb *mbs = calloc((size_t)d.c.L, sizeof *mbs);
    if (!mbs) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int64_t sv[2] = { vd, hid }, so[1] = { d.dv };
    for (int l = 0; l < d.c.L && !rc; l++) {
        sl_mb *p = &mbs[l];
        p->kind = SL_MB_RETNET;
        p->hid = hid; p->H = H; p->dk = d.dk; p->dv = d.dv; p->eps = d.c.eps;
        const char *nw = d.gate && d.fuse ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight";
        if ((rc = sl_mb_bind_block(m, l, p, err)) || (rc = sl_mb_bind_qkv(m, l, p, d.conv_k, err)) ||
            (rc = sl_mb_tensor(m, l, nw, 1, so, 1, &p->onorm_w, err)))
            break;
        if (d.gate && (rc = sl_mb_tensor(m, l, "attn.g_proj.weight", 2, sv, 0, &p->wg, err))) break;
        p->act[0] = p->act[1] = p->act[2] = d.conv_k ? SL_MB_ACT_SILU : SL_MB_ACT_NONE;
        p->fmap = d.fmap;
        p->rope = 1;
        p->onorm = d.gate ? SL_MB_ONORM_RMS_GATED : SL_MB_ONORM_RMS;
    }
    if (!rc) rc = sl_mb_build_layers(m, "retnet", mbs, (int)d.c.L, sl_mb_summary("retnet", &d.c, d.dk, d.dv, NULL), err);
    free(mbs);
    return rc;
}

static int ret_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    ret_cfg d;
    int rc = sl_mb_init_common(cfg, 4, 1e-6, &d.c, err);
    if (rc || (rc = ret_config(cfg, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    int64_t inter = sl_mb_intermediate(cfg, hid, err, &rc);
    if (rc) return rc;
    void *rng = sl_mb_rng_new(seed);
    if (!rng) return sl_err_set(err, SL_ENOMEM, "out of memory");
    char nm[128];
    int64_t sv[2] = { vd, hid }, so[1] = { d.dv };
    rc = sl_mb_init_model(ts, rng, json_integer_value(json_object_get(cfg, "vocab_size")), hid, d.c.std, err);
    for (int l = 0; l < d.c.L && !rc; l++) {
        if ((rc = sl_mb_init_qkv(ts, rng, l, hid, kd, vd, d.conv_k, d.c.std, err))) break;
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, d.gate ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight");
        if ((rc = sl_mb_init_tensor(ts, rng, nm, 1, so, -1, err))) break;
        snprintf(nm, sizeof nm, "model.layers.%d.attn.g_proj.weight", l);
        if (d.gate && (rc = sl_mb_init_tensor(ts, rng, nm, 2, sv, d.c.std, err))) break;
        rc = sl_mb_init_block(ts, rng, l, hid, inter, vd, d.c.std, err);
    }
    sl_mb_rng_free(rng);
    return rc;
}

static const sl_config_key ret_keys[] = {
    {"hidden_size", "int", "model width (required)"},
    {"num_heads", "int", "heads (default 4); head h decays by 1 - 2^(-5-h)"},
    {"num_hidden_layers", "int", "blocks (default 1)"},
    {"expand_k", "float", "key width / hidden_size (default 1)"},
    {"expand_v", "float", "value width / hidden_size (default 2)"},
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

static const char *const ret_hf[] = { "retnet", NULL };

const sl_family sl_family_retnet = {
    .name = "retnet",
    .summary = "RetNet multi-scale retention (fla): S_t = gamma_h S_{t-1} + k v^T, gamma_h = 1 - 2^(-5-h), rotary q, k",
    .hf_model_types = ret_hf,
    .build = ret_build,
    .init = ret_init,
    .keys = ret_keys,
};
