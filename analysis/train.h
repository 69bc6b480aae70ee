/*
** Training: a model, a readout, a loss, an optimiser and a task.
**
**   net       = the model's layer stack + a readout (linear, or an MLP with one
**               ReLU hidden layer) from the last layer's output to K heads of
**               C outputs per step; the readout's tensors live in the model's
**               tensor set as readout.weight / readout.bias (linear) or
**               readout.0.weight, readout.0.bias, readout.2.weight,
**               readout.2.bias (MLP, PyTorch's nn.Sequential(Linear, ReLU,
**               Linear) names), role SL_ROLE_HEAD; families ignore them.
**   encoder   = for families whose layers take their own width (d_model:
**               lru, s4d, mamba, ...) rather than input_size, the trainer owns
**               an input projection from the task's F features to the model's
**               n_in: encoder.weight [n_in, F] and encoder.bias [n_in]
**               (nn.Linear's names and initialisation), role SL_ROLE_EMBED,
**               added when the family's model does not take F features itself
**               (m->n_in != F). Evaluation, the gradient paths and `seqlab
**               eval` apply it before the layer stack; the layer stack and
**               every analysis of it are unchanged.
**   loss      = cross-entropy over C classes per head (targets are class
**               indices) or mean squared error (C = 1), averaged over the
**               mask's 1s. Accuracy: argmax = target (CE), |y - target| < 0.5
**               (MSE).
**   optimiser = AdamW (PyTorch's: decoupled weight decay lr * wd * p, bias
**               correction), on the global gradient norm clipped to `clip`,
**               after Gaussian noise of variance eta / (1 + t)^gamma is added to
**               every gradient entry (Neelakantan et al. 2015; noise first,
**               then clipping, as TensorFlow's optimize_loss does); learning
**               rate linear warm-up over `warmup` steps, then cosine decay to
**               lr_min at the last step (or constant).
**   curricula = "Emergent mechanisms for long timescales..." (parity, dms):
**               single-head: train on N; when the evaluation accuracy passes
**               the threshold, N += 1 (same head). multi-head: one head per
**               N' in n_start..n_max, the heads with N' <= N trained at once
**               (losses summed over heads, as the paper's code does); N grows
**               when the mean accuracy of the active heads and the newest
**               head's both pass the threshold.
**
** Weight decay applies to tensors with two or more dimensions (weights, not
** biases or the leaky RNN's tau). tau is kept >= 1 by the layer after every
** update (params_changed). Reductions run in a fixed order and the random
** streams (batches, evaluation batches, gradient noise) are separate GSL
** MT19937 generators seeded from the seed, so the same seed and thread count
** give a bit-identical model.
*/
#ifndef SL_TRAIN_H
#define SL_TRAIN_H

#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "family.h"
#include "grad.h"
#include "model.h"
#include "tasks.h"

typedef enum { SL_LOSS_CE = 0, SL_LOSS_MSE } sl_loss_kind;
typedef enum { SL_READOUT_LINEAR = 0, SL_READOUT_MLP } sl_readout_kind;
typedef enum { SL_CURRICULUM_NONE = 0, SL_CURRICULUM_SINGLE, SL_CURRICULUM_MULTI } sl_curriculum_kind;

/* ------------------------------------------------------------ readout */
typedef struct sl_readout {
    sl_readout_kind kind;
    int64_t n_in, n_hidden, n_out;  /* n_out = K * C */
    int64_t K, C;
    sl_loss_kind loss;
    const float *w1, *b1, *w2, *b2;  /* linear: w1 [n_out, n_in], b1; MLP: w1 [hid, n_in], b1, w2 [n_out, hid], b2 */
    /* The input side: the features a step of data has (n_feat), and the
    ** trainer's input projection when the model has one (we [model n_in,
    ** n_feat], be [model n_in]); we = NULL: the data go to the layers as they are. */
    int64_t n_feat;
    const float *we, *be;
} sl_readout;

/* Add fresh readout tensors to ts (PyTorch's nn.Linear initialisation,
** uniform(+-1/sqrt(fan_in)), from seed). */
int sl_readout_init(sl_tensors *ts, sl_readout_kind kind, int64_t n_in, int64_t n_hidden, int64_t n_out, uint64_t seed,
                    sl_err *err);
/* Add a fresh input projection encoder.weight [n_model, n_feat] and
** encoder.bias [n_model] to ts (nn.Linear's initialisation, from seed). */
int sl_encoder_init(sl_tensors *ts, int64_t n_feat, int64_t n_model, uint64_t seed, sl_err *err);

/* Find the readout tensors of m (shapes checked against n_in = m->n_out and
** K * C) and mark them SL_ROLE_HEAD; and the input projection encoder.* when
** present (shapes [m->n_in, F] and [m->n_in], role SL_ROLE_EMBED). */
int sl_readout_bind(sl_readout *r, sl_model *m, sl_readout_kind kind, int64_t K, int64_t C, sl_loss_kind loss,
                    sl_err *err);

