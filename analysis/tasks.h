/*
** Synthetic sequence tasks: batches of (input, target, mask) generated from a
** seed, for training small models to analyse, and written to data files by
** `seqlab data`.
**
** Every task produces, for B sequences of T steps,
**     u      [B, T, F]  inputs (bits, or one-hot symbols)
**     target [B, T, K]  K heads per step: a class index in 0..C-1 (stored as
**                       float) for cross-entropy, or a value for MSE
**     mask   [B, T, K]  1 where the target counts, 0 elsewhere
** F, K and C are fixed by the task's options. The tasks (`seqlab help data`
** documents options and encodings):
**
**   parity          running parity (n = 0): target_t = u_1 xor ... xor u_t;
**                   N-parity (n = N): xor of the last N bits
**   dms             N-delayed match-to-sample: target_t = [u_t == u_{t-N+1}]
**                   (the first and last of the last N bits, as the code of
**                   "Emergent mechanisms for long timescales..." defines it)
**   copy            K tokens, a delay, K marker steps that recall them in order
**   selective_copy  K tokens at random places among blanks (Mamba), recalled
**   mqar            multi-query associative recall (Zoology): key-value pairs,
**                   then queried keys answered with their values
**   modular         running sum of symbols mod m (state tracking)
**   regular         membership of each prefix in a regular language given as
**                   a small DFA
**
** parity and dms can have several heads: n_min..n, one per N (the multi-head
** curriculum of that paper), and heads above an "active" N can be masked out
** (sl_task_set_n). A head's target is masked where it is undefined (t < N-1).
**
** Batches depend only on the generator's state: the same seed gives the same
** data on every machine (GSL's MT19937, integer draws).
*/
#ifndef SL_TASKS_H
#define SL_TASKS_H

#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "family.h"

typedef enum sl_task_kind {
    SL_TASK_PARITY = 0,
    SL_TASK_DMS,
    SL_TASK_COPY,
    SL_TASK_SELECTIVE_COPY,
    SL_TASK_MQAR,
    SL_TASK_MODULAR,
    SL_TASK_REGULAR
} sl_task_kind;

typedef struct sl_task {
    sl_task_kind kind;
    const char *name;          /* static */
    int64_t F, K, C;           /* features, heads, classes per head */
    int64_t length;            /* the length option (0: the task's default, see sl_task_length) */
    int     last_only;         /* targets only at the last step */
    /* parity, dms */
    int64_t n_lo, n_hi;        /* heads: N = n_lo .. n_hi */
    int64_t n_active;          /* heads with N > n_active are masked */
    int     onehot;            /* bits as one-hot pairs instead of one 0/1 feature */
    double  p_one;             /* probability of a 1 bit */
    /* copy, selective_copy */
    int64_t vocab, tokens;
    /* mqar */
    int64_t keys, values, pairs, queries;
    /* modular */
    int64_t m;
    /* regular: n_states x n_sym transition table, accepting states */
    int64_t n_states, n_sym;
    int    *delta;
    unsigned char *accept;
    json_t *config;            /* {"task": name, every option in effect} */
} sl_task;

/* A batch; buffers grow and are reused across calls (free with sl_batch_free). */
typedef struct sl_batch {
    int64_t B, T, F, K;
    float  *u, *target, *mask;
    size_t  cap_u, cap_tm;
} sl_batch;

/* "parity, dms, ..." (static). */
const char *sl_task_names(void);
/* 1 if name is a task. */
int sl_task_known(const char *name);
/* The option keys task name accepts, ending with {0} (NULL for an unknown task). */
const sl_config_key *sl_task_keys(const char *name);
/* One line describing the task (static), or NULL. */
const char *sl_task_summary(const char *name);

/* Build task name from options (a JSON object of the keys above; NULL =
** defaults). Bad or unknown options: SL_EINVAL naming the option. */
int  sl_task_new(const char *name, const json_t *opts, sl_task **out, sl_err *err);
/* From a config object as sl_task->config writes it ({"task": ..., ...}). */
int  sl_task_from_config(const json_t *config, sl_task **out, sl_err *err);
void sl_task_free(sl_task *t);

/* The sequence length batches use by default: the length option, else the
** task's default (for N-parity/N-DMS, ceil(2.5 N) + 2 with N the largest
** active N: the longest sequence of that paper's training distribution). */
int64_t sl_task_length(const sl_task *t);

/* parity and dms: set the heads (n_lo..n_hi, K = n_hi - n_lo + 1) and the
** largest active N; updates t->config. SL_EINVAL for other tasks or bad N. */
int  sl_task_set_n(sl_task *t, int64_t n_lo, int64_t n_hi, int64_t n_active, sl_err *err);

/* Fill out with B sequences of T steps drawn from r. */
int  sl_task_batch(const sl_task *t, gsl_rng *r, int64_t B, int64_t T, sl_batch *out, sl_err *err);
void sl_batch_free(sl_batch *b);

/* The DFA of a regular-language spec ("ROWS/ACCEPT" or a preset name), for
** tests and help: n_states x n_sym table (malloc'ed) and accepting flags. */
int  sl_dfa_parse(const char *spec, int64_t *n_states, int64_t *n_sym, int **delta, unsigned char **accept,
                  sl_err *err);

#endif
