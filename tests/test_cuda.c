/*
** The CUDA backend (kernels/cuda/) and device selection.
**
** This suite compiles in every build and checks what that build promises:
**   CPU build            `seqlab run --device cuda` (and the library's
**                        forward) fail with "seqlab was built without CUDA
**                        (make CUDA=1)", exit status 2;
**   CUDA=1, no device    the same fail with "no CUDA device found", exit 2;
**                        a family without a CUDA path is named first;
**   CUDA=1 and a device  every CUDA kernel against its CPU reference on odd
**                        shapes and T = 1 (GEMM against OpenBLAS, the gated
**                        recurrences against sl_rnn_forward_ref, the
**                        selective scan against sl_selective_scan_ref_f32,
**                        the matrix-state scan against sl_ms_reference), then
**                        whole models of every family with a CUDA path on
**                        both devices; `seqlab run --device cuda` end to end.
** Comparisons allow 1e-5 relative plus 1e-5 of the largest reference value
** (as tests/test_matstate.c): the GPU sums in another order. Where no device
** is present the numeric tests are skipped, saying so.
*/
#include "sl_test.h"

#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "kernels.h"
#include "layer.h"
#include "matstate.h"
#include "model.h"
#include "safetensors.h"
#include "scan.h"
#include "util.h"
#ifdef SL_CUDA
#include "kernels/cuda/cuda.h"
#endif

/* ------------------------------------------------------------ helpers */
/* 1 when the numeric checks can run here; otherwise says why (once per test). */
static int have_device(const char *what)
{
#ifdef SL_CUDA
    sl_err err = { 0 };
    if (sl_cuda_check(&err) == SL_OK) return 1;
    fprintf(stderr, "%s: skipped, %s\n", what, err.msg);
#else
    fprintf(stderr, "%s: skipped, a CPU build (make CUDA=1 builds the CUDA kernels)\n", what);
#endif
    return 0;
}

static float *frand(uint64_t *rng, int64_t n, double lo, double hi)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)sl_test_uniform(rng, lo, hi);
    return p;
}

static float *fdup(const float *x, int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (n > 0) memcpy(p, x, (size_t)n * sizeof *p);
    return p;
}

/* Worst error ratio of a against ref over n floats: 1e-5 relative plus 1e-5
** of the largest |ref| (<= 1 passes); prints the worst index when above. */
static double worst_f(const float *a, const float *ref, int64_t n, const char *what)
{
    double *da = malloc((size_t)(n > 0 ? n : 1) * sizeof *da), *dr = malloc((size_t)(n > 0 ? n : 1) * sizeof *dr);
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        da[i] = a[i];
        dr[i] = ref[i];
        m = fmax(m, fabs(dr[i]));
    }
    double w = sl_test_worst(da, dr, (size_t)n, 1e-5, 1e-5 * fmax(m, 1e-30), what);
    free(da);
    free(dr);
    return w;
}

#define assert_close_f(a, ref, n, what) assert_true(worst_f((a), (ref), (n), (what)) <= 1.0)

/* A model from `seqlab init --family <spec>` in the test folder (caller frees the path). */
static char *init_model(const char *spec, const char *name)
{
    char *mp = sl_test_path(name), args[1024];
    snprintf(args, sizeof args, "init --family %s --seed 7 -o %s", spec, mp);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    return mp;
}

