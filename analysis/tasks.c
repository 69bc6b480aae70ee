/*
** Synthetic tasks: see tasks.h.
**
** Each generator draws every random number it needs from the caller's GSL
** generator in a fixed order (sequence by sequence, step by step), with
** integer draws (gsl_rng_uniform_int) wherever a choice is discrete, so a seed
** fixes the data exactly. Options are validated once in sl_task_new; the
** generators then only fill arrays.
*/
#include "tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

/* ------------------------------------------------------------ options */
#define COMMON_KEYS                                                                                             \
    {"length", "int", "sequence length T (default: the task's, see above)"},                                    \
    {"last", "bool", "targets only at the last step of each sequence (default false: every step that has one)"}

static const sl_config_key parity_keys[] = {
    {"n", "int", "N of N-parity (xor of the last N bits); 0 = running parity of the whole prefix (default 0)"},
    {"n_min", "int", "multi-head: one head per N in n_min..n (default n: one head)"},
    {"n_active", "int", "heads with N above this are masked (curricula; default n)"},
    {"encoding", "string", "bit (one feature, 0/1) or onehot (two features) (default bit)"},
    {"p_one", "float", "probability of a 1 bit (default 0.5)"},
    COMMON_KEYS,
    {0, 0, 0},
};
static const sl_config_key dms_keys[] = {
    {"n", "int", "N >= 2: target_t = 1 when u_t equals u_{t-N+1} (default 2)"},
    {"n_min", "int", "multi-head: one head per N in n_min..n (default n: one head)"},
    {"n_active", "int", "heads with N above this are masked (curricula; default n)"},
    {"encoding", "string", "bit (one feature, 0/1) or onehot (two features) (default bit)"},
    COMMON_KEYS,
    {0, 0, 0},
};
static const sl_config_key copy_keys[] = {
    {"vocab", "int", "data symbols V (default 8)"},
    {"tokens", "int", "tokens to copy K (default 8)"},
    COMMON_KEYS,
    {0, 0, 0},
};
static const sl_config_key mqar_keys[] = {
    {"keys", "int", "key vocabulary (default 16)"},
    {"values", "int", "value vocabulary (default 16)"},
    {"pairs", "int", "key-value pairs per sequence, distinct keys (default 4)"},
    {"queries", "int", "queries after the pairs; 0 = every remaining step (default 0)"},
    COMMON_KEYS,
    {0, 0, 0},
};
static const sl_config_key modular_keys[] = {
    {"m", "int", "modulus, and number of input symbols (default 5)"},
    COMMON_KEYS,
    {0, 0, 0},
};
static const sl_config_key regular_keys[] = {
    {"dfa", "string", "the DFA: \"ROWS/ACCEPT\" or a preset (default parity; see above)"},
    COMMON_KEYS,
    {0, 0, 0},
};

static const struct {
    const char *name;
    sl_task_kind kind;
    const sl_config_key *keys;
    const char *summary;
} task_table[] = {
    { "parity", SL_TASK_PARITY, parity_keys, "running parity of a bit stream, or N-parity of the last N bits" },
    { "dms", SL_TASK_DMS, dms_keys, "N-delayed match-to-sample: does u_t equal u_{t-N+1}" },
    { "copy", SL_TASK_COPY, copy_keys, "copy K tokens after a delay" },
    { "selective_copy", SL_TASK_SELECTIVE_COPY, copy_keys, "copy K tokens scattered among blanks" },
    { "mqar", SL_TASK_MQAR, mqar_keys, "multi-query associative recall of key-value pairs" },
    { "modular", SL_TASK_MODULAR, modular_keys, "running sum of symbols mod m" },
    { "regular", SL_TASK_REGULAR, regular_keys, "membership of each prefix in a regular language (DFA)" },
};

const char *sl_task_names(void)
{
    return "parity, dms, copy, selective_copy, mqar, modular, regular";
}

static int task_index(const char *name)
{
    for (size_t i = 0; name && i < SL_ARRAY_LEN(task_table); i++)
        if (strcmp(task_table[i].name, name) == 0) return (int)i;
    return -1;
}

int sl_task_known(const char *name) { return task_index(name) >= 0; }

