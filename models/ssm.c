/*
** Shared pieces of the state-space families: see ssm.h.
*/
#include "ssm.h"

#include <gsl/gsl_randist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------ convolution */
static int has_head(const sl_layer *L)
{
    static const char *const kinds[] = { "lssl", "s4d", "lmu" };
    for (size_t i = 0; i < SL_ARRAY_LEN(kinds); i++)
        if (L->kind && strcmp(L->kind, kinds[i]) == 0) return 1;
    return 0;
}

int sl_ssm_conv_f64(const sl_layer *L, int64_t nb, int64_t T, const double *u, double *y, double *carry, sl_err *err)
{
    if (!has_head(L) || !L->impl)
        return sl_err_set(err, SL_EUNSUP, "layer %d (%s) has no convolution form", L->index, L->kind);
    const sl_ssm_head *h = L->impl;
    return h->conv(L, nb, T, u, y, carry, err);
}

int sl_ssm_forward_conv(const sl_layer *L, const sl_fwd *f, sl_err *err)
{
    const int64_t nb = f->B, T = f->T, nu = nb * T * L->n_in, ny = nb * T * L->n_out, nc = nb * L->n_carry;
    double *u = malloc((size_t)(nu + ny + (f->carry ? nc : 0) + 1) * sizeof *u);
    if (!u) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *y = u + nu, *carry = f->carry ? y + ny : NULL;
    /* The casts in and out split over the threads when long (at T = 4096,
    ** H = 64 each took 0.07-0.18 ms on one thread, as much as half the
    ** convolution). */
#pragma omp parallel for schedule(static) if (nu >= 65536)
    for (int64_t i = 0; i < nu; i++) u[i] = f->x[i];
    for (int64_t i = 0; carry && i < nc; i++) carry[i] = f->carry[i];
    const sl_ssm_head *h = L->impl;
    int rc = h->conv(L, nb, T, u, y, carry, err);
    if (!rc) {
#pragma omp parallel for schedule(static) if (ny >= 65536)
        for (int64_t i = 0; i < ny; i++) f->y[i] = (float)y[i];
        for (int64_t i = 0; carry && i < nc; i++) f->carry[i] = (float)carry[i];
    }
    free(u);
    return rc;
}

int sl_ssm_auto_conv(const sl_fwd *f, int64_t n_filt, int64_t n_io)
{
    if (f->states || f->T < 64) return 0;
    const double bytes = 8.0 * (4.0 * (double)n_filt * (double)f->T + (double)f->B * (double)f->T * (double)n_io);
    return bytes <= 256.0 * 1024 * 1024;
}

int sl_ssm_kcache_init(sl_ssm_kcache *c, int64_t n_filt, int64_t group)
{
    memset(c, 0, sizeof *c);
    c->n_filt = n_filt;
    c->group = group;
    if (pthread_mutex_init(&c->mu, NULL) != 0) return SL_ENOMEM;
    c->mu_ok = 1;
    return SL_OK;
}

void sl_ssm_kcache_free(sl_ssm_kcache *c)
{
    if (c->mu_ok) pthread_mutex_destroy(&c->mu);
    free(c->K);
    sl_fftconv_free(&c->plan);
    memset(c, 0, sizeof *c);
}

void sl_ssm_kcache_lock(sl_ssm_kcache *c) { pthread_mutex_lock(&c->mu); }
void sl_ssm_kcache_unlock(sl_ssm_kcache *c) { pthread_mutex_unlock(&c->mu); }

