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
#include "grad_check.h"

#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "grad.h"
#include "input.h"
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
    /* A hidden layer wider than 8 (F > 8) takes the readout's BLAS path, narrower its loops. */
    assert_int_equal(sl_readout_init(ts2, c->readout, m1->n_out, F > 8 ? 12 : 6, c->K * Cr, seed + 11, &err), SL_OK);
    sl_model *m = NULL;
    if (sl_model_from_tensors(ts2, fam->name, m1->config, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    assert_int_equal(sl_readout_bind(ro, m, c->readout, c->K, c->C, c->loss, &err), SL_OK);
    sl_model_free(m1);
    json_decref(cfg);
    return m;
}

/* ------------------------------------------------------------ gradients */
static void test_grad_finite_differences(void **state)
{
    (void)state;
    const int64_t B = 2, T = 6;
    double worst_all = 0;
    /* Every case with 3 inputs (the backward's loop path for few inputs),
    ** then lstm and gru with 10 (its BLAS path). */
    for (size_t ci = 0; ci < SL_ARRAY_LEN(cases) + 2; ci++) {
        const case_spec *c = ci < SL_ARRAY_LEN(cases) ? &cases[ci] : &cases[ci == SL_ARRAY_LEN(cases) ? 3 : 5];
        const int64_t F = ci < SL_ARRAY_LEN(cases) ? 3 : 10;
        sl_readout ro;
        sl_model *m = make_model(c, F, 100 + ci, &ro);
        float *u, *tg, *mk;
        sl_test_train_data(B, T, F, c->K, c->C, c->loss, 200 + ci, &u, &tg, &mk);
        char label[64];
        snprintf(label, sizeof label, "%s, F=%lld", c->label, (long long)F);
        sl_test_fd_result r;
        sl_test_grad_vs_fd(m, &ro, B, T, u, tg, mk, 2e-3, 1e-6, label, &r);
        assert_true(r.worst <= 1e-6);
        worst_all = fmax(worst_all, r.worst);
        free(u); free(tg); free(mk);
        sl_model_free(m);
    }
    fprintf(stderr, "gradients vs finite differences: worst relative error %.2e over all families\n", worst_all);
}

/* The float32 training path gives the double reference's gradients. */
static void test_grad_float_vs_double(void **state)
{
    (void)state;
    const int64_t B = 5, T = 17;
    for (size_t ci = 0; ci < 2 * SL_ARRAY_LEN(cases); ci++) {
        const case_spec *c = &cases[ci % SL_ARRAY_LEN(cases)];
        const int64_t F = ci < SL_ARRAY_LEN(cases) ? 3 : 12;
        sl_readout ro;
        sl_model *m = make_model(c, F, 300 + ci, &ro);
        float *u, *tg, *mk;
        sl_test_train_data(B, T, F, c->K, c->C, c->loss, 400 + ci, &u, &tg, &mk);
        sl_grads g;
        double L64;
        sl_metrics mt;
        sl_test_grads_both(m, &ro, B, T, u, tg, mk, &g, &L64, &mt);
        double num = 0, den = 0, worst = 0;
        for (size_t i = 0; i < g.n; i++)
            for (int64_t k = 0; k < m->tensors->t[i].numel; k++) {
                double a = g.f32[i][k], b = g.f64[i][k];
                num += (a - b) * (a - b);
                den += b * b;
                worst = fmax(worst, fabs(a - b));
            }
        double rel = sqrt(num / den);
        fprintf(stderr, "%-24s F=%-2lld float vs double gradient: relative L2 error %.2e, max abs %.2e\n", c->label,
                (long long)F, rel, worst);
        assert_true(rel < 1e-5);
        sl_grads_free(&g);
        free(u); free(tg); free(mk);
        sl_model_free(m);
    }
}

/* The one-pass readout splits rows over threads (large batches): 1 and 2
** threads give the same loss and gradients up to float rounding, and the
** same thread count the same bits. */
static void test_readout_threads(void **state)
{
    (void)state;
    const case_spec c = { "lstm 32, linear, ce", "lstm", "{\"hidden_size\": 32}", SL_READOUT_LINEAR, SL_LOSS_CE, 2, 3 };
    const int64_t B = 48, T = 40, F = 2;   /* rows * hidden * outputs >= 2^18: the threaded path */
    const int saved = sl_get_threads();
    sl_readout ro;
    sl_model *m = make_model(&c, F, 7, &ro);
    float *u, *tg, *mk;
    sl_test_train_data(B, T, F, c.K, c.C, c.loss, 8, &u, &tg, &mk);
    sl_grads g[3];
    sl_metrics mt[3];
    sl_err err = { 0 };
    for (int r = 0; r < 3; r++) {
        sl_set_threads(r == 0 ? 1 : 2);
        assert_int_equal(sl_grads_init(&g[r], m->tensors, 1, 0, &err), SL_OK);
        assert_int_equal(sl_loss_grad_f32(m, &ro, B, T, u, tg, mk, &g[r], &mt[r], &err), SL_OK);
    }
    assert_close(mt[1].loss, mt[0].loss, 1e-6, 0);
    assert_close(mt[1].acc, mt[0].acc, 1e-12, 0);
    double worst = 0;
    for (size_t i = 0; i < g[0].n; i++) {
        const int64_t n = m->tensors->t[i].numel;
        assert_memory_equal(g[1].f32[i], g[2].f32[i], (size_t)n * sizeof(float));
        double num = 0, den = 0;
        for (int64_t k = 0; k < n; k++) {
            num += ((double)g[1].f32[i][k] - g[0].f32[i][k]) * ((double)g[1].f32[i][k] - g[0].f32[i][k]);
            den += (double)g[0].f32[i][k] * g[0].f32[i][k];
        }
        worst = fmax(worst, sqrt(num / fmax(den, 1e-30)));
    }
    fprintf(stderr, "readout 1 vs 2 threads: loss %.9f vs %.9f, worst tensor relative L2 %.2e\n", mt[0].loss, mt[1].loss,
            worst);
    assert_true(worst < 1e-5);
    for (int r = 0; r < 3; r++) sl_grads_free(&g[r]);
    free(u); free(tg); free(mk);
    sl_model_free(m);
    sl_set_threads(saved);
}

/* Loss and every gradient against torch.autograd (float64) on the committed
** fixtures: the double path to 1e-10, the float path to 1e-5 (relative L2). */
static void test_grad_vs_autograd(void **state)
{
    (void)state;
    static const char *const names[] = { "rnn_tanh", "rnn_relu_mlp_mse", "leaky_rnn", "lstm", "gru_mlp" };
    for (size_t f = 0; f < SL_ARRAY_LEN(names); f++) sl_test_grad_vs_autograd(names[f], 7, 0, 1e-5);
    /* With a linear readout the model's backward takes dL/dy as dz W: the LSTM's fused
    ** backward forms it itself (above, on AVX-512); without that kernel the layer forms
    ** it first (torch_rnn.c), and for the RNN above the model does (grad.c). */
    if (sl_kernels_set_isa(SL_ISA_AVX2) == SL_OK) {
        sl_test_grad_vs_autograd("lstm", 7, 0, 1e-5);
        sl_kernels_set_isa(SL_ISA_AUTO);
    }
}

/* ------------------------------------------------------------ optimiser */
/* AdamW's first two steps against the closed form (PyTorch's AdamW). */
static void test_adamw_closed_form(void **state)
{
    (void)state;
    sl_err err = { 0 };
    sl_tensors *ts = sl_tensors_new();
    int64_t s2[2] = { 2, 2 }, s1[1] = { 3 };
    const float w0[4] = { 0.5f, -1.0f, 2.0f, 0.0f }, b0[3] = { 0.1f, 0.2f, -0.3f };
    assert_int_equal(sl_tensors_add(ts, "w", 2, s2, w0, NULL, &err), SL_OK);
    assert_int_equal(sl_tensors_add(ts, "b", 1, s1, b0, NULL, &err), SL_OK);
    sl_grads g;
    sl_adamw a;
    assert_int_equal(sl_grads_init(&g, ts, 1, 0, &err), SL_OK);
    assert_int_equal(sl_adamw_init(&a, &g, &err), SL_OK);
    const float g1w[4] = { 0.2f, -0.4f, 1e-3f, 0.0f }, g1b[3] = { 1.0f, -2.0f, 0.5f };
    const float g2w[4] = { -0.1f, 0.3f, 2e-3f, 1.0f }, g2b[3] = { 0.0f, 1.0f, -0.5f };
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    const unsigned char decay[2] = { 1, 0 };
    memcpy(g.f32[0], g1w, sizeof g1w);
    memcpy(g.f32[1], g1b, sizeof g1b);
    sl_adamw_step(&a, ts, &g, lr, b1, b2, eps, wd, decay);
    /* Step 1: m_hat = g, v_hat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps). */
    for (int k = 0; k < 4; k++) {
        double e = (double)w0[k] * (1 - lr * wd) - lr * g1w[k] / (fabs((double)g1w[k]) + eps);
        assert_close(ts->t[0].data[k], e, 1e-6, 1e-8);
    }
    for (int k = 0; k < 3; k++) assert_close(ts->t[1].data[k], (double)b0[k] - lr * g1b[k] / (fabs((double)g1b[k]) + eps), 1e-6, 1e-8);
    /* Step 2 with bias correction. */
    float p1w[4];
    memcpy(p1w, ts->t[0].data, sizeof p1w);
    memcpy(g.f32[0], g2w, sizeof g2w);
    memcpy(g.f32[1], g2b, sizeof g2b);
    sl_adamw_step(&a, ts, &g, lr, b1, b2, eps, wd, decay);
    for (int k = 0; k < 4; k++) {
        double m = (1 - b1) * (b1 * g1w[k] + g2w[k]), v = (1 - b2) * (b2 * (double)g1w[k] * g1w[k] + (double)g2w[k] * g2w[k]);
        double mh = m / (1 - b1 * b1), vh = v / (1 - b2 * b2);
        double e = (double)p1w[k] * (1 - lr * wd) - lr * mh / (sqrt(vh) + eps);
        assert_close(ts->t[0].data[k], e, 1e-6, 1e-8);
    }
    /* Global norm and clipping. */
    double n = sl_grads_norm(&g), e = 0;
    for (int k = 0; k < 4; k++) e += (double)g2w[k] * g2w[k];
    for (int k = 0; k < 3; k++) e += (double)g2b[k] * g2b[k];
    assert_close(n, sqrt(e), 1e-12, 0);
    sl_grads_scale(&g, 0.5);
    assert_close(sl_grads_norm(&g), 0.5 * sqrt(e), 1e-7, 0);
    sl_adamw_free(&a);
    sl_grads_free(&g);
    sl_tensors_free(ts);
}

/* The vectorised AdamW gives the scalar loop's bits: three steps on a tensor
** large enough to be split over threads, with a tail, on every ISA, 1 and 2
** threads. */
static void test_adamw_isas_agree(void **state)
{
    (void)state;
    static const sl_isa isas[] = { SL_ISA_GENERIC, SL_ISA_AVX2, SL_ISA_AVX512 };
    const int64_t n = 70001;
    const int saved = sl_get_threads();
    float *ref = NULL;
    for (size_t ii = 0; ii < SL_ARRAY_LEN(isas); ii++)
        for (int th = 1; th <= 2; th++) {
            if (sl_kernels_set_isa(isas[ii]) != SL_OK) continue;
            sl_set_threads(th);
            sl_err err = { 0 };
            sl_tensors *ts = sl_tensors_new();
            int64_t sh[1] = { n };
            sl_tensor *t;
            assert_int_equal(sl_tensors_add(ts, "w", 1, sh, NULL, &t, &err), SL_OK);
            uint64_t rs = 99;
            for (int64_t k = 0; k < n; k++) t->data[k] = (float)sl_test_uniform(&rs, -1, 1);
            sl_grads g;
            sl_adamw a;
            assert_int_equal(sl_grads_init(&g, ts, 1, 0, &err), SL_OK);
            assert_int_equal(sl_adamw_init(&a, &g, &err), SL_OK);
            const unsigned char decay[1] = { 1 };
            for (int s = 0; s < 3; s++) {
                for (int64_t k = 0; k < n; k++) g.f32[0][k] = (float)sl_test_uniform(&rs, -1e-2, 1e-2);
                sl_adamw_step(&a, ts, &g, 1e-3, 0.9, 0.999, 1e-8, 0.01, decay);
            }
            if (!ref) {
                ref = malloc((size_t)(3 * n) * sizeof *ref);
                memcpy(ref, t->data, (size_t)n * sizeof *ref);
                memcpy(ref + n, a.m[0], (size_t)n * sizeof *ref);
                memcpy(ref + 2 * n, a.v[0], (size_t)n * sizeof *ref);
            } else {
                assert_memory_equal(ref, t->data, (size_t)n * sizeof *ref);
                assert_memory_equal(ref + n, a.m[0], (size_t)n * sizeof *ref);
                assert_memory_equal(ref + 2 * n, a.v[0], (size_t)n * sizeof *ref);
            }
            sl_adamw_free(&a);
            sl_grads_free(&g);
            sl_tensors_free(ts);
        }
    free(ref);
    sl_kernels_set_isa(SL_ISA_AUTO);
    sl_set_threads(saved);
}

/* Warm-up, cosine decay, constant schedule and the annealed noise scale. */
static void test_schedule_and_noise(void **state)
{
    (void)state;
    sl_train_opts o;
    sl_err err = { 0 };
    json_t *cfg = json_pack("{s:I, s:f, s:f, s:I, s:f, s:f}", "steps", (json_int_t)110, "lr", 1e-2, "lr_min", 1e-4,
                            "warmup", (json_int_t)10, "grad_noise", 0.3, "noise_gamma", 0.55);
    assert_int_equal(sl_train_opts_from_json(cfg, &o, &err), SL_OK);
    assert_close(sl_lr_at(&o, 0), 1e-3, 1e-12, 0);           /* (0 + 1) / 10 of lr */
    assert_close(sl_lr_at(&o, 9), 1e-2, 1e-12, 0);
    assert_close(sl_lr_at(&o, 10), 1e-2, 1e-12, 0);          /* cosine starts at lr */
    assert_close(sl_lr_at(&o, 109), 1e-4, 1e-12, 0);         /* and ends at lr_min */
    assert_close(sl_lr_at(&o, 10 + 99 / 2.0 > 59 ? 59 : 59), 1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + cos(M_PI * 49.0 / 99.0)), 1e-12, 0);
    /* Neelakantan et al.: sigma_t^2 = eta / (1 + t)^gamma. */
    assert_close(sl_noise_sigma(&o, 0), sqrt(0.3), 1e-12, 0);
    assert_close(sl_noise_sigma(&o, 99), sqrt(0.3 / pow(100.0, 0.55)), 1e-12, 0);
    /* Defaults written back, unknown keys refused, constant schedule. */
    assert_int_equal(json_integer_value(json_object_get(cfg, "batch")), 32);
    json_object_set_new(cfg, "schedule", json_string("constant"));
    assert_int_equal(sl_train_opts_from_json(cfg, &o, &err), SL_OK);
    assert_close(sl_lr_at(&o, 100), 1e-2, 1e-12, 0);
    json_object_set_new(cfg, "bogus", json_integer(1));
    assert_int_equal(sl_train_opts_from_json(cfg, &o, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "bogus"));
    json_decref(cfg);
}