/* A trained model's readout from its seqlab.train metadata (readout, heads,
** classes, loss). */
int sl_readout_from_model(sl_readout *r, sl_model *m, sl_err *err);

/* ------------------------------------------------------------ loss */
/* Loss, accuracy and counts of one batch. head_acc[k] / head_n[k] for k < K
** (at most SL_TRAIN_MAX_HEADS reported). "last": at the last masked step of
** each sequence and head. */
#define SL_TRAIN_MAX_HEADS 256
typedef struct sl_metrics {
    double loss, acc, n;
    double last_acc, last_n;
    int64_t K;
    double head_acc[SL_TRAIN_MAX_HEADS], head_n[SL_TRAIN_MAX_HEADS];
} sl_metrics;

/* Readout outputs z [B*T, K*C] against targets/mask [B*T, K]: fills m and,
** when dz is not NULL, dz = dL/dz. */
void sl_loss_f32(const sl_readout *r, int64_t B, int64_t T, const float *z, const float *target, const float *mask,
                 float *dz, sl_metrics *m);
void sl_loss_f64(const sl_readout *r, int64_t B, int64_t T, const double *z, const float *target, const float *mask,
                 double *dz, double *loss);

/* ------------------------------------------------------------ options */
typedef struct sl_train_opts {
    int64_t steps, batch;
    uint64_t seed;
    double  lr, lr_min;
    int64_t warmup;
    int     cosine;                     /* 1 cosine decay, 0 constant after warm-up */
    double  beta1, beta2, eps, weight_decay, clip;
    double  noise_eta, noise_gamma;
    sl_curriculum_kind curriculum;
    int64_t n_start, n_max;
    double  threshold;
    int64_t eval_every, eval_batch;
    sl_loss_kind loss;
    sl_readout_kind readout;
    int64_t readout_hidden;
} sl_train_opts;

/* The keys `seqlab train` accepts for training (as sl_config_key), ending {0}. */
const sl_config_key *sl_train_keys(void);
/* Options from a JSON object of those keys (unknown keys are an error); the
** defaults are written back into cfg, which becomes seqlab.train. */
int sl_train_opts_from_json(json_t *cfg, sl_train_opts *o, sl_err *err);

/* Learning rate at step s (0-based) of o->steps. */
double sl_lr_at(const sl_train_opts *o, int64_t s);
/* Standard deviation of the gradient noise at step s (0 when off). */
double sl_noise_sigma(const sl_train_opts *o, int64_t s);

/* ------------------------------------------------------------ AdamW */
typedef struct sl_adamw {
    size_t  n;
    int64_t t;                  /* updates done */
    float **m, **v;             /* per tensor (NULL where frozen) */
} sl_adamw;

int  sl_adamw_init(sl_adamw *a, const sl_grads *g, sl_err *err);
void sl_adamw_free(sl_adamw *a);
/* One update of every tensor with a gradient: decay where decay[i] (may be NULL: none). */
void sl_adamw_step(sl_adamw *a, sl_tensors *params, const sl_grads *g, double lr, double beta1, double beta2, double eps,
                   double weight_decay, const unsigned char *decay);
/* Global L2 norm of the float gradients (fixed order, in double). */
double sl_grads_norm(const sl_grads *g);
/* g *= s. */
void sl_grads_scale(sl_grads *g, double s);

/* ------------------------------------------------------------ datasets */
/* Sequences from a data file (u, target, mask as `seqlab data` writes them). */
typedef struct sl_dataset {
    int64_t B, T, F, K;
    float  *u, *target, *mask;
    json_t *task;               /* seqlab.task of the file, or NULL */
    int64_t C;                  /* classes from the metadata, 0 unknown */
} sl_dataset;

int  sl_dataset_load(const char *path, sl_dataset *d, sl_err *err);
void sl_dataset_free(sl_dataset *d);
/* Write a batch (and the task config, seed) as a data file. K = 1 writes
** target and mask as [B, T]. */
int  sl_dataset_save(const char *path, const sl_batch *b, const json_t *task_config, int64_t classes, uint64_t seed,
                     sl_err *err);

/* ------------------------------------------------------------ evaluation */
/* Forward pass of model + readout over a batch (inputs [B, T, F]) and its
** metrics. Allocates its own buffers. */
int sl_eval_batch(const sl_model *m, const sl_readout *r, int64_t B, int64_t T, const float *u, const float *target,
                  const float *mask, sl_metrics *out, sl_err *err);

/* Loss and gradients of every tensor in double precision (the reference the
** tests check): forward through the double step, readout and loss in double,
** backward_f64. g must keep f64 buffers; they are zeroed first. */
int sl_loss_grad_f64(const sl_model *m, const sl_readout *r, int64_t B, int64_t T, const float *u, const float *target,
                     const float *mask, const sl_grads *g, double *loss, sl_err *err);

