/*
** Scans and convolutions of the state-space families: see scan.h.
**
** Threading: the optimised scans split independent (sequence, channel) work
** over OpenMP threads when there is enough of it, handed out dynamically (the
** tasks are coarse, and a thread that loses its core to another process then
** does not hold the others at the barrier); each thread owns a small
** scratch buffer allocated once per call, never per step. The FFT convolution
** is in kernels/fftconv.c. Inner loops carry
** `omp simd` (the Makefile's -O2 uses GCC's very-cheap vectoriser, which
** skips loops that need alias checks). OpenBLAS stays
** single-threaded (kernels/blas.c), so the GEMMs of the Krylov doubling may be
** called from inside a parallel region.
*/
/* Floating-point operations here never raise exceptions anyone observes, so
** GCC may if-convert (hence vectorise) the branch-free exp of the selective
** scan; without this its jump threading duplicates the clamped arithmetic
** into branches it then refuses to speculate. Set before the includes so the
** inline sl_expf_vec of scan.h is compiled with the same options. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "scan.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

/* Work below this many multiply-adds stays on one thread. */
#define SL_SCAN_PAR_MIN 65536.0

/* Dot product; the simd reduction lets the compiler vectorise it (the order
** is fixed for a given build, so results are reproducible). */
static inline float dot8(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------ dense LTI scan */
int sl_lti_scan_ref_f32(const sl_lti_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y,
                         int64_t ldy, float *x, int64_t ldx, float *xs, int64_t ldxs)
{
    const int64_t H = s->H, N = s->N;
    float *tmp = malloc((size_t)(N ? N : 1) * sizeof *tmp);
    if (!tmp) return SL_ENOMEM;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++) {
                const float *A = s->At + h * s->a_stride, *bv = s->b + h * s->b_stride;
                float *xh = x + b * ldx + h * N;
                const float ut = u[(b * T + t) * ldu + h];
                /* new[i] = sum_j A[i][j] x[j] + b[i] u */
                for (int64_t i = 0; i < N; i++) {
                    float acc = bv[i] * ut;
                    for (int64_t j = 0; j < N; j++) acc += A[j * N + i] * xh[j];
                    tmp[i] = acc;
                }
                memcpy(xh, tmp, (size_t)N * sizeof *xh);
                if (xs) memcpy(xs + (b * T + t) * ldxs + h * N, xh, (size_t)N * sizeof *xs);
                if (s->c) {
                    float acc = s->d ? s->d[h] * ut : 0.0f;
                    for (int64_t i = 0; i < N; i++) acc += s->c[h * N + i] * xh[i];
                    y[(b * T + t) * ldy + h] = acc;
                }
            }
    free(tmp);
    return SL_OK;
}

int sl_lti_scan_f32(const sl_lti_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y, int64_t ldy,
                     float *x, int64_t ldx, float *xs, int64_t ldxs)
{
    const int64_t H = s->H, N = s->N;
    const double work = (double)nb * (double)H * (double)T * (double)N * (double)N;
    int failed = 0;
#pragma omp parallel if (work > SL_SCAN_PAR_MIN && nb * H > 1)
    {
        float *tmp = malloc((size_t)(N ? N : 1) * sizeof *tmp);
        if (!tmp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < nb * H; p++) {
            if (!tmp) continue;
            const int64_t b = p / H, h = p % H;
            const float *A = s->At + h * s->a_stride, *bv = s->b + h * s->b_stride;
            const float *cv = s->c ? s->c + h * N : NULL;
            const float dh = s->d ? s->d[h] : 0.0f;
            float *xh = x + b * ldx + h * N;
            for (int64_t t = 0; t < T; t++) {
                const float ut = u[(b * T + t) * ldu + h];
#pragma omp simd
                for (int64_t i = 0; i < N; i++) tmp[i] = bv[i] * ut;
                /* Four columns of A per pass over tmp: axpy form, contiguous in i. */
                int64_t j = 0;
                for (; j + 4 <= N; j += 4) {
                    const float x0 = xh[j], x1 = xh[j + 1], x2 = xh[j + 2], x3 = xh[j + 3];
                    const float *c0 = A + j * N, *c1 = c0 + N, *c2 = c1 + N, *c3 = c2 + N;
#pragma omp simd
                    for (int64_t i = 0; i < N; i++) tmp[i] += (c0[i] * x0 + c1[i] * x1) + (c2[i] * x2 + c3[i] * x3);
                }
                for (; j < N; j++) {
                    const float xj = xh[j], *cj = A + j * N;
#pragma omp simd
                    for (int64_t i = 0; i < N; i++) tmp[i] += cj[i] * xj;
                }
                memcpy(xh, tmp, (size_t)N * sizeof *xh);
                if (xs) memcpy(xs + (b * T + t) * ldxs + h * N, tmp, (size_t)N * sizeof *xs);
                if (cv) y[(b * T + t) * ldy + h] = dot8(cv, tmp, N) + dh * ut;
            }
        }
        free(tmp);
    }
    return failed ? SL_ENOMEM : SL_OK;
}

