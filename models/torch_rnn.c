/*
** PyTorch recurrent-module naming: see torch_rnn.h.
*/
#include "torch_rnn.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad.h"
#include "bptt.h"
#include "util.h"
#ifdef SL_CUDA
#include "kernels/cuda/cuda.h"
#endif

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

/* ------------------------------------------------------------ layers */
void sl_torch_rnn_free(sl_layer *L)
{
    sl_rnn_weights *w = L->impl;
    if (w) sl_rnn_packed_free((sl_rnn_packed *)w->packed);
    free(w);
}

int sl_torch_rnn_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    if (f->gates && (f->device != SL_DEVICE_CPU || f->algo == SL_ALGO_REFERENCE))
        return sl_err_set(err, SL_EUNSUP, "%s layers keep their gates only in the optimised CPU forward", L->kind);
    if (f->device == SL_DEVICE_CUDA) {
#ifdef SL_CUDA
        if (f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT)
            return sl_err_set(err, SL_EUNSUP, "%s layers on CUDA run the recurrent algorithm only (auto, recurrent)",
                              L->kind);
        return sl_cuda_rnn_forward(w, f->B, f->T, f->x, f->y, f->carry, f->states, err);
#else
        return sl_device_check(f->device, err);
#endif
    }
    if (f->algo == SL_ALGO_REFERENCE) return sl_rnn_forward_ref(w, f->B, f->T, f->x, f->y, f->carry, f->states, err);
    if (f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT)
        return sl_err_set(err, SL_EUNSUP, "%s layers have only the recurrent forward algorithm", L->kind);
    return sl_rnn_forward_gates(w, f->B, f->T, f->x, f->y, f->carry, f->states, f->gates, err);
}

int sl_torch_rnn_backward(const sl_layer *L, const sl_bwd *b, sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    sl_rnn_grads g = {
        .w_ih = sl_grads_f32(b->g, w->w_ih), .w_hh = sl_grads_f32(b->g, w->w_hh),
        .b_ih = sl_grads_f32(b->g, w->b_ih), .b_hh = sl_grads_f32(b->g, w->b_hh),
        .tau = sl_grads_f32(b->g, w->tau),
    };
    /* dy as dz w_dz (SL_LAYER_DY_LOWRANK): the fused LSTM backward forms it where it reads it;
    ** the plain backward (no AVX-512, or no kept gates) gets it formed here. */
    const sl_dy_lowrank lr = { b->dz, b->w_dz, b->n_dz };
    const int lowrank = !b->dy && b->dz, fused = lowrank && b->gates && sl_lstm_bptt_available(w);
    float *dyf = NULL;
    if (lowrank && !fused) {
        const int64_t R = b->B * b->T;
        if (!(dyf = malloc((size_t)(R * w->H + 1) * sizeof *dyf)))
            return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
        sl_sgemm(0, 0, R, w->H, b->n_dz, 1.0f, b->dz, b->n_dz, b->w_dz, w->H, 0.0f, dyf, w->H);
    }
    size_t need = fused ? sl_lstm_bptt_ws(w, b->B, b->T) : sl_rnn_backward_ws(w, b->B, b->T);
    void *own = NULL, *ws = b->scratch ? sl_scratch_get(b->scratch, need) : (own = malloc(need));
    int rc;
    if (!ws) rc = sl_err_set(err, SL_ENOMEM, "out of memory for the backward workspace");
    else if (fused)
        rc = sl_lstm_bptt_lowrank(w, b->B, b->T, b->x, b->carry0, b->states, b->gates, &lr, b->dx, b->dcarry0, &g, ws,
                                  need, err);
    else
        rc = sl_rnn_backward(w, b->B, b->T, b->x, b->carry0, b->states, b->gates, dyf ? dyf : b->dy, b->dx,
                             b->dcarry0, &g, ws, need, err);
    free(own);
    free(dyf);
    return rc;
}

int sl_torch_rnn_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    sl_rnn_grads_f64 g = {
        .w_ih = sl_grads_f64(b->g, w->w_ih), .w_hh = sl_grads_f64(b->g, w->w_hh),
        .b_ih = sl_grads_f64(b->g, w->b_ih), .b_hh = sl_grads_f64(b->g, w->b_hh),
        .tau = sl_grads_f64(b->g, w->tau),
    };
    size_t need = sl_rnn_backward_f64_ws(w, b->B, b->T);
    void *own = NULL, *ws = b->scratch ? sl_scratch_get(b->scratch, need) : (own = malloc(need));
    if (!ws) return sl_err_set(err, SL_ENOMEM, "out of memory for the backward workspace");
    int rc = sl_rnn_backward_f64(w, b->B, b->T, b->x, b->carry0, b->states, NULL, b->dy, b->dx, b->dcarry0, &g, ws,
                                 need, err);
    free(own);
    return rc;
}

