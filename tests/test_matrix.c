/*
** The matrix-state families (linear_attn, retnet, gla, delta_net,
** gated_delta_net, mlstm): forward passes (recurrent, chunked with several
** chunk lengths, reference) and the double step against PyTorch fixtures
** (tests/fixtures/matrix/make_matrix_fixtures.py); recurrent vs chunked on
** long sequences; the structured linear system against finite differences
** and exactness; closed-form eigenvalues against LAPACK on the expanded
** matrix; the implicit attention matrix against the heads' output; the batch
** forward identical on 1 and 2 threads (each thread its sequences, or each
** stage split) and close on every ISA; init and run end to end; the HF-folder
** path.
*/
#include "sl_test.h"

#include <jansson.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "kernels.h"
#include "matblock.h"
#include "attention.h"
#include "eig.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

static const char *const fixtures[] = { "linear_attn", "linear_attn_id", "retnet", "gla", "delta_net",
                                        "delta_net_neg", "gated_delta_net", "mlstm" };
static const char *const families[] = { "linear_attn", "retnet", "gla", "delta_net", "gated_delta_net", "mlstm" };

static sl_model *open_model(const char *path)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    if (sl_model_open(path, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    return m;
}

static void fixture_paths(const char *name, char *mp, char *rp)
{
    snprintf(mp, 256, "tests/fixtures/matrix/%s.model.safetensors", name);
    snprintf(rp, 256, "tests/fixtures/matrix/%s.ref.safetensors", name);
}

/* The layer stack with a chosen algorithm and chunk; carries [L][B * n_carry]. */
static void stack_forward(const sl_model *m, int64_t B, int64_t T, const float *x, float *y, float **carries, int algo,
                          int64_t chunk)
{
    float *a = malloc((size_t)(B * T * m->n_out) * sizeof *a), *b = malloc((size_t)(B * T * m->n_out) * sizeof *b);
    const float *in = x;
    sl_err err = { 0 };
    for (int l = 0; l < m->n_layers; l++) {
        float *out = l == m->n_layers - 1 ? y : (l % 2 ? b : a);
        sl_fwd f = { .B = B, .T = T, .x = in, .y = out, .carry = carries ? carries[l] : NULL, .algo = algo, .chunk = chunk };
        int rc = sl_layer_forward(m->layers[l], &f, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, SL_OK);
        in = out;
    }
    free(a);
    free(b);
}

static void test_forward_vs_pytorch(void **state)
{
    (void)state;
    const struct { int algo; int64_t chunk; const char *name; } runs[] = {
        { SL_ALGO_RECURRENT, 0, "recurrent" }, { SL_ALGO_CHUNKED, 4, "chunked C=4" },
        { SL_ALGO_CHUNKED, 64, "chunked C=64" }, { SL_ALGO_REFERENCE, 0, "reference" }, { SL_ALGO_AUTO, 0, "auto" },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(fixtures); i++) {
        char mp[256], rp[256];
        fixture_paths(fixtures[i], mp, rp);
        sl_model *m = open_model(mp);
        int64_t nu, ny;
        float *u = sl_test_load_f32(rp, "u", &nu);
        double *yref = sl_test_load_f64(rp, "y", &ny);
        const int64_t B = 2, T = ny / (B * m->n_out);
        float *y = malloc((size_t)ny * sizeof *y);
        double *yd = malloc((size_t)ny * sizeof *yd);
        for (size_t r = 0; r < SL_ARRAY_LEN(runs); r++) {
            float *carries[8];
            for (int l = 0; l < m->n_layers; l++) carries[l] = calloc((size_t)(B * m->layers[l]->n_carry), sizeof(float));
            stack_forward(m, B, T, u, y, carries, runs[r].algo, runs[r].chunk);
            for (int64_t k = 0; k < ny; k++) yd[k] = y[k];
            fprintf(stderr, "%s (%s): ", fixtures[i], runs[r].name);
            assert_all_close(yd, yref, (size_t)ny, 1e-5, 1e-5);
            for (int l = 0; l < m->n_layers; l++) {
                char nm[32];
                snprintf(nm, sizeof nm, "S_l%d", l);
                int64_t ns;
                double *sref = sl_test_load_f64(rp, nm, &ns);
                const sl_layer *L = m->layers[l];
                assert_int_equal(ns, B * L->n_state);
                double *sd = malloc((size_t)ns * sizeof *sd);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t k = 0; k < L->n_state; k++) sd[b * L->n_state + k] = carries[l][b * L->n_carry + k];
                fprintf(stderr, "  final S, layer %d: ", l);
                assert_all_close(sd, sref, (size_t)ns, 1e-5, 1e-5);
                free(sd);
                free(sref);
                free(carries[l]);
            }
        }
        free(u); free(yref); free(y); free(yd);
        sl_model_free(m);
    }
}

