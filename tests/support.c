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

#include "safetensors.h"

static void *load_any(const char *path, const char *name, int64_t *n, int dbl)
{
    sl_stfile *f = NULL;
    sl_err err = { 0 };
    if (sl_stfile_open(path, &f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        fail();
    }
    const sl_st_entry *e = sl_stfile_find(f, name);
    if (!e) {
        fprintf(stderr, "%s: no tensor %s\n", path, name);
        sl_stfile_close(f);
        fail();
        return NULL;
    }
    void *out = malloc((size_t)(e->numel ? e->numel : 1) * (dbl ? sizeof(double) : sizeof(float)));
    if (dbl) sl_stfile_read_f64(f, e, out);
    else sl_stfile_read_f32(f, e, out);
    if (n) *n = e->numel;
    sl_stfile_close(f);
    return out;
}

double *sl_test_load_f64(const char *path, const char *name, int64_t *n) { return load_any(path, name, n, 1); }
float *sl_test_load_f32(const char *path, const char *name, int64_t *n) { return load_any(path, name, n, 0); }

#include "layer.h"

double sl_test_check_linsys(const sl_layer *L, const double *carry, const double *u, double rtol, double atol)
{
    const int64_t nc = L->n_carry, n = L->n_state, in = L->n_in;
    sl_linsys ls;
    sl_linsys_init(&ls);
    sl_err err = { 0 };
    if (sl_layer_linsys(L, carry, u, SL_LS_ALL, &ls, &err)) {
        fprintf(stderr, "linsys: %s\n", err.msg);
        return INFINITY;
    }
    double worst = 0;
    double *Ad = malloc((size_t)(n * n) * sizeof *Ad), *Afd = malloc((size_t)(n * n) * sizeof *Afd);
    double *cp = malloc((size_t)nc * sizeof *cp), *cm = malloc((size_t)nc * sizeof *cm);
    double *np = malloc((size_t)nc * sizeof *np), *nm = malloc((size_t)nc * sizeof *nm);
    double *up = malloc((size_t)(in + 1) * sizeof *up), *um = malloc((size_t)(in + 1) * sizeof *um);
    const double h = 1e-6;
    sl_op_to_dense(&ls.A, Ad);
    for (int64_t j = 0; j < n; j++) {
        memcpy(cp, carry, (size_t)nc * sizeof *cp);
        memcpy(cm, carry, (size_t)nc * sizeof *cm);
        cp[j] += h;
        cm[j] -= h;
        sl_layer_step(L, cp, u, np, NULL, &err);
        sl_layer_step(L, cm, u, nm, NULL, &err);
        for (int64_t i = 0; i < n; i++) Afd[i * n + j] = (np[i] - nm[i]) / (2 * h);
    }
    double w = sl_test_worst(Ad, Afd, (size_t)(n * n), rtol, atol, "A vs finite differences");
    worst = fmax(worst, w);
    if (ls.u_name && strcmp(ls.u_name, "u") == 0 && ls.B.kind != SL_OP_NONE) {
        double *Bd = malloc((size_t)(n * in) * sizeof *Bd), *Bfd = malloc((size_t)(n * in) * sizeof *Bfd);
        sl_op_to_dense(&ls.B, Bd);
        for (int64_t j = 0; j < in; j++) {
            memcpy(up, u, (size_t)in * sizeof *up);
            memcpy(um, u, (size_t)in * sizeof *um);
            up[j] += h;
            um[j] -= h;
            sl_layer_step(L, carry, up, np, NULL, &err);
            sl_layer_step(L, carry, um, nm, NULL, &err);
            for (int64_t i = 0; i < n; i++) Bfd[i * in + j] = (np[i] - nm[i]) / (2 * h);
        }
        w = sl_test_worst(Bd, Bfd, (size_t)(n * in), rtol, atol, "B vs finite differences");
        worst = fmax(worst, w);
        /* y = C x_next + D u at the point. */
        double *next = malloc((size_t)nc * sizeof *next), *y = malloc((size_t)L->n_out * sizeof *y);
        double *cy = malloc((size_t)ls.n_out * sizeof *cy), *dy = malloc((size_t)ls.n_out * sizeof *dy);
        sl_layer_step(L, carry, u, next, y, &err);
        sl_op_apply(&ls.C, next, cy);
        sl_op_apply(&ls.D, u, dy);
        for (int64_t i = 0; i < ls.n_out; i++) cy[i] += dy[i];
        w = sl_test_worst(cy, y, (size_t)ls.n_out, 1e-12, 1e-12, "y = C x + D u");
        worst = fmax(worst, w);
        free(next); free(y); free(cy); free(dy);
        free(Bd);
        free(Bfd);
    }
    if (ls.exact) {
        double *next = malloc((size_t)nc * sizeof *next), *ax = malloc((size_t)n * sizeof *ax),
               *bu = malloc((size_t)n * sizeof *bu);
        sl_layer_step(L, carry, u, next, NULL, &err);
        sl_op_apply(&ls.A, carry, ax);
        sl_op_apply(&ls.B, ls.u, bu);
        for (int64_t i = 0; i < n; i++) ax[i] += bu[i];
        w = sl_test_worst(ax, next, (size_t)n, 1e-10, 1e-12, "exact: next = A x + B u");
        worst = fmax(worst, w);
        free(next); free(ax); free(bu);
    }
    free(Ad); free(Afd); free(cp); free(cm); free(np); free(nm); free(up); free(um);
    sl_linsys_free(&ls);
    return worst;
}

/* ------------------------------------------------------------ run store queries */
#include <sqlite3.h>

#include "util.h"

/* The first column of the first row, through a read-only connection; the
** statement's error is printed (the caller's assertion then fails). */
static sqlite3_stmt *first_row(const char *db, const char *sql, sqlite3 **h)
{
    assert_int_equal(sqlite3_open_v2(db, h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(*h, sql, -1, &st, NULL) != SQLITE_OK) fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(*h));
    return st && sqlite3_step(st) == SQLITE_ROW ? st : (sqlite3_finalize(st), NULL);
}

int64_t sl_test_query_int(const char *db, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st = first_row(db, sql, &h);
    const int64_t v = st ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

char *sl_test_query_text(const char *db, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st = first_row(db, sql, &h);
    char *v = st && sqlite3_column_text(st, 0) ? sl_strdup((const char *)sqlite3_column_text(st, 0)) : NULL;
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

void sl_test_cli_ok(const char *args, char **out)
{
    char *err = NULL;
    const int st = sl_test_cli(args, out, &err);
    if (st != 0) fprintf(stderr, "seqlab %s -> %d\n%s\n", args, st, err ? err : "");
    assert_int_equal(st, 0);
    free(err);
}