int sl_torch_rnn_params_changed(sl_layer *L, sl_err *err)
{
    (void)err;
    sl_rnn_weights *w = L->impl;
    if (w->tau) {
        /* The model owns tau's storage (writable); the layer only reads it
        ** elsewhere. alpha lives in this layer's own block (build_layers). */
        float *tau = (float *)w->tau, *alpha = (float *)w->alpha;
        for (int64_t j = 0; j < w->H; j++) {
            if (!(tau[j] >= 1.0f)) tau[j] = 1.0f;   /* also catches NaN */
            alpha[j] = 1.0f / tau[j];
        }
    }
    /* The fused forward reads a packed copy of the weights (and of alpha). */
    if (w->packed) sl_rnn_repack(w, (sl_rnn_packed *)w->packed);
    return SL_OK;
}

int sl_torch_rnn_build_layers(sl_model *m, const sl_torch_rnn *s, sl_cell_kind cell, const sl_layer_ops *ops,
                              sl_err *err)
{
    m->layers = calloc((size_t)s->num_layers, sizeof *m->layers);
    if (!m->layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    const int64_t H = s->hidden_size;
    for (int64_t l = 0; l < s->num_layers; l++) {
        /* One block per layer: the weights struct, then alpha = 1/tau for the
        ** leaky RNN (the tensor holds tau; the kernel wants its inverse). */
        const int leaky = s->tau[l] != NULL;
        sl_layer *L = calloc(1, sizeof *L);
        sl_rnn_weights *w = calloc(1, sizeof *w + (leaky ? (size_t)H * sizeof(float) : 0));
        if (!L || !w) { free(L); free(w); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        w->cell = cell;
        w->in = l == 0 ? s->input_size : H;
        w->H = H;
        w->w_ih = s->w_ih[l]->data;
        w->w_hh = s->w_hh[l]->data;
        w->b_ih = s->b_ih[l] ? s->b_ih[l]->data : NULL;
        w->b_hh = s->b_hh[l] ? s->b_hh[l]->data : NULL;
        if (leaky) {
            float *alpha = (float *)(w + 1);
            for (int64_t j = 0; j < H; j++) alpha[j] = 1.0f / s->tau[l]->data[j];
            w->alpha = alpha;
            w->tau = s->tau[l]->data;
        }
        /* Packed once here for the fused forward kernels (kernels/rnn_fused.c). */
        sl_rnn_packed *pk;
        int rc = sl_rnn_pack(w, &pk, err);
        if (rc) { free(L); free(w); return rc; }
        w->packed = pk;
        L->ops = ops;
        L->impl = w;
        m->layers[m->n_layers++] = L;
        L->kind = cell == SL_CELL_LSTM ? "lstm" : cell == SL_CELL_GRU ? "gru" : "rnn";
        L->index = (int)l;
        L->n_in = w->in;
        L->n_out = H;
        L->n_carry = L->n_state = sl_cell_carry(cell, H);
        L->n_gates = cell == SL_CELL_LSTM ? 4 * H : 0;   /* kept by the forward for training */
        L->n_sys_in = w->in;
        L->n_sys_out = H;
        int64_t hs[1] = { H };
        sl_layer_add_block(L, "h", 0, 1, hs);
        if (cell == SL_CELL_LSTM) sl_layer_add_block(L, "c", H, 1, hs);
        L->flags = SL_LAYER_CUDA;   /* nonlinear (A_t, B_t are Jacobians); a CUDA forward */
        if (cell == SL_CELL_LSTM) L->flags |= SL_LAYER_DY_LOWRANK;   /* the fused backward forms dy itself */
        L->unit_tau = s->tau[l] ? s->tau[l]->data : NULL;
    }
    return SL_OK;
}

int sl_torch_rnn_init(json_t *cfg, uint64_t seed, sl_tensors *ts, int gate_mult, int leaky, sl_err *err)
{
    int64_t in, H, L;
    int bias, rc;
    double tau;
    if ((rc = sl_config_int(cfg, "input_size", 0, &in, err)) || (rc = sl_config_int(cfg, "hidden_size", 0, &H, err)) ||
        (rc = sl_config_int(cfg, "num_layers", 1, &L, err)) || (rc = sl_config_bool(cfg, "bias", 1, &bias, err)) ||
        (rc = sl_config_double(cfg, "tau", 1.0, &tau, err)))
        return rc;
    if (in <= 0) return sl_err_set(err, SL_EINVAL, "input_size must be positive");
    if (H <= 0) return sl_err_set(err, SL_EINVAL, "hidden_size must be positive");
    if (L < 1 || L > SL_TORCH_RNN_MAX_LAYERS) return sl_err_set(err, SL_EINVAL, "num_layers must be 1..%d", SL_TORCH_RNN_MAX_LAYERS);
    if (leaky && !(tau >= 1.0)) return sl_err_set(err, SL_EINVAL, "tau must be >= 1 (is %g)", tau);
    json_object_set_new(cfg, "num_layers", json_integer(L));
    json_object_set_new(cfg, "bias", json_boolean(bias));
    json_object_del(cfg, "tau");
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    gsl_rng_set(r, (unsigned long)seed);
    const double k = 1.0 / sqrt((double)H);
    const int64_t G = gate_mult * H;
    char nm[64];
    for (int64_t l = 0; l < L && !rc; l++) {
        int64_t lin = l == 0 ? in : H;
        int64_t shapes[4][2] = { { G, lin }, { G, H }, { G, 0 }, { G, 0 } };
        const char *what[4] = { "weight_ih", "weight_hh", "bias_ih", "bias_hh" };
        for (int q = 0; q < 4 && !rc; q++) {
            if (q >= 2 && !bias) continue;
            sl_tensor *t;
            sl_torch_rnn_name("", 0, what[q], l, nm, sizeof nm);
            if ((rc = sl_tensors_add(ts, nm, q < 2 ? 2 : 1, shapes[q], NULL, &t, err))) break;
            for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(gsl_rng_uniform(r) * 2.0 * k - k);
        }
        if (leaky && !rc) {
            sl_tensor *t;
            int64_t sh[1] = { H };
            sl_torch_rnn_name("", 0, "tau", l, nm, sizeof nm);
            if (!(rc = sl_tensors_add(ts, nm, 1, sh, NULL, &t, err)))
                for (int64_t i = 0; i < H; i++) t->data[i] = (float)tau;
        }
    }
    gsl_rng_free(r);
    return rc;
}

void sl_torch_rnn_preact(const sl_rnn_weights *w, const double *h, const double *u, double *gx, double *gh)
{
    const int64_t GH = sl_cell_gates(w->cell) * w->H;
    for (int64_t k = 0; k < GH; k++) {
        double sx = w->b_ih ? w->b_ih[k] : 0.0, sh = w->b_hh ? w->b_hh[k] : 0.0;
        const float *ri = w->w_ih + k * w->in, *rh = w->w_hh + k * w->H;
        for (int64_t j = 0; j < w->in; j++) sx += (double)ri[j] * u[j];
        for (int64_t j = 0; j < w->H; j++) sh += (double)rh[j] * h[j];
        gx[k] = sx;
        gh[k] = sh;
    }
}

double *sl_torch_rnn_rowscale(const float *W, int64_t rows, int64_t cols, const double *scale, double *out, int64_t ldo)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) out[i * ldo + j] = scale[i] * (double)W[i * cols + j];
    return out;
}

