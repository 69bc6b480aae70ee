/*
** What the state-space families (lssl, s4d, lru, lmu, mamba) share: tensor
** lookup under a layer prefix, the initialisers of seqlab init, and the
** convolution machinery of the linear time-invariant ones.
**
** Convolution. An LTI layer (lssl, s4d, lmu) can run its forward pass as a
** causal convolution with its kernel K_k = C A^k B (lmu: the memory's A^k B).
** The kernel depends only on the parameters, so it is computed once per
** layer, in double, and cached with the spectra of its FFT (sl_ssm_kcache),
** grown when a longer sequence comes; a mutex makes the cache safe when
** several threads run the same layer. Each LTI layer's impl starts with an
** sl_ssm_head whose conv function is the double-precision convolution
** forward, start state and final state included; the float forward's
** convolution path converts to double, calls it and casts back, so the
** convolution agrees with the double recurrence to rounding.
**
** Derived arrays (discretised A and B, float copies) are computed when the
** model is built from its tensors; training changes the tensors in place and
** then calls each layer's params_changed, which recomputes them (lru, s4d:
** also dropping s4d's cached convolution kernel; mamba: A = -exp(A_log)).
*/
#ifndef SL_SSM_H
#define SL_SSM_H

#include <gsl/gsl_rng.h>
#include <pthread.h>
#include <stdint.h>

#include "err.h"
#include "layer.h"
#include "model.h"
#include "scan.h"
#include "tensor.h"

/* The double-precision convolution forward of an LTI layer: y [nb, T, n_out]
** from u [nb, T, n_in]; carry [nb, n_carry] is the start state in and the
** final state out (NULL: zeros, discarded). */
typedef int (*sl_ssm_conv_fn)(const sl_layer *L, int64_t nb, int64_t T, const double *u, double *y, double *carry,
                              sl_err *err);

typedef struct sl_ssm_head {
    sl_ssm_conv_fn conv;
} sl_ssm_head;

/* The layer's forward in double by convolution (lssl, s4d, lmu): see above.
** SL_EUNSUP for other layers. */
int sl_ssm_conv_f64(const sl_layer *L, int64_t nb, int64_t T, const double *u, double *y, double *carry, sl_err *err);

/* The float forward's convolution path for any layer with an sl_ssm_head
** (f->states must be NULL). */
int sl_ssm_forward_conv(const sl_layer *L, const sl_fwd *f, sl_err *err);

/* Whether AUTO should take the convolution: a long enough sequence, no
** per-step states asked for, and kernel spectra for n_filt filters (about
** 2 x 2T doubles each, plus the double copies of u and y) within 256 MB;
** beyond that the recurrence, whose memory does not grow with T. */
int sl_ssm_auto_conv(const sl_fwd *f, int64_t n_filt, int64_t n_io);

/* ------------------------------------------------------------ kernel cache */
/* Computes the kernel's first T taps: K [n_filt, T]. */
typedef int (*sl_ssm_kernel_fn)(const sl_layer *L, int64_t T, double *K, sl_err *err);

typedef struct sl_ssm_kcache {
    pthread_mutex_t mu;
    int     mu_ok;
    int64_t n_filt, group;
    int64_t T;              /* taps held in K */
    double *K;              /* [n_filt, T] */
    sl_fftconv plan;        /* spectra for sequences up to plan.T */
} sl_ssm_kcache;

int  sl_ssm_kcache_init(sl_ssm_kcache *c, int64_t n_filt, int64_t group);
void sl_ssm_kcache_free(sl_ssm_kcache *c);
void sl_ssm_kcache_lock(sl_ssm_kcache *c);
void sl_ssm_kcache_unlock(sl_ssm_kcache *c);
/* With the lock held: a plan for sequences of T steps (the kernel grown to a
** power of two >= T when shorter, the spectra rebuilt when the plan is too
** short or more than four times too long). */
int  sl_ssm_kcache_plan(sl_ssm_kcache *c, const sl_layer *L, sl_ssm_kernel_fn fn, int64_t T, const sl_fftconv **plan,
                        sl_err *err);

/* ------------------------------------------------------------ tensors */
/* Tensor prefix+name into *t: required with exactly this shape (ndim 0: any
** shape), marked as core. SL_EFORMAT naming the tensor when absent or misshapen. */
int sl_ssm_get(sl_model *m, const char *prefix, const char *name, int ndim, const int64_t *shape,
               const sl_tensor **t, sl_err *err);
/* Optional: *t = NULL and SL_OK when absent, else as sl_ssm_get. */
int sl_ssm_opt(sl_model *m, const char *prefix, const char *name, int ndim, const int64_t *shape,
               const sl_tensor **t, sl_err *err);
/* Layer prefix: "<base>layers.<l>." when n_layer > 1, else "<base>". */
const char *sl_ssm_prefix(const char *base, int64_t n_layer, int64_t l, char *buf, size_t n);
/* Number of layers stored: 1 + the largest l with <base>layers.<l>.<probe>, or 1
** when there is none. */
int64_t sl_ssm_count_layers(const sl_tensors *ts, const char *base, const char *probe);
/* The one tensor whose name ends with suffix (at a '.' boundary or the
** start); fills its prefix (the part before suffix) into pf. 0 when none or
** several. */
int sl_ssm_find_suffix(const sl_tensors *ts, const char *suffix, char *pf, size_t n, const sl_tensor **t);

/* ------------------------------------------------------------ init */
gsl_rng *sl_ssm_rng(uint64_t seed);
/* Add name [shape] to ts, filled by fill(). */
int sl_ssm_add(sl_tensors *ts, const char *name, int ndim, const int64_t *shape, sl_tensor **t, sl_err *err);
void sl_ssm_fill_normal(gsl_rng *r, sl_tensor *t, double mean, double std);
void sl_ssm_fill_uniform(gsl_rng *r, sl_tensor *t, double lo, double hi);
void sl_ssm_fill_const(sl_tensor *t, double v);

/* Write a whole config's worth of integers back (so info shows what is in effect). */
void sl_ssm_set_int(json_t *cfg, const char *key, int64_t v);

#endif
