/*
** The matrix-state block: see matblock.h.
**
** Three views of one layer, held equal by tests/test_matrix.c:
**   forward  float, a batch: projections as GEMMs (sl_linear_f32), one causal
**            conv over the concatenated q|k|v channels, then one
**            kernels/matstate.c scan per (sequence, head), in parallel over
**            those pairs (OpenMP), each with its own workspace;
**   step     double, one token: mb_point computes every per-token quantity
**            (q, k, v, gates, beta, effective key b_t) and the recurrence is
**            applied with plain loops;
**   linsys   the same mb_point, packed as structured operators.
** With f->states (the carry after every step) the forward runs one step at a
** time, which keeps the per-step bookkeeping in one place. With f->device =
** SL_DEVICE_CUDA the scans of all (sequence, head) pairs run on the GPU in one
** call (kernels/cuda/matstate.cu); the rest stays on the CPU.
** Training (backward, backward_f64, params_changed) is matblock_grad.c, for
** the kinds sl_mb_trainable accepts.
*/
#include "matblock.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "matblock_int.h"
#include "matstate.h"
#include "nn.h"
#include "util.h"
#ifdef SL_CUDA
#include "kernels/cuda/cuda.h"
#endif

const sl_mb *sl_mb_of(const sl_layer *L) { return &((const mb_impl *)L->impl)->p; }

/* ------------------------------------------------------------ binding */
int sl_mb_tensor(sl_model *m, int l, const char *what, int ndim, const int64_t *shape, int optional,
                 const float **out, sl_err *err)
{
    char nm[256];
    snprintf(nm, sizeof nm, "model.layers.%d.%s", l, what);
    const sl_tensor *t = sl_tensors_find(m->tensors, nm);
    *out = NULL;
    if (!t && optional) return SL_OK;
    int rc = sl_tensor_expect(t, nm, ndim, shape, err);
    if (rc) return rc;
    sl_model_set_role(m, nm, SL_ROLE_CORE);
    *out = t->data;
    return SL_OK;
}

int64_t sl_mb_intermediate(const json_t *cfg, int64_t hid, sl_err *err, int *rc)
{
    int64_t inter, ratio;
    if ((*rc = sl_config_int(cfg, "intermediate_size", 0, &inter, err))) return 0;
    if ((*rc = sl_config_int(cfg, "hidden_ratio", 4, &ratio, err))) return 0;
    if (inter > 0) return inter;
    inter = (int64_t)((double)hid * (double)ratio * 2.0 / 3.0);
    return 256 * ((inter + 255) / 256);
}

int sl_mb_bind_block(sl_model *m, int l, sl_mb *mb, sl_err *err)
{
    int rc;
    const int64_t hid = mb->hid;
    int64_t sh[1] = { hid };
    char nm[256];
    snprintf(nm, sizeof nm, "model.layers.%d.mlp.gate_proj.weight", l);
    const sl_tensor *gt = sl_tensors_find(m->tensors, nm);
    if (gt && gt->ndim == 2) mb->inter = gt->shape[0];
    if (mb->inter <= 0) return sl_err_set(err, SL_EFORMAT, "tensor %s missing", nm);
    int64_t sg[2] = { mb->inter, hid }, sd[2] = { hid, mb->inter }, so[2] = { hid, mb->H * mb->dv };
    if (mb->kind == SL_MB_MLSTM) so[1] = mb->inner;
    if ((rc = sl_mb_tensor(m, l, "attn_norm.weight", 1, sh, 0, &mb->attn_norm, err)) ||
        (rc = sl_mb_tensor(m, l, "mlp_norm.weight", 1, sh, 0, &mb->mlp_norm, err)) ||
        (rc = sl_mb_tensor(m, l, "mlp.gate_proj.weight", 2, sg, 0, &mb->w_gate, err)) ||
        (rc = sl_mb_tensor(m, l, "mlp.up_proj.weight", 2, sg, 0, &mb->w_up, err)) ||
        (rc = sl_mb_tensor(m, l, "mlp.down_proj.weight", 2, sd, 0, &mb->w_down, err)))
        return rc;
    if (mb->kind != SL_MB_MLSTM && (rc = sl_mb_tensor(m, l, "attn.o_proj.weight", 2, so, 0, &mb->wo, err))) return rc;
    return SL_OK;
}

/* ------------------------------------------------------------ per-token math (double) */
static double act_d(int a, double x)
{
    switch (a) {
    case SL_MB_ACT_SILU: return sl_silu(x);
    case SL_MB_ACT_RELU: return x > 0 ? x : 0;
    case SL_MB_ACT_ELU1: return x > 0 ? x + 1.0 : exp(x);
    default: return x;
    }
}

static float act_f(int a, float x)
{
    switch (a) {
    case SL_MB_ACT_SILU: return sl_siluf(x);
    case SL_MB_ACT_RELU: return x > 0 ? x : 0;
    case SL_MB_ACT_ELU1: return x > 0 ? x + 1.0f : expf(x);
    default: return x;
    }
}

static void norm_d(int kind, int64_t d, double *x)
{
    double s = 0;
    if (kind == SL_MB_NORM_NONE) return;
    for (int64_t i = 0; i < d; i++) s += kind == SL_MB_NORM_L2 ? x[i] * x[i] : x[i];
    double r = kind == SL_MB_NORM_L2 ? 1.0 / sqrt(s + MB_L2_EPS) : kind == SL_MB_NORM_SUM ? 1.0 / s : 1.0 / (s + 1e-4);
    for (int64_t i = 0; i < d; i++) x[i] *= r;
}

static void norm_f(int kind, int64_t d, float *x)
{
    float s = 0;
    if (kind == SL_MB_NORM_NONE) return;
    for (int64_t i = 0; i < d; i++) s += kind == SL_MB_NORM_L2 ? x[i] * x[i] : x[i];
    float r = kind == SL_MB_NORM_L2 ? 1.0f / sqrtf(s + (float)MB_L2_EPS) : kind == SL_MB_NORM_SUM ? 1.0f / s : 1.0f / (s + 1e-4f);
    for (int64_t i = 0; i < d; i++) x[i] *= r;
}

/* Rotary embedding (GPT-NeoX halves) at position pos, on one head vector. */
static void rope_d(const mb_impl *im, double pos, double *x)
{
    const int64_t h = im->p.dk / 2;
    for (int64_t j = 0; j < h; j++) {
        double a = pos * im->inv_freq[j], c = cos(a), s = sin(a), x1 = x[j], x2 = x[h + j];
        x[j] = x1 * c - x2 * s;
        x[h + j] = x2 * c + x1 * s;
    }
}

/* Grouped linear (block diagonal, blocks of blk): y = W x + b, W [G, blk, blk]. */
static void grouped_d(int64_t n, int64_t blk, const float *W, const float *b, const double *x, double *y)
{
    for (int64_t g = 0; g < n / blk; g++)
        for (int64_t o = 0; o < blk; o++) {
            const float *w = W + (g * blk + o) * blk;
            double s = b ? b[g * blk + o] : 0.0;
            for (int64_t i = 0; i < blk; i++) s += (double)w[i] * x[g * blk + i];
            y[g * blk + o] = s;
        }
}

static void grouped_f(int64_t M, int64_t n, int64_t blk, const float *W, const float *b, const float *x, float *y)
{
    for (int64_t r = 0; r < M; r++)
        for (int64_t g = 0; g < n / blk; g++)
            for (int64_t o = 0; o < blk; o++) {
                const float *w = W + (g * blk + o) * blk, *xr = x + r * n + g * blk;
                float s = b ? b[g * blk + o] : 0.0f;
                for (int64_t i = 0; i < blk; i++) s += w[i] * xr[i];
                y[r * n + g * blk + o] = s;
            }
}

