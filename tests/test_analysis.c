/*
** The analysis core: structure-first eigenvalues against LAPACK on the
** expanded operators, spectra of the recurrent families at non-trivial points,
** and the timescale measures against closed forms.
*/
#include "sl_test.h"

#include <jansson.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "eig.h"
#include "family.h"
#include "model.h"
#include "spectrum.h"
#include "timescales.h"
#include "util.h"

/* Every eigenvalue of the dense expansion of A is matched by a structured one
** (multiplicities counted), to tol. */
static void check_against_lapack(const sl_op *A, double tol)
{
    const int64_t n = A->rows;
    double *D = malloc((size_t)(n * n) * sizeof *D), *re = malloc((size_t)n * sizeof *re), *im = malloc((size_t)n * sizeof *im);
    sl_op_to_dense(A, D);
    sl_err err = { 0 };
    assert_int_equal(sl_dense_eigvals(D, n, re, im, &err), SL_OK);
    sl_eig e;
    assert_int_equal(sl_op_eig(A, 0, &e, &err), SL_OK);
    int64_t total = 0;
    for (int64_t i = 0; i < e.n; i++) total += e.mult[i];
    assert_int_equal(total, n);
    int64_t *left = malloc((size_t)e.n * sizeof *left);
    for (int64_t i = 0; i < e.n; i++) left[i] = e.mult[i];
    double worst = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t best = -1;
        double bd = INFINITY;
        for (int64_t i = 0; i < e.n; i++) {
            if (!left[i]) continue;
            double d = hypot(re[k] - e.re[i], im[k] - e.im[i]);
            if (d < bd) { bd = d; best = i; }
        }
        assert_true(best >= 0);
        left[best]--;
        worst = fmax(worst, bd);
    }
    fprintf(stderr, "%s %lldx%lld: %lld structured rows, worst distance to LAPACK %.3g\n", sl_op_kind_name(A->kind),
            (long long)n, (long long)n, (long long)e.n, worst);
    assert_true(worst <= tol);
    free(left);
    sl_eig_free(&e);
    free(D); free(re); free(im);
}

static void test_eig_structures(void **state)
{
    (void)state;
    uint64_t r = 9;
    sl_op A;
    /* diagonal */
    sl_op_diag(&A, 7);
    for (int i = 0; i < 7; i++) A.a[i] = sl_test_uniform(&r, -1.5, 1.5);
    check_against_lapack(&A, 1e-12);
    sl_op_free(&A);
    /* complex diagonal */
    sl_op_cdiag(&A, 5);
    for (int i = 0; i < 10; i++) A.a[i] = sl_test_uniform(&r, -1, 1);
    check_against_lapack(&A, 1e-12);
    sl_op_free(&A);
    /* blocks, each its own, with a value side */
    sl_op_blocks(&A, 3, 4, 4, 2, 0);
    for (int i = 0; i < 48; i++) A.a[i] = sl_test_uniform(&r, -1, 1);
    check_against_lapack(&A, 1e-10);
    sl_op_free(&A);
    /* one block shared by 5 channels */
    sl_op_blocks(&A, 5, 3, 3, 1, 1);
    for (int i = 0; i < 9; i++) A.a[i] = sl_test_uniform(&r, -1, 1);
    check_against_lapack(&A, 1e-10);
    sl_op_free(&A);
    /* diag-minus-rank-1: constant d (the delta rule), general d, pure gates */
    for (int variant = 0; variant < 3; variant++) {
        sl_op_dlr(&A, 2, 4, 3, variant != 2);
        for (int b = 0; b < 2; b++) {
            double g = sl_test_uniform(&r, 0.5, 1.0);
            A.c[b] = variant == 2 ? 0.0 : sl_test_uniform(&r, 0.2, 1.8);
            for (int i = 0; i < 4; i++) {
                A.d[b * 4 + i] = variant == 0 ? g : sl_test_uniform(&r, 0.1, 1.0);
                if (A.w) A.w[b * 4 + i] = sl_test_uniform(&r, -1, 1);
            }
        }
        check_against_lapack(&A, 1e-10);
        sl_op_free(&A);
    }
    /* dense */
    sl_op_dense(&A, 6, 6);
    for (int i = 0; i < 36; i++) A.a[i] = sl_test_uniform(&r, -1, 1);
    check_against_lapack(&A, 1e-10);
    sl_op_free(&A);
}

static void test_eig_closed_forms(void **state)
{
    (void)state;
    /* I - beta k k^T with a unit key and beta = 2: eigenvalue -1 once per value column, 1 otherwise. */
    sl_op A;
    sl_op_dlr(&A, 1, 3, 4, 1);
    A.d[0] = A.d[1] = A.d[2] = 1.0;
    A.c[0] = 2.0;
    A.w[0] = 0.6; A.w[1] = 0.0; A.w[2] = 0.8;
    sl_eig e;
    sl_err err = { 0 };
    assert_int_equal(sl_op_eig(&A, 0, &e, &err), SL_OK);
    assert_int_equal(e.n, 2);
    assert_close(e.re[0], -1.0, 0, 1e-15);
    assert_int_equal(e.mult[0], 4);
    assert_close(e.re[1], 1.0, 0, 0);
    assert_int_equal(e.mult[1], 8);
    sl_eig_free(&e);
    sl_op_free(&A);
    /* Timescales: |lambda| = 1 is infinite, e^-1 is one step, growth is negative. */
    assert_true(isinf(sl_timescale(0.6, 0.8)));
    assert_close(sl_timescale(exp(-1.0), 0), 1.0, 1e-14, 0);
    assert_close(sl_timescale(0, -exp(-0.5)), 2.0, 1e-14, 0);
    assert_true(sl_timescale(1.5, 0) < 0);
    assert_true(sl_timescale(0, 0) == 0);
}

