/*
** Internal helpers of the CUDA backend (the .cu files of kernels/cuda/ only): error
** translation, the cuBLAS handle, one-allocation workspaces and strided
** host <-> compact device copies.
**
** Error handling follows the library's rule (status codes, one goto label
** per function): SL_CU(call) and SL_CUBLAS(call) evaluate a runtime / cuBLAS
** call and, on failure, fill err with the call's text, the runtime's message
** and the position, set rc and jump to `done`. SL_CU_LAUNCH() checks the
** last kernel launch the same way. A function using them declares
** `int rc = SL_OK;` and ends with a `done:` label that releases what it holds.
*/
#ifndef SL_CUDA_COMMON_CUH
#define SL_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda/cuda.h"

/* Fill err from a failed runtime call (SL_ENOMEM for allocation failures,
** SL_EINTERNAL otherwise) and clear the runtime's non-sticky error state. */
int sl_cu_fail(sl_err *err, cudaError_t e, const char *what, const char *file, int line);
/* The same for cuBLAS statuses. */
int sl_cublas_fail(sl_err *err, cublasStatus_t s, const char *what, const char *file, int line);

#define SL_CU(call)                                                                     \
    do {                                                                                \
        cudaError_t sl_cu_e_ = (call);                                                  \
        if (sl_cu_e_ != cudaSuccess) {                                                  \
            rc = sl_cu_fail(err, sl_cu_e_, #call, __FILE__, __LINE__);                  \
            goto done;                                                                  \
        }                                                                               \
    } while (0)

#define SL_CUBLAS(call)                                                                 \
    do {                                                                                \
        cublasStatus_t sl_cb_s_ = (call);                                               \
        if (sl_cb_s_ != CUBLAS_STATUS_SUCCESS) {                                        \
            rc = sl_cublas_fail(err, sl_cb_s_, #call, __FILE__, __LINE__);              \
            goto done;                                                                  \
        }                                                                               \
    } while (0)

#define SL_CU_LAUNCH() SL_CU(cudaGetLastError())

/* Run-time checks every entry point starts with: a usable device (selected
** for the calling thread) or SL_EUNSUP. */
int sl_cu_enter(sl_err *err);

/* The process's cuBLAS handle, created on first use (thread-safe) on the
** selected device and destroyed at exit: SL_OK and *h, or a status with err set. */
int sl_cu_blas(cublasHandle_t *h, sl_err *err);

/* Row-major GEMM on device pointers through column-major cuBLAS (C^T = op(B)^T
** op(A)^T: the operands swap places). */
cublasStatus_t sl_cu_gemm_rm(cublasHandle_t h, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                             int64_t ldc);

/* ------------------------------------------------------------ workspaces */
/* Pieces of one allocation are padded to 64 floats (256 bytes), so every
** piece stays aligned for vector loads. */
static inline size_t sl_cu_pad(int64_t n) { return n > 0 ? ((size_t)n + 63) / 64 * 64 : 0; }

/* Take n floats from the cursor *p (NULL when n is 0). */
static inline float *sl_cu_take(float **p, int64_t n)
{
    if (n <= 0) return NULL;
    float *r = *p;
    *p += sl_cu_pad(n);
    return r;
}

/* ------------------------------------------------------------ copies */
/* rows x width floats from host rows of leading dimension ld into a compact
** device array (ld >= width), and back. Nothing to do when rows or width is 0. */
int sl_cu_rows_to_dev(float *dst, const float *src, int64_t rows, int64_t width, int64_t ld, sl_err *err);
int sl_cu_rows_to_host(float *dst, int64_t ld, const float *src, int64_t rows, int64_t width, sl_err *err);

/* Threads per block of the elementwise kernels, and a grid for n threads
** (capped; the kernels loop with a grid stride). */
#define SL_CU_THREADS 256
static inline unsigned sl_cu_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 16) b = 65535 * 16;
    return (unsigned)b;
}

#endif
