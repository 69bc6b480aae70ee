/*
** seqlab_bench: the C side of `make bench`. Times seqlab's kernels on shapes the
** Python driver (bench/bench.py) chooses, and prints one JSON object per line.
**
**   seqlab_bench sgemm N [threads]             best GFLOP/s of an N x N x N sgemm
**   seqlab_bench forward MODEL B T [threads] [algo] [repeat]
**                                              best seconds of a forward pass on random input,
**                                              and the peak resident memory of the process
*/
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
    if (argc >= 5 && strcmp(argv[1], "forward") == 0)
        return bench_forward(argv[2], atoll(argv[3]), atoll(argv[4]), argc > 5 ? atoi(argv[5]) : 2,
                             argc > 6 ? atoi(argv[6]) : 0, argc > 7 ? atoi(argv[7]) : 3);
    fprintf(stderr, "usage: seqlab_bench sgemm N [threads] | forward MODEL B T [threads] [algo] [repeat]\n");
    return 2;
}
