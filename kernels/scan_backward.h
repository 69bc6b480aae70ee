/*
** Backward passes of the state-space scans (kernels/scan.h) for training:
** backpropagation through time over the carries the forward kept.
**
**   complex diagonal, S4D   x_t = lam . x_{t-1} + bb u_t, y_t = sum_m Re(cc x_t) + d u_t
**   complex diagonal, LRU   x_t = lam . x_{t-1} + v_t (v = B u formed outside)
**   selective scan, Mamba   h_t = abar_t . h_{t-1} + dt_t B_t x_t,
**                           y_t = (C_t.h_t + D x_t) silu(z_t), abar = exp(dt A) or 2 exp(dt A) - 1
**
** Complex gradients follow one convention: the gradient of a complex
** quantity w = wr + i wi is dL/dwr + i dL/dwi, stored as an interleaved
** (re, im) pair like the quantity itself. Through x_t = lam x_{t-1} the state
** gradient runs backwards as g_{t-1} = conj(lam) g_t, and lam's gradient is
** sum_t g_t conj(x_{t-1}).
**
** Every kernel comes in float (the training path) and double (the reference
** that the finite-difference tests check), compiled from one source
** (scan_backward_impl.h). Sums over time and over sequences run in a fixed
** order and each accumulator belongs to one thread, so results do not depend
** on the thread count. Nothing allocates: the selective scan takes a caller's
** workspace.
*/
#ifndef SL_SCAN_BACKWARD_H
#define SL_SCAN_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "scan.h"

/* ------------------------------------------------------------ S4D */
/* The double twin of sl_cdiag_f32. */
typedef struct sl_cdiag_f64 {
    int64_t H, M;
    const double *lam, *bb, *cc, *d;
} sl_cdiag_f64;

/* Backward of sl_cdiag_scan over nb sequences of T steps. u [nb, T, ldu] and
** dy [nb, T, lddy] (channel h at column h); x0 [nb, ldx0] the start state
** (NULL: zeros); xs [nb, T, ldxs] the state after every step. Writes du
** [nb, T, lddu] and dx0 [nb, lddx0] (either may be NULL: not wanted); ADDS the
** gradients of lam, bb, cc ([H, M, 2] pairs) and d ([H]) to dlam, dbb, dcc,
** dd (each may be NULL). Channels run in parallel (a small buffer per
** thread: SL_ENOMEM when it cannot be had, else SL_OK). */
int  sl_cdiag_scan_backward_f32(const sl_cdiag_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu,
                                const float *x0, int64_t ldx0, const float *xs, int64_t ldxs, const float *dy,
                                int64_t lddy, float *du, int64_t lddu, float *dx0, int64_t lddx0, float *dlam, float *dbb,
                                float *dcc, float *dd);
int  sl_cdiag_scan_backward_f64(const sl_cdiag_f64 *s, int64_t nb, int64_t T, const double *u, int64_t ldu,
                                const double *x0, int64_t ldx0, const double *xs, int64_t ldxs, const double *dy,
                                int64_t lddy, double *du, int64_t lddu, double *dx0, int64_t lddx0, double *dlam,
                                double *dbb, double *dcc, double *dd);

/* ------------------------------------------------------------ LRU */
/* Backward of x_t = lam . x_{t-1} + v_t over n complex entries. g [nb, T, ldg]
** holds the direct gradient dL/dx_t (from the outputs) on entry and the full
** one on return, which is also dL/dv_t. x0 [nb, ldx0] (NULL: zeros) and xs
** [nb, T, ldxs] are the start state and the states. ADDS lam's gradient to
** dlam [n, 2]; writes dx0 [nb, lddx0] when not NULL. */
void sl_cdiag_recur_backward_f32(int64_t n, const float *lam, int64_t nb, int64_t T, float *g, int64_t ldg,
                                 const float *x0, int64_t ldx0, const float *xs, int64_t ldxs, float *dlam,
                                 float *dx0, int64_t lddx0);
void sl_cdiag_recur_backward_f64(int64_t n, const double *lam, int64_t nb, int64_t T, double *g, int64_t ldg,
                                 const double *x0, int64_t ldx0, const double *xs, int64_t ldxs, double *dlam,
                                 double *dx0, int64_t lddx0);

/* ------------------------------------------------------------ Mamba */
/* Arguments of the selective scan's backward: the forward's (sl_sscan,
** sl_sscan_io) plus the start state, the states after every step and dL/dy.
** Outputs marked "written" are overwritten for every (sequence, step);
** "added" ones are accumulated into. A is the negative matrix -exp(A_log):
** dA is the gradient with respect to A itself. */
#define SL_SSCAN_BWD_FIELDS(REAL)                                                                                    \
    int64_t C, N;                                                                                                    \
    const REAL *A;                 /* [C, N] */                                                                      \
    const REAL *D;                 /* [C] or NULL */                                                                 \
    int neg;                       /* eig_range [-1, 1]: abar = 2 exp(dt A) - 1 */                                   \
    int64_t nb, T;                                                                                                   \
    const REAL *x;  int64_t ldx;   /* [nb, T, ldx] */                                                                \
    const REAL *dt; int64_t lddt;  /* after softplus */                                                              \
    const REAL *Bm, *Cm; int64_t ldbc;                                                                               \
    const REAL *z;  int64_t ldz;   /* gate, or NULL */                                                               \
    const REAL *h0; int64_t ldh0;  /* start state [nb, ldh0] (C * N), or NULL: zeros */                              \
    const REAL *hs; int64_t ldhs;  /* state after every step [nb, T, ldhs] */                                        \
    const REAL *dy; int64_t lddy;  /* dL/dy */                                                                       \
    REAL *dx;  int64_t lddx;       /* written */                                                                     \
    REAL *ddt; int64_t ldddt;      /* written: dL/d(dt after softplus) */                                            \
    REAL *dB, *dC; int64_t lddbc;  /* written */                                                                     \
    REAL *dz;  int64_t lddz;       /* written when z */                                                              \
    REAL *dA, *dD;                 /* added ([C, N], [C]); NULL: not wanted */                                       \
    REAL *dh0; int64_t lddh0       /* written when not NULL */

typedef struct sl_sscan_bwd_f32 {
    SL_SSCAN_BWD_FIELDS(float);
} sl_sscan_bwd_f32;

typedef struct sl_sscan_bwd_f64 {
    SL_SSCAN_BWD_FIELDS(double);
} sl_sscan_bwd_f64;

/* Workspace elements (floats or doubles) for nb sequences. */
size_t sl_selective_scan_backward_ws(int64_t C, int64_t N, int64_t nb);

/* Sequences run in parallel; the sums over sequences of dA and dD are formed
** from per-sequence partials in sequence order. */
void sl_selective_scan_backward_f32(const sl_sscan_bwd_f32 *s, float *work);
void sl_selective_scan_backward_f64(const sl_sscan_bwd_f64 *s, double *work);

#endif
