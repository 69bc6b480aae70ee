/*
** The lssl family: the Linear State-Space Layer of Gu et al. 2021 (LSSL, the
** predecessor of S4), as in the state-spaces/s4 reference code
** (src/models/sequence/ss/lssl.py with hippo.transition()).
**
** A layer maps u in R^H to y in R^H with H independent single-input
** single-output systems, each with a state of N:
**
**     dx_h/dt = A_h x_h + B_h u_h,     y_h = C_h . x_h + D_h u_h,
**
** A the HiPPO matrix of the measure (LegS by default), trainable, shared by
** every channel (the reference's learn=1) or one per channel (learn=2); B the
** HiPPO B; dt_h = exp(log_dt_h) per channel; discretised by the bilinear
** transform (the LSSL default) or zero-order hold or forward Euler ("disc").
** The layer is the linear core alone: the reference module's pointwise
** activation and output_linear are not part of it (tensors with those names
** stay in the model as "other").
**
** Two forward algorithms that agree:
**   recurrent  x_t = Ab x_{t-1} + Bb u_t per channel (kernels/scan.h, float);
**   conv       y = K * u + D u with K_k = C Ab^k Bb, the kernel computed once
**              per layer in double (sl_lti_kernel: two-level Krylov doubling
**              with GEMMs) and applied by FFT; a
**              start state adds its free response C Ab^{t+1} x_0 and the final
**              state is carried in blocks of 64 steps (sl_lti_final_state).
** AUTO picks conv for T >= 64 with N >= 16 (where T N^2 outweighs T log T)
** unless every state is asked for or the spectra would pass 256 MB.
**
** Tensors (per layer, under "layers.<l>." when n_layer > 1, after
** tensor_prefix): transition.A [N, N] (shared) or [H, N, N], transition.B [N]
** or [H, N], C [H, 1, N] (or [H, N]), D [H, 1] (or [H]), log_dt [H].
** Config: d_model (H), d_state (N, 64), n_layer (1), measure ("legs", "legt",
** "lagt"), a_shared (true), disc ("bilinear", "zoh", "euler"), dt_min (0.001),
** dt_max (0.1), tensor_prefix ("").
**
** Linear system (exact, LTI): A BLOCKS of H N x N discrete blocks, B BLOCKS
** H x (N x 1), C BLOCKS H x (1 x N), D DIAG, u the layer input; the continuous
** form A_ct BLOCKS (shared when A is), B_ct, dt per channel and the rule.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "hippo.h"
#include "kernels.h"
#include "ssm.h"
#include "util.h"

#define LSSL_CHUNK 64

typedef struct lssl_layer {
    sl_ssm_head head;
    int64_t H, N;
    int a_shared, b_shared;
    sl_disc disc;
    const float *A, *B;        /* continuous-time tensors */
    double *dt;                /* [H] */
    double *Ad, *Bd, *Cd, *Dd; /* [H,N,N], [H,N], [H,N], [H] */
    float *At32, *B32, *C32, *D32;
    sl_ssm_kcache kc;
    /* Carry pieces for the conv path, built on first need (under kc's lock). */
    double *V, *W, *AL;        /* [H,N,L], [H,L,N], [H,N,N] */
} lssl_layer;

/* ------------------------------------------------------------ double forms */
static int lssl_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const lssl_layer *s = L->impl;
    const int64_t H = s->H, N = s->N;
    for (int64_t h = 0; h < H; h++) {
        const double *A = s->Ad + h * N * N, *x = carry + h * N;
        double out = s->Dd[h] * u[h];
        for (int64_t i = 0; i < N; i++) {
            double acc = s->Bd[h * N + i] * u[h];
            for (int64_t j = 0; j < N; j++) acc += A[i * N + j] * x[j];
            if (next) next[h * N + i] = acc;
            out += s->Cd[h * N + i] * acc;
        }
        if (y) y[h] = out;
    }
    (void)err;
    return SL_OK;
}

