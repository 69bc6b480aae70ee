/*
** Shared gradient checks for the training suites (tests/grad_check.c):
** test_train.c (rnn, lstm, gru), test_train_ssm.c (lru, s4d, mamba) and
** test_train_matrix.c (delta_net, gla).
**
** Every function here works on a model with a bound readout (train.h) and a
** batch of B sequences of T steps: u [B, T, features], target and mask
** [B, T, K]. Nothing here takes ownership of its arguments; what a function
** allocates it frees, except the batch of sl_test_train_data (the caller's).
*/
#ifndef SL_GRAD_CHECK_H
#define SL_GRAD_CHECK_H

#include "sl_test.h"

#include "grad.h"
#include "model.h"
#include "tasks.h"
#include "train.h"

/* Random inputs in [-1.5, 1.5) (F features), targets (classes in [0, C) for
** cross-entropy, uniform in [-1, 1) for MSE) and a mask that keeps ~70% of
** the K targets per step (never all zero: the first is always kept), all
** drawn from sl_test_uniform with seed. *u, *tg and *mk are malloc'ed; the
** caller frees them. */
void sl_test_train_data(int64_t B, int64_t T, int64_t F, int64_t K, int64_t C, sl_loss_kind loss, uint64_t seed,
                        float **u, float **tg, float **mk);

/* The task `name` with options from the JSON text opts_json (NULL: the
** defaults); fails the test when it cannot be made. The caller frees it
** with sl_task_free. */
sl_task *sl_test_task(const char *name, const char *opts_json);

/* The loss in double (sl_loss_grad_f64, no gradients) at m's current
** parameters, after sl_model_params_changed has refreshed whatever the model
** caches from them (packed or concatenated weights). Prints the error and
** returns 0 when either fails. */
double sl_test_loss_at(sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                       const float *mk);

/* dL/dp for the parameter *p of m by central differences with steps the
** float parameter holds exactly (h = rel_step * max(1, |p|), then h/2) and
** one Richardson extrapolation: error O(h^4). *p is restored, and the
** model's caches refreshed, before it returns. */
double sl_test_fd(sl_model *m, const sl_readout *ro, float *p, double rel_step, int64_t B, int64_t T, const float *u,
                  const float *tg, const float *mk);

/* What sl_test_grad_vs_fd found. */
typedef struct sl_test_fd_result {
    double loss;          /* the loss at the model's parameters */
    double worst;         /* max over parameters of |backward - fd| / max(|fd|, 1e-4) */
    double gmax;          /* max |fd| */
    size_t nparam;        /* parameters checked (every entry of every tensor) */
    size_t zero_tensors;  /* tensors whose finite-difference gradient is zero everywhere */
} sl_test_fd_result;

/* Every parameter's gradient from sl_loss_grad_f64 against sl_test_fd with
** rel_step. Prints each parameter whose relative error exceeds tol, each
** tensor with a zero gradient, and one summary line (label, loss, parameter
** count, max |grad|, worst relative error); returns the numbers in *r. The
** caller asserts on r->worst (and r->zero_tensors where every tensor must
** take part in the loss). */
void sl_test_grad_vs_fd(sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                        const float *mk, double rel_step, double tol, const char *label, sl_test_fd_result *r);

/* Both backward passes on one batch, for comparing the float path with the
** double one: initialises *g with float and double gradients (the caller
** frees it with sl_grads_free), runs sl_loss_grad_f64 (loss in *L64) and
** sl_loss_grad_f32 (metrics in *mt), asserts both succeed and the float loss
** is within (rtol 1e-5, atol 1e-7) of the double one. */
void sl_test_grads_both(const sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                        const float *mk, sl_grads *g, double *L64, sl_metrics *mt);

/* Loss and every gradient against torch.autograd (float64) on the committed
** fixture tests/fixtures/train/<name>.{model,ref}.safetensors: opens the
** model and its readout, runs sl_loss_grad_f64 and sl_loss_grad_f32 on the
** reference's u, target and mask, and asserts the double loss to 1e-12, the
** float loss to 1e-5, every double gradient entry to (rtol 1e-9, atol 1e-13),
** the worst tensor's relative L2 error to 1e-10 (double) and f32_l2 (float).
** T > 0: the sequence length (B follows from the target count); T == 0: B, T,
** F and K come from the reference's "dims" tensor and are checked. encoder:
** the model has an input projection (ro.we) and u has ro.n_feat features;
** otherwise u has m->n_in features. Prints one line (name, loss, both worst
** errors). Frees everything it loaded. */
void sl_test_grad_vs_autograd(const char *name, int64_t T, int encoder, double f32_l2);

#endif
