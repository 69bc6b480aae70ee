/*
** The matrix-state block: see matblock.h.
**
** Three views of one layer, held equal by tests/test_matrix.c:
**   forward  float, a batch, in blocks of ~512 rows (sequences x steps; the
**            carries thread through them, so blocks change no result), each
**            block through: attn_norm; every projection of it as one packed
**            GEMM (kernels/gemm.c: [q | k | v | g | beta | a | gk_proj.0]);
**            one causal conv with SiLU over the q|k|v columns and the L2
**            norms, gates and beta in place on those columns
**            (kernels/nn_vec.c); one kernels/matstate.c scan per (sequence,
**            head); the output norm and gate; o_proj with the residual in
**            its epilogue; mlp_norm; gate/up as one SwiGLU product; down_proj
**            with the residual. A block's workspace stays in L3 (the whole
**            batch at once did not: 143 vs 76 ms at B = 4, T = 4096). With
**            B >= threads each thread runs its own sequences with one-thread
**            kernels (no barrier in the forward), else every stage is split
**            over the threads (GEMM rows, scan (sequence, head) pairs);
**   step     double, one token: mb_point computes every per-token quantity
**            (q, k, v, gates, beta, effective key b_t) and the recurrence is
**            applied with plain loops;
**   linsys   the same mb_point, packed as structured operators.
** With f->states (the carry after every step) the forward runs one step at a
** time, which keeps the per-step bookkeeping in one place. With f->device =
** SL_DEVICE_CUDA the scans of all (sequence, head) pairs run on the GPU in one
** call (kernels/cuda/matstate.cu); the rest stays on the CPU.
** The packed weights are made at build (sl_mb_pack) and refreshed by
** params_changed. Training (backward, backward_f64, params_changed) is
** matblock_grad.c, for the kinds sl_mb_trainable accepts.
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
    free(im->conv_wt);
    free(im->log_gamma);
    free(im->inv_freq);
    sl_wpack_free(im->w_in);
    sl_wpack_free(im->w_gk1);
    sl_wpack_free(im->w_o);
    sl_wpack_free(im->w_mlp);
    sl_wpack_free(im->w_down);
    free(im);
}

/* Grouped linear over M rows (x rows ldx apart, y rows n apart). */
static void grouped_f(int64_t M, int64_t n, int64_t blk, const float *W, const float *b, const float *x, int64_t ldx,
                      float *y)
{
#pragma omp parallel for schedule(static) if (M * n * blk > 1000000)
    for (int64_t r = 0; r < M; r++)
        for (int64_t g = 0; g < n / blk; g++)
            for (int64_t o = 0; o < blk; o++) {
                const float *w = W + (g * blk + o) * blk, *xr = x + r * ldx + g * blk;
                float s = b ? b[g * blk + o] : 0.0f;
                for (int64_t i = 0; i < blk; i++) s += w[i] * xr[i];
                y[r * n + g * blk + o] = s;
            }
}

/* Workspace of a forward: blocks of up to R = B * tb rows, one allocation
** made before the time loop. */
typedef struct mb_ws {
    float *xn;     /* [R, hid] attn_norm(x), later mlp_norm(h) */
    float *P;      /* [R, np] the fused input projection (mLSTM: [R, 2I] up projection) */
    float *Y;      /* [R, cc] after the short convs (mLSTM: x_c [R, I]) */
    float *G;      /* [R, H gd] log decays */
    float *Bt;     /* [R, H] beta when not a projection */
    float *Q, *K;  /* mLSTM [R, I] */
    float *V;      /* mLSTM [R, wv] */
    float *M;      /* mLSTM [R, H] stabiliser */
    float *O;      /* [R, wv] the heads' output (mLSTM: also v before the gates) */
    float *O2;     /* [R, max(H dv, I)] after the output norm / gate */
    float *hcur;   /* [R, hid] x + attention */
    float *GA;     /* [R, inter] silu(gate) * up */
    float *hist;   /* [B, conv_k - 1, cc] */
    float *cat;    /* mLSTM [3I + 2H] */
    float *scan;   /* [threads, scan_ws] */
    double *pos0;  /* RetNet [B]: each sequence's position at the call's start */
    int64_t scan_ws;
    int nt;
    float *all;
} mb_ws;

