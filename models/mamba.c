/*
** The mamba family: Mamba-1 (Gu and Dao 2023) as Hugging Face's MambaMixer
** slow path computes it (transformers/models/mamba/modeling_mamba.py), one
** residual block per layer, y = x + mixer(RMSNorm(x)):
**
**     [xs; z]  = in_proj(RMSNorm(x))                         (d_inner each)
**     xc       = silu(causal depthwise conv1d(xs))            (kernel d_conv)
**     [dt; B; C] = x_proj(xc)                                 (dt_rank, d_state, d_state)
**     delta    = softplus(dt_proj(dt))                        (d_inner)
**     A        = -exp(A_log)                                  [d_inner, d_state]
**     h_t      = exp(delta A) . h_{t-1} + delta B_t xc_t      (per channel c, state n)
**     y        = (C_t . h_t + D xc) * silu(z)
**     out      = out_proj(y)
**
** Negative eigenvalues (Grazzi et al. 2025, "Unlocking State-Tracking in
** Linear RNNs Through Negative Eigenvalues"): config "eig_range": "[-1,1]"
** replaces exp(delta A) by 2 exp(delta A) - 1 in the forward pass and the
** linear system alike; the default "[0,1]" is Mamba.
**
** Tensors: <base>layers.<l>.mixer.{in_proj.weight, in_proj.bias?, conv1d.weight,
** conv1d.bias?, x_proj.weight, dt_proj.weight, dt_proj.bias, A_log, D,
** out_proj.weight, out_proj.bias?}, <base>layers.<l>.norm.weight, with <base>
** "backbone." in both Hugging Face and mamba_ssm checkpoints; the embedding
** <base>embeddings.weight (transformers) or <base>embedding.weight (mamba_ssm)
** is the model's embedding; <base>norm_f.weight and lm_head.weight are the
** readout (role head: the layer stack runs on features [B, T, d_model] and
** returns the residual stream after the last block; the final norm belongs
** to the readout, lm_head(norm_f(h))). Sizes are read from the tensors; config
** keys are checked against them in either spelling: mamba_ssm's d_model,
** d_state, d_conv, expand, dt_rank, n_layer (also inside ssm_cfg) or
** transformers' hidden_size, state_size, conv_kernel, intermediate_size,
** time_step_rank, num_hidden_layers. norm_epsilon / layer_norm_epsilon
** (1e-5), eig_range.
**
** Carry: [h (d_inner x d_state) | conv history ((d_conv - 1) x d_inner,
** oldest first)]; the linear system's state is h. Its input is the channel
** input xc_t (u_name "x"), a function of the layer input and the conv history:
**     A = DIAG exp(delta_c A[c, n]) (or 2 exp(.) - 1), B = BLOCKS d_inner x
**     (d_state x 1) delta_c B_t, C = BLOCKS d_inner x (1 x d_state) C_t, D = DIAG D,
** exact; with eig_range [0,1] also the continuous form A_ct = DIAG A, B_ct =
** BLOCKS B_t, dt = delta per channel, rule SL_DISC_EXP (Ab = exp(dt A), Bb = dt B).
** Under [-1,1] no continuous form maps to 2 exp(dt A) - 1, so has_ct is 0.
**
** Forward: chunks of steps over the whole batch (about 2048 rows per chunk):
** RMSNorm, in_proj, conv, x_proj and dt_proj as GEMMs and row loops, the
** selective scan of kernels/scan.h, out_proj, residual. With sl_fwd.device =
** SL_DEVICE_CUDA the selective scan runs on the GPU (kernels/cuda/scan.cu,
** the same contract) and the rest of the block on the CPU.
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "grad.h"
#include "kernels.h"
#include "nn.h"
#include "scan_backward.h"
#include "ssm.h"
#include "util.h"
#ifdef SL_CUDA
#include "kernels/cuda/cuda.h"
#endif

typedef struct mamba_layer {
    int64_t dm, di, N, R, K;
    int neg;
    double eps;
    const float *norm_w, *in_w, *in_b, *conv_w, *conv_b, *xp_w, *dt_w, *dt_b, *A_log, *Dp, *out_w, *out_b;
    float *A32;        /* -exp(A_log) [di, N] */
} mamba_layer;

/* ------------------------------------------------------------ double forms */
/* Everything at one point: x (the SSM input xc), z, delta, B_t, C_t and the
** next conv history. work: 4 di + dm + R + 2N doubles, laid out by the caller. */
typedef struct mamba_pt {
    double *xn, *proj, *x, *dbc, *delta;
} mamba_pt;

static int mamba_point(const mamba_layer *s, const double *carry, const double *u, double *hist_next, mamba_pt *p,
                       sl_err *err)
{
    const int64_t dm = s->dm, di = s->di, N = s->N, R = s->R;
    double *w = malloc((size_t)(dm + 2 * di + di + (R + 2 * N) + di) * sizeof *w);
    if (!w) return sl_err_set(err, SL_ENOMEM, "out of memory");
    p->xn = w;
    p->proj = w + dm;
    p->x = p->proj + 2 * di;
    p->dbc = p->x + di;
    p->delta = p->dbc + R + 2 * N;
    sl_rmsnorm_f64(dm, u, s->norm_w, s->eps, p->xn);
    sl_linear_f64(dm, 2 * di, p->xn, s->in_w, s->in_b, p->proj);
    sl_causal_conv1d_step_f64(di, s->K, carry + di * N, p->proj, s->conv_w, s->conv_b, p->x, hist_next);
    for (int64_t c = 0; c < di; c++) p->x[c] = sl_silu(p->x[c]);
    sl_linear_f64(di, R + 2 * N, p->x, s->xp_w, NULL, p->dbc);
    sl_linear_f64(R, di, p->dbc, s->dt_w, s->dt_b, p->delta);
    for (int64_t c = 0; c < di; c++) p->delta[c] = sl_softplus(p->delta[c]);
    return SL_OK;
}

