/*
** The s4d family: diagonal state-space layers (Gu, Gupta, Goel, Re 2022, "On
** the Parameterization and Initialization of Diagonal State Space Models"),
** as in the state-spaces/s4 repository's minimal S4D module (models/s4/s4d.py).
**
** A layer maps u in R^H to y in R^H; channel h has M = N/2 complex modes
** (one of each conjugate pair is kept, hence the factor 2):
**
**     A_hm = -exp(log_A_real_hm) + i A_imag_hm,   dt_h = exp(log_dt_h)
**     x_hm,t = Ab_hm x_hm,t-1 + Bb_hm u_h,t       (ZOH: Ab = exp(dt A),
**                                                  Bb = (exp(dt A) - 1)/A B)
**     y_h,t = 2 Re(sum_m C_hm x_hm,t) + D_h u_h,t
**
** with B = 1 as in s4d.py (an optional kernel.B [H, M, 2] is used when
** present), ZOH by default ("disc": zoh, bilinear, euler). The Vandermonde
** kernel K_h,k = 2 Re sum_m C_hm Bb_hm Ab_hm^k gives the convolution form.
** The layer is the linear core: s4d.py's GELU and output_linear (a Conv1d +
** GLU that mixes channels) are not part of it; their tensors stay as "other".
**
** Initialisation (seqlab init): S4D-Lin A_imag = pi m, S4D-Inv
** A_imag = N/pi (N/(2m+1) - 1) (dplr.py's 'lin' and 'inv'), real part -1/2,
** C ~ complex normal (torch.randn(cfloat): variance 1/2 per part), D ~ N(0, 1),
** log_dt uniform in [log dt_min, log dt_max].
**
** Tensors (per layer, under "layers.<l>." when n_layer > 1): kernel.log_dt [H],
** kernel.log_A_real [H, M], kernel.A_imag [H, M], kernel.C [H, M, 2] (real,
** imaginary), D [H], optionally kernel.B [H, M, 2].
**
** Carry: H M complex states as interleaved (re, im) pairs, channel-major.
** Linear system (exact, LTI): A CDIAG (Ab), B BLOCKS H x (2M x 1) (Re, Im of
** Bb), C BLOCKS H x (1 x 2M) ([2 Re C, -2 Im C] per mode), D DIAG; A_ct CDIAG
** (A), B_ct (B), dt per channel and the rule.
*/
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "grad.h"
#include "hippo.h"
#include "scan_backward.h"
#include "ssm.h"
#include "util.h"

typedef struct s4d_layer {
    sl_ssm_head head;
    int64_t H, M;
    sl_disc disc;
    /* the tensors (the model owns them; training changes them in place); B may be NULL (B = 1) */
    const float *log_dt, *log_A_real, *A_imag, *Ct, *Dt, *Bt;
    /* derived at build and by params_changed */
    double *dt;                   /* [H] */
    double *Ac, *Bc;              /* continuous A, B [H, M, 2] */
    double *lam, *bb, *cc, *D;    /* Ab, Bb, 2C [H, M, 2]; D [H] */
    float *lam32, *bb32, *cc32, *D32;
    sl_ssm_kcache kc;
} s4d_layer;

