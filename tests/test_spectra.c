/*
** Spectra of every family: at a non-trivial point (a short random trajectory
** from zero), the structured eigenvalues equal LAPACK's on the dense,
** expanded A_t to 1e-8; and the closed forms: LSSL's LegS with the bilinear
** rule gives (1 + d lambda/2)/(1 - d lambda/2) for lambda = -1..-N, DeltaNet
** gives 1 - beta |k|^2, Mamba gives exp(dt A).
*/
#include "sl_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "eig.h"
#include "family.h"
#include "model.h"
#include "spectrum.h"
#include "trajectory.h"
#include "util.h"

/* A small config for every family; a family missing here fails the test, so
** each new family comes with its spectrum check. */
static const struct { const char *family, *config; } small[] = {
    { "rnn", "{\"input_size\": 3, \"hidden_size\": 6, \"leaky\": true, \"tau\": 2}" },
    { "lstm", "{\"input_size\": 3, \"hidden_size\": 5, \"num_layers\": 2}" },
    { "gru", "{\"input_size\": 3, \"hidden_size\": 6}" },
    { "lssl", "{\"d_model\": 3, \"d_state\": 6, \"a_shared\": false, \"measure\": \"legt\"}" },
    { "s4d", "{\"d_model\": 3, \"d_state\": 8}" },
    { "lru", "{\"d_model\": 4, \"d_state\": 5}" },
    { "lmu", "{\"input_size\": 3, \"hidden_size\": 4, \"memory_size\": 5}" },
    { "mamba", "{\"d_model\": 8, \"d_state\": 4, \"n_layer\": 2}" },
    { "linear_attn", "{\"hidden_size\": 8, \"num_heads\": 2}" },
    { "retnet", "{\"hidden_size\": 8, \"num_heads\": 2}" },
    { "gla", "{\"hidden_size\": 8, \"num_heads\": 2, \"gate_low_rank_dim\": 4}" },
    { "delta_net", "{\"hidden_size\": 8, \"num_heads\": 2, \"allow_neg_eigval\": true}" },
    { "gated_delta_net", "{\"hidden_size\": 8, \"num_heads\": 2}" },
    { "mlstm", "{\"hidden_size\": 8, \"num_heads\": 2}" },
};

static sl_model *make_model(const char *family, const char *cfg_json, uint64_t seed)
{
    json_error_t je;
    json_t *cfg = json_loads(cfg_json, 0, &je);
    assert_non_null(cfg);
    const sl_family *fam = sl_family_find(family);
    assert_non_null(fam);
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    int rc = fam->init(cfg, seed, ts, &err);
    if (rc) fprintf(stderr, "%s init: %s\n", family, err.msg);
    assert_int_equal(rc, SL_OK);
    sl_model *m = NULL;
    rc = sl_model_from_tensors(ts, family, cfg, &m, &err);
    if (rc) fprintf(stderr, "%s build: %s\n", family, err.msg);
    assert_int_equal(rc, SL_OK);
    json_decref(cfg);
    return m;
}

/* The linear system of every layer after a random 6-step prefix. */
static void at_random_point(const sl_model *m, uint64_t *rng, void (*check)(const sl_layer *, const sl_linsys *, void *),
                            void *ctx)
{
    const int64_t T = 6;
    double *u = malloc((size_t)(T * m->n_in) * sizeof *u);
    for (int64_t i = 0; i < T * m->n_in; i++) u[i] = sl_test_uniform(rng, -1.5, 1.5);
    unsigned char keep[6] = { 0, 0, 0, 0, 0, 1 };
    sl_traj t;
    sl_err err = { 0 };
    assert_int_equal(sl_traj_run(m, u, T, keep, 0, &t, &err), SL_OK);
    for (int l = 0; l < m->n_layers; l++) {
        sl_linsys ls;
        sl_linsys_init(&ls);
        int rc = sl_layer_linsys(m->layers[l], t.carry[l], t.input[l], SL_LS_A | SL_LS_CT, &ls, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, SL_OK);
        check(m->layers[l], &ls, ctx);
        sl_linsys_free(&ls);
    }
    sl_traj_free(&t);
    free(u);
}