static sl_model *open_model(const char *path)
{
    sl_model *m = NULL;
    sl_err err = { 0 };
    if (sl_model_open(path, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    return m;
}

/* Input u [B, T, F] written to the test folder (caller frees the path). */
static char *write_input(const char *name, int64_t B, int64_t T, int64_t F, uint64_t seed)
{
    char *path = sl_test_path(name);
    int64_t shp[3] = { B, T, F };
    float *u = frand(&seed, B * T * F, -1, 1);
    sl_st_tensor t = { "u", SL_DT_F32, 3, shp, u };
    sl_err err = { 0 };
    assert_int_equal(sl_st_write(path, &t, 1, NULL, &err), SL_OK);
    free(u);
    return path;
}

/* ------------------------------------------------------------ device selection (every build) */
static void test_device_names(void **state)
{
    (void)state;
    int d = -1;
    sl_err err = { 0 };
    assert_int_equal(sl_device_parse("cpu", &d, &err), SL_OK);
    assert_int_equal(d, SL_DEVICE_CPU);
    assert_int_equal(sl_device_parse("cuda", &d, &err), SL_OK);
    assert_int_equal(d, SL_DEVICE_CUDA);
    assert_int_equal(sl_device_parse("gpu", &d, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "unknown device \"gpu\""));
    assert_string_equal(sl_device_name(SL_DEVICE_CUDA), "cuda");
    assert_int_equal(sl_device_built(SL_DEVICE_CPU), 1);
    assert_int_equal(sl_device_check(SL_DEVICE_CPU, &err), SL_OK);
    const int rc = sl_device_check(SL_DEVICE_CUDA, &err);
#ifdef SL_CUDA
    assert_int_equal(sl_device_built(SL_DEVICE_CUDA), 1);
    if (sl_cuda_available() > 0) {
        assert_int_equal(rc, SL_OK);
    } else {
        assert_int_equal(rc, SL_EUNSUP);
        assert_true(strstr(err.msg, "no CUDA device found") || strstr(err.msg, "no usable CUDA device"));
        fprintf(stderr, "CUDA build without a usable device: \"%s\"\n", err.msg);
    }
#else
    assert_int_equal(sl_device_built(SL_DEVICE_CUDA), 0);
    assert_int_equal(rc, SL_EUNSUP);
    assert_string_equal(err.msg, "seqlab was built without CUDA (make CUDA=1)");
#endif
}

/* The message `--device cuda` must give in this build when it cannot run (NULL: it can). */
static const char *cuda_refusal(void)
{
#ifdef SL_CUDA
    return sl_cuda_available() > 0 ? NULL : "no CUDA device";
#else
    return "seqlab was built without CUDA (make CUDA=1)";
#endif
}

static void test_run_device_cli(void **state)
{
    (void)state;
    char *mp = init_model("lstm --input-size 3 --hidden-size 5 --num-layers 2", "lstm.bin");
    char *in = write_input("u.safetensors", 2, 6, 3, 11);
    char *o_cpu = sl_test_path("y_cpu.safetensors"), *o_gpu = sl_test_path("y_gpu.safetensors");
    char args[2048], *out = NULL, *errs = NULL;
    snprintf(args, sizeof args, "run %s --input %s --device cpu -o %s", mp, in, o_cpu);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "run %s --input %s --device gpu", mp, in);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "--device: unknown device \"gpu\" (cpu, cuda)"));
    free(errs);
    snprintf(args, sizeof args, "run %s --input %s --device cuda -o %s", mp, in, o_gpu);
    const int rc = sl_test_cli(args, &out, &errs);
    const char *why = cuda_refusal();
    if (why) {
        fprintf(stderr, "seqlab run --device cuda: exit %d, %s", rc, errs);
        assert_int_equal(rc, 2);
        assert_true(strstr(errs, why) || strstr(errs, "no usable CUDA device"));
    } else {
        /* A device: the written outputs agree with the CPU's. */
        assert_int_equal(rc, 0);
        const char *names[] = { "y", "h_n", "c_n" };
        for (int i = 0; i < 3; i++) {
            int64_t n1, n2;
            float *a = sl_test_load_f32(o_gpu, names[i], &n1), *r = sl_test_load_f32(o_cpu, names[i], &n2);
            assert_int_equal(n1, n2);
            assert_close_f(a, r, n1, names[i]);
            free(a);
            free(r);
        }
    }
    free(out);
    free(errs);
    free(mp);
    free(in);
    free(o_cpu);
    free(o_gpu);
}