static int mb_ws_alloc(const mb_impl *im, int64_t B, int64_t tb, int algo, int64_t C, int nt, mb_ws *ws, sl_err *err)
{
    const sl_mb *p = &im->p;
    const int64_t R = B * tb, H = p->H, dk = p->dk, dv = p->dv, ds = im->ds, I = p->inner, mlstm = p->kind == SL_MB_MLSTM;
    const int64_t wv = H * ds, gd = p->kind == SL_MB_GLA ? dk : 1;
    const int64_t nh = p->conv_k > 1 ? (p->conv_k - 1) * im->cc : 0;
    ws->nt = nt;
    ws->scan_ws = algo == SL_ALGO_CHUNKED ? sl_ms_workspace(C, dk, ds) : dk + ds;
    size_t sizes[15] = { (size_t)(R * p->hid), (size_t)(R * (mlstm ? 2 * I : im->np)),
                         (size_t)(R * (mlstm ? I : p->conv_k > 0 ? im->cc : 0)), (size_t)(R * H * gd), (size_t)(R * H),
                         (size_t)(R * I), (size_t)(R * I), (size_t)(mlstm ? R * wv : 0), (size_t)(mlstm ? R * H : 0),
                         (size_t)(R * wv), (size_t)(R * SL_MAX(H * dv, I)), (size_t)(R * p->hid),
                         (size_t)(R * p->inter), (size_t)(B * nh), (size_t)(mlstm ? 3 * I + 2 * H : 0) };
    size_t total = (size_t)(ws->nt * ws->scan_ws) + 16 * 15 + (size_t)(2 * B + 16);
    for (int i = 0; i < 15; i++) total += sizes[i] + 16;
    ws->all = malloc(total * sizeof(float));
    if (!ws->all) return sl_err_set(err, SL_ENOMEM, "out of memory for the block workspace");
    float **slots[15] = { &ws->xn, &ws->P, &ws->Y, &ws->G, &ws->Bt, &ws->Q, &ws->K, &ws->V, &ws->M, &ws->O, &ws->O2,
                          &ws->hcur, &ws->GA, &ws->hist, &ws->cat };
    float *w = ws->all;
    for (int i = 0; i < 15; i++) { *slots[i] = w; w += (sizes[i] + 16) / 16 * 16; }   /* 64-byte steps */
    ws->pos0 = (double *)w;
    w += (2 * B + 16) / 16 * 16;
    ws->scan = w;
    return SL_OK;
}

/* The causal conv of the block's B x tb rows (x rows ldx apart, channels
** cc), history taken from and returned to the carries; SiLU fused on the
** channels [s0, s1). */
static void conv_block(const mb_impl *im, int64_t B, int64_t tb, float *carry, int64_t nc, const float *x, int64_t ldx,
                       float *y, int64_t cc, const float *bias, float *hist, int64_t s0, int64_t s1)
{
    const int64_t kk = im->p.conv_k, nh = (kk - 1) * cc;
    for (int64_t b = 0; b < B; b++) memcpy(hist + b * nh, carry + b * nc + im->off_conv, (size_t)nh * sizeof *hist);
    sl_conv1d_rows_f32(B, tb, cc, kk, x, ldx, im->conv_wt, bias, nh ? hist : NULL, y, cc, s0, s1);
    for (int64_t b = 0; b < B; b++) memcpy(carry + b * nc + im->off_conv, hist + b * nh, (size_t)nh * sizeof *hist);
}

/* An activation on M rows of n columns (rows ld apart), in place. */
static void act_rows(int a, int64_t M, int64_t n, float *x, int64_t ld)
{
    if (a == SL_MB_ACT_NONE) return;
    if (a == SL_MB_ACT_SILU) {
        sl_act_rows_f32(SL_VACT_SILU, M, n, x, ld, 1.0f, 0.0f);
        return;
    }
#pragma omp parallel for schedule(static) if (M * n > 65536)
    for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < n; j++) x[r * ld + j] = act_f(a, x[r * ld + j]);
}

