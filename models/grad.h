/*
** Gradients of a model: the training side of the layer interface.
**
** A family that can be trained implements, next to its forward pass, three
** optional ops of sl_layer_ops (layer.h):
**
**   backward      float32 backpropagation through time over a batch, from
**                 the carries its own forward kept (sl_fwd.states, and
**                 sl_fwd.gates for a layer with n_gates > 0): reads x,
**                 the start carry, states (gates) and dL/dy; writes dL/dx (when
**                 asked) and dL/d(start carry) (when asked); ADDS the
**                 gradient of every parameter tensor it reads to that
**                 tensor's buffer, found by the tensor's data pointer with
**                 sl_grads_f32(g, ptr) (NULL = frozen: skip it). Same kernels
**                 as the forward (GEMMs through kernels.h); no allocation
**                 inside the time loop (use b->scratch).
**   backward_f64  the same mathematics in double, reading double carries
**                 produced by the family's own double step; gradients go to
**                 sl_grads_f64(g, ptr). This is the reference the tests hold
**                 against central finite differences (1e-6 relative), and the
**                 float backward is held against it.
**   params_changed  called after every optimiser update: project parameters
**                 onto their constraint set and refresh caches built from
**                 them (the leaky RNN's 1/tau, packed weights).
**
** Everything above the layer (stacking layers, the readout, the loss, the
** optimiser, tasks) is generic and lives in models/grad.c and analysis/train.c;
** adding training to a family is those three functions and nothing else.
**
** The tape keeps what a backward pass needs from a forward pass: every
** layer's input, every layer's carries, and the gate activations of the
** layers that keep them (n_gates > 0: the LSTM), so that their backward need
** not recompute them. Its buffers grow to the largest
** batch seen and are reused, so a training loop allocates nothing per step
** once warm.
*/
#ifndef SL_GRAD_H
#define SL_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "layer.h"
#include "model.h"
#include "tensor.h"

/* ------------------------------------------------------------ scratch */
/* A reusable workspace: sl_scratch_get returns a 64-byte aligned block of at
** least `bytes` (contents undefined), valid until the next get or free. */
typedef struct sl_scratch {
    void  *p;
    size_t size;
} sl_scratch;

void *sl_scratch_get(sl_scratch *s, size_t bytes);
void  sl_scratch_free(sl_scratch *s);

/* ------------------------------------------------------------ gradients */
/* Gradient buffers parallel to a tensor set: f32[i] / f64[i] hold
** params->t[i].numel values, or are NULL (frozen, or that precision not kept). */
typedef struct sl_grads {
    const sl_tensors *params;
    size_t   n;
    float  **f32;
    double **f64;
} sl_grads;

/* Zeroed buffers for every tensor of params, in float32 (want_f32) and/or
** double (want_f64). params must not gain tensors afterwards. */
int     sl_grads_init(sl_grads *g, const sl_tensors *params, int want_f32, int want_f64, sl_err *err);
void    sl_grads_zero(sl_grads *g);          /* both precisions */
void    sl_grads_zero_f32(sl_grads *g);
void    sl_grads_zero_f64(sl_grads *g);
void    sl_grads_free(sl_grads *g);
/* Stop keeping gradients of tensor i (frozen parameters). */
void    sl_grads_freeze(sl_grads *g, size_t i);
/* The gradient buffer of the tensor whose data is param, or NULL (unknown
** pointer, frozen, or not kept in that precision). */
float  *sl_grads_f32(const sl_grads *g, const float *param);
double *sl_grads_f64(const sl_grads *g, const float *param);

/* ------------------------------------------------------------ layers */
/* Wrappers that check the family has the op and name the layer in errors. */
int sl_layer_backward(const sl_layer *L, const sl_bwd *b, sl_err *err);
int sl_layer_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err);
/* 1 if every layer of m has a float and a double backward. */
int sl_model_trainable(const sl_model *m);
/* Call every layer's params_changed (after an optimiser update). */
int sl_model_params_changed(sl_model *m, sl_err *err);

/* ------------------------------------------------------------ model tape */
typedef struct sl_tape {
    int64_t  B, T;           /* of the last forward */
    int      n_layers;
    const float *x;          /* the model input of the last forward (borrowed) */
    float  **act;            /* act[l], l >= 1: input of layer l = output of layer l-1; act[n_layers]: y */
    float  **states;         /* states[l]: [B, T, n_carry] of layer l */
    float  **gates;          /* gates[l]: [B, T, n_gates] of layer l, or NULL (n_gates = 0) */
    size_t  *cap_act, *cap_states, *cap_gates;
    float   *dbuf[2];        /* dL/d(activations), ping-pong during backward */
    size_t   dcap[2];
    float   *dtop;           /* dL/dy formed from dz w (sl_model_backward_lowrank, unflagged top layer) */
    size_t   dtop_cap;
    sl_scratch scratch;
} sl_tape;

typedef struct sl_tape_f64 {
    int64_t  B, T;
    int      n_layers;
    const double *x;
    double **act, **states;
    double  *dbuf[2];
    size_t   dcap[2];
    sl_scratch scratch;
} sl_tape_f64;

void sl_tape_free(sl_tape *t);
void sl_tape_f64_free(sl_tape_f64 *t);

/* Forward pass of the stack from zero start states over x [B, T, n_in],
** keeping what backward needs. The output is tape->act[m->n_layers]
** ([B, T, n_out]); x must stay valid until the backward. */
int sl_model_forward_tape(const sl_model *m, int64_t B, int64_t T, const float *x, sl_tape *tape, sl_err *err);
/* Backward pass through the stack: dy [B, T, n_out] -> gradients added to g;
** dx [B, T, n_in] written when not NULL. */
int sl_model_backward(const sl_model *m, sl_tape *tape, const float *dy, const sl_grads *g, float *dx, sl_err *err);
/* The same with dy = dz w: dz [B, T, nz] (a linear readout's output gradient),
** w [nz, n_out] (its weights). A top layer flagged SL_LAYER_DY_LOWRANK forms dy
** where it needs it (the LSTM's fused backward: nz FMAs a vector instead of a
** [B, T, H] array written and read back); for others dy is formed here first. */
int sl_model_backward_lowrank(const sl_model *m, sl_tape *tape, const float *dz, const float *w, int64_t nz,
                              const sl_grads *g, float *dx, sl_err *err);

/* The double reference: the forward runs every layer's double step
** (sl_layer_step) sequence by sequence; backward runs backward_f64. */
int sl_model_forward_tape_f64(const sl_model *m, int64_t B, int64_t T, const double *x, sl_tape_f64 *tape,
                              sl_err *err);
int sl_model_backward_f64(const sl_model *m, sl_tape_f64 *tape, const double *dy, const sl_grads *g, double *dx,
                          sl_err *err);

#endif
