/*
** Backpropagation through time for the gated recurrent layers: see train.h.
** One source (rnn_backward_impl.h) compiled for float and for double, so the
** training path and the reference the finite-difference tests check are the
** same algorithm.
*/
#include <math.h>
#include <string.h>

#include "bptt.h"

#define REAL float
#define RB(n) n##_f32
#define RGEMM sl_sgemm
#define RTANH tanhf
#define REXP expf
#define RB_DOUBLE 0
#define RB_GRADS sl_rnn_grads
#define RB_FN sl_rnn_backward
#define RB_WS_FN sl_rnn_backward_ws
#include "rnn_backward_impl.h"
#undef REAL
#undef RB
#undef RGEMM
#undef RTANH
#undef REXP
#undef RB_DOUBLE
#undef RB_GRADS
#undef RB_FN
#undef RB_WS_FN

#define REAL double
#define RB(n) n##_f64
#define RGEMM sl_dgemm
#define RTANH tanh
#define REXP exp
#define RB_DOUBLE 1
#define RB_GRADS sl_rnn_grads_f64
#define RB_FN sl_rnn_backward_f64
#define RB_WS_FN sl_rnn_backward_f64_ws
#include "rnn_backward_impl.h"