static inline double mamba_abar(const mamba_layer *s, double delta, int64_t c, int64_t n)
{
    double a = exp(-delta * exp((double)s->A_log[c * s->N + n]));
    return s->neg ? 2.0 * a - 1.0 : a;
}

static int mamba_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const mamba_layer *s = L->impl;
    const int64_t dm = s->dm, di = s->di, N = s->N, R = s->R;
    mamba_pt p;
    int rc = mamba_point(s, carry, u, next ? next + di * N : NULL, &p, err);
    if (rc) return rc;
    const double *Bt = p.dbc + R, *Ct = p.dbc + R + N;
    double *yc = malloc((size_t)(di + dm) * sizeof *yc), *out = yc ? yc + di : NULL;
    if (!yc) { free(p.xn); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    for (int64_t c = 0; c < di; c++) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const double hn = mamba_abar(s, p.delta[c], c, n) * carry[c * N + n] + p.delta[c] * Bt[n] * p.x[c];
            if (next) next[c * N + n] = hn;
            acc += Ct[n] * hn;
        }
        yc[c] = (acc + (double)s->Dp[c] * p.x[c]) * sl_silu(p.proj[di + c]);
    }
    if (y) {
        sl_linear_f64(di, dm, yc, s->out_w, s->out_b, out);
        for (int64_t k = 0; k < dm; k++) y[k] = u[k] + out[k];
    }
    free(yc);
    free(p.xn);
    return SL_OK;
}

static int mamba_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                        sl_err *err)
{
    const mamba_layer *s = L->impl;
    const int64_t di = s->di, N = s->N, R = s->R;
    mamba_pt p;
    int rc = mamba_point(s, carry, u, NULL, &p, err);
    if (rc) return rc;
    const double *Bt = p.dbc + R, *Ct = p.dbc + R + N;
    ls->n_state = di * N;
    ls->n_in = ls->n_out = di;
    ls->exact = 1;
    ls->u_name = "x";
    if ((what & SL_LS_A) && !(rc = sl_op_diag(&ls->A, di * N)))
        for (int64_t c = 0; c < di; c++)
            for (int64_t n = 0; n < N; n++) ls->A.a[c * N + n] = mamba_abar(s, p.delta[c], c, n);
    if (!rc && (what & SL_LS_B) && !(rc = sl_op_blocks(&ls->B, di, N, 1, 1, 0)))
        for (int64_t c = 0; c < di; c++)
            for (int64_t n = 0; n < N; n++) ls->B.a[c * N + n] = p.delta[c] * Bt[n];
    if (!rc && (what & SL_LS_C) && !(rc = sl_op_blocks(&ls->C, di, 1, N, 1, 0)))
        for (int64_t c = 0; c < di; c++) memcpy(ls->C.a + c * N, Ct, (size_t)N * sizeof *Ct);
    if (!rc && (what & SL_LS_D) && !(rc = sl_op_diag(&ls->D, di)))
        for (int64_t c = 0; c < di; c++) ls->D.a[c] = s->Dp[c];
    if (!rc && (what & SL_LS_CT) && !s->neg) {
        ls->has_ct = 1;
        ls->disc = SL_DISC_EXP;
        ls->n_dt = di;
        if (!(rc = sl_op_diag(&ls->A_ct, di * N)))
            for (int64_t i = 0; i < di * N; i++) ls->A_ct.a[i] = -exp((double)s->A_log[i]);
        if (!rc && !(rc = sl_op_blocks(&ls->B_ct, di, N, 1, 1, 0)))
            for (int64_t c = 0; c < di; c++) memcpy(ls->B_ct.a + c * N, Bt, (size_t)N * sizeof *Bt);
        if (!rc && !(ls->dt = malloc((size_t)di * sizeof *ls->dt))) rc = SL_ENOMEM;
        if (!rc) memcpy(ls->dt, p.delta, (size_t)di * sizeof *ls->dt);
    }
    if (!rc && !(ls->u = malloc((size_t)di * sizeof *ls->u))) rc = SL_ENOMEM;
    if (!rc) memcpy(ls->u, p.x, (size_t)di * sizeof *ls->u);
    free(p.xn);
    return rc ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
}

