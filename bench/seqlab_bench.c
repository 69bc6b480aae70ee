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
*/
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
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

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "sgemm") == 0)
        return bench_sgemm(atoll(argv[2]), argc > 3 ? atoi(argv[3]) : 2);
    if (argc >= 2 && strcmp(argv[1], "fmapeak") == 0) return bench_fmapeak(argc > 2 ? atoi(argv[2]) : 2);
    if (argc >= 5 && strcmp(argv[1], "forward") == 0)
        return bench_forward(argv[2], atoll(argv[3]), atoll(argv[4]), argc > 5 ? atoi(argv[5]) : 2,
                             argc > 6 ? atoi(argv[6]) : 0, argc > 7 ? atoi(argv[7]) : 3);
    fprintf(stderr, "usage: seqlab_bench sgemm N [threads] | fmapeak [threads] | forward MODEL B T [threads] [algo] [repeat]\n");
    return 2;
}