/* The leaky RNN keeps tau >= 1 and refreshes 1/tau after an update. */
static void test_tau_projection(void **state)
{
    (void)state;
    sl_readout ro;
    sl_model *m = make_model(&cases[2], 3, 7, &ro);
    sl_tensor *tau = sl_tensors_find(m->tensors, "tau_l0");
    assert_non_null(tau);
    tau->data[0] = 0.25f;
    tau->data[1] = 3.0f;
    sl_err err = { 0 };
    assert_int_equal(sl_model_params_changed(m, &err), SL_OK);
    assert_close(tau->data[0], 1.0, 0, 0);
    assert_close(tau->data[1], 3.0, 0, 0);
    const sl_rnn_weights *w = m->layers[0]->impl;
    assert_close(w->alpha[0], 1.0, 0, 0);
    assert_close(w->alpha[1], 1.0 / 3.0, 1e-7, 0);
    sl_model_free(m);
}

/* ------------------------------------------------------------ tasks */
static void batch_of(const sl_task *t, uint64_t seed, int64_t B, int64_t T, sl_batch *b)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, (unsigned long)seed);
    sl_err err = { 0 };
    assert_int_equal(sl_task_batch(t, r, B, T, b, &err), SL_OK);
    gsl_rng_free(r);
}

/* Every target recomputed from the inputs alone, by the task's definition. */
static void test_tasks_known_outputs(void **state)
{
    (void)state;
    sl_batch b = { 0 };
    /* Running parity. */
    sl_task *t = sl_test_task("parity", NULL);
    assert_int_equal(t->F, 1);
    assert_int_equal(t->K, 1);
    assert_int_equal(sl_task_length(t), 64);
    batch_of(t, 5, 8, 40, &b);
    int ones = 0;
    for (int64_t s = 0; s < 8; s++) {
        int x = 0;
        for (int64_t k = 0; k < 40; k++) {
            float u = b.u[s * 40 + k];
            assert_true(u == 0.0f || u == 1.0f);
            ones += u == 1.0f;
            x ^= (int)u;
            assert_int_equal((int)b.target[s * 40 + k], x);
            assert_int_equal((int)b.mask[s * 40 + k], 1);
        }
    }
    assert_true(ones > 100 && ones < 220);   /* p = 1/2 over 320 bits */
    sl_task_free(t);
    /* N-parity with heads N = 2..4 (and a one-hot encoding). */
    t = sl_test_task("parity", "{\"n\": 4, \"n_min\": 2, \"encoding\": \"onehot\"}");
    assert_int_equal(t->F, 2);
    assert_int_equal(t->K, 3);
    assert_int_equal(sl_task_length(t), 12);   /* ceil(2.5 * 4) + 2 */
    batch_of(t, 6, 4, 12, &b);
    for (int64_t s = 0; s < 4; s++)
        for (int64_t k = 0; k < 12; k++) {
            const float *u = b.u + (s * 12 + k) * 2;
            assert_true(u[0] + u[1] == 1.0f);
            for (int64_t h = 0; h < 3; h++) {
                const int64_t N = 2 + h;
                float m = b.mask[(s * 12 + k) * 3 + h];
                assert_int_equal((int)m, k >= N - 1);
                if (!m) continue;
                int x = 0;
                for (int64_t j = k - N + 1; j <= k; j++) x ^= b.u[(s * 12 + j) * 2 + 1] == 1.0f;
                assert_int_equal((int)b.target[(s * 12 + k) * 3 + h], x);
            }
        }
    /* Heads above n_active are masked (the multi-head curriculum). */
    sl_err err = { 0 };
    assert_int_equal(sl_task_set_n(t, 2, 4, 3, &err), SL_OK);
    batch_of(t, 6, 2, 12, &b);
    for (int64_t i = 0; i < 24; i++) assert_int_equal((int)b.mask[i * 3 + 2], 0);
    assert_int_equal(sl_task_set_n(t, 2, 4, 5, &err), SL_EINVAL);
    sl_task_free(t);
    /* N-DMS: u_t == u_{t-N+1}, from t = N-1. */
    t = sl_test_task("dms", "{\"n\": 3, \"last\": true}");
    batch_of(t, 7, 16, 9, &b);
    for (int64_t s = 0; s < 16; s++)
        for (int64_t k = 0; k < 9; k++) {
            assert_int_equal((int)b.mask[s * 9 + k], k == 8);
            if (k == 8) assert_int_equal((int)b.target[s * 9 + k], b.u[s * 9 + 8] == b.u[s * 9 + 6]);
        }
    sl_task_free(t);
    /* Copy: the first K tokens come back at the last K steps, under markers. */
    t = sl_test_task("copy", "{\"vocab\": 5, \"tokens\": 3}");
    assert_int_equal(t->F, 7);
    assert_int_equal(t->C, 5);
    batch_of(t, 8, 3, 10, &b);
    for (int64_t s = 0; s < 3; s++)
        for (int64_t k = 0; k < 10; k++) {
            const float *u = b.u + (s * 10 + k) * 7;
            int hot = -1, count = 0;
            for (int c = 0; c < 7; c++) if (u[c] == 1.0f) { hot = c; count++; }
            assert_int_equal(count, 1);
            if (k < 3) assert_true(hot < 5);
            else if (k < 7) assert_int_equal(hot, 5);                 /* blank */
            else {
                assert_int_equal(hot, 6);                              /* marker */
                const float *src = b.u + (s * 10 + k - 7) * 7;
                assert_int_equal(src[(int)b.target[s * 10 + k]], 1);
            }
            assert_int_equal((int)b.mask[s * 10 + k], k >= 7);
        }
    sl_task_free(t);
    /* Selective copy: tokens in order wherever they are. */
    t = sl_test_task("selective_copy", "{\"vocab\": 4, \"tokens\": 4}");
    batch_of(t, 9, 5, 20, &b);
    for (int64_t s = 0; s < 5; s++) {
        int tok[4], n = 0;
        for (int64_t k = 0; k < 16; k++)
            for (int c = 0; c < 4; c++)
                if (b.u[(s * 20 + k) * 6 + c] == 1.0f) tok[n++] = c;
        assert_int_equal(n, 4);
        for (int i = 0; i < 4; i++) assert_int_equal((int)b.target[s * 20 + 16 + i], tok[i]);
    }
    sl_task_free(t);
    /* MQAR: each query's target is the value paired with its key. */
    t = sl_test_task("mqar", "{\"keys\": 6, \"values\": 5, \"pairs\": 3, \"queries\": 4}");
    assert_int_equal(t->F, 12);
    batch_of(t, 10, 6, 16, &b);
    for (int64_t s = 0; s < 6; s++) {
        int val[6];
        for (int i = 0; i < 6; i++) val[i] = -1;
        for (int i = 0; i < 3; i++) {
            int key = -1, v = -1;
            for (int c = 0; c < 6; c++) if (b.u[(s * 16 + 2 * i) * 12 + c] == 1.0f) key = c;
            for (int c = 0; c < 5; c++) if (b.u[(s * 16 + 2 * i + 1) * 12 + 6 + c] == 1.0f) v = c;
            assert_true(key >= 0 && v >= 0 && val[key] == -1);       /* distinct keys */
            val[key] = v;
        }
        int q = 0;
        for (int64_t k = 6; k < 16; k++) {
            if (!b.mask[s * 16 + k]) { assert_int_equal(b.u[(s * 16 + k) * 12 + 11], 1); continue; }
            int key = -1;
            for (int c = 0; c < 6; c++) if (b.u[(s * 16 + k) * 12 + c] == 1.0f) key = c;
            assert_true(key >= 0 && val[key] >= 0);
            assert_int_equal((int)b.target[s * 16 + k], val[key]);
            q++;
        }
        assert_int_equal(q, 4);
    }
    sl_task_free(t);
    /* Modular: running sum mod m. */
    t = sl_test_task("modular", "{\"m\": 7}");
    batch_of(t, 11, 4, 30, &b);
    for (int64_t s = 0; s < 4; s++) {
        int sum = 0;
        for (int64_t k = 0; k < 30; k++) {
            int x = -1;
            for (int c = 0; c < 7; c++) if (b.u[(s * 30 + k) * 7 + c] == 1.0f) x = c;
            sum = (sum + x) % 7;
            assert_int_equal((int)b.target[s * 30 + k], sum);
        }
    }
    sl_task_free(t);
    /* Regular: the parity DFA agrees with parity; tomita4 rejects 000. */
    t = sl_test_task("regular", "{\"dfa\": \"0,1;1,0/1\"}");
    batch_of(t, 12, 4, 25, &b);
    for (int64_t s = 0; s < 4; s++) {
        int x = 0;
        for (int64_t k = 0; k < 25; k++) {
            x ^= b.u[(s * 25 + k) * 2 + 1] == 1.0f;
            assert_int_equal((int)b.target[s * 25 + k], x);
        }
    }
    sl_task_free(t);
    t = sl_test_task("regular", "{\"dfa\": \"tomita4\"}");
    batch_of(t, 13, 8, 25, &b);
    for (int64_t s = 0; s < 8; s++) {
        int run = 0, dead = 0;
        for (int64_t k = 0; k < 25; k++) {
            int one = b.u[(s * 25 + k) * 2 + 1] == 1.0f;
            run = one ? 0 : run + 1;
            dead = dead || run >= 3;
            assert_int_equal((int)b.target[s * 25 + k], !dead);
        }
    }
    sl_task_free(t);
    sl_batch_free(&b);
}

