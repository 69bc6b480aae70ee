/*
** The state-space families (lssl, s4d, lru, lmu, mamba):
**   - forward passes against PyTorch fixtures (tests/fixtures/ssm/make_ssm_fixtures.py:
**     Hugging Face's MambaMixer slow path with RMSNorm residual blocks, with and
**     without eig_range [-1,1]; s4d.py's S4D; the LRU paper's recurrence;
**     LMUFormer's LMUFFTCell; LSSL with LegS and the bilinear rule), every
**     algorithm, final states included;
**   - the double-precision step run along a sequence against the float forward;
**   - Hugging Face and mamba_ssm model folders;
**   - recurrence against convolution (lssl, s4d, lmu) at T = 1, 7, 1000, in
**     double (1e-6) and float (1e-4), from zero and from non-zero start states;
**   - every family's analytic linear system against finite differences of
**     its step, exactness, structure, and the continuous-time form against
**     its discretisation rule; eig_range [-1,1] maps A_bar to 2 A_bar - 1;
**   - seqlab init and seqlab run for every family.
*/
#include "sl_test.h"

#include <complex.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "hippo.h"
#include "model.h"
#include "nn.h"
#include "safetensors.h"
#include "ssm.h"
#include "util.h"

static sl_model *open_model(const char *path)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    if (sl_model_open(path, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    return m;
}

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
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    sl_model *m = NULL;
    rc = sl_model_from_tensors(ts, family, cfg, &m, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    json_decref(cfg);
    return m;
}

static double max_abs_diff(const double *a, const double *b, int64_t n)
{
    double w = 0;
    for (int64_t i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]));
    return w;
}

static float **alloc_carries(const sl_model *m, int64_t B)
{
    float **c = calloc((size_t)m->n_layers, sizeof *c);
    for (int l = 0; l < m->n_layers; l++) c[l] = calloc((size_t)(B * m->layers[l]->n_carry + 1), sizeof(float));
    return c;
}

static void free_carries(const sl_model *m, float **c)
{
    for (int l = 0; l < m->n_layers; l++) free(c[l]);
    free(c);
}

/* ------------------------------------------------------------ PyTorch fixtures */
static const char *const fixtures[] = { "mamba_hf", "mamba_neg", "s4d", "lru", "lmu", "lssl" };

/* Final-state tensor of a fixture and the carry block it is compared with. */
static void check_states(const char *name, const char *rp, const sl_model *m, float **carries, int64_t B)
{
    struct { const char *tensor, *block; } st[] = { { "h_n", "h" }, { "conv_n", "conv" }, { "x_n", "x" }, { "m_n", "m" } };
    for (size_t k = 0; k < SL_ARRAY_LEN(st); k++) {
        sl_stfile *f = NULL;
        sl_err err = { 0 };
        assert_int_equal(sl_stfile_open(rp, &f, &err), SL_OK);
        int present = sl_stfile_find(f, st[k].tensor) != NULL;
        sl_stfile_close(f);
        if (!present) continue;
        int64_t n;
        double *ref = sl_test_load_f64(rp, st[k].tensor, &n);
        int64_t off = 0, size = 0;
        for (int b = 0; b < m->layers[0]->n_blocks; b++)
            if (!strcmp(m->layers[0]->blocks[b].name, st[k].block)) {
                off = m->layers[0]->blocks[b].offset;
                size = m->layers[0]->blocks[b].size;
            }
        assert_int_equal(n, m->n_layers * B * size);
        double *got = malloc((size_t)n * sizeof *got);
        for (int l = 0; l < m->n_layers; l++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < size; i++)
                    got[(l * B + b) * size + i] = carries[l][b * m->layers[l]->n_carry + off + i];
        fprintf(stderr, "%s %s: max |diff| %.3g; ", name, st[k].tensor, max_abs_diff(got, ref, n));
        assert_all_close(got, ref, (size_t)n, 1e-4, 1e-5);
        free(got);
        free(ref);
    }
}

static void compare_fixture(const char *name, int algo)
{
    char mp[256], rp[256];
    snprintf(mp, sizeof mp, "tests/fixtures/ssm/%s.model.safetensors", name);
    snprintf(rp, sizeof rp, "tests/fixtures/ssm/%s.ref.safetensors", name);
    sl_model *m = open_model(mp);
    int64_t nu, ny;
    float *u = sl_test_load_f32(rp, "u", &nu);
    double *yref = sl_test_load_f64(rp, "y", &ny);
    const int64_t B = 2, T = nu / (B * m->n_in);
    assert_int_equal(ny, B * T * m->n_out);
    float *y = malloc((size_t)ny * sizeof *y), **carries = alloc_carries(m, B);
    sl_err err = { 0 };
    int rc = sl_model_forward(m, B, T, u, y, carries, algo, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    double *yd = malloc((size_t)ny * sizeof *yd);
    for (int64_t i = 0; i < ny; i++) yd[i] = y[i];
    fprintf(stderr, "%s (algo %d): y max |diff| vs PyTorch %.3g; ", name, algo, max_abs_diff(yd, yref, ny));
    assert_all_close(yd, yref, (size_t)ny, 1e-4, 1e-4);
    check_states(name, rp, m, carries, B);
    if (!strncmp(name, "mamba", 5)) {
        /* MambaModel's last_hidden_state is the readout's norm_f of the stack's output. */
        double *last = sl_test_load_f64(rp, "last_hidden_state", NULL), *mine = malloc((size_t)ny * sizeof *mine);
        const sl_tensor *nf = sl_tensors_find(m->tensors, "backbone.norm_f.weight");
        assert_non_null(nf);
        for (int64_t r = 0; r < B * T; r++) sl_rmsnorm_f64(m->n_out, yd + r * m->n_out, nf->data, 1e-5, mine + r * m->n_out);
        fprintf(stderr, "last_hidden_state: ");
        assert_all_close(mine, last, (size_t)ny, 1e-4, 1e-4);
        free(last);
        free(mine);
    }
    free_carries(m, carries);
    free(u); free(yref); free(y); free(yd);
    sl_model_free(m);
}

static void test_forward_vs_pytorch(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_LEN(fixtures); i++) {
        compare_fixture(fixtures[i], SL_ALGO_AUTO);
        compare_fixture(fixtures[i], SL_ALGO_RECURRENT);
        compare_fixture(fixtures[i], SL_ALGO_REFERENCE);
        if (!strcmp(fixtures[i], "s4d") || !strcmp(fixtures[i], "lmu") || !strcmp(fixtures[i], "lssl"))
            compare_fixture(fixtures[i], SL_ALGO_CONV);
    }
}