/* ------------------------------------------------------------ float forward */
static int mamba_forward(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const mamba_layer *s = L->impl;
    const int64_t dm = s->dm, di = s->di, N = s->N, R = s->R, K = s->K, nc = L->n_carry, B = f->B, T = f->T;
    const int64_t W = R + 2 * N, H = K - 1;
    if (f->algo != SL_ALGO_AUTO && f->algo != SL_ALGO_RECURRENT && f->algo != SL_ALGO_REFERENCE)
        return sl_err_set(err, SL_EUNSUP, "mamba has the recurrent (selective scan) algorithm only");
    if (B == 0 || T == 0) return SL_OK;
    const int ref = f->algo == SL_ALGO_REFERENCE;
    if (ref && f->device != SL_DEVICE_CPU)
        return sl_err_set(err, SL_EUNSUP, "mamba on %s runs the recurrent algorithm only (auto, recurrent)",
                          sl_device_name(f->device));
    const int64_t Tc = SL_MAX(1, SL_MIN(T, 2048 / SL_MAX(B, 1)));
    const int64_t rows = B * Tc;
    /* Chunk buffers: xin, xn, out [rows, dm]; proj [rows, 2 di]; xs, xc, delta, y [rows, di]; dbc [rows, W];
    ** conv history [B, H, di]; a zero carry when the caller gives none. */
    const size_t need = (size_t)(rows * (3 * dm + 2 * di + 4 * di + W) + B * H * di + (f->carry ? 0 : B * nc) + 1);
    float *buf = malloc(need * sizeof *buf);
    if (!buf) return sl_err_set(err, SL_ENOMEM, "out of memory");
    float *xin = buf, *xn = xin + rows * dm, *out = xn + rows * dm, *proj = out + rows * dm, *xs = proj + rows * 2 * di,
          *xc = xs + rows * di, *delta = xc + rows * di, *ys = delta + rows * di, *dbc = ys + rows * di,
          *hist = dbc + rows * W, *carry = f->carry ? f->carry : hist + B * H * di;
    if (!f->carry) memset(carry, 0, (size_t)(B * nc) * sizeof *carry);
    for (int64_t b = 0; b < B; b++) memcpy(hist + b * H * di, carry + b * nc + di * N, (size_t)(H * di) * sizeof *hist);
    const sl_sscan sc = { .C = di, .N = N, .A = s->A32, .D = s->Dp, .neg = s->neg };
    for (int64_t t0 = 0; t0 < T; t0 += Tc) {
        const int64_t n = SL_MIN(Tc, T - t0), M = B * n;
        for (int64_t b = 0; b < B; b++) memcpy(xin + b * n * dm, f->x + (b * T + t0) * dm, (size_t)(n * dm) * sizeof *xin);
        sl_rmsnorm_f32(M, dm, xin, s->norm_w, (float)s->eps, xn);
        sl_linear_f32(M, dm, 2 * di, xn, s->in_w, s->in_b, proj);
        for (int64_t r = 0; r < M; r++) memcpy(xs + r * di, proj + r * 2 * di, (size_t)di * sizeof *xs);
        if (f->states)   /* conv history after each step: the last H inputs up to t */
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < n; t++)
                    for (int64_t i = 0; i < H; i++) {
                        const int64_t tt = t - (H - 1) + i;   /* input time of history slot i */
                        const float *src = tt >= 0 ? xs + (b * n + tt) * di : hist + b * H * di + (H + tt) * di;
                        memcpy(f->states + (b * T + t0 + t) * nc + di * N + i * di, src, (size_t)di * sizeof *src);
                    }
        sl_causal_conv1d_f32(B, n, di, K, xs, s->conv_w, s->conv_b, hist, xc);
        for (int64_t i = 0; i < M * di; i++) xc[i] = sl_siluf(xc[i]);
        sl_linear_f32(M, di, W, xc, s->xp_w, NULL, dbc);
        for (int64_t r = 0; r < M; r++) {
            if (s->dt_b) memcpy(delta + r * di, s->dt_b, (size_t)di * sizeof *delta);
            else memset(delta + r * di, 0, (size_t)di * sizeof *delta);
        }
        sl_sgemm(0, 1, M, di, R, 1.0f, dbc, W, s->dt_w, R, 1.0f, delta, di);
        for (int64_t i = 0; i < M * di; i++) delta[i] = sl_softplusf(delta[i]);
#ifdef SL_CUDA
        /* The selective scan on the GPU (the rest of the block stays on the
        ** CPU): one call for the chunk, or one per sequence when every step's
        ** states are wanted (their rows are T, not n, apart). */
        if (f->device == SL_DEVICE_CUDA) {
            const int64_t nbc = f->states ? 1 : B;
            for (int64_t b = 0; b < B; b += nbc) {
                const int64_t r0 = b * n;
                sl_sscan_io io = {
                    .nb = nbc, .T = n, .x = xc + r0 * di, .ldx = di, .dt = delta + r0 * di, .lddt = di,
                    .Bm = dbc + r0 * W + R, .Cm = dbc + r0 * W + R + N, .ldbc = W, .z = proj + r0 * 2 * di + di,
                    .ldz = 2 * di, .y = ys + r0 * di, .ldy = di, .h = carry + b * nc, .ldh = nc,
                    .hs = f->states ? f->states + (b * T + t0) * nc : NULL, .ldhs = nc,
                };
                int rc = sl_cuda_selective_scan(&sc, &io, err);
                if (rc) { free(buf); return rc; }
            }
        } else
#endif
        for (int64_t b = 0; b < B; b++) {
            const int64_t r0 = b * n;
            sl_sscan_io io = {
                .nb = 1, .T = n, .x = xc + r0 * di, .ldx = di, .dt = delta + r0 * di, .lddt = di,
                .Bm = dbc + r0 * W + R, .Cm = dbc + r0 * W + R + N, .ldbc = W, .z = proj + r0 * 2 * di + di,
                .ldz = 2 * di, .y = ys + r0 * di, .ldy = di, .h = carry + b * nc, .ldh = nc,
                .hs = f->states ? f->states + (b * T + t0) * nc : NULL, .ldhs = nc,
            };
            (ref ? sl_selective_scan_ref_f32 : sl_selective_scan_f32)(&sc, &io);
        }
        sl_linear_f32(M, di, dm, ys, s->out_w, s->out_b, out);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < n; t++) {
                const float *xr = xin + (b * n + t) * dm, *o = out + (b * n + t) * dm;
                float *yr = f->y + (b * T + t0 + t) * dm;
                for (int64_t k = 0; k < dm; k++) yr[k] = xr[k] + o[k];
            }
    }
    for (int64_t b = 0; b < B; b++) memcpy(carry + b * nc + di * N, hist + b * H * di, (size_t)(H * di) * sizeof *hist);
    free(buf);
    return SL_OK;
}