/* Every dense eigenvalue is matched by a structured one (multiplicities counted). */
static void check_vs_lapack(const sl_layer *L, const sl_linsys *ls, void *ctx)
{
    (void)ctx;
    const int64_t n = ls->A.rows;
    double *D = malloc((size_t)(n * n) * sizeof *D), *re = malloc((size_t)n * sizeof *re), *im = malloc((size_t)n * sizeof *im);
    sl_op_to_dense(&ls->A, D);
    sl_err err = { 0 };
    assert_int_equal(sl_dense_eigvals(D, n, re, im, &err), SL_OK);
    sl_eig e;
    assert_int_equal(sl_op_eig(&ls->A, 0, &e, &err), SL_OK);
    int64_t *left = malloc((size_t)e.n * sizeof *left), total = 0;
    for (int64_t i = 0; i < e.n; i++) total += (left[i] = e.mult[i]);
    assert_int_equal(total, n);
    double worst = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t best = -1;
        double bd = INFINITY;
        for (int64_t i = 0; i < e.n; i++)
            if (left[i] && hypot(re[k] - e.re[i], im[k] - e.im[i]) < bd) { bd = hypot(re[k] - e.re[i], im[k] - e.im[i]); best = i; }
        assert_true(best >= 0);
        left[best]--;
        worst = fmax(worst, bd);
    }
    fprintf(stderr, "  layer %d (%s): A %s %lldx%lld, %lld rows, worst distance to LAPACK %.2g\n", L->index, L->kind,
            sl_op_kind_name(ls->A.kind), (long long)n, (long long)n, (long long)e.n, worst);
    assert_true(worst <= 1e-8);
    free(left);
    sl_eig_free(&e);
    free(D); free(re); free(im);
}

static void test_every_family_vs_lapack(void **state)
{
    (void)state;
    /* Every registered family has a config here. */
    for (size_t f = 0; f < sl_family_count(); f++) {
        int found = 0;
        for (size_t i = 0; i < SL_ARRAY_LEN(small); i++) found |= !strcmp(small[i].family, sl_family_at(f)->name);
        if (!found) fprintf(stderr, "family %s has no spectrum check\n", sl_family_at(f)->name);
        assert_true(found);
    }
    uint64_t rng = 17;
    for (size_t i = 0; i < SL_ARRAY_LEN(small); i++) {
        sl_model *m = make_model(small[i].family, small[i].config, 3 + i);
        fprintf(stderr, "%s:\n", small[i].family);
        at_random_point(m, &rng, check_vs_lapack, NULL);
        sl_model_free(m);
    }
}