/* dt, the continuous and discretised A and B, 2C and the float copies from the
** tensors. The convolution kernel's cache is dropped by the caller. */
static void s4d_refresh(s4d_layer *s)
{
    const int64_t H = s->H, M = s->M, n = 2 * H * M;
    for (int64_t h = 0; h < H; h++) {
        s->dt[h] = exp((double)s->log_dt[h]);
        s->D[h] = s->Dt[h];
        s->D32[h] = s->Dt[h];
        for (int64_t mm = 0; mm < M; mm++) {
            const int64_t k = 2 * (h * M + mm), j = h * M + mm;
            const double complex a = -exp((double)s->log_A_real[j]) + I * (double)s->A_imag[j];
            const double complex b = s->Bt ? s->Bt[k] + I * (double)s->Bt[k + 1] : 1.0;
            double complex ab, bbar;
            sl_discretize_diag(s->disc, a, b, s->dt[h], &ab, &bbar);
            s->Ac[k] = creal(a); s->Ac[k + 1] = cimag(a);
            s->Bc[k] = creal(b); s->Bc[k + 1] = cimag(b);
            s->lam[k] = creal(ab); s->lam[k + 1] = cimag(ab);
            s->bb[k] = creal(bbar); s->bb[k + 1] = cimag(bbar);
            s->cc[k] = 2.0 * s->Ct[k]; s->cc[k + 1] = 2.0 * s->Ct[k + 1];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        s->lam32[i] = (float)s->lam[i];
        s->bb32[i] = (float)s->bb[i];
        s->cc32[i] = (float)s->cc[i];
    }
}

/* ------------------------------------------------------------ double forms */
static int s4d_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const s4d_layer *s = L->impl;
    (void)err;
    for (int64_t h = 0; h < s->H; h++) {
        double out = s->D[h] * u[h];
        for (int64_t m = 0; m < s->M; m++) {
            const int64_t k = 2 * (h * s->M + m);
            const double xr = s->lam[k] * carry[k] - s->lam[k + 1] * carry[k + 1] + s->bb[k] * u[h];
            const double xi = s->lam[k] * carry[k + 1] + s->lam[k + 1] * carry[k] + s->bb[k + 1] * u[h];
            if (next) { next[k] = xr; next[k + 1] = xi; }
            out += s->cc[k] * xr - s->cc[k + 1] * xi;
        }
        if (y) y[h] = out;
    }
    return SL_OK;
}

static int s4d_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                      sl_err *err)
{
    const s4d_layer *s = L->impl;
    const int64_t H = s->H, M = s->M, n = 2 * H * M;
    (void)carry;
    ls->n_state = n;
    ls->n_in = ls->n_out = H;
    ls->exact = 1;
    ls->u_name = "u";
    int rc = SL_OK;
    if ((what & SL_LS_A) && !(rc = sl_op_cdiag(&ls->A, H * M))) memcpy(ls->A.a, s->lam, (size_t)n * sizeof(double));
    if (!rc && (what & SL_LS_B) && !(rc = sl_op_blocks(&ls->B, H, 2 * M, 1, 1, 0)))
        memcpy(ls->B.a, s->bb, (size_t)n * sizeof(double));
    if (!rc && (what & SL_LS_C) && !(rc = sl_op_blocks(&ls->C, H, 1, 2 * M, 1, 0)))
        for (int64_t k = 0; k < n; k += 2) {
            ls->C.a[k] = s->cc[k];
            ls->C.a[k + 1] = -s->cc[k + 1];
        }
    if (!rc && (what & SL_LS_D) && !(rc = sl_op_diag(&ls->D, H))) memcpy(ls->D.a, s->D, (size_t)H * sizeof(double));
    if (!rc && (what & SL_LS_CT)) {
        ls->has_ct = 1;
        ls->disc = s->disc;
        ls->n_dt = H;
        if (!(rc = sl_op_cdiag(&ls->A_ct, H * M))) memcpy(ls->A_ct.a, s->Ac, (size_t)n * sizeof(double));
        if (!rc && !(rc = sl_op_blocks(&ls->B_ct, H, 2 * M, 1, 1, 0)))
            memcpy(ls->B_ct.a, s->Bc, (size_t)n * sizeof(double));
        if (!rc && !(ls->dt = malloc((size_t)H * sizeof *ls->dt))) rc = SL_ENOMEM;
        if (!rc) memcpy(ls->dt, s->dt, (size_t)H * sizeof *ls->dt);
    }
    if (!rc && !(ls->u = malloc((size_t)H * sizeof *ls->u))) rc = SL_ENOMEM;
    if (rc) return sl_err_set(err, SL_ENOMEM, "out of memory");
    memcpy(ls->u, u, (size_t)H * sizeof *ls->u);
    return SL_OK;
}