static void mamba_free(sl_layer *L)
{
    mamba_layer *s = L->impl;
    if (!s) return;
    free(s->A32);
    free(s);
}

/* ------------------------------------------------------------ training */
/* Backward pass (mamba_backward_impl.h, once per precision). The forward's
** intermediates are recomputed over all B*T rows from the block's input (the
** tape keeps only the input and the carries): RMSNorm, in_proj, the causal
** conv from the start carry's history, silu, x_proj, dt_proj, softplus; the
** gated SSM output from the kept states. Then, in reverse: out_proj (GEMMs),
** the gate, the selective scan and D through time (sl_selective_scan_backward:
** dL/dxc, dL/ddelta, dL/dB_t, dL/dC_t, dL/dz, dL/dA, dL/dD and the start
** state), softplus, dt_proj and x_proj (GEMMs), silu, the conv
** (sl_causal_conv1d_backward, also its start history), in_proj (GEMMs),
** RMSNorm (sl_rmsnorm_backward), the residual. eig_range [-1,1] enters only
** through d abar / d(delta A) = 2 exp(delta A). */
#define REAL float
#define MB(n) n##_f32
#define MB_DOUBLE 0
#define MB_BWD sl_bwd
#define MB_GRAD sl_grads_f32
#define MB_GEMM sl_sgemm
#define MB_SSCAN sl_sscan_bwd_f32
#define MB_EXP expf
#define MB_LOG1P log1pf
#include "mamba_backward_impl.h"
#undef REAL
#undef MB
#undef MB_DOUBLE
#undef MB_BWD
#undef MB_GRAD
#undef MB_GEMM
#undef MB_SSCAN
#undef MB_EXP
#undef MB_LOG1P

#define REAL double
#define MB(n) n##_f64
#define MB_DOUBLE 1
#define MB_BWD sl_bwd_f64
#define MB_GRAD sl_grads_f64
#define MB_GEMM sl_dgemm
#define MB_SSCAN sl_sscan_bwd_f64
#define MB_EXP exp
#define MB_LOG1P log1p
#include "mamba_backward_impl.h"

/* A_log changed: refresh A = -exp(A_log) for the float scan (everything else is read in place). */
static int mamba_params_changed(sl_layer *L, sl_err *err)
{
    (void)err;
    mamba_layer *s = L->impl;
    for (int64_t i = 0; i < s->di * s->N; i++) s->A32[i] = (float)-exp((double)s->A_log[i]);
    return SL_OK;
}

static const sl_layer_ops mamba_ops = {
    .forward = mamba_forward,
    .step = mamba_step,
    .linsys = mamba_linsys,
    .free = mamba_free,
    .backward = mamba_backward_f32,
    .backward_f64 = mamba_backward_f64,
    .params_changed = mamba_params_changed,
};

/* ------------------------------------------------------------ config */
/* "[0,1]" -> 0, "[-1,1]" -> 1 (spaces ignored). */
static int parse_eig_range(const char *s, int *neg, sl_err *err)
{
    char t[32];
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < sizeof t; p++)
        if (!isspace((unsigned char)*p)) t[n++] = *p;
    t[n] = '\0';
    if (!strcmp(t, "[0,1]")) *neg = 0;
    else if (!strcmp(t, "[-1,1]")) *neg = 1;
    else return sl_err_set(err, SL_EINVAL, "eig_range must be \"[0,1]\" (Mamba) or \"[-1,1]\" (is \"%s\")", s);
    return SL_OK;
}

/* The first of the given keys present in cfg (or cfg.ssm_cfg) as an integer;
** 1 when found. "auto" counts as absent. */
static int cfg_int_any(const json_t *cfg, const char *const *keys, int64_t *v, const char **which, sl_err *err, int *rc)
{
    const json_t *sub = json_object_get(cfg, "ssm_cfg");
    for (int pass = 0; pass < 2; pass++) {
        const json_t *o = pass ? sub : cfg;
        if (!json_is_object(o)) continue;
        for (const char *const *k = keys; *k; k++) {
            json_t *x = json_object_get(o, *k);
            if (!x || json_is_null(x) || (json_is_string(x) && !strcmp(json_string_value(x), "auto"))) continue;
            if ((*rc = sl_config_int(o, *k, 0, v, err))) return 0;
            *which = *k;
            return 1;
        }
    }
    return 0;
}

typedef struct mamba_cfg {
    char base[256];
    int64_t dm, di, N, R, K, n_layer;
    double eps;
    int neg;
} mamba_cfg;

