/*
** PyTorch recurrent-module naming: see torch_rnn.h.
*/
#include "torch_rnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *sl_torch_rnn_name(const char *prefix, int cell, const char *what, int64_t layer, char *buf, size_t n)
{
    if (cell) snprintf(buf, n, "%s%s", prefix, what);
    else snprintf(buf, n, "%s%s_l%lld", prefix, what, (long long)layer);
    return buf;
}

/* If name is "<prefix>weight_hh_l0" or "<prefix>weight_hh", return the prefix
** length and whether it is the cell naming; else -1. */
static int match_hh(const char *name, int *cell)
{
    size_t n = strlen(name);
    static const char *const sfx[2] = { "weight_hh_l0", "weight_hh" };
    for (int k = 0; k < 2; k++) {
        size_t ls = strlen(sfx[k]);
        if (n < ls || strcmp(name + n - ls, sfx[k]) != 0) continue;
        if (n > ls && name[n - ls - 1] != '.') continue;
        *cell = (k == 1);
        return (int)(n - ls);
    }
    return -1;
}

int sl_torch_rnn_detect(const sl_tensors *ts, int gate_mult, json_t **config)
{
    *config = NULL;
    int found = 0;
    char prefix[256] = "";
    int cell = 0;
    int64_t H = 0, in = 0;
    for (size_t i = 0; i < ts->n; i++) {
        const sl_tensor *t = &ts->t[i];
        int c;
        int pl = match_hh(t->name, &c);
        if (pl < 0 || pl >= (int)sizeof prefix || t->ndim != 2) continue;
        if (t->shape[1] <= 0 || t->shape[0] != gate_mult * t->shape[1]) {
            /* Another recurrent module with a different gate multiple makes
            ** the checkpoint ambiguous only if it would match ours; skip. */
            continue;
        }
        char pf[256], nm[300];
        memcpy(pf, t->name, (size_t)pl);
        pf[pl] = '\0';
        const sl_tensor *ih = sl_tensors_find(ts, sl_torch_rnn_name(pf, c, "weight_ih", 0, nm, sizeof nm));
        if (!ih || ih->ndim != 2 || ih->shape[0] != t->shape[0]) continue;
        found++;
        memcpy(prefix, pf, (size_t)pl + 1);
        cell = c;
        H = t->shape[1];
        in = ih->shape[1];
    }
    if (found != 1) return 0;
    /* An RNN (g = 1) module's weight_hh is square; an LSTM's or GRU's is not,
    ** so each matches exactly one family. */
    int64_t layers = 1;
    char nm[300];
    if (!cell)
        while (layers < SL_TORCH_RNN_MAX_LAYERS &&
               sl_tensors_find(ts, sl_torch_rnn_name(prefix, 0, "weight_hh", layers, nm, sizeof nm)))
            layers++;
    int bias = sl_tensors_find(ts, sl_torch_rnn_name(prefix, cell, "bias_hh", 0, nm, sizeof nm)) != NULL;
    json_t *cfg = json_pack("{s:I, s:I, s:I, s:b}", "input_size", (json_int_t)in, "hidden_size", (json_int_t)H,
                            "num_layers", (json_int_t)layers, "bias", bias);
    if (!cfg) return 0;
    if (prefix[0]) json_object_set_new(cfg, "tensor_prefix", json_string(prefix));
    if (cell) json_object_set_new(cfg, "cell", json_true());
    *config = cfg;
    return 1;
}