/* Everything a step needs at one point, in double. */
typedef struct mb_point {
    double *xn, *q, *k, *v, *g, *beta, *bk, *og, *xc, *z, *mnew, *hist;
    double *buf;
} mb_point;

static void point_free(mb_point *pt) { free(pt->buf); memset(pt, 0, sizeof *pt); }

static int mb_point_compute(const mb_impl *im, const double *carry, const double *u, mb_point *pt, sl_err *err)
{
    const sl_mb *p = &im->p;
    const int64_t H = p->H, dk = p->dk, dv = p->dv, ds = im->ds, hid = p->hid;
    const int64_t nhist = p->conv_k > 1 ? (p->conv_k - 1) * im->cc : 0;
    const int64_t n = hid + 2 * H * dk + H * ds + H * dk + H + H * dk + H * dv + 3 * (p->inner + 1) + H + nhist +
                      im->cc + 8 * H + 2 * p->inner + 16;
    memset(pt, 0, sizeof *pt);
    pt->buf = calloc((size_t)n, sizeof(double));
    if (!pt->buf) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *w = pt->buf;
    pt->xn = w; w += hid;
    pt->q = w; w += H * dk;
    pt->k = w; w += H * dk;
    pt->v = w; w += H * ds;
    pt->g = w; w += H * dk;
    pt->beta = w; w += H;
    pt->bk = w; w += H * dk;
    pt->og = w; w += H * dv;
    pt->xc = w; w += p->inner + 1;
    pt->z = w; w += p->inner + 1;
    pt->mnew = w; w += H;
    pt->hist = w; w += nhist;
    double *tmp = w;   /* cc + 8H + 2 inner */
    sl_rmsnorm_f64(hid, u, p->attn_norm, p->eps, pt->xn);
    if (p->kind == SL_MB_MLSTM) {
        const int64_t I = p->inner;
        double *up = tmp;   /* [x_m | z], 2I */
        sl_linear_f64(hid, 2 * I, pt->xn, p->up_w, p->up_b, up);
        double *xm = up, *xconv = pt->xc;
        sl_causal_conv1d_step_f64(I, p->conv_k, carry + im->off_conv, xm, p->conv_w[0], p->conv_b[0], xconv,
                                  p->conv_k > 1 ? pt->hist : NULL);
        for (int64_t i = 0; i < I; i++) { xconv[i] = sl_silu(xconv[i]); pt->z[i] = up[I + i]; }
        double *gin = malloc((size_t)(3 * I + 2 * H) * sizeof *gin);
        if (!gin) { point_free(pt); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        grouped_d(I, p->blk, p->gq_w, p->gq_b, xconv, gin);
        grouped_d(I, p->blk, p->gk_w, p->gk_b, xconv, gin + I);
        grouped_d(I, p->blk, p->gv_w, p->gv_b, xm, gin + 2 * I);
        double *ig = gin + 3 * I, *fg = ig + H;
        sl_linear_f64(3 * I, H, gin, p->ig_w, p->ig_b, ig);
        sl_linear_f64(3 * I, H, gin, p->fg_w, p->fg_b, fg);
        for (int64_t h = 0; h < H; h++) {
            const double mo = carry[im->off_m + h], lf = sl_logsigmoid(fg[h]);
            const double mn = fmax(lf + mo, ig[h]), la = lf + mo - mn, ia = exp(ig[h] - mn);
            pt->mnew[h] = mn;
            for (int64_t i = 0; i < dk; i++) {
                pt->q[h * dk + i] = gin[h * dk + i];
                pt->k[h * dk + i] = gin[I + h * dk + i];
                pt->bk[h * dk + i] = ia * gin[I + h * dk + i];
                pt->g[h * dk + i] = la;
            }
            for (int64_t j = 0; j < dv; j++) pt->v[h * ds + j] = gin[2 * I + h * dv + j];
            pt->v[h * ds + dv] = 1.0;
        }
        free(gin);
        return SL_OK;
    }
    /* q, k, v projections, then the conv stage. */
    double *x3 = tmp;   /* cc = cq + ck + cv */
    sl_linear_f64(hid, im->cq, pt->xn, p->wq, NULL, x3);
    sl_linear_f64(hid, im->ck, pt->xn, p->wk, NULL, x3 + im->cq);
    sl_linear_f64(hid, im->cv, pt->xn, p->wv, NULL, x3 + im->cq + im->ck);
    if (p->conv_k > 0) {
        double *y3 = malloc((size_t)im->cc * sizeof *y3);
        if (!y3) { point_free(pt); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        sl_causal_conv1d_step_f64(im->cc, p->conv_k, carry + im->off_conv, x3, im->conv_w, im->conv_b, y3,
                                  p->conv_k > 1 ? pt->hist : NULL);
        memcpy(x3, y3, (size_t)im->cc * sizeof *x3);
        free(y3);
    }
    for (int64_t i = 0; i < H * dk; i++) {
        pt->q[i] = act_d(p->fmap, act_d(p->act[0], x3[i]));
        pt->k[i] = act_d(p->fmap, act_d(p->act[1], x3[im->cq + i]));
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t j = 0; j < dv; j++) pt->v[h * ds + j] = act_d(p->act[2], x3[im->cq + im->ck + h * dv + j]);
    for (int64_t h = 0; h < H; h++) {
        norm_d(p->q_norm, dk, pt->q + h * dk);
        norm_d(p->k_norm, dk, pt->k + h * dk);
        if (p->rope) {
            rope_d(im, carry[im->off_pos], pt->q + h * dk);
            rope_d(im, carry[im->off_pos], pt->k + h * dk);
        }
    }
    /* Gates and beta. */
    double *a = tmp + im->cc;   /* H (+ rank) */
    if (p->kind == SL_MB_GDN) sl_linear_f64(hid, H, pt->xn, p->wa, NULL, a);
    double *r = NULL;
    if (p->kind == SL_MB_GLA) {
        r = malloc((size_t)(p->gk_rank + H * dk) * sizeof *r);
        if (!r) { point_free(pt); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        sl_linear_f64(hid, p->gk_rank, pt->xn, p->gk0, NULL, r);
        sl_linear_f64(p->gk_rank, H * dk, r, p->gk1, p->gk1_b, r + p->gk_rank);
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < dk; i++) {
            double gv = 0;
            if (p->kind == SL_MB_RETNET) gv = im->log_gamma[h];
            else if (p->kind == SL_MB_GDN) gv = -exp((double)p->A_log[h]) * sl_softplus(a[h] + (double)p->dt_bias[h]);
            else if (p->kind == SL_MB_GLA) {
                gv = sl_logsigmoid(r[p->gk_rank + h * dk + i]) / p->gk_normalizer;
                if (p->has_clamp && gv < p->clamp_min) gv = p->clamp_min;
            }
            pt->g[h * dk + i] = gv;
        }
    free(r);
    if (p->beta_mode == SL_MB_BETA_SIGMOID) {
        sl_linear_f64(hid, H, pt->xn, p->wb, NULL, pt->beta);
        for (int64_t h = 0; h < H; h++) pt->beta[h] = sl_sigmoid(pt->beta[h]);
    } else {
        for (int64_t h = 0; h < H; h++) pt->beta[h] = 1.0;
    }
    if (p->neg_eig)
        for (int64_t h = 0; h < H; h++) pt->beta[h] *= 2.0;
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < dk; i++)
            pt->bk[h * dk + i] = (p->beta_mode ? pt->beta[h] : 1.0) * pt->k[h * dk + i];
    if (p->wg) sl_linear_f64(hid, H * dv, pt->xn, p->wg, NULL, pt->og);
    return SL_OK;
}

static int is_delta(const sl_mb *p) { return p->kind == SL_MB_DELTA || p->kind == SL_MB_GDN; }

/* Output norm / gate of one head's o (dv), in double. */
static void onorm_d(const sl_mb *p, int64_t h, const double *og, double *o)
{
    const int64_t dv = p->dv;
    if (p->onorm == SL_MB_ONORM_RMS || p->onorm == SL_MB_ONORM_RMS_GATED) {
        sl_rmsnorm_f64(dv, o, p->onorm_w, p->eps, o);
        if (p->onorm == SL_MB_ONORM_RMS_GATED)
            for (int64_t j = 0; j < dv; j++) o[j] *= sl_silu(og[h * dv + j]);
    } else if (p->onorm == SL_MB_ONORM_GROUP) {
        double mu = 0, var = 0;
        for (int64_t j = 0; j < dv; j++) mu += o[j];
        mu /= (double)dv;
        for (int64_t j = 0; j < dv; j++) var += (o[j] - mu) * (o[j] - mu);
        double r = 1.0 / sqrt(var / (double)dv + p->eps);
        for (int64_t j = 0; j < dv; j++) o[j] = (o[j] - mu) * r * (p->onorm_w ? (double)p->onorm_w[h * dv + j] : 1.0);
    }
}

/* The block's MLP half: y = h + down(silu(gate(hn)) * up(hn)), hn = mlp_norm(h). */
static int mlp_d(const sl_mb *p, const double *h, double *y, sl_err *err)
{
    double *hn = malloc((size_t)(p->hid + 2 * p->inter) * sizeof *hn);
    if (!hn) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *ga = hn + p->hid, *up = ga + p->inter;
    sl_rmsnorm_f64(p->hid, h, p->mlp_norm, p->eps, hn);
    sl_linear_f64(p->hid, p->inter, hn, p->w_gate, NULL, ga);
    sl_linear_f64(p->hid, p->inter, hn, p->w_up, NULL, up);
    for (int64_t j = 0; j < p->inter; j++) ga[j] = sl_silu(ga[j]) * up[j];
    sl_linear_f64(p->inter, p->hid, ga, p->w_down, NULL, y);
    for (int64_t j = 0; j < p->hid; j++) y[j] += h[j];
    free(hn);
    return SL_OK;
}

static int mb_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const mb_impl *im = L->impl;
    const sl_mb *p = &im->p;
    const int64_t H = p->H, dk = p->dk, dv = p->dv, ds = im->ds, hid = p->hid;
    mb_point pt;
    int rc = mb_point_compute(im, carry, u, &pt, err);
    if (rc) return rc;
    double *S = malloc((size_t)(im->nS + H * ds + ds + H * dv + p->inner + 2 * hid + 1) * sizeof *S);
    if (!S) { point_free(&pt); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    double *o = S + im->nS, *tmp = o + H * ds, *oc = tmp + ds, *h = oc + (p->kind == SL_MB_MLSTM ? p->inner : H * dv);
    memcpy(S, carry, (size_t)im->nS * sizeof *S);
    const double scale = 1.0 / sqrt((double)dk);
    for (int64_t hh = 0; hh < H; hh++) {
        double *Sh = S + hh * dk * ds;
        const double *q = pt.q + hh * dk, *k = pt.k + hh * dk, *v = pt.v + hh * ds, *g = pt.g + hh * dk,
                     *bk = pt.bk + hh * dk;
        if (is_delta(p)) {
            const double a = exp(g[0]);
            for (int64_t j = 0; j < ds; j++) {
                double ks = 0;
                for (int64_t i = 0; i < dk; i++) ks += k[i] * Sh[i * ds + j];
                tmp[j] = v[j] - a * ks;
            }
            for (int64_t i = 0; i < dk; i++)
                for (int64_t j = 0; j < ds; j++) Sh[i * ds + j] = a * Sh[i * ds + j] + bk[i] * tmp[j];
        } else {
            for (int64_t i = 0; i < dk; i++) {
                const double a = exp(g[i]);
                for (int64_t j = 0; j < ds; j++) Sh[i * ds + j] = a * Sh[i * ds + j] + bk[i] * v[j];
            }
        }
        for (int64_t j = 0; j < ds; j++) {
            double s = 0;
            for (int64_t i = 0; i < dk; i++) s += q[i] * Sh[i * ds + j];
            o[hh * ds + j] = scale * s;
        }
    }
    /* Output stage. */
    if (p->kind == SL_MB_MLSTM) {
        const int64_t I = p->inner;
        for (int64_t hh = 0; hh < H; hh++) {
            double *oh = o + hh * ds;
            const double den = fmax(fabs(oh[dv]), exp(-pt.mnew[hh])) + MB_MLSTM_EPS;
            for (int64_t j = 0; j < dv; j++) oh[j] /= den;
            onorm_d(p, hh, NULL, oh);
            for (int64_t j = 0; j < dv; j++) {
                const int64_t c = hh * dv + j;
                oc[c] = (oh[j] + (double)p->skip[c] * pt.xc[c]) * sl_silu(pt.z[c]);
            }
        }
        sl_linear_f64(I, hid, oc, p->down_w, p->down_b, h);
    } else {
        for (int64_t hh = 0; hh < H; hh++) {
            onorm_d(p, hh, pt.og, o + hh * ds);
            memcpy(oc + hh * dv, o + hh * ds, (size_t)dv * sizeof *oc);
        }
        sl_linear_f64(H * dv, hid, oc, p->wo, NULL, h);
    }
    for (int64_t j = 0; j < hid; j++) h[j] += u[j];
    if (y && (rc = mlp_d(p, h, y, err))) goto done;
    if (next) {
        memcpy(next, S, (size_t)im->nS * sizeof *next);
        if (p->conv_k > 1) memcpy(next + im->off_conv, pt.hist, (size_t)((p->conv_k - 1) * im->cc) * sizeof *next);
        if (p->rope) next[im->off_pos] = carry[im->off_pos] + 1.0;
        if (p->kind == SL_MB_MLSTM) memcpy(next + im->off_m, pt.mnew, (size_t)H * sizeof *next);
    }
done:
    free(S);
    point_free(&pt);
    return rc;
}

static int mb_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                     sl_err *err)
{
    const mb_impl *im = L->impl;
    const sl_mb *p = &im->p;
    const int64_t H = p->H, dk = p->dk, ds = im->ds, nu = H * ds;
    mb_point pt;
    int rc = mb_point_compute(im, carry, u, &pt, err);
    if (rc) return rc;
    ls->n_state = im->nS;
    ls->n_in = nu;
    ls->n_out = nu;
    ls->exact = 1;
    ls->u_name = "v";
    const double scale = 1.0 / sqrt((double)dk);
    if ((what & SL_LS_A) && !(rc = sl_op_dlr(&ls->A, H, dk, ds, is_delta(p)) ? SL_ENOMEM : 0)) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < dk; i++) ls->A.d[h * dk + i] = exp(pt.g[h * dk + i]);
            if (is_delta(p)) {
                ls->A.c[h] = exp(pt.g[h * dk]) * pt.beta[h];
                memcpy(ls->A.w + h * dk, pt.k + h * dk, (size_t)dk * sizeof(double));
            }
        }
    }
    if (!rc && (what & SL_LS_B) && !(rc = sl_op_blocks(&ls->B, H, dk, 1, ds, 0) ? SL_ENOMEM : 0))
        memcpy(ls->B.a, pt.bk, (size_t)(H * dk) * sizeof(double));
    if (!rc && (what & SL_LS_C) && !(rc = sl_op_blocks(&ls->C, H, 1, dk, ds, 0) ? SL_ENOMEM : 0))
        for (int64_t i = 0; i < H * dk; i++) ls->C.a[i] = scale * pt.q[i];
    if (!rc && (what & SL_LS_D)) sl_op_zero(&ls->D, nu, nu);
    if (!rc && !(ls->u = malloc((size_t)nu * sizeof *ls->u))) rc = SL_ENOMEM;
    if (!rc) memcpy(ls->u, pt.v, (size_t)nu * sizeof *ls->u);
    point_free(&pt);
    return rc ? sl_err_set(err, rc, "out of memory") : SL_OK;
}

