/*
** Synthetic tasks and training: every trainable family's gradients against
** central finite differences in double (1e-6 relative) and against
** torch.autograd (tests/fixtures/train/make_train_fixtures.py), the float
** backward against the double one, AdamW's first steps against their closed
** form, the learning-rate schedule and the gradient noise, the task
** generators' known outputs, the data-file round trip, an LSTM learning
** running parity, and bit-identical models from the same seed.
*/
#include "sl_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "grad.h"
#include "kernels.h"
#include "model.h"
#include "tasks.h"
#include "train.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */
typedef struct case_spec {
    const char *label, *family, *cfg;   /* cfg: JSON of the family options */
    sl_readout_kind readout;
    sl_loss_kind loss;
    int64_t K, C;
} case_spec;

static const case_spec cases[] = {
    { "rnn tanh, linear, ce", "rnn", "{\"hidden_size\": 5, \"num_layers\": 2}", SL_READOUT_LINEAR, SL_LOSS_CE, 2, 3 },
    { "rnn relu, mlp, mse", "rnn", "{\"hidden_size\": 5, \"nonlinearity\": \"relu\"}", SL_READOUT_MLP, SL_LOSS_MSE, 2, 1 },
    { "leaky rnn, linear, ce", "rnn", "{\"hidden_size\": 5, \"leaky\": true, \"tau\": 2.5, \"num_layers\": 2}",
      SL_READOUT_LINEAR, SL_LOSS_CE, 1, 2 },
    { "lstm, linear, ce", "lstm", "{\"hidden_size\": 4, \"num_layers\": 2}", SL_READOUT_LINEAR, SL_LOSS_CE, 1, 3 },
    { "lstm, mlp, mse", "lstm", "{\"hidden_size\": 4}", SL_READOUT_MLP, SL_LOSS_MSE, 3, 1 },
    { "gru, linear, ce", "gru", "{\"hidden_size\": 4, \"num_layers\": 2}", SL_READOUT_LINEAR, SL_LOSS_CE, 2, 2 },
    { "gru, mlp, ce, no bias", "gru", "{\"hidden_size\": 4, \"bias\": false}", SL_READOUT_MLP, SL_LOSS_CE, 1, 4 },
};

