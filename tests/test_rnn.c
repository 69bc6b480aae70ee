/*
** The classic recurrent families (rnn, lstm, gru): forward passes against
** PyTorch fixtures (tests/fixtures/make_fixtures.py), the analytic linear
** system against finite differences and against torch.autograd's Jacobian,
** the leaky RNN with tau = 1 against the plain RNN, and init/run end to end.
*/
#include "sl_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "kernels.h"
#include "model.h"
#include "util.h"

static const char *const fixtures[] = {
    "rnn_tanh_1", "rnn_tanh_2", "rnn_relu_1", "rnn_relu_2", "lstm_1", "lstm_2", "gru_1", "gru_2",
};

static sl_model *open_model(const char *path)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    if (sl_model_open(path, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    return m;
}

static void compare_forward(const char *name, int algo)
{
    char mp[256], rp[256];
    snprintf(mp, sizeof mp, "tests/fixtures/rnn/%s.model.safetensors", name);
    snprintf(rp, sizeof rp, "tests/fixtures/rnn/%s.ref.safetensors", name);
    sl_model *m = open_model(mp);
    int64_t nu, ny;
    float *u = sl_test_load_f32(rp, "u", &nu);
    double *yref = sl_test_load_f64(rp, "y", &ny), *href = sl_test_load_f64(rp, "h_n", NULL);
    const int64_t H = m->n_out, B = 2, T = ny / (2 * H), L = m->n_layers;
    assert_int_equal(nu, B * T * m->n_in);
    float *y = malloc((size_t)ny * sizeof *y);
    float **carries = calloc((size_t)L, sizeof *carries);
    for (int l = 0; l < L; l++) carries[l] = calloc((size_t)(B * m->layers[l]->n_carry), sizeof(float));
    sl_err err = { 0 };
    assert_int_equal(sl_model_forward(m, B, T, u, y, carries, algo, &err), SL_OK);
    double *yd = malloc((size_t)ny * sizeof *yd);
    for (int64_t i = 0; i < ny; i++) yd[i] = y[i];
    fprintf(stderr, "%s (%s): ", name, algo == SL_ALGO_REFERENCE ? "reference" : "optimised");
    assert_all_close(yd, yref, (size_t)ny, 1e-5, 1e-6);
    /* Final states: h_n [L, B, H] (and c_n for LSTM) against each layer's carry. */
    double *cref = strstr(name, "lstm") ? sl_test_load_f64(rp, "c_n", NULL) : NULL;
    for (int l = 0; l < L; l++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < H; j++) {
                const float *cr = carries[l] + b * m->layers[l]->n_carry;
                assert_close(cr[j], href[(l * B + b) * H + j], 1e-5, 1e-6);
                if (cref) assert_close(cr[H + j], cref[(l * B + b) * H + j], 1e-5, 1e-6);
            }
    for (int l = 0; l < L; l++) free(carries[l]);
    free(carries);
    free(cref);
    free(u); free(yref); free(href); free(y); free(yd);
    sl_model_free(m);
}

static void test_forward_vs_pytorch(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_LEN(fixtures); i++) {
        compare_forward(fixtures[i], SL_ALGO_AUTO);
        compare_forward(fixtures[i], SL_ALGO_REFERENCE);
    }
}

/* The double-precision step, run along the sequence, gives the float forward's output. */
static void test_step_matches_forward(void **state)
{
    (void)state;
    for (size_t f = 0; f < SL_ARRAY_LEN(fixtures); f++) {
        char mp[256], rp[256];
        snprintf(mp, sizeof mp, "tests/fixtures/rnn/%s.model.safetensors", fixtures[f]);
        snprintf(rp, sizeof rp, "tests/fixtures/rnn/%s.ref.safetensors", fixtures[f]);
        sl_model *m = open_model(mp);
        int64_t nu, ny;
        double *u = sl_test_load_f64(rp, "u", &nu), *yref = sl_test_load_f64(rp, "y", &ny);
        const int64_t H = m->n_out, T = ny / (2 * H);
        double *carry[8], *next = malloc(64 * sizeof *next), *x = malloc(64 * sizeof *x), *yv = malloc(64 * sizeof *yv);
        for (int l = 0; l < m->n_layers; l++) carry[l] = calloc(64, sizeof(double));
        sl_err err = { 0 };
        for (int64_t t = 0; t < T; t++) {
            memcpy(x, u + t * m->n_in, (size_t)m->n_in * sizeof *x);   /* sequence 0 */
            for (int l = 0; l < m->n_layers; l++) {
                assert_int_equal(sl_layer_step(m->layers[l], carry[l], x, next, yv, &err), SL_OK);
                memcpy(carry[l], next, (size_t)m->layers[l]->n_carry * sizeof *next);
                memcpy(x, yv, (size_t)H * sizeof *x);
            }
            for (int64_t j = 0; j < H; j++) assert_close(x[j], yref[t * H + j], 1e-5, 1e-6);
        }
        for (int l = 0; l < m->n_layers; l++) free(carry[l]);
        free(next); free(x); free(yv); free(u); free(yref);
        sl_model_free(m);
    }
}

