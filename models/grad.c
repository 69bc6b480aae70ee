/*
** Gradients of a model: see grad.h.
**
** The model-level passes only chain layers: each layer's backward turns
** dL/d(its output) into dL/d(its input), which is the next layer down's
** dL/d(output). Buffers live in the tape and grow monotonically, so after the
** first step of a training loop nothing here allocates.
*/
#include "grad.h"

#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

/* ------------------------------------------------------------ scratch */
void *sl_scratch_get(sl_scratch *s, size_t bytes)
{
    if (bytes == 0) bytes = 64;
    if (bytes <= s->size) return s->p;
    free(s->p);
    s->p = NULL;
    s->size = 0;
    size_t n = (bytes + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0) return NULL;
    s->p = p;
    s->size = n;
    return p;
}

void sl_scratch_free(sl_scratch *s)
{
    free(s->p);
    s->p = NULL;
    s->size = 0;
}

/* Grow *buf to hold n elements of size sz (contents not kept). */
static int grow_buf(void **buf, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap && *buf) return 0;
    size_t bytes;
    if (sl_mul_size(n ? n : 1, sz, &bytes)) return -1;
    void *p = malloc(bytes);
    if (!p) return -1;
    free(*buf);
    *buf = p;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------ gradients */
int sl_grads_init(sl_grads *g, const sl_tensors *params, int want_f32, int want_f64, sl_err *err)
{
    memset(g, 0, sizeof *g);
    g->params = params;
    g->n = params->n;
    g->f32 = calloc(g->n ? g->n : 1, sizeof *g->f32);
    g->f64 = calloc(g->n ? g->n : 1, sizeof *g->f64);
    if (!g->f32 || !g->f64) goto oom;
    for (size_t i = 0; i < g->n; i++) {
        size_t k = (size_t)(params->t[i].numel ? params->t[i].numel : 1);
        if (want_f32 && !(g->f32[i] = calloc(k, sizeof(float)))) goto oom;
        if (want_f64 && !(g->f64[i] = calloc(k, sizeof(double)))) goto oom;
    }
    return SL_OK;
oom:
    sl_grads_free(g);
    return sl_err_set(err, SL_ENOMEM, "out of memory for gradients");
}

void sl_grads_zero_f32(sl_grads *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->f32[i]) memset(g->f32[i], 0, (size_t)g->params->t[i].numel * sizeof(float));
}

void sl_grads_zero_f64(sl_grads *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->f64[i]) memset(g->f64[i], 0, (size_t)g->params->t[i].numel * sizeof(double));
}

void sl_grads_zero(sl_grads *g)
{
    sl_grads_zero_f32(g);
    sl_grads_zero_f64(g);
}

void sl_grads_free(sl_grads *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->f32) free(g->f32[i]);
        if (g->f64) free(g->f64[i]);
    }
    free(g->f32);
    free(g->f64);
    memset(g, 0, sizeof *g);
}

void sl_grads_freeze(sl_grads *g, size_t i)
{
    if (i >= g->n) return;
    free(g->f32[i]);
    free(g->f64[i]);
    g->f32[i] = NULL;
    g->f64[i] = NULL;
}

static long find_param(const sl_grads *g, const float *param)
{
    if (!g || !param) return -1;
    for (size_t i = 0; i < g->n; i++)
        if (g->params->t[i].data == param) return (long)i;
    return -1;
}

float *sl_grads_f32(const sl_grads *g, const float *param)
{
    long i = find_param(g, param);
    return i < 0 ? NULL : g->f32[i];
}

double *sl_grads_f64(const sl_grads *g, const float *param)
{
    long i = find_param(g, param);
    return i < 0 ? NULL : g->f64[i];
}

/* ------------------------------------------------------------ layers */
int sl_layer_backward(const sl_layer *L, const sl_bwd *b, sl_err *err)
{
    if (!L->ops->backward)
        return sl_err_set(err, SL_EUNSUP, "layer %d (%s): this family has no gradients (no backward pass)", L->index,
                          L->kind);
    int rc = L->ops->backward(L, b, err);
    if (rc) sl_err_prefix(err, "layer %d (%s) backward", L->index, L->kind);
    return rc;
}

int sl_layer_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err)
{
    if (!L->ops->backward_f64)
        return sl_err_set(err, SL_EUNSUP, "layer %d (%s): this family has no double-precision backward pass",
                          L->index, L->kind);
    int rc = L->ops->backward_f64(L, b, err);
    if (rc) sl_err_prefix(err, "layer %d (%s) backward", L->index, L->kind);
    return rc;
}

int sl_model_trainable(const sl_model *m)
{
    if (m->n_layers == 0) return 0;
    for (int l = 0; l < m->n_layers; l++)
        if (!m->layers[l]->ops->backward || !m->layers[l]->ops->backward_f64) return 0;
    return 1;
}

