/*
** BLAS wrappers and thread control: the only place seqlab calls CBLAS, so a
** CUDA build can swap the backend behind one interface.
*/
#include <cblas.h>
#include <omp.h>

#include "kernels.h"

void sl_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void sl_dgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
              const double *B, int64_t ldb, double beta, double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void sl_sgemv(int ta, int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x, float beta,
              float *y)
{
    if (M <= 0 || N <= 0) return;
    cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A, (blasint)lda, x, 1,
                beta, y, 1);
}

void sl_dgemv(int ta, int64_t M, int64_t N, double alpha, const double *A, int64_t lda, const double *x,
              double beta, double *y)
{
    if (M <= 0 || N <= 0) return;
    cblas_dgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A, (blasint)lda, x, 1,
                beta, y, 1);
}

void sl_set_threads(int n)
{
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int sl_get_threads(void) { return omp_get_max_threads(); }