/* The double step along sequence 0 reproduces the fixture's y. */
static void test_step_matches_pytorch(void **state)
{
    (void)state;
    for (size_t f = 0; f < SL_ARRAY_LEN(fixtures); f++) {
        char mp[256], rp[256];
        snprintf(mp, sizeof mp, "tests/fixtures/ssm/%s.model.safetensors", fixtures[f]);
        snprintf(rp, sizeof rp, "tests/fixtures/ssm/%s.ref.safetensors", fixtures[f]);
        sl_model *m = open_model(mp);
        int64_t nu;
        double *u = sl_test_load_f64(rp, "u", &nu), *yref = sl_test_load_f64(rp, "y", NULL);
        const int64_t T = nu / (2 * m->n_in), W = 64;
        double *carry[4], *next = malloc(4096 * sizeof *next), *x = malloc(W * sizeof *x), *yv = malloc(W * sizeof *yv);
        for (int l = 0; l < m->n_layers; l++) carry[l] = calloc(4096, sizeof(double));
        sl_err err = { 0 };
        double worst = 0;
        for (int64_t t = 0; t < T; t++) {
            memcpy(x, u + t * m->n_in, (size_t)m->n_in * sizeof *x);
            for (int l = 0; l < m->n_layers; l++) {
                assert_int_equal(sl_layer_step(m->layers[l], carry[l], x, next, yv, &err), SL_OK);
                memcpy(carry[l], next, (size_t)m->layers[l]->n_carry * sizeof *next);
                memcpy(x, yv, (size_t)m->layers[l]->n_out * sizeof *x);
            }
            for (int64_t j = 0; j < m->n_out; j++) {
                worst = fmax(worst, fabs(x[j] - yref[t * m->n_out + j]));
                assert_close(x[j], yref[t * m->n_out + j], 1e-4, 1e-4);
            }
        }
        fprintf(stderr, "%s: double step vs PyTorch max |diff| %.3g\n", fixtures[f], worst);
        for (int l = 0; l < m->n_layers; l++) free(carry[l]);
        free(next); free(x); free(yv); free(u); free(yref);
        sl_model_free(m);
    }
}

/* ------------------------------------------------------------ model folders */
static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

/* Copy the fixture's tensors without metadata into dir/model.safetensors, renaming one. */
static void make_folder(const char *dir, const char *from, const char *to, const char *config)
{
    char cmd[600], p[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    sl_stfile *f = NULL;
    sl_err err = { 0 };
    assert_int_equal(sl_stfile_open("tests/fixtures/ssm/mamba_hf.model.safetensors", &f, &err), SL_OK);
    sl_tensors *ts = sl_tensors_new();
    assert_int_equal(sl_tensors_load(ts, f, &err), SL_OK);
    sl_stfile_close(f);
    for (size_t i = 0; from && i < ts->n; i++)
        if (!strcmp(ts->t[i].name, from)) {
            free(ts->t[i].name);
            ts->t[i].name = sl_strdup(to);
        }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    assert_int_equal(sl_tensors_save(ts, p, NULL, &err), SL_OK);
    sl_tensors_free(ts);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, config);
}

static void forward_equals_fixture(sl_model *m)
{
    int64_t nu, ny;
    const char *rp = "tests/fixtures/ssm/mamba_hf.ref.safetensors";
    float *u = sl_test_load_f32(rp, "u", &nu);
    double *yref = sl_test_load_f64(rp, "y", &ny), *yd = malloc((size_t)ny * sizeof *yd);
    float *y = malloc((size_t)ny * sizeof *y);
    sl_err err = { 0 };
    assert_int_equal(sl_model_forward(m, 2, nu / (2 * m->n_in), u, y, NULL, 0, &err), SL_OK);
    for (int64_t i = 0; i < ny; i++) yd[i] = y[i];
    assert_all_close(yd, yref, (size_t)ny, 1e-4, 1e-4);
    free(u); free(yref); free(yd); free(y);
}

