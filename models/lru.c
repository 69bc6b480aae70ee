/*
** The lru family: the Linear Recurrent Unit of Orvieto et al. 2023
** ("Resurrecting Recurrent Neural Networks for Long Sequences"), as in the
** paper's reference code (its appendix A):
**
**     lambda = exp(-exp(nu_log) + i exp(theta_log))          (N complex)
**     x_t = lambda . x_{t-1} + exp(gamma_log) . ((B_re + i B_im) u_t)
**     y_t = Re((C_re + i C_im) x_t) + D . u_t
**
** u, y in R^H, x in C^N, gamma_log = log sqrt(1 - |lambda|^2) at
** initialisation (the normalisation), D a vector (elementwise skip).
** seqlab init follows the paper's init_lru_parameters: nu and theta from the
** ring r_min <= |lambda| <= r_max, arg lambda in [0, max_phase); B ~ N(0, 1/(2H))
** per part, C ~ N(0, 1/N) per part, D ~ N(0, 1).
**
** Forward: chunks of 64 steps; B u by one GEMM per chunk, the diagonal
** recurrence in place (kernels/scan.h), C x + D u by one GEMM. The reference
** algorithm runs the same with loops.
**
** Tensors (per layer, under "layers.<l>." when n_layer > 1): nu_log [N],
** theta_log [N], gamma_log [N], B_re [N, H], B_im [N, H], C_re [H, N],
** C_im [H, N], D [H]. Config: d_model (H), d_state (N), n_layer, r_min, r_max,
** max_phase (init only).
**
** Carry: N complex states as interleaved (re, im) pairs. Linear system
** (exact, LTI): A CDIAG (lambda); B DENSE 2N x H (rows Re, Im of gamma B); C
** DENSE H x 2N (columns C_re, -C_im); D DIAG. The LRU is parameterised in
** discrete time; its continuous form is read off exactly as lambda =
** exp(dt A_ct) with dt = 1 and A_ct = -exp(nu_log) + i exp(theta_log), B_bar =
** dt B_ct (rule SL_DISC_EXP), so analyses can report both spectra.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "grad.h"
#include "kernels.h"
#include "scan_backward.h"
#include "ssm.h"
#include "util.h"

#define LRU_CHUNK 64

typedef struct lru_layer {
    int64_t H, N;
    /* the tensors (the model owns them; training changes them in place) */
    const float *nu_log, *theta_log, *gamma_log, *B_re, *B_im, *C_re, *C_im, *Dp;
    /* derived at build and by params_changed */
    double *lam, *Act;      /* [N, 2] */
    double *Bd, *Cd, *D;    /* [2N, H], [H, 2N], [H] */
    float *lam32, *Bd32, *Cd32, *D32;
} lru_layer;

/* lambda, gamma B, C and their float copies from the tensors. */
static void lru_refresh(lru_layer *s)
{
    const int64_t H = s->H, N = s->N;
    for (int64_t j = 0; j < N; j++) {
        const double ar = -exp((double)s->nu_log[j]), ai = exp((double)s->theta_log[j]), g = exp((double)s->gamma_log[j]);
        s->Act[2 * j] = ar;
        s->Act[2 * j + 1] = ai;
        s->lam[2 * j] = exp(ar) * cos(ai);
        s->lam[2 * j + 1] = exp(ar) * sin(ai);
        for (int64_t k = 0; k < H; k++) {
            s->Bd[(2 * j) * H + k] = g * s->B_re[j * H + k];
            s->Bd[(2 * j + 1) * H + k] = g * s->B_im[j * H + k];
        }
    }
    for (int64_t h = 0; h < H; h++) {
        for (int64_t j = 0; j < N; j++) {
            s->Cd[h * 2 * N + 2 * j] = s->C_re[h * N + j];
            s->Cd[h * 2 * N + 2 * j + 1] = -(double)s->C_im[h * N + j];
        }
        s->D[h] = s->Dp[h];
    }
    for (int64_t i = 0; i < 2 * N; i++) s->lam32[i] = (float)s->lam[i];
    for (int64_t i = 0; i < 2 * N * H; i++) {
        s->Bd32[i] = (float)s->Bd[i];
        s->Cd32[i] = (float)s->Cd[i];
    }
    for (int64_t h = 0; h < H; h++) s->D32[h] = (float)s->D[h];
}