/* ------------------------------------------------------------ convolution */
/* Vandermonde kernel: K[h, k] = sum_m Re(cc bb lam^k), powers by repeated
** multiplication in double (relative error ~ k eps). */
static int s4d_kernel(const sl_layer *L, int64_t T, double *K, sl_err *err)
{
    const s4d_layer *s = L->impl;
    const int64_t H = s->H, M = s->M;
    int failed = 0;
#pragma omp parallel if (H > 1 && (double)H * (double)M * (double)T > 1e6)
    {
        double *w = malloc((size_t)(4 * M + 1) * sizeof *w), *p = w ? w + 2 * M : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t h = 0; h < H; h++) {
            if (!w) { failed = 1; continue; }
            for (int64_t m = 0; m < M; m++) {
                const int64_t k = 2 * (h * M + m);
                w[2 * m] = s->cc[k] * s->bb[k] - s->cc[k + 1] * s->bb[k + 1];
                w[2 * m + 1] = s->cc[k] * s->bb[k + 1] + s->cc[k + 1] * s->bb[k];
                p[2 * m] = 1.0;
                p[2 * m + 1] = 0.0;
            }
            const double *lam = s->lam + 2 * h * M;
            for (int64_t t = 0; t < T; t++) {
                double acc = 0.0;
                for (int64_t m = 0; m < M; m++) {
                    acc += w[2 * m] * p[2 * m] - w[2 * m + 1] * p[2 * m + 1];
                    const double pr = p[2 * m] * lam[2 * m] - p[2 * m + 1] * lam[2 * m + 1];
                    p[2 * m + 1] = p[2 * m] * lam[2 * m + 1] + p[2 * m + 1] * lam[2 * m];
                    p[2 * m] = pr;
                }
                K[h * T + t] = acc;
            }
        }
        free(w);
    }
    return failed ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
}

static int s4d_conv(const sl_layer *L, int64_t nb, int64_t T, const double *u, double *y, double *carry, sl_err *err)
{
    s4d_layer *s = L->impl;
    const int64_t H = s->H, M = s->M, nc = L->n_carry;
    const sl_fftconv *plan;
    sl_ssm_kcache_lock(&s->kc);
    int rc = sl_ssm_kcache_plan(&s->kc, L, s4d_kernel, T, &plan, err);
    if (!rc) rc = sl_fftconv_apply_skip(plan, nb, T, u, H, y, H, 0, s->D, err);   /* y = K * u + D u */
    sl_ssm_kcache_unlock(&s->kc);
    if (rc) return rc;
    if (!carry) return SL_OK;
    /* Diagonal: the free response of the start state and the final state are
    ** O(T M) per channel, computed directly. */
#pragma omp parallel for schedule(dynamic, 1) if (nb * H > 1 && (double)nb * (double)H * (double)M * (double)T > 1e6)
    for (int64_t p = 0; p < nb * H; p++) {
        const int64_t b = p / H, h = p % H;
        double *x = carry + b * nc + 2 * h * M;
        for (int64_t m = 0; m < M; m++) {
            const int64_t k = 2 * (h * M + m);
            const double complex lam = s->lam[k] + I * s->lam[k + 1], bb = s->bb[k] + I * s->bb[k + 1],
                                 cc = s->cc[k] + I * s->cc[k + 1];
            double complex x0 = x[2 * m] + I * x[2 * m + 1], z = x0, xt = x0;
            for (int64_t t = 0; t < T; t++) {
                if (x0 != 0) {
                    z *= lam;
                    y[(b * T + t) * H + h] += creal(cc * z);
                }
                xt = lam * xt + bb * u[(b * T + t) * H + h];
            }
            x[2 * m] = creal(xt);
            x[2 * m + 1] = cimag(xt);
        }
    }
    return SL_OK;
}

/* ------------------------------------------------------------ float forward */
static int s4d_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const s4d_layer *s = L->impl;
    int algo = f->algo;
    if (algo == SL_ALGO_AUTO) algo = SL_ALGO_RECURRENT;   /* O(T N) per channel: the scan is the cheaper one */
    if (algo == SL_ALGO_CHUNKED) return sl_err_set(err, SL_EUNSUP, "s4d has the recurrent and conv algorithms");
    if (algo == SL_ALGO_CONV && !f->states) return sl_ssm_forward_conv(L, f, err);
    float *carry = f->carry;
    if (!carry && !(carry = calloc((size_t)(f->B * L->n_carry + 1), sizeof *carry)))
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    sl_cdiag_f32 k = { .H = s->H, .M = s->M, .lam = s->lam32, .bb = s->bb32, .cc = s->cc32, .d = s->D32 };
    int rc = (algo == SL_ALGO_REFERENCE ? sl_cdiag_scan_ref_f32 : sl_cdiag_scan_f32)(
        &k, f->B, f->T, f->x, s->H, f->y, s->H, carry, L->n_carry, f->states, L->n_carry);
    if (carry != f->carry) free(carry);
    return rc ? sl_err_set(err, rc, "out of memory") : SL_OK;
}

