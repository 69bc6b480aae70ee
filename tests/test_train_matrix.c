/*
** Training of the matrix-state families (models/matblock_grad.c,
** kernels/matstate_backward.c): delta_net (allow_neg_eigval off and on, with
** and without the output gate) and gla (with and without short convolutions
** and the output gate).
**
**   - the scan backward of every form (no gate, scalar gate, vector gate,
**     delta, gated delta) against central differences of the recurrence;
**   - whole models (encoder, blocks, readout, loss) in double against central
**     finite differences (1e-6 relative) at random weights, inputs and losses;
**   - one layer from a non-zero start carry: dL/dx and dL/d(start carry)
**     against finite differences, the float layer backward against the
**     double one;
**   - the float training path against the double reference;
**   - gradients against torch.autograd (tests/fixtures/train/
**     make_train_matrix_fixtures.py);
**   - params_changed refreshes the cached conv weights; the trainer builds
**     these families with the encoder; a small DeltaNet learns parity.
*/
#include "sl_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "grad.h"
#include "kernels.h"
#include "matblock.h"
#include "matstate_backward.h"
#include "model.h"
#include "tasks.h"
#include "train.h"
#include "util.h"

/* ------------------------------------------------------------ cases */
typedef struct mcase {
    const char *label, *family, *cfg;
    sl_readout_kind readout;
    sl_loss_kind loss;
    int64_t K, C;
} mcase;

static const mcase mcases[] = {
    { "delta_net", "delta_net",
      "{\"hidden_size\": 8, \"num_heads\": 2, \"num_hidden_layers\": 2, \"conv_size\": 3, \"intermediate_size\": 8}",
      SL_READOUT_LINEAR, SL_LOSS_CE, 1, 3 },
    { "delta_net neg, gate", "delta_net",
      "{\"hidden_size\": 8, \"num_heads\": 2, \"num_hidden_layers\": 2, \"conv_size\": 3, \"intermediate_size\": 8,"
      " \"allow_neg_eigval\": true, \"use_gate\": true}",
      SL_READOUT_MLP, SL_LOSS_CE, 2, 2 },
    { "delta_net neg, no conv", "delta_net",
      "{\"hidden_size\": 8, \"num_heads\": 1, \"use_short_conv\": false, \"intermediate_size\": 12,"
      " \"allow_neg_eigval\": true}",
      SL_READOUT_LINEAR, SL_LOSS_MSE, 1, 1 },
    { "gla", "gla",
      "{\"hidden_size\": 8, \"num_heads\": 2, \"num_hidden_layers\": 2, \"gate_low_rank_dim\": 3,"
      " \"intermediate_size\": 8}",
      SL_READOUT_LINEAR, SL_LOSS_CE, 1, 3 },
    { "gla conv, no gate", "gla",
      "{\"hidden_size\": 8, \"num_heads\": 2, \"gate_low_rank_dim\": 2, \"use_short_conv\": true, \"conv_size\": 2,"
      " \"use_output_gate\": false, \"intermediate_size\": 8, \"feature_map\": \"silu\"}",
      SL_READOUT_MLP, SL_LOSS_MSE, 2, 1 },
};

/* Random weights that exercise the nonlinearities (norm weights near 1). */
static void randomise(sl_tensors *ts, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < ts->n; i++) {
        sl_tensor *t = &ts->t[i];
        const int norm = strstr(t->name, "norm") != NULL;
        const double a = strstr(t->name, "conv1d") ? 0.6 : strstr(t->name, "gk_proj") ? 0.8 : 0.45;
        for (int64_t k = 0; k < t->numel; k++)
            t->data[k] = (float)(norm ? sl_test_uniform(&s, 0.8, 1.2) : sl_test_uniform(&s, -a, a));
    }
}