/* The double step along sequence 0 gives PyTorch's output. */
static void test_step_vs_pytorch(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_LEN(fixtures); i++) {
        char mp[256], rp[256];
        fixture_paths(fixtures[i], mp, rp);
        sl_model *m = open_model(mp);
        int64_t ny;
        double *u = sl_test_load_f64(rp, "u", NULL), *yref = sl_test_load_f64(rp, "y", &ny);
        const int64_t hid = m->n_out, T = ny / (2 * hid);
        double *carry[8], *next[8], x[64], yv[64], worst = 0;
        for (int l = 0; l < m->n_layers; l++) {
            carry[l] = calloc((size_t)m->layers[l]->n_carry, sizeof(double));
            next[l] = malloc((size_t)m->layers[l]->n_carry * sizeof(double));
        }
        sl_err err = { 0 };
        for (int64_t t = 0; t < T; t++) {
            memcpy(x, u + t * hid, (size_t)hid * sizeof *x);
            for (int l = 0; l < m->n_layers; l++) {
                assert_int_equal(sl_layer_step(m->layers[l], carry[l], x, next[l], yv, &err), SL_OK);
                memcpy(carry[l], next[l], (size_t)m->layers[l]->n_carry * sizeof(double));
                memcpy(x, yv, (size_t)hid * sizeof *x);
            }
            worst = fmax(worst, sl_test_worst(x, yref + t * hid, (size_t)hid, 1e-9, 1e-9, "step y"));
        }
        fprintf(stderr, "%s: double step vs PyTorch float64, worst ratio to 1e-9 tolerance %.3g\n", fixtures[i], worst);
        assert_true(worst <= 1.0);
        for (int l = 0; l < m->n_layers; l++) { free(carry[l]); free(next[l]); }
        free(u); free(yref);
        sl_model_free(m);
    }
}

