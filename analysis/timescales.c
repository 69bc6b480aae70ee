/*
** seqlab timescales: see timescales.h.
**
** The drive runs through the float forward pass one layer at a time (the same
** kernels a user's model runs on), keeping every layer's output for the
** autocorrelations. The exponential fit starts from a log-linear estimate over
** the lags where the autocorrelation is still clearly positive and refines
** (a, tau) with GSL's trust-region least squares on those lags.
*/
#include "timescales.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "util.h"

void sl_timescales_free(sl_timescales *t)
{
    free(t->units);
    free(t->acf);
    memset(t, 0, sizeof *t);
}

int sl_autocorr(const double *x, int64_t T, int64_t K, double *acf)
{
    double mean = 0, var = 0;
    for (int64_t t = 0; t < T; t++) mean += x[t];
    mean /= (double)T;
    for (int64_t t = 0; t < T; t++) var += (x[t] - mean) * (x[t] - mean);
    if (!(var > 1e-300 * (double)T) || !isfinite(var)) {
        memset(acf, 0, (size_t)(K + 1) * sizeof *acf);
        return 1;
    }
    for (int64_t k = 0; k <= K; k++) {
        double s = 0;
        for (int64_t t = 0; t + k < T; t++) s += (x[t] - mean) * (x[t + k] - mean);
        acf[k] = s / var;
    }
    return 0;
}

/* ------------------------------------------------------------ the fit */
typedef struct fit_data { const double *y; int64_t n; } fit_data;

static int f_resid(const gsl_vector *p, void *data, gsl_vector *f)
{
    const fit_data *d = data;
    double a = gsl_vector_get(p, 0), tau = gsl_vector_get(p, 1);
    for (int64_t i = 0; i < d->n; i++) gsl_vector_set(f, (size_t)i, a * exp(-(double)(i + 1) / tau) - d->y[i]);
    return GSL_SUCCESS;
}

static int f_jac(const gsl_vector *p, void *data, gsl_matrix *J)
{
    const fit_data *d = data;
    double a = gsl_vector_get(p, 0), tau = gsl_vector_get(p, 1);
    for (int64_t i = 0; i < d->n; i++) {
        double k = (double)(i + 1), e = exp(-k / tau);
        gsl_matrix_set(J, (size_t)i, 0, e);
        gsl_matrix_set(J, (size_t)i, 1, a * e * k / (tau * tau));
    }
    return GSL_SUCCESS;
}

int sl_fit_exp_decay(const double *acf, int64_t K, double *tau, double *a, double *r2, int64_t *lags_used)
{
    *tau = NAN;
    *a = NAN;
    *r2 = NAN;
    *lags_used = 0;
    /* Lags while the autocorrelation stays above the noise floor: stop at the
    ** first value below 0.05 (or below zero). */
    int64_t n = 0;
    while (n < K && acf[n + 1] > 0.05) n++;
    if (n < 2) {
        /* Decays within one lag: tau from the first lag alone when positive. */
        if (K >= 1 && acf[1] > 0 && acf[1] < 1) {
            *tau = -1.0 / log(acf[1]);
            *a = 1.0;
            *r2 = 1.0;
            *lags_used = 1;
            return 0;
        }
        return 2;
    }
    /* Log-linear start: ln AC(k) = ln a - k / tau. */
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int64_t i = 1; i <= n; i++) {
        double y = log(acf[i]);
        sx += (double)i; sy += y; sxx += (double)i * i; sxy += (double)i * y;
    }
    double slope = ((double)n * sxy - sx * sy) / ((double)n * sxx - sx * sx);
    double icpt = (sy - slope * sx) / (double)n;
    double tau0 = slope < 0 ? -1.0 / slope : 10.0 * (double)n, a0 = exp(icpt);
    fit_data d = { acf + 1, n };
    gsl_multifit_nlinear_fdf fdf = { .f = f_resid, .df = f_jac, .fvv = NULL, .n = (size_t)n, .p = 2, .params = &d };
    gsl_multifit_nlinear_parameters prm = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w = gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &prm, (size_t)n, 2);
    if (!w) return 3;
    double p0[2] = { a0, tau0 };
    gsl_vector_view pv = gsl_vector_view_array(p0, 2);
    int info, status = gsl_multifit_nlinear_init(&pv.vector, &fdf, w);
    if (status == GSL_SUCCESS) status = gsl_multifit_nlinear_driver(200, 1e-10, 1e-10, 1e-12, NULL, NULL, &info, w);
    int rc = 3;
    if (status == GSL_SUCCESS) {
        double af = gsl_vector_get(w->x, 0), tf = gsl_vector_get(w->x, 1);
        if (isfinite(af) && isfinite(tf) && tf > 0) {
            double mean = 0, sst = 0, sse = 0;
            for (int64_t i = 1; i <= n; i++) mean += acf[i];
            mean /= (double)n;
            for (int64_t i = 1; i <= n; i++) {
                double r = af * exp(-(double)i / tf) - acf[i];
                sse += r * r;
                sst += (acf[i] - mean) * (acf[i] - mean);
            }
            *tau = tf;
            *a = af;
            *r2 = sst > 0 ? 1.0 - sse / sst : 1.0;
            *lags_used = n;
            /* A decay far slower than the lags seen is not measured by them:
            ** report it, but as "no decay" rather than a fitted timescale. */
            rc = tf > 5.0 * (double)K ? 2 : 0;
        }
    }
    gsl_multifit_nlinear_free(w);
    return rc;
}

