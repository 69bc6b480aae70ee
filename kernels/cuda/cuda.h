/*
** The CUDA backend of the kernel layer: the same functions as kernels/
** (GEMM, the gated recurrent forward, Mamba's selective scan, the
** matrix-state scan), built by `make CUDA=1` from the .cu files in kernels/cuda/ with
** nvcc and linked with cuBLAS and the CUDA runtime.
**
** Contracts are those of the CPU kernels, with host pointers in and out: each
** function copies its inputs to the device, runs there, copies its outputs
** back and returns when they are in place (synchronous; the default stream).
** The arrays keep the CPU layouts (leading dimensions included), so a family
** switches backend at its call site with one branch. Inside a call the device
** arrays are compact (leading dimension = row width) and live in one
** cudaMalloc carved into named pieces, freed before returning.
**
** Every function returns SL_OK or a negative SL_E* status with a message in
** err: SL_EUNSUP when no usable device is present (sl_cuda_check's message),
** SL_ENOMEM when device memory runs out, SL_EINTERNAL for any other CUDA or
** cuBLAS failure (the runtime's message, the call and the file position).
** Nothing here prints or exits.
**
** The whole header is empty unless SL_CUDA is defined (make CUDA=1), so a CPU
** build never sees these names; callers guard their device branches with
** #ifdef SL_CUDA.
*/
#ifndef SL_CUDA_H
#define SL_CUDA_H

#ifdef SL_CUDA

#include <stdint.h>

/* The library's C headers carry no extern "C" of their own. */
#ifdef __cplusplus
extern "C" {
#endif

#include "err.h"
#include "kernels.h"
#include "matstate.h"
#include "scan.h"

/* ------------------------------------------------------------ device */
/* Number of usable CUDA devices (compute capability 8.0 or newer, which the
** kernels are built for); 0 without a driver or a device. Asked once, then
** cached (thread-safe). The first usable device is the one every call uses. */
int sl_cuda_available(void);

/* SL_OK when a usable device is present, else SL_EUNSUP with the reason:
** "no CUDA device found (<runtime's reason>)" or "no usable CUDA device
** (<name> has compute capability X.Y; seqlab's CUDA kernels need 8.0 or newer)". */
int sl_cuda_check(sl_err *err);

/* ------------------------------------------------------------ GEMM */
/* C = alpha op(A) op(B) + beta C, row-major, op = transpose when ta / tb: the
** contract of sl_sgemm (kernels.h), through cublasSgemm. Host pointers. */
int sl_cuda_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc, sl_err *err);

/* The same on device pointers, enqueued on the default stream and not
** waited for: the building block the other kernels use. */
int sl_cuda_sgemm_dev(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc, sl_err *err);

/* ------------------------------------------------------------ gated recurrences */
/* sl_rnn_forward's contract (kernels.h): x [B, T, in] -> y [B, T, H] (y may be
** NULL), carry [B, nc] start state in, final state out (NULL: zeros,
** discarded), states [B, T, nc] every carry or NULL; rnn tanh / relu (with the
** leaky alpha), lstm, gru with PyTorch's gate order. The inputs of a chunk of
** steps are projected by one cuBLAS GEMM; each step is one GEMM with W_hh
** and one fused cell kernel (gates, nonlinearities, state update). */
int sl_cuda_rnn_forward(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                        float *states, sl_err *err);

/* Cap the steps whose inputs are projected at once (0, the default: as many
** as fit in 2^26 floats). For tests of the chunk boundaries; set it while no
** forward pass runs. */
void sl_cuda_rnn_set_chunk(int64_t steps);

/* ------------------------------------------------------------ selective scan */
/* sl_selective_scan_f32's contract (scan.h), leading dimensions included.
** A group of lanes per (sequence, channel) with the channel's N states in
** registers; d_state up to 512. */
int sl_cuda_selective_scan(const sl_sscan *s, const sl_sscan_io *io, sl_err *err);

/* ------------------------------------------------------------ matrix-state scan */
/* Many heads of many sequences at once, in the layout the block families
** use: row (b, t) of an input holds every head side by side, head h of q
** and k at columns [h dk, (h+1) dk), of v and o at [h dv, (h+1) dv):
**   q, k     row (b, t) at q + (b T + t) ldq           (nh dk columns)
**   v, o     row (b, t) at v + (b T + t) ldv           (nh dv columns)
**   g        head h's log decay at g + (b T + t) ldg + h gdim, or NULL
**   beta     head h's beta at beta + (b T + t) ldb + h, or NULL (no delta rule)
**   S        sequence b's states at S + b ldS, head h's [dk, dv] block at
**            h dk dv (start in, final out)
** Each head runs sl_ms_recurrent's recurrence (matstate.h). */
typedef struct sl_ms_batch {
    int64_t      nb, nh, T, dk, dv;
    const float *q, *k, *v;
    int64_t      ldq, ldk, ldv;
    const float *g;
    int64_t      ldg, gdim;            /* gdim: 1 or dk */
    const float *beta;
    int64_t      ldb;
    float        scale;
    float       *o;
    int64_t      ldo;
    float       *S;
    int64_t      ldS;
} sl_ms_batch;

/* One thread per column of a head's state (columns evolve independently in
** every form, the delta rule included), the column in registers for dk <= 128
** (in device memory beyond), the step's q, k and decay in shared memory. */
int sl_cuda_matstate_scan(const sl_ms_batch *m, sl_err *err);

#ifdef __cplusplus
}
#endif

/* Head h of sequence b of a batch as the CPU kernels' one-head descriptor
** (tests and CPU fallbacks loop over these). */
static inline sl_ms_seq sl_ms_batch_seq(const sl_ms_batch *m, int64_t b, int64_t h)
{
    sl_ms_seq s;
    const int64_t r = b * m->T;
    s.T = m->T;
    s.dk = m->dk;
    s.dv = m->dv;
    s.q = m->q + r * m->ldq + h * m->dk;
    s.k = m->k + r * m->ldk + h * m->dk;
    s.v = m->v + r * m->ldv + h * m->dv;
    s.ldq = m->ldq;
    s.ldk = m->ldk;
    s.ldv = m->ldv;
    s.g = m->g ? m->g + r * m->ldg + h * m->gdim : NULL;
    s.ldg = m->ldg;
    s.gdim = m->gdim;
    s.beta = m->beta ? m->beta + r * m->ldb + h : NULL;
    s.ldb = m->ldb;
    s.scale = m->scale;
    s.o = m->o + r * m->ldo + h * m->dv;
    s.ldo = m->ldo;
    s.S = m->S + b * m->ldS + h * m->dk * m->dv;
    return s;
}

#endif /* SL_CUDA */

#endif