/* ------------------------------------------------------------ forward (float) */
static void mb_free(sl_layer *L)
{
    mb_impl *im = L->impl;
    if (!im) return;
    free(im->conv_w);
    free(im->conv_b);
    free(im->log_gamma);
    free(im->inv_freq);
    free(im);
}

/* Workspace of a batch forward (floats, one allocation). */
typedef struct mb_fbuf {
    float *xn, *Q, *K, *V, *G, *Bt, *OG, *XC, *Z, *M, *O, *O2, *att, *hcur, *X3, *hist;
    float *all;
} mb_fbuf;

static void rows_linear(int64_t M, int64_t in, int64_t out, const float *x, const float *W, const float *b, float *y)
{
    sl_linear_f32(M, in, out, x, W, b, y);
}

/* The causal conv over the cc channels of X3 [B, T, cc], history taken from
** and returned to the carries. */
static void conv_batch(const mb_impl *im, int64_t B, int64_t T, float *carry, int64_t nc, float *X3, float *Y3,
                       float *hist, const float *w, const float *bias)
{
    const int64_t kk = im->p.conv_k, nh = (kk - 1) * im->cc;
    for (int64_t b = 0; b < B; b++) memcpy(hist + b * nh, carry + b * nc + im->off_conv, (size_t)nh * sizeof *hist);
    sl_causal_conv1d_f32(B, T, im->cc, kk, X3, w, bias, nh ? hist : NULL, Y3);
    for (int64_t b = 0; b < B; b++) memcpy(carry + b * nc + im->off_conv, hist + b * nh, (size_t)nh * sizeof *hist);
}

