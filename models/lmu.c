/*
** The lmu family: the Legendre Memory Unit layer as LMUFormer uses it (Liu et
** al. 2024; zeyuliu1037/LMUFormer, src/blocks/lmu_cell.py, LMUFFTCell):
**
**     e_t = f_u(W_u x_t + b_u)                        (encoder, scalar; ReLU)
**     m_t = Ab m_{t-1} + Bb e_t                       (Legendre memory of order d)
**     h_t = f_h(W_h [m_t; x_t] + b_h)                 (hidden; ReLU)
**
** (A, B) are Voelker et al.'s Legendre matrices with window theta (hippo.h,
** SL_HIPPO_LMU: the 1/theta included), fixed, discretised by zero-order hold
** with step 1 as LMUFormer does with scipy's cont2discrete. LMUFormer's cell
** has no h_{t-1} -> h_t or m feedback into the encoder (unlike Voelker's
** original LMU cell), which makes the memory a linear time-invariant system
** driven by e: its forward has a recurrent form and a convolution form (the
** memory is the causal convolution of e with the impulse response Ab^k Bb,
** applied by FFT as LMUFFTCell does).
**
** Tensors (after tensor_prefix): W_u.weight [1, in], W_u.bias [1],
** W_h.weight [hidden, d + in], W_h.bias [hidden]; LMUFormer's registered
** buffers A, B, H, fft_H are not read (A and B are rebuilt in double from d and
** theta). Config: input_size, hidden_size, memory_size (d), theta,
** input_activation and hidden_activation ("relu", "tanh" or "none"; LMUFormer:
** relu), disc (zoh).
**
** Carry: the memory m (d). Linear system (exact, LTI in the memory): A = Ab
** (DENSE d x d), B = Bb (d x 1), the input u = e_t (u_name "e", computed from
** the layer input at the point), C = W_h's memory columns (the memory's
** readout into the hidden pre-activation), D = 0; A_ct, B_ct the Legendre
** (A, B) with dt = 1 and the rule.
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

#define LMU_CHUNK 256

enum { ACT_NONE = 0, ACT_RELU, ACT_TANH };

typedef struct lmu_layer {
    sl_ssm_head head;
    int64_t in, hid, d;
    int fu, fh;
    sl_disc disc;
    double theta;
    const float *Wu, *bu, *Wh, *bh;    /* tensors */
    double *Ac, *Bc, *Ad, *Bd;         /* [d, d], [d] continuous and discrete */
    double *Wh64;                      /* [hid, d + in] */
    float *At32, *Bd32;
    sl_ssm_kcache kc;
} lmu_layer;

static inline double act(int a, double x) { return a == ACT_RELU ? (x > 0 ? x : 0.0) : a == ACT_TANH ? tanh(x) : x; }
static inline float actf(int a, float x) { return a == ACT_RELU ? (x > 0 ? x : 0.0f) : a == ACT_TANH ? tanhf(x) : x; }

static double lmu_encode(const lmu_layer *s, const double *x)
{
    double e = s->bu ? s->bu[0] : 0.0;
    for (int64_t k = 0; k < s->in; k++) e += (double)s->Wu[k] * x[k];
    return act(s->fu, e);
}

static void lmu_hidden(const lmu_layer *s, const double *m, const double *x, double *h)
{
    const int64_t w = s->d + s->in;
    for (int64_t i = 0; i < s->hid; i++) {
        const double *r = s->Wh64 + i * w;
        double acc = s->bh ? s->bh[i] : 0.0;
        for (int64_t j = 0; j < s->d; j++) acc += r[j] * m[j];
        for (int64_t k = 0; k < s->in; k++) acc += r[s->d + k] * x[k];
        h[i] = act(s->fh, acc);
    }
}

