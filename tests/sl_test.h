/*
** Shared test support for the cmocka suites (tests/support.c).
**
** assert_close(a, b, rtol, atol) is the one floating-point assertion: it passes
** when |a - b| <= atol + rtol * |b| and otherwise prints both values, the
** difference and the tolerance. Tests run the seqlab binary through
** sl_test_cli, which captures stdout and stderr and returns the exit status.
*/
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

int sl_test_close(double a, double b, double rtol, double atol, const char *ea, const char *eb,
                  const char *file, int line);

#define assert_close(a, b, rtol, atol)                                                        \
    do {                                                                                       \
        if (!sl_test_close((double)(a), (double)(b), (rtol), (atol), #a, #b, __FILE__, __LINE__)) \
            fail();                                                                            \
    } while (0)

/* Max |a_i - b_i| / (atol + rtol |b_i|) over n values; <= 1 means all close.
** Prints the worst index when > 1. */
double sl_test_worst(const double *a, const double *b, size_t n, double rtol, double atol, const char *what);
#define assert_all_close(a, b, n, rtol, atol) assert_true(sl_test_worst((a), (b), (n), (rtol), (atol), #a) <= 1.0)

/* Run `$SL_BIN args` through /bin/sh (args is shell text). Captured output is
** malloc'ed into *out / *err (either may be NULL to discard). Returns the exit
** status, or -1 if it could not run or was killed by a signal. */
int sl_test_cli(const char *args, char **out, char **err);
/* sl_test_cli that must exit 0 (its stderr is printed otherwise); *out as there. */
void sl_test_cli_ok(const char *args, char **out);

/* The first column of the first row of sql on the run store at db (opened
** read-only): as an integer (-1 when there is no row), or as malloc'ed text
** (NULL when there is no row or the value is NULL; the caller frees it). */
int64_t sl_test_query_int(const char *db, const char *sql);
char   *sl_test_query_text(const char *db, const char *sql);

/* A fresh empty directory under $TMPDIR for this test process (created once,
** removed at exit). */
const char *sl_test_tmpdir(void);
/* malloc'ed "<tmpdir>/<name>". */
char *sl_test_path(const char *name);

/* 1 if ../shared/models/<name> exists (relative to the repository root, where
** tests run); fills path. Tests that need it skip, saying so, when absent. */
int sl_test_shared_model(const char *name, char *path, size_t n);

/* Deterministic uniform doubles in [lo, hi) for test data. */
double sl_test_uniform(uint64_t *state, double lo, double hi);


/* Tensor `name` of a safetensors file as doubles (malloc'ed; numel in *n when
** n is not NULL); fails the test when absent. */
double *sl_test_load_f64(const char *path, const char *name, int64_t *n);
/* The same as float. */
float *sl_test_load_f32(const char *path, const char *name, int64_t *n);

struct sl_layer;
/* Check a layer's linear system at (carry, u) against the reference step:
** A (and B, when the system's input is the layer input) against central
** finite differences with step 1e-6 to rtol/atol; C and D against the step's
** output; for exact systems, next = A x + B u exactly. Returns the worst
** error ratio (<= 1 passes) and prints what it checked. */
double sl_test_check_linsys(const struct sl_layer *L, const double *carry, const double *u, double rtol, double atol);

#endif