/* Analytic A_t, B_t against torch.autograd.functional.jacobian at the fixture's point. */
static void test_jacobian_vs_autograd(void **state)
{
    (void)state;
    for (size_t f = 0; f < SL_ARRAY_LEN(fixtures); f++) {
        char mp[256], rp[256];
        snprintf(mp, sizeof mp, "tests/fixtures/rnn/%s.model.safetensors", fixtures[f]);
        snprintf(rp, sizeof rp, "tests/fixtures/rnn/%s.ref.safetensors", fixtures[f]);
        sl_model *m = open_model(mp);
        const sl_layer *L = m->layers[0];
        int64_t na, nb;
        double *x = sl_test_load_f64(rp, "jac_state", NULL), *u = sl_test_load_f64(rp, "jac_u", NULL);
        double *ja = sl_test_load_f64(rp, "jac_A", &na), *jb = sl_test_load_f64(rp, "jac_B", &nb);
        assert_int_equal(na, L->n_state * L->n_state);
        assert_int_equal(nb, L->n_state * L->n_in);
        sl_linsys ls;
        sl_linsys_init(&ls);
        sl_err err = { 0 };
        assert_int_equal(sl_layer_linsys(L, x, u, SL_LS_A | SL_LS_B, &ls, &err), SL_OK);
        double *A = malloc((size_t)na * sizeof *A), *Bm = malloc((size_t)nb * sizeof *Bm);
        sl_op_to_dense(&ls.A, A);
        sl_op_to_dense(&ls.B, Bm);
        fprintf(stderr, "%s: ", fixtures[f]);
        assert_all_close(A, ja, (size_t)na, 1e-9, 1e-12);
        assert_all_close(Bm, jb, (size_t)nb, 1e-9, 1e-12);
        sl_linsys_free(&ls);
        free(A); free(Bm); free(x); free(u); free(ja); free(jb);
        sl_model_free(m);
    }
}

