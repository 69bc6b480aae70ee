/*
** A layer of a sequence model: the interface every family implements and the
** only one analyses use (DESIGN.md, "The one idea").
**
** Each layer carries a state from step to step ("carry", n_carry floats or
** doubles per sequence). The first n_state entries of the carry are the state
** of the layer's linear system; anything after them is context the update
** needs but that is not part of the linear system (Mamba's and DeltaNet's
** short-convolution buffers, mLSTM's stabiliser). A zero carry is the start
** state of every family.
**
** Three views of the same layer, which the tests hold equal:
**   forward  float32, a batch of sequences, the optimised kernels;
**   step     double, one step of one sequence: the plain reference, and what
**            finite differences and trajectory analyses run on;
**   linsys   double, the structured linear system at a point (carry, u).
*/
#ifndef SL_LAYER_H
#define SL_LAYER_H

#include <stdint.h>

#include "device.h"
#include "err.h"
#include "linsys.h"

#define SL_MAX_BLOCKS 8

/* A named block of the carry: "h", "c", "S", "n", "conv", ... */
typedef struct sl_state_block {
    const char *name;        /* static string */
    int64_t offset, size;    /* within the carry */
    int     ndim;
    int64_t shape[4];        /* e.g. {heads, d_k, d_v} for a matrix state */
} sl_state_block;

/* Forward algorithms (families accept the ones they have; AUTO picks). */
enum {
    SL_ALGO_AUTO = 0,
    SL_ALGO_RECURRENT,       /* step by step */
    SL_ALGO_CHUNKED,         /* chunkwise-parallel (matrix-state families) */
    SL_ALGO_CONV,            /* convolution with the SSM kernel (LTI families) */
    SL_ALGO_REFERENCE        /* the plain reference loops */
};

/* Arguments of a forward pass. x and y may not alias. */
typedef struct sl_fwd {
    int64_t      B, T;
    const float *x;          /* [B, T, n_in] */
    float       *y;          /* [B, T, n_out] */
    float       *carry;      /* [B, n_carry]: start state in, final state out; NULL = zeros, discarded */
    float       *states;     /* [B, T, n_carry]: the carry after every step, or NULL */
    int          algo;       /* SL_ALGO_* */
    int64_t      chunk;      /* chunk length for chunked/conv algorithms; 0 = family default */
    int          device;     /* SL_DEVICE_CPU (0, default) or SL_DEVICE_CUDA (layers flagged SL_LAYER_CUDA) */
    float       *gates;      /* B * T * n_gates floats, laid out as the layer likes (the LSTM: [T, B, 4H]):
                             ** what the layer's backward would otherwise recompute (the
                             ** LSTM's gate activations), for training; written only by layers with
                             ** n_gates > 0 on the CPU, and only with states; NULL = not wanted */
} sl_fwd;

typedef struct sl_layer sl_layer;
struct sl_grads;
struct sl_scratch;

/* Arguments of a backward pass (backpropagation through time) in float32,
** after a forward pass over the same x that kept its carries (sl_fwd.states).
** Gradients of the layer's parameters are ADDED to their buffers in g
** (sl_grads_f32(g, param) gives the buffer of a parameter tensor's data, or
** NULL for a frozen one, which the family then skips). The gradient flowing
** into the final carry is zero (the loss reads the outputs y only). */
typedef struct sl_bwd {
    int64_t      B, T;
    const float *x;          /* [B, T, n_in]: the forward's input */
    const float *carry0;     /* [B, n_carry]: the forward's start state, NULL = zeros */
    const float *states;     /* [B, T, n_carry]: the carry after every step (from the forward) */
    const float *dy;         /* [B, T, n_out]: dL/dy, or NULL (layers flagged SL_LAYER_DY_LOWRANK): */
    /* dL/dy = dz w_dz, dz [B, T, n_dz] and w_dz [n_dz, n_out]: a linear readout's few outputs, so the
    ** layer forms dy where it needs it instead of reading B * T * n_out floats the readout wrote. */
    const float *dz, *w_dz;
    int64_t      n_dz;
    const float *gates;      /* the forward's sl_fwd.gates (B * T * n_gates), or NULL: the backward recomputes */
    float       *dx;         /* [B, T, n_in]: dL/dx written here (overwritten), or NULL: not wanted */
    float       *dcarry0;    /* [B, n_carry]: dL/d(start state) written here, or NULL */
    const struct sl_grads *g;
    struct sl_scratch *scratch;  /* reusable workspace (sl_scratch_get), or NULL: allocate per call */
} sl_bwd;

