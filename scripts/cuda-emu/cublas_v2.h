// CPU emulation of the cuBLAS subset seqlab uses (verification aid): column-major SGEMM
// as the cuBLAS documentation defines it, with its leading-dimension checks.
#pragma once
#include "cuda_runtime.h"
typedef struct emu_cublas *cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_ALLOC_FAILED = 3, CUBLAS_STATUS_INVALID_VALUE = 7 };
typedef int cublasOperation_t;
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
typedef int cublasMath_t;
enum { CUBLAS_DEFAULT_MATH = 0 };
inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = (cublasHandle_t)malloc(8); return 0; }
inline cublasStatus_t cublasDestroy(cublasHandle_t h) { free(h); return 0; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return 0; }
inline const char *cublasGetStatusString(cublasStatus_t) { return "emulated cublas error"; }
inline int64_t emu_max1(int64_t a) { return a > 1 ? a : 1; }
inline cublasStatus_t cublasSgemm_64(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                                     int64_t k, const float *alpha, const float *A, int64_t lda, const float *B,
                                     int64_t ldb, const float *beta, float *C, int64_t ldc)
{
    if (!h || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < emu_max1(ta == CUBLAS_OP_N ? m : k) || ldb < emu_max1(tb == CUBLAS_OP_N ? k : n) || ldc < emu_max1(m)) {
        fprintf(stderr, "EMU: sgemm bad ld m=%ld n=%ld k=%ld lda=%ld ldb=%ld ldc=%ld ta=%d tb=%d\n", (long)m, (long)n,
                (long)k, (long)lda, (long)ldb, (long)ldc, ta, tb);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!A || !B || !C) return CUBLAS_STATUS_INVALID_VALUE;
    emu_expect(A, true, "cublasSgemm A");
    emu_expect(B, true, "cublasSgemm B");
    emu_expect(C, true, "cublasSgemm C");
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            for (int64_t l = 0; l < k; l++) {
                const float a = ta == CUBLAS_OP_N ? A[i + l * lda] : A[l + i * lda];
                const float b = tb == CUBLAS_OP_N ? B[l + j * ldb] : B[j + l * ldb];
                s += (double)a * b;
            }
            float r = *alpha * (float)s;
            if (*beta != 0.0f) r += *beta * C[i + j * ldc];
            C[i + j * ldc] = r;
        }
    return 0;
}
