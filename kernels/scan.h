/*
** Scans and convolutions of the state-space families (lssl, s4d, lru, lmu,
** mamba): the arithmetic of their forward passes.
**
**   dense LTI scan      x_t = A x_{t-1} + b u_t, y_t = c.x_t + d u_t per channel,
**                       one N x N transition per channel (LSSL, the LMU memory);
**   Krylov / kernel     the columns A^k b by repeated squaring (GEMMs), and from
**                       them the convolution kernel K_k = c A^k b;
**   FFT convolution     y = K * u per channel, in double (kernels/fftconv.c);
**   complex-diagonal    x_t = lambda . x_{t-1} + b u_t (S4D, one input per channel)
**                       and x_t = lambda . x_{t-1} + v_t (LRU, v = B u precomputed);
**   selective scan      Mamba's h_t = exp(dt_t A) . h_{t-1} + dt_t B_t x_t,
**                       y_t = C_t.h_t + D x_t, gated by silu(z_t).
**
** Every float kernel has a plain reference beside it (*_ref: loops in the
** order of the mathematics) and tests/test_scan.c checks them against each
** other on odd shapes and T = 1. The optimised versions run independent
** (sequence, channel) pairs on OpenMP threads and keep inner loops over
** contiguous memory without reductions so the compiler vectorises them; they
** never allocate inside the time loop. Analyses and the convolution path work
** in double: an LTI family computes its kernel once (double), convolves in
** double and casts at the end, which keeps the convolution within rounding
** of the double recurrence.
**
** Layouts: sequences are [nb, T, ld] row-major with a leading dimension per
** array, so callers can point into wider buffers (Mamba's x_proj output holds
** dt, B and C side by side). A channel's state is contiguous: x[h * N + n].
*/
#ifndef SL_SCAN_H
#define SL_SCAN_H

#include <stdint.h>

#include "err.h"

/* ------------------------------------------------------------ dense LTI scan */
/* H channels, each with an N x N transition. At is the transition stored
** transposed (column-major): At[h * a_stride + j * N + i] = A_h[i][j], so the
** update is a sum of contiguous columns. a_stride / b_stride = 0 shares one
** A / b across channels. C NULL: no output (states only); D NULL: no skip. */
typedef struct sl_lti_f32 {
    int64_t H, N;
    const float *At;
    int64_t a_stride;
    const float *b;
    int64_t b_stride;
    const float *c;          /* [H, N] */
    const float *d;          /* [H] */
} sl_lti_f32;

/* Run T steps over nb sequences. u [nb, T, ldu] (channel h at column h);
** y [nb, T, ldy] (may be NULL when c is NULL); x [nb, ldx] holds the start
** state (H * N) and receives the final one; xs [nb, T, ldxs] receives every
** state, or NULL. Returns SL_OK or SL_ENOMEM (scratch of N floats per thread). */
int  sl_lti_scan_f32(const sl_lti_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y, int64_t ldy,
                     float *x, int64_t ldx, float *xs, int64_t ldxs);
int  sl_lti_scan_ref_f32(const sl_lti_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y,
                         int64_t ldy, float *x, int64_t ldx, float *xs, int64_t ldxs);

/* The same in double for one channel, row-major A: the reference the
** convolution is tested against. x (N) in/out; y (T) may be NULL. */
int  sl_lti_scan_f64(int64_t N, const double *A, const double *b, const double *c, double d, int64_t T,
                     const double *u, int64_t ldu, double *x, double *y, int64_t ldy);

/* V[:, k] = A^k b for k < L (V is N x L row-major, leading dimension L), by
** doubling: V[:, m:2m] = A^m V[:, 0:m] with A^m squared each round, as GEMMs.
** P (N x N) receives A^m for the smallest power of two m >= L when not NULL. */
int sl_lti_krylov(int64_t N, const double *A, const double *b, int64_t L, double *V, double *P, sl_err *err);

/* The same with A transposed: W[k, :] = c A^k (W is L x N row-major). */
int sl_lti_krylov_rows(int64_t N, const double *A, const double *c, int64_t L, double *W, sl_err *err);