static void s4d_free(sl_layer *L)
{
    s4d_layer *s = L->impl;
    if (!s) return;
    sl_ssm_kcache_free(&s->kc);
    free(s->dt); free(s->Ac); free(s->Bc); free(s->lam); free(s->bb); free(s->cc); free(s->D);
    free(s->lam32); free(s->bb32); free(s->cc32); free(s->D32);
    free(s);
}

/* ------------------------------------------------------------ training */
/* The derivatives of one mode's discretisation (sl_discretize_diag) with
** respect to a, dt and b: lam(dt a), bb = dt b phi(dt a). */
typedef struct s4d_ddisc {
    double complex lam_a, lam_dt, bb_a, bb_dt, bb_b;
} s4d_ddisc;

static s4d_ddisc s4d_disc_derivs(sl_disc rule, double complex a, double complex b, double dt)
{
    s4d_ddisc d;
    const double complex x = dt * a;
    switch (rule) {
    case SL_DISC_BILINEAR: {
        const double complex q = 1.0 / (1.0 - 0.5 * x), q2 = q * q;
        d.lam_a = dt * q2;
        d.lam_dt = a * q2;
        d.bb_a = 0.5 * dt * dt * b * q2;
        d.bb_dt = b * q2;
        d.bb_b = dt * q;
        break;
    }
    case SL_DISC_EULER:
        d.lam_a = dt;
        d.lam_dt = a;
        d.bb_a = 0.0;
        d.bb_dt = b;
        d.bb_b = dt;
        break;
    case SL_DISC_ZOH:
    default: {
        /* phi(x) = (e^x - 1)/x, phi'(x) = (e^x - phi)/x; series near 0 */
        const double complex e = cexp(x);
        double complex phi, dphi;
        if (cabs(x) < 1e-5) {
            phi = 1.0 + x / 2.0 + x * x / 6.0;
            dphi = 0.5 + x / 3.0 + x * x / 8.0;
        } else {
            const double xr = creal(x), xi = cimag(x), sh = sin(0.5 * xi);
            const double complex em1 = (expm1(xr) * cos(xi) - 2.0 * sh * sh) + I * (exp(xr) * sin(xi));
            phi = em1 / x;
            dphi = (e - phi) / x;
        }
        d.lam_a = dt * e;
        d.lam_dt = a * e;
        d.bb_a = dt * dt * b * dphi;
        d.bb_dt = b * e;
        d.bb_b = dt * phi;
        break;
    }
    }
    return d;
}

/* Backward pass (s4d_backward_impl.h, once per precision): the scan's
** backward (sl_cdiag_scan_backward) gives dL/du, dL/d(start state) and the
** gradients of Ab, Bb, 2C and D; the chain through the discretisation to
** log_dt, log_A_real, A_imag and B runs in double. */
#define REAL float
#define S4B(n) n##_f32
#define S4B_BWD sl_bwd
#define S4B_GRAD sl_grads_f32
#define S4B_CDIAG sl_cdiag_f32
#define S4B_ARR(s, a) ((s)->a##32)
#include "s4d_backward_impl.h"
#undef REAL
#undef S4B
#undef S4B_BWD
#undef S4B_GRAD
#undef S4B_CDIAG
#undef S4B_ARR

#define REAL double
#define S4B(n) n##_f64
#define S4B_BWD sl_bwd_f64
#define S4B_GRAD sl_grads_f64
#define S4B_CDIAG sl_cdiag_f64
#define S4B_ARR(s, a) ((s)->a)
#include "s4d_backward_impl.h"

static int s4d_params_changed(sl_layer *L, sl_err *err)
{
    s4d_layer *s = L->impl;
    s4d_refresh(s);
    /* the convolution kernel was built from the old parameters */
    sl_ssm_kcache_free(&s->kc);
    if (sl_ssm_kcache_init(&s->kc, s->H, 1)) return sl_err_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}