int sl_lti_scan_f64(int64_t N, const double *A, const double *b, const double *c, double d, int64_t T,
                    const double *u, int64_t ldu, double *x, double *y, int64_t ldy)
{
    double *tmp = malloc((size_t)(N ? N : 1) * sizeof *tmp);
    if (!tmp) return SL_ENOMEM;
    for (int64_t t = 0; t < T; t++) {
        const double ut = u[t * ldu];
        for (int64_t i = 0; i < N; i++) {
            double acc = b[i] * ut;
            for (int64_t j = 0; j < N; j++) acc += A[i * N + j] * x[j];
            tmp[i] = acc;
        }
        memcpy(x, tmp, (size_t)N * sizeof *x);
        if (y) {
            double acc = d * ut;
            for (int64_t i = 0; i < N; i++) acc += c[i] * x[i];
            y[t * ldy] = acc;
        }
    }
    free(tmp);
    return SL_OK;
}

/* ------------------------------------------------------------ Krylov */
int sl_lti_krylov(int64_t N, const double *A, const double *b, int64_t L, double *V, double *P, sl_err *err)
{
    if (L <= 0) return SL_OK;
    double *Pw = malloc((size_t)(2 * N * N + 1) * sizeof *Pw), *Q = Pw + N * N;
    if (!Pw) return sl_err_set(err, SL_ENOMEM, "out of memory");
    memcpy(Pw, A, (size_t)(N * N) * sizeof *Pw);
    for (int64_t i = 0; i < N; i++) V[i * L] = b[i];
    int64_t m = 1;
    while (m < L) {
        const int64_t cols = SL_MIN(m, L - m);
        sl_dgemm(0, 0, N, cols, N, 1.0, Pw, N, V, L, 0.0, V + m, L);
        m *= 2;
        if (m < L || P) {
            sl_dgemm(0, 0, N, N, N, 1.0, Pw, N, Pw, N, 0.0, Q, N);
            memcpy(Pw, Q, (size_t)(N * N) * sizeof *Pw);
        }
    }
    if (P) memcpy(P, Pw, (size_t)(N * N) * sizeof *P);
    free(Pw);
    return SL_OK;
}

int sl_lti_krylov_rows(int64_t N, const double *A, const double *c, int64_t L, double *W, sl_err *err)
{
    if (L <= 0) return SL_OK;
    double *Pw = malloc((size_t)(2 * N * N + 1) * sizeof *Pw), *Q = Pw + N * N;
    if (!Pw) return sl_err_set(err, SL_ENOMEM, "out of memory");
    memcpy(Pw, A, (size_t)(N * N) * sizeof *Pw);
    memcpy(W, c, (size_t)N * sizeof *W);
    int64_t m = 1;
    while (m < L) {
        const int64_t rows = SL_MIN(m, L - m);
        sl_dgemm(0, 0, rows, N, N, 1.0, W, N, Pw, N, 0.0, W + m * N, N);
        m *= 2;
        if (m < L) {
            sl_dgemm(0, 0, N, N, N, 1.0, Pw, N, Pw, N, 0.0, Q, N);
            memcpy(Pw, Q, (size_t)(N * N) * sizeof *Pw);
        }
    }
    free(Pw);
    return SL_OK;
}