static int mb_forward_batch(const sl_layer *L, const sl_fwd *f, float *carry, float *heads, sl_err *err)
{
    const mb_impl *im = L->impl;
    const sl_mb *p = &im->p;
    const int64_t B = f->B, T = f->T, BT = B * T, H = p->H, dk = p->dk, dv = p->dv, ds = im->ds, hid = p->hid;
    const int64_t nc = L->n_carry, I = p->inner;
    const int64_t wq = H * dk, wv = H * ds, gd = p->kind == SL_MB_GLA ? dk : 1;
    const int64_t wx = SL_MAX(SL_MAX(p->kind == SL_MB_MLSTM ? 2 * I : im->cc, p->inter * 2), p->gk_rank);
    const int64_t nh = p->conv_k > 1 ? (p->conv_k - 1) * im->cc : 0;
    size_t sizes[16] = { (size_t)(BT * hid), (size_t)(BT * wq), (size_t)(BT * wq), (size_t)(BT * wv),
                         (size_t)(BT * H * gd), (size_t)(BT * H), (size_t)(BT * H * dv), (size_t)(BT * (I + 1)),
                         (size_t)(BT * (I + 1)), (size_t)(BT * H), (size_t)(BT * wv), (size_t)(BT * SL_MAX(H * dv, I)),
                         (size_t)(BT * hid), (size_t)(BT * hid), (size_t)(BT * wx * 2), (size_t)(B * nh + 1) };
    size_t total = 0;
    for (int i = 0; i < 16; i++) total += sizes[i];
    mb_fbuf fb;
    fb.all = malloc(total * sizeof(float));
    if (!fb.all) return sl_err_set(err, SL_ENOMEM, "out of memory for the block workspace");
    float **slots[16] = { &fb.xn, &fb.Q, &fb.K, &fb.V, &fb.G, &fb.Bt, &fb.OG, &fb.XC, &fb.Z, &fb.M, &fb.O, &fb.O2,
                          &fb.att, &fb.hcur, &fb.X3, &fb.hist };
    float *w = fb.all;
    for (int i = 0; i < 16; i++) { *slots[i] = w; w += sizes[i]; }
    sl_rmsnorm_f32(BT, hid, f->x, p->attn_norm, (float)p->eps, fb.xn);
    int use_beta = 0;
    if (p->kind == SL_MB_MLSTM) {
        float *U = fb.X3, *XM = fb.X3 + BT * 2 * I;   /* up projection, then x_m contiguous */
        rows_linear(BT, hid, 2 * I, fb.xn, p->up_w, p->up_b, U);
        for (int64_t r = 0; r < BT; r++) {
            memcpy(XM + r * I, U + r * 2 * I, (size_t)I * sizeof(float));
            memcpy(fb.Z + r * I, U + r * 2 * I + I, (size_t)I * sizeof(float));
        }
        conv_batch(im, B, T, carry, nc, XM, fb.XC, fb.hist, p->conv_w[0], p->conv_b[0]);
        for (int64_t i = 0; i < BT * I; i++) fb.XC[i] = sl_siluf(fb.XC[i]);
        /* q, k -> Q, K; v -> O (temporary); the gates from [q, k, v] row by row. */
        grouped_f(BT, I, p->blk, p->gq_w, p->gq_b, fb.XC, fb.Q);
        grouped_f(BT, I, p->blk, p->gk_w, p->gk_b, fb.XC, fb.K);
        grouped_f(BT, I, p->blk, p->gv_w, p->gv_b, XM, fb.O);
        float *cat = malloc((size_t)(3 * I + 2 * H) * sizeof *cat);
        if (!cat) { free(fb.all); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        for (int64_t b = 0; b < B; b++) {
            float *mrow = carry + b * nc + im->off_m;
            for (int64_t t = 0; t < T; t++) {
                const int64_t r = b * T + t;
                memcpy(cat, fb.Q + r * I, (size_t)I * sizeof *cat);
                memcpy(cat + I, fb.K + r * I, (size_t)I * sizeof *cat);
                memcpy(cat + 2 * I, fb.O + r * I, (size_t)I * sizeof *cat);
                float *ig = cat + 3 * I, *fg = ig + H;
                for (int64_t h = 0; h < H; h++) {
                    double si = p->ig_b[h], sf = p->fg_b[h];
                    const float *wi = p->ig_w + h * 3 * I, *wf = p->fg_w + h * 3 * I;
                    for (int64_t j = 0; j < 3 * I; j++) { si += (double)wi[j] * cat[j]; sf += (double)wf[j] * cat[j]; }
                    ig[h] = (float)si;
                    fg[h] = (float)sf;
                }
                for (int64_t h = 0; h < H; h++) {
                    const float mo = mrow[h], lf = sl_logsigmoidf(fg[h]);
                    const float mn = fmaxf(lf + mo, ig[h]), ia = expf(ig[h] - mn);
                    mrow[h] = mn;
                    fb.M[r * H + h] = mn;
                    fb.G[r * H + h] = lf + mo - mn;
                    for (int64_t i = 0; i < dk; i++) fb.K[r * wq + h * dk + i] *= ia;
                    for (int64_t j = 0; j < dv; j++) fb.V[r * wv + h * ds + j] = fb.O[r * I + h * dv + j];
                    fb.V[r * wv + h * ds + dv] = 1.0f;
                }
            }
        }
        free(cat);
    } else {
        float *X3 = fb.X3, *Y3 = fb.X3 + BT * im->cc;
        rows_linear(BT, hid, im->cq, fb.xn, p->wq, NULL, fb.Q);
        rows_linear(BT, hid, im->ck, fb.xn, p->wk, NULL, fb.K);
        rows_linear(BT, hid, im->cv, fb.xn, p->wv, NULL, fb.O);
        if (p->conv_k > 0) {
            for (int64_t r = 0; r < BT; r++) {
                memcpy(X3 + r * im->cc, fb.Q + r * im->cq, (size_t)im->cq * sizeof(float));
                memcpy(X3 + r * im->cc + im->cq, fb.K + r * im->ck, (size_t)im->ck * sizeof(float));
                memcpy(X3 + r * im->cc + im->cq + im->ck, fb.O + r * im->cv, (size_t)im->cv * sizeof(float));
            }
            conv_batch(im, B, T, carry, nc, X3, Y3, fb.hist, im->conv_w, im->conv_b);
            for (int64_t r = 0; r < BT; r++) {
                memcpy(fb.Q + r * im->cq, Y3 + r * im->cc, (size_t)im->cq * sizeof(float));
                memcpy(fb.K + r * im->ck, Y3 + r * im->cc + im->cq, (size_t)im->ck * sizeof(float));
                memcpy(fb.O + r * im->cv, Y3 + r * im->cc + im->cq + im->ck, (size_t)im->cv * sizeof(float));
            }
        }
#pragma omp parallel for if (BT > 256) schedule(static)
        for (int64_t i = 0; i < BT * wq; i++) {
            fb.Q[i] = act_f(p->fmap, act_f(p->act[0], fb.Q[i]));
            fb.K[i] = act_f(p->fmap, act_f(p->act[1], fb.K[i]));
        }
#pragma omp parallel for if (BT > 256) schedule(static)
        for (int64_t i = 0; i < BT * H * dv; i++) fb.V[i] = act_f(p->act[2], fb.O[i]);
#pragma omp parallel for if (BT > 256) schedule(static)
        for (int64_t r = 0; r < BT; r++)
            for (int64_t h = 0; h < H; h++) {
                norm_f(p->q_norm, dk, fb.Q + r * wq + h * dk);
                norm_f(p->k_norm, dk, fb.K + r * wq + h * dk);
            }
        if (p->rope) {
            const int64_t hf = dk / 2;
            for (int64_t b = 0; b < B; b++) {
                const double p0 = carry[b * nc + im->off_pos];
#pragma omp parallel for if (T > 256) schedule(static)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t j = 0; j < hf; j++) {
                        const double a = (p0 + (double)t) * im->inv_freq[j];
                        const float c = (float)cos(a), s = (float)sin(a);
                        for (int64_t h = 0; h < H; h++) {
                            float *xs[2] = { fb.Q + (b * T + t) * wq + h * dk, fb.K + (b * T + t) * wq + h * dk };
                            for (int e = 0; e < 2; e++) {
                                const float x1 = xs[e][j], x2 = xs[e][hf + j];
                                xs[e][j] = x1 * c - x2 * s;
                                xs[e][hf + j] = x2 * c + x1 * s;
                            }
                        }
                    }
                carry[b * nc + im->off_pos] = (float)(p0 + (double)T);
            }
        }
        if (p->kind == SL_MB_RETNET) {
            for (int64_t r = 0; r < BT; r++)
                for (int64_t h = 0; h < H; h++) fb.G[r * H + h] = (float)im->log_gamma[h];
        } else if (p->kind == SL_MB_GDN) {
            rows_linear(BT, hid, H, fb.xn, p->wa, NULL, fb.G);
#pragma omp parallel for if (BT > 256) schedule(static)
            for (int64_t r = 0; r < BT; r++)
                for (int64_t h = 0; h < H; h++)
                    fb.G[r * H + h] = -expf(p->A_log[h]) * sl_softplusf(fb.G[r * H + h] + p->dt_bias[h]);
        } else if (p->kind == SL_MB_GLA) {
            float *R = fb.X3;   /* [BT, rank] */
            rows_linear(BT, hid, p->gk_rank, fb.xn, p->gk0, NULL, R);
            rows_linear(BT, p->gk_rank, H * dk, R, p->gk1, p->gk1_b, fb.G);
            const float nrm = (float)p->gk_normalizer, cmin = (float)p->clamp_min;
#pragma omp parallel for if (BT > 256) schedule(static)
            for (int64_t i = 0; i < BT * H * dk; i++) {
                float gv = sl_logsigmoidf(fb.G[i]) / nrm;
                fb.G[i] = (p->has_clamp && gv < cmin) ? cmin : gv;
            }
        }
        if (p->beta_mode != SL_MB_BETA_NONE) {
            use_beta = 1;
            if (p->beta_mode == SL_MB_BETA_SIGMOID) {
                rows_linear(BT, hid, H, fb.xn, p->wb, NULL, fb.Bt);
                for (int64_t i = 0; i < BT * H; i++) fb.Bt[i] = sl_sigmoidf(fb.Bt[i]);
            } else {
                for (int64_t i = 0; i < BT * H; i++) fb.Bt[i] = 1.0f;
            }
            if (p->neg_eig)
                for (int64_t i = 0; i < BT * H; i++) fb.Bt[i] *= 2.0f;
        }
        if (p->wg) rows_linear(BT, hid, H * dv, fb.xn, p->wg, NULL, fb.OG);
    }
    /* The scans: one per (sequence, head). */
    const int has_g = p->kind != SL_MB_LINEAR_ATTN && p->kind != SL_MB_DELTA;
#ifdef SL_CUDA
    /* On the GPU: every (sequence, head) in one call of the recurrent scan
    ** (kernels/cuda/matstate.cu); the projections and the output stage stay
    ** on the CPU. */
    if (f->device == SL_DEVICE_CUDA) {
        if (f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT) {
            free(fb.all);
            return sl_err_set(err, SL_EUNSUP, "%s layers on CUDA run the recurrent scan only (auto, recurrent)",
                              L->kind);
        }
        sl_ms_batch mbat = { .nb = B, .nh = H, .T = T, .dk = dk, .dv = ds, .q = fb.Q, .k = fb.K, .v = fb.V,
                             .ldq = wq, .ldk = wq, .ldv = wv, .scale = 1.0f / sqrtf((float)dk), .o = fb.O, .ldo = wv,
                             .S = carry, .ldS = nc };
        if (has_g) { mbat.g = fb.G; mbat.ldg = H * gd; mbat.gdim = gd; }
        if (use_beta) { mbat.beta = fb.Bt; mbat.ldb = H; }
        int rc = sl_cuda_matstate_scan(&mbat, err);
        if (rc) { free(fb.all); return rc; }
        goto scanned;
    }
#endif
    int algo = f->algo == SL_ALGO_AUTO ? (T >= 128 ? SL_ALGO_CHUNKED : SL_ALGO_RECURRENT) : f->algo;
    /* Default chunk lengths measured on the bench shapes (d_k = d_v = 64): the
    ** delta rule's extra C x C work favours 16, the gated forms 32. */
    const int64_t C = f->chunk > 0 ? f->chunk : (use_beta ? 16 : 32);
    const int nt = sl_get_threads();
    const int64_t ws = algo == SL_ALGO_CHUNKED ? sl_ms_workspace(C, dk, ds) : dk + ds;
    float *work = malloc((size_t)(nt * ws) * sizeof *work);
    if (!work) { free(fb.all); return sl_err_set(err, SL_ENOMEM, "out of memory for the scan workspace"); }
#pragma omp parallel for num_threads(nt) schedule(dynamic) if (B * H > 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H, h = bh % H;
        float *wk = work + (int64_t)omp_get_thread_num() * ws;
        sl_ms_seq s = { .T = T, .dk = dk, .dv = ds, .q = fb.Q + b * T * wq + h * dk, .k = fb.K + b * T * wq + h * dk,
                        .v = fb.V + b * T * wv + h * ds, .ldq = wq, .ldk = wq, .ldv = wv,
                        .scale = 1.0f / sqrtf((float)dk), .o = fb.O + b * T * wv + h * ds, .ldo = wv,
                        .S = carry + b * nc + h * dk * ds };
        if (has_g) { s.g = fb.G + (b * T * H + h) * gd; s.ldg = H * gd; s.gdim = gd; }
        if (use_beta) { s.beta = fb.Bt + b * T * H + h; s.ldb = H; }
        if (algo == SL_ALGO_CHUNKED) sl_ms_chunked(&s, C, wk);
        else if (algo == SL_ALGO_REFERENCE) sl_ms_reference(&s);
        else sl_ms_recurrent(&s, wk);
    }
    free(work);
