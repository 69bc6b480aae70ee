/*
** The linear_attn family: linear attention (Katharopoulos et al. 2020,
** "Transformers are RNNs") as flash-linear-attention builds it
** (fla/layers/linear_attn.py, model_type "linear_attn"). Per head, with a
** parameter-free feature map phi on q and k (identity, elu+1 ("elu"), relu;
** fla's learned maps are refused) and optional sum normalisation
** (norm_q / norm_k: x / (sum x + 1e-4)):
**
**     S_t = S_{t-1} + phi(k_t) v_t^T,   o_t = d_k^-1/2 S_t^T phi(q_t)
**
** A = I: every eigenvalue is 1. No denominator (fla's default,
** norm_feature_map false). Output: per-head RMSNorm attn.norm, then o_proj.
*/
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "matblock.h"
#include "util.h"

typedef struct la_cfg {
    sl_mb_common c;
    double ek, ev;
    int fmap, nq, nk;
    int64_t dk, dv;
} la_cfg;

static int la_config(json_t *cfg, la_cfg *d, sl_err *err)
{
    int rc, nf;
    const char *fm;
    if ((rc = sl_config_double(cfg, "expand_k", 1.0, &d->ek, err)) || (rc = sl_config_double(cfg, "expand_v", 1.0, &d->ev, err)) ||
        (rc = sl_config_str(cfg, "feature_map", "elu", &fm, err)) || (rc = sl_config_bool(cfg, "norm_q", 0, &d->nq, err)) ||
        (rc = sl_config_bool(cfg, "norm_k", 0, &d->nk, err)) || (rc = sl_config_bool(cfg, "norm_feature_map", 0, &nf, err)))
        return rc;
    d->fmap = sl_mb_act_by_name(fm);
    if (d->fmap < 0 || d->fmap == SL_MB_ACT_SILU)
        return sl_err_set(err, SL_EUNSUP, "feature_map \"%s\" (identity, elu, relu; fla's learned maps are not supported)", fm);
    if (nf) return sl_err_set(err, SL_EUNSUP, "norm_feature_map (a denominator) is not supported");
    const int64_t kd = (int64_t)(d->c.hid * d->ek), vd = (int64_t)(d->c.hid * d->ev);
    if (kd <= 0 || vd <= 0 || kd % d->c.H || vd % d->c.H)
        return sl_err_set(err, SL_EFORMAT, "hidden_size * expand_k (%lld) and * expand_v (%lld) must be positive multiples of num_heads",
                          (long long)kd, (long long)vd);
    d->dk = kd / d->c.H;
    d->dv = vd / d->c.H;
    return SL_OK;
}

static int la_build(sl_model *m, sl_err *err)
{
    la_cfg d;
    int rc = sl_mb_common_config(m, 4, 1e-6, &d.c, err);
    if (rc || (rc = la_config(m->config, &d, err))) return rc;
    sl_mb *mbs = calloc((size_t)d.c.L, sizeof *mbs);
    if (!mbs) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int64_t so[1] = { d.dv };
    for (int l = 0; l < d.c.L && !rc; l++) {
        sl_mb *p = &mbs[l];
        p->kind = SL_MB_LINEAR_ATTN;
        p->hid = d.c.hid; p->H = d.c.H; p->dk = d.dk; p->dv = d.dv; p->eps = d.c.eps;
        if ((rc = sl_mb_bind_block(m, l, p, err)) || (rc = sl_mb_bind_qkv(m, l, p, 0, err)) ||
            (rc = sl_mb_tensor(m, l, "attn.norm.weight", 1, so, 1, &p->onorm_w, err)))
            break;
        p->fmap = d.fmap;
        p->q_norm = d.nq ? SL_MB_NORM_SUM_EPS : SL_MB_NORM_NONE;
        p->k_norm = d.nk ? SL_MB_NORM_SUM_EPS : SL_MB_NORM_NONE;
        p->onorm = SL_MB_ONORM_RMS;
    }
    if (!rc) rc = sl_mb_build_layers(m, "linear_attn", mbs, (int)d.c.L, sl_mb_summary("linear_attn", &d.c, d.dk, d.dv, NULL), err);
    free(mbs);
    return rc;
}

static int la_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    la_cfg d;
    int rc = sl_mb_init_common(cfg, 4, 1e-6, &d.c, err);
    if (!rc && !json_object_get(cfg, "feature_map")) json_object_set_new(cfg, "feature_map", json_string("elu"));
    if (rc || (rc = la_config(cfg, &d, err))) return rc;
    const int64_t H = d.c.H, hid = d.c.hid;
    int64_t inter = sl_mb_intermediate(cfg, hid, err, &rc);
    if (rc) return rc;
    void *rng = sl_mb_rng_new(seed);
    if (!rng) return sl_err_set(err, SL_ENOMEM, "out of memory");
    char nm[128];
    int64_t so[1] = { d.dv };
    rc = sl_mb_init_model(ts, rng, json_integer_value(json_object_get(cfg, "vocab_size")), hid, d.c.std, err);
    for (int l = 0; l < d.c.L && !rc; l++) {
        if ((rc = sl_mb_init_qkv(ts, rng, l, hid, H * d.dk, H * d.dv, 0, d.c.std, err))) break;
        snprintf(nm, sizeof nm, "model.layers.%d.attn.norm.weight", l);
        if ((rc = sl_mb_init_tensor(ts, rng, nm, 1, so, -1, err))) break;
        rc = sl_mb_init_block(ts, rng, l, hid, inter, H * d.dv, d.c.std, err);
    }
    sl_mb_rng_free(rng);
    return rc;
}

static const sl_config_key la_keys[] = {
    {"hidden_size", "int", "model width (required)"},
    {"num_heads", "int", "heads (default 4)"},
    {"num_hidden_layers", "int", "blocks (default 1)"},
    {"expand_k", "float", "key width / hidden_size (default 1)"},
    {"expand_v", "float", "value width / hidden_size (default 1)"},
    {"feature_map", "string", "identity, elu (elu+1, seqlab init's default), relu"},
    {"norm_q", "bool", "q / (sum q + 1e-4) (default false)"},
    {"norm_k", "bool", "k / (sum k + 1e-4) (default false)"},
    {"hidden_ratio", "int", "MLP width ratio (default 4)"},
    {"intermediate_size", "int", "MLP width (default from hidden_ratio)"},
    {"norm_eps", "float", "RMSNorm epsilon (default 1e-6)"},
    {"initializer_range", "float", "std of the normal init (default 0.02)"},
    {"vocab_size", "int", "add embeddings and lm_head of this vocabulary (default none)"},
    {0, 0, 0},
};

static const char *const la_hf[] = { "linear_attn", NULL };

const sl_family sl_family_linear_attn = {
    .name = "linear_attn",
    .summary = "linear attention (fla): S_t = S_{t-1} + phi(k) v^T, phi identity, elu+1 or relu",
    .hf_model_types = la_hf,
    .build = la_build,
    .init = la_init,
    .keys = la_keys,
};