/* A family without a CUDA path is named (after the build check, before the device one). */
static void test_family_without_cuda(void **state)
{
    (void)state;
    char *mp = init_model("s4d --d-model 3 --d-state 4", "s4d.bin");
    char *in = write_input("u3.safetensors", 1, 4, 3, 5);
    char args[2048], *errs = NULL;
    snprintf(args, sizeof args, "run %s --input %s --device cuda", mp, in);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
#ifdef SL_CUDA
    assert_non_null(strstr(errs, "the s4d family has no CUDA path"));
#else
    assert_non_null(strstr(errs, "seqlab was built without CUDA (make CUDA=1)"));
#endif
    fprintf(stderr, "s4d --device cuda: %s", errs);
    free(errs);
    /* The layer interface says the same when called directly. */
    sl_model *m = open_model(mp);
    float u[12] = { 0 }, y[12];
    sl_fwd f = { .B = 1, .T = 4, .x = u, .y = y, .device = SL_DEVICE_CUDA };
    sl_err err = { 0 };
    assert_int_equal(sl_layer_forward(m->layers[0], &f, &err), SL_EUNSUP);
#ifdef SL_CUDA
    assert_non_null(strstr(err.msg, "the s4d family has no CUDA path"));
#else
    assert_non_null(strstr(err.msg, "seqlab was built without CUDA"));
#endif
    sl_model_free(m);
    free(mp);
    free(in);
}

/* The library's forward on a family with a CUDA path: refused with the right
** reason, or (with a device) equal to the CPU's. */
static void test_forward_dev_refusal(void **state)
{
    (void)state;
    char *mp = init_model("gru --input-size 2 --hidden-size 3", "gru.bin");
    sl_model *m = open_model(mp);
    float u[2 * 3 * 2], y[2 * 3 * 3];
    for (int i = 0; i < 12; i++) u[i] = 0.1f * (float)i - 0.5f;
    sl_err err = { 0 };
    const int rc = sl_model_forward_dev(m, 2, 3, u, y, NULL, SL_ALGO_AUTO, SL_DEVICE_CUDA, &err);
    const char *why = cuda_refusal();
    if (why) {
        assert_int_equal(rc, SL_EUNSUP);
        assert_true(strstr(err.msg, why) || strstr(err.msg, "no usable CUDA device"));
    } else {
        assert_int_equal(rc, SL_OK);
        /* The CUDA path has the recurrent algorithm only. */
        assert_int_equal(sl_model_forward_dev(m, 2, 3, u, y, NULL, SL_ALGO_REFERENCE, SL_DEVICE_CUDA, &err), SL_EUNSUP);
    }
    sl_model_free(m);
    free(mp);
}

/* ------------------------------------------------------------ kernels (CUDA build with a device) */
static void test_sgemm(void **state)
{
    (void)state;
    if (!have_device("sgemm")) { skip(); return; }
#ifdef SL_CUDA
    uint64_t rng = 21;
    const struct { int64_t M, N, K, pad; float beta; } cases[] = {
        { 1, 1, 1, 0, 0.0f }, { 3, 5, 7, 2, 0.5f }, { 17, 33, 65, 1, 0.0f }, { 64, 1, 129, 0, -1.0f },
        { 1, 31, 8, 3, 1.0f }, { 5, 4, 0, 0, 0.5f },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int64_t M = cases[c].M, N = cases[c].N, K = cases[c].K, pad = cases[c].pad;
                const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
                const int64_t lda = (ac > 0 ? ac : 1) + pad, ldb = (bc > 0 ? bc : 1) + pad, ldc = N + pad;
                float *A = frand(&rng, ar * lda, -1, 1), *Bm = frand(&rng, br * ldb, -1, 1);
                float *C1 = frand(&rng, M * ldc, -1, 1), *C2 = fdup(C1, M * ldc);
                sl_err err = { 0 };
                sl_sgemm(ta, tb, M, N, K, 0.75f, A, lda, Bm, ldb, cases[c].beta, C1, ldc);
                int rc = sl_cuda_sgemm(ta, tb, M, N, K, 0.75f, A, lda, Bm, ldb, cases[c].beta, C2, ldc, &err);
                if (rc) fprintf(stderr, "%s\n", err.msg);
                assert_int_equal(rc, SL_OK);
                char what[96];
                snprintf(what, sizeof what, "sgemm ta=%d tb=%d M=%lld N=%lld K=%lld", ta, tb, (long long)M,
                         (long long)N, (long long)K);
                /* Padding columns of C are untouched. */
                assert_close_f(C2, C1, M * ldc, what);
                free(A); free(Bm); free(C1); free(C2);
            }
#endif
}