/* The same in float32 through the training path (tape, float backward):
** gradients into g's f32 buffers (zeroed first); metrics of the batch. */
int sl_loss_grad_f32(const sl_model *m, const sl_readout *r, int64_t B, int64_t T, const float *u, const float *target,
                     const float *mask, const sl_grads *g, sl_metrics *out, sl_err *err);

/* ------------------------------------------------------------ trainer */
typedef struct sl_train_step_info {
    int64_t step;               /* 1-based: updates done */
    double  loss, acc, lr, grad_norm;
    int     evaluated;          /* an evaluation ran after this step */
    sl_metrics eval;
    int64_t n;                  /* curriculum N after this step (0: none) */
    int     n_changed;
    /* Wall seconds of the step's phases (the evaluation not included): the
    ** batch, the model's forward pass with its tape (and the input projection),
    ** the readout with the loss and their backward, the model's backward, and
    ** the update (noise, norm, clipping, AdamW, params_changed). */
    double  t_batch, t_forward, t_readout, t_backward, t_update;
} sl_train_step_info;

typedef struct sl_trainer {
    sl_model     *m;            /* owned */
    sl_readout    ro;
    sl_task      *task;         /* borrowed (the curriculum changes its N), or NULL with a dataset */
    sl_dataset   *data;         /* borrowed, or NULL */
    sl_train_opts o;
    sl_grads      g;
    sl_adamw      opt;
    sl_tape       tape;
    sl_batch      batch;
    unsigned char *decay;
    gsl_rng      *rng_batch, *rng_eval, *rng_noise;
    float        *z, *dz, *dy, *hid, *dhid;
    float        *xe, *dxe;     /* encoder output and its gradient (rows x model n_in), with an encoder */
    size_t        cap_rows;
    float        *ro_part;      /* per-thread partial readout gradients (readout_loss_linear) */
    double       *ro_hpart;     /* per-thread partial head metrics */
    int           ro_nt;        /* threads they hold */
    int64_t       step;
    int64_t       n_cur;        /* curriculum N */
} sl_trainer;

/* A fresh model of family fam (cfg: its options; input_size is set to the
** task's or dataset's features) with a readout for the task, and an input
** projection (encoder.*) when the family's model does not take that many
** features (families sized by d_model), ready to train.
** cfg and task (or data) are borrowed; o is copied. freeze: NULL or a
** NULL-terminated list of tensor-name suffixes whose gradients are not kept. */
int  sl_trainer_new(const sl_family *fam, json_t *cfg, sl_task *task, sl_dataset *data, const sl_train_opts *o,
                    const char *const *freeze, sl_trainer **out, sl_err *err);
void sl_trainer_free(sl_trainer *tr);
/* One optimiser step (and an evaluation / curriculum step when due). */
int  sl_trainer_step(sl_trainer *tr, sl_train_step_info *info, sl_err *err);
/* Metadata to save with the model: seqlab.task and seqlab.train (JSON
** strings); train_cfg is the options object (copied, with readout/heads/
** classes/steps added). Caller decrefs. */
json_t *sl_trainer_metadata(const sl_trainer *tr, const json_t *train_cfg);

/* ------------------------------------------------------------ checkpoints */
/* A resumable checkpoint: the model's tensors, AdamW's moments of every
** trained tensor as F32 tensors optim.m.<name> and optim.v.<name> (role
** SL_ROLE_OPTIM when opened: families and seqlab eval ignore them), and in
** the metadata, besides sl_trainer_metadata's keys and seqlab.family/config,
** seqlab.train_state: {"version": 1, "step", "adam_t", "n_cur", "rng": name,
** "rng_batch", "rng_eval", "rng_noise" (the generators' raw states,
** gsl_rng_state, in hex), "freeze": [suffixes], "data": path or null}.
** freeze and data are recorded as given (data: the --data path, NULL with a
** task). Written atomically. */
int sl_trainer_save_checkpoint(const sl_trainer *tr, const char *path, const json_t *train_cfg,
                               const char *const *freeze, const char *data_path, sl_err *err);
/* seqlab.train_state of an opened checkpoint as a JSON object (new
** reference), or SL_EFORMAT "... has no trainer state ..." when absent. */
int sl_checkpoint_state(const sl_model *ck, json_t **state, sl_err *err);
/* Continue tr (fresh from sl_trainer_new with the checkpoint's family, config,
** task and options) from ck: parameters, moments, step, generators,
** curriculum N. Every tensor and the state are checked (SL_EFORMAT). The step
** must be below tr->o.steps (SL_EINVAL). */
int sl_trainer_resume(sl_trainer *tr, const sl_model *ck, sl_err *err);

#endif