static int lssl_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                       sl_err *err)
{
    const lssl_layer *s = L->impl;
    const int64_t H = s->H, N = s->N;
    (void)carry;
    ls->n_state = H * N;
    ls->n_in = ls->n_out = H;
    ls->exact = 1;
    ls->u_name = "u";
    int rc = SL_OK;
    if ((what & SL_LS_A) && !(rc = sl_op_blocks(&ls->A, H, N, N, 1, 0)))
        memcpy(ls->A.a, s->Ad, (size_t)(H * N * N) * sizeof *s->Ad);
    if (!rc && (what & SL_LS_B) && !(rc = sl_op_blocks(&ls->B, H, N, 1, 1, 0)))
        memcpy(ls->B.a, s->Bd, (size_t)(H * N) * sizeof *s->Bd);
    if (!rc && (what & SL_LS_C) && !(rc = sl_op_blocks(&ls->C, H, 1, N, 1, 0)))
        memcpy(ls->C.a, s->Cd, (size_t)(H * N) * sizeof *s->Cd);
    if (!rc && (what & SL_LS_D) && !(rc = sl_op_diag(&ls->D, H)))
        memcpy(ls->D.a, s->Dd, (size_t)H * sizeof *s->Dd);
    if (!rc && (what & SL_LS_CT)) {
        ls->has_ct = 1;
        ls->disc = s->disc;
        ls->n_dt = H;
        if (!(rc = sl_op_blocks(&ls->A_ct, H, N, N, 1, s->a_shared)))
            for (int64_t i = 0; i < (s->a_shared ? 1 : H) * N * N; i++) ls->A_ct.a[i] = s->A[i];
        if (!rc && !(rc = sl_op_blocks(&ls->B_ct, H, N, 1, 1, s->b_shared)))
            for (int64_t i = 0; i < (s->b_shared ? 1 : H) * N; i++) ls->B_ct.a[i] = s->B[i];
        if (!rc && !(ls->dt = malloc((size_t)H * sizeof *ls->dt))) rc = SL_ENOMEM;
        if (!rc) memcpy(ls->dt, s->dt, (size_t)H * sizeof *ls->dt);
    }
    if (!rc && !(ls->u = malloc((size_t)H * sizeof *ls->u))) rc = SL_ENOMEM;
    if (rc) return sl_err_set(err, SL_ENOMEM, "out of memory");
    memcpy(ls->u, u, (size_t)H * sizeof *ls->u);
    return SL_OK;
}

/* ------------------------------------------------------------ convolution */
static int lssl_kernel(const sl_layer *L, int64_t T, double *K, sl_err *err)
{
    const lssl_layer *s = L->impl;
    const int64_t H = s->H, N = s->N;
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) if (H > 1 && (double)H * (double)N * (double)N * (double)N > 1e6)
    for (int64_t h = 0; h < H; h++)
        if (sl_lti_kernel(N, s->Ad + h * N * N, s->Bd + h * N, s->Cd + h * N, T, K + h * T, NULL)) {
#pragma omp atomic write
            failed = 1;
        }
    return failed ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
}

