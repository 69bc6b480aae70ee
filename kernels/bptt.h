/*
** Training kernels: backpropagation through time for the gated recurrent
** layers (tanh/relu RNN, leaky RNN with trainable tau, LSTM, GRU) that
** kernels/recurrent.c runs forward.
**
** The backward pass needs only what the forward already keeps (the carries
** after every step, sl_fwd.states). It rebuilds every step's gate
** pre-activations in two large GEMMs over all B*T rows (inputs times W_ih,
** previous hidden states times W_hh), walks the steps backwards with one GEMM
** per step (dL/dh_{t-1} = dL/dpre_t W_hh, batched over the sequences) and a
** fused elementwise pass that turns dL/dh_t (and dL/dc_t) into the gate
** pre-activation gradients in place, then forms the weight gradients in three
** more large GEMMs over all steps (dW_ih = dPre^T X, dW_hh = dPre^T H_prev,
** dX = dPre W_ih). Nothing is allocated: the caller passes a workspace of
** sl_rnn_backward_ws bytes.
**
** The double-precision version is the same source compiled for double
** (rnn_backward_impl.h); it is the reference the finite-difference tests
** check, and the float version is checked against it. Reductions run in a
** fixed order, so results depend only on the inputs and the thread count.
*/
#ifndef SL_BPTT_H
#define SL_BPTT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kernels.h"

/* Gradient accumulators of one layer (added to; any may be NULL = not wanted). */
typedef struct sl_rnn_grads {
    float *w_ih, *w_hh, *b_ih, *b_hh, *tau;
} sl_rnn_grads;
typedef struct sl_rnn_grads_f64 {
    double *w_ih, *w_hh, *b_ih, *b_hh, *tau;
} sl_rnn_grads_f64;

/* C[M, N] = (add ? C : 0) + A B for the recurrent products of the backward
** pass: A's element (m, k) at A[m * am + k * ak] (rows or columns of a
** row-major matrix), B row-major [K, N] with row stride ldb, C row-major.
** AVX-512 micro-kernel where the CPU has it (each element summed over k in
** order by one thread: the result does not depend on the thread count),
** else BLAS. The double version always goes to BLAS. */
void sl_bptt_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B, int64_t ldb,
                  int add, float *C, int64_t ldc);
void sl_bptt_gemm_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t am, int64_t ak, const double *B,
                      int64_t ldb, int add, double *C, int64_t ldc);

/* Workspace bytes for a backward pass over B sequences of T steps. */
size_t sl_rnn_backward_ws(const sl_rnn_weights *w, int64_t B, int64_t T);
size_t sl_rnn_backward_f64_ws(const sl_rnn_weights *w, int64_t B, int64_t T);

/* Backward pass. x [B, T, in] and states [B, T, nc] are the forward's input
** and carries, carry0 [B, nc] its start state (NULL: zeros), dy [B, T, H] the
** gradient of the loss with respect to the outputs. gates [T, B, 4H]: the
** LSTM's gate activations from sl_rnn_forward_gates, read instead of
** recomputing the pre-activations (the product with W_hh, a third of the
** work); NULL (always, for other cells) recomputes them. Writes dx [B, T, in] and
** dcarry0 [B, nc] when not NULL; adds the parameter gradients to g. The leaky
** RNN's tau gradient is d/dtau of h_t = (1 - 1/tau) h_{t-1} + (1/tau) f(.). */
int sl_rnn_backward(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                    const float *states, const float *gates, const float *dy, float *dx, float *dcarry0, const sl_rnn_grads *g, void *ws,
                    size_t ws_size, sl_err *err);
/* The pieces sl_rnn_backward dispatches to (for the tests and the bench):
** the plain version (every cell, every CPU; the float instance of the double
** reference's source), and the fused LSTM backward (lstm_bptt.c), which
** needs gates and an AVX-512 CPU (sl_lstm_bptt_available) and its own
** workspace size. Same contract as sl_rnn_backward. */
size_t sl_rnn_backward_plain_ws(const sl_rnn_weights *w, int64_t B, int64_t T);
int sl_rnn_backward_plain(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                          const float *states, const float *gates, const float *dy, float *dx, float *dcarry0,
                          const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err);
int    sl_lstm_bptt_available(const sl_rnn_weights *w);
size_t sl_lstm_bptt_ws(const sl_rnn_weights *w, int64_t B, int64_t T);
int sl_lstm_bptt(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                 const float *states, const float *gates, const float *dy, float *dx, float *dcarry0,
                 const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err);
/* dL/dy given as dz [B, T, nz] times w [nz, H] (a linear readout with few
** outputs): the fused LSTM backward forms each dy vector where it reads it,
** nz FMAs, instead of a [B, T, H] array written by the readout and read back. */
typedef struct sl_dy_lowrank {
    const float *dz, *w;
    int64_t      nz;
} sl_dy_lowrank;
int sl_lstm_bptt_lowrank(const sl_rnn_weights *w, int64_t B, int64_t T, const float *x, const float *carry0,
                         const float *states, const float *gates, const sl_dy_lowrank *dy, float *dx, float *dcarry0,
                         const sl_rnn_grads *g, void *ws, size_t ws_size, sl_err *err);
int sl_rnn_backward_f64(const sl_rnn_weights *w, int64_t B, int64_t T, const double *x, const double *carry0,
                        const double *states, const double *gates, const double *dy, double *dx, double *dcarry0,
                        const sl_rnn_grads_f64 *g, void *ws, size_t ws_size, sl_err *err);

#endif