static int lmu_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const lmu_layer *s = L->impl;
    const int64_t d = s->d;
    double *m = malloc((size_t)d * sizeof *m);
    if (!m) return sl_err_set(err, SL_ENOMEM, "out of memory");
    const double e = lmu_encode(s, u);
    for (int64_t i = 0; i < d; i++) {
        double acc = s->Bd[i] * e;
        for (int64_t j = 0; j < d; j++) acc += s->Ad[i * d + j] * carry[j];
        m[i] = acc;
    }
    if (next) memcpy(next, m, (size_t)d * sizeof *m);
    if (y) lmu_hidden(s, m, u, y);
    free(m);
    return SL_OK;
}

static int lmu_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                      sl_err *err)
{
    const lmu_layer *s = L->impl;
    const int64_t d = s->d, hid = s->hid;
    (void)carry;
    ls->n_state = d;
    ls->n_in = 1;
    ls->n_out = hid;
    ls->exact = 1;
    ls->u_name = "e";
    int rc = SL_OK;
    if ((what & SL_LS_A) && !(rc = sl_op_dense(&ls->A, d, d))) memcpy(ls->A.a, s->Ad, (size_t)(d * d) * sizeof(double));
    if (!rc && (what & SL_LS_B) && !(rc = sl_op_dense(&ls->B, d, 1))) memcpy(ls->B.a, s->Bd, (size_t)d * sizeof(double));
    if (!rc && (what & SL_LS_C) && !(rc = sl_op_dense(&ls->C, hid, d)))
        for (int64_t i = 0; i < hid; i++) memcpy(ls->C.a + i * d, s->Wh64 + i * (d + s->in), (size_t)d * sizeof(double));
    if (!rc && (what & SL_LS_D)) rc = sl_op_zero(&ls->D, hid, 1);
    if (!rc && (what & SL_LS_CT)) {
        ls->has_ct = 1;
        ls->disc = s->disc;
        ls->n_dt = 1;
        if (!(rc = sl_op_dense(&ls->A_ct, d, d))) memcpy(ls->A_ct.a, s->Ac, (size_t)(d * d) * sizeof(double));
        if (!rc && !(rc = sl_op_dense(&ls->B_ct, d, 1))) memcpy(ls->B_ct.a, s->Bc, (size_t)d * sizeof(double));
        if (!rc && !(ls->dt = malloc(sizeof *ls->dt))) rc = SL_ENOMEM;
        if (!rc) ls->dt[0] = 1.0;
    }
    if (!rc && !(ls->u = malloc(sizeof *ls->u))) rc = SL_ENOMEM;
    if (rc) return sl_err_set(err, SL_ENOMEM, "out of memory");
    ls->u[0] = lmu_encode(s, u);
    return SL_OK;
}

/* ------------------------------------------------------------ convolution */
static int lmu_kernel(const sl_layer *L, int64_t T, double *K, sl_err *err)
{
    const lmu_layer *s = L->impl;
    return sl_lti_krylov(s->d, s->Ad, s->Bd, T, K, NULL, err);   /* K[n, k] = (Ab^k Bb)_n */
}

static int lmu_conv(const sl_layer *L, int64_t nb, int64_t T, const double *u, double *y, double *carry, sl_err *err)
{
    lmu_layer *s = L->impl;
    const int64_t d = s->d, in = s->in, hid = s->hid;
    double *e = malloc((size_t)(nb * T + nb * T * d + 2 * d + 1) * sizeof *e), *m = e ? e + nb * T : NULL;
    if (!e) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *z = m + nb * T * d, *z2 = z + d;
    for (int64_t r = 0; r < nb * T; r++) e[r] = lmu_encode(s, u + r * in);
    const sl_fftconv *plan;
    sl_ssm_kcache_lock(&s->kc);
    int rc = sl_ssm_kcache_plan(&s->kc, L, lmu_kernel, T, &plan, err);
    if (!rc) rc = sl_fftconv_apply(plan, nb, T, e, 1, m, d, 0, err);
    sl_ssm_kcache_unlock(&s->kc);
    if (!rc && carry) {
        /* Free response of a start state: Ab^{t+1} m_0 (O(T d^2), only when m_0 != 0); the final state is m_{T-1}. */
        for (int64_t b = 0; b < nb; b++) {
            double *m0 = carry + b * L->n_carry;
            int nz = 0;
            for (int64_t i = 0; i < d; i++) nz |= m0[i] != 0.0;
            if (nz) {
                memcpy(z, m0, (size_t)d * sizeof *z);
                for (int64_t t = 0; t < T; t++) {
                    sl_dgemv(0, d, d, 1.0, s->Ad, d, z, 0.0, z2);
                    memcpy(z, z2, (size_t)d * sizeof *z);
                    for (int64_t i = 0; i < d; i++) m[(b * T + t) * d + i] += z[i];
                }
            }
            if (T > 0) memcpy(m0, m + (b * T + T - 1) * d, (size_t)d * sizeof *m0);
        }
    }
    if (!rc)
        for (int64_t r = 0; r < nb * T; r++) lmu_hidden(s, m + r * d, u + r * in, y + r * hid);
    free(e);
    return rc;
}