/* One block: rows t0 .. t0 + tb of every sequence, from the carries (which
** it advances). Rows of the workspace are sequence-major: b tb + i. */
static int mb_block(const sl_layer *L, const sl_fwd *f, int64_t t0, int64_t tb, float *carry, float *heads, int algo,
                    int64_t C, mb_ws *ws, sl_err *err)
{
    const mb_impl *im = L->impl;
    const sl_mb *p = &im->p;
    const int64_t B = f->B, T = f->T, R = B * tb, H = p->H, dk = p->dk, dv = p->dv, ds = im->ds, hid = p->hid;
    const int64_t nc = L->n_carry, I = p->inner, np = im->np;
    const int64_t wq = H * dk, wv = H * ds, gd = p->kind == SL_MB_GLA ? dk : 1;
    const float eps = (float)p->eps;
    for (int64_t b = 0; b < B; b++)
        sl_rmsnorm_rows_f32(tb, 1, hid, f->x + (b * T + t0) * hid, hid, p->attn_norm, eps, NULL, 0, ws->xn + b * tb * hid,
                            hid);
    /* What the scan reads: q, k, v (rows ldq, ldk, ldv apart), gates, beta. */
    const float *q, *k, *v, *g = NULL, *beta = NULL, *og = NULL, *Z = NULL;
    int64_t ldq, ldk, ldv, ldb = 0;
    if (p->kind == SL_MB_MLSTM) {
        float *U = ws->P, *XC = ws->Y;   /* U = [x_m | z] */
        sl_gemm_wpack(R, ws->xn, hid, im->w_in, NULL, 0, U, 2 * I);
        conv_block(im, B, tb, carry, nc, U, 2 * I, XC, I, p->conv_b[0], ws->hist, 0, I);
        Z = U + I;
        grouped_f(R, I, p->blk, p->gq_w, p->gq_b, XC, I, ws->Q);
        grouped_f(R, I, p->blk, p->gk_w, p->gk_b, XC, I, ws->K);
        grouped_f(R, I, p->blk, p->gv_w, p->gv_b, U, 2 * I, ws->O);
        float *cat = ws->cat;
        for (int64_t b = 0; b < B; b++) {
            float *mrow = carry + b * nc + im->off_m;
            for (int64_t t = 0; t < tb; t++) {
                const int64_t r = b * tb + t;
                memcpy(cat, ws->Q + r * I, (size_t)I * sizeof *cat);
                memcpy(cat + I, ws->K + r * I, (size_t)I * sizeof *cat);
                memcpy(cat + 2 * I, ws->O + r * I, (size_t)I * sizeof *cat);
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
                    ws->M[r * H + h] = mn;
                    ws->G[r * H + h] = lf + mo - mn;
                    for (int64_t i = 0; i < dk; i++) ws->K[r * wq + h * dk + i] *= ia;
                    for (int64_t j = 0; j < dv; j++) ws->V[r * wv + h * ds + j] = ws->O[r * I + h * dv + j];
                    ws->V[r * wv + h * ds + dv] = 1.0f;
                }
            }
        }
        q = ws->Q; k = ws->K; v = ws->V;
        ldq = ldk = wq;
        ldv = wv;
        g = ws->G;
    } else {
        float *P = ws->P;
        sl_gemm_wpack(R, ws->xn, hid, im->w_in, NULL, 0, P, np);
        /* q | k | v in P's first cc columns, or after the conv (SiLU fused where
        ** the activations are SiLU on a contiguous range) in Y. */
        float *src = P;
        int64_t lds = np;
        int done[3] = { 0, 0, 0 };
        if (p->conv_k > 0) {
            const int64_t bnd[4] = { 0, im->cq, im->cq + im->ck, im->cc };
            int64_t s0 = 0, s1 = 0;
            int first = -1, last = -1, ok = 1;
            for (int i = 0; i < 3; i++) {
                if (p->act[i] == SL_MB_ACT_SILU) {
                    if (first < 0) first = i;
                    else if (last != i - 1) ok = 0;
                    last = i;
                } else if (p->act[i] != SL_MB_ACT_NONE) {
                    ok = 0;
                }
            }
            if (ok && first >= 0) {
                s0 = bnd[first];
                s1 = bnd[last + 1];
                for (int i = first; i <= last; i++) done[i] = 1;
            }
            conv_block(im, B, tb, carry, nc, P, np, ws->Y, im->cc, im->conv_b, ws->hist, s0, s1);
            src = ws->Y;
            lds = im->cc;
        }
        float *Qp = src, *Kp = src + im->cq, *Vp = src + im->cq + im->ck;
        if (!done[0]) act_rows(p->act[0], R, wq, Qp, lds);
        if (!done[1]) act_rows(p->act[1], R, wq, Kp, lds);
        if (!done[2]) act_rows(p->act[2], R, H * dv, Vp, lds);
        act_rows(p->fmap, R, wq, Qp, lds);
        act_rows(p->fmap, R, wq, Kp, lds);
        float *qk[2] = { Qp, Kp };
        const int nk[2] = { p->q_norm, p->k_norm };
        for (int e = 0; e < 2; e++) {
            if (nk[e] == SL_MB_NORM_L2) {
                sl_l2norm_rows_f32(R, H, dk, qk[e], lds, (float)MB_L2_EPS);
            } else if (nk[e] != SL_MB_NORM_NONE) {
#pragma omp parallel for schedule(static) if (R > 256)
                for (int64_t r = 0; r < R; r++)
                    for (int64_t h = 0; h < H; h++) norm_f(nk[e], dk, qk[e] + r * lds + h * dk);
            }
        }
        if (p->rope) {
            /* Positions from the call's start (kept in double across blocks, so
            ** blocks change nothing even when the carry's position is not an
            ** integer); the carry gets the position after the block. */
            const int64_t hf = dk / 2;
            for (int64_t b = 0; b < B; b++) {
                if (t0 == 0) ws->pos0[b] = carry[b * nc + im->off_pos];
                const double p0 = ws->pos0[b] + (double)t0;
#pragma omp parallel for if (tb > 256) schedule(static)
                for (int64_t t = 0; t < tb; t++)
                    for (int64_t j = 0; j < hf; j++) {
                        const double a = (p0 + (double)t) * im->inv_freq[j];
                        const float c = (float)cos(a), s = (float)sin(a);
                        for (int64_t h = 0; h < H; h++) {
                            float *xs[2] = { Qp + (b * tb + t) * lds + h * dk, Kp + (b * tb + t) * lds + h * dk };
                            for (int e = 0; e < 2; e++) {
                                const float x1 = xs[e][j], x2 = xs[e][hf + j];
                                xs[e][j] = x1 * c - x2 * s;
                                xs[e][hf + j] = x2 * c + x1 * s;
                            }
                        }
                    }
                carry[b * nc + im->off_pos] = (float)(p0 + (double)tb);
            }
        }
        if (p->kind == SL_MB_RETNET) {
            for (int64_t r = 0; r < R; r++)
                for (int64_t h = 0; h < H; h++) ws->G[r * H + h] = (float)im->log_gamma[h];
            g = ws->G;
        } else if (p->kind == SL_MB_GDN) {
            const float *A = P + im->off_a;
            for (int64_t r = 0; r < R; r++)
                for (int64_t h = 0; h < H; h++)
                    ws->G[r * H + h] = -expf(p->A_log[h]) * sl_softplusf(A[r * np + h] + p->dt_bias[h]);
            g = ws->G;
        } else if (p->kind == SL_MB_GLA) {
            sl_gemm_wpack(R, P + im->off_r, np, im->w_gk1, NULL, 0, ws->G, H * dk);
            sl_act_rows_f32(SL_VACT_LOGSIG, R, H * dk, ws->G, H * dk, (float)(1.0 / p->gk_normalizer),
                            p->has_clamp ? (float)p->clamp_min : -INFINITY);
            g = ws->G;
        }
        const float bscale = p->neg_eig ? 2.0f : 1.0f;
        if (p->beta_mode == SL_MB_BETA_SIGMOID) {
            sl_act_rows_f32(SL_VACT_SIGMOID, R, H, P + im->off_b, np, bscale, 0.0f);
            beta = P + im->off_b;
            ldb = np;
        } else if (p->beta_mode == SL_MB_BETA_ONE) {
            for (int64_t i = 0; i < R * H; i++) ws->Bt[i] = bscale;
            beta = ws->Bt;
            ldb = H;
        }
        if (p->wg) og = P + im->off_g;
        q = Qp; k = Kp; v = Vp;
        ldq = ldk = ldv = lds;
    }
    /* The scans: one per (sequence, head). */