static void test_mamba_folders(void **state)
{
    (void)state;
    /* Hugging Face: model_type mamba, transformers' key spelling, backbone.embeddings. */
    char *hf = sl_test_path("mamba-hf"), *ms = sl_test_path("mamba-ssm"), *bad = sl_test_path("mamba-bad");
    make_folder(hf, NULL, NULL,
                "{\"model_type\": \"mamba\", \"hidden_size\": 16, \"state_size\": 4, \"conv_kernel\": 4, "
                "\"expand\": 2, \"intermediate_size\": 32, \"time_step_rank\": \"auto\", \"num_hidden_layers\": 2, "
                "\"layer_norm_epsilon\": 1e-5, \"use_bias\": false, \"vocab_size\": 11}");
    sl_model *m = open_model(hf);
    assert_string_equal(m->fam->name, "mamba");
    assert_int_equal(m->n_layers, 2);
    assert_non_null(m->embedding);
    assert_string_equal(m->embedding->name, "backbone.embeddings.weight");
    forward_equals_fixture(m);
    sl_model_free(m);
    /* mamba_ssm: no model_type (found from the tensor names), its key spelling, backbone.embedding. */
    make_folder(ms, "backbone.embeddings.weight", "backbone.embedding.weight",
                "{\"d_model\": 16, \"n_layer\": 2, \"vocab_size\": 11, \"ssm_cfg\": {\"d_state\": 4, \"d_conv\": 4, "
                "\"expand\": 2}, \"rms_norm\": true, \"residual_in_fp32\": true}");
    m = open_model(ms);
    assert_string_equal(m->fam->name, "mamba");
    assert_non_null(m->embedding);
    assert_string_equal(m->embedding->name, "backbone.embedding.weight");
    for (size_t i = 0; i < m->tensors->n; i++) {
        const char *n = m->tensors->t[i].name;
        int want = !strcmp(n, "backbone.embedding.weight") ? SL_ROLE_EMBED
                 : !strcmp(n, "backbone.norm_f.weight")    ? SL_ROLE_HEAD
                                                           : SL_ROLE_CORE;
        assert_int_equal(m->role[i], want);
    }
    forward_equals_fixture(m);
    sl_model_free(m);
    /* A config that contradicts the tensors is refused, naming the key. */
    make_folder(bad, NULL, NULL, "{\"model_type\": \"mamba\", \"hidden_size\": 16, \"state_size\": 16}");
    sl_err err = { 0 };
    assert_int_equal(sl_model_open(bad, &m, &err), SL_EFORMAT);
    assert_non_null(strstr(err.msg, "state_size"));
    free(hf); free(ms); free(bad);
}

/* ------------------------------------------------------------ recurrence vs convolution */
/* Double: the step along the sequence against sl_ssm_conv_f64. Float: the
** recurrent forward against the conv forward. Both from a random start state
** too, with the final states compared. */
static void conv_vs_recurrence(const char *family, const char *cfg, uint64_t seed)
{
    sl_model *m = make_model(family, cfg, seed);
    const sl_layer *L = m->layers[0];
    const int64_t Ts[] = { 1, 7, 1000 }, nb = 2, in = L->n_in, out = L->n_out, nc = L->n_carry;
    uint64_t rng = seed * 77 + 1;
    for (size_t q = 0; q < SL_ARRAY_LEN(Ts); q++)
        for (int start = 0; start < 2; start++) {
            const int64_t T = Ts[q];
            double *u = malloc((size_t)(nb * T * in) * sizeof *u), *yc = malloc((size_t)(nb * T * out) * sizeof *yc),
                   *yr = malloc((size_t)(nb * T * out) * sizeof *yr), *c0 = calloc((size_t)(nb * nc), sizeof *c0),
                   *cc = malloc((size_t)(nb * nc) * sizeof *cc), *cr = malloc((size_t)(nb * nc) * sizeof *cr),
                   *next = malloc((size_t)nc * sizeof *next);
            for (int64_t i = 0; i < nb * T * in; i++) u[i] = sl_test_uniform(&rng, -1, 1);
            if (start)
                for (int64_t i = 0; i < nb * nc; i++) c0[i] = sl_test_uniform(&rng, -1, 1);
            memcpy(cc, c0, (size_t)(nb * nc) * sizeof *cc);
            memcpy(cr, c0, (size_t)(nb * nc) * sizeof *cr);
            sl_err err = { 0 };
            int rc = sl_ssm_conv_f64(L, nb, T, u, yc, cc, &err);
            if (rc) fprintf(stderr, "%s\n", err.msg);
            assert_int_equal(rc, SL_OK);
            for (int64_t b = 0; b < nb; b++)
                for (int64_t t = 0; t < T; t++) {
                    assert_int_equal(sl_layer_step(L, cr + b * nc, u + (b * T + t) * in, next, yr + (b * T + t) * out, &err),
                                     SL_OK);
                    memcpy(cr + b * nc, next, (size_t)nc * sizeof *next);
                }
            fprintf(stderr, "%s %s T=%lld start=%d: double conv vs recurrence max |diff| y %.3g, state %.3g; ", family,
                    cfg, (long long)T, start, max_abs_diff(yc, yr, nb * T * out), max_abs_diff(cc, cr, nb * nc));
            assert_all_close(yc, yr, (size_t)(nb * T * out), 0, 1e-6);
            assert_all_close(cc, cr, (size_t)(nb * nc), 0, 1e-6);
            /* Float: recurrent vs conv forward. */
            float *uf = malloc((size_t)(nb * T * in) * sizeof *uf), *y1 = malloc((size_t)(nb * T * out) * sizeof *y1),
                  *y2 = malloc((size_t)(nb * T * out) * sizeof *y2), *k1 = malloc((size_t)(nb * nc) * sizeof *k1),
                  *k2 = malloc((size_t)(nb * nc) * sizeof *k2);
            for (int64_t i = 0; i < nb * T * in; i++) uf[i] = (float)u[i];
            for (int64_t i = 0; i < nb * nc; i++) k1[i] = k2[i] = (float)c0[i];
            sl_fwd f1 = { .B = nb, .T = T, .x = uf, .y = y1, .carry = k1, .algo = SL_ALGO_RECURRENT };
            sl_fwd f2 = { .B = nb, .T = T, .x = uf, .y = y2, .carry = k2, .algo = SL_ALGO_CONV };
            assert_int_equal(sl_layer_forward(L, &f1, &err), SL_OK);
            assert_int_equal(sl_layer_forward(L, &f2, &err), SL_OK);
            double *a = malloc((size_t)(nb * T * out) * sizeof *a), *b2 = malloc((size_t)(nb * T * out) * sizeof *b2);
            for (int64_t i = 0; i < nb * T * out; i++) { a[i] = y1[i]; b2[i] = y2[i]; }
            fprintf(stderr, "float max |diff| %.3g\n", max_abs_diff(a, b2, nb * T * out));
            assert_all_close(a, b2, (size_t)(nb * T * out), 0, 1e-4);
            for (int64_t i = 0; i < nb * nc; i++) assert_close(k1[i], k2[i], 0, 1e-4);
            free(a); free(b2); free(uf); free(y1); free(y2); free(k1); free(k2);
            free(u); free(yc); free(yr); free(c0); free(cc); free(cr); free(next);
        }
    sl_model_free(m);
}

