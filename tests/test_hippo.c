/*
** HiPPO matrices and discretisation (models/hippo.c) against closed forms:
** LegS lower triangular with eigenvalues -1..-N; the bilinear transform maps
** each eigenvalue lambda to (1 + dt lambda/2)/(1 - dt lambda/2); the LMU's
** (A, B) of order 4 entry by entry against Voelker et al.'s formula; ZOH of a
** diagonal A is exp(dt A); the matrix exponential against rotations and
** nilpotent matrices; ZOH's B against A^-1 (exp(dt A) - I) B.
*/
#include "sl_test.h"

#include <complex.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "hippo.h"

static int cmp_re(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Eigenvalues (wr, wi) of a dense N x N matrix by LAPACK. */
static void eig(int64_t N, const double *A, double *wr, double *wi)
{
    double *a = malloc((size_t)(N * N) * sizeof *a);
    memcpy(a, A, (size_t)(N * N) * sizeof *a);
    lapack_int info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)N, a, (lapack_int)N, wr, wi, NULL, 1, NULL, 1);
    assert_int_equal(info, 0);
    free(a);
}

static void test_legs(void **state)
{
    (void)state;
    const int64_t N = 12;
    double A[144], B[12], wr[12], wi[12];
    sl_err err = { 0 };
    assert_int_equal(sl_hippo(SL_HIPPO_LEGS, N, 1.0, A, B, &err), SL_OK);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = n + 1; k < N; k++) assert_true(A[n * N + k] == 0.0);   /* lower triangular */
        assert_close(A[n * N + n], -(double)(n + 1), 0, 0);
        for (int64_t k = 0; k < n; k++) assert_close(A[n * N + k], -sqrt((2.0 * n + 1) * (2.0 * k + 1)), 1e-15, 0);
        assert_close(B[n], sqrt(2.0 * n + 1), 1e-15, 0);
    }
    eig(N, A, wr, wi);
    qsort(wr, (size_t)N, sizeof *wr, cmp_re);
    for (int64_t i = 0; i < N; i++) {
        assert_close(wr[i], -(double)(N - i), 1e-12, 1e-12);
        assert_close(wi[i], 0.0, 0, 1e-12);
    }
}

static void test_legt_lagt(void **state)
{
    (void)state;
    double A[16], B[4];
    sl_err err = { 0 };
    assert_int_equal(sl_hippo(SL_HIPPO_LEGT, 4, 1.0, A, B, &err), SL_OK);
    /* A[n,k] = -sqrt((2n+1)(2k+1)) * (1 if n >= k else (-1)^(n-k)) */
    assert_close(A[0 * 4 + 1], sqrt(3.0), 1e-15, 0);
    assert_close(A[0 * 4 + 2], -sqrt(5.0), 1e-15, 0);
    assert_close(A[1 * 4 + 0], -sqrt(3.0), 1e-15, 0);
    assert_close(A[2 * 4 + 2], -5.0, 1e-15, 0);
    assert_close(B[3], sqrt(7.0), 1e-15, 0);
    assert_int_equal(sl_hippo(SL_HIPPO_LAGT, 4, 1.0, A, B, &err), SL_OK);
    for (int n = 0; n < 4; n++) {
        for (int k = 0; k < 4; k++) assert_close(A[n * 4 + k], n == k ? -0.5 : n > k ? -1.0 : 0.0, 0, 0);
        assert_close(B[n], 1.0, 0, 0);
    }
}

static void test_lmu_order4(void **state)
{
    (void)state;
    /* Voelker et al. 2019: A_ij = (2i+1)/theta (-1 if i < j else (-1)^(i-j+1)), B_i = (2i+1)(-1)^i/theta. */
    static const double Aref[16] = { -1, -1, -1, -1, 3, -3, -3, -3, -5, 5, -5, -5, 7, -7, 7, -7 };
    static const double Bref[4] = { 1, -3, 5, -7 };
    const double theta = 2.5;
    double A[16], B[4];
    sl_err err = { 0 };
    assert_int_equal(sl_hippo(SL_HIPPO_LMU, 4, theta, A, B, &err), SL_OK);
    for (int i = 0; i < 16; i++) assert_close(A[i], Aref[i] / theta, 1e-15, 0);
    for (int i = 0; i < 4; i++) assert_close(B[i], Bref[i] / theta, 1e-15, 0);
    assert_int_equal(sl_hippo(SL_HIPPO_LMU, 4, 0.0, A, B, &err), SL_EINVAL);
}