/* A fresh model through the family's init, weights scaled up. */
static sl_model *make_model(const char *family, const char *cfg_json, uint64_t seed, double scale)
{
    json_error_t je;
    json_t *cfg = json_loads(cfg_json, 0, &je);
    assert_non_null(cfg);
    const sl_family *fam = sl_family_find(family);
    assert_non_null(fam);
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    int rc = fam->init(cfg, seed, ts, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    for (size_t i = 0; i < ts->n; i++) {
        const char *nm = ts->t[i].name;
        if (strstr(nm, "norm") || strstr(nm, "mlp.") || strstr(nm, "A_log") || strstr(nm, "dt_bias") || strstr(nm, "skip") || strstr(nm, "gate.bias"))
            continue;
        for (int64_t k = 0; k < ts->t[i].numel; k++) ts->t[i].data[k] *= (float)scale;
    }
    sl_model *m = NULL;
    rc = sl_model_from_tensors(ts, family, cfg, &m, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    json_decref(cfg);
    return m;
}

static const char *const long_cfgs[][2] = {
    { "linear_attn", "{\"hidden_size\": 24, \"num_heads\": 2, \"feature_map\": \"elu\"}" },
    { "retnet", "{\"hidden_size\": 24, \"num_heads\": 3, \"expand_v\": 1}" },
    { "gla", "{\"hidden_size\": 24, \"num_heads\": 2, \"gate_low_rank_dim\": 4, \"use_short_conv\": true}" },
    { "delta_net", "{\"hidden_size\": 24, \"num_heads\": 2}" },
    { "delta_net", "{\"hidden_size\": 24, \"num_heads\": 3, \"allow_neg_eigval\": true, \"use_gate\": true}" },
    { "gated_delta_net", "{\"hidden_size\": 24, \"num_heads\": 2, \"head_dim\": 6, \"expand_v\": 1.5}" },
    { "mlstm", "{\"hidden_size\": 16, \"num_heads\": 2, \"round_proj_up_to_multiple_of\": 4, \"proj_factor\": 1.5}" },
};

/* Recurrent and chunked forms agree to 1e-5 for T = 1, 63, 64, 65, 1000 and several C. */
static void test_recurrent_vs_chunked(void **state)
{
    (void)state;
    const int64_t Ts[] = { 1, 63, 64, 65, 1000 }, Cs[] = { 16, 64, 100 };
    for (size_t c = 0; c < SL_ARRAY_LEN(long_cfgs); c++) {
        sl_model *m = make_model(long_cfgs[c][0], long_cfgs[c][1], 11 + c, 10.0);
        const sl_layer *L = m->layers[0];
        double worst = 0;
        for (size_t a = 0; a < SL_ARRAY_LEN(Ts); a++) {
            const int64_t B = 2, T = Ts[a], n = B * T * L->n_in;
            float *x = malloc((size_t)n * sizeof *x), *y0 = malloc((size_t)n * sizeof *y0), *y1 = malloc((size_t)n * sizeof *y1);
            float *c0 = calloc((size_t)(B * L->n_carry), sizeof(float)), *c1 = malloc((size_t)(B * L->n_carry) * sizeof(float));
            uint64_t r = 5 + a;
            for (int64_t i = 0; i < n; i++) x[i] = (float)sl_test_uniform(&r, -1, 1);
            sl_err err = { 0 };
            sl_fwd f = { .B = B, .T = T, .x = x, .y = y0, .carry = c0, .algo = SL_ALGO_RECURRENT };
            assert_int_equal(sl_layer_forward(L, &f, &err), SL_OK);
            double *yd0 = malloc((size_t)n * sizeof *yd0), *yd1 = malloc((size_t)n * sizeof *yd1);
            double *sd0 = malloc((size_t)(B * L->n_carry) * sizeof *sd0), *sd1 = malloc((size_t)(B * L->n_carry) * sizeof *sd1);
            for (int64_t i = 0; i < n; i++) yd0[i] = y0[i];
            for (int64_t i = 0; i < B * L->n_carry; i++) sd0[i] = c0[i];
            for (size_t k = 0; k < SL_ARRAY_LEN(Cs); k++) {
                memset(c1, 0, (size_t)(B * L->n_carry) * sizeof(float));
                sl_fwd g = { .B = B, .T = T, .x = x, .y = y1, .carry = c1, .algo = SL_ALGO_CHUNKED, .chunk = Cs[k] };
                assert_int_equal(sl_layer_forward(L, &g, &err), SL_OK);
                for (int64_t i = 0; i < n; i++) yd1[i] = y1[i];
                for (int64_t i = 0; i < B * L->n_carry; i++) sd1[i] = c1[i];
                double w1 = sl_test_worst(yd1, yd0, (size_t)n, 1e-5, 1e-5, "chunked y vs recurrent");
                /* The state is a float sum over the whole sequence (no decay for
                ** linear attention): the two summation orders differ by float
                ** rounding relative to the state's size, so the absolute part of
                ** the tolerance scales with max |S| (1e-5 of it). */
                double smax = 1.0;
                for (int64_t i = 0; i < B * L->n_carry; i++) smax = fmax(smax, fabs(sd0[i]));
                double w2 = sl_test_worst(sd1, sd0, (size_t)(B * L->n_carry), 1e-5, 1e-5 * smax, "chunked carry vs recurrent");
                worst = fmax(worst, fmax(w1, w2));
            }
            free(x); free(y0); free(y1); free(c0); free(c1); free(yd0); free(yd1); free(sd0); free(sd1);
        }
        fprintf(stderr, "%s %s: recurrent vs chunked, T in {1,63,64,65,1000}, C in {16,64,100}: worst ratio %.3g\n",
                long_cfgs[c][0], long_cfgs[c][1], worst);
        assert_true(worst <= 1.0);
        sl_model_free(m);
    }
}

/* A carry reached by running the double step on random inputs (context included). */
static void walk(const sl_layer *L, int steps, uint64_t *rng, double *carry)
{
    double *next = malloc((size_t)L->n_carry * sizeof *next), *u = malloc((size_t)L->n_in * sizeof *u);
    sl_err err = { 0 };
    memset(carry, 0, (size_t)L->n_carry * sizeof *carry);
    for (int s = 0; s < steps; s++) {
        for (int64_t i = 0; i < L->n_in; i++) u[i] = sl_test_uniform(rng, -1.5, 1.5);
        assert_int_equal(sl_layer_step(L, carry, u, next, NULL, &err), SL_OK);
        memcpy(carry, next, (size_t)L->n_carry * sizeof *carry);
    }
    free(next);
    free(u);
}

static void test_linsys(void **state)
{
    (void)state;
    uint64_t rng = 99;
    for (size_t i = 0; i < SL_ARRAY_LEN(fixtures); i++) {
        char mp[256], rp[256];
        fixture_paths(fixtures[i], mp, rp);
        sl_model *m = open_model(mp);
        for (int l = 0; l < m->n_layers; l++) {
            const sl_layer *L = m->layers[l];
            assert_true(L->flags & SL_LAYER_MATRIX);
            double *carry = malloc((size_t)L->n_carry * sizeof *carry), *u = malloc((size_t)L->n_in * sizeof *u);
            walk(L, 5, &rng, carry);
            for (int64_t k = 0; k < L->n_in; k++) u[k] = sl_test_uniform(&rng, -1.5, 1.5);
            fprintf(stderr, "%s layer %d:\n", fixtures[i], l);
            assert_true(sl_test_check_linsys(L, carry, u, 1e-6, 1e-8) <= 1.0);
            /* y_sys = C x_next is the heads' output the forward computes. */
            sl_linsys ls;
            sl_linsys_init(&ls);
            sl_err err = { 0 };
            assert_int_equal(sl_layer_linsys(L, carry, u, SL_LS_ALL, &ls, &err), SL_OK);
            assert_int_equal(ls.A.kind, SL_OP_DLR);
            assert_int_equal(ls.B.kind, SL_OP_BLOCKS);
            assert_true(ls.exact);
            assert_string_equal(ls.u_name, "v");
            sl_linsys_free(&ls);
            free(carry);
            free(u);
        }
        sl_model_free(m);
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Closed-form eigenvalues of the structured A_t equal LAPACK's on the expanded matrix. */
/* Eigenvalues of a DLR operator from sl_op_eig, nb * bm values (the value side
** kp collapsed), block by block, ascending within a block. */
static int dlr_eigvals(const sl_op *op, double *ev, sl_err *err)
{
    sl_eig e;
    int rc = sl_op_eig(op, 0, &e, err);
    if (rc) return rc;
    int64_t *fill = calloc((size_t)op->nb, sizeof *fill);
    for (int64_t i = 0; i < e.n; i++) {
        int64_t b = e.block[i];
        for (int64_t k = 0; k < e.mult[i] / op->kp; k++) ev[b * op->bm + fill[b]++] = e.re[i];
    }
    for (int64_t b = 0; b < op->nb; b++) qsort(ev + b * op->bm, (size_t)op->bm, sizeof *ev, cmp_d);
    free(fill);
    sl_eig_free(&e);
    return SL_OK;
}

static void test_eigenvalues(void **state)
{
    (void)state;
    const char *const cfgs[][2] = {
        { "linear_attn", "{\"hidden_size\": 8, \"num_heads\": 2}" },
        { "retnet", "{\"hidden_size\": 8, \"num_heads\": 2, \"expand_v\": 1}" },
        { "gla", "{\"hidden_size\": 16, \"num_heads\": 2, \"expand_v\": 0.5}" },
        { "delta_net", "{\"hidden_size\": 8, \"num_heads\": 2}" },
        { "delta_net", "{\"hidden_size\": 8, \"num_heads\": 2, \"allow_neg_eigval\": true}" },
        { "gated_delta_net", "{\"hidden_size\": 8, \"num_heads\": 2, \"head_dim\": 4, \"expand_v\": 1}" },
        { "mlstm", "{\"hidden_size\": 8, \"num_heads\": 2, \"round_proj_up_to_multiple_of\": 4, \"proj_factor\": 1}" },
    };
    uint64_t rng = 3;
    for (size_t c = 0; c < SL_ARRAY_LEN(cfgs); c++) {
        sl_model *m = make_model(cfgs[c][0], cfgs[c][1], 21 + c, 20.0);
        const sl_layer *L = m->layers[0];
        double *carry = malloc((size_t)L->n_carry * sizeof *carry), *u = malloc((size_t)L->n_in * sizeof *u);
        walk(L, 3, &rng, carry);
        for (int64_t k = 0; k < L->n_in; k++) u[k] = sl_test_uniform(&rng, -1.5, 1.5);
        sl_linsys ls;
        sl_linsys_init(&ls);
        sl_err err = { 0 };
        assert_int_equal(sl_layer_linsys(L, carry, u, SL_LS_A, &ls, &err), SL_OK);
        const int64_t n = ls.A.rows, nb = ls.A.nb, bm = ls.A.bm, kp = ls.A.kp;
        double *A = malloc((size_t)(n * n) * sizeof *A), *wr = malloc((size_t)n * sizeof *wr),
               *wi = malloc((size_t)n * sizeof *wi), *ev = malloc((size_t)(nb * bm) * sizeof *ev),
               *cf = malloc((size_t)n * sizeof *cf);
        sl_op_to_dense(&ls.A, A);
        assert_int_equal(LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)n, A, (lapack_int)n, wr, wi, NULL, 1, NULL, 1), 0);
        assert_int_equal(dlr_eigvals(&ls.A, ev, &err), SL_OK);
        for (int64_t i = 0; i < nb * bm; i++)
            for (int64_t p = 0; p < kp; p++) cf[i * kp + p] = ev[i];
        qsort(wr, (size_t)n, sizeof *wr, cmp_d);
        qsort(cf, (size_t)n, sizeof *cf, cmp_d);
        fprintf(stderr, "%s %s (n = %lld): closed form vs dgeev: ", cfgs[c][0], cfgs[c][1], (long long)n);
        assert_all_close(cf, wr, (size_t)n, 1e-10, 1e-12);
        for (int64_t i = 0; i < n; i++) assert_true(fabs(wi[i]) < 1e-10);
        sl_linsys_free(&ls);
        free(A); free(wr); free(wi); free(ev); free(cf); free(carry); free(u);
        sl_model_free(m);
    }
}

/* allow_neg_eigval with beta = 2 (b_proj saturated) and a unit key: eigenvalue -1. */
static void test_negative_eigenvalue(void **state)
{
    (void)state;
    /* The operator alone: I - 2 k k^T with ||k|| = 1. */
    sl_op op;
    assert_int_equal(sl_op_dlr(&op, 1, 3, 2, 1), SL_OK);
    const double k[3] = { 0.6, 0.0, 0.8 };
    for (int i = 0; i < 3; i++) { op.d[i] = 1.0; op.w[i] = k[i]; }
    op.c[0] = 2.0;
    double ev[3];
    sl_err err = { 0 };
    assert_int_equal(dlr_eigvals(&op, ev, &err), SL_OK);
    assert_close(ev[0], -1.0, 0, 1e-15);
    assert_close(ev[1], 1.0, 0, 1e-15);
    assert_close(ev[2], 1.0, 0, 1e-15);
    sl_op_free(&op);
    /* Through delta_net: b_proj scaled so sigmoid(.) = 1 in double, beta = 2. */
    char mp[256], rp[256];
    fixture_paths("delta_net_neg", mp, rp);
    sl_model *m = open_model(mp);
    sl_tensor *bp = sl_tensors_find(m->tensors, "model.layers.0.attn.b_proj.weight");
    for (int64_t i = 0; i < bp->numel; i++) bp->data[i] = bp->data[i] >= 0 ? 1000.0f : 1000.0f;
    const sl_layer *L = m->layers[0];
    double *carry = calloc((size_t)L->n_carry, sizeof *carry), u[16];
    for (int i = 0; i < 16; i++) u[i] = 0.5;   /* b_proj rows all 1000: beta = 2 */
    sl_linsys ls;
    sl_linsys_init(&ls);
    assert_int_equal(sl_layer_linsys(L, carry, u, SL_LS_A, &ls, &err), SL_OK);
    double *e2 = malloc((size_t)(ls.A.nb * ls.A.bm) * sizeof *e2);
    assert_int_equal(dlr_eigvals(&ls.A, e2, &err), SL_OK);
    for (int64_t h = 0; h < ls.A.nb; h++) {
        assert_close(ls.A.c[h], 2.0, 1e-15, 0);
        /* fla's l2norm leaves ||k||^2 = s / (s + 1e-6), a hair below 1: the
        ** eigenvalue is exactly 1 - 2 ||k||^2, and -1 to within that hair. */
        double nk = 0;
        for (int64_t i = 0; i < ls.A.bm; i++) nk += ls.A.w[h * ls.A.bm + i] * ls.A.w[h * ls.A.bm + i];
        assert_close(e2[h * ls.A.bm], 1.0 - 2.0 * nk, 0, 1e-14);
        assert_close(e2[h * ls.A.bm], -1.0, 0, 1e-4);
        fprintf(stderr, "delta_net allow_neg_eigval, beta = 2: head %lld smallest eigenvalue %.9f\n", (long long)h,
                e2[h * ls.A.bm]);
    }
    free(e2);
    sl_linsys_free(&ls);
    free(carry);
    sl_model_free(m);
}

/* M V = the heads' output (float forward, recurrent and chunked) to 1e-5. */
static void test_implicit_attention(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_LEN(fixtures); i++) {
        char mp[256], rp[256];
        fixture_paths(fixtures[i], mp, rp);
        sl_model *m = open_model(mp);
        const sl_layer *L = m->layers[0];
        int64_t nu;
        double *u = sl_test_load_f64(rp, "u", &nu);
        float *uf = sl_test_load_f32(rp, "u", NULL);
        const int64_t T = nu / (2 * L->n_in), nsys = L->n_sys_in, H = L->blocks[0].shape[0], ds = nsys / H;
        /* The values u_s of every step (the system's input), from the linear system along the sequence. */
        double *V = malloc((size_t)(T * nsys) * sizeof *V), *carry = calloc((size_t)L->n_carry, sizeof *carry),
               *next = malloc((size_t)L->n_carry * sizeof *next);
        sl_err err = { 0 };
        for (int64_t t = 0; t < T; t++) {
            sl_linsys ls;
            sl_linsys_init(&ls);
            assert_int_equal(sl_layer_linsys(L, carry, u + t * L->n_in, SL_LS_B, &ls, &err), SL_OK);
            memcpy(V + t * nsys, ls.u, (size_t)nsys * sizeof *V);
            sl_linsys_free(&ls);
            assert_int_equal(sl_layer_step(L, carry, u + t * L->n_in, next, NULL, &err), SL_OK);
            memcpy(carry, next, (size_t)L->n_carry * sizeof *carry);
        }
        float *o = malloc((size_t)(T * nsys) * sizeof *o);
        double *M = malloc((size_t)(T * T) * sizeof *M), *mv = malloc((size_t)(T * ds) * sizeof *mv),
               *od = malloc((size_t)(T * ds) * sizeof *od);
        const int algos[2] = { SL_ALGO_RECURRENT, SL_ALGO_CHUNKED };
        for (int a = 0; a < 2; a++) {
            assert_int_equal(sl_mb_attention(L, T, uf, o, algos[a], 4, &err), SL_OK);
            for (int64_t h = 0; h < H; h++) {
                assert_int_equal(sl_implicit_attention(L, u, T, (int)h, M, &err), SL_OK);
                for (int64_t t = 0; t < T; t++)
                    for (int64_t p = 0; p < ds; p++) {
                        double s = 0;
                        for (int64_t r = 0; r <= t; r++) s += M[t * T + r] * V[r * nsys + h * ds + p];
                        for (int64_t r = t + 1; r < T; r++) assert_true(M[t * T + r] == 0.0);
                        mv[t * ds + p] = s;
                        od[t * ds + p] = o[t * nsys + h * ds + p];
                    }
                fprintf(stderr, "%s head %lld (%s): M V vs heads' output: ", fixtures[i], (long long)h,
                        a ? "chunked" : "recurrent");
                assert_all_close(mv, od, (size_t)(T * ds), 1e-5, 1e-5);
            }
        }
        free(u); free(uf); free(V); free(carry); free(next); free(o); free(M); free(mv); free(od);
        sl_model_free(m);
    }
}

/* The forward with every step's carry equals the plain forward. */
static void test_states_output(void **state)
{
    (void)state;
    for (size_t c = 0; c < SL_ARRAY_LEN(long_cfgs); c++) {
        sl_model *m = make_model(long_cfgs[c][0], long_cfgs[c][1], 5, 5.0);
        const sl_layer *L = m->layers[0];
        const int64_t B = 2, T = 7, n = B * T * L->n_in, nc = L->n_carry;
        float *x = malloc((size_t)n * sizeof *x), *y0 = malloc((size_t)n * sizeof *y0), *y1 = malloc((size_t)n * sizeof *y1);
        float *c0 = calloc((size_t)(B * nc), sizeof(float)), *c1 = calloc((size_t)(B * nc), sizeof(float));
        float *st = malloc((size_t)(B * T * nc) * sizeof *st);
        uint64_t r = 77;
        for (int64_t i = 0; i < n; i++) x[i] = (float)sl_test_uniform(&r, -1, 1);
        sl_err err = { 0 };
        sl_fwd f0 = { .B = B, .T = T, .x = x, .y = y0, .carry = c0, .algo = SL_ALGO_RECURRENT };
        sl_fwd f1 = { .B = B, .T = T, .x = x, .y = y1, .carry = c1, .states = st, .algo = SL_ALGO_RECURRENT };
        assert_int_equal(sl_layer_forward(L, &f0, &err), SL_OK);
        assert_int_equal(sl_layer_forward(L, &f1, &err), SL_OK);
        for (int64_t i = 0; i < n; i++) assert_close(y1[i], y0[i], 1e-6, 1e-6);
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < nc; k++) assert_close(st[(b * T + T - 1) * nc + k], c0[b * nc + k], 1e-6, 1e-6);
        free(x); free(y0); free(y1); free(c0); free(c1); free(st);
        sl_model_free(m);
    }
}