static int lru_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const lru_layer *s = L->impl;
    const int64_t H = s->H, N = s->N;
    double *x = malloc((size_t)(2 * N + 1) * sizeof *x);
    if (!x) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t j = 0; j < N; j++) {
        double vr = 0.0, vi = 0.0;
        for (int64_t k = 0; k < H; k++) {
            vr += s->Bd[(2 * j) * H + k] * u[k];
            vi += s->Bd[(2 * j + 1) * H + k] * u[k];
        }
        const double lr = s->lam[2 * j], li = s->lam[2 * j + 1];
        x[2 * j] = lr * carry[2 * j] - li * carry[2 * j + 1] + vr;
        x[2 * j + 1] = lr * carry[2 * j + 1] + li * carry[2 * j] + vi;
    }
    if (next) memcpy(next, x, (size_t)(2 * N) * sizeof *x);
    if (y)
        for (int64_t h = 0; h < H; h++) {
            double acc = s->D[h] * u[h];
            for (int64_t j = 0; j < 2 * N; j++) acc += s->Cd[h * 2 * N + j] * x[j];
            y[h] = acc;
        }
    free(x);
    return SL_OK;
}

static int lru_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                      sl_err *err)
{
    const lru_layer *s = L->impl;
    const int64_t H = s->H, N = s->N;
    (void)carry;
    ls->n_state = 2 * N;
    ls->n_in = ls->n_out = H;
    ls->exact = 1;
    ls->u_name = "u";
    int rc = SL_OK;
    if ((what & SL_LS_A) && !(rc = sl_op_cdiag(&ls->A, N))) memcpy(ls->A.a, s->lam, (size_t)(2 * N) * sizeof(double));
    if (!rc && (what & SL_LS_B) && !(rc = sl_op_dense(&ls->B, 2 * N, H)))
        memcpy(ls->B.a, s->Bd, (size_t)(2 * N * H) * sizeof(double));
    if (!rc && (what & SL_LS_C) && !(rc = sl_op_dense(&ls->C, H, 2 * N)))
        memcpy(ls->C.a, s->Cd, (size_t)(2 * N * H) * sizeof(double));
    if (!rc && (what & SL_LS_D) && !(rc = sl_op_diag(&ls->D, H))) memcpy(ls->D.a, s->D, (size_t)H * sizeof(double));
    if (!rc && (what & SL_LS_CT)) {
        ls->has_ct = 1;
        ls->disc = SL_DISC_EXP;
        ls->n_dt = 1;
        if (!(rc = sl_op_cdiag(&ls->A_ct, N))) memcpy(ls->A_ct.a, s->Act, (size_t)(2 * N) * sizeof(double));
        if (!rc && !(rc = sl_op_dense(&ls->B_ct, 2 * N, H)))
            memcpy(ls->B_ct.a, s->Bd, (size_t)(2 * N * H) * sizeof(double));
        if (!rc && !(ls->dt = malloc(sizeof *ls->dt))) rc = SL_ENOMEM;
        if (!rc) ls->dt[0] = 1.0;
    }
    if (!rc && !(ls->u = malloc((size_t)H * sizeof *ls->u))) rc = SL_ENOMEM;
    if (rc) return sl_err_set(err, SL_ENOMEM, "out of memory");
    memcpy(ls->u, u, (size_t)H * sizeof *ls->u);
    return SL_OK;
}