void sl_torch_rnn_accum_gate(double *M, int64_t ldm, int64_t row_off, const float *W, int64_t cols, int64_t H,
                             int gate, const double *coef)
{
    for (int64_t j = 0; j < H; j++) {
        const float *wr = W + (gate * H + j) * cols;
        double *mr = M + (row_off + j) * ldm;
        const double cj = coef[j];
        if (cj == 0.0) continue;
        for (int64_t c = 0; c < cols; c++) mr[c] += cj * (double)wr[c];
    }
}

int sl_torch_rnn_linsys_io(const sl_layer *L, const double *u, unsigned what, sl_linsys *ls, sl_err *err)
{
    /* C reads h (the first H entries of the state); D is zero; u is the layer input. */
    const int64_t H = L->n_out, n = L->n_state, in = L->n_in;
    ls->n_state = n;
    ls->n_in = in;
    ls->n_out = H;
    ls->exact = 0;
    ls->u_name = "u";
    if (what & SL_LS_C) {
        if (n == H) {
            if (sl_op_diag(&ls->C, H)) return sl_err_set(err, SL_ENOMEM, "out of memory");
            for (int64_t j = 0; j < H; j++) ls->C.a[j] = 1.0;
        } else {
            if (sl_op_dense(&ls->C, H, n)) return sl_err_set(err, SL_ENOMEM, "out of memory");
            for (int64_t j = 0; j < H; j++) ls->C.a[j * n + j] = 1.0;
        }
    }
    if (what & SL_LS_D) sl_op_zero(&ls->D, H, in);
    ls->u = malloc((size_t)(in ? in : 1) * sizeof *ls->u);
    if (!ls->u) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t k = 0; k < in; k++) ls->u[k] = u[k];
    return SL_OK;
}