#ifdef SL_CUDA
scanned:
#endif
    if (heads) memcpy(heads, fb.O, (size_t)(BT * wv) * sizeof *heads);
    /* Output stage -> att [BT, hid]. */
    if (p->kind == SL_MB_MLSTM) {
#pragma omp parallel for if (BT > 256) schedule(static)
        for (int64_t r = 0; r < BT; r++)
            for (int64_t h = 0; h < H; h++) {
                float *oh = fb.O + r * wv + h * ds, *oc = fb.O2 + r * I + h * dv;
                const float den = fmaxf(fabsf(oh[dv]), expf(-fb.M[r * H + h])) + (float)MB_MLSTM_EPS;
                float mu = 0, var = 0;
                for (int64_t j = 0; j < dv; j++) { oh[j] /= den; mu += oh[j]; }
                mu /= (float)dv;
                for (int64_t j = 0; j < dv; j++) var += (oh[j] - mu) * (oh[j] - mu);
                const float rs = 1.0f / sqrtf(var / (float)dv + (float)p->eps);
                for (int64_t j = 0; j < dv; j++) {
                    const int64_t c = h * dv + j;
                    float v = (oh[j] - mu) * rs * (p->onorm_w ? p->onorm_w[c] : 1.0f);
                    oc[j] = (v + p->skip[c] * fb.XC[r * I + c]) * sl_siluf(fb.Z[r * I + c]);
                }
            }
        rows_linear(BT, I, hid, fb.O2, p->down_w, p->down_b, fb.att);
    } else {
#pragma omp parallel for if (BT > 256) schedule(static)
        for (int64_t r = 0; r < BT; r++)
            for (int64_t h = 0; h < H; h++) {
                float *oh = fb.O + r * wv + h * ds, *oc = fb.O2 + r * H * dv + h * dv;
                if (p->onorm == SL_MB_ONORM_RMS || p->onorm == SL_MB_ONORM_RMS_GATED) {
                    sl_rmsnorm_f32(1, dv, oh, p->onorm_w, (float)p->eps, oc);
                    if (p->onorm == SL_MB_ONORM_RMS_GATED)
                        for (int64_t j = 0; j < dv; j++) oc[j] *= sl_siluf(fb.OG[r * H * dv + h * dv + j]);
                } else {
                    memcpy(oc, oh, (size_t)dv * sizeof *oc);
                }
            }
        rows_linear(BT, H * dv, hid, fb.O2, p->wo, NULL, fb.att);
    }
    /* Residual and MLP. */