#ifdef SL_CUDA
    /* On the GPU: every (sequence, head) in one call of the recurrent scan
    ** (kernels/cuda/matstate.cu); the projections and the output stage stay
    ** on the CPU. */
    if (f->device == SL_DEVICE_CUDA) {
        sl_ms_batch mbat = { .nb = B, .nh = H, .T = tb, .dk = dk, .dv = ds, .q = q, .k = k, .v = v,
                             .ldq = ldq, .ldk = ldk, .ldv = ldv, .scale = 1.0f / sqrtf((float)dk), .o = ws->O, .ldo = wv,
                             .S = carry, .ldS = nc };
        if (g) { mbat.g = g; mbat.ldg = H * gd; mbat.gdim = gd; }
        if (beta) { mbat.beta = beta; mbat.ldb = ldb; }
        int rc = sl_cuda_matstate_scan(&mbat, err);
        if (rc) return rc;
        goto scanned;
    }
#endif
#pragma omp parallel for num_threads(ws->nt) schedule(dynamic) if (B * H > 1 && ws->nt > 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H, h = bh % H, r0 = b * tb;
        float *wk = ws->scan + (int64_t)omp_get_thread_num() * ws->scan_ws;
        sl_ms_seq s = { .T = tb, .dk = dk, .dv = ds, .q = q + r0 * ldq + h * dk, .k = k + r0 * ldk + h * dk,
                        .v = v + r0 * ldv + h * ds, .ldq = ldq, .ldk = ldk, .ldv = ldv,
                        .scale = 1.0f / sqrtf((float)dk), .o = ws->O + r0 * wv + h * ds, .ldo = wv,
                        .S = carry + b * nc + h * dk * ds };
        if (g) { s.g = g + (r0 * H + h) * gd; s.ldg = H * gd; s.gdim = gd; }
        if (beta) { s.beta = beta + r0 * ldb + h; s.ldb = ldb; }
        if (algo == SL_ALGO_CHUNKED) sl_ms_chunked(&s, C, wk);
        else if (algo == SL_ALGO_REFERENCE) sl_ms_reference(&s);
        else sl_ms_recurrent(&s, wk);
    }