const sl_config_key *sl_task_keys(const char *name)
{
    int i = task_index(name);
    return i < 0 ? NULL : task_table[i].keys;
}

const char *sl_task_summary(const char *name)
{
    int i = task_index(name);
    return i < 0 ? NULL : task_table[i].summary;
}

/* ------------------------------------------------------------ DFA */
static const struct { const char *name, *spec; } dfa_presets[] = {
    { "parity", "0,1;1,0/1" },          /* odd number of 1s */
    { "mod3", "0,1;1,2;2,0/0" },        /* number of 1s divisible by 3 */
    { "tomita1", "1,0;1,1/0" },         /* 1* */
    { "tomita2", "2,1;0,2;2,2/0" },     /* (10)* */
    { "tomita4", "1,0;2,0;3,0;3,3/0,1,2" },  /* no 000 */
};

static int parse_uint(const char **p, int64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9') return -1;
    int64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 1000000) return -1;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

int sl_dfa_parse(const char *spec, int64_t *n_states, int64_t *n_sym, int **delta, unsigned char **accept,
                 sl_err *err)
{
    *delta = NULL;
    *accept = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(dfa_presets); i++)
        if (strcmp(spec, dfa_presets[i].name) == 0) spec = dfa_presets[i].spec;
    const char *slash = strchr(spec, '/');
    if (!slash) return sl_err_set(err, SL_EINVAL, "dfa \"%s\": expected ROWS/ACCEPT (e.g. \"0,1;1,0/1\") or a preset", spec);
    /* Count rows and columns first. */
    int64_t rows = 1, cols = 1;
    for (const char *p = spec; p < slash; p++) rows += *p == ';';
    for (const char *p = spec; p < slash && *p != ';'; p++) cols += *p == ',';
    if (rows > 4096 || cols > 4096) return sl_err_set(err, SL_EINVAL, "dfa: too many states or symbols");
    int *d = malloc((size_t)(rows * cols) * sizeof *d);
    unsigned char *acc = calloc((size_t)rows, 1);
    if (!d || !acc) { free(d); free(acc); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    const char *p = spec;
    int rc = SL_OK;
    for (int64_t r = 0; r < rows && !rc; r++) {
        for (int64_t c = 0; c < cols && !rc; c++) {
            int64_t v;
            if (parse_uint(&p, &v) || v >= rows) {
                rc = sl_err_set(err, SL_EINVAL, "dfa \"%s\": row %lld entry %lld is not a state 0..%lld", spec,
                                (long long)r, (long long)c, (long long)(rows - 1));
                break;
            }
            d[r * cols + c] = (int)v;
            char want = c + 1 < cols ? ',' : (r + 1 < rows ? ';' : '/');
            if (*p != want) {
                rc = sl_err_set(err, SL_EINVAL, "dfa \"%s\": row %lld must list %lld next states (one per symbol) "
                                "separated by ','", spec, (long long)r, (long long)cols);
                break;
            }
            p++;
        }
    }
    while (!rc && *p) {
        int64_t v;
        if (parse_uint(&p, &v) || v >= rows || (*p && *p != ',')) {
            rc = sl_err_set(err, SL_EINVAL, "dfa \"%s\": accepting states must be a list of states 0..%lld", spec,
                            (long long)(rows - 1));
            break;
        }
        acc[v] = 1;
        if (*p == ',') p++;
    }
    if (rc) { free(d); free(acc); return rc; }
    *n_states = rows;
    *n_sym = cols;
    *delta = d;
    *accept = acc;
    return SL_OK;
}

/* ------------------------------------------------------------ building */
static int check_keys(const char *task, const sl_config_key *keys, const json_t *opts, sl_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)opts, k, v) {
        if (strcmp(k, "task") == 0) continue;
        int ok = 0;
        for (const sl_config_key *q = keys; q->name && !ok; q++) ok = strcmp(q->name, k) == 0;
        if (!ok) return sl_err_set(err, SL_EINVAL, "task %s has no option \"%s\"", task, k);
    }
    return SL_OK;
}

void sl_task_free(sl_task *t)
{
    if (!t) return;
    free(t->delta);
    free(t->accept);
    json_decref(t->config);
    free(t);
}