/* The convolution kernel K_k = c A^k b for k < T, in two levels: with
** L ~ sqrt(T) (a power of two), U = [A^j b]_{j<L} and R = [c (A^L)^i]_{i<T/L}
** by doubling, K[i L + j] = R_i . U_j is one (T/L x N) (N x L) GEMM, so the cost is
** O(N^2 (L + T/L) + N^3 log T) instead of the O(N^2 T) of the plain Krylov
** sequence. */
int sl_lti_kernel(int64_t N, const double *A, const double *b, const double *c, int64_t T, double *K, sl_err *err);

/* x_T for one channel: x_T = A^T x0 + sum_k A^k b u_{T-1-k}, in blocks of L
** steps with V = [A^k b]_{k<L} (N x L), AL = A^L; the first T mod L steps by
** the plain recurrence. x0 may be NULL (zero). work: N doubles. */
void sl_lti_final_state(int64_t N, const double *A, const double *b, int64_t L, const double *V, const double *AL,
                        int64_t T, const double *u, int64_t ldu, const double *x0, double *xT, double *work);

/* y_t += c A^{t+1} x0 for t < T (the free response), in blocks of L steps
** with W = [c A^i]_{i<L} (L x N) and AL = A^L. work: 2 N doubles. */
void sl_lti_free_response(int64_t N, const double *A, int64_t L, const double *W, const double *AL, int64_t T,
                          const double *x0, double *y, int64_t ldy, double *work);

/* ------------------------------------------------------------ FFT convolution */
/* Causal convolution of n_filt kernels with the input channels, in double:
**   y[b, t, f] (+)= sum_{k <= t} K[f, k] u[b, t - k, f / group]
** (group = 1: filter f reads channel f; the LMU's memory has N filters per
** input channel). kernels/fftconv.c: complex FFTs of length nfft (the power
** of two >= max(2T - 1, 4)) vectorised across filters, two real filters per
** complex lane (12x GSL's real FFT at H = 64, T = 4096; see there). The plan holds the kernels' spectra for sequences up to T,
** laid out for the ISA in use at init (isa, vw lanes), and the twiddles,
** read-only; and the work buffers of one call, which a call takes when no
** other holds them (else it allocates its own): any number of threads may
** apply one plan at once. */
typedef struct sl_fftconv {
    int64_t n_filt, group, T, nfft;
    int isa, vw;            /* sl_isa of the layout; doubles per vector */
    int64_t lblock;         /* transform blocks of this many elements run in L1 */
    int64_t tw_off[64];     /* offset in tw of the twiddles of span 2^s */
    double *spec;           /* [ceil(n_filt / 2vw)][nfft / 2 + 1][4][vw] */
    double *tw;             /* per radix-4 span L: [L / 4][w^j, w^2j, w^3j as (re, im)] */
    struct sl_fftconv_ws *ws;   /* the threads' work buffers, kept for the next call (fftconv.c) */
} sl_fftconv;

/* K [n_filt, ldk] holds at least T taps per filter. */
int  sl_fftconv_init(sl_fftconv *p, int64_t n_filt, int64_t group, const double *K, int64_t ldk, int64_t T,
                     sl_err *err);
void sl_fftconv_free(sl_fftconv *p);
/* T <= p->T. u [nb, T, ldu], y [nb, T, ldy]; accumulate: add to y instead of
** overwriting it. */
int  sl_fftconv_apply(const sl_fftconv *p, int64_t nb, int64_t T, const double *u, int64_t ldu, double *y,
                      int64_t ldy, int accumulate, sl_err *err);
/* The same plus the skip term: y[b, t, f] (+)= (K * u)[b, t, f] + d[f] u[b, t, f / group],
** added in that order (d NULL: none), in the same pass as the store. */
int  sl_fftconv_apply_skip(const sl_fftconv *p, int64_t nb, int64_t T, const double *u, int64_t ldu, double *y,
                           int64_t ldy, int accumulate, const double *d, sl_err *err);
/* The plain reference with the same contract and no plan: GSL's scalar
** mixed-radix real FFT, one filter at a time (length the power of two
** >= 2T - 1; the kernels' spectra computed in the call). */
int  sl_fftconv_ref(int64_t n_filt, int64_t group, const double *K, int64_t ldk, int64_t nb, int64_t T,
                    const double *u, int64_t ldu, double *y, int64_t ldy, int accumulate, sl_err *err);