#ifdef SL_CUDA
scanned:
#endif
    if (heads)
        for (int64_t b = 0; b < B; b++)
            memcpy(heads + (b * T + t0) * wv, ws->O + b * tb * wv, (size_t)(tb * wv) * sizeof *heads);
    /* Output stage -> O2, then h = x + O2 Wo^T (the residual in the GEMM). */
    const float *att = ws->O2;
    int64_t lda = H * dv;
    if (p->kind == SL_MB_MLSTM) {
        lda = I;
#pragma omp parallel for if (R > 256) schedule(static)
        for (int64_t r = 0; r < R; r++)
            for (int64_t h = 0; h < H; h++) {
                float *oh = ws->O + r * wv + h * ds, *oc = ws->O2 + r * I + h * dv;
                const float den = fmaxf(fabsf(oh[dv]), expf(-ws->M[r * H + h])) + (float)MB_MLSTM_EPS;
                float mu = 0, var = 0;
                for (int64_t j = 0; j < dv; j++) { oh[j] /= den; mu += oh[j]; }
                mu /= (float)dv;
                for (int64_t j = 0; j < dv; j++) var += (oh[j] - mu) * (oh[j] - mu);
                const float rs = 1.0f / sqrtf(var / (float)dv + (float)p->eps);
                for (int64_t j = 0; j < dv; j++) {
                    const int64_t c = h * dv + j;
                    float vv = (oh[j] - mu) * rs * (p->onorm_w ? p->onorm_w[c] : 1.0f);
                    oc[j] = (vv + p->skip[c] * ws->Y[r * I + c]) * sl_siluf(Z[r * 2 * I + c]);
                }
            }
    } else if (p->onorm == SL_MB_ONORM_RMS || p->onorm == SL_MB_ONORM_RMS_GATED) {
        sl_rmsnorm_rows_f32(R, H, dv, ws->O, wv, p->onorm_w, eps, p->onorm == SL_MB_ONORM_RMS_GATED ? og : NULL, np,
                            ws->O2, H * dv);
    } else {
        att = ws->O;   /* ds = dv here */
    }
    for (int64_t b = 0; b < B; b++)
        sl_gemm_wpack(tb, att + b * tb * lda, lda, im->w_o, f->x + (b * T + t0) * hid, hid, ws->hcur + b * tb * hid, hid);
    /* MLP: y = h + down(silu(gate(hn)) * up(hn)), the product's epilogues doing
    ** the SwiGLU and the residual. */
    sl_rmsnorm_rows_f32(R, 1, hid, ws->hcur, hid, p->mlp_norm, eps, NULL, 0, ws->xn, hid);
    sl_gemm_wpack(R, ws->xn, hid, im->w_mlp, NULL, 0, ws->GA, p->inter);
    for (int64_t b = 0; b < B; b++)
        sl_gemm_wpack(tb, ws->GA + b * tb * p->inter, p->inter, im->w_down, ws->hcur + b * tb * hid, hid,
                      f->y + (b * T + t0) * hid, hid);
    return SL_OK;
}