/* ------------------------------------------------------------ float forward */
static int lmu_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const lmu_layer *s = L->impl;
    const int64_t d = s->d, in = s->in, hid = s->hid, B = f->B, T = f->T, nc = L->n_carry;
    int algo = f->algo;
    if (algo == SL_ALGO_AUTO)
        algo = (d >= 16 && sl_ssm_auto_conv(f, d, in + d + hid)) ? SL_ALGO_CONV : SL_ALGO_RECURRENT;
    if (algo == SL_ALGO_CHUNKED) return sl_err_set(err, SL_EUNSUP, "lmu has the recurrent and conv algorithms");
    if (algo == SL_ALGO_CONV && !f->states) return sl_ssm_forward_conv(L, f, err);
    const int ref = algo == SL_ALGO_REFERENCE;
    const int64_t Tc = SL_MIN(T, LMU_CHUNK);
    float *e = malloc((size_t)(B * Tc + B * Tc * d + B * nc + 1) * sizeof *e), *m = e ? e + B * Tc : NULL;
    if (!e) return sl_err_set(err, SL_ENOMEM, "out of memory");
    float *carry = f->carry ? f->carry : m + B * Tc * d;
    if (!f->carry) memset(carry, 0, (size_t)(B * nc) * sizeof *carry);
    sl_lti_f32 k = { .H = 1, .N = d, .At = s->At32, .a_stride = 0, .b = s->Bd32, .b_stride = 0 };
    int rc = SL_OK;
    for (int64_t t0 = 0; t0 < T && !rc; t0 += Tc) {
        const int64_t n = SL_MIN(Tc, T - t0);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < n; t++) {
                const float *x = f->x + (b * T + t0 + t) * in;
                float acc = s->bu ? s->bu[0] : 0.0f;
                for (int64_t j = 0; j < in; j++) acc += s->Wu[j] * x[j];
                e[b * n + t] = actf(s->fu, acc);
            }
        rc = (ref ? sl_lti_scan_ref_f32 : sl_lti_scan_f32)(&k, B, n, e, 1, NULL, 0, carry, nc, m, d);
        for (int64_t b = 0; b < B && !rc; b++) {
            const float *x = f->x + (b * T + t0) * in, *mb = m + b * n * d;
            float *y = f->y + (b * T + t0) * hid;
            if (ref) {
                for (int64_t t = 0; t < n; t++)
                    for (int64_t i = 0; i < hid; i++) {
                        const float *r = s->Wh + i * (d + in);
                        float acc = s->bh ? s->bh[i] : 0.0f;
                        for (int64_t j = 0; j < d; j++) acc += r[j] * mb[t * d + j];
                        for (int64_t j = 0; j < in; j++) acc += r[d + j] * x[t * in + j];
                        y[t * hid + i] = actf(s->fh, acc);
                    }
            } else {
                for (int64_t t = 0; t < n; t++)
                    for (int64_t i = 0; i < hid; i++) y[t * hid + i] = s->bh ? s->bh[i] : 0.0f;
                sl_sgemm(0, 1, n, hid, d, 1.0f, mb, d, s->Wh, d + in, 1.0f, y, hid);
                sl_sgemm(0, 1, n, hid, in, 1.0f, x, in, s->Wh + d, d + in, 1.0f, y, hid);
                for (int64_t i = 0; i < n * hid; i++) y[i] = actf(s->fh, y[i]);
            }
            if (f->states)
                for (int64_t t = 0; t < n; t++)
                    memcpy(f->states + (b * T + t0 + t) * nc, mb + t * d, (size_t)d * sizeof *mb);
        }
    }
    free(e);
    return rc ? sl_err_set(err, rc, "out of memory") : SL_OK;
}