/* A fresh model of the family from options, through the family's init. */
static sl_model *make_model(const char *family, const char *cfg_json, uint64_t seed)
{
    json_error_t je;
    json_t *cfg = json_loads(cfg_json, 0, &je);
    assert_non_null(cfg);
    const sl_family *fam = sl_family_find(family);
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    int rc = fam->init(cfg, seed, ts, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    sl_model *m = NULL;
    rc = sl_model_from_tensors(ts, family, cfg, &m, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    json_decref(cfg);
    return m;
}

/* Analytic A_t and B_t against central finite differences of the step, at
** random states and inputs, for every family and variant. */
static void test_linsys_finite_differences(void **state)
{
    (void)state;
    struct { const char *fam, *cfg; } cases[] = {
        { "rnn", "{\"input_size\": 3, \"hidden_size\": 6, \"nonlinearity\": \"tanh\"}" },
        { "rnn", "{\"input_size\": 3, \"hidden_size\": 6, \"nonlinearity\": \"relu\"}" },
        { "rnn", "{\"input_size\": 4, \"hidden_size\": 5, \"leaky\": true, \"tau\": 3.0}" },
        { "rnn", "{\"input_size\": 2, \"hidden_size\": 5, \"num_layers\": 2, \"bias\": false}" },
        { "lstm", "{\"input_size\": 3, \"hidden_size\": 6, \"num_layers\": 2}" },
        { "gru", "{\"input_size\": 3, \"hidden_size\": 6, \"num_layers\": 2}" },
    };
    uint64_t rng = 42;
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        sl_model *m = make_model(cases[c].fam, cases[c].cfg, 7 + c);
        /* Scale the weights up so the gates are far from their linear range. */
        for (size_t i = 0; i < m->tensors->n; i++)
            if (!strstr(m->tensors->t[i].name, "tau"))
                for (int64_t k = 0; k < m->tensors->t[i].numel; k++) m->tensors->t[i].data[k] *= 3.0f;
        for (int l = 0; l < m->n_layers; l++) {
            const sl_layer *L = m->layers[l];
            for (int trial = 0; trial < 3; trial++) {
                double carry[32], u[32];
                for (int64_t i = 0; i < L->n_carry; i++) carry[i] = sl_test_uniform(&rng, -1, 1);
                for (int64_t i = 0; i < L->n_in; i++) u[i] = sl_test_uniform(&rng, -1.5, 1.5);
                fprintf(stderr, "%s %s layer %d trial %d:\n", cases[c].fam, cases[c].cfg, l, trial);
                assert_true(sl_test_check_linsys(L, carry, u, 1e-6, 1e-8) <= 1.0);
            }
        }
        sl_model_free(m);
    }
}

/* The affine offset e makes next = A x + B u + e exact; for a ReLU RNN
** inside a linear region that holds for nearby points too (linear interpreter). */
static void test_relu_offset_exact(void **state)
{
    (void)state;
    sl_model *m = make_model("rnn", "{\"input_size\": 3, \"hidden_size\": 5, \"nonlinearity\": \"relu\"}", 3);
    const sl_layer *L = m->layers[0];
    double x[5] = { 0.3, -0.2, 0.5, 0.1, -0.4 }, u[3] = { 0.2, -0.7, 0.9 };
    sl_linsys ls;
    sl_linsys_init(&ls);
    sl_err err = { 0 };
    assert_int_equal(sl_layer_linsys(L, x, u, SL_LS_E, &ls, &err), SL_OK);
    double x2[5], next[5], ax[5], bu[5];
    for (int i = 0; i < 5; i++) x2[i] = x[i] + 1e-4 * (i - 2);
    sl_layer_step(L, x2, u, next, NULL, &err);
    sl_op_apply(&ls.A, x2, ax);
    sl_op_apply(&ls.B, u, bu);
    for (int i = 0; i < 5; i++) assert_close(ax[i] + bu[i] + ls.e[i], next[i], 1e-12, 1e-13);
    sl_linsys_free(&ls);
    sl_model_free(m);
}

/* The leaky RNN with every tau = 1 is the plain RNN. */
static void test_leaky_tau_one(void **state)
{
    (void)state;
    sl_model *plain = make_model("rnn", "{\"input_size\": 3, \"hidden_size\": 7}", 11);
    sl_model *leaky = make_model("rnn", "{\"input_size\": 3, \"hidden_size\": 7, \"leaky\": true, \"tau\": 1.0}", 11);
    const int64_t B = 3, T = 9;
    float x[3 * 9 * 3], y1[3 * 9 * 7], y2[3 * 9 * 7];
    uint64_t rng = 5;
    for (size_t i = 0; i < SL_ARRAY_LEN(x); i++) x[i] = (float)sl_test_uniform(&rng, -1, 1);
    sl_err err = { 0 };
    assert_int_equal(sl_model_forward(plain, B, T, x, y1, NULL, 0, &err), SL_OK);
    assert_int_equal(sl_model_forward(leaky, B, T, x, y2, NULL, 0, &err), SL_OK);
    assert_memory_equal(y1, y2, sizeof y1);
    double h[7] = { 0.1, -0.2, 0.3, 0.0, 0.5, -0.6, 0.7 }, u[3] = { 1, -1, 0.5 }, n1[7], n2[7];
    sl_layer_step(plain->layers[0], h, u, n1, NULL, &err);
    sl_layer_step(leaky->layers[0], h, u, n2, NULL, &err);
    assert_memory_equal(n1, n2, sizeof n1);
    /* And tau > 1 changes the dynamics as the closed form says. */
    sl_model *slow = make_model("rnn", "{\"input_size\": 3, \"hidden_size\": 7, \"leaky\": true, \"tau\": 4.0}", 11);
    double n3[7];
    sl_layer_step(slow->layers[0], h, u, n3, NULL, &err);
    for (int j = 0; j < 7; j++) assert_close(n3[j], 0.75 * h[j] + 0.25 * n1[j], 1e-14, 1e-15);
    sl_model_free(plain);
    sl_model_free(leaky);
    sl_model_free(slow);
}

static void test_init_deterministic(void **state)
{
    (void)state;
    char *a = sl_test_path("a.bin"), *b = sl_test_path("b.bin"), *c = sl_test_path("c.bin"), args[1024];
    snprintf(args, sizeof args, "init --family gru --input-size 4 --hidden-size 8 --seed 3 -o %s", a);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "init --family gru --input-size 4 --hidden-size 8 --seed 3 -o %s", b);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "init --family gru --input-size 4 --hidden-size 8 --seed 4 -o %s", c);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    char ha[65], hb[65], hc[65];
    sl_err err = { 0 };
    sl_sha256_file(a, ha, &err);
    sl_sha256_file(b, hb, &err);
    sl_sha256_file(c, hc, &err);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, hc);
    /* PyTorch's init: every weight within +-1/sqrt(H), spread over the range. */
    sl_model *m = open_model(a);
    const sl_tensor *w = sl_tensors_find(m->tensors, "weight_hh_l0");
    double lim = 1.0 / sqrt(8.0), lo = 1, hi = -1;
    for (int64_t i = 0; i < w->numel; i++) {
        assert_true(fabs(w->data[i]) <= lim);
        lo = fmin(lo, w->data[i]);
        hi = fmax(hi, w->data[i]);
    }
    assert_true(lo < -0.8 * lim && hi > 0.8 * lim);
    sl_model_free(m);
    free(a); free(b); free(c);
}