int sl_lti_kernel(int64_t N, const double *A, const double *b, const double *c, int64_t T, double *K, sl_err *err)
{
    if (T <= 0) return SL_OK;
    int64_t L = 1;
    while (L * L < T) L *= 2;
    const int64_t Q = (T + L - 1) / L;
    double *U = malloc((size_t)(N * L + N * N + Q * N + Q * L) * sizeof *U);
    if (!U) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *AL = U + N * L, *R = AL + N * N, *Kq = R + Q * N;
    int rc = sl_lti_krylov(N, A, b, L, U, AL, err);              /* U: N x L, AL = A^L */
    if (!rc) rc = sl_lti_krylov_rows(N, AL, c, Q, R, err);       /* R: Q x N */
    if (!rc) {
        sl_dgemm(0, 0, Q, L, N, 1.0, R, N, U, L, 0.0, Kq, L);   /* Kq[i, j] = K[i L + j] */
        memcpy(K, Kq, (size_t)T * sizeof *K);
    }
    free(U);
    return rc;
}

static void matvec(int64_t N, const double *A, const double *x, double *y)
{
    for (int64_t i = 0; i < N; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < N; j++) s += A[i * N + j] * x[j];
        y[i] = s;
    }
}

void sl_lti_final_state(int64_t N, const double *A, const double *b, int64_t L, const double *V, const double *AL,
                        int64_t T, const double *u, int64_t ldu, const double *x0, double *xT, double *work)
{
    if (x0) memcpy(xT, x0, (size_t)N * sizeof *xT);
    else memset(xT, 0, (size_t)N * sizeof *xT);
    const int64_t r = T % L;
    for (int64_t t = 0; t < r; t++) {
        matvec(N, A, xT, work);
        for (int64_t i = 0; i < N; i++) xT[i] = work[i] + b[i] * u[t * ldu];
    }
    for (int64_t s = r; s < T; s += L) {
        matvec(N, AL, xT, work);
        for (int64_t i = 0; i < N; i++) {
            const double *Vi = V + i * L;
            double acc = work[i];
            for (int64_t k = 0; k < L; k++) acc += Vi[k] * u[(s + L - 1 - k) * ldu];
            xT[i] = acc;
        }
    }
}

void sl_lti_free_response(int64_t N, const double *A, int64_t L, const double *W, const double *AL, int64_t T,
                          const double *x0, double *y, int64_t ldy, double *work)
{
    double *z = work, *z2 = work + N;
    matvec(N, A, x0, z);
    for (int64_t s = 0; s < T; s += L) {
        const int64_t n = SL_MIN(L, T - s);
        for (int64_t i = 0; i < n; i++) {
            const double *Wi = W + i * N;
            double acc = 0.0;
            for (int64_t j = 0; j < N; j++) acc += Wi[j] * z[j];
            y[(s + i) * ldy] += acc;
        }
        if (s + L < T) {
            matvec(N, AL, z, z2);
            memcpy(z, z2, (size_t)N * sizeof *z);
        }
    }
}

/* ------------------------------------------------------------ complex diagonal */
int sl_cdiag_scan_ref_f32(const sl_cdiag_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y,
                           int64_t ldy, float *x, int64_t ldx, float *xs, int64_t ldxs)
{
    const int64_t H = s->H, M = s->M;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++) {
                const float ut = u[(b * T + t) * ldu + h];
                float acc = s->d ? s->d[h] * ut : 0.0f;
                for (int64_t m = 0; m < M; m++) {
                    const int64_t k = 2 * (h * M + m);
                    float *xm = x + b * ldx + k;
                    const float lr = s->lam[k], li = s->lam[k + 1];
                    const float xr = lr * xm[0] - li * xm[1] + s->bb[k] * ut;
                    const float xi = lr * xm[1] + li * xm[0] + s->bb[k + 1] * ut;
                    xm[0] = xr;
                    xm[1] = xi;
                    acc += s->cc[k] * xr - s->cc[k + 1] * xi;
                }
                y[(b * T + t) * ldy + h] = acc;
                if (xs) memcpy(xs + (b * T + t) * ldxs + 2 * h * M, x + b * ldx + 2 * h * M, (size_t)(2 * M) * sizeof *xs);
            }
    return SL_OK;
}