static void lmu_free(sl_layer *L)
{
    lmu_layer *s = L->impl;
    if (!s) return;
    sl_ssm_kcache_free(&s->kc);
    free(s->Ac); free(s->Bc); free(s->Ad); free(s->Bd); free(s->Wh64); free(s->At32); free(s->Bd32);
    free(s);
}

static const sl_layer_ops lmu_ops = {
    .forward = lmu_forward,
    .step = lmu_step,
    .linsys = lmu_linsys,
    .free = lmu_free,
};

/* ------------------------------------------------------------ build */
static int parse_act(const char *s, int *a, const char *key, sl_err *err)
{
    if (!strcmp(s, "relu")) *a = ACT_RELU;
    else if (!strcmp(s, "tanh")) *a = ACT_TANH;
    else if (!strcmp(s, "none") || !strcmp(s, "linear")) *a = ACT_NONE;
    else return sl_err_set(err, SL_EINVAL, "%s must be relu, tanh or none (is \"%s\")", key, s);
    return SL_OK;
}

static const char *act_name(int a) { return a == ACT_RELU ? "relu" : a == ACT_TANH ? "tanh" : "none"; }

static int lmu_build(sl_model *m, sl_err *err)
{
    int rc;
    const char *prefix, *fu, *fh, *disc;
    const json_t *cfg = m->config;
    if ((rc = sl_config_str(cfg, "tensor_prefix", "", &prefix, err))) return rc;
    char nm[300];
    snprintf(nm, sizeof nm, "%sW_u.weight", prefix);
    const sl_tensor *t = sl_tensors_find(m->tensors, nm);
    int64_t in0 = t && t->ndim == 2 ? t->shape[1] : 0;
    snprintf(nm, sizeof nm, "%sW_h.weight", prefix);
    t = sl_tensors_find(m->tensors, nm);
    int64_t hid0 = t && t->ndim == 2 ? t->shape[0] : 0, d0 = t && t->ndim == 2 ? t->shape[1] - in0 : 0;
    int64_t in, hid, d;
    double theta;
    sl_disc dr;
    if ((rc = sl_config_int(cfg, "input_size", in0, &in, err)) || (rc = sl_config_int(cfg, "hidden_size", hid0, &hid, err)) ||
        (rc = sl_config_int(cfg, "memory_size", d0, &d, err)) || (rc = sl_config_double(cfg, "theta", 0.0, &theta, err)) ||
        (rc = sl_config_str(cfg, "input_activation", "relu", &fu, err)) ||
        (rc = sl_config_str(cfg, "hidden_activation", "relu", &fh, err)) ||
        (rc = sl_config_str(cfg, "disc", "zoh", &disc, err)) || (rc = sl_disc_parse(disc, &dr, err)))
        return rc;
    if (in <= 0 || hid <= 0 || d <= 0)
        return sl_err_set(err, SL_EFORMAT, "input_size, hidden_size and memory_size must be positive (are %lld, %lld, %lld)",
                          (long long)in, (long long)hid, (long long)d);
    if (!(theta > 0)) return sl_err_set(err, SL_EFORMAT, "config key \"theta\" (the memory window) must be positive");
    if (dr == SL_DISC_EXP) return sl_err_set(err, SL_EINVAL, "lmu: disc must be zoh, bilinear or euler");
    int64_t shu[2] = { 1, in }, shb[1] = { 1 }, shh[2] = { hid, d + in }, shbh[1] = { hid };
    const sl_tensor *tWu, *tbu, *tWh, *tbh;
    if ((rc = sl_ssm_get(m, prefix, "W_u.weight", 2, shu, &tWu, err)) ||
        (rc = sl_ssm_opt(m, prefix, "W_u.bias", 1, shb, &tbu, err)) ||
        (rc = sl_ssm_get(m, prefix, "W_h.weight", 2, shh, &tWh, err)) ||
        (rc = sl_ssm_opt(m, prefix, "W_h.bias", 1, shbh, &tbh, err)))
        return rc;
    m->layers = calloc(1, sizeof *m->layers);
    sl_layer *L = calloc(1, sizeof *L);
    lmu_layer *s = calloc(1, sizeof *s);
    if (!m->layers || !L || !s) { free(L); free(s); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    L->impl = s;
    L->ops = &lmu_ops;
    m->layers[m->n_layers++] = L;
    s->head.conv = lmu_conv;
    s->in = in;
    s->hid = hid;
    s->d = d;
    s->theta = theta;
    s->disc = dr;
    if ((rc = parse_act(fu, &s->fu, "input_activation", err)) || (rc = parse_act(fh, &s->fh, "hidden_activation", err)))
        return rc;
    s->Wu = tWu->data;
    s->bu = tbu ? tbu->data : NULL;
    s->Wh = tWh->data;
    s->bh = tbh ? tbh->data : NULL;
    s->Ac = malloc((size_t)(d * d) * sizeof *s->Ac);
    s->Bc = malloc((size_t)d * sizeof *s->Bc);
    s->Ad = malloc((size_t)(d * d) * sizeof *s->Ad);
    s->Bd = malloc((size_t)d * sizeof *s->Bd);
    s->Wh64 = malloc((size_t)(hid * (d + in)) * sizeof *s->Wh64);
    s->At32 = malloc((size_t)(d * d) * sizeof *s->At32);
    s->Bd32 = malloc((size_t)d * sizeof *s->Bd32);
    if (!s->Ac || !s->Bc || !s->Ad || !s->Bd || !s->Wh64 || !s->At32 || !s->Bd32 || sl_ssm_kcache_init(&s->kc, d, d))
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    if ((rc = sl_hippo(SL_HIPPO_LMU, d, theta, s->Ac, s->Bc, err)) ||
        (rc = sl_discretize(dr, d, 1, s->Ac, s->Bc, 1.0, s->Ad, s->Bd, err)))
        return rc;
    for (int64_t i = 0; i < d; i++) {
        s->Bd32[i] = (float)s->Bd[i];
        for (int64_t j = 0; j < d; j++) s->At32[j * d + i] = (float)s->Ad[i * d + j];
    }
    for (int64_t i = 0; i < hid * (d + in); i++) s->Wh64[i] = tWh->data[i];
    L->kind = "lmu";
    L->index = 0;
    L->n_in = in;
    L->n_out = hid;
    L->n_carry = L->n_state = d;
    L->n_sys_in = 1;
    L->n_sys_out = hid;
    int64_t shm[1] = { d };
    sl_layer_add_block(L, "m", 0, 1, shm);
    L->flags = SL_LAYER_LTI | SL_LAYER_LINEAR;
    sl_ssm_set_int(m->config, "input_size", in);
    sl_ssm_set_int(m->config, "hidden_size", hid);
    sl_ssm_set_int(m->config, "memory_size", d);
    json_object_set_new(m->config, "theta", json_real(theta));
    json_object_set_new(m->config, "input_activation", json_string(act_name(s->fu)));
    json_object_set_new(m->config, "hidden_activation", json_string(act_name(s->fh)));
    json_object_set_new(m->config, "disc", json_string(sl_disc_name(dr)));
    m->n_in = in;
    m->n_out = hid;
    for (size_t i = 0; i < m->tensors->n; i++) {
        const char *n = m->tensors->t[i].name;
        size_t pl = strlen(prefix);
        if (!strncmp(n, prefix, pl) && (!strcmp(n + pl, "A") || !strcmp(n + pl, "B") || !strcmp(n + pl, "H") ||
                                        !strcmp(n + pl, "fft_H"))) {
            sl_model_note(m, "LMUFormer's buffers A, B, H, fft_H are not read: the memory is rebuilt in double "
                             "from memory_size and theta");
            break;
        }
    }
    m->summary = sl_strfmt("lmu, input %lld, hidden %lld, Legendre memory of order %lld, theta %g, %s", (long long)in,
                           (long long)hid, (long long)d, theta, sl_disc_name(dr));
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int lmu_detect(const sl_tensors *ts, json_t **config)
{
    char pf[256], nm[300];
    *config = NULL;
    if (!sl_ssm_find_suffix(ts, "W_u.weight", pf, sizeof pf, NULL)) return 0;
    snprintf(nm, sizeof nm, "%sW_h.weight", pf);
    if (!sl_tensors_find(ts, nm)) return 0;
    json_t *cfg = json_object();
    if (pf[0]) json_object_set_new(cfg, "tensor_prefix", json_string(pf));
    /* theta is not in the tensors: LMUFormer's default window. */
    json_object_set_new(cfg, "theta", json_real(128.0));
    *config = cfg;
    return 1;
}

static int lmu_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    int64_t in, hid, d;
    double theta;
    int rc;
    if ((rc = sl_config_int(cfg, "input_size", 0, &in, err)) || (rc = sl_config_int(cfg, "hidden_size", 0, &hid, err)) ||
        (rc = sl_config_int(cfg, "memory_size", hid, &d, err)) || (rc = sl_config_double(cfg, "theta", 128.0, &theta, err)))
        return rc;
    if (in <= 0) return sl_err_set(err, SL_EINVAL, "input_size must be positive (required)");
    if (hid <= 0) return sl_err_set(err, SL_EINVAL, "hidden_size must be positive (required)");
    if (d <= 0) return sl_err_set(err, SL_EINVAL, "memory_size must be positive");
    if (!(theta > 0)) return sl_err_set(err, SL_EINVAL, "theta must be positive");
    sl_ssm_set_int(cfg, "memory_size", d);
    json_object_set_new(cfg, "theta", json_real(theta));
    gsl_rng *r = sl_ssm_rng(seed);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    /* nn.Linear's default: weight and bias uniform in +-1/sqrt(fan_in). */
    sl_tensor *t;
    int64_t shu[2] = { 1, in }, shb[1] = { 1 }, shh[2] = { hid, d + in }, shbh[1] = { hid };
    const double ku = 1.0 / sqrt((double)in), kh = 1.0 / sqrt((double)(d + in));
    if (!(rc = sl_ssm_add(ts, "W_u.weight", 2, shu, &t, err))) sl_ssm_fill_uniform(r, t, -ku, ku);
    if (!rc && !(rc = sl_ssm_add(ts, "W_u.bias", 1, shb, &t, err))) sl_ssm_fill_uniform(r, t, -ku, ku);
    if (!rc && !(rc = sl_ssm_add(ts, "W_h.weight", 2, shh, &t, err))) sl_ssm_fill_uniform(r, t, -kh, kh);
    if (!rc && !(rc = sl_ssm_add(ts, "W_h.bias", 1, shbh, &t, err))) sl_ssm_fill_uniform(r, t, -kh, kh);
    gsl_rng_free(r);
    return rc;
}

static const sl_config_key lmu_keys[] = {
    {"input_size", "int", "features per input step (required)"},
    {"hidden_size", "int", "hidden units (required)"},
    {"memory_size", "int", "order d of the Legendre memory (default hidden_size)"},
    {"theta", "float", "memory window in steps (default 128)"},
    {"input_activation", "string", "encoder nonlinearity: relu, tanh, none (default relu)"},
    {"hidden_activation", "string", "hidden nonlinearity: relu, tanh, none (default relu)"},
    {"disc", "string", "discretisation of the memory: zoh, bilinear, euler (default zoh)"},
    {0, 0, 0},
};

const sl_family sl_family_lmu = {
    .name = "lmu",
    .summary = "Legendre Memory Unit as in LMUFormer (fixed Legendre memory driven by a ReLU encoder; recurrent or FFT)",
    .detect = lmu_detect,
    .build = lmu_build,
    .init = lmu_init,
    .keys = lmu_keys,
};