/* Rows per block and thread: about this many (sequences x steps) at once, so
** a block's workspace (~13 KB a row at the bench's sizes) stays in L3
** (B = 4, T = 4096 on 2 threads, ms a forward: 16384 rows (no blocks) 143,
** 4096 97, 2048 81, 1024 76, 512 74, 256 78). */
static int64_t mb_block_rows = 512;

/* Sequences [b0, b1) of the batch from their carries, through blocks of tb
** steps of each (a multiple of the chunk, so the chunks are those of one
** pass over T); nt threads inside each stage. */
static int mb_run_seqs(const sl_layer *L, const sl_fwd *f, int64_t b0, int64_t b1, float *carry, float *heads,
                       int algo, int64_t C, int nt, int64_t rows, sl_err *err)
{
    const mb_impl *im = L->impl;
    const int64_t T = f->T, Bs = b1 - b0, hid = L->n_in, wv = im->p.H * im->ds;
    if (Bs <= 0) return SL_OK;
    sl_fwd fs = *f;
    fs.B = Bs;
    fs.x = f->x + b0 * T * hid;
    fs.y = f->y + b0 * T * hid;
    int64_t tb = SL_MAX(1, rows / Bs);
    if (algo == SL_ALGO_CHUNKED) tb = SL_MAX(1, tb / C) * C;
#ifdef SL_CUDA
    if (f->device == SL_DEVICE_CUDA) tb = T;   /* one scan call on the GPU */
#endif
    tb = SL_MIN(tb, T);
    mb_ws ws;
    int rc = mb_ws_alloc(im, Bs, tb, algo, C, nt, &ws, err);
    for (int64_t t0 = 0; t0 < T && !rc; t0 += tb)
        rc = mb_block(L, &fs, t0, SL_MIN(tb, T - t0), carry + b0 * L->n_carry, heads ? heads + b0 * T * wv : NULL, algo,
                      C, &ws, err);
    free(ws.all);
    return rc;
}

