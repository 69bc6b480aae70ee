/*
** Shared gradient checks for the training suites: see grad_check.h.
*/
#include "grad_check.h"

#include <jansson.h>
#include <stdlib.h>

void sl_test_train_data(int64_t B, int64_t T, int64_t F, int64_t K, int64_t C, sl_loss_kind loss, uint64_t seed,
                        float **u, float **tg, float **mk)
{
    *u = malloc((size_t)(B * T * F) * sizeof **u);
    *tg = malloc((size_t)(B * T * K) * sizeof **tg);
    *mk = malloc((size_t)(B * T * K) * sizeof **mk);
    uint64_t s = seed;
    for (int64_t i = 0; i < B * T * F; i++) (*u)[i] = (float)sl_test_uniform(&s, -1.5, 1.5);
    for (int64_t i = 0; i < B * T * K; i++) {
        (*tg)[i] = loss == SL_LOSS_MSE ? (float)sl_test_uniform(&s, -1, 1) : (float)(int)sl_test_uniform(&s, 0, (double)C);
        (*mk)[i] = sl_test_uniform(&s, 0, 1) < 0.7 ? 1.0f : 0.0f;
    }
    (*mk)[0] = 1.0f;
}

sl_task *sl_test_task(const char *name, const char *opts_json)
{
    sl_err err = { 0 };
    json_t *o = opts_json ? json_loads(opts_json, 0, NULL) : NULL;
    sl_task *t = NULL;
    if (sl_task_new(name, o, &t, &err)) fprintf(stderr, "%s\n", err.msg);
    json_decref(o);
    assert_non_null(t);
    return t;
}

double sl_test_loss_at(sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                       const float *mk)
{
    sl_err err = { 0 };
    double L = 0;
    /* Some forwards cache weights derived from the tensors (packed, or
    ** concatenated conv weights): refresh them, as the trainer does after
    ** every update. */
    if (sl_model_params_changed(m, &err) || sl_loss_grad_f64(m, ro, B, T, u, tg, mk, NULL, &L, &err))
        fprintf(stderr, "%s\n", err.msg);
    return L;
}

double sl_test_fd(sl_model *m, const sl_readout *ro, float *p, double rel_step, int64_t B, int64_t T, const float *u,
                  const float *tg, const float *mk)
{
    const float p0 = *p;
    double d[2];
    for (int r = 0; r < 2; r++) {
        const double h = (r ? 0.5 : 1.0) * rel_step * fmax(1.0, fabs((double)p0));
        float pp = (float)((double)p0 + h), pm = (float)((double)p0 - h);
        *p = pp;
        double fp = sl_test_loss_at(m, ro, B, T, u, tg, mk);
        *p = pm;
        double fm = sl_test_loss_at(m, ro, B, T, u, tg, mk);
        d[r] = (fp - fm) / ((double)pp - (double)pm);
    }
    *p = p0;
    sl_test_loss_at(m, ro, B, T, u, tg, mk);
    return (4.0 * d[1] - d[0]) / 3.0;
}

void sl_test_grad_vs_fd(sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                        const float *mk, double rel_step, double tol, const char *label, sl_test_fd_result *r)
{
    sl_grads g;
    sl_err err = { 0 };
    assert_int_equal(sl_grads_init(&g, m->tensors, 0, 1, &err), SL_OK);
    *r = (sl_test_fd_result){ 0 };
    assert_int_equal(sl_loss_grad_f64(m, ro, B, T, u, tg, mk, &g, &r->loss, &err), SL_OK);
    for (size_t i = 0; i < m->tensors->n; i++) {
        sl_tensor *t = &m->tensors->t[i];
        double tmax = 0;
        for (int64_t k = 0; k < t->numel; k++) {
            const double a = g.f64[i][k], b = sl_test_fd(m, ro, &t->data[k], rel_step, B, T, u, tg, mk);
            const double rel = fabs(a - b) / fmax(fabs(b), 1e-4);
            tmax = fmax(tmax, fabs(b));
            if (rel > tol)
                fprintf(stderr, "%s: %s[%lld]: backward %.12g, finite differences %.12g (rel %.2g)\n", label, t->name,
                        (long long)k, a, b, rel);
            r->worst = fmax(r->worst, rel);
            r->nparam++;
        }
        if (tmax == 0) {
            fprintf(stderr, "%s: %s has a zero gradient\n", label, t->name);
            r->zero_tensors++;
        }
        r->gmax = fmax(r->gmax, tmax);
    }
    fprintf(stderr, "%-30s loss %.6f, %3zu parameters, max |grad| %.3g, worst relative error vs FD %.2e\n", label,
            r->loss, r->nparam, r->gmax, r->worst);
    sl_grads_free(&g);
}