static void config_n(sl_task *t)
{
    json_object_set_new(t->config, "n", json_integer(t->n_hi));
    json_object_set_new(t->config, "n_min", json_integer(t->n_lo));
    json_object_set_new(t->config, "n_active", json_integer(t->n_active));
}

int sl_task_set_n(sl_task *t, int64_t n_lo, int64_t n_hi, int64_t n_active, sl_err *err)
{
    if (t->kind != SL_TASK_PARITY && t->kind != SL_TASK_DMS)
        return sl_err_set(err, SL_EINVAL, "task %s has no N", t->name);
    const int64_t lo_min = t->kind == SL_TASK_DMS ? 2 : 1;
    if (n_hi == 0 && n_lo == 0 && t->kind == SL_TASK_PARITY) {
        n_active = 0;
    } else {
        if (n_lo < lo_min || n_hi < n_lo || n_hi > 100000)
            return sl_err_set(err, SL_EINVAL, "task %s: need %lld <= n_min <= n (n_min %lld, n %lld)", t->name,
                              (long long)lo_min, (long long)n_lo, (long long)n_hi);
        if (n_active < n_lo || n_active > n_hi)
            return sl_err_set(err, SL_EINVAL, "task %s: n_active %lld is outside n_min..n (%lld..%lld)", t->name,
                              (long long)n_active, (long long)n_lo, (long long)n_hi);
    }
    t->n_lo = n_lo;
    t->n_hi = n_hi;
    t->n_active = n_active;
    t->K = n_hi == 0 ? 1 : n_hi - n_lo + 1;
    config_n(t);
    return SL_OK;
}

