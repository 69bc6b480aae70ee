/*
** The delta_net family: DeltaNet as flash-linear-attention builds it
** (fla/layers/delta_net.py, model_type "delta_net"; Yang et al. 2024,
** "Parallelizing Linear Transformers with the Delta Rule over Sequence
** Length"). Per head, with q, k from short convolutions (SiLU), L2-normalised
** (fla's l2norm, x / sqrt(sum x^2 + 1e-6)), v = SiLU(conv(v_proj x)) and
** beta_t = sigmoid(b_proj x_t):
**
**     S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = d_k^-1/2 S_t^T q_t
**
** allow_neg_eigval doubles beta (beta in [0, 2]), so the eigenvalue
** 1 - beta ||k||^2 of the transition reaches -1 (Grazzi et al. 2024,
** "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues").
** Output: per-head RMSNorm (attn.o_norm.weight), or with use_gate the
** swish-gated RMSNorm with attn.g_proj; then attn.o_proj. The block around it
** is models/matblock.c. Config keys are DeltaNetConfig's.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "matblock.h"
#include "util.h"

typedef struct dn_cfg {
    sl_mb_common c;
    double ek, ev;
    int use_gate, use_conv, use_beta, neg, qk_act, qk_norm;
    int64_t conv_k, dk, dv;
} dn_cfg;

static int dn_config(json_t *cfg, dn_cfg *d, sl_err *err)
{
    int rc;
    const char *qa, *qn;
    if ((rc = sl_config_double(cfg, "expand_k", 1.0, &d->ek, err)) || (rc = sl_config_double(cfg, "expand_v", 1.0, &d->ev, err)) ||
        (rc = sl_config_bool(cfg, "use_gate", 0, &d->use_gate, err)) ||
        (rc = sl_config_bool(cfg, "use_short_conv", 1, &d->use_conv, err)) ||
        (rc = sl_config_int(cfg, "conv_size", 4, &d->conv_k, err)) ||
        (rc = sl_config_bool(cfg, "use_beta", 1, &d->use_beta, err)) ||
        (rc = sl_config_bool(cfg, "allow_neg_eigval", 0, &d->neg, err)) ||
        (rc = sl_config_str(cfg, "qk_activation", "silu", &qa, err)) || (rc = sl_config_str(cfg, "qk_norm", "l2", &qn, err)))
        return rc;
    d->qk_act = sl_mb_act_by_name(qa);
    if (d->qk_act < 0) return sl_err_set(err, SL_EUNSUP, "qk_activation \"%s\" (silu, relu, elu, identity)", qa);
    if (!strcmp(qn, "l2")) d->qk_norm = SL_MB_NORM_L2;
    else if (!strcmp(qn, "sum")) d->qk_norm = SL_MB_NORM_SUM;
    else return sl_err_set(err, SL_EUNSUP, "qk_norm \"%s\" (l2, sum)", qn);
    const int64_t kd = (int64_t)(d->c.hid * d->ek), vd = (int64_t)(d->c.hid * d->ev);
    if (kd <= 0 || vd <= 0 || kd % d->c.H || vd % d->c.H)
        return sl_err_set(err, SL_EFORMAT, "hidden_size * expand_k (%lld) and * expand_v (%lld) must be positive multiples of num_heads (%lld)",
                          (long long)kd, (long long)vd, (long long)d->c.H);
    if (d->use_conv && d->conv_k < 1) return sl_err_set(err, SL_EFORMAT, "conv_size must be positive");
    d->dk = kd / d->c.H;
    d->dv = vd / d->c.H;
    return SL_OK;
}

static int dn_build(sl_model *m, sl_err *err)
{
    dn_cfg d;
    int rc = sl_mb_common_config(m, 16, 1e-6, &d.c, err);
    if (rc || (rc = dn_config(m->config, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    sl_mb *mbs = calloc((size_t)d.c.L, sizeof *mbs);
    if (!mbs) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int64_t sq[2] = { kd, hid }, sv[2] = { vd, hid }, sb[2] = { H, hid }, so[1] = { d.dv };
    for (int l = 0; l < d.c.L && !rc; l++) {
        sl_mb *p = &mbs[l];
        p->kind = SL_MB_DELTA;
        p->hid = hid; p->H = H; p->dk = d.dk; p->dv = d.dv; p->eps = d.c.eps;
        if ((rc = sl_mb_bind_block(m, l, p, err)) || (rc = sl_mb_tensor(m, l, "attn.q_proj.weight", 2, sq, 0, &p->wq, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.k_proj.weight", 2, sq, 0, &p->wk, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.v_proj.weight", 2, sv, 0, &p->wv, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.o_norm.weight", 1, so, 1, &p->onorm_w, err)))
            break;
        if (d.use_beta && (rc = sl_mb_tensor(m, l, "attn.b_proj.weight", 2, sb, 0, &p->wb, err))) break;
        if (d.use_gate && (rc = sl_mb_tensor(m, l, "attn.g_proj.weight", 2, sv, 0, &p->wg, err))) break;
        if (d.use_conv) {
            p->conv_k = d.conv_k;
            if ((rc = sl_mb_conv(m, l, "q", kd, d.conv_k, &p->conv_w[0], &p->conv_b[0], err)) ||
                (rc = sl_mb_conv(m, l, "k", kd, d.conv_k, &p->conv_w[1], &p->conv_b[1], err)) ||
                (rc = sl_mb_conv(m, l, "v", vd, d.conv_k, &p->conv_w[2], &p->conv_b[2], err)))
                break;
        }
        const int silu = d.qk_act == SL_MB_ACT_SILU;
        p->act[0] = p->act[1] = silu ? SL_MB_ACT_SILU : SL_MB_ACT_NONE;
        p->act[2] = SL_MB_ACT_SILU;
        p->fmap = silu ? SL_MB_ACT_NONE : d.qk_act;
        p->q_norm = p->k_norm = d.qk_norm;
        p->beta_mode = d.use_beta ? SL_MB_BETA_SIGMOID : SL_MB_BETA_ONE;
        p->neg_eig = d.neg;
        p->onorm = d.use_gate ? SL_MB_ONORM_RMS_GATED : SL_MB_ONORM_RMS;
    }
    if (!rc)
        rc = sl_mb_build_layers(m, "delta_net", mbs, (int)d.c.L,
                                sl_strfmt("delta_net, %lld layer%s, hidden %lld, %lld heads of d_k %lld, d_v %lld%s",
                                          (long long)d.c.L, d.c.L == 1 ? "" : "s", (long long)hid, (long long)H,
                                          (long long)d.dk, (long long)d.dv, d.neg ? ", negative eigenvalues" : ""),
                                err);
    free(mbs);
    return rc;
}

static int dn_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    dn_cfg d;
    int rc = sl_mb_init_common(cfg, 4, 1e-6, &d.c, err);
    if (rc || (rc = dn_config(cfg, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    int64_t inter = sl_mb_intermediate(cfg, hid, err, &rc);
    if (rc) return rc;
    void *rng = sl_mb_rng_new(seed);
    if (!rng) return sl_err_set(err, SL_ENOMEM, "out of memory");
    char nm[128];
    int64_t sq[2] = { kd, hid }, sv[2] = { vd, hid }, sb[2] = { H, hid }, so[1] = { d.dv };
    int64_t cq[3] = { kd, 1, d.conv_k }, cv[3] = { vd, 1, d.conv_k };
#define INIT(what, nd, shp, sd) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, what), sl_mb_init_tensor(ts, rng, nm, nd, shp, sd, err))
    rc = sl_mb_init_model(ts, rng, json_integer_value(json_object_get(cfg, "vocab_size")), hid, d.c.std, err);
    for (int l = 0; l < d.c.L && !rc; l++) {
        if ((rc = INIT("attn.q_proj.weight", 2, sq, d.c.std)) || (rc = INIT("attn.k_proj.weight", 2, sq, d.c.std)) ||
            (rc = INIT("attn.v_proj.weight", 2, sv, d.c.std)) || (rc = INIT("attn.o_norm.weight", 1, so, -1)))
            break;
        if (d.use_beta && (rc = INIT("attn.b_proj.weight", 2, sb, d.c.std))) break;
        if (d.use_gate && (rc = INIT("attn.g_proj.weight", 2, sv, d.c.std))) break;
        if (d.use_conv && ((rc = INIT("attn.q_conv1d.weight", 3, cq, d.c.std)) || (rc = INIT("attn.k_conv1d.weight", 3, cq, d.c.std)) ||
                           (rc = INIT("attn.v_conv1d.weight", 3, cv, d.c.std))))
            break;
        rc = sl_mb_init_block(ts, rng, l, hid, inter, vd, d.c.std, err);
    }
#undef INIT
    sl_mb_rng_free(rng);
    return rc;
}

static const sl_config_key dn_keys[] = {
    {"hidden_size", "int", "model width (required)"},
    {"num_heads", "int", "heads (default 4)"},
    {"num_hidden_layers", "int", "blocks (default 1)"},
    {"expand_k", "float", "key width / hidden_size (default 1)"},
    {"expand_v", "float", "value width / hidden_size (default 1)"},
    {"use_short_conv", "bool", "short convolutions on q, k, v (default true)"},
    {"conv_size", "int", "short convolution length (default 4)"},
    {"use_beta", "bool", "beta_t = sigmoid(b_proj x) (default true; else 1)"},
    {"use_gate", "bool", "swish output gate g_proj (default false)"},
    {"allow_neg_eigval", "bool", "beta in [0, 2]: eigenvalues down to -1 (default false)"},
    {"qk_activation", "string", "silu (default), relu, elu, identity"},
    {"qk_norm", "string", "l2 (default) or sum"},
    {"hidden_ratio", "int", "MLP width ratio (default 4)"},
    {"intermediate_size", "int", "MLP width (default from hidden_ratio)"},
    {"norm_eps", "float", "RMSNorm epsilon (default 1e-6)"},
    {"initializer_range", "float", "std of the normal init (default 0.02)"},
    {"vocab_size", "int", "add embeddings and lm_head of this vocabulary (default none)"},
    {0, 0, 0},
};

static const char *const dn_hf[] = { "delta_net", NULL };

const sl_family sl_family_delta_net = {
    .name = "delta_net",
    .summary = "DeltaNet (fla): S_t = (I - beta k k^T) S_{t-1} + beta k v^T per head, short convs, L2 keys",
    .hf_model_types = dn_hf,
    .build = dn_build,
    .init = dn_init,
    .keys = dn_keys,
};