/* LSSL, LegS, bilinear: the discrete eigenvalues of channel c are
** (1 + d lambda/2)/(1 - d lambda/2) with lambda = -1..-N and d the channel's step. */
static void test_legs_bilinear(void **state)
{
    (void)state;
    sl_model *m = make_model("lssl", "{\"d_model\": 4, \"d_state\": 24, \"measure\": \"legs\", \"disc\": \"bilinear\"}", 5);
    const sl_layer *L = m->layers[0];
    double *carry = calloc((size_t)L->n_carry + 1, sizeof *carry), *u = calloc((size_t)L->n_in + 1, sizeof *u);
    sl_linsys ls;
    sl_linsys_init(&ls);
    sl_err err = { 0 };
    assert_int_equal(sl_layer_linsys(L, carry, u, SL_LS_A | SL_LS_CT, &ls, &err), SL_OK);
    assert_true(ls.has_ct);
    assert_int_equal(ls.disc, SL_DISC_BILINEAR);
    assert_int_equal(ls.n_dt, 4);
    sl_eig ect, ed;
    assert_int_equal(sl_op_eig(&ls.A_ct, 0, &ect, &err), SL_OK);
    assert_int_equal(sl_op_eig(&ls.A, 0, &ed, &err), SL_OK);
    /* Continuous: -1..-N exactly (every channel shares A). */
    for (int64_t i = 0; i < ect.n; i++) {
        assert_close(ect.im[i], 0, 0, 0);
        double r = -ect.re[i];
        assert_close(r, round(r), 0, 0);
        assert_true(r >= 1 && r <= 24);
    }
    /* Discrete, per channel block. */
    int64_t checked = 0;
    for (int64_t i = 0; i < ed.n; i++) {
        assert_true(ed.block[i] >= 0);
        const double d = ls.dt[ed.block[i]];
        int ok = 0;
        for (int k = 1; k <= 24 && !ok; k++) {
            double want = (1 - d * k / 2) / (1 + d * k / 2);
            ok = fabs(ed.re[i] - want) <= 1e-13 && ed.im[i] == 0.0;
        }
        assert_true(ok);
        checked += ed.mult[i];
    }
    assert_int_equal(checked, 4 * 24);
    fprintf(stderr, "LegS + bilinear: %lld discrete eigenvalues equal (1 + d lambda/2)/(1 - d lambda/2) to 1e-13\n",
            (long long)checked);
    sl_eig_free(&ect);
    sl_eig_free(&ed);
    sl_linsys_free(&ls);
    free(carry);
    free(u);
    sl_model_free(m);
}

/* DeltaNet: per head 1 - beta |k|^2 (once per value column), the rest 1. */
static void check_delta(const sl_layer *L, const sl_linsys *ls, void *ctx)
{
    (void)L;
    (void)ctx;
    assert_int_equal(ls->A.kind, SL_OP_DLR);
    sl_eig e;
    sl_err err = { 0 };
    assert_int_equal(sl_op_eig(&ls->A, 0, &e, &err), SL_OK);
    const int64_t m = ls->A.bm, kp = ls->A.kp;
    for (int64_t h = 0; h < ls->A.nb; h++) {
        double kk = 0;
        for (int64_t i = 0; i < m; i++) kk += ls->A.w[h * m + i] * ls->A.w[h * m + i];
        double beta = ls->A.c[h];
        int64_t one = 0, other = 0;
        for (int64_t i = 0; i < e.n; i++) {
            if (e.block[i] != h) continue;
            if (e.re[i] == 1.0) one += e.mult[i];
            else { assert_close(e.re[i], 1.0 - beta * kk, 1e-14, 1e-15); other += e.mult[i]; }
        }
        assert_int_equal(one, (m - 1) * kp);
        assert_int_equal(other, kp);
        fprintf(stderr, "  delta_net head %lld: beta %.6f |k|^2 %.6f -> eigenvalue %.6f x %lld, 1 x %lld\n", (long long)h,
                beta, kk, 1 - beta * kk, (long long)other, (long long)one);
    }
    sl_eig_free(&e);
}

/* Mamba: A_bar = exp(dt_c A_ct) entry by entry. */
static void check_mamba(const sl_layer *L, const sl_linsys *ls, void *ctx)
{
    (void)L;
    (void)ctx;
    assert_int_equal(ls->A.kind, SL_OP_DIAG);
    assert_true(ls->has_ct);
    assert_int_equal(ls->disc, SL_DISC_EXP);
    const int64_t n = ls->A.rows, per = n / ls->n_dt;
    for (int64_t i = 0; i < n; i++) assert_close(ls->A.a[i], exp(ls->dt[i / per] * ls->A_ct.a[i]), 1e-14, 0);
    sl_eig e;
    sl_err err = { 0 };
    assert_int_equal(sl_op_eig(&ls->A, 0, &e, &err), SL_OK);
    for (int64_t i = 0; i < e.n; i++) assert_close(e.re[i], exp(ls->dt[i / per] * ls->A_ct.a[i]), 1e-14, 0);
    sl_eig_free(&e);
}