static int lru_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const lru_layer *s = L->impl;
    const int64_t H = s->H, N = s->N, nc = L->n_carry, B = f->B, T = f->T;
    if (f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT && f->algo != SL_ALGO_REFERENCE)
        return sl_err_set(err, SL_EUNSUP, "lru has the recurrent algorithm only");
    const int ref = f->algo == SL_ALGO_REFERENCE;
    const int64_t Tc = SL_MIN(T, LRU_CHUNK);
    float *v = malloc((size_t)(Tc * 2 * N + B * nc + 1) * sizeof *v), *carry = f->carry ? f->carry : v + Tc * 2 * N;
    if (!v) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if (!f->carry) memset(carry, 0, (size_t)(B * nc) * sizeof *carry);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t0 = 0; t0 < T; t0 += Tc) {
            const int64_t n = SL_MIN(Tc, T - t0);
            const float *u = f->x + (b * T + t0) * H;
            float *y = f->y + (b * T + t0) * H;
            if (ref) {
                for (int64_t t = 0; t < n; t++)
                    for (int64_t j = 0; j < 2 * N; j++) {
                        float acc = 0.0f;
                        for (int64_t k = 0; k < H; k++) acc += s->Bd32[j * H + k] * u[t * H + k];
                        v[t * 2 * N + j] = acc;
                    }
                sl_cdiag_recur_ref_f32(N, s->lam32, 1, n, v, 2 * N, carry + b * nc, nc);
                for (int64_t t = 0; t < n; t++)
                    for (int64_t h = 0; h < H; h++) {
                        float acc = s->D32[h] * u[t * H + h];
                        for (int64_t j = 0; j < 2 * N; j++) acc += s->Cd32[h * 2 * N + j] * v[t * 2 * N + j];
                        y[t * H + h] = acc;
                    }
            } else {
                sl_sgemm(0, 1, n, 2 * N, H, 1.0f, u, H, s->Bd32, H, 0.0f, v, 2 * N);
                sl_cdiag_recur_f32(N, s->lam32, 1, n, v, 2 * N, carry + b * nc, nc);
                for (int64_t t = 0; t < n; t++)
                    for (int64_t h = 0; h < H; h++) y[t * H + h] = s->D32[h] * u[t * H + h];
                sl_sgemm(0, 1, n, H, 2 * N, 1.0f, v, 2 * N, s->Cd32, 2 * N, 1.0f, y, H);
            }
            if (f->states)
                for (int64_t t = 0; t < n; t++)
                    memcpy(f->states + (b * T + t0 + t) * nc, v + t * 2 * N, (size_t)(2 * N) * sizeof *v);
        }
    free(v);
    return SL_OK;
}

static void lru_free(sl_layer *L)
{
    lru_layer *s = L->impl;
    if (!s) return;
    free(s->lam); free(s->Act); free(s->Bd); free(s->Cd); free(s->D);
    free(s->lam32); free(s->Bd32); free(s->Cd32); free(s->D32);
    free(s);
}

/* ------------------------------------------------------------ training */
/* Backward pass (lru_backward_impl.h, once per precision): with G = dL/dx_t,
**     G = dY C + conj(lambda) G_{t+1}  (dY C by one GEMM, the recurrence by
**     sl_cdiag_recur_backward), dlambda = sum G_t conj(x_{t-1}),
**     d(gamma B) = G^T U, dC = dY^T X, dU = G (gamma B) + D . dY,
** then the chain to the tensors in double: lambda = exp(-exp(nu) + i exp(theta)),
** B_bar = exp(gamma_log) (B_re + i B_im), C = C_re + i C_im read as [C_re, -C_im]. */
#define REAL float
#define LB(n) n##_f32
#define LB_BWD sl_bwd
#define LB_GRAD sl_grads_f32
#define LB_GEMM sl_sgemm
#define LB_ARR(s, a) ((s)->a##32)
#include "lru_backward_impl.h"
#undef REAL
#undef LB
#undef LB_BWD
#undef LB_GRAD
#undef LB_GEMM
#undef LB_ARR

