/*
** The CUDA backend's runtime side: finding a device, the cuBLAS handle, error
** translation, strided copies, and GEMM (the sl_sgemm contract on cuBLAS).
**
** Device discovery runs once (pthread_once): cudaGetDeviceCount, then the
** first device of compute capability 8.0 or newer (what the Makefile builds
** SASS / PTX for) becomes the device every entry point selects for its
** calling thread. Without a driver or a device the runtime answers with an
** error code instead of a count; that is recorded as the reason and every
** call answers SL_EUNSUP with it, which the tests and `seqlab run --device
** cuda` report.
**
** The cuBLAS handle is created on first use (pthread_once, after discovery)
** and destroyed by an atexit handler registered after the runtime's own, so
** it runs first. Its math mode is CUBLAS_DEFAULT_MATH: float GEMMs compute in
** float (no TF32), the precision the CPU comparisons assume.
*/
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

/* ------------------------------------------------------------ discovery */
static pthread_once_t dev_once = PTHREAD_ONCE_INIT;
static int dev_count;            /* usable devices */
static int dev_id = -1;          /* the one used */
static int dev_code;             /* SL_OK or SL_EUNSUP */
static char dev_msg[SL_ERR_MSG_MAX];

static void dev_discover(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        snprintf(dev_msg, sizeof dev_msg, "no CUDA device found (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the CUDA runtime reports 0 devices");
        (void)cudaGetLastError();
        dev_code = SL_EUNSUP;
        return;
    }
    char first[256] = "";
    int fmaj = 0, fmin = 0;
    for (int d = 0; d < n; d++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
            (void)cudaGetLastError();
            continue;
        }
        if (!first[0]) {
            snprintf(first, sizeof first, "%s", p.name);
            fmaj = p.major;
            fmin = p.minor;
        }
        if (p.major >= 8) {
            if (dev_id < 0) dev_id = d;
            dev_count++;
        }
    }
    if (dev_count == 0) {
        snprintf(dev_msg, sizeof dev_msg,
                 "no usable CUDA device (%s has compute capability %d.%d; seqlab's CUDA kernels need 8.0 or newer)",
                 first[0] ? first : "the device", fmaj, fmin);
        dev_code = SL_EUNSUP;
        return;
    }
    dev_code = SL_OK;
}

extern "C" int sl_cuda_available(void)
{
    pthread_once(&dev_once, dev_discover);
    return dev_count;
}

extern "C" int sl_cuda_check(sl_err *err)
{
    pthread_once(&dev_once, dev_discover);
    if (dev_code != SL_OK) return sl_err_set(err, dev_code, "%s", dev_msg);
    return SL_OK;
}

int sl_cu_enter(sl_err *err)
{
    int rc = sl_cuda_check(err);
    if (rc) return rc;
    cudaError_t e = cudaSetDevice(dev_id);
    if (e != cudaSuccess) return sl_cu_fail(err, e, "cudaSetDevice", __FILE__, __LINE__);
    return SL_OK;
}

/* ------------------------------------------------------------ errors */
int sl_cu_fail(sl_err *err, cudaError_t e, const char *what, const char *file, int line)
{
    (void)cudaGetLastError();
    const int code = e == cudaErrorMemoryAllocation ? SL_ENOMEM : SL_EINTERNAL;
    return sl_err_set(err, code, "CUDA: %s: %s (%s:%d)", what, cudaGetErrorString(e), file, line);
}

int sl_cublas_fail(sl_err *err, cublasStatus_t s, const char *what, const char *file, int line)
{
    const int code = s == CUBLAS_STATUS_ALLOC_FAILED ? SL_ENOMEM : SL_EINTERNAL;
    return sl_err_set(err, code, "cuBLAS: %s: %s (%s:%d)", what, cublasGetStatusString(s), file, line);
}

/* ------------------------------------------------------------ cuBLAS handle */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static cublasHandle_t blas_handle;
static cublasStatus_t blas_status = CUBLAS_STATUS_NOT_INITIALIZED;

static void blas_destroy(void)
{
    if (blas_handle) cublasDestroy(blas_handle);
    blas_handle = NULL;
}

