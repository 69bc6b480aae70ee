/*
** The kernel layer: every model's arithmetic goes through these functions
** (DESIGN.md, "Layers of the house"). Dense products go to BLAS (OpenBLAS),
** or to seqlab's own packed-weight GEMM (gemm.c: the block-structured
** families' linear layers and the matrix-state scans' small products); the
** recurrent families share one driver that projects the inputs of a chunk
** of steps in one GEMM and then runs the recurrence with a GEMM (batch > 1) or
** GEMV (batch 1) per step fused with the gate cell.
**
** Every optimised kernel has a plain reference beside it (the *_ref
** functions), and tests/test_kernels.c checks them against each other.
** float32 throughout; analyses work in double through the families' step and
** linsys functions instead.
*/
#ifndef SL_KERNELS_H
#define SL_KERNELS_H

#include <stdint.h>

#include "err.h"

/* ------------------------------------------------------------ BLAS wrappers */
/* C = alpha op(A) op(B) + beta C, row-major; op = transpose when ta/tb. */
void sl_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void sl_dgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
              const double *B, int64_t ldb, double beta, double *C, int64_t ldc);
/* y = alpha op(A) x + beta y, A row-major M x N. */
void sl_sgemv(int ta, int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x, float beta,
              float *y);
void sl_dgemv(int ta, int64_t M, int64_t N, double alpha, const double *A, int64_t lda, const double *x,
              double beta, double *y);

/* Around one large LAPACK call outside OpenMP regions: OpenBLAS may use every
** thread until sl_blas_threads_end(the value begin returned). */
int  sl_blas_threads_begin(void);
void sl_blas_threads_end(int began);

/* Threads for OpenMP regions and OpenBLAS (never more than asked in total). */
void sl_set_threads(int n);
int  sl_get_threads(void);

/* ------------------------------------------------------------ packed-weight GEMM
** kernels/gemm.c: y = x W^T + b for linear layers, weights packed once. */
#define SL_GEMM_PW 64          /* packed panel width (columns) */
#define SL_WPACK_MAXPARTS 8

/* One block of rows of W: w [rows, K] (PyTorch's [out, in]), bias [rows] or NULL. */
typedef struct sl_wpart {
    const float *w;
    const float *b;
    int64_t      rows;
} sl_wpart;

typedef struct sl_wpack sl_wpack;

/* Pack parts stacked along the outputs (N = sum of rows), or with swiglu two
** parts of equal rows (gate, up: N = rows, y = silu(x Wg^T + bg) * (x Wu^T +
** bu)). The parts must stay valid while the pack is used (the reference reads
** them). Free with sl_wpack_free (NULL is fine). */
int  sl_wpack_new(int64_t K, int nparts, const sl_wpart *parts, int swiglu, sl_wpack **out, sl_err *err);
/* Refill from parts of the same shapes (after the weights changed). */
void sl_wpack_refill(sl_wpack *p, const sl_wpart *parts);
void sl_wpack_free(sl_wpack *p);
int64_t sl_wpack_n(const sl_wpack *p);   /* N, the columns of y */
/* y[M, N] = x[M, K] W^T + b (+ r[M, N] when r is not NULL; r may be y), rows
** x + i ldx, r + i ldr, y + i ldy; x must not overlap y. Rows split over
** sl_get_threads() threads (one inside an OpenMP region); the result does not
** depend on the thread count. */
void sl_gemm_wpack(int64_t M, const float *x, int64_t ldx, const sl_wpack *w, const float *r, int64_t ldr, float *y,
                   int64_t ldy);
/* The plain reference from the original weights (double sums). Same contract. */
void sl_gemm_wpack_ref(int64_t M, const float *x, int64_t ldx, const sl_wpack *w, const float *r, int64_t ldr, float *y,
                       int64_t ldy);

/* C[M, N] = (add ? C : 0) + alpha A B with A's element (m, k) at A[m am + k ak]
** (rows or columns of a row-major matrix), B row-major [K, N] (row stride
** ldb), C row-major (ldc); C must not overlap A or B. One thread, no
** allocation: for small products inside parallel work. */
void sl_gemm_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t am, int64_t ak, const float *B,
                 int64_t ldb, int add, float *C, int64_t ldc);
void sl_gemm_f32_ref(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t am, int64_t ak,
                     const float *B, int64_t ldb, int add, float *C, int64_t ldc);