static const sl_layer_ops s4d_ops = {
    .forward = s4d_forward,
    .step = s4d_step,
    .linsys = s4d_linsys,
    .free = s4d_free,
    .backward = s4d_backward_f32,
    .backward_f64 = s4d_backward_f64,
    .params_changed = s4d_params_changed,
};

/* ------------------------------------------------------------ build */
typedef struct s4d_cfg {
    int64_t H, N, n_layer;
    sl_disc disc;
    const char *prefix;
} s4d_cfg;

static int s4d_layer_new(sl_model *m, const s4d_cfg *c, int64_t l, sl_layer **out, sl_err *err)
{
    const int64_t H = c->H, M = c->N / 2;
    char pf[300];
    sl_ssm_prefix(c->prefix, c->n_layer, l, pf, sizeof pf);
    int64_t sh1[1] = { H }, sh2[2] = { H, M }, sh3[3] = { H, M, 2 };
    const sl_tensor *tdt, *tar, *tai, *tC, *tD, *tB;
    int rc;
    if ((rc = sl_ssm_get(m, pf, "kernel.log_dt", 1, sh1, &tdt, err)) ||
        (rc = sl_ssm_get(m, pf, "kernel.log_A_real", 2, sh2, &tar, err)) ||
        (rc = sl_ssm_get(m, pf, "kernel.A_imag", 2, sh2, &tai, err)) ||
        (rc = sl_ssm_get(m, pf, "kernel.C", 3, sh3, &tC, err)) || (rc = sl_ssm_get(m, pf, "D", 1, sh1, &tD, err)) ||
        (rc = sl_ssm_opt(m, pf, "kernel.B", 3, sh3, &tB, err)))
        return rc;
    sl_layer *L = calloc(1, sizeof *L);
    s4d_layer *s = calloc(1, sizeof *s);
    if (!L || !s) { free(L); free(s); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    L->impl = s;
    L->ops = &s4d_ops;
    *out = L;
    s->head.conv = s4d_conv;
    s->H = H;
    s->M = M;
    s->disc = c->disc;
    const int64_t n = 2 * H * M;
    s->dt = malloc((size_t)H * sizeof *s->dt);
    s->D = malloc((size_t)H * sizeof *s->D);
    s->D32 = malloc((size_t)H * sizeof *s->D32);
    double **d64[5] = { &s->Ac, &s->Bc, &s->lam, &s->bb, &s->cc };
    float **d32[3] = { &s->lam32, &s->bb32, &s->cc32 };
    for (int i = 0; i < 5; i++) *d64[i] = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < 3; i++) *d32[i] = malloc((size_t)n * sizeof(float));
    if (!s->dt || !s->D || !s->D32 || !s->Ac || !s->Bc || !s->lam || !s->bb || !s->cc || !s->lam32 || !s->bb32 ||
        !s->cc32 || sl_ssm_kcache_init(&s->kc, H, 1))
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    s->log_dt = tdt->data;
    s->log_A_real = tar->data;
    s->A_imag = tai->data;
    s->Ct = tC->data;
    s->Dt = tD->data;
    s->Bt = tB ? tB->data : NULL;
    s4d_refresh(s);
    L->kind = "s4d";
    L->index = (int)l;
    L->n_in = L->n_out = H;
    L->n_carry = L->n_state = n;
    L->n_sys_in = L->n_sys_out = H;
    int64_t shx[3] = { H, M, 2 };
    sl_layer_add_block(L, "x", 0, 3, shx);
    L->flags = SL_LAYER_LTI | SL_LAYER_LINEAR;
    return SL_OK;
}