/* A model of the case with an encoder from F features and a readout, at
** random weights. */
static sl_model *make_model(const mcase *c, int64_t F, uint64_t seed, sl_readout *ro)
{
    sl_err err = { 0 };
    const sl_family *fam = sl_family_find(c->family);
    assert_non_null(fam);
    json_t *cfg = json_loads(c->cfg, 0, NULL);
    assert_non_null(cfg);
    sl_tensors *ts = sl_tensors_new();
    if (fam->init(cfg, seed, ts, &err)) fprintf(stderr, "%s\n", err.msg);
    sl_model *m1 = NULL;
    assert_int_equal(sl_model_from_tensors(ts, fam->name, cfg, &m1, &err), SL_OK);
    sl_tensors *ts2 = sl_tensors_new();
    for (size_t i = 0; i < m1->tensors->n; i++) {
        const sl_tensor *t = &m1->tensors->t[i];
        assert_int_equal(sl_tensors_add(ts2, t->name, t->ndim, t->shape, t->data, NULL, &err), SL_OK);
    }
    const int64_t Cr = c->loss == SL_LOSS_MSE ? 1 : c->C;
    assert_int_equal(sl_readout_init(ts2, c->readout, m1->n_out, 5, c->K * Cr, seed + 11, &err), SL_OK);
    assert_int_equal(sl_encoder_init(ts2, F, m1->n_in, seed + 13, &err), SL_OK);
    randomise(ts2, seed * 31 + 7);
    sl_model *m = NULL;
    if (sl_model_from_tensors(ts2, fam->name, m1->config, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    assert_int_equal(sl_readout_bind(ro, m, c->readout, c->K, c->C, c->loss, &err), SL_OK);
    assert_int_equal(ro->n_feat, F);
    assert_true(sl_model_trainable(m));
    assert_int_equal(sl_model_params_changed(m, &err), SL_OK);
    sl_model_free(m1);
    json_decref(cfg);
    return m;
}

static void make_data(const mcase *c, int64_t B, int64_t T, int64_t F, uint64_t seed, float **u, float **tg, float **mk)
{
    const int64_t K = c->K;
    *u = malloc((size_t)(B * T * F) * sizeof **u);
    *tg = malloc((size_t)(B * T * K) * sizeof **tg);
    *mk = malloc((size_t)(B * T * K) * sizeof **mk);
    uint64_t s = seed;
    for (int64_t i = 0; i < B * T * F; i++) (*u)[i] = (float)sl_test_uniform(&s, -1.5, 1.5);
    for (int64_t i = 0; i < B * T * K; i++) {
        (*tg)[i] = c->loss == SL_LOSS_MSE ? (float)sl_test_uniform(&s, -1, 1) : (float)(int)sl_test_uniform(&s, 0, (double)c->C);
        (*mk)[i] = sl_test_uniform(&s, 0, 1) < 0.7 ? 1.0f : 0.0f;
    }
    (*mk)[0] = 1.0f;
}

static double loss_at(sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                      const float *mk)
{
    sl_err err = { 0 };
    double L = 0;
    /* The forward caches the concatenated conv weights: refresh them, as the
    ** trainer does after every update. */
    if (sl_model_params_changed(m, &err) || sl_loss_grad_f64(m, ro, B, T, u, tg, mk, NULL, &L, &err))
        fprintf(stderr, "%s\n", err.msg);
    return L;
}

/* Central difference (steps the float parameter holds exactly) with one
** Richardson extrapolation: error O(h^4). */
static double fd(sl_model *m, const sl_readout *ro, float *p, int64_t B, int64_t T, const float *u, const float *tg,
                 const float *mk)
{
    const float p0 = *p;
    double d[2];
    for (int r = 0; r < 2; r++) {
        const double h = (r ? 0.5 : 1.0) * 2e-4 * fmax(1.0, fabs((double)p0));
        float pp = (float)((double)p0 + h), pm = (float)((double)p0 - h);
        *p = pp;
        double fp = loss_at(m, ro, B, T, u, tg, mk);
        *p = pm;
        double fm = loss_at(m, ro, B, T, u, tg, mk);
        d[r] = (fp - fm) / ((double)pp - (double)pm);
    }
    *p = p0;
    loss_at(m, ro, B, T, u, tg, mk);
    return (4.0 * d[1] - d[0]) / 3.0;
}

/* ------------------------------------------------------------ whole models vs finite differences */
static void test_model_grad_fd(void **state)
{
    (void)state;
    const int64_t B = 2, T = 6, F = 3;
    double worst_all = 0;
    for (size_t ci = 0; ci < SL_ARRAY_LEN(mcases); ci++) {
        const mcase *c = &mcases[ci];
        sl_readout ro;
        sl_model *m = make_model(c, F, 100 + ci, &ro);
        float *u, *tg, *mk;
        make_data(c, B, T, F, 200 + ci, &u, &tg, &mk);
        sl_grads g;
        sl_err err = { 0 };
        assert_int_equal(sl_grads_init(&g, m->tensors, 0, 1, &err), SL_OK);
        double L;
        assert_int_equal(sl_loss_grad_f64(m, &ro, B, T, u, tg, mk, &g, &L, &err), SL_OK);
        double worst = 0, gmax = 0;
        size_t np = 0;
        for (size_t i = 0; i < m->tensors->n; i++) {
            sl_tensor *t = &m->tensors->t[i];
            double tmax = 0;
            for (int64_t k = 0; k < t->numel; k++) {
                const double a = g.f64[i][k], d = fd(m, &ro, &t->data[k], B, T, u, tg, mk);
                const double rel = fabs(a - d) / fmax(fabs(d), 1e-4);
                tmax = fmax(tmax, fabs(d));
                if (rel > 1e-6)
                    fprintf(stderr, "%s: %s[%lld]: backward %.12g, finite differences %.12g (rel %.2g)\n", c->label,
                            t->name, (long long)k, a, d, rel);
                worst = fmax(worst, rel);
                np++;
            }
            /* Every tensor takes part in the loss. */
            if (tmax == 0) fprintf(stderr, "%s: %s has a zero gradient\n", c->label, t->name);
            assert_true(tmax > 0);
            gmax = fmax(gmax, tmax);
        }
        fprintf(stderr, "%-24s loss %.6f, %zu parameters, max |grad| %.3g, worst relative error vs FD %.2e\n", c->label,
                L, np, gmax, worst);
        assert_true(worst <= 1e-6);
        worst_all = fmax(worst_all, worst);
        sl_grads_free(&g);
        free(u); free(tg); free(mk);
        sl_model_free(m);
    }
    fprintf(stderr, "matrix-state gradients vs finite differences: worst relative error %.2e\n", worst_all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_grad_fd),
    };
    return cmocka_run_group_tests_name("train_matrix", tests, NULL, NULL);
}
