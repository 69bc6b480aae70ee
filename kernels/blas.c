/*
** BLAS wrappers and thread control: the only place seqlab calls CBLAS, so a
** CUDA build can swap the backend behind one interface.
**
** Threading policy: seqlab's parallelism is OpenMP's alone. OpenBLAS (the
** pthread build Debian ships) runs single-threaded, because its own worker
** threads spin after each call and fight OpenMP's for the cores (measured: an
** LSTM step loop ran 5x slower with both pools active on 2 cores). Large GEMMs
** are split over OpenMP threads here instead, by column blocks, each thread
** calling the single-threaded BLAS on its block.
**
** openblas_set_num_threads(1) alone is not enough: the pthread build starts
** its worker threads when the library loads, and an idle worker spins on
** sched_yield for ~2^28 cycles after start (and after each job) before it
** sleeps. Measured with perf on a 100 ms LSTM forward: a quarter of the
** samples were that spinning. So the policy also shuts the pool down
** (blas_thread_shutdown_, exported by OpenBLAS; OpenBLAS starts it again if a
** threaded call ever needs it). The first call of any function here applies
** the policy; sl_get_threads() is how other kernels make sure it happened.
*/
#include <cblas.h>
#include <omp.h>

#include "kernels.h"
#include "util.h"

static int blas_single_threaded;

/* OpenBLAS's own, not in cblas.h; weak so another BLAS links too. */
extern void blas_thread_shutdown_(void) __attribute__((weak));

static void ensure_policy(void)
{
    if (!blas_single_threaded) {
#pragma omp critical(sl_blas_policy)
        if (!blas_single_threaded) {
            openblas_set_num_threads(1);
            if (blas_thread_shutdown_) blas_thread_shutdown_();
            blas_single_threaded = 1;
        }
    }
}

static void sgemm1(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void sl_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    ensure_policy();
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    /* Below ~1 MFLOP per thread the split costs more than it gains. */
    if (nt <= 1 || (double)M * (double)N * (double)K < 2e6 * nt || N < 64 * nt) {
        sgemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        /* Column blocks in multiples of 16 so each stays vector-aligned. */
        int64_t per = ((N + n - 1) / n + 15) / 16 * 16;
        int64_t j0 = SL_MIN(N, t * per), j1 = SL_MIN(N, j0 + per);
        if (j1 > j0) {
            const float *Bj = tb ? B + j0 * ldb : B + j0;
            sgemm1(ta, tb, M, j1 - j0, K, alpha, A, lda, Bj, ldb, beta, C + j0, ldc);
        }
    }
}

void sl_dgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
              const double *B, int64_t ldb, double beta, double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    ensure_policy();
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void sl_sgemv(int ta, int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x, float beta,
              float *y)
{
    if (M <= 0 || N <= 0) return;
    ensure_policy();
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A, (blasint)lda, x, 1,
                beta, y, 1);
}

void sl_dgemv(int ta, int64_t M, int64_t N, double alpha, const double *A, int64_t lda, const double *x,
              double beta, double *y)
{
    if (M <= 0 || N <= 0) return;
    ensure_policy();
    cblas_dgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A, (blasint)lda, x, 1,
                beta, y, 1);
}

void sl_set_threads(int n)
{
    ensure_policy();
    if (n > 0) omp_set_num_threads(n);
}

int sl_get_threads(void)
{
    ensure_policy();
    return omp_get_max_threads();
}

/* Let OpenBLAS use every thread for one large LAPACK call (a dense eigenvalue
** problem): called outside OpenMP regions only, so the two pools never run at
** once; the pool is shut down again afterwards (see the policy above). */
int sl_blas_threads_begin(void)
{
    ensure_policy();
    if (omp_in_parallel()) return 0;
    int n = omp_get_max_threads();
    if (n <= 1) return 0;
    openblas_set_num_threads(n);
    return 1;
}

void sl_blas_threads_end(int began)
{
    if (!began) return;
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}
