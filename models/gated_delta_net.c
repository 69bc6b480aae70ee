/*
** The gated_delta_net family: Gated DeltaNet as flash-linear-attention builds
** it (fla/layers/gated_deltanet.py, model_type "gated_deltanet"; Yang, Kautz
** and Hatamizadeh 2024, "Gated Delta Networks"). Per head, with q, k, v from
** SiLU short convolutions, q and k L2-normalised, beta_t = sigmoid(b_proj x_t)
** and the decay alpha_t = exp(g_t), g_t = -exp(A_log) softplus(a_proj x_t + dt_bias)
** applied before the delta update (fla's naive recurrence):
**
**     S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = d_k^-1/2 S_t^T q_t
**
** so A_t = diag(alpha_t) - alpha_t beta_t k_t k_t^T (an SL_OP_DLR block per
** head). allow_neg_eigval doubles beta. d_k = head_dim, d_v = head_dim *
** expand_v. Output: swish-gated RMSNorm with g_proj (use_gate, the default)
** or RMSNorm, then o_proj. Grouped value heads (num_v_heads) are refused.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "matblock.h"
#include "util.h"

typedef struct gdn_cfg {
    sl_mb_common c;
    double ev;
    int use_gate, use_conv, neg;
    int64_t conv_k, dk, dv;
} gdn_cfg;

static int gdn_config(json_t *cfg, gdn_cfg *d, sl_err *err)
{
    int rc;
    int64_t nv;
    if ((rc = sl_config_double(cfg, "expand_v", 2.0, &d->ev, err)) || (rc = sl_config_int(cfg, "head_dim", 256, &d->dk, err)) ||
        (rc = sl_config_bool(cfg, "use_gate", 1, &d->use_gate, err)) ||
        (rc = sl_config_bool(cfg, "use_short_conv", 1, &d->use_conv, err)) ||
        (rc = sl_config_int(cfg, "conv_size", 4, &d->conv_k, err)) ||
        (rc = sl_config_bool(cfg, "allow_neg_eigval", 0, &d->neg, err)) ||
        (rc = sl_config_int(cfg, "num_v_heads", d->c.H, &nv, err)))
        return rc;
    if (nv != d->c.H) return sl_err_set(err, SL_EUNSUP, "num_v_heads != num_heads (grouped value heads) is not supported");
    d->dv = (int64_t)((double)d->dk * d->ev);
    if (d->dk <= 0 || d->dv <= 0 || fabs((double)d->dk * d->ev - (double)d->dv) > 1e-6)
        return sl_err_set(err, SL_EFORMAT, "head_dim (%lld) * expand_v (%g) must be a positive integer", (long long)d->dk, d->ev);
    if (d->use_conv && d->conv_k < 1) return sl_err_set(err, SL_EFORMAT, "conv_size must be positive");
    return SL_OK;
}

static int gdn_build(sl_model *m, sl_err *err)
{
    gdn_cfg d;
    int rc = sl_mb_common_config(m, 6, 1e-6, &d.c, err);
    if (rc || (rc = gdn_config(m->config, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    sl_mb *mbs = calloc((size_t)d.c.L, sizeof *mbs);
    if (!mbs) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int64_t sq[2] = { kd, hid }, sv[2] = { vd, hid }, sb[2] = { H, hid }, sh[1] = { H }, so[1] = { d.dv };
    for (int l = 0; l < d.c.L && !rc; l++) {
        sl_mb *p = &mbs[l];
        p->kind = SL_MB_GDN;
        p->hid = hid; p->H = H; p->dk = d.dk; p->dv = d.dv; p->eps = d.c.eps;
        if ((rc = sl_mb_bind_block(m, l, p, err)) || (rc = sl_mb_tensor(m, l, "attn.q_proj.weight", 2, sq, 0, &p->wq, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.k_proj.weight", 2, sq, 0, &p->wk, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.v_proj.weight", 2, sv, 0, &p->wv, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.a_proj.weight", 2, sb, 0, &p->wa, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.b_proj.weight", 2, sb, 0, &p->wb, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.A_log", 1, sh, 0, &p->A_log, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.dt_bias", 1, sh, 0, &p->dt_bias, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.o_norm.weight", 1, so, 1, &p->onorm_w, err)))
            break;
        if (d.use_gate && (rc = sl_mb_tensor(m, l, "attn.g_proj.weight", 2, sv, 0, &p->wg, err))) break;
        if (d.use_conv) {
            p->conv_k = d.conv_k;
            if ((rc = sl_mb_conv(m, l, "q", kd, d.conv_k, &p->conv_w[0], &p->conv_b[0], err)) ||
                (rc = sl_mb_conv(m, l, "k", kd, d.conv_k, &p->conv_w[1], &p->conv_b[1], err)) ||
                (rc = sl_mb_conv(m, l, "v", vd, d.conv_k, &p->conv_w[2], &p->conv_b[2], err)))
                break;
        }
        p->act[0] = p->act[1] = p->act[2] = SL_MB_ACT_SILU;
        p->q_norm = p->k_norm = SL_MB_NORM_L2;
        p->beta_mode = SL_MB_BETA_SIGMOID;
        p->neg_eig = d.neg;
        p->onorm = d.use_gate ? SL_MB_ONORM_RMS_GATED : SL_MB_ONORM_RMS;
    }
    if (!rc)
        rc = sl_mb_build_layers(m, "gated_delta_net", mbs, (int)d.c.L,
                                sl_strfmt("gated_delta_net, %lld layer%s, hidden %lld, %lld heads of d_k %lld, d_v %lld%s",
                                          (long long)d.c.L, d.c.L == 1 ? "" : "s", (long long)hid, (long long)H,
                                          (long long)d.dk, (long long)d.dv, d.neg ? ", negative eigenvalues" : ""),
                                err);
    free(mbs);
    return rc;
}

static int gdn_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    gdn_cfg d;
    int rc = sl_mb_init_common(cfg, 4, 1e-6, &d.c, err);
    if (!rc && !json_object_get(cfg, "head_dim")) json_object_set_new(cfg, "head_dim", json_integer(d.c.hid / d.c.H > 0 ? d.c.hid / d.c.H : 1));
    if (rc || (rc = gdn_config(cfg, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid, kd = H * d.dk, vd = H * d.dv;
    int64_t inter = sl_mb_intermediate(cfg, hid, err, &rc);
    if (rc) return rc;
    void *rng = sl_mb_rng_new(seed);
    if (!rng) return sl_err_set(err, SL_ENOMEM, "out of memory");
    char nm[128];
    int64_t sq[2] = { kd, hid }, sv[2] = { vd, hid }, sb[2] = { H, hid }, sh[1] = { H }, so[1] = { d.dv };
    int64_t cq[3] = { kd, 1, d.conv_k }, cv[3] = { vd, 1, d.conv_k };
#define INIT(what, nd, shp, sd) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, what), sl_mb_init_tensor(ts, rng, nm, nd, shp, sd, err))
    rc = sl_mb_init_model(ts, rng, json_integer_value(json_object_get(cfg, "vocab_size")), hid, d.c.std, err);
    for (int l = 0; l < d.c.L && !rc; l++) {
        if ((rc = INIT("attn.q_proj.weight", 2, sq, d.c.std)) || (rc = INIT("attn.k_proj.weight", 2, sq, d.c.std)) ||
            (rc = INIT("attn.v_proj.weight", 2, sv, d.c.std)) || (rc = INIT("attn.a_proj.weight", 2, sb, d.c.std)) ||
            (rc = INIT("attn.b_proj.weight", 2, sb, d.c.std)) || (rc = INIT("attn.A_log", 1, sh, 0)) ||
            (rc = INIT("attn.dt_bias", 1, sh, 0)) || (rc = INIT("attn.o_norm.weight", 1, so, -1)))
            break;
        /* fla: A ~ U(0, 16), A_log = log A; dt log-uniform in [1e-3, 0.1], dt_bias = softplus^-1(dt). */
        snprintf(nm, sizeof nm, "model.layers.%d.attn.A_log", l);
        sl_tensor *ta = sl_tensors_find(ts, nm);
        snprintf(nm, sizeof nm, "model.layers.%d.attn.dt_bias", l);
        sl_tensor *tb = sl_tensors_find(ts, nm);
        for (int64_t h = 0; h < H; h++) {
            ta->data[h] = (float)log(16.0 * sl_mb_rng_uniform(rng) + 1e-12);
            double dt = exp(sl_mb_rng_uniform(rng) * (log(0.1) - log(0.001)) + log(0.001));
            if (dt < 1e-4) dt = 1e-4;
            tb->data[h] = (float)(dt + log(-expm1(-dt)));
        }
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