static int check_key(const json_t *cfg, const char *const *keys, int64_t actual, const char *what, sl_err *err)
{
    int64_t v;
    const char *which = NULL;
    int rc = SL_OK;
    if (cfg_int_any(cfg, keys, &v, &which, err, &rc) && v != actual)
        return sl_err_set(err, SL_EFORMAT, "config \"%s\" is %lld but the tensors have %s %lld", which, (long long)v,
                          what, (long long)actual);
    return rc;
}

static int mamba_parse(const sl_model *m, mamba_cfg *c, sl_err *err)
{
    const json_t *cfg = m->config;
    const sl_tensors *ts = m->tensors;
    int rc;
    const char *pf = NULL, *er;
    if ((rc = sl_config_str(cfg, "tensor_prefix", NULL, &pf, err))) return rc;
    if (pf) {
        snprintf(c->base, sizeof c->base, "%s", pf);
    } else if (!sl_ssm_find_suffix(ts, "layers.0.mixer.A_log", c->base, sizeof c->base, NULL)) {
        return sl_err_set(err, SL_EFORMAT, "no tensor named <prefix>layers.0.mixer.A_log (expected e.g. "
                          "backbone.layers.0.mixer.A_log)");
    }
    c->n_layer = 0;
    for (;;) {
        char nm[400];
        snprintf(nm, sizeof nm, "%slayers.%lld.mixer.A_log", c->base, (long long)c->n_layer);
        if (!sl_tensors_find(ts, nm)) break;
        c->n_layer++;
    }
    if (c->n_layer == 0) return sl_err_set(err, SL_EFORMAT, "tensor %slayers.0.mixer.A_log is missing", c->base);
    char nm[400];
    const sl_tensor *t;
#define T0(name) (snprintf(nm, sizeof nm, "%slayers.0.mixer.%s", c->base, name), sl_tensors_find(ts, nm))
    if (!(t = T0("A_log")) || t->ndim != 2) return sl_err_set(err, SL_EFORMAT, "tensor %s must be [d_inner, d_state]", nm);
    c->di = t->shape[0];
    c->N = t->shape[1];
    if (!(t = T0("in_proj.weight")) || t->ndim != 2 || t->shape[0] != 2 * c->di)
        return sl_err_set(err, SL_EFORMAT, "tensor %s missing or not [2 d_inner, d_model]", nm);
    c->dm = t->shape[1];
    if (!(t = T0("conv1d.weight")) || (t->ndim != 3 && t->ndim != 2) || t->shape[0] != c->di)
        return sl_err_set(err, SL_EFORMAT, "tensor %s missing or not [d_inner, 1, d_conv]", nm);
    c->K = t->shape[t->ndim - 1];
    if (!(t = T0("dt_proj.weight")) || t->ndim != 2 || t->shape[0] != c->di)
        return sl_err_set(err, SL_EFORMAT, "tensor %s missing or not [d_inner, dt_rank]", nm);
    c->R = t->shape[1];
#undef T0
    if (c->dm <= 0 || c->di <= 0 || c->N <= 0 || c->K <= 0 || c->R <= 0)
        return sl_err_set(err, SL_EFORMAT, "mamba sizes must be positive");
    static const char *const k_dm[] = { "d_model", "hidden_size", NULL }, *const k_N[] = { "d_state", "state_size", NULL },
                             *const k_K[] = { "d_conv", "conv_kernel", NULL },
                             *const k_R[] = { "dt_rank", "time_step_rank", NULL },
                             *const k_L[] = { "n_layer", "num_hidden_layers", NULL },
                             *const k_di[] = { "intermediate_size", "d_inner", NULL };
    if ((rc = check_key(cfg, k_dm, c->dm, "d_model", err)) || (rc = check_key(cfg, k_N, c->N, "d_state", err)) ||
        (rc = check_key(cfg, k_K, c->K, "d_conv", err)) || (rc = check_key(cfg, k_R, c->R, "dt_rank", err)) ||
        (rc = check_key(cfg, k_L, c->n_layer, "layers", err)) || (rc = check_key(cfg, k_di, c->di, "d_inner", err)))
        return rc;
    const json_t *ex = json_object_get(cfg, "expand");
    if (!ex && json_is_object(json_object_get(cfg, "ssm_cfg"))) ex = json_object_get(json_object_get(cfg, "ssm_cfg"), "expand");
    if (json_is_number(ex) && fabs(json_number_value(ex) * (double)c->dm - (double)c->di) > 0.5)
        return sl_err_set(err, SL_EFORMAT, "config \"expand\" is %g but the tensors have d_inner %lld = %g d_model",
                          json_number_value(ex), (long long)c->di, (double)c->di / (double)c->dm);
    double eps = 1e-5;
    if (json_object_get(cfg, "layer_norm_epsilon")) rc = sl_config_double(cfg, "layer_norm_epsilon", 1e-5, &eps, err);
    else rc = sl_config_double(cfg, "norm_epsilon", 1e-5, &eps, err);
    if (rc) return rc;
    if (!(eps > 0)) return sl_err_set(err, SL_EFORMAT, "norm epsilon must be positive");
    c->eps = eps;
    if ((rc = sl_config_str(cfg, "eig_range", "[0,1]", &er, err)) || (rc = parse_eig_range(er, &c->neg, err))) return rc;
    const char *act;
    if ((rc = sl_config_str(cfg, "hidden_act", "silu", &act, err))) return rc;
    if (strcmp(act, "silu") && strcmp(act, "swish"))
        return sl_err_set(err, SL_EUNSUP, "hidden_act \"%s\" is not supported (Mamba uses silu)", act);
    return SL_OK;
}