/* Running T1 steps then T2 more with the carry equals running T1 + T2 at once
** (state, short-conv history, RetNet's position, mLSTM's stabiliser). */
static void test_carry_continues(void **state)
{
    (void)state;
    for (size_t c = 0; c < SL_ARRAY_LEN(long_cfgs); c++) {
        sl_model *m = make_model(long_cfgs[c][0], long_cfgs[c][1], 9, 5.0);
        const sl_layer *L = m->layers[0];
        const int64_t B = 2, T1 = 37, T2 = 70, T = T1 + T2, hid = L->n_in, nc = L->n_carry;
        float *x = malloc((size_t)(B * T * hid) * sizeof *x), *y = malloc((size_t)(B * T * hid) * sizeof *y);
        float *xa = malloc((size_t)(B * T1 * hid) * sizeof *xa), *xb = malloc((size_t)(B * T2 * hid) * sizeof *xb);
        float *ya = malloc((size_t)(B * T1 * hid) * sizeof *ya), *yb = malloc((size_t)(B * T2 * hid) * sizeof *yb);
        float *c0 = calloc((size_t)(B * nc), sizeof(float)), *c1 = calloc((size_t)(B * nc), sizeof(float));
        uint64_t r = 31;
        for (int64_t i = 0; i < B * T * hid; i++) x[i] = (float)sl_test_uniform(&r, -1, 1);
        for (int64_t b = 0; b < B; b++) {
            memcpy(xa + b * T1 * hid, x + b * T * hid, (size_t)(T1 * hid) * sizeof *x);
            memcpy(xb + b * T2 * hid, x + (b * T + T1) * hid, (size_t)(T2 * hid) * sizeof *x);
        }
        const int algos[2] = { SL_ALGO_RECURRENT, SL_ALGO_CHUNKED };
        sl_err err = { 0 };
        for (int a = 0; a < 2; a++) {
            memset(c0, 0, (size_t)(B * nc) * sizeof(float));
            memset(c1, 0, (size_t)(B * nc) * sizeof(float));
            sl_fwd f = { .B = B, .T = T, .x = x, .y = y, .carry = c0, .algo = algos[a], .chunk = 16 };
            sl_fwd fa = { .B = B, .T = T1, .x = xa, .y = ya, .carry = c1, .algo = algos[a], .chunk = 16 };
            sl_fwd fb = { .B = B, .T = T2, .x = xb, .y = yb, .carry = c1, .algo = algos[a], .chunk = 16 };
            assert_int_equal(sl_layer_forward(L, &f, &err), SL_OK);
            assert_int_equal(sl_layer_forward(L, &fa, &err), SL_OK);
            assert_int_equal(sl_layer_forward(L, &fb, &err), SL_OK);
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T2; t++)
                    for (int64_t j = 0; j < hid; j++)
                        assert_close(yb[(b * T2 + t) * hid + j], y[(b * T + T1 + t) * hid + j], 1e-5, 1e-5);
            for (int64_t i = 0; i < B * nc; i++) assert_close(c1[i], c0[i], 1e-5, 1e-5);
        }
        fprintf(stderr, "%s: carry continues across calls (recurrent and chunked)\n", long_cfgs[c][0]);
        free(x); free(y); free(xa); free(xb); free(ya); free(yb); free(c0); free(c1);
        sl_model_free(m);
    }
}