static void test_conv_vs_recurrence(void **state)
{
    (void)state;
    conv_vs_recurrence("lssl", "{\"d_model\": 3, \"d_state\": 16, \"dt_min\": 0.01, \"dt_max\": 0.5}", 1);
    conv_vs_recurrence("lssl", "{\"d_model\": 2, \"d_state\": 5, \"a_shared\": false, \"disc\": \"zoh\"}", 2);
    conv_vs_recurrence("lssl", "{\"d_model\": 2, \"d_state\": 7, \"measure\": \"legt\", \"disc\": \"euler\", "
                               "\"dt_min\": 0.001, \"dt_max\": 0.01}", 3);
    conv_vs_recurrence("s4d", "{\"d_model\": 3, \"d_state\": 10, \"dt_min\": 0.01, \"dt_max\": 0.5}", 4);
    conv_vs_recurrence("s4d", "{\"d_model\": 2, \"d_state\": 6, \"init\": \"inv\", \"disc\": \"bilinear\"}", 5);
    conv_vs_recurrence("lmu", "{\"input_size\": 3, \"hidden_size\": 4, \"memory_size\": 6, \"theta\": 20}", 6);
}

/* AUTO picks the convolution for long sequences and agrees with the recurrence. */
static void test_auto_long(void **state)
{
    (void)state;
    sl_model *m = make_model("lssl", "{\"d_model\": 4, \"d_state\": 16, \"n_layer\": 2}", 9);
    const int64_t B = 1, T = 300, n = B * T * 4;
    float *x = malloc((size_t)n * sizeof *x), *y1 = malloc((size_t)n * sizeof *y1), *y2 = malloc((size_t)n * sizeof *y2);
    uint64_t rng = 3;
    for (int64_t i = 0; i < n; i++) x[i] = (float)sl_test_uniform(&rng, -1, 1);
    sl_err err = { 0 };
    assert_int_equal(sl_model_forward(m, B, T, x, y1, NULL, SL_ALGO_AUTO, &err), SL_OK);
    assert_int_equal(sl_model_forward(m, B, T, x, y2, NULL, SL_ALGO_RECURRENT, &err), SL_OK);
    for (int64_t i = 0; i < n; i++) assert_close(y1[i], y2[i], 0, 1e-4);
    /* Again with the kernel cached, and a shorter sequence. */
    assert_int_equal(sl_model_forward(m, B, 100, x, y1, NULL, SL_ALGO_CONV, &err), SL_OK);
    assert_int_equal(sl_model_forward(m, B, 100, x, y2, NULL, SL_ALGO_RECURRENT, &err), SL_OK);
    for (int64_t i = 0; i < 400; i++) assert_close(y1[i], y2[i], 0, 1e-4);
    assert_int_equal(sl_model_forward(m, B, 10, x, y1, NULL, SL_ALGO_CHUNKED, &err), SL_EUNSUP);
    free(x); free(y1); free(y2);
    sl_model_free(m);
}

/* Every step's carry from the float forward (states) equals the double step's,
** for every family and both the optimised and the reference algorithm. */
static void test_forward_states(void **state)
{
    (void)state;
    struct { const char *fam, *cfg; } cases[] = {
        { "lssl", "{\"d_model\": 2, \"d_state\": 5, \"dt_min\": 0.05, \"dt_max\": 0.5}" },
        { "s4d", "{\"d_model\": 2, \"d_state\": 6}" },
        { "lru", "{\"d_model\": 3, \"d_state\": 4, \"r_min\": 0.5}" },
        { "lmu", "{\"input_size\": 2, \"hidden_size\": 3, \"memory_size\": 4, \"theta\": 6}" },
        { "mamba", "{\"d_model\": 4, \"d_state\": 3, \"d_conv\": 4}" },
        { "mamba", "{\"d_model\": 4, \"d_state\": 2, \"d_conv\": 2, \"eig_range\": \"[-1,1]\"}" },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        sl_model *m = make_model(cases[c].fam, cases[c].cfg, 31 + c);
        const sl_layer *L = m->layers[0];
        const int64_t B = 2, T = 6, in = L->n_in, out = L->n_out, nc = L->n_carry;
        uint64_t rng = 17 + c;
        float *x = malloc((size_t)(B * T * in) * sizeof *x), *y = malloc((size_t)(B * T * out) * sizeof *y),
              *st = malloc((size_t)(B * T * nc) * sizeof *st), *carry = malloc((size_t)(B * nc) * sizeof *carry);
        double *c0 = malloc((size_t)(B * nc) * sizeof *c0), *next = malloc((size_t)nc * sizeof *next),
               *u = malloc((size_t)in * sizeof *u), *yd = malloc((size_t)out * sizeof *yd);
        for (int64_t i = 0; i < B * T * in; i++) x[i] = (float)sl_test_uniform(&rng, -1, 1);
        for (int algo = SL_ALGO_RECURRENT; algo <= SL_ALGO_REFERENCE; algo += SL_ALGO_REFERENCE - SL_ALGO_RECURRENT) {
            for (int64_t i = 0; i < B * nc; i++) carry[i] = (float)(c0[i] = sl_test_uniform(&rng, -0.5, 0.5));
            sl_fwd f = { .B = B, .T = T, .x = x, .y = y, .carry = carry, .states = st, .algo = algo };
            sl_err err = { 0 };
            assert_int_equal(sl_layer_forward(L, &f, &err), SL_OK);
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) {
                    for (int64_t k = 0; k < in; k++) u[k] = x[(b * T + t) * in + k];
                    assert_int_equal(sl_layer_step(L, c0 + b * nc, u, next, yd, &err), SL_OK);
                    memcpy(c0 + b * nc, next, (size_t)nc * sizeof *next);
                    for (int64_t k = 0; k < nc; k++) assert_close(st[(b * T + t) * nc + k], next[k], 1e-4, 1e-5);
                    for (int64_t k = 0; k < out; k++) assert_close(y[(b * T + t) * out + k], yd[k], 1e-4, 1e-5);
                }
            for (int64_t i = 0; i < B * nc; i++) assert_close(carry[i], c0[i], 1e-4, 1e-5);
        }
        free(x); free(y); free(st); free(carry); free(c0); free(next); free(u); free(yd);
        sl_model_free(m);
    }
}