#pragma omp parallel for if (BT > 256) schedule(static)
    for (int64_t i = 0; i < BT * hid; i++) fb.hcur[i] = f->x[i] + fb.att[i];
    float *hn = fb.xn, *GA = fb.X3, *UP = fb.X3 + BT * p->inter;
    sl_rmsnorm_f32(BT, hid, fb.hcur, p->mlp_norm, (float)p->eps, hn);
    rows_linear(BT, hid, p->inter, hn, p->w_gate, NULL, GA);
    rows_linear(BT, hid, p->inter, hn, p->w_up, NULL, UP);
#pragma omp parallel for if (BT > 256) schedule(static)
    for (int64_t i = 0; i < BT * p->inter; i++) GA[i] = sl_siluf(GA[i]) * UP[i];
    rows_linear(BT, p->inter, hid, GA, p->w_down, NULL, f->y);
    for (int64_t i = 0; i < BT * hid; i++) f->y[i] += fb.hcur[i];
    free(fb.all);
    return SL_OK;
}

static int mb_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    if (f->algo == SL_ALGO_CONV) return sl_err_set(err, SL_EUNSUP, "%s layers have no convolution algorithm", L->kind);
    const int64_t nc = L->n_carry, B = f->B, T = f->T, hid = L->n_in;
    if (B == 0 || T == 0) return SL_OK;
    float *own = f->carry ? NULL : calloc((size_t)(B * nc), sizeof(float));
    if (!f->carry && !own) return sl_err_set(err, SL_ENOMEM, "out of memory");
    float *carry = f->carry ? f->carry : own;
    int rc = SL_OK;
    if (!f->states) {
        rc = mb_forward_batch(L, f, carry, NULL, err);
    } else {
        /* Every step's carry wanted: one step at a time. */
        float *x1 = malloc((size_t)(B * hid) * sizeof *x1), *y1 = malloc((size_t)(B * hid) * sizeof *y1);
        if (!x1 || !y1) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        for (int64_t t = 0; t < T && !rc; t++) {
            for (int64_t b = 0; b < B; b++) memcpy(x1 + b * hid, f->x + (b * T + t) * hid, (size_t)hid * sizeof *x1);
            sl_fwd f1 = *f;
            f1.T = 1;
            f1.x = x1;
            f1.y = y1;
            f1.states = NULL;
            f1.algo = f->algo == SL_ALGO_REFERENCE ? SL_ALGO_REFERENCE : SL_ALGO_RECURRENT;
            rc = mb_forward_batch(L, &f1, carry, NULL, err);
            for (int64_t b = 0; b < B && !rc; b++) {
                memcpy(f->y + (b * T + t) * hid, y1 + b * hid, (size_t)hid * sizeof *y1);
                memcpy(f->states + (b * T + t) * nc, carry + b * nc, (size_t)nc * sizeof *carry);
            }
        }
        free(x1);
        free(y1);
    }
    free(own);
    return rc;
}