static void test_rnn_forward(void **state)
{
    (void)state;
    if (!have_device("rnn forward")) { skip(); return; }
#ifdef SL_CUDA
    uint64_t rng = 31;
    const struct { sl_cell_kind cell; int leaky, bias; int64_t B, T, in, H, chunk; } cases[] = {
        { SL_CELL_RNN_TANH, 0, 1, 1, 1, 1, 1, 0 },   { SL_CELL_RNN_TANH, 1, 1, 3, 7, 5, 9, 0 },
        { SL_CELL_RNN_RELU, 0, 0, 2, 33, 17, 31, 0 }, { SL_CELL_LSTM, 0, 1, 1, 1, 4, 3, 0 },
        { SL_CELL_LSTM, 0, 1, 3, 29, 7, 33, 4 },      { SL_CELL_LSTM, 0, 0, 2, 40, 3, 64, 0 },
        { SL_CELL_GRU, 0, 1, 1, 1, 2, 5, 0 },         { SL_CELL_GRU, 0, 1, 4, 23, 9, 17, 5 },
        { SL_CELL_GRU, 0, 0, 1, 50, 65, 31, 0 },      { SL_CELL_RNN_RELU, 1, 1, 2, 19, 6, 13, 3 },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        const sl_cell_kind cell = cases[c].cell;
        const int64_t B = cases[c].B, T = cases[c].T, in = cases[c].in, H = cases[c].H;
        const int64_t G = sl_cell_gates(cell), nc = sl_cell_carry(cell, H);
        const double k = 1.0 / sqrt((double)H);
        float *wih = frand(&rng, G * H * in, -k, k), *whh = frand(&rng, G * H * H, -k, k);
        float *bih = frand(&rng, G * H, -k, k), *bhh = frand(&rng, G * H, -k, k);
        float *tau = frand(&rng, H, 1.0, 4.0), *alpha = malloc((size_t)H * sizeof *alpha);
        for (int64_t j = 0; j < H; j++) alpha[j] = 1.0f / tau[j];
        sl_rnn_weights w = { .cell = cell, .in = in, .H = H, .w_ih = wih, .w_hh = whh,
                             .b_ih = cases[c].bias ? bih : NULL, .b_hh = cases[c].bias ? bhh : NULL,
                             .alpha = cases[c].leaky ? alpha : NULL, .tau = cases[c].leaky ? tau : NULL };
        float *x = frand(&rng, B * T * in, -1, 1);
        float *c1 = frand(&rng, B * nc, -0.5, 0.5), *c2 = fdup(c1, B * nc);
        float *y1 = malloc((size_t)(B * T * H) * sizeof *y1), *y2 = malloc((size_t)(B * T * H) * sizeof *y2);
        float *s1 = malloc((size_t)(B * T * nc) * sizeof *s1), *s2 = malloc((size_t)(B * T * nc) * sizeof *s2);
        sl_err err = { 0 };
        assert_int_equal(sl_rnn_forward_ref(&w, B, T, x, y1, c1, s1, &err), SL_OK);
        sl_cuda_rnn_set_chunk(cases[c].chunk);
        int rc = sl_cuda_rnn_forward(&w, B, T, x, y2, c2, s2, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, SL_OK);
        char what[96];
        snprintf(what, sizeof what, "rnn cell %d leaky %d B=%lld T=%lld in=%lld H=%lld chunk %lld", (int)cell,
                 cases[c].leaky, (long long)B, (long long)T, (long long)in, (long long)H, (long long)cases[c].chunk);
        fprintf(stderr, "%s\n", what);
        assert_close_f(y2, y1, B * T * H, "y");
        assert_close_f(c2, c1, B * nc, "carry");
        assert_close_f(s2, s1, B * T * nc, "states");
        /* No carry, no states: zeros in, the same outputs as the reference's. */
        assert_int_equal(sl_rnn_forward_ref(&w, B, T, x, y1, NULL, NULL, &err), SL_OK);
        assert_int_equal(sl_cuda_rnn_forward(&w, B, T, x, y2, NULL, NULL, &err), SL_OK);
        assert_close_f(y2, y1, B * T * H, "y from zeros");
        sl_cuda_rnn_set_chunk(0);
        free(wih); free(whh); free(bih); free(bhh); free(tau); free(alpha);
        free(x); free(c1); free(c2); free(y1); free(y2); free(s1); free(s2);
    }
#endif
}