static void test_tasks_seeds_and_errors(void **state)
{
    (void)state;
    sl_task *t = sl_test_task("mqar", NULL);
    sl_batch a = { 0 }, b = { 0 };
    batch_of(t, 42, 4, 0, &a);
    batch_of(t, 42, 4, 0, &b);
    assert_int_equal(a.T, 32);
    assert_memory_equal(a.u, b.u, (size_t)(a.B * a.T * a.F) * sizeof(float));
    assert_memory_equal(a.target, b.target, (size_t)(a.B * a.T) * sizeof(float));
    batch_of(t, 43, 4, 0, &b);
    assert_memory_not_equal(a.u, b.u, (size_t)(a.B * a.T * a.F) * sizeof(float));
    sl_task_free(t);
    sl_batch_free(&a);
    sl_batch_free(&b);
    sl_err err = { 0 };
    const char *bad[][2] = {
        { "parity", "{\"n\": 2, \"n_min\": 3}" }, { "dms", "{\"n\": 1}" }, { "mqar", "{\"pairs\": 20}" },
        { "modular", "{\"m\": 1}" }, { "regular", "{\"dfa\": \"0,1;1/0\"}" }, { "regular", "{\"dfa\": \"0,2;1,0/1\"}" },
        { "copy", "{\"tokens\": 0}" }, { "parity", "{\"encoding\": \"ternary\"}" }, { "parity", "{\"vocab\": 3}" },
        { "nope", NULL },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        json_t *o = bad[i][1] ? json_loads(bad[i][1], 0, NULL) : NULL;
        sl_task *x = NULL;
        assert_int_equal(sl_task_new(bad[i][0], o, &x, &err), SL_EINVAL);
        assert_null(x);
        json_decref(o);
    }
    /* A too-short length for copy is refused at batch time. */
    t = sl_test_task("copy", "{\"tokens\": 8}");
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    assert_int_equal(sl_task_batch(t, r, 2, 10, &a, &err), SL_EINVAL);
    gsl_rng_free(r);
    sl_batch_free(&a);
    sl_task_free(t);
    int64_t ns, nsym;
    int *d;
    unsigned char *acc;
    assert_int_equal(sl_dfa_parse("mod3", &ns, &nsym, &d, &acc, &err), SL_OK);
    assert_int_equal(ns, 3);
    assert_int_equal(nsym, 2);
    assert_int_equal(d[1 * 2 + 1], 2);
    assert_int_equal(acc[0], 1);
    assert_int_equal(acc[1], 0);
    free(d);
    free(acc);
}

