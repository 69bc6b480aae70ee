/*
** seqlab_bench: the C side of `make bench`. Times seqlab's kernels on shapes the
** Python driver (bench/bench.py) chooses, and prints one JSON object per line.
**
**   seqlab_bench sgemm N [threads]             best GFLOP/s of an N x N x N sgemm
**   seqlab_bench fmapeak [threads]             the machine's float FMA peak: independent
**                                              multiply-adds in registers, widest ISA
**   seqlab_bench forward MODEL B T [threads] [algo] [repeat]
**                                              best seconds of a forward pass on random input,
**                                              the peak resident memory of the process, and
**                                              how much the forward passes added to it
**                                              (x and y are allocated and touched before)
**   seqlab_bench scan FORM B H T D [threads] [algo] [repeat] [chunk]
**                                              best seconds of the matrix-state scan alone
**                                              (kernels/matstate.c) over B x H heads of d_k = d_v = D;
**                                              FORM: gated, scalar, vector, delta, gdelta
**   seqlab_bench train FAMILY H T B STEPS [threads] [repeat]
**                                              training throughput (sequences per second) on
**                                              running parity of length T: the best of `repeat`
**                                              runs of STEPS AdamW steps (clip 1, lr 1e-3) after
**                                              two warm-up steps, linear readout, loss at every step;
**                                              H is d_model for families sized by it (mamba, lru, s4d)
*/
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "kernels.h"
#include "matstate.h"
#include "model.h"
#include "tasks.h"
#include "train.h"
#include "util.h"

/* Peak resident memory of this process image (VmHWM is reset by exec, unlike
** getrusage's ru_maxrss, which would include the Python parent's pages). */
static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

static int bench_sgemm(int64_t n, int threads)
{
    sl_set_threads(threads);
    float *a = malloc((size_t)(n * n) * sizeof *a), *b = malloc((size_t)(n * n) * sizeof *b),
          *c = malloc((size_t)(n * n) * sizeof *c);
    for (int64_t i = 0; i < n * n; i++) { a[i] = (float)(i % 13) * 0.01f; b[i] = (float)(i % 7) * 0.02f; }
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = sl_now();
        sl_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        best = SL_MIN(best, sl_now() - t0);
    }
    printf("{\"what\": \"sgemm\", \"n\": %lld, \"threads\": %d, \"seconds\": %.6g, \"gflops\": %.4g}\n", (long long)n,
           threads, best, 2.0 * (double)n * (double)n * (double)n / best * 1e-9);
    free(a); free(b); free(c);
    return 0;
}

/* 12 independent FMA chains per thread: enough to cover latency x pipes. */
#define FMA_LOOP(T, SET1, FMADD, LANES)                                                       \
    {                                                                                         \
        T a[12], x = SET1(0.9999f), y = SET1(1e-5f);                                          \
        for (int i = 0; i < 12; i++) a[i] = SET1((float)i * 1e-3f);                           \
        for (long k = 0; k < n; k++)                                                          \
            for (int i = 0; i < 12; i++) a[i] = FMADD(a[i], x, y);                            \
        float s = 0, tmp[LANES];                                                              \
        for (int i = 0; i < 12; i++) {                                                        \
            memcpy(tmp, &a[i], sizeof tmp);                                                   \
            s += tmp[0];                                                                      \
        }                                                                                     \
        return s;                                                                             \
    }
__attribute__((target("avx512f"), optimize("O3"))) static float fma512(long n) FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
__attribute__((target("avx2,fma"), optimize("O3"))) static float fma256(long n) FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)

static int bench_fmapeak(int threads)
{
    __builtin_cpu_init();
    const int w = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("fma") ? 8 : 0;
    if (!w) { printf("{\"what\": \"fmapeak\", \"gflops\": 0}\n"); return 0; }
    const long n = 20000000;
    double best = 1e30;
    float sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = sl_now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += w == 16 ? fma512(n) : fma256(n);
        best = SL_MIN(best, sl_now() - t0);
    }
    printf("{\"what\": \"fmapeak\", \"threads\": %d, \"lanes\": %d, \"gflops\": %.4g, \"sink\": %g}\n", threads, w,
           2.0 * 12 * w * (double)n * threads / best * 1e-9, (double)sink);
    return 0;
}