int sl_cdiag_scan_f32(const sl_cdiag_f32 *s, int64_t nb, int64_t T, const float *u, int64_t ldu, float *y, int64_t ldy,
                       float *x, int64_t ldx, float *xs, int64_t ldxs)
{
    const int64_t H = s->H, M = s->M;
    const double work = (double)nb * (double)H * (double)T * (double)M * 4.0;
    int failed = 0;
#pragma omp parallel if (work > SL_SCAN_PAR_MIN && nb * H > 1)
    {
        /* Split real and imaginary parts so the mode loop vectorises. */
        float *buf = malloc((size_t)(8 * M + 1) * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
            buf = NULL;
        }
        float *xr = buf, *xi = buf + M, *lr = buf + 2 * M, *li = buf + 3 * M, *br = buf + 4 * M, *bi = buf + 5 * M,
              *cr = buf + 6 * M, *ci = buf + 7 * M;
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < nb * H; p++) {
            if (!buf) continue;
            const int64_t b = p / H, h = p % H;
            float *xh = x + b * ldx + 2 * h * M;
            for (int64_t m = 0; m < M; m++) {
                const int64_t k = 2 * (h * M + m);
                xr[m] = xh[2 * m]; xi[m] = xh[2 * m + 1];
                lr[m] = s->lam[k]; li[m] = s->lam[k + 1];
                br[m] = s->bb[k]; bi[m] = s->bb[k + 1];
                cr[m] = s->cc[k]; ci[m] = -s->cc[k + 1];
            }
            const float dh = s->d ? s->d[h] : 0.0f;
            for (int64_t t = 0; t < T; t++) {
                const float ut = u[(b * T + t) * ldu + h];
#pragma omp simd
                for (int64_t m = 0; m < M; m++) {
                    const float a = lr[m] * xr[m] - li[m] * xi[m] + br[m] * ut;
                    const float c = lr[m] * xi[m] + li[m] * xr[m] + bi[m] * ut;
                    xr[m] = a;
                    xi[m] = c;
                }
                y[(b * T + t) * ldy + h] = dot8(cr, xr, M) + dot8(ci, xi, M) + dh * ut;
                if (xs) {
                    float *o = xs + (b * T + t) * ldxs + 2 * h * M;
                    for (int64_t m = 0; m < M; m++) { o[2 * m] = xr[m]; o[2 * m + 1] = xi[m]; }
                }
            }
            for (int64_t m = 0; m < M; m++) { xh[2 * m] = xr[m]; xh[2 * m + 1] = xi[m]; }
        }
        free(buf);
    }
    return failed ? SL_ENOMEM : SL_OK;
}

void sl_cdiag_recur_ref_f32(int64_t n, const float *lam, int64_t nb, int64_t T, float *v, int64_t ldv, float *x,
                            int64_t ldx)
{
    for (int64_t b = 0; b < nb; b++)
        for (int64_t t = 0; t < T; t++) {
            float *vt = v + (b * T + t) * ldv, *xb = x + b * ldx;
            for (int64_t j = 0; j < n; j++) {
                const float lr = lam[2 * j], li = lam[2 * j + 1];
                const float re = lr * xb[2 * j] - li * xb[2 * j + 1] + vt[2 * j];
                const float im = lr * xb[2 * j + 1] + li * xb[2 * j] + vt[2 * j + 1];
                xb[2 * j] = vt[2 * j] = re;
                xb[2 * j + 1] = vt[2 * j + 1] = im;
            }
        }
}