static void blas_create(void)
{
    if (cudaSetDevice(dev_id) != cudaSuccess) {
        (void)cudaGetLastError();
        blas_status = CUBLAS_STATUS_NOT_INITIALIZED;
        return;
    }
    blas_status = cublasCreate(&blas_handle);
    if (blas_status != CUBLAS_STATUS_SUCCESS) {
        blas_handle = NULL;
        return;
    }
    blas_status = cublasSetMathMode(blas_handle, CUBLAS_DEFAULT_MATH);
    if (blas_status != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(blas_handle);
        blas_handle = NULL;
        return;
    }
    /* Registered after the runtime initialised itself, so it runs before the
    ** runtime's own teardown. */
    atexit(blas_destroy);
}

int sl_cu_blas(cublasHandle_t *h, sl_err *err)
{
    *h = NULL;
    int rc = sl_cuda_check(err);
    if (rc) return rc;
    pthread_once(&blas_once, blas_create);
    if (!blas_handle) return sl_cublas_fail(err, blas_status, "cublasCreate", __FILE__, __LINE__);
    *h = blas_handle;
    return SL_OK;
}

cublasStatus_t sl_cu_gemm_rm(cublasHandle_t h, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                             int64_t ldc)
{
    return cublasSgemm_64(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb,
                          A, lda, &beta, C, ldc);
}

/* ------------------------------------------------------------ copies */
int sl_cu_rows_to_dev(float *dst, const float *src, int64_t rows, int64_t width, int64_t ld, sl_err *err)
{
    int rc = SL_OK;
    if (rows <= 0 || width <= 0) return SL_OK;
    SL_CU(cudaMemcpy2D(dst, (size_t)width * sizeof(float), src, (size_t)ld * sizeof(float),
                       (size_t)width * sizeof(float), (size_t)rows, cudaMemcpyHostToDevice));
done:
    return rc;
}

int sl_cu_rows_to_host(float *dst, int64_t ld, const float *src, int64_t rows, int64_t width, sl_err *err)
{
    int rc = SL_OK;
    if (rows <= 0 || width <= 0) return SL_OK;
    SL_CU(cudaMemcpy2D(dst, (size_t)ld * sizeof(float), src, (size_t)width * sizeof(float),
                       (size_t)width * sizeof(float), (size_t)rows, cudaMemcpyDeviceToHost));
done:
    return rc;
}

/* ------------------------------------------------------------ GEMM */
extern "C" int sl_cuda_sgemm_dev(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                                 sl_err *err)
{
    if (M <= 0 || N <= 0) return SL_OK;
    cublasHandle_t h;
    int rc = sl_cu_blas(&h, err);
    if (rc) return rc;
    SL_CUBLAS(sl_cu_gemm_rm(h, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
done:
    return rc;
}

extern "C" int sl_cuda_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                             int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, sl_err *err)
{
    if (M <= 0 || N <= 0) return SL_OK;
    int rc = sl_cu_enter(err);
    if (rc) return rc;
    /* Stored shapes of the operands (rows x cols, row-major). */
    const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    float *base = NULL, *p;
    float *dA, *dB, *dC;
    const size_t total = sl_cu_pad(ar * ac) + sl_cu_pad(br * bc) + sl_cu_pad(M * N) + 64;
    SL_CU(cudaMalloc((void **)&base, total * sizeof(float)));
    p = base;
    dA = sl_cu_take(&p, ar * ac);
    dB = sl_cu_take(&p, br * bc);
    dC = sl_cu_take(&p, M * N);
    if (!dA) dA = base;   /* K = 0: empty operands, but never NULL pointers for cuBLAS */
    if (!dB) dB = base;
    if ((rc = sl_cu_rows_to_dev(dA, A, ar, ac, lda, err)) || (rc = sl_cu_rows_to_dev(dB, B, br, bc, ldb, err)))
        goto done;
    if (beta != 0.0f) {
        if ((rc = sl_cu_rows_to_dev(dC, C, M, N, ldc, err))) goto done;
    } else {
        /* beta = 0: C is not read (cuBLAS ignores it, NaNs included), as in BLAS. */
        SL_CU(cudaMemset(dC, 0, (size_t)(M * N) * sizeof(float)));
    }
    /* cuBLAS wants leading dimensions >= 1 even for empty operands (K = 0). */
    if ((rc = sl_cuda_sgemm_dev(ta, tb, M, N, K, alpha, dA, ac > 0 ? ac : 1, dB, bc > 0 ? bc : 1, beta, dC, N, err)))
        goto done;
    rc = sl_cu_rows_to_host(C, ldc, dC, M, N, err);
done:
    if (base) cudaFree(base);
    return rc;
}