/* ------------------------------------------------------------ activations */
static inline float sl_sigmoidf(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

/* ------------------------------------------------------------ gated recurrences */
typedef enum sl_cell_kind {
    SL_CELL_RNN_TANH = 0,
    SL_CELL_RNN_RELU,
    SL_CELL_LSTM,      /* gates i, f, g, o; carry [h, c] */
    SL_CELL_GRU        /* gates r, z, n;    carry [h]    */
} sl_cell_kind;

typedef struct sl_rnn_packed sl_rnn_packed;   /* kernels/rnn_fused.c */

/* Weights of one PyTorch-style recurrent layer. Not owned. */
typedef struct sl_rnn_weights {
    sl_cell_kind cell;
    int64_t      in, H;     /* input and hidden size */
    const float *w_ih;      /* [G*H, in] */
    const float *w_hh;      /* [G*H, H]  */
    const float *b_ih;      /* [G*H] or NULL */
    const float *b_hh;      /* [G*H] or NULL */
    const float *alpha;     /* leaky RNN: 1/tau per unit [H], or NULL */
    const float *tau;       /* leaky RNN: tau itself (for the double-precision reference), or NULL */
    const sl_rnn_packed *packed;   /* the same weights packed by sl_rnn_pack (the layer owns it), or
                                   ** NULL: sl_rnn_forward then packs them for the call */
} sl_rnn_weights;

/* Gate multiple of a cell (1, 4, 3) and floats carried per sequence (H or 2H). */
int     sl_cell_gates(sl_cell_kind cell);
int64_t sl_cell_carry(sl_cell_kind cell, int64_t H);

/* Pack w's weights for the fused kernels (gate-interleaved tiles, folded
** biases; see rnn_fused.c). Done once per layer; the result does not point
** into w. Free with sl_rnn_packed_free (NULL is fine). */
int  sl_rnn_pack(const sl_rnn_weights *w, sl_rnn_packed **out, sl_err *err);
/* Refill p (packed from weights of the same shapes) from w's current values,
** in place: after an optimiser step changed the tensors w points into. */
void sl_rnn_repack(const sl_rnn_weights *w, sl_rnn_packed *p);
void sl_rnn_packed_free(sl_rnn_packed *p);

/* Forward pass over x [B, T, in] -> y [B, T, H] (y may be NULL). carry
** [B, nc] is the start state in and the final state out (NULL: zeros,
** discarded); states [B, T, nc] receives every carry (or NULL). Inputs are
** projected a chunk of steps at a time so memory stays O(B * chunk * G * H)
** whatever T is. Uses w->packed (or packs for the call), the best ISA of the
** CPU and sl_get_threads() OpenMP threads. */
int sl_rnn_forward(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                   float *states, sl_err *err);
/* sl_rnn_forward that also keeps what the backward pass would otherwise
** recompute: for the LSTM, gates [T, B, 4H] (time-major: the rows a step
** reads are adjacent) receives every step's gate activations i, f, g, o
** (after their sigmoid/tanh, in PyTorch's gate order: gate q of unit j at
** q * H + j). SL_EINVAL for other cells. */
int sl_rnn_forward_gates(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                         float *states, float *gates, sl_err *err);
/* Tuning of sl_rnn_forward, for tests and the bench: steps with fewer than
** min_step_fma multiply-adds run on one thread (default 65536; negative:
** default); mode 0 chooses, 1 forces splitting units over threads (they
** meet every step), 2 splitting sequences. */
void sl_rnn_set_tuning(double min_step_fma, int mode);
/* The plain reference: one step at a time, loops only. Same contract. */
int sl_rnn_forward_ref(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, float *y, float *carry,
                       float *states, sl_err *err);

/* ------------------------------------------------------------ ISA dispatch
** The fused kernels are compiled for AVX-512, AVX2+FMA and the x86-64-v2
** baseline; the best the CPU has is used unless one is forced (tests, bench). */
typedef enum sl_isa { SL_ISA_AUTO = 0, SL_ISA_GENERIC, SL_ISA_AVX2, SL_ISA_AVX512 } sl_isa;
sl_isa      sl_kernels_isa(void);                 /* the one in use */
int         sl_kernels_set_isa(sl_isa isa);       /* SL_EUNSUP if the CPU lacks it; AUTO: detect */
const char *sl_kernels_isa_name(sl_isa isa);

/* Vectorised exp, tanh and sigmoid of the fused cells, on arrays (for tests):
** error bounds in kernels/vecmath.h (a few ulp relative). */
void sl_vexpf(int64_t n, const float *x, float *y);
void sl_vtanhf(int64_t n, const float *x, float *y);
void sl_vsigmoidf(int64_t n, const float *x, float *y);

#endif