/* Eigenvectors: A v = lambda v for every structure that returns them. */
static void test_eigenvectors(void **state)
{
    (void)state;
    uint64_t r = 3;
    sl_op A;
    sl_op_dense(&A, 5, 5);
    for (int i = 0; i < 25; i++) A.a[i] = sl_test_uniform(&r, -1, 1);
    sl_eig e;
    sl_err err = { 0 };
    assert_int_equal(sl_op_eig(&A, 1, &e, &err), SL_OK);
    for (int64_t k = 0; k < e.n; k++) {
        for (int i = 0; i < 5; i++) {
            double sr = 0, si = 0;
            for (int j = 0; j < 5; j++) { sr += A.a[i * 5 + j] * e.vr[k * 5 + j]; si += A.a[i * 5 + j] * e.vi[k * 5 + j]; }
            double lr = e.re[k] * e.vr[k * 5 + i] - e.im[k] * e.vi[k * 5 + i];
            double li = e.re[k] * e.vi[k * 5 + i] + e.im[k] * e.vr[k * 5 + i];
            assert_close(sr, lr, 0, 1e-12);
            assert_close(si, li, 0, 1e-12);
        }
    }
    sl_eig_free(&e);
    sl_op_free(&A);
}

static sl_model *make_model(const char *family, const char *cfg_json, uint64_t seed)
{
    json_error_t je;
    json_t *cfg = json_loads(cfg_json, 0, &je);
    const sl_family *fam = sl_family_find(family);
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    assert_int_equal(fam->init(cfg, seed, ts, &err), SL_OK);
    sl_model *m = NULL;
    assert_int_equal(sl_model_from_tensors(ts, family, cfg, &m, &err), SL_OK);
    json_decref(cfg);
    return m;
}

/* Spectrum along a trajectory: every step's eigenvalues equal LAPACK's on the
** dense Jacobian at that step. */
static void test_spectrum_trajectory(void **state)
{
    (void)state;
    const char *fams[][2] = { { "lstm", "{\"input_size\": 2, \"hidden_size\": 4, \"num_layers\": 2}" },
                              { "gru", "{\"input_size\": 2, \"hidden_size\": 5}" },
                              { "rnn", "{\"input_size\": 2, \"hidden_size\": 5, \"leaky\": true, \"tau\": 2}" } };
    for (size_t f = 0; f < 3; f++) {
        sl_model *m = make_model(fams[f][0], fams[f][1], 5);
        double u[2 * 6];
        uint64_t r = 1;
        for (int i = 0; i < 12; i++) u[i] = sl_test_uniform(&r, -2, 2);
        unsigned char steps[6] = { 0, 1, 0, 0, 1, 1 };
        sl_spectrum_opts o = { .layer = -1, .at = SL_AT_TRAJECTORY, .input = u, .T = 6, .steps = steps };
        sl_spectrum s;
        sl_err err = { 0 };
        assert_int_equal(sl_spectrum_run(m, &o, &s, &err), SL_OK);
        assert_int_equal(s.n_layers, m->n_layers);
        assert_int_equal(s.sum[0].n_points, 3);
        assert_int_equal(s.sum[0].point_index[0], 1);
        assert_int_equal(s.sum[0].point_index[2], 5);
        /* Rebuild the dense Jacobian of layer 0 at step 4 by hand and compare. */
        double carry[16] = { 0 }, next[16], y[16];
        const sl_layer *L = m->layers[0];
        for (int t = 0; t < 4; t++) {
            sl_layer_step(L, carry, u + 2 * t, next, y, &err);
            memcpy(carry, next, sizeof next);
        }
        sl_linsys ls;
        sl_linsys_init(&ls);
        sl_layer_linsys(L, carry, u + 8, SL_LS_A, &ls, &err);
        int64_t n = L->n_state;
        double re[16], im[16];
        sl_dense_eigvals(ls.A.a, n, re, im, &err);
        double radius = 0;
        for (int64_t k = 0; k < n; k++) {
            int found = 0;
            for (size_t i = 0; i < s.n_rows; i++) {
                const sl_spec_row *row = &s.rows[i];
                if (row->layer == 0 && row->point == 4 && hypot(row->re - re[k], row->im - im[k]) < 1e-10) found = 1;
            }
            assert_true(found);
            radius = fmax(radius, hypot(re[k], im[k]));
        }
        assert_close(s.sum[0].point_radius[1], radius, 1e-12, 0);
        sl_linsys_free(&ls);
        sl_spectrum_free(&s);
        sl_model_free(m);
    }
}