/* Mamba's forward works in chunks of about 2048 / B steps: with B = 300 a
** chunk is 6 steps, so T = 14 crosses two chunk boundaries; the carried conv
** history and SSM state must make that invisible. */
static void test_mamba_chunks(void **state)
{
    (void)state;
    sl_model *m = make_model("mamba", "{\"d_model\": 4, \"d_state\": 3, \"d_conv\": 4}", 41);
    const sl_layer *L = m->layers[0];
    const int64_t B = 300, T = 14, d = 4, nc = L->n_carry;
    uint64_t rng = 5;
    float *x = malloc((size_t)(B * T * d) * sizeof *x), *y = malloc((size_t)(B * T * d) * sizeof *y),
          *st = malloc((size_t)(B * T * nc) * sizeof *st), *carry = calloc((size_t)(B * nc), sizeof *carry);
    for (int64_t i = 0; i < B * T * d; i++) x[i] = (float)sl_test_uniform(&rng, -1, 1);
    sl_fwd f = { .B = B, .T = T, .x = x, .y = y, .carry = carry, .states = st, .algo = SL_ALGO_AUTO };
    sl_err err = { 0 };
    assert_int_equal(sl_layer_forward(L, &f, &err), SL_OK);
    const int64_t seqs[3] = { 0, 151, 299 };
    double *c = malloc((size_t)nc * sizeof *c), *next = malloc((size_t)nc * sizeof *next), u[4], yd[4];
    for (int q = 0; q < 3; q++) {
        const int64_t b = seqs[q];
        memset(c, 0, (size_t)nc * sizeof *c);
        for (int64_t t = 0; t < T; t++) {
            for (int k = 0; k < d; k++) u[k] = x[(b * T + t) * d + k];
            assert_int_equal(sl_layer_step(L, c, u, next, yd, &err), SL_OK);
            memcpy(c, next, (size_t)nc * sizeof *c);
            for (int64_t k = 0; k < nc; k++) assert_close(st[(b * T + t) * nc + k], c[k], 1e-4, 1e-5);
            for (int k = 0; k < d; k++) assert_close(y[(b * T + t) * d + k], yd[k], 1e-4, 1e-5);
        }
        for (int64_t k = 0; k < nc; k++) assert_close(carry[b * nc + k], c[k], 1e-4, 1e-5);
    }
    free(x); free(y); free(st); free(carry); free(c); free(next);
    sl_model_free(m);
}

/* ------------------------------------------------------------ linear systems */
static void check_family_linsys(const char *family, const char *cfg, double scale)
{
    sl_model *m = make_model(family, cfg, 13);
    uint64_t rng = 99;
    for (int l = 0; l < m->n_layers; l++) {
        const sl_layer *L = m->layers[l];
        for (int trial = 0; trial < 2; trial++) {
            double *carry = malloc((size_t)L->n_carry * sizeof *carry), *u = malloc((size_t)L->n_in * sizeof *u);
            for (int64_t i = 0; i < L->n_carry; i++) carry[i] = sl_test_uniform(&rng, -1, 1);
            for (int64_t i = 0; i < L->n_in; i++) u[i] = sl_test_uniform(&rng, -scale, scale);
            fprintf(stderr, "%s %s layer %d trial %d:\n", family, cfg, l, trial);
            assert_true(sl_test_check_linsys(L, carry, u, 1e-6, 1e-8) <= 1.0);
            free(carry);
            free(u);
        }
    }
    sl_model_free(m);
}

static void test_linsys_finite_differences(void **state)
{
    (void)state;
    check_family_linsys("lssl", "{\"d_model\": 3, \"d_state\": 4}", 1);
    check_family_linsys("lssl", "{\"d_model\": 2, \"d_state\": 5, \"a_shared\": false, \"disc\": \"zoh\", \"n_layer\": 2}", 1);
    check_family_linsys("s4d", "{\"d_model\": 3, \"d_state\": 6}", 1);
    check_family_linsys("s4d", "{\"d_model\": 2, \"d_state\": 4, \"init\": \"inv\", \"disc\": \"bilinear\"}", 1);
    check_family_linsys("lru", "{\"d_model\": 3, \"d_state\": 5, \"r_min\": 0.5, \"r_max\": 0.99}", 1);
    check_family_linsys("lmu", "{\"input_size\": 3, \"hidden_size\": 4, \"memory_size\": 5, \"theta\": 7}", 1);
    check_family_linsys("mamba", "{\"d_model\": 8, \"d_state\": 3, \"d_conv\": 3, \"n_layer\": 2}", 2);
    check_family_linsys("mamba", "{\"d_model\": 6, \"d_state\": 4, \"eig_range\": \"[-1,1]\", \"bias\": true}", 2);
}