static void test_bilinear_maps_eigenvalues(void **state)
{
    (void)state;
    const int64_t N = 10;
    double A[100], B[10], Ab[100], Bb[10], wr[10], wi[10];
    sl_err err = { 0 };
    assert_int_equal(sl_hippo(SL_HIPPO_LEGS, N, 1.0, A, B, &err), SL_OK);
    const double dt = 0.37;
    assert_int_equal(sl_discretize(SL_DISC_BILINEAR, N, 1, A, B, dt, Ab, Bb, &err), SL_OK);
    /* Ab stays lower triangular, so its eigenvalues are its diagonal: exact. */
    double want[10];
    for (int64_t i = 0; i < N; i++) {
        const double lam = -(double)(i + 1);
        want[i] = (1 + dt * lam / 2) / (1 - dt * lam / 2);
        for (int64_t j = i + 1; j < N; j++) assert_close(Ab[i * N + j], 0.0, 0, 1e-15);
        assert_close(Ab[i * N + i], want[i], 1e-14, 1e-15);
    }
    /* LAPACK agrees within the conditioning of LegS's eigenvectors. */
    eig(N, Ab, wr, wi);
    qsort(wr, (size_t)N, sizeof *wr, cmp_re);
    qsort(want, (size_t)N, sizeof *want, cmp_re);
    for (int64_t i = 0; i < N; i++) assert_close(wr[i], want[i], 1e-8, 1e-8);
    /* Bb = (I - dt/2 A)^-1 dt B: (I - dt/2 A) Bb = dt B. */
    for (int64_t i = 0; i < N; i++) {
        double s = Bb[i];
        for (int64_t j = 0; j < N; j++) s -= 0.5 * dt * A[i * N + j] * Bb[j];
        assert_close(s, dt * B[i], 1e-13, 1e-13);
    }
    /* The diagonal form, for complex entries. */
    double complex ab, bb, a = -0.5 + 3.0 * I;
    sl_discretize_diag(SL_DISC_BILINEAR, a, 1.0, dt, &ab, &bb);
    double complex w = (1 + dt * a / 2) / (1 - dt * a / 2);
    assert_close(creal(ab), creal(w), 1e-15, 1e-15);
    assert_close(cimag(ab), cimag(w), 1e-15, 1e-15);
}

static void test_zoh_diagonal(void **state)
{
    (void)state;
    const int64_t N = 5;
    double A[25] = { 0 }, B[10], Ab[25], Bb[10];
    const double d[5] = { -0.5, -2.0, 0.3, -7.0, 0.0 }, dt = 0.9;
    for (int i = 0; i < 5; i++) {
        A[i * 5 + i] = d[i];
        B[2 * i] = 1.0 + i;
        B[2 * i + 1] = -0.5 * i;
    }
    sl_err err = { 0 };
    assert_int_equal(sl_discretize(SL_DISC_ZOH, N, 2, A, B, dt, Ab, Bb, &err), SL_OK);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) assert_close(Ab[i * 5 + j], i == j ? exp(dt * d[i]) : 0.0, 1e-14, 1e-15);
    for (int i = 0; i < 5; i++) {
        const double g = d[i] == 0 ? dt : expm1(dt * d[i]) / d[i];
        assert_close(Bb[2 * i], g * B[2 * i], 1e-13, 1e-15);
        assert_close(Bb[2 * i + 1], g * B[2 * i + 1], 1e-13, 1e-15);
    }
    /* Complex diagonal ZOH: exp(dt a) and (exp(dt a) - 1)/a b, also for tiny dt a. */
    const double complex as[3] = { -0.5 + 2.0 * I, -1e-9 + 1e-9 * I, -3.0 };
    for (int k = 0; k < 3; k++) {
        double complex ab, bb;
        sl_discretize_diag(SL_DISC_ZOH, as[k], 2.0, dt, &ab, &bb);
        double complex e = cexp(dt * as[k]), g = 2.0 * (e - 1.0) / as[k];
        assert_close(creal(ab), creal(e), 1e-15, 1e-15);
        assert_close(cimag(ab), cimag(e), 1e-15, 1e-15);
        if (k != 1) {
            assert_close(creal(bb), creal(g), 1e-13, 1e-15);
            assert_close(cimag(bb), cimag(g), 1e-13, 1e-15);
        } else {
            assert_close(creal(bb), 2.0 * dt, 1e-8, 0);
        }
    }
    /* Euler and Mamba's exp rule. */
    assert_int_equal(sl_discretize(SL_DISC_EULER, N, 2, A, B, dt, Ab, Bb, &err), SL_OK);
    assert_close(Ab[6], 1.0 + dt * d[1], 1e-15, 0);
    assert_close(Bb[3], dt * B[3], 1e-15, 0);
    assert_int_equal(sl_discretize(SL_DISC_EXP, N, 2, A, B, dt, Ab, Bb, &err), SL_OK);
    assert_close(Ab[18], exp(dt * d[3]), 1e-14, 0);
    assert_close(Bb[5], dt * B[5], 1e-15, 0);
}