int sl_model_params_changed(sl_model *m, sl_err *err)
{
    for (int l = 0; l < m->n_layers; l++) {
        sl_layer *L = m->layers[l];
        if (!L->ops->params_changed) continue;
        int rc = L->ops->params_changed(L, err);
        if (rc) return sl_err_prefix(err, "layer %d (%s)", L->index, L->kind);
    }
    return SL_OK;
}

/* ------------------------------------------------------------ float tape */
static int tape_alloc(sl_tape *t, int L, sl_err *err)
{
    if (t->act && t->n_layers == L) return SL_OK;
    if (t->act) return sl_err_set(err, SL_EINVAL, "tape used with models of different depth");
    t->n_layers = L;
    t->act = calloc((size_t)L + 1, sizeof *t->act);
    t->states = calloc((size_t)L, sizeof *t->states);
    t->gates = calloc((size_t)L, sizeof *t->gates);
    t->cap_act = calloc((size_t)L + 1, sizeof *t->cap_act);
    t->cap_states = calloc((size_t)L, sizeof *t->cap_states);
    t->cap_gates = calloc((size_t)L, sizeof *t->cap_gates);
    if (!t->act || !t->states || !t->gates || !t->cap_act || !t->cap_states || !t->cap_gates)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}

void sl_tape_free(sl_tape *t)
{
    if (!t) return;
    for (int l = 0; t->act && l <= t->n_layers; l++) free(t->act[l]);
    for (int l = 0; t->states && l < t->n_layers; l++) free(t->states[l]);
    for (int l = 0; t->gates && l < t->n_layers; l++) free(t->gates[l]);
    free(t->act);
    free(t->states);
    free(t->gates);
    free(t->cap_act);
    free(t->cap_states);
    free(t->cap_gates);
    free(t->dbuf[0]);
    free(t->dbuf[1]);
    free(t->dtop);
    sl_scratch_free(&t->scratch);
    memset(t, 0, sizeof *t);
}

int sl_model_forward_tape(const sl_model *m, int64_t B, int64_t T, const float *x, sl_tape *t, sl_err *err)
{
    if (m->n_layers == 0) return sl_err_set(err, SL_EUNSUP, "model has no layers");
    int rc = tape_alloc(t, m->n_layers, err);
    if (rc) return rc;
    t->B = B;
    t->T = T;
    t->x = x;
    const size_t BT = (size_t)(B * T);
    for (int l = 0; l < m->n_layers; l++) {
        const sl_layer *L = m->layers[l];
        if (grow_buf((void **)&t->act[l + 1], &t->cap_act[l + 1], BT * (size_t)L->n_out, sizeof(float)) ||
            grow_buf((void **)&t->states[l], &t->cap_states[l], BT * (size_t)L->n_carry, sizeof(float)) ||
            (L->n_gates > 0 && grow_buf((void **)&t->gates[l], &t->cap_gates[l], BT * (size_t)L->n_gates, sizeof(float))))
            return sl_err_set(err, SL_ENOMEM, "out of memory for the training tape");
        sl_fwd f = { .B = B, .T = T, .x = l ? t->act[l] : x, .y = t->act[l + 1], .states = t->states[l],
                     .gates = L->n_gates > 0 ? t->gates[l] : NULL };
        if ((rc = sl_layer_forward(L, &f, err))) return rc;
    }
    return SL_OK;
}

/* The backward through the stack; the top layer's dL/dy is dy, or dz w (nz) when dy is NULL. */
static int model_backward(const sl_model *m, sl_tape *t, const float *dy, const float *dz, const float *w, int64_t nz,
                          const sl_grads *g, float *dx, sl_err *err)
{
    if (t->n_layers != m->n_layers || !t->act) return sl_err_set(err, SL_EINVAL, "backward without a forward pass");
    const int64_t B = t->B, T = t->T;
    const size_t BT = (size_t)(B * T);
    const float *cur = dy;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        const sl_layer *L = m->layers[l];
        float *out = NULL;
        if (l > 0) {
            int k = l & 1;
            if (grow_buf((void **)&t->dbuf[k], &t->dcap[k], BT * (size_t)L->n_in, sizeof(float)))
                return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
            out = t->dbuf[k];
        } else {
            out = dx;
        }
        sl_bwd b = { .B = B, .T = T, .x = l ? t->act[l] : t->x, .states = t->states[l],
                     .gates = L->n_gates > 0 ? t->gates[l] : NULL, .dy = cur, .dx = out, .g = g,
                     .scratch = &t->scratch };
        if (!cur) { b.dz = dz; b.w_dz = w; b.n_dz = nz; }   /* the top layer, flagged */
        int rc = sl_layer_backward(L, &b, err);
        if (rc) return rc;
        cur = out;
    }
    return SL_OK;
}