static void test_init_run_every_family(void **state)
{
    (void)state;
    const char *fams[] = { "rnn --nonlinearity relu", "rnn --leaky --tau 2.5", "lstm --num-layers 2", "gru" };
    char *in = sl_test_path("u.safetensors");
    int64_t shp[3] = { 2, 5, 3 };
    float u[30];
    for (int i = 0; i < 30; i++) u[i] = (float)(i % 7) / 7.0f - 0.4f;
    sl_st_tensor t = { "u", SL_DT_F32, 3, shp, u };
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(in, &t, 1, NULL, &err), SL_OK);
    for (size_t i = 0; i < SL_ARRAY_LEN(fams); i++) {
        char *mp = sl_test_path("m.bin"), *op = sl_test_path("o.safetensors"), args[1024], *out = NULL;
        snprintf(args, sizeof args, "init --family %s --input-size 3 --hidden-size 4 -o %s", fams[i], mp);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        free(out);
        snprintf(args, sizeof args, "run %s --input %s -o %s", mp, in, op);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        free(out);
        /* The written y equals an in-process forward pass. */
        sl_model *m = open_model(mp);
        float y[2 * 5 * 4];
        assert_int_equal(sl_model_forward(m, 2, 5, u, y, NULL, 0, &err), SL_OK);
        int64_t ny;
        float *yw = sl_test_load_f32(op, "y", &ny);
        assert_int_equal(ny, 40);
        assert_memory_equal(y, yw, sizeof y);
        free(sl_test_load_f32(op, "h_n", NULL));
        free(yw);
        sl_model_free(m);
        snprintf(args, sizeof args, "run %s --input %s", mp, in);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        assert_non_null(strstr(out, "y [2, 5, 4]"));
        free(out);
        free(mp);
        free(op);
    }
    free(in);
}

static void test_run_bad_input(void **state)
{
    (void)state;
    char *mp = sl_test_path("m.bin"), *bad = sl_test_path("bad.safetensors"), *nan = sl_test_path("nan.safetensors");
    char args[1024], *errs = NULL;
    snprintf(args, sizeof args, "init --family lstm --input-size 3 --hidden-size 4 -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    int64_t shp[3] = { 1, 2, 5 };
    float u[10] = { 0 };
    sl_st_tensor t = { "u", SL_DT_F32, 3, shp, u };
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(bad, &t, 1, NULL, &err), SL_OK);
    snprintf(args, sizeof args, "run %s --input %s", mp, bad);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "5 features per step, the model takes 3"));
    free(errs);
    shp[2] = 3;
    u[4] = NAN;
    assert_int_equal(sl_st_write(nan, &t, 1, NULL, &err), SL_OK);
    snprintf(args, sizeof args, "run %s --input %s", mp, nan);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "non-finite value (nan) at [0, 1, 1]"));
    free(errs);
    snprintf(args, sizeof args, "run %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "--input"));
    free(errs);
    snprintf(args, sizeof args, "init --family lstm --input-size 3 -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "hidden_size"));
    free(errs);
    snprintf(args, sizeof args, "init --family mamba2000 --input-size 3 -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "unknown family"));
    free(errs);
    free(mp); free(bad); free(nan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_vs_pytorch),
        cmocka_unit_test(test_step_matches_forward),
        cmocka_unit_test(test_jacobian_vs_autograd),
        cmocka_unit_test(test_linsys_finite_differences),
        cmocka_unit_test(test_relu_offset_exact),
        cmocka_unit_test(test_leaky_tau_one),
        cmocka_unit_test(test_init_deterministic),
        cmocka_unit_test(test_init_run_every_family),
        cmocka_unit_test(test_run_bad_input),
    };
    return cmocka_run_group_tests_name("rnn", tests, NULL, NULL);
}