int sl_ssm_kcache_plan(sl_ssm_kcache *c, const sl_layer *L, sl_ssm_kernel_fn fn, int64_t T, const sl_fftconv **plan,
                       sl_err *err)
{
    int64_t Tp = 1;
    while (Tp < T) Tp *= 2;
    int rc;
    if (c->T < Tp) {
        double *K = malloc((size_t)(c->n_filt * Tp) * sizeof *K);
        if (!K) return sl_err_set(err, SL_ENOMEM, "out of memory");
        if ((rc = fn(L, Tp, K, err))) { free(K); return rc; }
        free(c->K);
        c->K = K;
        c->T = Tp;
        sl_fftconv_free(&c->plan);
    }
    if (!c->plan.spec || c->plan.T < T || c->plan.T > 4 * Tp) {
        sl_fftconv_free(&c->plan);
        if ((rc = sl_fftconv_init(&c->plan, c->n_filt, c->group, c->K, c->T, Tp, err))) return rc;
    }
    *plan = &c->plan;
    return SL_OK;
}

/* ------------------------------------------------------------ tensors */
int sl_ssm_opt(sl_model *m, const char *prefix, const char *name, int ndim, const int64_t *shape,
               const sl_tensor **t, sl_err *err)
{
    char nm[512];
    snprintf(nm, sizeof nm, "%s%s", prefix, name);
    *t = sl_tensors_find(m->tensors, nm);
    if (!*t) return SL_OK;
    int rc;
    if (ndim > 0 && (rc = sl_tensor_expect(*t, nm, ndim, shape, err))) {
        *t = NULL;
        return rc;
    }
    sl_model_set_role(m, nm, SL_ROLE_CORE);
    return SL_OK;
}

int sl_ssm_get(sl_model *m, const char *prefix, const char *name, int ndim, const int64_t *shape,
               const sl_tensor **t, sl_err *err)
{
    int rc = sl_ssm_opt(m, prefix, name, ndim, shape, t, err);
    if (!rc && !*t) rc = sl_err_set(err, SL_EFORMAT, "tensor %s%s is missing", prefix, name);
    return rc;
}

const char *sl_ssm_prefix(const char *base, int64_t n_layer, int64_t l, char *buf, size_t n)
{
    if (n_layer > 1) snprintf(buf, n, "%slayers.%lld.", base, (long long)l);
    else snprintf(buf, n, "%s", base);
    return buf;
}

int64_t sl_ssm_count_layers(const sl_tensors *ts, const char *base, const char *probe)
{
    char nm[512];
    int64_t n = 0;
    for (;;) {
        snprintf(nm, sizeof nm, "%slayers.%lld.%s", base, (long long)n, probe);
        if (!sl_tensors_find(ts, nm)) break;
        n++;
    }
    return n ? n : 1;
}

int sl_ssm_find_suffix(const sl_tensors *ts, const char *suffix, char *pf, size_t n, const sl_tensor **t)
{
    int count = 0;
    const sl_tensor *hit = sl_tensors_find_suffix(ts, suffix, &count);
    if (!hit) return 0;
    size_t pl = strlen(hit->name) - strlen(suffix);
    if (pl >= n) return 0;
    memcpy(pf, hit->name, pl);
    pf[pl] = '\0';
    if (t) *t = hit;
    return 1;
}

/* ------------------------------------------------------------ init */
gsl_rng *sl_ssm_rng(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r) gsl_rng_set(r, (unsigned long)seed);
    return r;
}

int sl_ssm_add(sl_tensors *ts, const char *name, int ndim, const int64_t *shape, sl_tensor **t, sl_err *err)
{
    return sl_tensors_add(ts, name, ndim, shape, NULL, t, err);
}

void sl_ssm_fill_normal(gsl_rng *r, sl_tensor *t, double mean, double std)
{
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(mean + gsl_ran_gaussian(r, std));
}

void sl_ssm_fill_uniform(gsl_rng *r, sl_tensor *t, double lo, double hi)
{
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(lo + (hi - lo) * gsl_rng_uniform(r));
}

void sl_ssm_fill_const(sl_tensor *t, double v)
{
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)v;
}

void sl_ssm_set_int(json_t *cfg, const char *key, int64_t v) { json_object_set_new(cfg, key, json_integer(v)); }