int sl_torch_rnn_parse(sl_model *m, int gate_mult, int leaky, sl_torch_rnn *s, sl_err *err)
{
    memset(s, 0, sizeof *s);
    int rc;
    const json_t *cfg = m->config;
    if ((rc = sl_config_str(cfg, "tensor_prefix", "", &s->prefix, err))) return rc;
    if ((rc = sl_config_bool(cfg, "cell", 0, &s->cell, err))) return rc;
    char nm[300], shp[64];
    const sl_tensor *hh0 = sl_tensors_find(m->tensors, sl_torch_rnn_name(s->prefix, s->cell, "weight_hh", 0, nm, sizeof nm));
    const sl_tensor *ih0 = sl_tensors_find(m->tensors, sl_torch_rnn_name(s->prefix, s->cell, "weight_ih", 0, nm, sizeof nm));
    /* Defaults come from the tensors so a config may give only what it wants to. */
    int64_t H0 = hh0 && hh0->ndim == 2 ? hh0->shape[1] : 0, in0 = ih0 && ih0->ndim == 2 ? ih0->shape[1] : 0;
    int64_t L0 = 1;
    if (!s->cell)
        while (L0 < SL_TORCH_RNN_MAX_LAYERS &&
               sl_tensors_find(m->tensors, sl_torch_rnn_name(s->prefix, 0, "weight_hh", L0, nm, sizeof nm)))
            L0++;
    int bias0 = sl_tensors_find(m->tensors, sl_torch_rnn_name(s->prefix, s->cell, "bias_hh", 0, nm, sizeof nm)) != NULL;
    if ((rc = sl_config_int(cfg, "hidden_size", H0, &s->hidden_size, err))) return rc;
    if ((rc = sl_config_int(cfg, "input_size", in0, &s->input_size, err))) return rc;
    if ((rc = sl_config_int(cfg, "num_layers", L0, &s->num_layers, err))) return rc;
    if ((rc = sl_config_bool(cfg, "bias", bias0, &s->bias, err))) return rc;
    s->gate_mult = gate_mult;
    if (s->hidden_size <= 0) return sl_err_set(err, SL_EFORMAT, "hidden_size must be positive (is %lld)", (long long)s->hidden_size);
    if (s->input_size <= 0) return sl_err_set(err, SL_EFORMAT, "input_size must be positive (is %lld)", (long long)s->input_size);
    if (s->num_layers < 1 || s->num_layers > SL_TORCH_RNN_MAX_LAYERS)
        return sl_err_set(err, SL_EFORMAT, "num_layers must be 1..%d (is %lld)", SL_TORCH_RNN_MAX_LAYERS, (long long)s->num_layers);
    if (s->cell && s->num_layers != 1) return sl_err_set(err, SL_EFORMAT, "a cell has one layer (num_layers is %lld)", (long long)s->num_layers);
    if (json_is_true(json_object_get(cfg, "bidirectional")))
        return sl_err_set(err, SL_EUNSUP, "bidirectional recurrent modules are not supported");
    json_int_t ps = json_integer_value(json_object_get(cfg, "proj_size"));
    if (ps != 0 || sl_tensors_find(m->tensors, sl_torch_rnn_name(s->prefix, s->cell, "weight_hr", 0, nm, sizeof nm)))
        return sl_err_set(err, SL_EUNSUP, "LSTM projections (proj_size) are not supported");
    const int64_t H = s->hidden_size, G = gate_mult * H;
    for (int64_t l = 0; l < s->num_layers; l++) {
        int64_t in = l == 0 ? s->input_size : H;
        int64_t sh_ih[2] = { G, in }, sh_hh[2] = { G, H }, sh_b[1] = { G }, sh_h[1] = { H };
        const char *what[4] = { "weight_ih", "weight_hh", "bias_ih", "bias_hh" };
        const sl_tensor **dst[4] = { &s->w_ih[l], &s->w_hh[l], &s->b_ih[l], &s->b_hh[l] };
        const int64_t *shapes[4] = { sh_ih, sh_hh, sh_b, sh_b };
        for (int k = 0; k < 4; k++) {
            if (k >= 2 && !s->bias) continue;
            sl_torch_rnn_name(s->prefix, s->cell, what[k], l, nm, sizeof nm);
            const sl_tensor *t = sl_tensors_find(m->tensors, nm);
            if ((rc = sl_tensor_expect(t, nm, k < 2 ? 2 : 1, shapes[k], err))) return rc;
            *dst[k] = t;
            sl_model_set_role(m, nm, SL_ROLE_CORE);
        }
        if (leaky) {
            sl_torch_rnn_name(s->prefix, s->cell, "tau", l, nm, sizeof nm);
            const sl_tensor *t = sl_tensors_find(m->tensors, nm);
            if ((rc = sl_tensor_expect(t, nm, 1, sh_h, err))) return rc;
            for (int64_t i = 0; i < H; i++)
                if (!(t->data[i] >= 1.0f))
                    return sl_err_set(err, SL_EFORMAT, "tensor %s: tau[%lld] = %g, must be >= 1", nm, (long long)i,
                                      (double)t->data[i]);
            s->tau[l] = t;
            sl_model_set_role(m, nm, SL_ROLE_CORE);
        }
    }
    /* Write back the full config so info shows what is in effect. */
    json_object_set_new(m->config, "input_size", json_integer(s->input_size));
    json_object_set_new(m->config, "hidden_size", json_integer(s->hidden_size));
    json_object_set_new(m->config, "num_layers", json_integer(s->num_layers));
    json_object_set_new(m->config, "bias", json_boolean(s->bias));
    m->n_in = s->input_size;
    m->n_out = H;
    (void)shp;
    return SL_OK;
}