int sl_mb_attention(const sl_layer *L, int64_t T, const float *x, float *o, int algo, int64_t chunk, sl_err *err)
{
    float *carry = calloc((size_t)L->n_carry, sizeof(float)), *y = malloc((size_t)(T * L->n_out + 1) * sizeof(float));
    if (!carry || !y) { free(carry); free(y); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    sl_fwd f = { .B = 1, .T = T, .x = x, .y = y, .carry = carry, .algo = algo, .chunk = chunk };
    int rc = mb_forward_batch(L, &f, carry, o, err);
    free(carry);
    free(y);
    return rc;
}

/* ------------------------------------------------------------ building */
int sl_mb_build_layers(sl_model *m, const char *kind, const sl_mb *mbs, int n_layers, char *summary, sl_err *err)
{
    m->summary = summary;
    if (!summary) return sl_err_set(err, SL_ENOMEM, "out of memory");
    m->layers = calloc((size_t)(n_layers ? n_layers : 1), sizeof *m->layers);
    if (!m->layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    static const sl_layer_ops ops = { .forward = mb_forward, .step = mb_step, .linsys = mb_linsys, .free = mb_free };
    /* The families with gradients (matblock_grad.c) add the training ops. */
    static const sl_layer_ops ops_train = { .forward = mb_forward, .step = mb_step, .linsys = mb_linsys,
                                            .free = mb_free, .backward = sl_mb_backward,
                                            .backward_f64 = sl_mb_backward_f64,
                                            .params_changed = sl_mb_params_changed };
    for (int l = 0; l < n_layers; l++) {
        const sl_mb *p = &mbs[l];
        sl_layer *L = calloc(1, sizeof *L);
        mb_impl *im = calloc(1, sizeof *im);
        if (!L || !im) { free(L); free(im); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        L->impl = im;
        L->ops = sl_mb_trainable(p) ? &ops_train : &ops;
        m->layers[m->n_layers++] = L;
        im->p = *p;
        im->ds = p->kind == SL_MB_MLSTM ? p->dv + 1 : p->dv;
        im->nS = p->H * p->dk * im->ds;
        if (p->kind == SL_MB_MLSTM) {
            im->cc = p->inner;
        } else {
            im->cq = p->H * p->dk;
            im->ck = p->H * p->dk;
            im->cv = p->H * p->dv;
            im->cc = im->cq + im->ck + im->cv;
        }
        int64_t off = im->nS;
        im->off_conv = off;
        if (p->conv_k > 1) off += (p->conv_k - 1) * im->cc;
        im->off_pos = off;
        if (p->rope) off += 1;
        im->off_m = off;
        if (p->kind == SL_MB_MLSTM) off += p->H;
        if (p->conv_k > 0 && p->kind != SL_MB_MLSTM) {
            im->conv_w = malloc((size_t)(im->cc * p->conv_k) * sizeof(float));
            if (p->conv_b[0]) im->conv_b = malloc((size_t)im->cc * sizeof(float));
            if (!im->conv_w || (p->conv_b[0] && !im->conv_b)) return sl_err_set(err, SL_ENOMEM, "out of memory");
            const int64_t ch[3] = { im->cq, im->ck, im->cv };
            int64_t c0 = 0;
            for (int s = 0; s < 3; s++) {
                memcpy(im->conv_w + c0 * p->conv_k, p->conv_w[s], (size_t)(ch[s] * p->conv_k) * sizeof(float));
                if (im->conv_b) memcpy(im->conv_b + c0, p->conv_b[s], (size_t)ch[s] * sizeof(float));
                c0 += ch[s];
            }
        }
        if (p->kind == SL_MB_RETNET) {
            im->log_gamma = malloc((size_t)p->H * sizeof(double));
            im->inv_freq = malloc((size_t)(p->dk / 2 + 1) * sizeof(double));
            if (!im->log_gamma || !im->inv_freq) return sl_err_set(err, SL_ENOMEM, "out of memory");
            for (int64_t h = 0; h < p->H; h++) im->log_gamma[h] = log(1.0 - pow(2.0, -5.0 - (double)h));
            for (int64_t j = 0; j < p->dk / 2; j++) im->inv_freq[j] = 1.0 / pow(10000.0, (double)(2 * j) / (double)p->dk);
        }
        L->kind = kind;
        L->index = l;
        L->n_in = L->n_out = p->hid;
        L->n_carry = off;
        L->n_state = im->nS;
        L->n_sys_in = L->n_sys_out = p->H * im->ds;
        L->flags = SL_LAYER_SELECTIVE | SL_LAYER_LINEAR | SL_LAYER_MATRIX | SL_LAYER_CUDA;
        int64_t shS[3] = { p->H, p->dk, im->ds };
        sl_layer_add_block(L, "S", 0, 3, shS);
        if (p->conv_k > 1) {
            int64_t shc[2] = { p->conv_k - 1, im->cc };
            sl_layer_add_block(L, "conv", im->off_conv, 2, shc);
        }
        if (p->rope) {
            int64_t shp[1] = { 1 };
            sl_layer_add_block(L, "pos", im->off_pos, 1, shp);
        }
        if (p->kind == SL_MB_MLSTM) {
            int64_t shm[1] = { p->H };
            sl_layer_add_block(L, "m", im->off_m, 1, shm);
        }
    }
    m->n_in = m->n_out = n_layers ? mbs[0].hid : 0;
    sl_model_set_role(m, "model.embeddings.weight", SL_ROLE_EMBED);
    sl_model_set_role(m, "model.norm.weight", SL_ROLE_CORE);
    sl_model_set_role(m, "lm_head.weight", SL_ROLE_HEAD);
    m->embedding = sl_tensors_find(m->tensors, "model.embeddings.weight");
    return SL_OK;
}

/* ------------------------------------------------------------ init */
void *sl_mb_rng_new(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r) gsl_rng_set(r, (unsigned long)seed);
    return r;
}

void sl_mb_rng_free(void *rng) { gsl_rng_free(rng); }

double sl_mb_rng_uniform(void *rng) { return gsl_rng_uniform(rng); }

int sl_mb_init_tensor(sl_tensors *ts, void *rng, const char *name, int ndim, const int64_t *shape, double std,
                      sl_err *err)
{
    sl_tensor *t;
    int rc = sl_tensors_add(ts, name, ndim, shape, NULL, &t, err);
    if (rc) return rc;
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = std > 0 ? (float)gsl_ran_gaussian(rng, std) : std < 0 ? 1.0f : 0.0f;
    return SL_OK;
}

int sl_mb_init_block(sl_tensors *ts, void *rng, int l, int64_t hid, int64_t inter, int64_t vdim, double std,
                     sl_err *err)
{
    char nm[256];
    int rc;
    int64_t sh[1] = { hid }, sg[2] = { inter, hid }, sd[2] = { hid, inter }, so[2] = { hid, vdim };
#define MB_INIT(what, nd, shp, sd_) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, what), sl_mb_init_tensor(ts, rng, nm, nd, shp, sd_, err))
    if (vdim > 0 && (rc = MB_INIT("attn.o_proj.weight", 2, so, std))) return rc;
    if ((rc = MB_INIT("attn_norm.weight", 1, sh, -1)) || (rc = MB_INIT("mlp_norm.weight", 1, sh, -1)) ||
        (rc = MB_INIT("mlp.gate_proj.weight", 2, sg, std)) || (rc = MB_INIT("mlp.up_proj.weight", 2, sg, std)) ||
        (rc = MB_INIT("mlp.down_proj.weight", 2, sd, std)))
        return rc;
#undef MB_INIT
    return SL_OK;
}

int sl_mb_init_model(sl_tensors *ts, void *rng, int64_t vocab, int64_t hid, double std, sl_err *err)
{
    if (vocab <= 0) return SL_OK;
    int64_t se[2] = { vocab, hid }, sh[1] = { hid };
    int rc;
    if ((rc = sl_mb_init_tensor(ts, rng, "model.embeddings.weight", 2, se, std, err)) ||
        (rc = sl_mb_init_tensor(ts, rng, "model.norm.weight", 1, sh, -1, err)) ||
        (rc = sl_mb_init_tensor(ts, rng, "lm_head.weight", 2, se, std, err)))
        return rc;
    return SL_OK;
}

/* ------------------------------------------------------------ config */
int sl_mb_common_config(sl_model *m, int64_t dflt_heads, double dflt_eps, sl_mb_common *c, sl_err *err)
{
    int rc;
    const json_t *cfg = m->config;
    const sl_tensor *an = sl_tensors_find(m->tensors, "model.layers.0.attn_norm.weight");
    int64_t L0 = 0;
    char nm[128];
    for (;; L0++) {
        snprintf(nm, sizeof nm, "model.layers.%lld.attn_norm.weight", (long long)L0);
        if (!sl_tensors_find(m->tensors, nm)) break;
    }
    if ((rc = sl_config_int(cfg, "hidden_size", an && an->ndim == 1 ? an->shape[0] : 0, &c->hid, err)) ||
        (rc = sl_config_int(cfg, "num_heads", dflt_heads, &c->H, err)) ||
        (rc = sl_config_int(cfg, "num_hidden_layers", L0, &c->L, err)) ||
        (rc = sl_config_double(cfg, "norm_eps", dflt_eps, &c->eps, err)) ||
        (rc = sl_config_double(cfg, "initializer_range", 0.02, &c->std, err)))
        return rc;
    if (c->hid <= 0) return sl_err_set(err, SL_EFORMAT, "hidden_size must be positive (is %lld)", (long long)c->hid);
    if (c->H <= 0) return sl_err_set(err, SL_EFORMAT, "num_heads must be positive (is %lld)", (long long)c->H);
    if (c->L < 1 || c->L > 4096)
        return sl_err_set(err, SL_EFORMAT, "num_hidden_layers must be 1..4096 (is %lld)", (long long)c->L);
    const json_t *attn = json_object_get(cfg, "attn");
    if (attn && !json_is_null(attn))
        return sl_err_set(err, SL_EUNSUP, "hybrid models with softmax-attention layers (config \"attn\") are not supported");
    json_int_t nkv = json_integer_value(json_object_get(cfg, "num_kv_heads"));
    if (nkv && nkv != c->H) return sl_err_set(err, SL_EUNSUP, "num_kv_heads != num_heads (grouped heads) is not supported");
    json_object_set_new(m->config, "hidden_size", json_integer(c->hid));
    json_object_set_new(m->config, "num_heads", json_integer(c->H));
    json_object_set_new(m->config, "num_hidden_layers", json_integer(c->L));
    if (!json_object_get(m->config, "norm_eps")) json_object_set_new(m->config, "norm_eps", json_real(c->eps));
    return SL_OK;
}

int sl_mb_act_by_name(const char *s)
{
    if (!s || !strcmp(s, "identity")) return SL_MB_ACT_NONE;
    if (!strcmp(s, "silu") || !strcmp(s, "swish")) return SL_MB_ACT_SILU;
    if (!strcmp(s, "relu")) return SL_MB_ACT_RELU;
    if (!strcmp(s, "elu")) return SL_MB_ACT_ELU1;
    return -1;
}

int sl_mb_conv(sl_model *m, int l, const char *which, int64_t C, int64_t k, const float **w, const float **b,
               sl_err *err)
{
    char nm[128];
    int64_t sw[3] = { C, 1, k }, sb[1] = { C };
    int rc;
    snprintf(nm, sizeof nm, "attn.%s_conv1d.weight", which);
    if ((rc = sl_mb_tensor(m, l, nm, 3, sw, 0, w, err))) return rc;
    snprintf(nm, sizeof nm, "attn.%s_conv1d.bias", which);
    return sl_mb_tensor(m, l, nm, 1, sb, 1, b, err);
}

int sl_mb_init_common(json_t *cfg, int64_t dflt_heads, double dflt_eps, sl_mb_common *c, sl_err *err)
{
    int rc;
    if ((rc = sl_config_int(cfg, "hidden_size", 0, &c->hid, err)) ||
        (rc = sl_config_int(cfg, "num_heads", dflt_heads, &c->H, err)) ||
        (rc = sl_config_int(cfg, "num_hidden_layers", 1, &c->L, err)) ||
        (rc = sl_config_double(cfg, "norm_eps", dflt_eps, &c->eps, err)) ||
        (rc = sl_config_double(cfg, "initializer_range", 0.02, &c->std, err)))
        return rc;
    if (c->hid <= 0) return sl_err_set(err, SL_EINVAL, "hidden_size must be positive (give --hidden-size)");
    if (c->H <= 0) return sl_err_set(err, SL_EINVAL, "num_heads must be positive");
    if (c->L < 1 || c->L > 4096) return sl_err_set(err, SL_EINVAL, "num_hidden_layers must be 1..4096");
    json_object_set_new(cfg, "hidden_size", json_integer(c->hid));
    json_object_set_new(cfg, "num_heads", json_integer(c->H));
    json_object_set_new(cfg, "num_hidden_layers", json_integer(c->L));
    if (!json_object_get(cfg, "norm_eps")) json_object_set_new(cfg, "norm_eps", json_real(c->eps));
    return SL_OK;
}

int sl_mb_bind_qkv(sl_model *m, int l, sl_mb *p, int64_t conv_k, sl_err *err)
{
    const int64_t kd = p->H * p->dk, vd = p->H * p->dv;
    int64_t sq[2] = { kd, p->hid }, sv[2] = { vd, p->hid };
    int rc;
    if ((rc = sl_mb_tensor(m, l, "attn.q_proj.weight", 2, sq, 0, &p->wq, err)) ||
        (rc = sl_mb_tensor(m, l, "attn.k_proj.weight", 2, sq, 0, &p->wk, err)) ||
        (rc = sl_mb_tensor(m, l, "attn.v_proj.weight", 2, sv, 0, &p->wv, err)))
        return rc;
    p->conv_k = conv_k;
    if (conv_k > 0 &&
        ((rc = sl_mb_conv(m, l, "q", kd, conv_k, &p->conv_w[0], &p->conv_b[0], err)) ||
         (rc = sl_mb_conv(m, l, "k", kd, conv_k, &p->conv_w[1], &p->conv_b[1], err)) ||
         (rc = sl_mb_conv(m, l, "v", vd, conv_k, &p->conv_w[2], &p->conv_b[2], err))))
        return rc;
    return SL_OK;
}

int sl_mb_init_qkv(sl_tensors *ts, void *rng, int l, int64_t hid, int64_t kd, int64_t vd, int64_t conv_k, double std,
                   sl_err *err)
{
    char nm[128];
    int64_t sq[2] = { kd, hid }, sv[2] = { vd, hid }, cq[3] = { kd, 1, conv_k }, cv[3] = { vd, 1, conv_k };
    int rc;
#define INIT(what, nd, shp) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, what), sl_mb_init_tensor(ts, rng, nm, nd, shp, std, err))
    if ((rc = INIT("attn.q_proj.weight", 2, sq)) || (rc = INIT("attn.k_proj.weight", 2, sq)) ||
        (rc = INIT("attn.v_proj.weight", 2, sv)))
        return rc;
    if (conv_k > 0 && ((rc = INIT("attn.q_conv1d.weight", 3, cq)) || (rc = INIT("attn.k_conv1d.weight", 3, cq)) ||
                       (rc = INIT("attn.v_conv1d.weight", 3, cv))))
        return rc;
#undef INIT
    return SL_OK;
}

char *sl_mb_summary(const char *kind, const sl_mb_common *c, int64_t dk, int64_t dv, const char *extra)
{
    return sl_strfmt("%s, %lld layer%s, hidden %lld, %lld heads of d_k %lld, d_v %lld%s", kind, (long long)c->L,
                     c->L == 1 ? "" : "s", (long long)c->hid, (long long)c->H, (long long)dk, (long long)dv,
                     extra ? extra : "");
}