int sl_task_new(const char *name, const json_t *opts, sl_task **out, sl_err *err)
{
    *out = NULL;
    int ti = task_index(name);
    if (ti < 0) return sl_err_set(err, SL_EINVAL, "unknown task \"%s\" (tasks: %s)", name ? name : "", sl_task_names());
    json_t *empty = NULL;
    if (!opts) opts = empty = json_object();
    int rc = check_keys(name, task_table[ti].keys, opts, err);
    sl_task *t = calloc(1, sizeof *t);
    if (!rc && !t) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
    if (rc) { free(t); json_decref(empty); return rc; }
    t->kind = task_table[ti].kind;
    t->name = task_table[ti].name;
    t->config = json_object();
    json_object_set_new(t->config, "task", json_string(t->name));
    const char *s;
    int64_t v;
    double d;
    if ((rc = sl_config_int(opts, "length", 0, &t->length, err))) goto fail;
    if ((rc = sl_config_bool(opts, "last", 0, &t->last_only, err))) goto fail;
    if (t->length < 0 || t->length > (1LL << 24)) { rc = sl_err_set(err, SL_EINVAL, "length must be 1..2^24"); goto fail; }
    switch (t->kind) {
    case SL_TASK_PARITY:
    case SL_TASK_DMS: {
        const int dms = t->kind == SL_TASK_DMS;
        int64_t n, nmin, nact;
        if ((rc = sl_config_int(opts, "n", dms ? 2 : 0, &n, err))) goto fail;
        if ((rc = sl_config_int(opts, "n_min", n, &nmin, err))) goto fail;
        if ((rc = sl_config_int(opts, "n_active", n, &nact, err))) goto fail;
        if ((rc = sl_config_str(opts, "encoding", "bit", &s, err))) goto fail;
        if (strcmp(s, "bit") && strcmp(s, "onehot")) { rc = sl_err_set(err, SL_EINVAL, "encoding must be bit or onehot (is \"%s\")", s); goto fail; }
        t->onehot = strcmp(s, "onehot") == 0;
        json_object_set_new(t->config, "encoding", json_string(s));
        if (!dms) {
            if ((rc = sl_config_double(opts, "p_one", 0.5, &d, err))) goto fail;
            if (!(d >= 0 && d <= 1)) { rc = sl_err_set(err, SL_EINVAL, "p_one must be in [0, 1]"); goto fail; }
            t->p_one = d;
            json_object_set_new(t->config, "p_one", json_real(d));
        } else {
            t->p_one = 0.5;
        }
        if (!dms && n == 0 && (nmin != 0 || nact != 0)) {
            rc = sl_err_set(err, SL_EINVAL, "running parity (n = 0) has one head: n_min and n_active need n >= 1");
            goto fail;
        }
        if ((rc = sl_task_set_n(t, nmin, n, nact, err))) goto fail;
        t->F = t->onehot ? 2 : 1;
        t->C = 2;
        break;
    }
    case SL_TASK_COPY:
    case SL_TASK_SELECTIVE_COPY:
        if ((rc = sl_config_int(opts, "vocab", 8, &t->vocab, err)) || (rc = sl_config_int(opts, "tokens", 8, &t->tokens, err)))
            goto fail;
        if (t->vocab < 1 || t->vocab > 65536 || t->tokens < 1 || t->tokens > (1 << 20)) {
            rc = sl_err_set(err, SL_EINVAL, "vocab must be 1..65536 and tokens 1..2^20");
            goto fail;
        }
        json_object_set_new(t->config, "vocab", json_integer(t->vocab));
        json_object_set_new(t->config, "tokens", json_integer(t->tokens));
        t->F = t->vocab + 2;
        t->K = 1;
        t->C = t->vocab;
        break;
    case SL_TASK_MQAR:
        if ((rc = sl_config_int(opts, "keys", 16, &t->keys, err)) || (rc = sl_config_int(opts, "values", 16, &t->values, err)) ||
            (rc = sl_config_int(opts, "pairs", 4, &t->pairs, err)) || (rc = sl_config_int(opts, "queries", 0, &t->queries, err)))
            goto fail;
        if (t->keys < 1 || t->keys > 65536 || t->values < 1 || t->values > 65536) {
            rc = sl_err_set(err, SL_EINVAL, "keys and values must be 1..65536");
            goto fail;
        }
        if (t->pairs < 1 || t->pairs > t->keys) {
            rc = sl_err_set(err, SL_EINVAL, "pairs must be 1..keys (%lld): keys are distinct within a sequence", (long long)t->keys);
            goto fail;
        }
        if (t->queries < 0) { rc = sl_err_set(err, SL_EINVAL, "queries must be >= 0"); goto fail; }
        json_object_set_new(t->config, "keys", json_integer(t->keys));
        json_object_set_new(t->config, "values", json_integer(t->values));
        json_object_set_new(t->config, "pairs", json_integer(t->pairs));
        json_object_set_new(t->config, "queries", json_integer(t->queries));
        t->F = t->keys + t->values + 1;
        t->K = 1;
        t->C = t->values;
        break;
    case SL_TASK_MODULAR:
        if ((rc = sl_config_int(opts, "m", 5, &t->m, err))) goto fail;
        if (t->m < 2 || t->m > 65536) { rc = sl_err_set(err, SL_EINVAL, "m must be 2..65536"); goto fail; }
        json_object_set_new(t->config, "m", json_integer(t->m));
        t->F = t->m;
        t->K = 1;
        t->C = t->m;
        break;
    case SL_TASK_REGULAR:
        if ((rc = sl_config_str(opts, "dfa", "parity", &s, err))) goto fail;
        if ((rc = sl_dfa_parse(s, &t->n_states, &t->n_sym, &t->delta, &t->accept, err))) goto fail;
        json_object_set_new(t->config, "dfa", json_string(s));
        t->F = t->n_sym;
        t->K = 1;
        t->C = 2;
        break;
    }
    (void)v;
    if (t->length) json_object_set_new(t->config, "length", json_integer(t->length));
    if (t->last_only) json_object_set_new(t->config, "last", json_true());
    v = sl_task_length(t);
    if (t->length == 0 && v <= 0) { rc = sl_err_set(err, SL_EINVAL, "task %s needs a length", t->name); goto fail; }
    json_decref(empty);
    *out = t;
    return SL_OK;
fail:
    json_decref(empty);
    sl_task_free(t);
    return rc;
}

int sl_task_from_config(const json_t *config, sl_task **out, sl_err *err)
{
    const char *name = json_string_value(json_object_get(config, "task"));
    if (!name) return sl_err_set(err, SL_EFORMAT, "task config has no \"task\" name");
    return sl_task_new(name, config, out, err);
}

