/*
** The matrix-state kernels (kernels/matstate.c): recurrent, chunked and the
** plain reference agree for every form (no gate, scalar gate, per-dimension
** gate, delta rule, gated delta rule), on odd shapes, for T = 1, 63, 64, 65,
** 1000 and several chunk lengths, from a non-zero start state; the final
** states agree too (1e-5 relative, plus 1e-5 of the largest value).
*/
#include "sl_test.h"

#include <stdlib.h>
#include <string.h>

#include "matstate.h"
#include "util.h"

enum { F_NONE, F_SCALAR, F_VECTOR, F_DELTA, F_GDELTA, F_NFORMS };
static const char *const form_names[] = { "no gate", "scalar gate", "vector gate", "delta", "gated delta" };

typedef struct data {
    int64_t T, dk, dv;
    float *q, *k, *v, *g, *beta, *S0;
} data;

static void make_data(data *d, int form, int64_t T, int64_t dk, int64_t dv, uint64_t seed, double gmin)
{
    d->T = T; d->dk = dk; d->dv = dv;
    d->q = malloc((size_t)(T * dk) * sizeof(float));
    d->k = malloc((size_t)(T * dk) * sizeof(float));
    d->v = malloc((size_t)(T * dv) * sizeof(float));
    d->g = malloc((size_t)(T * dk) * sizeof(float));
    d->beta = malloc((size_t)T * sizeof(float));
    d->S0 = malloc((size_t)(dk * dv) * sizeof(float));
    uint64_t r = seed;
    for (int64_t t = 0; t < T; t++) {
        double nrm = 0;
        for (int64_t i = 0; i < dk; i++) {
            d->q[t * dk + i] = (float)sl_test_uniform(&r, -1, 1);
            d->k[t * dk + i] = (float)sl_test_uniform(&r, -1, 1);
            nrm += (double)d->k[t * dk + i] * d->k[t * dk + i];
            d->g[t * dk + i] = (float)sl_test_uniform(&r, gmin, 0);
        }
        /* The delta forms use unit keys (as DeltaNet's L2 normalisation does). */
        if (form >= F_DELTA)
            for (int64_t i = 0; i < dk; i++) d->k[t * dk + i] = (float)(d->k[t * dk + i] / sqrt(nrm));
        for (int64_t p = 0; p < dv; p++) d->v[t * dv + p] = (float)sl_test_uniform(&r, -1, 1);
        d->beta[t] = (float)sl_test_uniform(&r, 0, form == F_DELTA ? 2.0 : 1.0);
    }
    for (int64_t i = 0; i < dk * dv; i++) d->S0[i] = (float)sl_test_uniform(&r, -0.5, 0.5);
}

static void free_data(data *d)
{
    free(d->q); free(d->k); free(d->v); free(d->g); free(d->beta); free(d->S0);
}

static sl_ms_seq seq_of(const data *d, int form, float *o, float *S)
{
    sl_ms_seq s = { .T = d->T, .dk = d->dk, .dv = d->dv, .q = d->q, .k = d->k, .v = d->v,
                    .ldq = d->dk, .ldk = d->dk, .ldv = d->dv, .scale = 1.0f / sqrtf((float)d->dk),
                    .o = o, .ldo = d->dv, .S = S };
    if (form == F_SCALAR || form == F_GDELTA) { s.g = d->g; s.ldg = d->dk; s.gdim = 1; }
    if (form == F_VECTOR) { s.g = d->g; s.ldg = d->dk; s.gdim = d->dk; }
    if (form >= F_DELTA) { s.beta = d->beta; s.ldb = 1; }
    memcpy(S, d->S0, (size_t)(d->dk * d->dv) * sizeof *S);
    return s;
}