/* seqlab data writes what sl_dataset_load and sl_input_load read back. */
static void test_data_round_trip(void **state)
{
    (void)state;
    char *path = sl_test_path("dms.safetensors");
    char args[512];
    snprintf(args, sizeof args, "data dms --n 4 --n-min 2 --batch 5 --length 11 --seed 3 -o %s", path);
    char *out = NULL;
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_non_null(strstr(out, "u [5, 11, 1], target and mask [5, 11, 3]"));
    free(out);
    sl_dataset d;
    sl_err err = { 0 };
    assert_int_equal(sl_dataset_load(path, &d, &err), SL_OK);
    assert_int_equal(d.B, 5);
    assert_int_equal(d.T, 11);
    assert_int_equal(d.K, 3);
    assert_int_equal(d.C, 2);
    assert_string_equal(json_string_value(json_object_get(d.task, "task")), "dms");
    sl_task *t = NULL;
    assert_int_equal(sl_task_from_config(d.task, &t, &err), SL_OK);
    sl_batch b = { 0 };
    batch_of(t, 3, 5, 11, &b);
    assert_memory_equal(b.u, d.u, 55 * sizeof(float));
    assert_memory_equal(b.target, d.target, 165 * sizeof(float));
    assert_memory_equal(b.mask, d.mask, 165 * sizeof(float));
    sl_input in;
    assert_int_equal(sl_input_load(path, NULL, &in, &err), SL_OK);
    assert_int_equal(in.B * in.T * in.F, 55);
    assert_memory_equal(in.u, d.u, 55 * sizeof(float));
    sl_input_free(&in);
    /* The same seed writes the same file. */
    char *again = sl_test_path("dms2.safetensors");
    snprintf(args, sizeof args, "data dms --n 4 --n-min 2 --batch 5 --length 11 --seed 3 -o %s", again);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    char h1[65], h2[65];
    assert_int_equal(sl_sha256_file(path, h1, &err), SL_OK);
    assert_int_equal(sl_sha256_file(again, h2, &err), SL_OK);
    assert_string_equal(h1, h2);
    sl_batch_free(&b);
    sl_task_free(t);
    sl_dataset_free(&d);
    free(path);
    free(again);
}