static void test_zoh_dense(void **state)
{
    (void)state;
    /* Invertible A: Bb = A^-1 (Ab - I) B. */
    const int64_t N = 6;
    double A[36], B[6], Ab[36], Bb[6];
    sl_err err = { 0 };
    assert_int_equal(sl_hippo(SL_HIPPO_LEGT, N, 1.0, A, B, &err), SL_OK);
    const double dt = 0.2;
    assert_int_equal(sl_discretize(SL_DISC_ZOH, N, 1, A, B, dt, Ab, Bb, &err), SL_OK);
    /* A Bb = (Ab - I) B */
    for (int64_t i = 0; i < N; i++) {
        double l = 0, r = -B[i];
        for (int64_t j = 0; j < N; j++) {
            l += A[i * N + j] * Bb[j];
            r += Ab[i * N + j] * B[j];
        }
        assert_close(l, r, 1e-11, 1e-12);
    }
}

static void test_expm(void **state)
{
    (void)state;
    sl_err err = { 0 };
    /* Rotation: exp([[0, w], [-w, 0]]) = [[cos w, sin w], [-sin w, cos w]], with large w (squaring). */
    const double w = 7.3;
    double R[4] = { 0, w, -w, 0 }, E[4];
    assert_int_equal(sl_expm(2, R, E, &err), SL_OK);
    assert_close(E[0], cos(w), 1e-13, 1e-14);
    assert_close(E[1], sin(w), 1e-13, 1e-14);
    assert_close(E[2], -sin(w), 1e-13, 1e-14);
    assert_close(E[3], cos(w), 1e-13, 1e-14);
    /* Nilpotent: exp(J) = I + J + J^2/2. */
    double J[9] = { 0, 2, 3, 0, 0, 5, 0, 0, 0 }, F[9];
    assert_int_equal(sl_expm(3, J, F, &err), SL_OK);
    const double want[9] = { 1, 2, 3 + 5.0, 0, 1, 5, 0, 0, 1 };
    for (int i = 0; i < 9; i++) assert_close(F[i], want[i], 1e-14, 1e-14);
    /* Errors. */
    assert_int_equal(sl_discretize(SL_DISC_ZOH, 3, 1, J, J, -1.0, F, F, &err), SL_EINVAL);
    sl_hippo_kind k;
    assert_int_equal(sl_hippo_parse("legs", &k, &err), SL_OK);
    assert_int_equal(k, SL_HIPPO_LEGS);
    assert_int_equal(sl_hippo_parse("fourier", &k, &err), SL_EINVAL);
    sl_disc d;
    assert_int_equal(sl_disc_parse("zoh", &d, &err), SL_OK);
    assert_int_equal(d, SL_DISC_ZOH);
    assert_int_equal(sl_disc_parse("tustin", &d, &err), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legs),
        cmocka_unit_test(test_legt_lagt),
        cmocka_unit_test(test_lmu_order4),
        cmocka_unit_test(test_bilinear_maps_eigenvalues),
        cmocka_unit_test(test_zoh_diagonal),
        cmocka_unit_test(test_zoh_dense),
        cmocka_unit_test(test_expm),
    };
    return cmocka_run_group_tests_name("hippo", tests, NULL, NULL);
}