void sl_test_grads_both(const sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                        const float *mk, sl_grads *g, double *L64, sl_metrics *mt)
{
    sl_err err = { 0 };
    assert_int_equal(sl_grads_init(g, m->tensors, 1, 1, &err), SL_OK);
    assert_int_equal(sl_loss_grad_f64(m, ro, B, T, u, tg, mk, g, L64, &err), SL_OK);
    assert_int_equal(sl_loss_grad_f32(m, ro, B, T, u, tg, mk, g, mt, &err), SL_OK);
    assert_close(mt->loss, *L64, 1e-5, 1e-7);
}

void sl_test_grad_vs_autograd(const char *name, int64_t T, int encoder, double f32_l2)
{
    char mp[256], rp[256];
    snprintf(mp, sizeof mp, "tests/fixtures/train/%s.model.safetensors", name);
    snprintf(rp, sizeof rp, "tests/fixtures/train/%s.ref.safetensors", name);
    sl_model *m = NULL;
    sl_err err = { 0 };
    if (sl_model_open(mp, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    sl_readout ro;
    assert_int_equal(sl_readout_from_model(&ro, m, &err), SL_OK);
    if (encoder) assert_non_null(ro.we);
    int64_t nu, nt;
    float *u = sl_test_load_f32(rp, "u", &nu), *tg = sl_test_load_f32(rp, "target", &nt),
          *mk = sl_test_load_f32(rp, "mask", NULL);
    double *lref = sl_test_load_f64(rp, "loss", NULL);
    int64_t B, F = encoder ? ro.n_feat : m->n_in;
    if (T > 0) {
        B = nt / (T * ro.K);
    } else {
        double *dims = sl_test_load_f64(rp, "dims", NULL);
        B = (int64_t)dims[0];
        T = (int64_t)dims[1];
        assert_int_equal(F, (int64_t)dims[2]);
        assert_int_equal(ro.K, (int64_t)dims[3]);
        free(dims);
    }
    assert_int_equal(nu, B * T * F);
    sl_grads g;
    assert_int_equal(sl_grads_init(&g, m->tensors, 1, 1, &err), SL_OK);
    double L;
    sl_metrics mt;
    assert_int_equal(sl_loss_grad_f64(m, &ro, B, T, u, tg, mk, &g, &L, &err), SL_OK);
    assert_int_equal(sl_loss_grad_f32(m, &ro, B, T, u, tg, mk, &g, &mt, &err), SL_OK);
    assert_close(L, lref[0], 1e-12, 1e-14);
    assert_close(mt.loss, lref[0], 1e-5, 1e-7);
    double w64 = 0, w32 = 0;
    for (size_t i = 0; i < m->tensors->n; i++) {
        const sl_tensor *t = &m->tensors->t[i];
        char gn[300];
        snprintf(gn, sizeof gn, "grad.%s", t->name);
        int64_t ng;
        double *gref = sl_test_load_f64(rp, gn, &ng);
        assert_int_equal(ng, t->numel);
        double n64 = 0, n32 = 0, den = 0;
        for (int64_t k = 0; k < ng; k++) {
            n64 += (g.f64[i][k] - gref[k]) * (g.f64[i][k] - gref[k]);
            n32 += (g.f32[i][k] - gref[k]) * (g.f32[i][k] - gref[k]);
            den += gref[k] * gref[k];
            assert_close(g.f64[i][k], gref[k], 1e-9, 1e-13);
        }
        den = fmax(sqrt(den), 1e-12);
        w64 = fmax(w64, sqrt(n64) / den);
        w32 = fmax(w32, sqrt(n32) / den);
        free(gref);
    }
    fprintf(stderr, "%-20s vs torch.autograd: loss %.10f; worst tensor relative L2 error: double %.2e, float %.2e\n", name,
            L, w64, w32);
    assert_true(w64 < 1e-10);
    assert_true(w32 < f32_l2);
    sl_grads_free(&g);
    free(u); free(tg); free(mk); free(lref);
    sl_model_free(m);
}