static int s4d_parse(const json_t *cfg, const sl_tensors *ts, s4d_cfg *c, sl_err *err)
{
    int rc;
    const char *disc, *prefix;
    if ((rc = sl_config_str(cfg, "tensor_prefix", "", &prefix, err))) return rc;
    c->prefix = prefix;
    char nm[300];
    int64_t L0 = sl_ssm_count_layers(ts, prefix, "kernel.log_dt");
    sl_ssm_prefix(prefix, L0, 0, nm, sizeof nm);
    size_t pl = strlen(nm);
    snprintf(nm + pl, sizeof nm - pl, "kernel.log_A_real");
    const sl_tensor *t = sl_tensors_find(ts, nm);
    int64_t H0 = t && t->ndim == 2 ? t->shape[0] : 0, N0 = t && t->ndim == 2 ? 2 * t->shape[1] : 64;
    if ((rc = sl_config_int(cfg, "d_model", H0, &c->H, err)) || (rc = sl_config_int(cfg, "d_state", N0, &c->N, err)) ||
        (rc = sl_config_int(cfg, "n_layer", L0, &c->n_layer, err)) ||
        (rc = sl_config_str(cfg, "disc", "zoh", &disc, err)) || (rc = sl_disc_parse(disc, &c->disc, err)))
        return rc;
    if (c->disc == SL_DISC_EXP) return sl_err_set(err, SL_EINVAL, "s4d: disc must be zoh, bilinear or euler");
    if (c->H <= 0) return sl_err_set(err, SL_EINVAL, "d_model must be positive (is %lld)", (long long)c->H);
    if (c->N <= 0 || c->N % 2) return sl_err_set(err, SL_EINVAL, "d_state must be positive and even (is %lld)", (long long)c->N);
    if (c->n_layer < 1 || c->n_layer > 1024) return sl_err_set(err, SL_EINVAL, "n_layer must be 1..1024");
    return SL_OK;
}