static const sl_config_key gdn_keys[] = {
    {"hidden_size", "int", "model width (required)"},
    {"num_heads", "int", "heads (default 4)"},
    {"num_hidden_layers", "int", "blocks (default 1)"},
    {"head_dim", "int", "d_k per head (default hidden_size / num_heads)"},
    {"expand_v", "float", "d_v / d_k (default 2)"},
    {"use_short_conv", "bool", "short convolutions on q, k, v (default true)"},
    {"conv_size", "int", "short convolution length (default 4)"},
    {"use_gate", "bool", "swish output gate g_proj (default true)"},
    {"allow_neg_eigval", "bool", "beta in [0, 2]: eigenvalues down to -alpha (default false)"},
    {"hidden_ratio", "int", "MLP width ratio (default 4)"},
    {"intermediate_size", "int", "MLP width (default from hidden_ratio)"},
    {"norm_eps", "float", "RMSNorm epsilon (default 1e-6)"},
    {"initializer_range", "float", "std of the normal init (default 0.02)"},
    {"vocab_size", "int", "add embeddings and lm_head of this vocabulary (default none)"},
    {0, 0, 0},
};

static const char *const gdn_hf[] = { "gated_deltanet", "gated_delta_net", NULL };

const sl_family sl_family_gated_delta_net = {
    .name = "gated_delta_net",
    .summary = "Gated DeltaNet (fla): S_t = alpha_t (I - beta k k^T) S_{t-1} + beta k v^T per head",
    .hf_model_types = gdn_hf,
    .build = gdn_build,
    .init = gdn_init,
    .keys = gdn_keys,
};