/* The same in double: the reference backward that the finite-difference
** tests check (states come from the double step, see grad.h). Gradients are
** added to sl_grads_f64(g, param). */
typedef struct sl_bwd_f64 {
    int64_t       B, T;
    const double *x, *carry0, *states, *dy;
    double       *dx, *dcarry0;
    const struct sl_grads *g;
    struct sl_scratch *scratch;
} sl_bwd_f64;

typedef struct sl_layer_ops {
    /* Forward pass (float32). */
    int  (*forward)(const sl_layer *L, const sl_fwd *f, sl_err *err);
    /* One step in double: carry (n_carry), u (n_in) -> carry_next (n_carry), y (n_out).
    ** carry_next and y may be NULL when not wanted; neither aliases the inputs. */
    int  (*step)(const sl_layer *L, const double *carry, const double *u, double *carry_next, double *y,
                 sl_err *err);
    /* The linear system of step (carry, u), the parts selected by what (SL_LS_*).
    ** ls must be initialised; the caller frees it with sl_linsys_free. */
    int  (*linsys)(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                   sl_err *err);
    /* Release impl (not the tensors, which the model owns). */
    void (*free)(sl_layer *L);
    /* ---- training (optional; see models/grad.h for the contract) ----
    ** Backward pass in float32 (the training path) and in double (the
    ** reference the gradient tests hold against finite differences). */
    int  (*backward)(const sl_layer *L, const sl_bwd *b, sl_err *err);
    int  (*backward_f64)(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err);
    /* The optimiser changed the layer's parameter tensors in place: project
    ** them onto their constraint set (e.g. leaky RNN tau >= 1) and refresh
    ** anything cached from them at build (1/tau, packed weights). NULL when
    ** the layer caches nothing and has no constraints. */
    int  (*params_changed)(sl_layer *L, sl_err *err);
} sl_layer_ops;

/* Layer properties (flags). */
enum {
    SL_LAYER_LTI       = 1u << 0,  /* A, B, C, D do not depend on the point */
    SL_LAYER_LINEAR    = 1u << 1,  /* update is linear in the state (linsys is exact) */
    SL_LAYER_SELECTIVE = 1u << 2,  /* A_t, B_t depend on the input */
    SL_LAYER_MATRIX    = 1u << 3,  /* matrix-valued state per head */
    SL_LAYER_CUDA      = 1u << 4,  /* forward has a CUDA path (sl_fwd.device = SL_DEVICE_CUDA) */
    SL_LAYER_A_CONST   = 1u << 5,  /* A is the same at every point though B, C may not be (RetNet's
                                   ** decay, linear attention's identity): one point gives its spectrum */
    SL_LAYER_DY_LOWRANK = 1u << 6  /* backward takes dL/dy as sl_bwd.dz times sl_bwd.w_dz */
};

struct sl_layer {
    const sl_layer_ops *ops;
    const char *kind;        /* family name, static */
    int     index;           /* 0-based position in the model */
    int64_t n_in, n_out;
    int64_t n_carry;
    int64_t n_gates;         /* floats per sequence and step of sl_fwd.gates (0: the layer keeps none) */
    int64_t n_state;         /* linear-system state = carry[0, n_state) */
    int64_t n_sys_in;        /* columns of B (the linear system's input size) */
    int64_t n_sys_out;       /* rows of C */
    int     n_blocks;
    sl_state_block blocks[SL_MAX_BLOCKS];
    unsigned flags;
    /* Single-unit time constants of the output units (n_out entries, e.g. the
    ** leaky RNN's tau), or NULL when every unit's own timescale is one step. */
    const float *unit_tau;
    void   *impl;            /* family data, freed by ops->free */
};

/* Convenience wrappers that check sizes and report the layer in errors. */
int  sl_layer_forward(const sl_layer *L, const sl_fwd *f, sl_err *err);
int  sl_layer_step(const sl_layer *L, const double *carry, const double *u, double *carry_next, double *y,
                   sl_err *err);
int  sl_layer_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                     sl_err *err);
void sl_layer_free(sl_layer *L);   /* ops->free then the struct */

/* Add a state block (helper for family builders). */
void sl_layer_add_block(sl_layer *L, const char *name, int64_t offset, int ndim, const int64_t *shape);

#endif