static void test_selective_scan(void **state)
{
    (void)state;
    if (!have_device("selective scan")) { skip(); return; }
#ifdef SL_CUDA
    uint64_t rng = 41;
    const struct { int64_t nb, T, C, N; int neg, gate, D, hs; } cases[] = {
        { 1, 1, 1, 1, 0, 0, 1, 1 },   { 2, 9, 3, 5, 0, 1, 1, 1 },   { 3, 1, 37, 4, 1, 1, 0, 0 },
        { 2, 25, 70, 16, 1, 0, 1, 1 }, { 1, 17, 33, 3, 0, 1, 1, 0 }, { 2, 5, 7, 64, 0, 1, 1, 1 },
        { 1, 3, 5, 100, 1, 1, 1, 1 }, { 1, 4, 3, 300, 0, 0, 0, 1 },  { 2, 6, 9, 33, 0, 1, 1, 0 },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        const int64_t nb = cases[c].nb, T = cases[c].T, C = cases[c].C, N = cases[c].N, W = 1 + 2 * N;
        /* Leading dimensions wider than the rows, as Mamba's buffers are. */
        const int64_t ldx = C + 1, ldh = C * N + 2, ldhs = C * N + 3, ldy = C + 2;
        float *A = frand(&rng, C * N, -4, -0.1), *D = frand(&rng, C, -1, 1), *x = frand(&rng, nb * T * ldx, -1, 1),
              *dt = frand(&rng, nb * T * ldx, 0.01, 1.5), *bc = frand(&rng, nb * T * W, -1, 1),
              *z = frand(&rng, nb * T * 2 * C, -2, 2);
        float *h1 = frand(&rng, nb * ldh, -1, 1), *h2 = fdup(h1, nb * ldh);
        float *y1 = frand(&rng, nb * T * ldy, -1, 1), *y2 = fdup(y1, nb * T * ldy);
        float *s1 = frand(&rng, nb * T * ldhs, -1, 1), *s2 = fdup(s1, nb * T * ldhs);
        sl_sscan sc = { .C = C, .N = N, .A = A, .D = cases[c].D ? D : NULL, .neg = cases[c].neg };
        sl_sscan_io io = { .nb = nb, .T = T, .x = x, .ldx = ldx, .dt = dt, .lddt = ldx, .Bm = bc + 1,
                           .Cm = bc + 1 + N, .ldbc = W, .z = cases[c].gate ? z + C : NULL, .ldz = 2 * C,
                           .y = y1, .ldy = ldy, .h = h1, .ldh = ldh, .hs = cases[c].hs ? s1 : NULL, .ldhs = ldhs };
        sl_selective_scan_ref_f32(&sc, &io);
        io.y = y2;
        io.h = h2;
        io.hs = cases[c].hs ? s2 : NULL;
        sl_err err = { 0 };
        int rc = sl_cuda_selective_scan(&sc, &io, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, SL_OK);
        fprintf(stderr, "selective scan nb=%lld T=%lld C=%lld N=%lld neg=%d gate=%d\n", (long long)nb, (long long)T,
                (long long)C, (long long)N, cases[c].neg, cases[c].gate);
        assert_close_f(y2, y1, nb * T * ldy, "y");
        assert_close_f(h2, h1, nb * ldh, "h");
        assert_close_f(s2, s1, nb * T * ldhs, "hs");
        free(A); free(D); free(x); free(dt); free(bc); free(z);
        free(h1); free(h2); free(y1); free(y2); free(s1); free(s2);
    }
#endif
}

enum { F_NONE, F_SCALAR, F_VECTOR, F_DELTA, F_GDELTA, F_NFORMS };