/* Structure and the continuous-time form: A is the rule applied to A_ct and dt. */
static void test_linsys_structure(void **state)
{
    (void)state;
    sl_err err = { 0 };
    double x[256] = { 0 }, u[16];
    for (int i = 0; i < 16; i++) u[i] = 0.1 * i - 0.5;
    /* lssl: BLOCKS, per-channel bilinear of the shared A_ct. */
    sl_model *m = make_model("lssl", "{\"d_model\": 3, \"d_state\": 4}", 5);
    sl_linsys ls;
    sl_linsys_init(&ls);
    assert_int_equal(sl_layer_linsys(m->layers[0], x, u, SL_LS_ALL, &ls, &err), SL_OK);
    assert_int_equal(ls.A.kind, SL_OP_BLOCKS);
    assert_int_equal(ls.A.nb, 3);
    assert_int_equal(ls.A_ct.kind, SL_OP_BLOCKS);
    assert_true(ls.A_ct.shared);
    assert_int_equal(ls.B.kind, SL_OP_BLOCKS);
    assert_int_equal(ls.C.kind, SL_OP_BLOCKS);
    assert_int_equal(ls.D.kind, SL_OP_DIAG);
    assert_int_equal(ls.disc, SL_DISC_BILINEAR);
    assert_int_equal(ls.n_dt, 3);
    assert_true(ls.exact && ls.has_ct);
    assert_true(m->layers[0]->flags & SL_LAYER_LTI);
    for (int h = 0; h < 3; h++) {
        double Ab[16], Bb[4];
        assert_int_equal(sl_discretize(SL_DISC_BILINEAR, 4, 1, sl_op_block(&ls.A_ct, h), sl_op_block(&ls.B_ct, h), ls.dt[h],
                                       Ab, Bb, &err), SL_OK);
        for (int i = 0; i < 16; i++) assert_close(sl_op_block(&ls.A, h)[i], Ab[i], 1e-14, 1e-15);
        for (int i = 0; i < 4; i++) assert_close(sl_op_block(&ls.B, h)[i], Bb[i], 1e-14, 1e-15);
    }
    sl_linsys_free(&ls);
    sl_model_free(m);
    /* s4d: CDIAG with A = exp(dt A_ct) (ZOH), eigenvalue i of A_ct <-> i of A. */
    m = make_model("s4d", "{\"d_model\": 2, \"d_state\": 6}", 6);
    assert_int_equal(sl_layer_linsys(m->layers[0], x, u, SL_LS_ALL, &ls, &err), SL_OK);
    assert_int_equal(ls.A.kind, SL_OP_CDIAG);
    assert_int_equal(ls.A_ct.kind, SL_OP_CDIAG);
    assert_int_equal(ls.disc, SL_DISC_ZOH);
    for (int j = 0; j < 6; j++) {
        const int h = j / 3;
        double complex a = ls.A_ct.a[2 * j] + I * ls.A_ct.a[2 * j + 1], e = cexp(ls.dt[h] * a);
        assert_close(ls.A.a[2 * j], creal(e), 1e-14, 1e-15);
        assert_close(ls.A.a[2 * j + 1], cimag(e), 1e-14, 1e-15);
        assert_close(creal(a), -0.5, 1e-6, 0);   /* S4D-Lin: -1/2 + i pi n */
        assert_close(cimag(a), M_PI * (j % 3), 1e-6, 1e-6);
    }
    sl_linsys_free(&ls);
    sl_model_free(m);
    /* lru: lambda = exp(A_ct) with dt 1, |lambda| within the ring. */
    m = make_model("lru", "{\"d_model\": 2, \"d_state\": 8, \"r_min\": 0.6, \"r_max\": 0.9}", 7);
    assert_int_equal(sl_layer_linsys(m->layers[0], x, u, SL_LS_ALL, &ls, &err), SL_OK);
    assert_int_equal(ls.A.kind, SL_OP_CDIAG);
    assert_int_equal(ls.disc, SL_DISC_EXP);
    for (int j = 0; j < 8; j++) {
        double complex e = cexp(ls.A_ct.a[2 * j] + I * ls.A_ct.a[2 * j + 1]);
        assert_close(ls.A.a[2 * j], creal(e), 1e-14, 1e-15);
        assert_close(ls.A.a[2 * j + 1], cimag(e), 1e-14, 1e-15);
        const double r = cabs(e);
        assert_true(r >= 0.6 - 1e-6 && r <= 0.9 + 1e-6);
    }
    sl_linsys_free(&ls);
    sl_model_free(m);
    /* lmu: A = ZOH of the Legendre (A, B) with dt 1. */
    m = make_model("lmu", "{\"input_size\": 2, \"hidden_size\": 3, \"memory_size\": 4, \"theta\": 5}", 8);
    assert_int_equal(sl_layer_linsys(m->layers[0], x, u, SL_LS_ALL, &ls, &err), SL_OK);
    {
        double A[16], B[4], Ab[16], Bb[4];
        assert_int_equal(sl_hippo(SL_HIPPO_LMU, 4, 5.0, A, B, &err), SL_OK);
        assert_int_equal(sl_discretize(SL_DISC_ZOH, 4, 1, A, B, 1.0, Ab, Bb, &err), SL_OK);
        for (int i = 0; i < 16; i++) assert_close(ls.A.a[i], Ab[i], 1e-14, 1e-15);
        for (int i = 0; i < 16; i++) assert_close(ls.A_ct.a[i], A[i], 1e-15, 0);
        for (int i = 0; i < 4; i++) assert_close(ls.B.a[i], Bb[i], 1e-14, 1e-15);
        assert_string_equal(ls.u_name, "e");
    }
    sl_linsys_free(&ls);
    sl_model_free(m);
    /* mamba: DIAG A = exp(dt_c A_ct), B BLOCKS dt_c B_t, input x. */
    m = make_model("mamba", "{\"d_model\": 4, \"d_state\": 3}", 9);
    for (int i = 0; i < m->layers[0]->n_carry; i++) x[i] = 0.01 * (i % 7);
    assert_int_equal(sl_layer_linsys(m->layers[0], x, u, SL_LS_ALL, &ls, &err), SL_OK);
    assert_int_equal(ls.A.kind, SL_OP_DIAG);
    assert_int_equal(ls.A_ct.kind, SL_OP_DIAG);
    assert_int_equal(ls.B.kind, SL_OP_BLOCKS);
    assert_int_equal(ls.C.kind, SL_OP_BLOCKS);
    assert_int_equal(ls.disc, SL_DISC_EXP);
    assert_string_equal(ls.u_name, "x");
    assert_int_equal(ls.n_dt, 8);
    assert_true(m->layers[0]->flags & SL_LAYER_SELECTIVE);
    for (int c = 0; c < 8; c++)
        for (int n = 0; n < 3; n++) {
            assert_close(ls.A.a[c * 3 + n], exp(ls.dt[c] * ls.A_ct.a[c * 3 + n]), 1e-14, 1e-15);
            assert_close(ls.A_ct.a[c * 3 + n], -(double)(n + 1), 1e-6, 0);   /* A_log = log(1..N) */
            assert_close(sl_op_block(&ls.B, c)[n], ls.dt[c] * sl_op_block(&ls.B_ct, c)[n], 1e-14, 1e-15);
        }
    sl_linsys_free(&ls);
    sl_model_free(m);
}

