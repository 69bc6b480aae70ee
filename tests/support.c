/*
** Shared test support: see sl_test.h.
*/
#include "sl_test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int sl_test_close(double a, double b, double rtol, double atol, const char *ea, const char *eb, const char *file,
                  int line)
{
    double tol = atol + rtol * fabs(b);
    if (fabs(a - b) <= tol || (isnan(a) && isnan(b)) || (isinf(a) && a == b)) return 1;
    fprintf(stderr, "%s:%d: %s = %.17g, %s = %.17g, |diff| = %.3g > tol %.3g\n", file, line, ea, a, eb, b,
            fabs(a - b), tol);
    return 0;
}

double sl_test_worst(const double *a, const double *b, size_t n, double rtol, double atol, const char *what)
{
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (isnan(r) || r > worst) { worst = isnan(r) ? INFINITY : r; wi = i; }
    }
    if (worst > 1.0)
        fprintf(stderr, "%s: worst at [%zu]: %.17g vs %.17g (ratio to tolerance %.3g)\n", what, wi, a[wi], b[wi], worst);
    else
        fprintf(stderr, "%s: %zu values within tolerance (worst ratio %.3g)\n", what, n, worst);
    return worst;
}

static char *slurp(FILE *fp)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *t = realloc(s, cap * 2);
            if (!t) break;
            s = t;
            cap *= 2;
        }
    }
    s[len] = '\0';
    return s;
}

int sl_test_cli(const char *args, char **out, char **err)
{
    const char *bin = getenv("SL_BIN");
    if (!bin) bin = "build/seqlab";
    char errpath[] = "/tmp/sl_test_err.XXXXXX";
    int efd = mkstemp(errpath);
    if (efd < 0) return -1;
    close(efd);
    size_t n = strlen(bin) + strlen(args) + strlen(errpath) + 32;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s %s 2>%s", bin, args, errpath);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) { unlink(errpath); return -1; }
    char *o = slurp(p);
    int st = pclose(p);
    FILE *ef = fopen(errpath, "r");
    char *e = ef ? slurp(ef) : NULL;
    if (ef) fclose(ef);
    unlink(errpath);
    if (out) *out = o; else free(o);
    if (err) *err = e; else free(e);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static char tmpdir_buf[256];

static void rm_tmpdir(void)
{
    if (!tmpdir_buf[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir_buf);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir_buf);
}

const char *sl_test_tmpdir(void)
{
    if (tmpdir_buf[0]) return tmpdir_buf;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir_buf, sizeof tmpdir_buf, "%s/seqlab-test.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir_buf)) { tmpdir_buf[0] = '\0'; return "/tmp"; }
    atexit(rm_tmpdir);
    return tmpdir_buf;
}

char *sl_test_path(const char *name)
{
    const char *d = sl_test_tmpdir();
    size_t n = strlen(d) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", d, name);
    return p;
}

int sl_test_shared_model(const char *name, char *path, size_t n)
{
    snprintf(path, n, "../shared/models/%s", name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    fprintf(stderr, "SKIP: %s not present (../shared/models is absent)\n", path);
    return 0;
}

double sl_test_uniform(uint64_t *s, double lo, double hi)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) * (1.0 / 9007199254740992.0);
}