static void test_matstate_scan(void **state)
{
    (void)state;
    if (!have_device("matrix-state scan")) { skip(); return; }
#ifdef SL_CUDA
    static const char *const names[] = { "no gate", "scalar gate", "vector gate", "delta", "gated delta" };
    uint64_t rng = 51;
    const struct { int64_t nb, nh, T, dk, dv; } shapes[] = {
        { 1, 1, 1, 1, 1 }, { 2, 3, 9, 16, 31 }, { 1, 2, 64, 33, 65 }, { 2, 1, 20, 64, 64 },
        { 1, 1, 7, 130, 5 }, { 3, 2, 1, 128, 130 }, { 1, 3, 40, 8, 9 },
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(shapes); c++)
        for (int form = 0; form < F_NFORMS; form++) {
            const int64_t nb = shapes[c].nb, nh = shapes[c].nh, T = shapes[c].T, dk = shapes[c].dk,
                          dv = shapes[c].dv, R = nb * T;
            const int64_t gdim = form == F_VECTOR ? dk : 1;
            /* Padded rows: every head side by side, then a few spare columns. */
            const int64_t ldq = nh * dk + 3, ldv = nh * dv + 1, ldg = nh * gdim + 2, ldb = nh + 1, ldo = nh * dv + 2,
                          ldS = nh * dk * dv + 5;
            float *q = frand(&rng, R * ldq, -1, 1), *k = frand(&rng, R * ldq, -1, 1), *v = frand(&rng, R * ldv, -1, 1);
            float *g = frand(&rng, R * ldg, -1, 0), *beta = frand(&rng, R * ldb, 0, form == F_DELTA ? 2 : 1);
            float *S1 = frand(&rng, nb * ldS, -0.5, 0.5), *S2 = fdup(S1, nb * ldS);
            float *o1 = frand(&rng, R * ldo, -1, 1), *o2 = fdup(o1, R * ldo);
            if (form >= F_DELTA)   /* unit keys, as DeltaNet's L2 normalisation gives */
                for (int64_t r = 0; r < R; r++)
                    for (int64_t h = 0; h < nh; h++) {
                        float *kh = k + r * ldq + h * dk;
                        double n2 = 0;
                        for (int64_t i = 0; i < dk; i++) n2 += (double)kh[i] * kh[i];
                        for (int64_t i = 0; i < dk; i++) kh[i] = (float)(kh[i] / sqrt(n2));
                    }
            sl_ms_batch mb = { .nb = nb, .nh = nh, .T = T, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .ldq = ldq,
                               .ldk = ldq, .ldv = ldv, .scale = 1.0f / sqrtf((float)dk), .o = o1, .ldo = ldo,
                               .S = S1, .ldS = ldS };
            if (form == F_SCALAR || form == F_VECTOR || form == F_GDELTA) { mb.g = g; mb.ldg = ldg; mb.gdim = gdim; }
            if (form >= F_DELTA) { mb.beta = beta; mb.ldb = ldb; }
            for (int64_t b = 0; b < nb; b++)
                for (int64_t h = 0; h < nh; h++) {
                    sl_ms_seq s = sl_ms_batch_seq(&mb, b, h);
                    sl_ms_reference(&s);
                }
            mb.o = o2;
            mb.S = S2;
            sl_err err = { 0 };
            int rc = sl_cuda_matstate_scan(&mb, &err);
            if (rc) fprintf(stderr, "%s\n", err.msg);
            assert_int_equal(rc, SL_OK);
            fprintf(stderr, "matrix-state scan %s nb=%lld nh=%lld T=%lld dk=%lld dv=%lld\n", names[form],
                    (long long)nb, (long long)nh, (long long)T, (long long)dk, (long long)dv);
            assert_close_f(o2, o1, R * ldo, "o");
            assert_close_f(S2, S1, nb * ldS, "S");
            free(q); free(k); free(v); free(g); free(beta); free(S1); free(S2); free(o1); free(o2);
        }
#endif
}