/* The batch forward gives the same numbers whatever the threads and however
** it splits the work (each thread its own sequences when B >= threads, each
** stage split otherwise), for B = 1 .. 5, long enough for several blocks,
** every ISA the CPU has agreeing to 1e-5. */
static void test_threads_agree(void **state)
{
    (void)state;
    const int saved = sl_get_threads();
    for (size_t c = 0; c < SL_ARRAY_LEN(long_cfgs); c++) {
        sl_model *m = make_model(long_cfgs[c][0], long_cfgs[c][1], 17, 5.0);
        const sl_layer *L = m->layers[0];
        const int64_t Bmax = 5, T = 700, hid = L->n_in, nc = L->n_carry;
        float *x = malloc((size_t)(Bmax * T * hid) * sizeof *x), *y0 = malloc((size_t)(Bmax * T * hid) * sizeof *y0),
              *y1 = malloc((size_t)(Bmax * T * hid) * sizeof *y1);
        float *c0 = malloc((size_t)(Bmax * nc) * sizeof(float)), *c1 = malloc((size_t)(Bmax * nc) * sizeof(float));
        uint64_t r = 41;
        for (int64_t i = 0; i < Bmax * T * hid; i++) x[i] = (float)sl_test_uniform(&r, -1, 1);
        sl_err err = { 0 };
        double worst_isa = 0;
        for (int64_t B = 1; B <= Bmax; B++)
            for (int a = 0; a < 2; a++) {
                const int algo = a ? SL_ALGO_CHUNKED : SL_ALGO_RECURRENT;
                for (int64_t i = 0; i < B * nc; i++) c0[i] = c1[i] = (float)(0.01 * (double)(i % 7));
                sl_fwd f0 = { .B = B, .T = T, .x = x, .y = y0, .carry = c0, .algo = algo };
                sl_fwd f1 = { .B = B, .T = T, .x = x, .y = y1, .carry = c1, .algo = algo };
                sl_set_threads(1);
                assert_int_equal(sl_layer_forward(L, &f0, &err), SL_OK);
                sl_set_threads(2);
                assert_int_equal(sl_layer_forward(L, &f1, &err), SL_OK);
                if (memcmp(y0, y1, (size_t)(B * T * hid) * sizeof *y0)) {
                    int64_t i = 0;
                    while (y0[i] == y1[i]) i++;
                    fprintf(stderr, "%s B %lld algo %d: first difference at row %lld: %.9g vs %.9g\n", long_cfgs[c][0],
                            (long long)B, algo, (long long)(i / hid), y0[i], y1[i]);
                }
                assert_memory_equal(y0, y1, (size_t)(B * T * hid) * sizeof *y0);
                assert_memory_equal(c0, c1, (size_t)(B * nc) * sizeof *c0);
                /* the other instruction sets: the same to rounding */
                for (int isa = SL_ISA_GENERIC; isa < SL_ISA_AVX512 && B == 3; isa++) {
                    if (sl_kernels_set_isa((sl_isa)isa) != SL_OK) continue;
                    for (int64_t i = 0; i < B * nc; i++) c1[i] = (float)(0.01 * (double)(i % 7));
                    assert_int_equal(sl_layer_forward(L, &f1, &err), SL_OK);
                    sl_kernels_set_isa(SL_ISA_AUTO);
                    for (int64_t i = 0; i < B * T * hid; i++)
                        worst_isa = fmax(worst_isa, fabs((double)y1[i] - y0[i]) / (1e-5 + 1e-5 * fabs((double)y0[i])));
                }
            }
        fprintf(stderr, "%s: 1 and 2 threads identical for B = 1..5; other ISAs within %.3f of 1e-5\n", long_cfgs[c][0],
                worst_isa);
        assert_true(worst_isa <= 1.0);
        free(x); free(y0); free(y1); free(c0); free(c1);
        sl_model_free(m);
    }
    sl_set_threads(saved);
}