int sl_model_backward(const sl_model *m, sl_tape *t, const float *dy, const sl_grads *g, float *dx, sl_err *err)
{
    return model_backward(m, t, dy, NULL, NULL, 0, g, dx, err);
}

int sl_model_backward_lowrank(const sl_model *m, sl_tape *t, const float *dz, const float *w, int64_t nz,
                              const sl_grads *g, float *dx, sl_err *err)
{
    if (m->n_layers == 0) return sl_err_set(err, SL_EUNSUP, "model has no layers");
    if (t->n_layers != m->n_layers || !t->act) return sl_err_set(err, SL_EINVAL, "backward without a forward pass");
    const sl_layer *top = m->layers[m->n_layers - 1];
    if (top->flags & SL_LAYER_DY_LOWRANK) return model_backward(m, t, NULL, dz, w, nz, g, dx, err);
    const int64_t R = t->B * t->T, no = top->n_out;
    if (grow_buf((void **)&t->dtop, &t->dtop_cap, (size_t)(R * no), sizeof(float)))
        return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
    sl_sgemm(0, 0, R, no, nz, 1.0f, dz, nz, w, no, 0.0f, t->dtop, no);
    return model_backward(m, t, t->dtop, NULL, NULL, 0, g, dx, err);
}

/* ------------------------------------------------------------ double tape */
void sl_tape_f64_free(sl_tape_f64 *t)
{
    if (!t) return;
    for (int l = 0; t->act && l <= t->n_layers; l++) free(t->act[l]);
    for (int l = 0; t->states && l < t->n_layers; l++) free(t->states[l]);
    free(t->act);
    free(t->states);
    free(t->dbuf[0]);
    free(t->dbuf[1]);
    sl_scratch_free(&t->scratch);
    memset(t, 0, sizeof *t);
}

int sl_model_forward_tape_f64(const sl_model *m, int64_t B, int64_t T, const double *x, sl_tape_f64 *t,
                              sl_err *err)
{
    if (m->n_layers == 0) return sl_err_set(err, SL_EUNSUP, "model has no layers");
    const int L = m->n_layers;
    if (t->act && t->n_layers != L) return sl_err_set(err, SL_EINVAL, "tape used with models of different depth");
    if (!t->act) {
        t->n_layers = L;
        t->act = calloc((size_t)L + 1, sizeof *t->act);
        t->states = calloc((size_t)L, sizeof *t->states);
        if (!t->act || !t->states) return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    t->B = B;
    t->T = T;
    t->x = x;
    const size_t BT = (size_t)(B * T);
    int rc = SL_OK;
    for (int l = 0; l < L && !rc; l++) {
        const sl_layer *Ly = m->layers[l];
        const int64_t nc = Ly->n_carry, in = Ly->n_in, no = Ly->n_out;
        free(t->act[l + 1]);
        free(t->states[l]);
        t->act[l + 1] = malloc((BT * (size_t)no + 1) * sizeof(double));
        t->states[l] = malloc((BT * (size_t)nc + 1) * sizeof(double));
        double *zero = calloc((size_t)nc + 1, sizeof(double));
        if (!t->act[l + 1] || !t->states[l] || !zero) { free(zero); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        const double *xin = l ? t->act[l] : x;
        for (int64_t b = 0; b < B && !rc; b++) {
            const double *prev = zero;
            for (int64_t s = 0; s < T && !rc; s++) {
                double *next = t->states[l] + (b * T + s) * nc;
                rc = sl_layer_step(Ly, prev, xin + (b * T + s) * in, next, t->act[l + 1] + (b * T + s) * no, err);
                prev = next;
            }
        }
        free(zero);
    }
    return rc;
}

int sl_model_backward_f64(const sl_model *m, sl_tape_f64 *t, const double *dy, const sl_grads *g, double *dx,
                          sl_err *err)
{
    if (t->n_layers != m->n_layers || !t->act) return sl_err_set(err, SL_EINVAL, "backward without a forward pass");
    const size_t BT = (size_t)(t->B * t->T);
    const double *cur = dy;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        const sl_layer *L = m->layers[l];
        double *out = dx;
        if (l > 0) {
            int k = l & 1;
            if (grow_buf((void **)&t->dbuf[k], &t->dcap[k], BT * (size_t)L->n_in, sizeof(double)))
                return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
            out = t->dbuf[k];
        }
        sl_bwd_f64 b = { .B = t->B, .T = t->T, .x = l ? t->act[l] : t->x, .states = t->states[l], .dy = cur,
                         .dx = out, .g = g, .scratch = &t->scratch };
        int rc = sl_layer_backward_f64(L, &b, err);
        if (rc) return rc;
        cur = out;
    }
    return SL_OK;
}