/* Whole models of every family with a CUDA path: the same forward on both
** devices, final carries included, and a layer's every-step states. */
static void test_models_both_devices(void **state)
{
    (void)state;
    if (!have_device("models on both devices")) { skip(); return; }
    const char *specs[] = {
        "rnn --input-size 3 --hidden-size 5 --num-layers 2", "rnn --leaky --tau 2.5 --input-size 4 --hidden-size 7",
        "lstm --input-size 3 --hidden-size 9 --num-layers 2", "gru --input-size 5 --hidden-size 6",
        "mamba --d-model 8", "mamba --d-model 6 --d-state 40", "linear_attn --hidden-size 16",
        "retnet --hidden-size 16", "gla --hidden-size 16", "delta_net --hidden-size 16",
        "gated_delta_net --hidden-size 16", "mlstm --hidden-size 16",
    };
    uint64_t rng = 61;
    for (size_t i = 0; i < SL_ARRAY_LEN(specs); i++) {
        char *mp = init_model(specs[i], "fam.bin");
        sl_model *m = open_model(mp);
        const int64_t B = 2, T = 13, L = m->n_layers;
        float *x = frand(&rng, B * T * m->n_in, -1, 1);
        float *y1 = malloc((size_t)(B * T * m->n_out) * sizeof *y1), *y2 = malloc((size_t)(B * T * m->n_out) * sizeof *y2);
        float **c1 = calloc((size_t)L, sizeof *c1), **c2 = calloc((size_t)L, sizeof *c2);
        for (int64_t l = 0; l < L; l++) {
            c1[l] = frand(&rng, B * m->layers[l]->n_carry, -0.2, 0.2);
            c2[l] = fdup(c1[l], B * m->layers[l]->n_carry);
        }
        /* mLSTM's stabiliser and RetNet's position are not free state: start them at zero. */
        if (strstr(specs[i], "mlstm") || strstr(specs[i], "retnet"))
            for (int64_t l = 0; l < L; l++) {
                memset(c1[l], 0, (size_t)(B * m->layers[l]->n_carry) * sizeof(float));
                memset(c2[l], 0, (size_t)(B * m->layers[l]->n_carry) * sizeof(float));
            }
        sl_err err = { 0 };
        assert_int_equal(sl_model_forward_dev(m, B, T, x, y1, c1, SL_ALGO_RECURRENT, SL_DEVICE_CPU, &err), SL_OK);
        int rc = sl_model_forward_dev(m, B, T, x, y2, c2, SL_ALGO_AUTO, SL_DEVICE_CUDA, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, SL_OK);
        fprintf(stderr, "%s: ", specs[i]);
        assert_close_f(y2, y1, B * T * m->n_out, "y");
        for (int64_t l = 0; l < L; l++) assert_close_f(c2[l], c1[l], B * m->layers[l]->n_carry, "carry");
        /* Every step's carry of the first layer. */
        const sl_layer *L0 = m->layers[0];
        float *s1 = malloc((size_t)(B * T * L0->n_carry) * sizeof *s1), *s2 = malloc((size_t)(B * T * L0->n_carry) * sizeof *s2);
        float *z1 = malloc((size_t)(B * T * L0->n_out) * sizeof *z1), *z2 = malloc((size_t)(B * T * L0->n_out) * sizeof *z2);
        sl_fwd f1 = { .B = B, .T = T, .x = x, .y = z1, .states = s1, .algo = SL_ALGO_RECURRENT };
        sl_fwd f2 = { .B = B, .T = T, .x = x, .y = z2, .states = s2, .device = SL_DEVICE_CUDA };
        assert_int_equal(sl_layer_forward(L0, &f1, &err), SL_OK);
        assert_int_equal(sl_layer_forward(L0, &f2, &err), SL_OK);
        assert_close_f(z2, z1, B * T * L0->n_out, "layer 0 y");
        assert_close_f(s2, s1, B * T * L0->n_carry, "layer 0 states");
        for (int64_t l = 0; l < L; l++) { free(c1[l]); free(c2[l]); }
        free(c1); free(c2); free(x); free(y1); free(y2); free(s1); free(s2); free(z1); free(z2);
        sl_model_free(m);
        free(mp);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_names),
        cmocka_unit_test(test_run_device_cli),
        cmocka_unit_test(test_family_without_cuda),
        cmocka_unit_test(test_forward_dev_refusal),
        cmocka_unit_test(test_sgemm),
        cmocka_unit_test(test_rnn_forward),
        cmocka_unit_test(test_selective_scan),
        cmocka_unit_test(test_matstate_scan),
        cmocka_unit_test(test_models_both_devices),
    };
    return cmocka_run_group_tests_name("cuda", tests, NULL, NULL);
}