static int lssl_carry_pieces(lssl_layer *s, sl_err *err)
{
    if (s->V) return SL_OK;
    const int64_t H = s->H, N = s->N, Lc = LSSL_CHUNK;
    double *V = malloc((size_t)(H * N * Lc) * sizeof *V), *W = malloc((size_t)(H * N * Lc) * sizeof *W),
           *AL = malloc((size_t)(H * N * N) * sizeof *AL);
    int rc = (!V || !W || !AL) ? SL_ENOMEM : SL_OK;
    for (int64_t h = 0; h < H && !rc; h++) {
        rc = sl_lti_krylov(N, s->Ad + h * N * N, s->Bd + h * N, Lc, V + h * N * Lc, AL + h * N * N, err);
        if (!rc) rc = sl_lti_krylov_rows(N, s->Ad + h * N * N, s->Cd + h * N, Lc, W + h * N * Lc, err);
    }
    if (rc) {
        free(V); free(W); free(AL);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    s->V = V;
    s->W = W;
    s->AL = AL;
    return SL_OK;
}

static int lssl_conv(const sl_layer *L, int64_t nb, int64_t T, const double *u, double *y, double *carry, sl_err *err)
{
    lssl_layer *s = L->impl;
    const int64_t H = s->H, N = s->N, nc = L->n_carry;
    const sl_fftconv *plan;
    sl_ssm_kcache_lock(&s->kc);
    int rc = sl_ssm_kcache_plan(&s->kc, L, lssl_kernel, T, &plan, err);
    if (!rc) rc = sl_fftconv_apply_skip(plan, nb, T, u, H, y, H, 0, s->Dd, err);   /* y = K * u + D u */
    if (!rc && carry) rc = lssl_carry_pieces(s, err);
    if (!rc && carry) {
        int failed = 0;
#pragma omp parallel if (nb * H > 1 && (double)nb * (double)H * (double)T * (double)N > 1e6)
        {
            double *work = malloc((size_t)(4 * N) * sizeof *work), *xT = work ? work + 2 * N : NULL;
#pragma omp for schedule(dynamic, 1)
            for (int64_t p = 0; p < nb * H; p++) {
                if (!work) { failed = 1; continue; }
                const int64_t b = p / H, h = p % H;
                double *x0 = carry + b * nc + h * N;
                int nz = 0;
                for (int64_t i = 0; i < N; i++) nz |= x0[i] != 0.0;
                const double *A = s->Ad + h * N * N, *AL = s->AL + h * N * N;
                if (nz) sl_lti_free_response(N, A, LSSL_CHUNK, s->W + h * N * LSSL_CHUNK, AL, T, x0,
                                             y + b * T * H + h, H, work);
                sl_lti_final_state(N, A, s->Bd + h * N, LSSL_CHUNK, s->V + h * N * LSSL_CHUNK, AL, T,
                                   u + b * T * H + h, H, nz ? x0 : NULL, xT, work);
                memcpy(x0, xT, (size_t)N * sizeof *x0);
            }
            free(work);
        }
        if (failed) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    sl_ssm_kcache_unlock(&s->kc);
    return rc;
}

/* ------------------------------------------------------------ float forward */
static int lssl_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const lssl_layer *s = L->impl;
    const int64_t H = s->H, N = s->N;
    int algo = f->algo;
    if (algo == SL_ALGO_AUTO) algo = (N >= 16 && sl_ssm_auto_conv(f, H, 2 * H)) ? SL_ALGO_CONV : SL_ALGO_RECURRENT;
    if (algo == SL_ALGO_CHUNKED) return sl_err_set(err, SL_EUNSUP, "lssl has the recurrent and conv algorithms");
    if (algo == SL_ALGO_CONV && !f->states) return sl_ssm_forward_conv(L, f, err);
    float *carry = f->carry;
    if (!carry && !(carry = calloc((size_t)(f->B * L->n_carry + 1), sizeof *carry)))
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    sl_lti_f32 k = { .H = H, .N = N, .At = s->At32, .a_stride = N * N, .b = s->B32, .b_stride = N, .c = s->C32,
                     .d = s->D32 };
    int rc = (algo == SL_ALGO_REFERENCE ? sl_lti_scan_ref_f32 : sl_lti_scan_f32)(
        &k, f->B, f->T, f->x, H, f->y, H, carry, L->n_carry, f->states, L->n_carry);
    if (carry != f->carry) free(carry);
    return rc ? sl_err_set(err, rc, "out of memory") : SL_OK;
}

static void lssl_free(sl_layer *L)
{
    lssl_layer *s = L->impl;
    if (!s) return;
    sl_ssm_kcache_free(&s->kc);
    free(s->dt); free(s->Ad); free(s->Bd); free(s->Cd); free(s->Dd);
    free(s->At32); free(s->B32); free(s->C32); free(s->D32);
    free(s->V); free(s->W); free(s->AL);
    free(s);
}

static const sl_layer_ops lssl_ops = {
    .forward = lssl_forward,
    .step = lssl_step,
    .linsys = lssl_linsys,
    .free = lssl_free,
};

/* ------------------------------------------------------------ build */
typedef struct lssl_cfg {
    int64_t H, N, n_layer;
    int a_shared;
    sl_disc disc;
    const char *prefix;
} lssl_cfg;

static int lssl_layer_new(sl_model *m, const lssl_cfg *c, int64_t l, sl_layer **out, sl_err *err)
{
    const int64_t H = c->H, N = c->N;
    char pf[300];
    sl_ssm_prefix(c->prefix, c->n_layer, l, pf, sizeof pf);
    int rc;
    /* transition.A: [N, N] shared or [H, N, N]; transition.B: [N] or [H, N]. */
    const sl_tensor *tA, *tB, *tC, *tD, *tdt;
    if ((rc = sl_ssm_get(m, pf, "transition.A", 0, NULL, &tA, err))) return rc;
    int a_shared = tA->ndim == 2;
    int64_t shA2[2] = { N, N }, shA3[3] = { H, N, N };
    if ((rc = sl_tensor_expect(tA, tA->name, a_shared ? 2 : 3, a_shared ? shA2 : shA3, err))) return rc;
    if ((rc = sl_ssm_get(m, pf, "transition.B", 0, NULL, &tB, err))) return rc;
    int b_shared = tB->ndim == 1;
    int64_t shB1[1] = { N }, shB2[2] = { H, N };
    if ((rc = sl_tensor_expect(tB, tB->name, b_shared ? 1 : 2, b_shared ? shB1 : shB2, err))) return rc;
    if ((rc = sl_ssm_get(m, pf, "C", 0, NULL, &tC, err))) return rc;
    int64_t shC3[3] = { H, 1, N }, shC2[2] = { H, N };
    if ((rc = sl_tensor_expect(tC, tC->name, tC->ndim == 3 ? 3 : 2, tC->ndim == 3 ? shC3 : shC2, err))) return rc;
    if ((rc = sl_ssm_get(m, pf, "D", 0, NULL, &tD, err))) return rc;
    int64_t shD2[2] = { H, 1 }, shD1[1] = { H };
    if ((rc = sl_tensor_expect(tD, tD->name, tD->ndim == 2 ? 2 : 1, tD->ndim == 2 ? shD2 : shD1, err))) return rc;
    if ((rc = sl_ssm_get(m, pf, "log_dt", 1, shD1, &tdt, err))) return rc;

    sl_layer *L = calloc(1, sizeof *L);
    lssl_layer *s = calloc(1, sizeof *s);
    if (!L || !s) { free(L); free(s); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    L->impl = s;
    L->ops = &lssl_ops;
    *out = L;
    s->head.conv = lssl_conv;
    s->H = H;
    s->N = N;
    s->a_shared = a_shared;
    s->b_shared = b_shared;
    s->disc = c->disc;
    s->A = tA->data;
    s->B = tB->data;
    s->dt = malloc((size_t)H * sizeof *s->dt);
    s->Ad = malloc((size_t)(H * N * N) * sizeof *s->Ad);
    s->Bd = malloc((size_t)(H * N) * sizeof *s->Bd);
    s->Cd = malloc((size_t)(H * N) * sizeof *s->Cd);
    s->Dd = malloc((size_t)H * sizeof *s->Dd);
    s->At32 = malloc((size_t)(H * N * N) * sizeof *s->At32);
    s->B32 = malloc((size_t)(H * N) * sizeof *s->B32);
    s->C32 = malloc((size_t)(H * N) * sizeof *s->C32);
    s->D32 = malloc((size_t)H * sizeof *s->D32);
    double *Ac = malloc((size_t)(N * N + N) * sizeof *Ac), *Bc = Ac ? Ac + N * N : NULL;
    if (!s->dt || !s->Ad || !s->Bd || !s->Cd || !s->Dd || !s->At32 || !s->B32 || !s->C32 || !s->D32 || !Ac ||
        sl_ssm_kcache_init(&s->kc, H, 1)) {
        free(Ac);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    for (int64_t h = 0; h < H && !rc; h++) {
        s->dt[h] = exp((double)tdt->data[h]);
        const float *Ah = tA->data + (a_shared ? 0 : h * N * N), *Bh = tB->data + (b_shared ? 0 : h * N);
        for (int64_t i = 0; i < N * N; i++) Ac[i] = Ah[i];
        for (int64_t i = 0; i < N; i++) Bc[i] = Bh[i];
        rc = sl_discretize(c->disc, N, 1, Ac, Bc, s->dt[h], s->Ad + h * N * N, s->Bd + h * N, err);
        if (rc) sl_err_prefix(err, "layer %lld channel %lld", (long long)l, (long long)h);
        for (int64_t i = 0; i < N; i++) {
            s->Cd[h * N + i] = tC->data[h * N + i];
            s->B32[h * N + i] = (float)s->Bd[h * N + i];
            s->C32[h * N + i] = tC->data[h * N + i];
            for (int64_t j = 0; j < N; j++) s->At32[h * N * N + j * N + i] = (float)s->Ad[h * N * N + i * N + j];
        }
        s->Dd[h] = tD->data[h];
        s->D32[h] = tD->data[h];
    }
    free(Ac);
    if (rc) return rc;
    L->kind = "lssl";
    L->index = (int)l;
    L->n_in = L->n_out = H;
    L->n_carry = L->n_state = H * N;
    L->n_sys_in = L->n_sys_out = H;
    int64_t shx[2] = { H, N };
    sl_layer_add_block(L, "x", 0, 2, shx);
    L->flags = SL_LAYER_LTI | SL_LAYER_LINEAR;
    return SL_OK;
}

static int lssl_parse(const json_t *cfg, const sl_tensors *ts, lssl_cfg *c, sl_err *err)
{
    int rc;
    const char *disc, *prefix;
    if ((rc = sl_config_str(cfg, "tensor_prefix", "", &prefix, err))) return rc;
    c->prefix = prefix;
    /* Defaults from the tensors: H from log_dt, N from transition.B, layers by count. */
    char nm[300];
    int64_t L0 = sl_ssm_count_layers(ts, prefix, "log_dt");
    sl_ssm_prefix(prefix, L0, 0, nm, sizeof nm);
    size_t pl = strlen(nm);
    snprintf(nm + pl, sizeof nm - pl, "log_dt");
    const sl_tensor *t = sl_tensors_find(ts, nm);
    int64_t H0 = t && t->ndim == 1 ? t->shape[0] : 0;
    snprintf(nm + pl, sizeof nm - pl, "transition.B");
    t = sl_tensors_find(ts, nm);
    int64_t N0 = t ? t->shape[t->ndim - 1] : 64;
    if ((rc = sl_config_int(cfg, "d_model", H0, &c->H, err)) || (rc = sl_config_int(cfg, "d_state", N0, &c->N, err)) ||
        (rc = sl_config_int(cfg, "n_layer", L0, &c->n_layer, err)) ||
        (rc = sl_config_str(cfg, "disc", "bilinear", &disc, err)) || (rc = sl_disc_parse(disc, &c->disc, err)))
        return rc;
    if (c->disc == SL_DISC_EXP) return sl_err_set(err, SL_EINVAL, "lssl: disc must be bilinear, zoh or euler");
    if (c->H <= 0) return sl_err_set(err, SL_EINVAL, "d_model must be positive (is %lld)", (long long)c->H);
    if (c->N <= 0) return sl_err_set(err, SL_EINVAL, "d_state must be positive (is %lld)", (long long)c->N);
    if (c->n_layer < 1 || c->n_layer > 1024) return sl_err_set(err, SL_EINVAL, "n_layer must be 1..1024");
    return SL_OK;
}

static int lssl_build(sl_model *m, sl_err *err)
{
    lssl_cfg c;
    int rc = lssl_parse(m->config, m->tensors, &c, err);
    if (rc) return rc;
    m->layers = calloc((size_t)c.n_layer, sizeof *m->layers);
    if (!m->layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t l = 0; l < c.n_layer; l++) {
        sl_layer *L = NULL;
        rc = lssl_layer_new(m, &c, l, &L, err);
        if (L) m->layers[m->n_layers++] = L;
        if (rc) return rc;
    }
    sl_ssm_set_int(m->config, "d_model", c.H);
    sl_ssm_set_int(m->config, "d_state", c.N);
    sl_ssm_set_int(m->config, "n_layer", c.n_layer);
    json_object_set_new(m->config, "disc", json_string(sl_disc_name(c.disc)));
    m->n_in = m->n_out = c.H;
    const lssl_layer *s0 = m->layers[0]->impl;
    m->summary = sl_strfmt("lssl, %lld layer%s, %lld channels, state %lld per channel, A %s, %s", (long long)c.n_layer,
                           c.n_layer == 1 ? "" : "s", (long long)c.H, (long long)c.N,
                           s0->a_shared ? "shared" : "per channel", sl_disc_name(c.disc));
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int lssl_detect(const sl_tensors *ts, json_t **config)
{
    char pf[256];
    const sl_tensor *t;
    *config = NULL;
    if (!sl_ssm_find_suffix(ts, "log_dt", pf, sizeof pf, &t) &&
        !sl_ssm_find_suffix(ts, "layers.0.log_dt", pf, sizeof pf, &t))
        return 0;
    /* pf is the layer prefix; the siblings must be there. */
    char nm[300];
    snprintf(nm, sizeof nm, "%stransition.A", pf);
    if (!sl_tensors_find(ts, nm)) return 0;
    size_t n = strlen(pf);
    if (n >= 9 && strcmp(pf + n - 9, "layers.0.") == 0) pf[n - 9] = '\0';
    json_t *cfg = json_object();
    if (pf[0]) json_object_set_new(cfg, "tensor_prefix", json_string(pf));
    *config = cfg;
    return 1;
}

static int lssl_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    int64_t H, N, L;
    int shared, rc;
    double dt_min, dt_max;
    const char *measure, *disc;
    sl_hippo_kind kind;
    sl_disc d;
    if ((rc = sl_config_int(cfg, "d_model", 0, &H, err)) || (rc = sl_config_int(cfg, "d_state", 64, &N, err)) ||
        (rc = sl_config_int(cfg, "n_layer", 1, &L, err)) || (rc = sl_config_bool(cfg, "a_shared", 1, &shared, err)) ||
        (rc = sl_config_double(cfg, "dt_min", 0.001, &dt_min, err)) ||
        (rc = sl_config_double(cfg, "dt_max", 0.1, &dt_max, err)) ||
        (rc = sl_config_str(cfg, "measure", "legs", &measure, err)) ||
        (rc = sl_config_str(cfg, "disc", "bilinear", &disc, err)) || (rc = sl_hippo_parse(measure, &kind, err)) ||
        (rc = sl_disc_parse(disc, &d, err)))
        return rc;
    if (H <= 0) return sl_err_set(err, SL_EINVAL, "d_model must be positive (required)");
    if (N <= 0) return sl_err_set(err, SL_EINVAL, "d_state must be positive");
    if (L < 1 || L > 1024) return sl_err_set(err, SL_EINVAL, "n_layer must be 1..1024");
    if (kind == SL_HIPPO_LMU) return sl_err_set(err, SL_EINVAL, "lssl measures: legs, legt, lagt");
    if (!(dt_min > 0 && dt_max >= dt_min)) return sl_err_set(err, SL_EINVAL, "need 0 < dt_min <= dt_max");
    sl_ssm_set_int(cfg, "d_state", N);
    sl_ssm_set_int(cfg, "n_layer", L);
    json_object_set_new(cfg, "disc", json_string(sl_disc_name(d)));
    json_object_set_new(cfg, "measure", json_string(sl_hippo_name(kind)));
    json_object_del(cfg, "a_shared");
    json_object_del(cfg, "dt_min");
    json_object_del(cfg, "dt_max");
    double *A = malloc((size_t)(N * N + N) * sizeof *A), *Bv = A ? A + N * N : NULL;
    gsl_rng *r = sl_ssm_rng(seed);
    if (!A || !r) { free(A); gsl_rng_free(r); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    rc = sl_hippo(kind, N, 1.0, A, Bv, err);
    for (int64_t l = 0; l < L && !rc; l++) {
        char pf[64], nm[128];
        sl_ssm_prefix("", L, l, pf, sizeof pf);
        sl_tensor *t;
        int64_t shA[3] = { H, N, N }, shB[1] = { N }, shC[3] = { H, 1, N }, shD[2] = { H, 1 }, shdt[1] = { H };
        snprintf(nm, sizeof nm, "%stransition.A", pf);
        if ((rc = sl_ssm_add(ts, nm, shared ? 2 : 3, shared ? shA + 1 : shA, &t, err))) break;
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)A[i % (N * N)];
        snprintf(nm, sizeof nm, "%stransition.B", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, shB, &t, err))) break;
        for (int64_t i = 0; i < N; i++) t->data[i] = (float)Bv[i];
        snprintf(nm, sizeof nm, "%sC", pf);
        if ((rc = sl_ssm_add(ts, nm, 3, shC, &t, err))) break;
        sl_ssm_fill_normal(r, t, 0.0, 1.0);
        snprintf(nm, sizeof nm, "%sD", pf);
        if ((rc = sl_ssm_add(ts, nm, 2, shD, &t, err))) break;
        sl_ssm_fill_normal(r, t, 0.0, 1.0);
        snprintf(nm, sizeof nm, "%slog_dt", pf);
        if ((rc = sl_ssm_add(ts, nm, 1, shdt, &t, err))) break;
        sl_ssm_fill_uniform(r, t, log(dt_min), log(dt_max));
    }
    free(A);
    gsl_rng_free(r);
    return rc;
}

static const sl_config_key lssl_keys[] = {
    {"d_model", "int", "channels H (required)"},
    {"d_state", "int", "state N per channel, the HiPPO order (default 64)"},
    {"n_layer", "int", "stacked layers (default 1)"},
    {"measure", "string", "HiPPO measure for A and B: legs, legt, lagt (default legs)"},
    {"a_shared", "bool", "one A for every channel (default true; false: one per channel)"},
    {"disc", "string", "discretisation: bilinear, zoh, euler (default bilinear)"},
    {"dt_min", "float", "smallest initial step (default 0.001)"},
    {"dt_max", "float", "largest initial step (default 0.1)"},
    {0, 0, 0},
};

const sl_family sl_family_lssl = {
    .name = "lssl",
    .summary = "Linear State-Space Layer (LSSL; HiPPO A, B per channel, bilinear by default; recurrent or conv)",
    .detect = lssl_detect,
    .build = lssl_build,
    .init = lssl_init,
    .keys = lssl_keys,
};