static int s4d_build(sl_model *m, sl_err *err)
{
    s4d_cfg c;
    int rc = s4d_parse(m->config, m->tensors, &c, err);
    if (rc) return rc;
    m->layers = calloc((size_t)c.n_layer, sizeof *m->layers);
    if (!m->layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t l = 0; l < c.n_layer; l++) {
        sl_layer *L = NULL;
        rc = s4d_layer_new(m, &c, l, &L, err);
        if (L) m->layers[m->n_layers++] = L;
        if (rc) return rc;
    }
    for (size_t i = 0; i < m->tensors->n; i++)
        if (strstr(m->tensors->t[i].name, "output_linear")) {
            sl_model_note(m, "output_linear (the S4D module's GELU + GLU channel mixing) is not part of seqlab's "
                             "s4d layer; the layer's output is the SSM's y");
            break;
        }
    sl_ssm_set_int(m->config, "d_model", c.H);
    sl_ssm_set_int(m->config, "d_state", c.N);
    sl_ssm_set_int(m->config, "n_layer", c.n_layer);
    json_object_set_new(m->config, "disc", json_string(sl_disc_name(c.disc)));
    m->n_in = m->n_out = c.H;
    m->summary = sl_strfmt("s4d, %lld layer%s, %lld channels, %lld complex modes per channel, %s", (long long)c.n_layer,
                           c.n_layer == 1 ? "" : "s", (long long)c.H, (long long)(c.N / 2), sl_disc_name(c.disc));
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int s4d_detect(const sl_tensors *ts, json_t **config)
{
    char pf[256];
    *config = NULL;
    if (!sl_ssm_find_suffix(ts, "kernel.log_A_real", pf, sizeof pf, NULL) &&
        !sl_ssm_find_suffix(ts, "layers.0.kernel.log_A_real", pf, sizeof pf, NULL))
        return 0;
    size_t n = strlen(pf);
    if (n >= 9 && strcmp(pf + n - 9, "layers.0.") == 0) pf[n - 9] = '\0';
    json_t *cfg = json_object();
    if (pf[0]) json_object_set_new(cfg, "tensor_prefix", json_string(pf));
    *config = cfg;
    return 1;
}

static int s4d_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    int64_t H, N, L;
    int rc;
    double dt_min, dt_max;
    const char *init, *disc;
    sl_disc d;
    if ((rc = sl_config_int(cfg, "d_model", 0, &H, err)) || (rc = sl_config_int(cfg, "d_state", 64, &N, err)) ||
        (rc = sl_config_int(cfg, "n_layer", 1, &L, err)) || (rc = sl_config_double(cfg, "dt_min", 0.001, &dt_min, err)) ||
        (rc = sl_config_double(cfg, "dt_max", 0.1, &dt_max, err)) ||
        (rc = sl_config_str(cfg, "init", "lin", &init, err)) || (rc = sl_config_str(cfg, "disc", "zoh", &disc, err)) ||
        (rc = sl_disc_parse(disc, &d, err)))
        return rc;
    if (H <= 0) return sl_err_set(err, SL_EINVAL, "d_model must be positive (required)");
    if (N <= 0 || N % 2) return sl_err_set(err, SL_EINVAL, "d_state must be positive and even");
    if (L < 1 || L > 1024) return sl_err_set(err, SL_EINVAL, "n_layer must be 1..1024");
    int inv = strcmp(init, "inv") == 0;
    if (!inv && strcmp(init, "lin") != 0) return sl_err_set(err, SL_EINVAL, "init must be lin (S4D-Lin) or inv (S4D-Inv)");
    if (!(dt_min > 0 && dt_max >= dt_min)) return sl_err_set(err, SL_EINVAL, "need 0 < dt_min <= dt_max");
    sl_ssm_set_int(cfg, "d_state", N);
    sl_ssm_set_int(cfg, "n_layer", L);
    json_object_set_new(cfg, "disc", json_string(sl_disc_name(d)));
    json_object_set_new(cfg, "init", json_string(inv ? "inv" : "lin"));
    json_object_del(cfg, "dt_min");
    json_object_del(cfg, "dt_max");
    gsl_rng *r = sl_ssm_rng(seed);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    const int64_t M = N / 2;
    for (int64_t l = 0; l < L && !rc; l++) {
        char pf[64], nm[128];
        sl_ssm_prefix("", L, l, pf, sizeof pf);
        sl_tensor *t;
        int64_t sh1[1] = { H }, sh2[2] = { H, M }, sh3[3] = { H, M, 2 };
        /* s4d.py's order: D, then the kernel's C, log_dt, log_A_real, A_imag. */
        snprintf(nm, sizeof nm, "%sD", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, sh1, &t, err))) break;
        sl_ssm_fill_normal(r, t, 0.0, 1.0);
        snprintf(nm, sizeof nm, "%skernel.C", pf);
        if ((rc = sl_ssm_add(ts, nm, 3, sh3, &t, err))) break;
        sl_ssm_fill_normal(r, t, 0.0, sqrt(0.5));
        snprintf(nm, sizeof nm, "%skernel.log_dt", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, sh1, &t, err))) break;
        sl_ssm_fill_uniform(r, t, log(dt_min), log(dt_max));
        snprintf(nm, sizeof nm, "%skernel.log_A_real", pf);
        if ((rc = sl_ssm_add(ts, nm, 2, sh2, &t, err))) break;
        sl_ssm_fill_const(t, log(0.5));
        snprintf(nm, sizeof nm, "%skernel.A_imag", pf);
        if ((rc = sl_ssm_add(ts, nm, 2, sh2, &t, err))) break;
        for (int64_t i = 0; i < H * M; i++) {
            const double mm = (double)(i % M);
            t->data[i] = (float)(inv ? (double)N / M_PI * ((double)N / (2.0 * mm + 1.0) - 1.0) : M_PI * mm);
        }
    }
    gsl_rng_free(r);
    return rc;
}

static const sl_config_key s4d_keys[] = {
    {"d_model", "int", "channels H (required)"},
    {"d_state", "int", "state N per channel, N/2 complex modes (default 64)"},
    {"n_layer", "int", "stacked layers (default 1)"},
    {"init", "string", "imaginary parts of A: lin (S4D-Lin) or inv (S4D-Inv) (default lin)"},
    {"disc", "string", "discretisation: zoh, bilinear, euler (default zoh)"},
    {"dt_min", "float", "smallest initial step (default 0.001)"},
    {"dt_max", "float", "largest initial step (default 0.1)"},
    {0, 0, 0},
};

const sl_family sl_family_s4d = {
    .name = "s4d",
    .summary = "S4D diagonal state-space layer (complex diagonal A, S4D-Lin/Inv; recurrent or Vandermonde conv)",
    .detect = s4d_detect,
    .build = s4d_build,
    .init = s4d_init,
    .keys = s4d_keys,
};