/* Random points: the same seed gives the same rows whatever the thread count. */
static void test_spectrum_random_deterministic(void **state)
{
    (void)state;
    sl_model *m = make_model("gru", "{\"input_size\": 3, \"hidden_size\": 6}", 2);
    sl_spectrum_opts o = { .layer = -1, .at = SL_AT_RANDOM, .samples = 8, .seed = 4, .warmup = 5 };
    sl_spectrum a, b;
    sl_err err = { 0 };
    omp_set_num_threads(1);
    assert_int_equal(sl_spectrum_run(m, &o, &a, &err), SL_OK);
    omp_set_num_threads(2);
    assert_int_equal(sl_spectrum_run(m, &o, &b, &err), SL_OK);
    assert_int_equal(a.n_rows, 8 * 6);
    assert_int_equal(a.n_rows, b.n_rows);
    for (size_t i = 0; i < a.n_rows; i++) {
        assert_int_equal(a.rows[i].point, b.rows[i].point);
        assert_int_equal(a.rows[i].index, b.rows[i].index);
        assert_true(a.rows[i].re == b.rows[i].re && a.rows[i].im == b.rows[i].im);
    }
    assert_int_equal(a.sum[0].n_points, 8);
    sl_spectrum_free(&a);
    sl_spectrum_free(&b);
    /* A layer that does not exist is an error naming the range. */
    o.layer = 3;
    assert_int_equal(sl_spectrum_run(m, &o, &a, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "no layer 3"));
    sl_model_free(m);
}

static void test_fit_exact_exponential(void **state)
{
    (void)state;
    double acf[61];
    for (int k = 0; k <= 60; k++) acf[k] = 0.9 * exp(-k / 7.5);
    acf[0] = 1;
    double tau, a, r2;
    int64_t lags;
    assert_int_equal(sl_fit_exp_decay(acf, 60, &tau, &a, &r2, &lags), 0);
    assert_close(tau, 7.5, 1e-6, 0);
    assert_close(a, 0.9, 1e-6, 0);
    assert_close(r2, 1.0, 0, 1e-9);
}

/* A leaky unit with no recurrent weights is an AR(1) process with lambda =
** 1 - 1/tau, so its autocorrelation is lambda^k and the network-mediated
** timescale is -1/ln(1 - 1/tau). */
static void test_timescale_leaky_unit(void **state)
{
    (void)state;
    sl_model *m = make_model("rnn", "{\"input_size\": 1, \"hidden_size\": 3, \"leaky\": true, \"tau\": 1}", 1);
    /* Long enough that the sample autocorrelation's spread (about sqrt(2 tau / T)
    ** relative) is a few times below the 5% tolerance. */
    const float taus[3] = { 4.0f, 8.0f, 16.0f };
    sl_tensor *tau = sl_tensors_find(m->tensors, "tau_l0"), *whh = sl_tensors_find(m->tensors, "weight_hh_l0");
    memcpy(tau->data, taus, sizeof taus);
    memset(whh->data, 0, (size_t)whh->numel * sizeof(float));
    /* Rebuild so the layers see the new tau (alpha is derived at build). */
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    for (size_t i = 0; i < m->tensors->n; i++)
        sl_tensors_add(ts, m->tensors->t[i].name, m->tensors->t[i].ndim, m->tensors->t[i].shape, m->tensors->t[i].data, NULL, &err);
    json_t *cfg = json_deep_copy(m->config);
    sl_model_free(m);
    assert_int_equal(sl_model_from_tensors(ts, "rnn", cfg, &m, &err), SL_OK);
    json_decref(cfg);
    sl_timescales_opts o = { .layer = -1, .T = 200000, .seed = 3, .max_lag = 120 };
    sl_timescales t;
    assert_int_equal(sl_timescales_run(m, &o, &t, &err), SL_OK);
    assert_int_equal(t.n_units, 3);
    for (int j = 0; j < 3; j++) {
        double expect = -1.0 / log(1.0 - 1.0 / taus[j]);
        fprintf(stderr, "unit %d: tau %g, fitted %.4g, expected %.4g (R^2 %.4f, %lld lags)\n", j, (double)taus[j],
                t.units[j].tau_net, expect, t.units[j].r2, (long long)t.units[j].lags);
        assert_int_equal(t.units[j].status, 0);
        assert_close(t.units[j].tau_single, taus[j], 0, 0);
        assert_close(t.units[j].tau_net, expect, 0.05, 0);
    }
    sl_timescales_free(&t);
    sl_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eig_structures),
        cmocka_unit_test(test_eig_closed_forms),
        cmocka_unit_test(test_eigenvectors),
        cmocka_unit_test(test_spectrum_trajectory),
        cmocka_unit_test(test_spectrum_random_deterministic),
        cmocka_unit_test(test_fit_exact_exponential),
        cmocka_unit_test(test_timescale_leaky_unit),
    };
    return cmocka_run_group_tests_name("analysis", tests, NULL, NULL);
}