/* ------------------------------------------------------------ the analysis */
int sl_timescales_run(const sl_model *m, const sl_timescales_opts *o, sl_timescales *out, sl_err *err)
{
    memset(out, 0, sizeof *out);
    if (m->n_layers == 0) return sl_err_set(err, SL_EUNSUP, "the model has no layers");
    if (o->layer >= m->n_layers || o->layer < -1)
        return sl_err_set(err, SL_EINVAL, "no layer %d (the model has %d layer%s, 0..%d)", o->layer, m->n_layers,
                          m->n_layers == 1 ? "" : "s", m->n_layers - 1);
    const int64_t T = o->input ? o->T : (o->T > 0 ? o->T : 4096);
    const int64_t burn = o->burn_in > 0 ? o->burn_in : SL_MIN(T / 10, 200);
    const int64_t Tm = T - burn;
    int64_t K = o->max_lag > 0 ? o->max_lag : 100;
    K = SL_MIN(K, Tm / 4);
    if (Tm < 16 || K < 2)
        return sl_err_set(err, SL_EINVAL, "the drive is too short: %lld steps after a burn-in of %lld (need at least 16 "
                          "and a quarter of them above 2 lags)", (long long)Tm, (long long)burn);
    out->max_lag = K;
    int64_t maxw = m->n_in;
    size_t nunits = 0;
    for (int l = 0; l < m->n_layers; l++) {
        maxw = SL_MAX(maxw, m->layers[l]->n_out);
        if (o->layer < 0 || o->layer == l) nunits += (size_t)m->layers[l]->n_out;
    }
    float *xa = malloc((size_t)(T * maxw) * sizeof *xa), *xb = malloc((size_t)(T * maxw) * sizeof *xb);
    double *series = malloc((size_t)Tm * sizeof *series);
    out->units = calloc(nunits ? nunits : 1, sizeof *out->units);
    out->acf = calloc((nunits ? nunits : 1) * (size_t)(K + 1), sizeof *out->acf);
    int rc = SL_OK;
    if (!xa || !xb || !series || !out->units || !out->acf) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    if (o->input) {
        memcpy(xa, o->input, (size_t)(T * m->n_in) * sizeof *xa);
    } else {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        if (!r) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
        gsl_rng_set(r, (unsigned long)o->seed);
        for (int64_t i = 0; i < T * m->n_in; i++) xa[i] = (float)gsl_ran_gaussian_ziggurat(r, 1.0);
        gsl_rng_free(r);
    }
    size_t u = 0;
    for (int l = 0; l < m->n_layers && !rc; l++) {
        const sl_layer *L = m->layers[l];
        sl_fwd f = { .B = 1, .T = T, .x = xa, .y = xb };
        if ((rc = sl_layer_forward(L, &f, err))) break;
        for (int64_t i = 0; i < T * L->n_out; i++)
            if (!isfinite(xb[i])) {
                rc = sl_err_set(err, SL_ENUMERIC, "layer %d produced a non-finite output at step %lld", l,
                                (long long)(i / L->n_out));
                goto done;
            }
        if (o->layer < 0 || o->layer == l) {
            for (int64_t j = 0; j < L->n_out; j++, u++) {
                sl_unit_timescale *ut = &out->units[u];
                ut->layer = l;
                ut->unit = j;
                ut->tau_single = L->unit_tau ? (double)L->unit_tau[j] : 1.0;
                for (int64_t t = 0; t < Tm; t++) series[t] = xb[(burn + t) * L->n_out + j];
                double *acf = out->acf + u * (size_t)(K + 1);
                if (sl_autocorr(series, Tm, K, acf)) {
                    ut->status = 1;
                    ut->tau_net = ut->amplitude = ut->r2 = NAN;
                    continue;
                }
                ut->status = sl_fit_exp_decay(acf, K, &ut->tau_net, &ut->amplitude, &ut->r2, &ut->lags);
            }
        }
        float *tmp = xa;   /* this layer's output drives the next */
        xa = xb;
        xb = tmp;
    }
    out->n_units = u;
done:
    free(xa);
    free(xb);
    free(series);
    if (rc) sl_timescales_free(out);
    return rc;
}