static void test_closed_forms(void **state)
{
    (void)state;
    uint64_t rng = 99;
    sl_model *m = make_model("delta_net", "{\"hidden_size\": 8, \"num_heads\": 2, \"allow_neg_eigval\": true}", 2);
    at_random_point(m, &rng, check_delta, NULL);
    sl_model_free(m);
    m = make_model("mamba", "{\"d_model\": 8, \"d_state\": 4}", 2);
    at_random_point(m, &rng, check_mamba, NULL);
    sl_model_free(m);
}

/* A of a layer flagged SL_LAYER_A_CONST: the same after a random prefix as
** at the origin (state 0, input 0), entry for entry. */
static void check_a_same_as_origin(const sl_layer *L, const sl_linsys *ls, void *ctx)
{
    (void)ctx;
    double *c0 = calloc((size_t)L->n_carry + 1, sizeof *c0), *u0 = calloc((size_t)L->n_in + 1, sizeof *u0);
    sl_linsys o;
    sl_linsys_init(&o);
    sl_err err = { 0 };
    assert_int_equal(sl_layer_linsys(L, c0, u0, SL_LS_A, &o, &err), SL_OK);
    const int64_t n = ls->A.rows;
    assert_int_equal(o.A.rows, n);
    double *D = malloc((size_t)(n * n) * sizeof *D), *D0 = malloc((size_t)(n * n) * sizeof *D0);
    sl_op_to_dense(&ls->A, D);
    sl_op_to_dense(&o.A, D0);
    double worst = 0;
    for (int64_t i = 0; i < n * n; i++) worst = fmax(worst, fabs(D[i] - D0[i]));
    fprintf(stderr, "  layer %d (%s): A %lldx%lld, max |A(random) - A(origin)| = %.2g\n", L->index, L->kind,
            (long long)n, (long long)n, worst);
    assert_true(worst == 0.0);
    free(D); free(D0); free(c0); free(u0);
    sl_linsys_free(&o);
}

/* The default point of every family: the origin for nonlinear ones and for
** those whose A does not depend on the point, lti for time-invariant ones,
** random inputs for selective ones; and the A_CONST flag holds up. */
static void test_default_point(void **state)
{
    (void)state;
    static const struct { const char *family; sl_at at; } want[] = {
        { "rnn", SL_AT_ORIGIN }, { "lstm", SL_AT_ORIGIN }, { "gru", SL_AT_ORIGIN },
        { "lssl", SL_AT_LTI }, { "s4d", SL_AT_LTI }, { "lru", SL_AT_LTI }, { "lmu", SL_AT_LTI },
        { "mamba", SL_AT_RANDOM }, { "linear_attn", SL_AT_ORIGIN }, { "retnet", SL_AT_ORIGIN },
        { "gla", SL_AT_RANDOM }, { "delta_net", SL_AT_RANDOM }, { "gated_delta_net", SL_AT_RANDOM },
        { "mlstm", SL_AT_RANDOM },
    };
    assert_int_equal(SL_ARRAY_LEN(want), SL_ARRAY_LEN(small));
    uint64_t rng = 5;
    for (size_t i = 0; i < SL_ARRAY_LEN(small); i++) {
        assert_string_equal(want[i].family, small[i].family);
        sl_model *m = make_model(small[i].family, small[i].config, 7 + i);
        fprintf(stderr, "%s: default point %s\n", small[i].family, sl_at_name(sl_spectrum_default_at(m)));
        assert_int_equal(sl_spectrum_default_at(m), want[i].at);
        if (m->layers[0]->flags & SL_LAYER_A_CONST) at_random_point(m, &rng, check_a_same_as_origin, NULL);
        sl_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_family_vs_lapack),
        cmocka_unit_test(test_legs_bilinear),
        cmocka_unit_test(test_closed_forms),
        cmocka_unit_test(test_default_point),
    };
    return cmocka_run_group_tests_name("spectra", tests, NULL, NULL);
}