static int mamba_layer_new(sl_model *m, const mamba_cfg *c, int64_t l, sl_layer **out, sl_err *err)
{
    const int64_t dm = c->dm, di = c->di, N = c->N, R = c->R, K = c->K;
    char pf[400], mx[420];
    snprintf(pf, sizeof pf, "%slayers.%lld.", c->base, (long long)l);
    snprintf(mx, sizeof mx, "%smixer.", pf);
    int64_t sdm[1] = { dm }, s_in[2] = { 2 * di, dm }, sinb[1] = { 2 * di }, sc3[3] = { di, 1, K }, sdi[1] = { di },
            sxp[2] = { R + 2 * N, di }, sdt[2] = { di, R }, sA[2] = { di, N }, sout[2] = { dm, di };
    const sl_tensor *tn, *tin, *tinb, *tcw, *tcb, *txp, *tdw, *tdb, *tA, *tD, *tow, *tob;
    int rc;
    if ((rc = sl_ssm_get(m, pf, "norm.weight", 1, sdm, &tn, err)) ||
        (rc = sl_ssm_get(m, mx, "in_proj.weight", 2, s_in, &tin, err)) ||
        (rc = sl_ssm_opt(m, mx, "in_proj.bias", 1, sinb, &tinb, err)) ||
        (rc = sl_ssm_get(m, mx, "conv1d.weight", 0, NULL, &tcw, err)) ||
        (rc = sl_ssm_opt(m, mx, "conv1d.bias", 1, sdi, &tcb, err)) ||
        (rc = sl_ssm_get(m, mx, "x_proj.weight", 2, sxp, &txp, err)) ||
        (rc = sl_ssm_get(m, mx, "dt_proj.weight", 2, sdt, &tdw, err)) ||
        (rc = sl_ssm_opt(m, mx, "dt_proj.bias", 1, sdi, &tdb, err)) ||
        (rc = sl_ssm_get(m, mx, "A_log", 2, sA, &tA, err)) || (rc = sl_ssm_get(m, mx, "D", 1, sdi, &tD, err)) ||
        (rc = sl_ssm_get(m, mx, "out_proj.weight", 2, sout, &tow, err)) ||
        (rc = sl_ssm_opt(m, mx, "out_proj.bias", 1, sdm, &tob, err)))
        return rc;
    if (tcw->numel != di * K || (tcw->ndim != 3 && tcw->ndim != 2) || (tcw->ndim == 3 && tcw->shape[1] != 1))
        return sl_tensor_expect(tcw, tcw->name, 3, sc3, err);
    sl_layer *L = calloc(1, sizeof *L);
    mamba_layer *s = calloc(1, sizeof *s);
    if (!L || !s) { free(L); free(s); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    L->impl = s;
    L->ops = &mamba_ops;
    *out = L;
    s->dm = dm; s->di = di; s->N = N; s->R = R; s->K = K;
    s->neg = c->neg;
    s->eps = c->eps;
    s->norm_w = tn->data;
    s->in_w = tin->data;
    s->in_b = tinb ? tinb->data : NULL;
    s->conv_w = tcw->data;
    s->conv_b = tcb ? tcb->data : NULL;
    s->xp_w = txp->data;
    s->dt_w = tdw->data;
    s->dt_b = tdb ? tdb->data : NULL;
    s->A_log = tA->data;
    s->Dp = tD->data;
    s->out_w = tow->data;
    s->out_b = tob ? tob->data : NULL;
    if (!(s->A32 = malloc((size_t)(di * N) * sizeof *s->A32))) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < di * N; i++) s->A32[i] = (float)-exp((double)tA->data[i]);
    L->kind = "mamba";
    L->index = (int)l;
    L->n_in = L->n_out = dm;
    L->n_state = di * N;
    L->n_carry = di * N + (K - 1) * di;
    L->n_sys_in = L->n_sys_out = di;
    int64_t shh[2] = { di, N }, shc[2] = { K - 1, di };
    sl_layer_add_block(L, "h", 0, 2, shh);
    if (K > 1) sl_layer_add_block(L, "conv", di * N, 2, shc);
    L->flags = SL_LAYER_SELECTIVE | SL_LAYER_LINEAR | SL_LAYER_CUDA;
    return SL_OK;
}