/* The batch forward from the carries. With at least as many sequences as
** threads (and a balanced split), each thread runs its own sequences from
** start to end with one-thread kernels: no synchronisation inside the
** forward, which also keeps it fast on a machine whose cores are shared
** (every barrier there can cost a scheduler time slice: B = 4, T = 4096,
** 2 threads beside one busy process: 1.9 s with a split inside every
** stage). Otherwise each stage is split over the threads. */
static int mb_forward_batch(const sl_layer *L, const sl_fwd *f, float *carry, float *heads, sl_err *err)
{
    const mb_impl *im = L->impl;
    const int64_t B = f->B, T = f->T;
#ifdef SL_CUDA
    if (f->device == SL_DEVICE_CUDA && f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT)
        return sl_err_set(err, SL_EUNSUP, "%s layers on CUDA run the recurrent scan only (auto, recurrent)", L->kind);
#endif
    const int algo = f->algo == SL_ALGO_AUTO ? (T >= 128 ? SL_ALGO_CHUNKED : SL_ALGO_RECURRENT) : f->algo;
    /* Default chunk lengths, measured on the bench shapes (d_k = d_v = 64, one
    ** thread, ms for 16 heads of T = 4096; again after the scans moved to
    ** sl_gemm_f32): delta rule C = 8 19.2, 16 19.8, 32 21.9, 64 31.2; GLA
    ** 16 18.2, 32 18.2, 64 18.3; scalar gate 16 19.0, 32 18.3, 64 17.0. */
    const int use_beta = im->p.beta_mode != SL_MB_BETA_NONE;
    const int64_t C = f->chunk > 0 ? f->chunk : (use_beta ? 16 : 32);
    const int nt = omp_in_parallel() ? 1 : sl_get_threads();
    int by_seq = nt > 1 && B >= nt && (B % nt == 0 || B >= 4 * (int64_t)nt);
#ifdef SL_CUDA
    if (f->device == SL_DEVICE_CUDA) by_seq = 0;
#endif
    if (!by_seq) return mb_run_seqs(L, f, 0, B, carry, heads, algo, C, nt, mb_block_rows * nt, err);
    int rc = SL_OK;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        sl_err e = { 0 };
        const int r = mb_run_seqs(L, f, B * t / n, B * (t + 1) / n, carry, heads, algo, C, 1, mb_block_rows, &e);
        if (r) {
#pragma omp critical(sl_mb_forward_err)
            if (!rc) {
                rc = r;
                if (err) *err = e;
            }
        }
    }
    return rc;
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
        /* Every step's carry wanted: one step at a time (blocks of one step). */
        const int algo = f->algo == SL_ALGO_REFERENCE ? SL_ALGO_REFERENCE : SL_ALGO_RECURRENT;
        float *x1 = malloc((size_t)(B * hid) * sizeof *x1), *y1 = malloc((size_t)(B * hid) * sizeof *y1);
        mb_ws ws = { 0 };
        if (!x1 || !y1) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        if (!rc) rc = mb_ws_alloc(L->impl, B, 1, algo, 1, omp_in_parallel() ? 1 : sl_get_threads(), &ws, err);
#ifdef SL_CUDA
        if (!rc && f->device == SL_DEVICE_CUDA && f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT)
            rc = sl_err_set(err, SL_EUNSUP, "%s layers on CUDA run the recurrent scan only (auto, recurrent)", L->kind);
#endif
        for (int64_t t = 0; t < T && !rc; t++) {
            for (int64_t b = 0; b < B; b++) memcpy(x1 + b * hid, f->x + (b * T + t) * hid, (size_t)hid * sizeof *x1);
            sl_fwd f1 = *f;
            f1.T = 1;
            f1.x = x1;
            f1.y = y1;
            f1.states = NULL;
            f1.algo = algo;
            rc = mb_block(L, &f1, 0, 1, carry, NULL, algo, 1, &ws, err);
            for (int64_t b = 0; b < B && !rc; b++) {
                memcpy(f->y + (b * T + t) * hid, y1 + b * hid, (size_t)hid * sizeof *y1);
                memcpy(f->states + (b * T + t) * nc, carry + b * nc, (size_t)nc * sizeof *carry);
            }
        }
        free(ws.all);
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