/* ------------------------------------------------------------ learning */
/* A small LSTM learns running parity of length 32 to >= 99% in 600 steps. */
static void test_lstm_learns_parity(void **state)
{
    (void)state;
    sl_err err = { 0 };
    sl_task *task = sl_test_task("parity", "{\"length\": 32}");
    json_t *fcfg = json_pack("{s:I}", "hidden_size", (json_int_t)16);
    json_t *rcfg = json_pack("{s:I, s:I, s:f, s:I, s:I, s:I}", "steps", (json_int_t)600, "batch", (json_int_t)32, "lr", 1e-2,
                             "seed", (json_int_t)3, "eval_every", (json_int_t)100, "eval_batch", (json_int_t)512);
    sl_train_opts o;
    assert_int_equal(sl_train_opts_from_json(rcfg, &o, &err), SL_OK);
    sl_trainer *tr = NULL;
    if (sl_trainer_new(sl_family_find("lstm"), fcfg, task, NULL, &o, NULL, &tr, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(tr);
    sl_train_step_info info;
    double t0 = sl_now();
    for (int64_t s = 0; s < o.steps; s++) {
        assert_int_equal(sl_trainer_step(tr, &info, &err), SL_OK);
        if (info.evaluated)
            fprintf(stderr, "step %4lld: loss %.4f, evaluation accuracy %.4f\n", (long long)info.step, info.loss, info.eval.acc);
    }
    fprintf(stderr, "LSTM H=16 on running parity T=32: %.4f accuracy after %lld steps (%.1f s)\n", info.eval.acc,
            (long long)o.steps, sl_now() - t0);
    assert_true(info.evaluated);
    assert_true(info.eval.acc >= 0.99);
    assert_true(info.eval.last_acc >= 0.99);
    /* It generalises past the training length too (a separate fresh batch). */
    sl_batch b = { 0 };
    batch_of(task, 77, 64, 128, &b);
    sl_metrics mt;
    assert_int_equal(sl_eval_batch(tr->m, &tr->ro, 64, 128, b.u, b.target, b.mask, &mt, &err), SL_OK);
    fprintf(stderr, "  at length 128: %.4f\n", mt.acc);
    sl_batch_free(&b);
    sl_trainer_free(tr);
    sl_task_free(task);
    json_decref(fcfg);
    json_decref(rcfg);
}

/* Both curricula move N on when the evaluation passes the threshold. */
static void test_curricula(void **state)
{
    (void)state;
    const char *kinds[2] = { "single", "multi" };
    for (int k = 0; k < 2; k++) {
        sl_err err = { 0 };
        sl_task *task = sl_test_task("parity", "{\"n\": 2}");
        json_t *fcfg = json_pack("{s:I}", "hidden_size", (json_int_t)24);
        json_t *rcfg = json_pack("{s:I, s:I, s:f, s:s, s:I, s:I, s:I, s:f}", "steps", (json_int_t)800, "batch",
                                 (json_int_t)64, "lr", 1e-2, "curriculum", kinds[k], "n_start", (json_int_t)2, "n_max",
                                 (json_int_t)4, "eval_every", (json_int_t)50, "threshold", 0.95);
        sl_train_opts o;
        assert_int_equal(sl_train_opts_from_json(rcfg, &o, &err), SL_OK);
        sl_trainer *tr = NULL;
        if (sl_trainer_new(sl_family_find("lstm"), fcfg, task, NULL, &o, NULL, &tr, &err)) fprintf(stderr, "%s\n", err.msg);
        assert_non_null(tr);
        assert_int_equal(tr->ro.K, k ? 3 : 1);        /* multi-head: N = 2, 3, 4 */
        sl_train_step_info info;
        int64_t changed = 0;
        for (int64_t s = 0; s < o.steps; s++) {
            assert_int_equal(sl_trainer_step(tr, &info, &err), SL_OK);
            if (info.n_changed) {
                changed++;
                fprintf(stderr, "%s-head: N -> %lld at step %lld (evaluation %.3f)\n", kinds[k], (long long)info.n,
                        (long long)info.step, info.eval.acc);
            }
        }
        assert_true(changed >= 1);
        assert_int_equal(task->n_active, info.n);
        if (k == 0) assert_int_equal(task->n_lo, info.n);
        else assert_int_equal(task->n_hi, 4);
        /* The curriculum state goes into the model's task metadata. */
        json_t *meta = sl_trainer_metadata(tr, rcfg);
        json_t *tj = json_loads(json_string_value(json_object_get(meta, "seqlab.task")), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(tj, "n_active")), info.n);
        json_decref(tj);
        json_decref(meta);
        sl_trainer_free(tr);
        sl_task_free(task);
        json_decref(fcfg);
        json_decref(rcfg);
    }
}

/* ------------------------------------------------------------ the commands */


/* Same seed and threads: a bit-identical model; another seed: another model. */
static void test_train_deterministic(void **state)
{
    (void)state;
    char *m1 = sl_test_path("det1.bin"), *m2 = sl_test_path("det2.bin"), *m3 = sl_test_path("det3.bin"),
         *db = sl_test_path("det.db");
    char args[1024];
    const char *common = "train --family rnn --leaky --tau 2 --hidden-size 12 --num-layers 2 --task dms --n 3 "
                         "--steps 60 --batch 16 --lr 3e-3 --warmup 5 --grad-noise 0.01 --clip 0.5 --weight-decay 0.01 "
                         "--no-plot -t 2";
    snprintf(args, sizeof args, "%s --seed 5 -o %s --db %s", common, m1, db);
    sl_test_cli_ok(args, NULL);
    snprintf(args, sizeof args, "%s --seed 5 -o %s --db %s", common, m2, db);
    sl_test_cli_ok(args, NULL);
    snprintf(args, sizeof args, "%s --seed 6 -o %s --db %s", common, m3, db);
    sl_test_cli_ok(args, NULL);
    char h1[65], h2[65], h3[65];
    sl_err err = { 0 };
    assert_int_equal(sl_sha256_file(m1, h1, &err), SL_OK);
    assert_int_equal(sl_sha256_file(m2, h2, &err), SL_OK);
    assert_int_equal(sl_sha256_file(m3, h3, &err), SL_OK);
    fprintf(stderr, "same seed: %s\n           %s\nother seed: %s\n", h1, h2, h3);
    assert_string_equal(h1, h2);
    assert_string_not_equal(h1, h3);
    /* The runs point at their models; the same content is one models row. */
    assert_int_equal(sl_test_query_int(db, "SELECT count(DISTINCT model_id) FROM runs WHERE command = 'train'"), 2);
    free(m1); free(m2); free(m3); free(db);
}

static void test_train_eval_commands(void **state)
{
    (void)state;
    char *model = sl_test_path("gru.bin"), *db = sl_test_path("te.db"), *fig = sl_test_path("train.svg"),
         *efig = sl_test_path("eval.png"), *again = sl_test_path("again.svg");
    char args[1024], *out = NULL;
    snprintf(args, sizeof args,
             "train --family gru --hidden-size 16 --task modular --m 3 --length 12 --steps 40 --batch 8 --eval-every 20 "
             "--readout mlp --readout-hidden 8 --seed 1 --checkpoint-every 15 -o %s --db %s --figure %s -t 1",
             model, db, fig);
    sl_test_cli_ok(args, &out);
    assert_non_null(strstr(out, "gru, 1 layer, input 3, hidden 16 + MLP readout (1 head, 3 classes)"));
    free(out);
    /* Checkpoints at 15 and 30 beside the model. */
    for (int s = 15; s <= 30; s += 15) {
        char cp[512];
        snprintf(cp, sizeof cp, "%.*s.ckpt-%d.bin", (int)(strlen(model) - 4), model, s);
        sl_model *m = NULL;
        sl_err err = { 0 };
        assert_int_equal(sl_model_open(cp, &m, &err), SL_OK);
        json_t *tj = json_loads(json_string_value(json_object_get(m->metadata, "seqlab.train")), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(tj, "steps_done")), s);
        json_decref(tj);
        sl_model_free(m);
    }
    /* The model reopens with its readout marked as a head and its metadata. */
    sl_model *m = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(model, &m, &err), SL_OK);
    sl_readout ro;
    assert_int_equal(sl_readout_from_model(&ro, m, &err), SL_OK);
    assert_int_equal(ro.kind, SL_READOUT_MLP);
    assert_int_equal(ro.n_hidden, 8);
    assert_int_equal(m->role[sl_tensors_find(m->tensors, "readout.2.weight") - m->tensors->t], SL_ROLE_HEAD);
    json_t *tj = json_loads(json_string_value(json_object_get(m->metadata, "seqlab.task")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(tj, "task")), "modular");
    json_decref(tj);
    sl_model_free(m);
    /* The run: params, per-step metrics and curves, figure, checkpoints, model. */
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM runs WHERE command = 'train' AND status = 'ok' AND model_id IS NOT NULL"), 1);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics WHERE key = 'loss'"), 40);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics WHERE key = 'eval_accuracy'"), 2);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM curves WHERE name = 'accuracy'"), 40);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM params WHERE key IN ('lr', 'model.hidden_size', 'task.m', 'readout')"), 4);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM artifacts"), 3);
    assert_int_equal(sl_test_query_int(db, "SELECT value = 3 FROM params WHERE key = 'task.m'"), 1);
    /* seqlab eval: one row per length, recorded by length. */
    snprintf(args, sizeof args, "eval %s --lengths 6,12,24 --batch 32 --format csv --db %s -o %s -t 1", model, db, efig);
    sl_test_cli_ok(args, &out);
    assert_true(strncmp(out, "length,accuracy,accuracy_last,loss,targets\n6,", 45) == 0);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 4);
    free(out);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id "
                                   "WHERE r.command = 'eval' AND m.key = 'accuracy' AND m.step IN (6, 12, 24)"), 3);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM curves c JOIN runs r ON r.id = c.run_id "
                                   "WHERE r.command = 'eval' AND c.name = 'accuracy_last'"), 3);
    /* seqlab plot re-renders both runs byte for byte. */
    snprintf(args, sizeof args, "plot 1 --db %s -o %s", db, again);
    sl_test_cli_ok(args, NULL);
    char h1[65], h2[65];
    assert_int_equal(sl_sha256_file(fig, h1, &err), SL_OK);
    assert_int_equal(sl_sha256_file(again, h2, &err), SL_OK);
    assert_string_equal(h1, h2);
    /* eval on a data file of the same task. */
    char *data = sl_test_path("mod.safetensors");
    snprintf(args, sizeof args, "data modular --m 3 --length 20 --batch 10 -o %s", data);
    sl_test_cli_ok(args, NULL);
    snprintf(args, sizeof args, "eval %s --data %s --no-plot --db %s", model, data, db);
    sl_test_cli_ok(args, &out);
    assert_non_null(strstr(out, "    20"));
    free(out);
    /* Training on that data file. */
    char *m2 = sl_test_path("fromdata.bin");
    snprintf(args, sizeof args, "train --family lstm --hidden-size 8 --data %s --steps 5 --batch 4 --no-plot -o %s --db %s",
             data, m2, db);
    sl_test_cli_ok(args, NULL);
    free(m2);
    free(data);
    free(model); free(db); free(fig); free(efig); free(again);
}