#define REAL double
#define LB(n) n##_f64
#define LB_BWD sl_bwd_f64
#define LB_GRAD sl_grads_f64
#define LB_GEMM sl_dgemm
#define LB_ARR(s, a) ((s)->a)
#include "lru_backward_impl.h"

static int lru_params_changed(sl_layer *L, sl_err *err)
{
    (void)err;
    lru_refresh(L->impl);
    return SL_OK;
}

static const sl_layer_ops lru_ops = {
    .forward = lru_forward,
    .step = lru_step,
    .linsys = lru_linsys,
    .free = lru_free,
    .backward = lru_backward_f32,
    .backward_f64 = lru_backward_f64,
    .params_changed = lru_params_changed,
};

/* ------------------------------------------------------------ build */
typedef struct lru_cfg {
    int64_t H, N, n_layer;
    const char *prefix;
} lru_cfg;

static int lru_layer_new(sl_model *m, const lru_cfg *c, int64_t l, sl_layer **out, sl_err *err)
{
    const int64_t H = c->H, N = c->N;
    char pf[300];
    sl_ssm_prefix(c->prefix, c->n_layer, l, pf, sizeof pf);
    int64_t shN[1] = { N }, shH[1] = { H }, shB[2] = { N, H }, shC[2] = { H, N };
    const sl_tensor *tnu, *tth, *tga, *tBr, *tBi, *tCr, *tCi, *tD;
    int rc;
    if ((rc = sl_ssm_get(m, pf, "nu_log", 1, shN, &tnu, err)) || (rc = sl_ssm_get(m, pf, "theta_log", 1, shN, &tth, err)) ||
        (rc = sl_ssm_get(m, pf, "gamma_log", 1, shN, &tga, err)) || (rc = sl_ssm_get(m, pf, "B_re", 2, shB, &tBr, err)) ||
        (rc = sl_ssm_get(m, pf, "B_im", 2, shB, &tBi, err)) || (rc = sl_ssm_get(m, pf, "C_re", 2, shC, &tCr, err)) ||
        (rc = sl_ssm_get(m, pf, "C_im", 2, shC, &tCi, err)) || (rc = sl_ssm_get(m, pf, "D", 1, shH, &tD, err)))
        return rc;
    sl_layer *L = calloc(1, sizeof *L);
    lru_layer *s = calloc(1, sizeof *s);
    if (!L || !s) { free(L); free(s); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    L->impl = s;
    L->ops = &lru_ops;
    *out = L;
    s->H = H;
    s->N = N;
    s->lam = malloc((size_t)(2 * N) * sizeof *s->lam);
    s->Act = malloc((size_t)(2 * N) * sizeof *s->Act);
    s->Bd = malloc((size_t)(2 * N * H) * sizeof *s->Bd);
    s->Cd = malloc((size_t)(2 * N * H) * sizeof *s->Cd);
    s->D = malloc((size_t)H * sizeof *s->D);
    s->lam32 = malloc((size_t)(2 * N) * sizeof *s->lam32);
    s->Bd32 = malloc((size_t)(2 * N * H) * sizeof *s->Bd32);
    s->Cd32 = malloc((size_t)(2 * N * H) * sizeof *s->Cd32);
    s->D32 = malloc((size_t)H * sizeof *s->D32);
    if (!s->lam || !s->Act || !s->Bd || !s->Cd || !s->D || !s->lam32 || !s->Bd32 || !s->Cd32 || !s->D32)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    s->nu_log = tnu->data;
    s->theta_log = tth->data;
    s->gamma_log = tga->data;
    s->B_re = tBr->data;
    s->B_im = tBi->data;
    s->C_re = tCr->data;
    s->C_im = tCi->data;
    s->Dp = tD->data;
    lru_refresh(s);
    L->kind = "lru";
    L->index = (int)l;
    L->n_in = L->n_out = H;
    L->n_carry = L->n_state = 2 * N;
    L->n_sys_in = L->n_sys_out = H;
    int64_t shx[2] = { N, 2 };
    sl_layer_add_block(L, "x", 0, 2, shx);
    L->flags = SL_LAYER_LTI | SL_LAYER_LINEAR;
    return SL_OK;
}

static int lru_build(sl_model *m, sl_err *err)
{
    lru_cfg c;
    int rc;
    const char *prefix;
    if ((rc = sl_config_str(m->config, "tensor_prefix", "", &prefix, err))) return rc;
    c.prefix = prefix;
    char nm[300];
    int64_t L0 = sl_ssm_count_layers(m->tensors, prefix, "nu_log");
    sl_ssm_prefix(prefix, L0, 0, nm, sizeof nm);
    size_t pl = strlen(nm);
    snprintf(nm + pl, sizeof nm - pl, "B_re");
    const sl_tensor *t = sl_tensors_find(m->tensors, nm);
    int64_t N0 = t && t->ndim == 2 ? t->shape[0] : 0, H0 = t && t->ndim == 2 ? t->shape[1] : 0;
    if ((rc = sl_config_int(m->config, "d_model", H0, &c.H, err)) ||
        (rc = sl_config_int(m->config, "d_state", N0, &c.N, err)) ||
        (rc = sl_config_int(m->config, "n_layer", L0, &c.n_layer, err)))
        return rc;
    if (c.H <= 0) return sl_err_set(err, SL_EFORMAT, "d_model must be positive (is %lld)", (long long)c.H);
    if (c.N <= 0) return sl_err_set(err, SL_EFORMAT, "d_state must be positive (is %lld)", (long long)c.N);
    if (c.n_layer < 1 || c.n_layer > 1024) return sl_err_set(err, SL_EFORMAT, "n_layer must be 1..1024");
    m->layers = calloc((size_t)c.n_layer, sizeof *m->layers);
    if (!m->layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t l = 0; l < c.n_layer; l++) {
        sl_layer *L = NULL;
        rc = lru_layer_new(m, &c, l, &L, err);
        if (L) m->layers[m->n_layers++] = L;
        if (rc) return rc;
    }
    sl_ssm_set_int(m->config, "d_model", c.H);
    sl_ssm_set_int(m->config, "d_state", c.N);
    sl_ssm_set_int(m->config, "n_layer", c.n_layer);
    m->n_in = m->n_out = c.H;
    m->summary = sl_strfmt("lru, %lld layer%s, width %lld, %lld complex states", (long long)c.n_layer,
                           c.n_layer == 1 ? "" : "s", (long long)c.H, (long long)c.N);
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int lru_detect(const sl_tensors *ts, json_t **config)
{
    char pf[256], nm[300];
    *config = NULL;
    if (!sl_ssm_find_suffix(ts, "nu_log", pf, sizeof pf, NULL) &&
        !sl_ssm_find_suffix(ts, "layers.0.nu_log", pf, sizeof pf, NULL))
        return 0;
    snprintf(nm, sizeof nm, "%stheta_log", pf);
    if (!sl_tensors_find(ts, nm)) return 0;
    size_t n = strlen(pf);
    if (n >= 9 && strcmp(pf + n - 9, "layers.0.") == 0) pf[n - 9] = '\0';
    json_t *cfg = json_object();
    if (pf[0]) json_object_set_new(cfg, "tensor_prefix", json_string(pf));
    *config = cfg;
    return 1;
}

static int lru_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    int64_t H, N, L;
    int rc;
    double r_min, r_max, max_phase;
    if ((rc = sl_config_int(cfg, "d_model", 0, &H, err)) || (rc = sl_config_int(cfg, "d_state", 64, &N, err)) ||
        (rc = sl_config_int(cfg, "n_layer", 1, &L, err)) || (rc = sl_config_double(cfg, "r_min", 0.0, &r_min, err)) ||
        (rc = sl_config_double(cfg, "r_max", 1.0, &r_max, err)) ||
        (rc = sl_config_double(cfg, "max_phase", 6.28, &max_phase, err)))
        return rc;
    if (H <= 0) return sl_err_set(err, SL_EINVAL, "d_model must be positive (required)");
    if (N <= 0) return sl_err_set(err, SL_EINVAL, "d_state must be positive");
    if (L < 1 || L > 1024) return sl_err_set(err, SL_EINVAL, "n_layer must be 1..1024");
    if (!(r_min >= 0 && r_max <= 1 && r_min <= r_max)) return sl_err_set(err, SL_EINVAL, "need 0 <= r_min <= r_max <= 1");
    if (!(max_phase > 0)) return sl_err_set(err, SL_EINVAL, "max_phase must be positive");
    sl_ssm_set_int(cfg, "d_state", N);
    sl_ssm_set_int(cfg, "n_layer", L);
    json_object_del(cfg, "r_min");
    json_object_del(cfg, "r_max");
    json_object_del(cfg, "max_phase");
    gsl_rng *r = sl_ssm_rng(seed);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t l = 0; l < L && !rc; l++) {
        char pf[64], nm[128];
        sl_ssm_prefix("", L, l, pf, sizeof pf);
        sl_tensor *tnu, *tth, *tga, *t;
        int64_t shN[1] = { N }, shH[1] = { H }, shB[2] = { N, H }, shC[2] = { H, N };
        snprintf(nm, sizeof nm, "%snu_log", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, shN, &tnu, err))) break;
        for (int64_t j = 0; j < N; j++)
            tnu->data[j] = (float)log(-0.5 * log(gsl_rng_uniform_pos(r) * (r_max * r_max - r_min * r_min) + r_min * r_min));
        snprintf(nm, sizeof nm, "%stheta_log", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, shN, &tth, err))) break;
        for (int64_t j = 0; j < N; j++) tth->data[j] = (float)log(max_phase * gsl_rng_uniform_pos(r));
        const char *bn[4] = { "B_re", "B_im", "C_re", "C_im" };
        for (int q = 0; q < 4 && !rc; q++) {
            snprintf(nm, sizeof nm, "%s%s", pf, bn[q]);
            if ((rc = sl_ssm_add(ts, nm, 2, q < 2 ? shB : shC, &t, err))) break;
            sl_ssm_fill_normal(r, t, 0.0, q < 2 ? 1.0 / sqrt(2.0 * (double)H) : 1.0 / sqrt((double)N));
        }
        if (rc) break;
        snprintf(nm, sizeof nm, "%sD", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, shH, &t, err))) break;
        sl_ssm_fill_normal(r, t, 0.0, 1.0);
        /* Pointers into ts move when it grows: look the logs up again. */
        snprintf(nm, sizeof nm, "%snu_log", pf);
        tnu = sl_tensors_find(ts, nm);
        snprintf(nm, sizeof nm, "%sgamma_log", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, shN, &tga, err))) break;
        for (int64_t j = 0; j < N; j++) {
            /* |lambda|^2 = exp(-2 exp(nu)) */
            const double mod2 = exp(-2.0 * exp((double)tnu->data[j]));
            tga->data[j] = (float)log(sqrt(fmax(1.0 - mod2, 1e-30)));
        }
    }
    gsl_rng_free(r);
    return rc;
}

static const sl_config_key lru_keys[] = {
    {"d_model", "int", "width H of u and y (required)"},
    {"d_state", "int", "complex states N (default 64)"},
    {"n_layer", "int", "stacked layers (default 1)"},
    {"r_min", "float", "smallest initial |lambda| (default 0)"},
    {"r_max", "float", "largest initial |lambda| (default 1)"},
    {"max_phase", "float", "largest initial arg lambda (default 6.28)"},
    {0, 0, 0},
};

const sl_family sl_family_lru = {
    .name = "lru",
    .summary = "Linear Recurrent Unit (LRU; complex diagonal lambda = exp(-exp(nu) + i exp(theta)), gamma-normalised B)",
    .detect = lru_detect,
    .build = lru_build,
    .init = lru_init,
    .keys = lru_keys,
};