static int mamba_build(sl_model *m, sl_err *err)
{
    mamba_cfg c;
    int rc = mamba_parse(m, &c, err);
    if (rc) return rc;
    m->layers = calloc((size_t)c.n_layer, sizeof *m->layers);
    if (!m->layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int64_t l = 0; l < c.n_layer; l++) {
        sl_layer *L = NULL;
        rc = mamba_layer_new(m, &c, l, &L, err);
        if (L) m->layers[m->n_layers++] = L;
        if (rc) return rc;
    }
    char nm[400];
    const char *emb[2] = { "embeddings.weight", "embedding.weight" };
    for (int i = 0; i < 2 && !m->embedding; i++) {
        snprintf(nm, sizeof nm, "%s%s", c.base, emb[i]);
        const sl_tensor *t = sl_tensors_find(m->tensors, nm);
        if (t && t->ndim == 2 && t->shape[1] == c.dm) {
            m->embedding = t;
            sl_model_set_role(m, nm, SL_ROLE_EMBED);
        }
    }
    snprintf(nm, sizeof nm, "%snorm_f.weight", c.base);
    sl_model_set_role(m, nm, SL_ROLE_HEAD);
    sl_model_set_role(m, "lm_head.weight", SL_ROLE_HEAD);
    sl_ssm_set_int(m->config, "d_model", c.dm);
    sl_ssm_set_int(m->config, "d_state", c.N);
    sl_ssm_set_int(m->config, "d_conv", c.K);
    sl_ssm_set_int(m->config, "dt_rank", c.R);
    sl_ssm_set_int(m->config, "n_layer", c.n_layer);
    if (c.di % c.dm == 0) sl_ssm_set_int(m->config, "expand", c.di / c.dm);
    else sl_ssm_set_int(m->config, "intermediate_size", c.di);
    json_object_set_new(m->config, "eig_range", json_string(c.neg ? "[-1,1]" : "[0,1]"));
    m->n_in = m->n_out = c.dm;
    m->summary = sl_strfmt("mamba, %lld layer%s, d_model %lld, d_inner %lld, d_state %lld, d_conv %lld, dt_rank %lld%s",
                           (long long)c.n_layer, c.n_layer == 1 ? "" : "s", (long long)c.dm, (long long)c.di,
                           (long long)c.N, (long long)c.K, (long long)c.R, c.neg ? ", eigenvalues in [-1,1]" : "");
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int mamba_detect(const sl_tensors *ts, json_t **config)
{
    char pf[256], nm[400];
    const sl_tensor *t;
    *config = NULL;
    if (!sl_ssm_find_suffix(ts, "layers.0.mixer.A_log", pf, sizeof pf, &t) || t->ndim != 2) return 0;
    snprintf(nm, sizeof nm, "%slayers.0.mixer.x_proj.weight", pf);
    if (!sl_tensors_find(ts, nm)) return 0;
    *config = json_object();
    return 1;
}

/* ------------------------------------------------------------ init */
static int mamba_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    int64_t dm, L, N, K, expand, R, vocab;
    double dt_min, dt_max, floor_, dt_scale, eps;
    int conv_bias, bias, neg, rc;
    const char *er;
    if ((rc = sl_config_int(cfg, "d_model", 0, &dm, err)) || (rc = sl_config_int(cfg, "n_layer", 1, &L, err)) ||
        (rc = sl_config_int(cfg, "d_state", 16, &N, err)) || (rc = sl_config_int(cfg, "d_conv", 4, &K, err)) ||
        (rc = sl_config_int(cfg, "expand", 2, &expand, err)) || (rc = sl_config_int(cfg, "dt_rank", 0, &R, err)) ||
        (rc = sl_config_int(cfg, "vocab_size", 0, &vocab, err)) ||
        (rc = sl_config_double(cfg, "dt_min", 0.001, &dt_min, err)) ||
        (rc = sl_config_double(cfg, "dt_max", 0.1, &dt_max, err)) ||
        (rc = sl_config_double(cfg, "dt_init_floor", 1e-4, &floor_, err)) ||
        (rc = sl_config_double(cfg, "dt_scale", 1.0, &dt_scale, err)) ||
        (rc = sl_config_double(cfg, "norm_epsilon", 1e-5, &eps, err)) ||
        (rc = sl_config_bool(cfg, "conv_bias", 1, &conv_bias, err)) || (rc = sl_config_bool(cfg, "bias", 0, &bias, err)) ||
        (rc = sl_config_str(cfg, "eig_range", "[0,1]", &er, err)) || (rc = parse_eig_range(er, &neg, err)))
        return rc;
    if (dm <= 0) return sl_err_set(err, SL_EINVAL, "d_model must be positive (required)");
    if (L < 1 || L > 1024) return sl_err_set(err, SL_EINVAL, "n_layer must be 1..1024");
    if (N <= 0 || K <= 0 || expand <= 0 || R < 0 || vocab < 0)
        return sl_err_set(err, SL_EINVAL, "d_state, d_conv, expand must be positive, dt_rank and vocab_size >= 0");
    if (!(dt_min > 0 && dt_max >= dt_min)) return sl_err_set(err, SL_EINVAL, "need 0 < dt_min <= dt_max");
    if (R == 0) R = (dm + 15) / 16;   /* "auto": ceil(d_model / 16) */
    const int64_t di = expand * dm;
    sl_ssm_set_int(cfg, "n_layer", L);
    sl_ssm_set_int(cfg, "d_state", N);
    sl_ssm_set_int(cfg, "d_conv", K);
    sl_ssm_set_int(cfg, "expand", expand);
    sl_ssm_set_int(cfg, "dt_rank", R);
    json_object_set_new(cfg, "norm_epsilon", json_real(eps));
    json_object_set_new(cfg, "eig_range", json_string(neg ? "[-1,1]" : "[0,1]"));
    const char *drop[] = { "dt_min", "dt_max", "dt_init_floor", "dt_scale", "conv_bias", "bias" };
    for (size_t i = 0; i < SL_ARRAY_LEN(drop); i++) json_object_del(cfg, drop[i]);
    if (vocab) sl_ssm_set_int(cfg, "vocab_size", vocab);
    gsl_rng *r = sl_ssm_rng(seed);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    sl_tensor *t;
    char nm[128];
    if (vocab) {
        int64_t sh[2] = { vocab, dm };
        if (!(rc = sl_ssm_add(ts, "backbone.embeddings.weight", 2, sh, &t, err))) sl_ssm_fill_normal(r, t, 0.0, 0.02);
    }
    for (int64_t l = 0; l < L && !rc; l++) {
        int64_t sdm[1] = { dm }, s_in[2] = { 2 * di, dm }, sinb[1] = { 2 * di }, sc3[3] = { di, 1, K }, sdi[1] = { di },
                sxp[2] = { R + 2 * N, di }, sdt[2] = { di, R }, sA[2] = { di, N }, sout[2] = { dm, di };
#define ADD(name, nd, sh) (snprintf(nm, sizeof nm, "backbone.layers.%lld.%s", (long long)l, name), \
                           sl_ssm_add(ts, nm, nd, sh, &t, err))
        if ((rc = ADD("norm.weight", 1, sdm))) break;
        sl_ssm_fill_const(t, 1.0);
        if ((rc = ADD("mixer.A_log", 2, sA))) break;
        for (int64_t i = 0; i < di * N; i++) t->data[i] = (float)log((double)(i % N + 1));
        if ((rc = ADD("mixer.D", 1, sdi))) break;
        sl_ssm_fill_const(t, 1.0);
        const double kc = 1.0 / sqrt((double)K), kin = 1.0 / sqrt((double)dm), kdi = 1.0 / sqrt((double)di);
        if ((rc = ADD("mixer.conv1d.weight", 3, sc3))) break;
        sl_ssm_fill_uniform(r, t, -kc, kc);
        if (conv_bias) {
            if ((rc = ADD("mixer.conv1d.bias", 1, sdi))) break;
            sl_ssm_fill_uniform(r, t, -kc, kc);
        }
        if ((rc = ADD("mixer.in_proj.weight", 2, s_in))) break;
        sl_ssm_fill_uniform(r, t, -kin, kin);
        if (bias && (rc = ADD("mixer.in_proj.bias", 1, sinb))) break;   /* zeros */
        if ((rc = ADD("mixer.x_proj.weight", 2, sxp))) break;
        sl_ssm_fill_uniform(r, t, -kdi, kdi);
        const double dstd = dt_scale / sqrt((double)R);
        if ((rc = ADD("mixer.dt_proj.weight", 2, sdt))) break;
        sl_ssm_fill_uniform(r, t, -dstd, dstd);
        if ((rc = ADD("mixer.dt_proj.bias", 1, sdi))) break;
        for (int64_t c = 0; c < di; c++) {
            double dt = exp(gsl_rng_uniform(r) * (log(dt_max) - log(dt_min)) + log(dt_min));
            dt = fmax(dt, floor_);
            t->data[c] = (float)(dt + log(-expm1(-dt)));   /* softplus^-1 */
        }
        if ((rc = ADD("mixer.out_proj.weight", 2, sout))) break;
        sl_ssm_fill_uniform(r, t, -kdi / sqrt((double)L), kdi / sqrt((double)L));   /* rescale_prenorm_residual */
        if (bias && (rc = ADD("mixer.out_proj.bias", 1, sdm))) break;
#undef ADD
    }
    if (!rc) {
        int64_t sdm[1] = { dm };
        if (!(rc = sl_ssm_add(ts, "backbone.norm_f.weight", 1, sdm, &t, err))) sl_ssm_fill_const(t, 1.0);
    }
    gsl_rng_free(r);
    return rc;
}