static void test_commands_bad_usage(void **state)
{
    (void)state;
    const char *bad[] = {
        "train --task parity -o x.bin",                                     /* no family */
        "train --family lstm --hidden-size 8 -o x.bin",                     /* no task */
        "train --family lstm --hidden-size 8 --task parity",                /* no output */
        "train --family lstm --hidden-size 8 --task parity --vocab 3 -o x", /* option of another task */
        "train --family lstm --hidden-size 8 --task parity --input-size 2 -o x", /* set by the task */
        "train --family lstm --hidden-size 8 --task parity --lr -1 -o /tmp/x.bin --no-plot",
        "train --family lstm --hidden-size 8 --task copy --curriculum single -o /tmp/x.bin --no-plot",
        "train --family nope --task parity -o x",
        "train --family lstm --hidden-size 8 --task parity --steps ten -o x",
        "eval",
        "eval /nonexistent.bin",
        "data parity --n",
        "data parity --length 0 -o /tmp/x.st",
        "data",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        char *err = NULL, args[512];
        snprintf(args, sizeof args, "%s --db %s/bad.db", bad[i], sl_test_tmpdir());
        int st = sl_test_cli(args, NULL, &err);
        int lines = 0;
        for (char *p = err; p && *p; p++) lines += *p == '\n';
        if (st != 2 || lines != 1) fprintf(stderr, "seqlab %s -> %d, stderr:\n%s", bad[i], st, err);
        assert_int_equal(st, 2);
        assert_int_equal(lines, 1);
        free(err);
    }
    /* Every command documents its options. */
    const char *help[][2] = { { "train", "--checkpoint-every" }, { "train", "--grad-noise" }, { "train", "--hidden-size" },
                              { "eval", "--lengths" }, { "data", "--n-min" }, { "data", "ROWS/ACCEPT" },
                              { "plot", "train, eval" } };
    for (size_t i = 0; i < SL_ARRAY_LEN(help); i++) {
        char *out = NULL, args[64];
        snprintf(args, sizeof args, "help %s", help[i][0]);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        if (!strstr(out, help[i][1])) fprintf(stderr, "seqlab help %s lacks %s\n", help[i][0], help[i][1]);
        assert_non_null(strstr(out, help[i][1]));
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_finite_differences),
        cmocka_unit_test(test_grad_float_vs_double),
        cmocka_unit_test(test_grad_vs_autograd),
        cmocka_unit_test(test_readout_threads),
        cmocka_unit_test(test_adamw_closed_form),
        cmocka_unit_test(test_adamw_isas_agree),
        cmocka_unit_test(test_schedule_and_noise),
        cmocka_unit_test(test_tau_projection),
        cmocka_unit_test(test_tasks_known_outputs),
        cmocka_unit_test(test_tasks_seeds_and_errors),
        cmocka_unit_test(test_data_round_trip),
        cmocka_unit_test(test_lstm_learns_parity),
        cmocka_unit_test(test_curricula),
        cmocka_unit_test(test_train_deterministic),
        cmocka_unit_test(test_train_eval_commands),
        cmocka_unit_test(test_commands_bad_usage),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