/* The plain O(T^2) sum, for the tests. */
void sl_conv_direct_ref(int64_t n_filt, int64_t group, const double *K, int64_t ldk, int64_t nb, int64_t T,
                        const double *u, int64_t ldu, double *y, int64_t ldy);

/* ------------------------------------------------------------ complex diagonal */
/* S4D: H channels of M complex modes, one real input per channel:
**   x[h, m] = lam[h, m] x[h, m] + bb[h, m] u[h],   y[h] = sum_m Re(cc[h, m] x[h, m]) + d[h] u[h]
** Complex arrays are interleaved (re, im) pairs: lam, bb, cc [H, M, 2]; the
** state x [nb, ldx] holds H * M pairs. cc carries S4D's factor 2. */
typedef struct sl_cdiag_f32 {
    int64_t H, M;
    const float *lam, *bb, *cc, *d;
} sl_cdiag_f32;

int  sl_cdiag_scan_f32(const sl_cdiag_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y, int64_t ldy,
                       float *x, int64_t ldx, float *xs, int64_t ldxs);
int  sl_cdiag_scan_ref_f32(const sl_cdiag_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y,
                           int64_t ldy, float *x, int64_t ldx, float *xs, int64_t ldxs);

/* LRU: x_t = lam . x_{t-1} + v_t over n complex entries, in place: v [nb, T, ldv]
** (2n floats per step, interleaved) is overwritten with the states x_t;
** x [nb, ldx] is the start state in and the final state out. */
void sl_cdiag_recur_f32(int64_t n, const float *lam, int64_t nb, int64_t T, float *v, int64_t ldv, float *x,
                        int64_t ldx);
void sl_cdiag_recur_ref_f32(int64_t n, const float *lam, int64_t nb, int64_t T, float *v, int64_t ldv, float *x,
                            int64_t ldx);

/* ------------------------------------------------------------ selective scan */
/* Mamba-1's selective scan over C channels of N states:
**   a = exp(dt[c] A[c, n])  (2a - 1 when neg: eig_range [-1, 1])
**   h[c, n] = a h[c, n] + dt[c] B[n] x[c]
**   y[c] = (sum_n C[n] h[c, n] + D[c] x[c]) * (z ? silu(z[c]) : 1)
** with dt already through softplus. */
typedef struct sl_sscan {
    int64_t C, N;
    const float *A;          /* [C, N] (negative: -exp(A_log)) */
    const float *D;          /* [C] or NULL */
    int neg;
} sl_sscan;

typedef struct sl_sscan_io {
    int64_t nb, T;
    const float *x;  int64_t ldx;     /* [nb, T, ldx]: C channels */
    const float *dt; int64_t lddt;    /* [nb, T, lddt] */
    const float *Bm, *Cm; int64_t ldbc; /* [nb, T, ldbc]: N entries each */
    const float *z;  int64_t ldz;     /* gate [nb, T, ldz], or NULL */
    float *y;        int64_t ldy;     /* [nb, T, ldy] */
    float *h;        int64_t ldh;     /* [nb, ldh]: C * N start state in, final state out */
    float *hs;       int64_t ldhs;    /* [nb, T, ldhs]: every state, or NULL */
} sl_sscan_io;

void sl_selective_scan_f32(const sl_sscan *s, const sl_sscan_io *io);
void sl_selective_scan_ref_f32(const sl_sscan *s, const sl_sscan_io *io);

/* exp(x) in float by range reduction and a degree-6 polynomial (Cephes'
** expf), written without branches or libm calls so loops over it vectorise:
** relative error below 3e-7 on [-87, 88]; arguments below -87.3 give about
** 1e-38 (the smallest normal float) instead of 0. */
static inline float sl_expf_vec(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float t = x * 1.44269504088896341f;
    const float kf = (t + 12582912.0f) - 12582912.0f;              /* round to nearest */
    const float r = (x - kf * 0.693359375f) + kf * 2.12194440e-4f; /* x - k ln 2, two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } s;
    s.i = ((int32_t)kf + 127) << 23;
    return p * s.f;
}

#endif