static void test_hf_folder(void **state)
{
    (void)state;
    sl_model *a = open_model("tests/fixtures/matrix/gla_hf"), *b = open_model("tests/fixtures/matrix/gla.model.safetensors");
    assert_string_equal(a->fam->name, "gla");
    float *u = sl_test_load_f32("tests/fixtures/matrix/gla.ref.safetensors", "u", NULL);
    float ya[2 * 9 * 16], yb[2 * 9 * 16];
    sl_err err = { 0 };
    assert_int_equal(sl_model_forward(a, 2, 9, u, ya, NULL, 0, &err), SL_OK);
    assert_int_equal(sl_model_forward(b, 2, 9, u, yb, NULL, 0, &err), SL_OK);
    assert_memory_equal(ya, yb, sizeof ya);
    free(u);
    sl_model_free(a);
    sl_model_free(b);
}

static void test_init_run_every_family(void **state)
{
    (void)state;
    char *in = sl_test_path("u.safetensors");
    int64_t shp[3] = { 2, 5, 16 };
    float u[160];
    for (int i = 0; i < 160; i++) u[i] = (float)(i % 7) / 7.0f - 0.4f;
    sl_st_tensor t = { "u", SL_DT_F32, 3, shp, u };
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(in, &t, 1, NULL, &err), SL_OK);
    for (size_t i = 0; i < SL_ARRAY_LEN(families); i++) {
        char *mp = sl_test_path("m.bin"), *op = sl_test_path("o.safetensors"), args[1024], *out = NULL;
        snprintf(args, sizeof args, "init --family %s --hidden-size 16 --num-heads 2 --num-hidden-layers 2 --seed 4 -o %s",
                 families[i], mp);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        free(out);
        snprintf(args, sizeof args, "run %s --input %s -o %s", mp, in, op);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        free(out);
        sl_model *m = open_model(mp);
        assert_string_equal(m->fam->name, families[i]);
        float y[160];
        assert_int_equal(sl_model_forward(m, 2, 5, u, y, NULL, 0, &err), SL_OK);
        int64_t ny;
        float *yw = sl_test_load_f32(op, "y", &ny);
        assert_int_equal(ny, 160);
        assert_memory_equal(y, yw, sizeof y);
        free(sl_test_load_f32(op, "S_n", NULL));
        free(yw);
        sl_model_free(m);
        snprintf(args, sizeof args, "run %s --input %s --algo chunked", mp, in);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        assert_non_null(strstr(out, "y [2, 5, 16]"));
        free(out);
        free(mp);
        free(op);
    }
    free(in);
}

static void test_bad_configs(void **state)
{
    (void)state;
    char *mp = sl_test_path("bad.bin"), args[512], *errs = NULL;
    snprintf(args, sizeof args, "init --family gla --hidden-size 16 --num-heads 3 -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "num_heads"));
    free(errs);
    snprintf(args, sizeof args, "init --family linear_attn --hidden-size 16 --feature-map hedgehog -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "hedgehog"));
    free(errs);
    snprintf(args, sizeof args, "init --family delta_net --num-heads 2 -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "hidden_size"));
    free(errs);
    free(mp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_vs_pytorch),
        cmocka_unit_test(test_step_vs_pytorch),
        cmocka_unit_test(test_recurrent_vs_chunked),
        cmocka_unit_test(test_linsys),
        cmocka_unit_test(test_eigenvalues),
        cmocka_unit_test(test_negative_eigenvalue),
        cmocka_unit_test(test_implicit_attention),
        cmocka_unit_test(test_states_output),
        cmocka_unit_test(test_carry_continues),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_hf_folder),
        cmocka_unit_test(test_init_run_every_family),
        cmocka_unit_test(test_bad_configs),
    };
    return cmocka_run_group_tests_name("matrix", tests, NULL, NULL);
}