static const sl_config_key mamba_keys[] = {
    {"d_model", "int", "model width (required)"},
    {"n_layer", "int", "residual blocks (default 1)"},
    {"d_state", "int", "SSM state per channel (default 16)"},
    {"d_conv", "int", "causal conv kernel (default 4)"},
    {"expand", "int", "d_inner = expand * d_model (default 2)"},
    {"dt_rank", "int", "rank of the dt projection (default ceil(d_model/16))"},
    {"vocab_size", "int", "add a token embedding of this size (default 0: none)"},
    {"eig_range", "string", "\"[0,1]\" (Mamba) or \"[-1,1]\" (A_bar -> 2 A_bar - 1) (default [0,1])"},
    {"dt_min", "float", "smallest initial dt (default 0.001)"},
    {"dt_max", "float", "largest initial dt (default 0.1)"},
    {"dt_init_floor", "float", "floor of the initial dt (default 1e-4)"},
    {"dt_scale", "float", "scale of dt_proj's initial weights (default 1)"},
    {"conv_bias", "bool", "conv1d bias (default true)"},
    {"bias", "bool", "in_proj and out_proj biases (default false)"},
    {"norm_epsilon", "float", "RMSNorm epsilon (default 1e-5)"},
    {0, 0, 0},
};

static const char *const mamba_hf_types[] = { "mamba", NULL };

const sl_family sl_family_mamba = {
    .name = "mamba",
    .summary = "Mamba-1 residual blocks (Hugging Face MambaMixer / mamba_ssm; selective diagonal SSM)",
    .hf_model_types = mamba_hf_types,
    .detect = mamba_detect,
    .build = mamba_build,
    .init = mamba_init,
    .keys = mamba_keys,
};