/* A model of the case's family with input size F and a readout, at random
** weights (the family's init with seed, tau spread over [1.5, 5]). */
static sl_model *make_model(const case_spec *c, int64_t F, uint64_t seed, sl_readout *ro)
{
    sl_err err = { 0 };
    const sl_family *fam = sl_family_find(c->family);
    assert_non_null(fam);
    json_t *cfg = json_loads(c->cfg, 0, NULL);
    json_object_set_new(cfg, "input_size", json_integer(F));
    sl_tensors *ts = sl_tensors_new();
    assert_int_equal(fam->init(cfg, seed, ts, &err), SL_OK);
    uint64_t st = seed * 7 + 1;
    for (size_t i = 0; i < ts->n; i++)
        if (strstr(ts->t[i].name, "tau"))
            for (int64_t k = 0; k < ts->t[i].numel; k++) ts->t[i].data[k] = (float)sl_test_uniform(&st, 1.5, 5.0);
    sl_model *m1 = NULL;
    assert_int_equal(sl_model_from_tensors(ts, fam->name, cfg, &m1, &err), SL_OK);
    sl_tensors *ts2 = sl_tensors_new();
    for (size_t i = 0; i < m1->tensors->n; i++) {
        const sl_tensor *t = &m1->tensors->t[i];
        assert_int_equal(sl_tensors_add(ts2, t->name, t->ndim, t->shape, t->data, NULL, &err), SL_OK);
    }
    const int64_t Cr = c->loss == SL_LOSS_MSE ? 1 : c->C;
    assert_int_equal(sl_readout_init(ts2, c->readout, m1->n_out, 6, c->K * Cr, seed + 11, &err), SL_OK);
    sl_model *m = NULL;
    if (sl_model_from_tensors(ts2, fam->name, m1->config, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    assert_int_equal(sl_readout_bind(ro, m, c->readout, c->K, c->C, c->loss, &err), SL_OK);
    sl_model_free(m1);
    json_decref(cfg);
    return m;
}

/* Random inputs, targets and a random mask (never all zero). */
static void make_data(const case_spec *c, int64_t B, int64_t T, int64_t F, uint64_t seed, float **u, float **tg,
                      float **mk)
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

static double loss_at(const sl_model *m, const sl_readout *ro, int64_t B, int64_t T, const float *u, const float *tg,
                      const float *mk)
{
    sl_err err = { 0 };
    double L = 0;
    if (sl_loss_grad_f64(m, ro, B, T, u, tg, mk, NULL, &L, &err)) fprintf(stderr, "%s\n", err.msg);
    return L;
}

/* Central difference with steps the float parameter can hold exactly, and
** one Richardson extrapolation (h, h/2): error O(h^4). */
static double fd(sl_model *m, const sl_readout *ro, float *p, int64_t B, int64_t T, const float *u, const float *tg,
                 const float *mk)
{
    const float p0 = *p;
    double d[2];
    for (int r = 0; r < 2; r++) {
        const double h = (r ? 0.5 : 1.0) * 2e-3 * fmax(1.0, fabs((double)p0));
        float pp = (float)((double)p0 + h), pm = (float)((double)p0 - h);
        *p = pp;
        double fp = loss_at(m, ro, B, T, u, tg, mk);
        *p = pm;
        double fm = loss_at(m, ro, B, T, u, tg, mk);
        d[r] = (fp - fm) / ((double)pp - (double)pm);
    }
    *p = p0;
    return (4.0 * d[1] - d[0]) / 3.0;
}

/* ------------------------------------------------------------ gradients */
static void test_grad_finite_differences(void **state)
{
    (void)state;
    const int64_t B = 2, T = 6, F = 3;
    double worst_all = 0;
    for (size_t ci = 0; ci < SL_ARRAY_LEN(cases); ci++) {
        const case_spec *c = &cases[ci];
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
        size_t nparam = 0;
        for (size_t i = 0; i < m->tensors->n; i++) {
            sl_tensor *t = &m->tensors->t[i];
            for (int64_t k = 0; k < t->numel; k++) {
                double a = g.f64[i][k], b = fd(m, &ro, &t->data[k], B, T, u, tg, mk);
                double rel = fabs(a - b) / fmax(fabs(b), 1e-4);
                gmax = fmax(gmax, fabs(b));
                if (rel > worst) worst = rel;
                if (rel > 1e-6)
                    fprintf(stderr, "%s: %s[%lld]: backward %.12g, finite differences %.12g (rel %.2g)\n", c->label,
                            t->name, (long long)k, a, b, rel);
                nparam++;
            }
        }
        fprintf(stderr, "%-24s loss %.6f, %zu parameters, max |grad| %.3g, worst relative error vs FD %.2e\n", c->label,
                L, nparam, gmax, worst);
        assert_true(worst <= 1e-6);
        worst_all = fmax(worst_all, worst);
        sl_grads_free(&g);
        free(u); free(tg); free(mk);
        sl_model_free(m);
    }
    fprintf(stderr, "gradients vs finite differences: worst relative error %.2e over all families\n", worst_all);
}

/* The float32 training path gives the double reference's gradients. */
static void test_grad_float_vs_double(void **state)
{
    (void)state;
    const int64_t B = 5, T = 17, F = 3;
    for (size_t ci = 0; ci < SL_ARRAY_LEN(cases); ci++) {
        const case_spec *c = &cases[ci];
        sl_readout ro;
        sl_model *m = make_model(c, F, 300 + ci, &ro);
        float *u, *tg, *mk;
        make_data(c, B, T, F, 400 + ci, &u, &tg, &mk);
        sl_grads g;
        sl_err err = { 0 };
        assert_int_equal(sl_grads_init(&g, m->tensors, 1, 1, &err), SL_OK);
        double L64;
        sl_metrics mt;
        assert_int_equal(sl_loss_grad_f64(m, &ro, B, T, u, tg, mk, &g, &L64, &err), SL_OK);
        assert_int_equal(sl_loss_grad_f32(m, &ro, B, T, u, tg, mk, &g, &mt, &err), SL_OK);
        assert_close(mt.loss, L64, 1e-5, 1e-7);
        double num = 0, den = 0, worst = 0;
        for (size_t i = 0; i < g.n; i++)
            for (int64_t k = 0; k < m->tensors->t[i].numel; k++) {
                double a = g.f32[i][k], b = g.f64[i][k];
                num += (a - b) * (a - b);
                den += b * b;
                worst = fmax(worst, fabs(a - b));
            }
        double rel = sqrt(num / den);
        fprintf(stderr, "%-24s float vs double gradient: relative L2 error %.2e, max abs %.2e\n", c->label, rel, worst);
        assert_true(rel < 1e-5);
        sl_grads_free(&g);
        free(u); free(tg); free(mk);
        sl_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_finite_differences),
        cmocka_unit_test(test_grad_float_vs_double),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