void sl_cdiag_recur_f32(int64_t n, const float *lam, int64_t nb, int64_t T, float *v, int64_t ldv, float *x,
                        int64_t ldx)
{
    /* Blocks of 64 complex entries per task: independent recurrences. */
    const int64_t BS = 64, nblk = (n + BS - 1) / BS;
    const double work = (double)nb * (double)T * (double)n * 4.0;
#pragma omp parallel for schedule(dynamic, 1) if (work > SL_SCAN_PAR_MIN && nb * nblk > 1)
    for (int64_t p = 0; p < nb * nblk; p++) {
        const int64_t b = p / nblk, j0 = (p % nblk) * BS, j1 = SL_MIN(n, j0 + BS);
        float *xb = x + b * ldx;
        for (int64_t t = 0; t < T; t++) {
            float *vt = v + (b * T + t) * ldv;
            for (int64_t j = j0; j < j1; j++) {
                const float lr = lam[2 * j], li = lam[2 * j + 1], pr = xb[2 * j], pi = xb[2 * j + 1];
                const float re = lr * pr - li * pi + vt[2 * j];
                const float im = lr * pi + li * pr + vt[2 * j + 1];
                xb[2 * j] = vt[2 * j] = re;
                xb[2 * j + 1] = vt[2 * j + 1] = im;
            }
        }
    }
}

/* ------------------------------------------------------------ selective scan */
void sl_selective_scan_ref_f32(const sl_sscan *s, const sl_sscan_io *io)
{
    const int64_t C = s->C, N = s->N;
    for (int64_t b = 0; b < io->nb; b++)
        for (int64_t t = 0; t < io->T; t++) {
            const int64_t r = b * io->T + t;
            const float *Bt = io->Bm + r * io->ldbc, *Ct = io->Cm + r * io->ldbc;
            for (int64_t c = 0; c < C; c++) {
                const float dl = io->dt[r * io->lddt + c], xc = io->x[r * io->ldx + c];
                float *hc = io->h + b * io->ldh + c * N;
                float acc = 0.0f;
                for (int64_t n = 0; n < N; n++) {
                    float a = expf(dl * s->A[c * N + n]);
                    if (s->neg) a = 2.0f * a - 1.0f;
                    hc[n] = a * hc[n] + dl * Bt[n] * xc;
                    acc += Ct[n] * hc[n];
                }
                float yc = acc + (s->D ? s->D[c] * xc : 0.0f);
                if (io->z) {
                    const float zc = io->z[r * io->ldz + c];
                    yc *= zc / (1.0f + expf(-zc));
                }
                io->y[r * io->ldy + c] = yc;
                if (io->hs) memcpy(io->hs + r * io->ldhs + c * N, hc, (size_t)N * sizeof *hc);
            }
        }
}

void sl_selective_scan_f32(const sl_sscan *s, const sl_sscan_io *io)
{
    const int64_t C = s->C, N = s->N, CB = 32, ncb = (C + CB - 1) / CB, nb = io->nb, T = io->T;
    const double work = (double)nb * (double)T * (double)C * (double)N * 8.0;
    const float negf = s->neg ? 1.0f : 0.0f;   /* a -> a (1 + negf) - negf: 2a - 1 or a, branch-free */
#pragma omp parallel for schedule(dynamic, 1) if (work > SL_SCAN_PAR_MIN && nb * ncb > 1)
    for (int64_t p = 0; p < nb * ncb; p++) {
        const int64_t b = p / ncb, c0 = (p % ncb) * CB, c1 = SL_MIN(C, c0 + CB);
        for (int64_t t = 0; t < T; t++) {
            const int64_t r = b * T + t;
            const float *Bt = io->Bm + r * io->ldbc, *Ct = io->Cm + r * io->ldbc;
            const float *xr = io->x + r * io->ldx, *dr = io->dt + r * io->lddt;
            float *yr = io->y + r * io->ldy;
            for (int64_t c = c0; c < c1; c++) {
                const float dl = dr[c], dx = dl * xr[c];
                const float *Ac = s->A + c * N;
                float *hc = io->h + b * io->ldh + c * N;
#pragma omp simd
                for (int64_t n = 0; n < N; n++) {
                    const float a = sl_expf_vec(dl * Ac[n]) * (1.0f + negf) - negf;
                    hc[n] = a * hc[n] + dx * Bt[n];
                }
                float yc = dot8(Ct, hc, N) + (s->D ? s->D[c] * xr[c] : 0.0f);
                if (io->z) {
                    const float zc = io->z[r * io->ldz + c];
                    yc *= zc / (1.0f + expf(-zc));
                }
                yr[c] = yc;
                if (io->hs) memcpy(io->hs + r * io->ldhs + c * N, hc, (size_t)N * sizeof *hc);
            }
        }
    }
}