int64_t sl_task_length(const sl_task *t)
{
    if (t->length > 0) return t->length;
    switch (t->kind) {
    case SL_TASK_PARITY:
    case SL_TASK_DMS:
        if (t->n_hi == 0) return 64;
        return (int64_t)ceil(2.5 * (double)t->n_active) + 2;
    case SL_TASK_COPY: return 4 * t->tokens;
    case SL_TASK_SELECTIVE_COPY: return 8 * t->tokens;
    case SL_TASK_MQAR: return 8 * t->pairs;
    default: return 32;
    }
}

/* ------------------------------------------------------------ batches */
void sl_batch_free(sl_batch *b)
{
    free(b->u);
    free(b->target);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

static int batch_alloc(sl_batch *b, int64_t B, int64_t T, int64_t F, int64_t K, sl_err *err)
{
    size_t nu = (size_t)(B * T * F), nt = (size_t)(B * T * K);
    if (nu > b->cap_u) {
        float *u = realloc(b->u, nu * sizeof *u);
        if (!u) return sl_err_set(err, SL_ENOMEM, "out of memory for a batch");
        b->u = u;
        b->cap_u = nu;
    }
    if (nt > b->cap_tm) {
        float *t = realloc(b->target, nt * sizeof *t), *m = t ? realloc(b->mask, nt * sizeof *m) : NULL;
        if (t) b->target = t;
        if (m) b->mask = m;
        if (!t || !m) return sl_err_set(err, SL_ENOMEM, "out of memory for a batch");
        b->cap_tm = nt;
    }
    b->B = B;
    b->T = T;
    b->F = F;
    b->K = K;
    memset(b->u, 0, nu * sizeof *b->u);
    memset(b->target, 0, nt * sizeof *b->target);
    memset(b->mask, 0, nt * sizeof *b->mask);
    return SL_OK;
}

static int64_t uniform_int(gsl_rng *r, int64_t n) { return (int64_t)gsl_rng_uniform_int(r, (unsigned long)n); }

/* First k entries of a random permutation of 0..n-1 (partial Fisher-Yates) in idx[n]. */
static void choose(gsl_rng *r, int64_t *idx, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + uniform_int(r, n - i);
        int64_t tmp = idx[i]; idx[i] = idx[j]; idx[j] = tmp;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int sl_task_batch(const sl_task *t, gsl_rng *r, int64_t B, int64_t T, sl_batch *out, sl_err *err)
{
    if (T <= 0) T = sl_task_length(t);
    if (B <= 0) return sl_err_set(err, SL_EINVAL, "batch size must be positive");
    const int64_t F = t->F, K = t->K;
    if ((t->kind == SL_TASK_COPY || t->kind == SL_TASK_SELECTIVE_COPY) && T < 2 * t->tokens)
        return sl_err_set(err, SL_EINVAL, "task %s: length %lld is shorter than 2 x tokens (%lld)", t->name, (long long)T,
                          (long long)(2 * t->tokens));
    if (t->kind == SL_TASK_MQAR && T < 2 * t->pairs + SL_MAX(1, t->queries))
        return sl_err_set(err, SL_EINVAL, "task mqar: length %lld leaves no room for %lld queries after %lld pairs",
                          (long long)T, (long long)SL_MAX(1, t->queries), (long long)t->pairs);
    int rc = batch_alloc(out, B, T, F, K, err);
    if (rc) return rc;
    int64_t *seq = malloc((size_t)(T + 1) * sizeof *seq), *idx = malloc((size_t)(T + SL_MAX(t->keys, 1) + 1) * sizeof *idx);
    if (!seq || !idx) { free(seq); free(idx); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    for (int64_t b = 0; b < B; b++) {
        float *u = out->u + b * T * F, *tg = out->target + b * T * K, *mk = out->mask + b * T * K;
        switch (t->kind) {
        case SL_TASK_PARITY:
        case SL_TASK_DMS: {
            /* seq[s] = bit; idx[s] = prefix xor of bits 0..s. */
            for (int64_t s = 0; s < T; s++) {
                seq[s] = gsl_rng_uniform(r) < t->p_one;
                idx[s] = seq[s] ^ (s ? idx[s - 1] : 0);
                if (t->onehot) u[s * F + seq[s]] = 1.0f;
                else u[s * F] = (float)seq[s];
            }
            for (int64_t s = 0; s < T; s++) {
                if (t->n_hi == 0) {               /* running parity */
                    tg[s * K] = (float)idx[s];
                    mk[s * K] = 1.0f;
                    continue;
                }
                for (int64_t k = 0; k < K; k++) {
                    const int64_t N = t->n_lo + k;
                    if (s < N - 1 || N > t->n_active) continue;
                    int64_t y = t->kind == SL_TASK_PARITY ? (idx[s] ^ (s >= N ? idx[s - N] : 0))
                                                          : (seq[s] == seq[s - N + 1]);
                    tg[s * K + k] = (float)y;
                    mk[s * K + k] = 1.0f;
                }
            }
            break;
        }
        case SL_TASK_COPY:
        case SL_TASK_SELECTIVE_COPY: {
            const int64_t V = t->vocab, Kt = t->tokens, region = T - Kt;
            for (int64_t s = 0; s < region; s++) u[s * F + V] = 1.0f;       /* blanks */
            if (t->kind == SL_TASK_COPY) {
                for (int64_t i = 0; i < Kt; i++) seq[i] = i;
            } else {
                choose(r, idx, region, Kt);
                memcpy(seq, idx, (size_t)Kt * sizeof *seq);
                qsort(seq, (size_t)Kt, sizeof *seq, cmp_i64);
            }
            for (int64_t i = 0; i < Kt; i++) {
                int64_t tok = uniform_int(r, V), pos = seq[i];
                u[pos * F + V] = 0.0f;
                u[pos * F + tok] = 1.0f;
                u[(region + i) * F + V + 1] = 1.0f;                    /* marker */
                tg[(region + i) * K] = (float)tok;
                mk[(region + i) * K] = 1.0f;
            }
            break;
        }
        case SL_TASK_MQAR: {
            const int64_t P = t->pairs, Vk = t->keys, region = T - 2 * P;
            const int64_t Q = t->queries ? t->queries : region;
            int64_t *vals = seq;                                      /* value of pair i */
            choose(r, idx, Vk, P);                                    /* keys idx[0..P) */
            for (int64_t i = 0; i < P; i++) {
                vals[i] = uniform_int(r, t->values);
                u[(2 * i) * F + idx[i]] = 1.0f;
                u[(2 * i + 1) * F + Vk + vals[i]] = 1.0f;
            }
            int64_t *keys = malloc((size_t)P * sizeof *keys), *pos = malloc((size_t)(region + 1) * sizeof *pos);
            if (!keys || !pos) { free(keys); free(pos); rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
            memcpy(keys, idx, (size_t)P * sizeof *keys);
            if (Q < region) choose(r, pos, region, Q);
            else for (int64_t i = 0; i < region; i++) pos[i] = i;
            for (int64_t s = 2 * P; s < T; s++) u[s * F + Vk + t->values] = 1.0f;   /* blanks */
            for (int64_t q = 0; q < Q; q++) {
                int64_t s = 2 * P + pos[q], which = uniform_int(r, P);
                u[s * F + Vk + t->values] = 0.0f;
                u[s * F + keys[which]] = 1.0f;
                tg[s * K] = (float)vals[which];
                mk[s * K] = 1.0f;
            }
            free(keys);
            free(pos);
            break;
        }
        case SL_TASK_MODULAR: {
            int64_t sum = 0;
            for (int64_t s = 0; s < T; s++) {
                int64_t x = uniform_int(r, t->m);
                sum = (sum + x) % t->m;
                u[s * F + x] = 1.0f;
                tg[s * K] = (float)sum;
                mk[s * K] = 1.0f;
            }
            break;
        }
        case SL_TASK_REGULAR: {
            int64_t q = 0;
            for (int64_t s = 0; s < T; s++) {
                int64_t x = uniform_int(r, t->n_sym);
                q = t->delta[q * t->n_sym + x];
                u[s * F + x] = 1.0f;
                tg[s * K] = (float)t->accept[q];
                mk[s * K] = 1.0f;
            }
            break;
        }
        }
        if (rc) break;
        if (t->last_only)
            for (int64_t s = 0; s < T - 1; s++)
                for (int64_t k = 0; k < K; k++) mk[s * K + k] = 0.0f;
    }
    free(seq);
    free(idx);
    return rc;
}