/* ------------------------------------------------------------ packed weights */
/* The products of the forward (kernels/gemm.c), packed from the tensors:
**   w_in   one GEMM for every projection of attn_norm(x): [q | k | v | g | beta
**          | a | gk_proj.0] as the kind has them (columns off_g, off_b, off_a,
**          off_r of its output, np wide); mLSTM: up_proj with its bias;
**   w_gk1  GLA's gk_proj.1 with its bias;
**   w_o    o_proj (mLSTM: down_proj with its bias), the residual added in the
**          epilogue;
**   w_mlp  gate_proj and up_proj as one SwiGLU product; w_down down_proj.
** and the short-conv weights taps-major (conv_wt [k, cc]). refill: the packs
** exist, refresh them from the tensors (after an optimiser step). */
int sl_mb_pack(mb_impl *im, int refill, sl_err *err)
{
    const sl_mb *p = &im->p;
    const int64_t H = p->H, hid = p->hid;
    sl_wpart in[8], o, gk1, mlp[2], down;
    int nin = 0, rc = SL_OK;
    if (p->kind == SL_MB_MLSTM) {
        in[nin++] = (sl_wpart){ p->up_w, p->up_b, 2 * p->inner };
        o = (sl_wpart){ p->down_w, p->down_b, hid };
        im->np = 2 * p->inner;
    } else {
        int64_t c = im->cc;
        in[nin++] = (sl_wpart){ p->wq, NULL, im->cq };
        in[nin++] = (sl_wpart){ p->wk, NULL, im->ck };
        in[nin++] = (sl_wpart){ p->wv, NULL, im->cv };
        if (p->wg) { in[nin++] = (sl_wpart){ p->wg, NULL, H * p->dv }; im->off_g = c; c += H * p->dv; }
        if (p->beta_mode == SL_MB_BETA_SIGMOID) { in[nin++] = (sl_wpart){ p->wb, NULL, H }; im->off_b = c; c += H; }
        if (p->kind == SL_MB_GDN) { in[nin++] = (sl_wpart){ p->wa, NULL, H }; im->off_a = c; c += H; }
        if (p->kind == SL_MB_GLA) { in[nin++] = (sl_wpart){ p->gk0, NULL, p->gk_rank }; im->off_r = c; c += p->gk_rank; }
        im->np = c;
        o = (sl_wpart){ p->wo, NULL, hid };
    }
    mlp[0] = (sl_wpart){ p->w_gate, NULL, p->inter };
    mlp[1] = (sl_wpart){ p->w_up, NULL, p->inter };
    down = (sl_wpart){ p->w_down, NULL, hid };
    const int64_t kin = p->kind == SL_MB_MLSTM ? p->inner : H * p->dv;
    if (refill) {
        sl_wpack_refill(im->w_in, in);
        sl_wpack_refill(im->w_o, &o);
        sl_wpack_refill(im->w_mlp, mlp);
        sl_wpack_refill(im->w_down, &down);
    } else if ((rc = sl_wpack_new(hid, nin, in, 0, &im->w_in, err)) || (rc = sl_wpack_new(kin, 1, &o, 0, &im->w_o, err)) ||
               (rc = sl_wpack_new(hid, 2, mlp, 1, &im->w_mlp, err)) ||
               (rc = sl_wpack_new(p->inter, 1, &down, 0, &im->w_down, err))) {
        return rc;
    }
    if (p->kind == SL_MB_GLA) {
        gk1 = (sl_wpart){ p->gk1, p->gk1_b, H * p->dk };
        if (refill) sl_wpack_refill(im->w_gk1, &gk1);
        else if ((rc = sl_wpack_new(p->gk_rank, 1, &gk1, 0, &im->w_gk1, err))) return rc;
    }
    if (p->conv_k > 0) {
        const int64_t cc = im->cc, kk = p->conv_k;
        const float *w = p->kind == SL_MB_MLSTM ? p->conv_w[0] : im->conv_w;
        if (!refill && !(im->conv_wt = malloc((size_t)(kk * cc) * sizeof(float))))
            return sl_err_set(err, SL_ENOMEM, "out of memory");
        for (int64_t c = 0; c < cc; c++)
            for (int64_t j = 0; j < kk; j++) im->conv_wt[j * cc + c] = w[c * kk + j];
    }
    return SL_OK;
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
        int rc = sl_mb_pack(im, 0, err);
        if (rc) return rc;
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
        /* No gate: the state's decay (RetNet's gamma_h, 1 for linear attention), the
        ** short convolutions' shift and the position counter do not depend on the input. */
        if (p->kind == SL_MB_RETNET || p->kind == SL_MB_LINEAR_ATTN) L->flags |= SL_LAYER_A_CONST;
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