/* eig_range [-1,1]: the same tensors give A_bar -> 2 A_bar - 1 in the linear
** system and in the forward pass. */
static void test_eig_range(void **state)
{
    (void)state;
    sl_model *pos = make_model("mamba", "{\"d_model\": 6, \"d_state\": 3, \"dt_min\": 0.1, \"dt_max\": 2.0}", 21);
    /* The same tensors with eig_range [-1,1]. */
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    for (size_t i = 0; i < pos->tensors->n; i++) {
        const sl_tensor *t = &pos->tensors->t[i];
        assert_int_equal(sl_tensors_add(ts, t->name, t->ndim, t->shape, t->data, NULL, &err), SL_OK);
    }
    json_t *cfg = json_deep_copy(pos->config);
    json_object_set_new(cfg, "eig_range", json_string(" [ -1 , 1 ] "));
    sl_model *neg = NULL;
    assert_int_equal(sl_model_from_tensors(ts, "mamba", cfg, &neg, &err), SL_OK);
    json_decref(cfg);
    const sl_layer *Lp = pos->layers[0], *Ln = neg->layers[0];
    double *x = malloc((size_t)Lp->n_carry * sizeof *x), u[6] = { 0.3, -1.2, 0.8, 0.1, -0.4, 1.5 };
    uint64_t rng = 4;
    for (int64_t i = 0; i < Lp->n_carry; i++) x[i] = sl_test_uniform(&rng, -1, 1);
    sl_linsys lp, ln;
    sl_linsys_init(&lp);
    sl_linsys_init(&ln);
    assert_int_equal(sl_layer_linsys(Lp, x, u, SL_LS_ALL, &lp, &err), SL_OK);
    assert_int_equal(sl_layer_linsys(Ln, x, u, SL_LS_ALL, &ln, &err), SL_OK);
    int negative = 0;
    for (int64_t i = 0; i < lp.n_state; i++) {
        assert_close(ln.A.a[i], 2.0 * lp.A.a[i] - 1.0, 1e-15, 1e-15);
        negative += ln.A.a[i] < 0;
    }
    assert_true(negative > 0);   /* the point of the variant */
    assert_true(lp.has_ct && !ln.has_ct);
    double *Bp = malloc((size_t)lp.n_state * sizeof *Bp), *Bn = malloc((size_t)lp.n_state * sizeof *Bn);
    for (int64_t i = 0; i < lp.n_state; i++) assert_close(ln.B.a[i], lp.B.a[i], 0, 0);   /* B unchanged */
    /* Forward: the step's state update is A x + B u with the mapped A. */
    double *next = malloc((size_t)Ln->n_carry * sizeof *next);
    assert_int_equal(sl_layer_step(Ln, x, u, next, NULL, &err), SL_OK);
    sl_op_apply(&ln.A, x, Bp);
    sl_op_apply(&ln.B, ln.u, Bn);
    for (int64_t i = 0; i < lp.n_state; i++) assert_close(next[i], Bp[i] + Bn[i], 1e-12, 1e-14);
    /* And the float forward follows the double step. */
    float xf[3 * 6], yf[3 * 6];
    for (int i = 0; i < 18; i++) xf[i] = (float)sl_test_uniform(&rng, -1, 1);
    assert_int_equal(sl_model_forward(neg, 1, 3, xf, yf, NULL, 0, &err), SL_OK);
    double *c = calloc((size_t)Ln->n_carry, sizeof *c), ud[6], yd[6];
    for (int t = 0; t < 3; t++) {
        for (int k = 0; k < 6; k++) ud[k] = xf[t * 6 + k];
        assert_int_equal(sl_layer_step(Ln, c, ud, next, yd, &err), SL_OK);
        memcpy(c, next, (size_t)Ln->n_carry * sizeof *c);
        for (int k = 0; k < 6; k++) assert_close(yf[t * 6 + k], yd[k], 1e-4, 1e-5);
    }
    sl_linsys_free(&lp);
    sl_linsys_free(&ln);
    free(x); free(Bp); free(Bn); free(next); free(c);
    sl_model_free(pos);
    sl_model_free(neg);
    /* A bad value is refused. */
    json_t *bad = json_pack("{s:i, s:s}", "d_model", 4, "eig_range", "[-2,1]");
    sl_tensors *t2 = sl_tensors_new();
    assert_int_equal(sl_family_find("mamba")->init(bad, 0, t2, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "eig_range"));
    json_decref(bad);
    sl_tensors_free(t2);
}