static int bench_forward(const char *path, int64_t B, int64_t T, int threads, int algo, int repeat)
{
    sl_set_threads(threads);
    sl_model *m;
    sl_err err = { 0 };
    if (sl_model_open(path, &m, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
    float *x = malloc((size_t)(B * T * m->n_in) * sizeof *x), *y = malloc((size_t)(B * T * m->n_out) * sizeof *y);
    uint64_t s = 12345;
    for (int64_t i = 0; i < B * T * m->n_in; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    memset(y, 0xff, (size_t)(B * T * m->n_out) * sizeof *y);   /* touched (not 0: GCC would make it calloc) */
    double rss0 = peak_rss_mb();
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        double t0 = sl_now();
        if (sl_model_forward(m, B, T, x, y, NULL, algo, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        best = SL_MIN(best, sl_now() - t0);
    }
    printf("{\"what\": \"forward\", \"model\": \"%s\", \"B\": %lld, \"T\": %lld, \"threads\": %d, \"algo\": %d, "
           "\"seconds\": %.6g, \"rss_before_mb\": %.1f, \"peak_rss_mb\": %.1f, \"checksum\": %.6g}\n",
           path, (long long)B, (long long)T, threads, algo, best, rss0, peak_rss_mb(), (double)y[B * T * m->n_out - 1]);
    free(x); free(y);
    sl_model_free(m);
    return 0;
}

static int bench_scan(const char *form, int64_t B, int64_t H, int64_t T, int64_t D, int threads, int algo, int repeat,
                      int64_t C)
{
    sl_set_threads(threads);
    const int64_t n = B * H;
    int gdim = !strcmp(form, "vector") ? (int)D : (!strcmp(form, "scalar") || !strcmp(form, "gdelta")) ? 1 : 0;
    int delta = !strcmp(form, "delta") || !strcmp(form, "gdelta");
    if (C <= 0) C = delta ? 16 : 32;
    float *q = malloc((size_t)(n * T * D) * sizeof *q), *k = malloc((size_t)(n * T * D) * sizeof *k),
          *v = malloc((size_t)(n * T * D) * sizeof *v), *g = malloc((size_t)(n * T * D) * sizeof *g),
          *b = malloc((size_t)(n * T) * sizeof *b), *o = malloc((size_t)(n * T * D) * sizeof *o),
          *S = calloc((size_t)(n * D * D), sizeof *S);
    const int64_t ws = sl_ms_workspace(C, D, D);
    float *work = malloc((size_t)(threads * ws) * sizeof *work);
    uint64_t s = 7;
    for (int64_t i = 0; i < n * T * D; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float r = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
        q[i] = r; k[i] = 0.25f * r; v[i] = -r; g[i] = -0.05f + 0.02f * r;
    }
    for (int64_t i = 0; i < n * T; i++) b[i] = 0.5f;
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        double t0 = sl_now();
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (int64_t h = 0; h < n; h++) {
            sl_ms_seq sq = { .T = T, .dk = D, .dv = D, .q = q + h * T * D, .k = k + h * T * D, .v = v + h * T * D,
                             .ldq = D, .ldk = D, .ldv = D, .scale = 0.125f, .o = o + h * T * D, .ldo = D, .S = S + h * D * D };
            if (gdim) { sq.g = g + h * T * D; sq.ldg = D; sq.gdim = gdim; }
            if (delta) { sq.beta = b + h * T; sq.ldb = 1; }
            float *w = work + (int64_t)omp_get_thread_num() * ws;
            if (algo == 2) sl_ms_chunked(&sq, C, w);
            else sl_ms_recurrent(&sq, w);
        }
        best = SL_MIN(best, sl_now() - t0);
    }
    printf("{\"what\": \"scan\", \"form\": \"%s\", \"B\": %lld, \"H\": %lld, \"T\": %lld, \"D\": %lld, \"threads\": %d, "
           "\"algo\": %d, \"chunk\": %lld, \"seconds\": %.6g, \"checksum\": %.6g}\n", form, (long long)B, (long long)H,
           (long long)T, (long long)D, threads, algo, (long long)C, best, (double)o[n * T * D - 1]);
    free(q); free(k); free(v); free(g); free(b); free(o); free(S); free(work);
    return 0;
}

static int bench_train(const char *family, int64_t H, int64_t T, int64_t B, int64_t steps, int threads, int repeat)
{
    sl_set_threads(threads);
    sl_err err = { 0 };
    const sl_family *fam = sl_family_find(family);
    if (!fam) { fprintf(stderr, "unknown family %s\n", family); return 2; }
    /* H is the width: hidden_size, or d_model for the families sized by it (lru, s4d, mamba, ...: the
    ** trainer adds its input projection); their other options at their defaults. */
    int by_dm = 0;
    for (const sl_config_key *k = fam->keys; k && k->name; k++) by_dm |= !strcmp(k->name, "d_model");
    json_t *topts = json_pack("{s:I}", "length", (json_int_t)T),
           *fcfg = json_pack("{s:I}", by_dm ? "d_model" : "hidden_size", (json_int_t)H);
    json_t *rcfg = json_pack("{s:I, s:I, s:f, s:f, s:s, s:I}", "steps", (json_int_t)(steps + 3), "batch", (json_int_t)B,
                             "lr", 1e-3, "clip", 1.0, "schedule", "constant", "eval_every", (json_int_t)0);
    sl_task *task = NULL;
    sl_train_opts o;
    double best = 1e30, loss = 0, ph[5] = { 0 }, phb[5] = { 0 };
    int rc = sl_task_new("parity", topts, &task, &err) || sl_train_opts_from_json(rcfg, &o, &err);
    for (int r = 0; !rc && r < repeat; r++) {
        sl_trainer *tr = NULL;
        if ((rc = sl_trainer_new(fam, fcfg, task, NULL, &o, NULL, &tr, &err))) break;
        sl_train_step_info info;
        for (int w = 0; w < 2 && !rc; w++) rc = sl_trainer_step(tr, &info, &err);
        double t0 = sl_now();
        memset(ph, 0, sizeof ph);
        for (int64_t s = 0; s < steps && !rc; s++) {
            /* The final step of o.steps would also evaluate: never reached here. */
            rc = sl_trainer_step(tr, &info, &err);
            ph[0] += info.t_batch; ph[1] += info.t_forward; ph[2] += info.t_readout;
            ph[3] += info.t_backward; ph[4] += info.t_update;
        }
        double dt = sl_now() - t0;
        if (dt < best) memcpy(phb, ph, sizeof ph);
        best = SL_MIN(best, dt);
        loss = info.loss;
        sl_trainer_free(tr);
    }
    if (rc) fprintf(stderr, "%s\n", err.msg);
    else
        printf("{\"what\": \"train\", \"family\": \"%s\", \"H\": %lld, \"T\": %lld, \"B\": %lld, \"steps\": %lld, "
               "\"threads\": %d, \"seconds\": %.6g, \"seq_per_s\": %.6g, \"loss\": %.6g, \"peak_rss_mb\": %.1f, "
               "\"ms_per_step\": {\"batch\": %.3f, \"forward\": %.3f, \"readout_loss\": %.3f, \"backward\": %.3f, "
               "\"update\": %.3f}}\n",
               family, (long long)H, (long long)T, (long long)B, (long long)steps, threads, best,
               (double)(steps * B) / best, loss, peak_rss_mb(), 1e3 * phb[0] / (double)steps, 1e3 * phb[1] / (double)steps,
               1e3 * phb[2] / (double)steps, 1e3 * phb[3] / (double)steps, 1e3 * phb[4] / (double)steps);
    sl_task_free(task);
    json_decref(topts);
    json_decref(fcfg);
    json_decref(rcfg);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "scan") == 0)
        return bench_scan(argv[2], atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), atoll(argv[6]),
                          argc > 7 ? atoi(argv[7]) : 2, argc > 8 ? atoi(argv[8]) : 2, argc > 9 ? atoi(argv[9]) : 3,
                          argc > 10 ? atoll(argv[10]) : 0);
    if (argc >= 7 && strcmp(argv[1], "train") == 0)
        return bench_train(argv[2], atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), atoll(argv[6]),
                           argc > 7 ? atoi(argv[7]) : 2, argc > 8 ? atoi(argv[8]) : 1);
    if (argc >= 3 && strcmp(argv[1], "sgemm") == 0)
        return bench_sgemm(atoll(argv[2]), argc > 3 ? atoi(argv[3]) : 2);
    if (argc >= 2 && strcmp(argv[1], "fmapeak") == 0) return bench_fmapeak(argc > 2 ? atoi(argv[2]) : 2);
    if (argc >= 5 && strcmp(argv[1], "forward") == 0)
        return bench_forward(argv[2], atoll(argv[3]), atoll(argv[4]), argc > 5 ? atoi(argv[5]) : 2,
                             argc > 6 ? atoi(argv[6]) : 0, argc > 7 ? atoi(argv[7]) : 3);
    fprintf(stderr, "usage: seqlab_bench sgemm N [threads] | fmapeak [threads] | forward MODEL B T [threads] [algo] [repeat]\n"
                    "       seqlab_bench scan FORM B H T D [threads] [algo] [repeat] [chunk]\n"
                    "       seqlab_bench train FAMILY H T B STEPS [threads] [repeat]\n");
    return 2;
}