/* Run algo (0 reference, 1 recurrent, 2 chunked with C) into o, S (doubles). */
static void run(const data *d, int form, int algo, int64_t C, double *od, double *Sd)
{
    float *o = malloc((size_t)(d->T * d->dv) * sizeof *o), *S = malloc((size_t)(d->dk * d->dv) * sizeof *S);
    sl_ms_seq s = seq_of(d, form, o, S);
    if (algo == 0) {
        sl_ms_reference(&s);
    } else if (algo == 1) {
        float *tmp = malloc((size_t)(d->dk + d->dv) * sizeof *tmp);
        sl_ms_recurrent(&s, tmp);
        free(tmp);
    } else {
        float *w = malloc((size_t)sl_ms_workspace(C, d->dk, d->dv) * sizeof *w);
        sl_ms_chunked(&s, C, w);
        free(w);
    }
    for (int64_t i = 0; i < d->T * d->dv; i++) od[i] = o[i];
    for (int64_t i = 0; i < d->dk * d->dv; i++) Sd[i] = S[i];
    free(o);
    free(S);
}

/* 1e-5 relative, plus 1e-5 of the largest reference value: without decay the
** outputs and state are float sums over the whole sequence, and two summation
** orders differ by rounding relative to the sum's size, not each element's. */
static double worst(const double *a, const double *ref, size_t n, const char *what)
{
    double m = 1.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    return sl_test_worst(a, ref, n, 1e-5, 1e-5 * m, what);
}

static void check_form(int form, int64_t dk, int64_t dv, double gmin)
{
    const int64_t Ts[] = { 1, 63, 64, 65, 1000 };
    const int64_t Cs[] = { 16, 64, 17 };
    for (size_t a = 0; a < SL_ARRAY_LEN(Ts); a++) {
        data d;
        make_data(&d, form, Ts[a], dk, dv, 1000 + (uint64_t)a * 7 + (uint64_t)form, gmin);
        const size_t no = (size_t)(d.T * dv), ns = (size_t)(dk * dv);
        double *o0 = malloc(no * sizeof *o0), *s0 = malloc(ns * sizeof *s0);
        double *o1 = malloc(no * sizeof *o1), *s1 = malloc(ns * sizeof *s1);
        run(&d, form, 0, 0, o0, s0);
        run(&d, form, 1, 0, o1, s1);
        fprintf(stderr, "%s dk=%lld dv=%lld T=%lld recurrent vs reference: ", form_names[form], (long long)dk,
                (long long)dv, (long long)d.T);
        assert_true(worst(o1, o0, no, "o") <= 1.0);
        assert_true(worst(s1, s0, ns, "S") <= 1.0);
        for (size_t c = 0; c < SL_ARRAY_LEN(Cs); c++) {
            run(&d, form, 2, Cs[c], o1, s1);
            fprintf(stderr, "  chunked C=%lld vs reference: ", (long long)Cs[c]);
            assert_true(worst(o1, o0, no, "o") <= 1.0);
            assert_true(worst(s1, s0, ns, "S") <= 1.0);
        }
        free(o0); free(s0); free(o1); free(s1);
        free_data(&d);
    }
}

static void test_no_gate(void **state) { (void)state; check_form(F_NONE, 5, 7, 0); check_form(F_NONE, 16, 16, 0); }
static void test_scalar_gate(void **state) { (void)state; check_form(F_SCALAR, 5, 7, -0.3); check_form(F_SCALAR, 16, 9, -2); }
static void test_vector_gate(void **state)
{
    (void)state;
    check_form(F_VECTOR, 5, 7, -0.3);
    check_form(F_VECTOR, 16, 9, -1);
    /* Steep decays: the secondary chunks fall back to direct loops. */
    check_form(F_VECTOR, 6, 5, -12);
}
static void test_delta(void **state) { (void)state; check_form(F_DELTA, 5, 7, 0); check_form(F_DELTA, 16, 16, 0); }
static void test_gated_delta(void **state) { (void)state; check_form(F_GDELTA, 5, 7, -0.3); check_form(F_GDELTA, 16, 9, -3); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_gate),
        cmocka_unit_test(test_scalar_gate),
        cmocka_unit_test(test_vector_gate),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_gated_delta),
    };
    return cmocka_run_group_tests_name("matstate", tests, NULL, NULL);
}