/* ------------------------------------------------------------ init and run */
static void test_init_run_every_family(void **state)
{
    (void)state;
    struct { const char *opts; int64_t in, out; const char *state; } cases[] = {
        { "lssl --d-model 3 --d-state 8", 3, 3, "x_n" },
        { "lssl --d-model 3 --d-state 4 --measure legt --disc zoh --no-a-shared --n-layer 2", 3, 3, "x_n" },
        { "s4d --d-model 3 --d-state 6 --init inv", 3, 3, "x_n" },
        { "lru --d-model 3 --d-state 4 --r-min 0.5", 3, 3, "x_n" },
        { "lmu --input-size 3 --hidden-size 5 --memory-size 4 --theta 10", 3, 5, "m_n" },
        { "mamba --d-model 3 --d-state 4 --n-layer 2", 3, 3, "h_n" },
        { "mamba --d-model 3 --eig-range [-1,1] --vocab-size 7", 3, 3, "conv_n" },
    };
    char *in = sl_test_path("u.safetensors");
    int64_t shp[3] = { 2, 70, 3 };
    float u[2 * 70 * 3];
    for (int i = 0; i < 2 * 70 * 3; i++) u[i] = (float)(i % 11) / 11.0f - 0.4f;
    sl_st_tensor t = { "u", SL_DT_F32, 3, shp, u };
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(in, &t, 1, NULL, &err), SL_OK);
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char *mp = sl_test_path("m.bin"), *op = sl_test_path("o.safetensors"), args[1024], *out = NULL, *errs = NULL;
        snprintf(args, sizeof args, "init --family %s --seed 5 -o %s", cases[i].opts, mp);
        int rc = sl_test_cli(args, &out, &errs);
        if (rc) fprintf(stderr, "%s: %s\n", args, errs);
        assert_int_equal(rc, 0);
        free(out);
        free(errs);
        for (int algo = 0; algo < 2; algo++) {
            snprintf(args, sizeof args, "run %s --input %s -o %s%s", mp, in, op, algo ? " --algo recurrent" : "");
            assert_int_equal(sl_test_cli(args, &out, NULL), 0);
            free(out);
            sl_model *m = open_model(mp);
            const int64_t ny = 2 * 70 * cases[i].out;
            float *y = malloc((size_t)ny * sizeof *y);
            assert_int_equal(sl_model_forward(m, 2, 70, u, y, NULL, algo ? SL_ALGO_RECURRENT : 0, &err), SL_OK);
            int64_t n;
            float *yw = sl_test_load_f32(op, "y", &n);
            assert_int_equal(n, ny);
            for (int64_t k = 0; k < ny; k++) assert_true(isfinite(yw[k]));
            assert_memory_equal(y, yw, (size_t)ny * sizeof *y);
            free(sl_test_load_f32(op, cases[i].state, NULL));
            free(yw);
            free(y);
            sl_model_free(m);
        }
        snprintf(args, sizeof args, "run %s --input %s --algo reference", mp, in);
        assert_int_equal(sl_test_cli(args, &out, NULL), 0);
        assert_non_null(strstr(out, "output  y [2, 70,"));
        free(out);
        free(mp);
        free(op);
    }
    /* Required options and bad values. */
    char *mp = sl_test_path("bad.bin"), args[512], *errs = NULL;
    snprintf(args, sizeof args, "init --family mamba -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "d_model"));
    free(errs);
    snprintf(args, sizeof args, "init --family lssl --d-model 2 --disc tustin -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "tustin"));
    free(errs);
    snprintf(args, sizeof args, "init --family s4d --d-model 2 --d-state 5 -o %s", mp);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "even"));
    free(errs);
    free(mp);
    free(in);
}

/* Tensors of a model with a wrong shape are refused with the name. */
static void test_bad_tensors(void **state)
{
    (void)state;
    sl_model *m = make_model("s4d", "{\"d_model\": 2, \"d_state\": 4}", 1);
    sl_tensors *ts = sl_tensors_new();
    sl_err err = { 0 };
    for (size_t i = 0; i < m->tensors->n; i++) {
        const sl_tensor *t = &m->tensors->t[i];
        int64_t shp[4] = { t->shape[0], t->shape[1], t->shape[2], 0 };
        if (!strcmp(t->name, "kernel.A_imag")) shp[1] = 3;
        sl_tensor *o;
        assert_int_equal(sl_tensors_add(ts, t->name, t->ndim, shp, NULL, &o, &err), SL_OK);
    }
    json_t *cfg = json_pack("{s:i}", "d_model", 2);
    sl_model *bad = NULL;
    assert_int_equal(sl_model_from_tensors(ts, "s4d", cfg, &bad, &err), SL_EFORMAT);
    assert_non_null(strstr(err.msg, "kernel.A_imag"));
    json_decref(cfg);
    sl_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_vs_pytorch),
        cmocka_unit_test(test_step_matches_pytorch),
        cmocka_unit_test(test_mamba_folders),
        cmocka_unit_test(test_conv_vs_recurrence),
        cmocka_unit_test(test_auto_long),
        cmocka_unit_test(test_forward_states),
        cmocka_unit_test(test_mamba_chunks),
        cmocka_unit_test(test_linsys_finite_differences),
        cmocka_unit_test(test_linsys_structure),
        cmocka_unit_test(test_eig_range),
        cmocka_unit_test(test_init_run_every_family),
        cmocka_unit_test(test_bad_tensors),
    };
    return cmocka_run_group_tests_name("ssm", tests, NULL, NULL);
}
