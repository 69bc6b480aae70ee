/*
** HiPPO matrices and discretisation: see hippo.h.
*/
#include "hippo.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

int sl_hippo(sl_hippo_kind kind, int64_t N, double theta, double *A, double *B, sl_err *err)
{
    if (N <= 0) return sl_err_set(err, SL_EINVAL, "HiPPO order must be positive (is %lld)", (long long)N);
    for (int64_t n = 0; n < N; n++) {
        const double rn = sqrt(2.0 * (double)n + 1.0);
        for (int64_t k = 0; k < N; k++) {
            const double rk = sqrt(2.0 * (double)k + 1.0);
            double v = 0.0;
            switch (kind) {
            case SL_HIPPO_LEGS:
                v = n > k ? -rn * rk : n == k ? -(double)(n + 1) : 0.0;
                break;
            case SL_HIPPO_LEGT:
                v = -rn * rk * (n >= k ? 1.0 : ((n - k) % 2 == 0 ? 1.0 : -1.0));
                break;
            case SL_HIPPO_LAGT:
                v = (n == k ? 0.5 : 0.0) - (n >= k ? 1.0 : 0.0);
                break;
            case SL_HIPPO_LMU:
                if (!(theta > 0)) return sl_err_set(err, SL_EINVAL, "LMU window theta must be positive (is %g)", theta);
                v = (2.0 * (double)n + 1.0) / theta * (n < k ? -1.0 : ((n - k + 1) % 2 == 0 ? 1.0 : -1.0));
                break;
            }
            A[n * N + k] = v;
        }
        switch (kind) {
        case SL_HIPPO_LEGS:
        case SL_HIPPO_LEGT: B[n] = rn; break;
        case SL_HIPPO_LAGT: B[n] = 1.0; break;
        case SL_HIPPO_LMU: B[n] = (2.0 * (double)n + 1.0) * (n % 2 == 0 ? 1.0 : -1.0) / theta; break;
        }
    }
    return SL_OK;
}

static const char *const hippo_names[] = { "legs", "legt", "lagt", "lmu" };

int sl_hippo_parse(const char *name, sl_hippo_kind *kind, sl_err *err)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, hippo_names[i]) == 0) {
            *kind = (sl_hippo_kind)i;
            return SL_OK;
        }
    return sl_err_set(err, SL_EINVAL, "unknown HiPPO measure \"%s\" (legs, legt, lagt, lmu)", name ? name : "");
}

const char *sl_hippo_name(sl_hippo_kind kind) { return (unsigned)kind < 4 ? hippo_names[kind] : "?"; }

int sl_disc_parse(const char *name, sl_disc *rule, sl_err *err)
{
    static const struct { const char *n; sl_disc d; } t[] = {
        { "bilinear", SL_DISC_BILINEAR }, { "zoh", SL_DISC_ZOH }, { "euler", SL_DISC_EULER }, { "exp", SL_DISC_EXP },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (name && strcmp(name, t[i].n) == 0) {
            *rule = t[i].d;
            return SL_OK;
        }
    return sl_err_set(err, SL_EINVAL, "unknown discretisation \"%s\" (bilinear, zoh, euler)", name ? name : "");
}

const char *sl_disc_name(sl_disc rule)
{
    switch (rule) {
    case SL_DISC_BILINEAR: return "bilinear";
    case SL_DISC_ZOH: return "zoh";
    case SL_DISC_EULER: return "euler";
    case SL_DISC_EXP: return "exp";
    default: return "none";
    }
}

/* 'L' or 'U' when the n x n matrix is exactly lower or upper triangular (a
** diagonal one counts as lower), else 0. Triangular systems are solved without
** pivoting so their discretisations stay exactly triangular: LegS and LegT are
** so far from normal that the rounding a pivoted solve leaves above the
** diagonal would show up as eigenvalues scattered off the real axis. */
static char triangle(const double *M, int64_t n)
{
    int up = 1, lo = 1;
    for (int64_t i = 0; i < n && (up || lo); i++)
        for (int64_t j = 0; j < n; j++) {
            if (j > i && M[i * n + j] != 0.0) up = 0;
            if (j < i && M[i * n + j] != 0.0) lo = 0;
        }
    return up ? 'L' : lo ? 'U' : 0;
}

/* Solve M X = R (M n x n, R n x w, row-major, both overwritten: X in R). */
static lapack_int solve(int64_t n, int64_t w, double *M, double *R, lapack_int *piv)
{
    char t = triangle(M, n);
    if (t) return LAPACKE_dtrtrs(LAPACK_ROW_MAJOR, t, 'N', 'N', (lapack_int)n, (lapack_int)w, M, (lapack_int)n, R,
                                 (lapack_int)w);
    return LAPACKE_dgesv(LAPACK_ROW_MAJOR, (lapack_int)n, (lapack_int)w, M, (lapack_int)n, piv, R, (lapack_int)w);
}

/* ------------------------------------------------------------ matrix exponential */
int sl_expm(int64_t N, const double *A, double *E, sl_err *err)
{
    const int64_t NN = N * N;
    double norm = 0.0;   /* ||A||_1: largest column sum */
    for (int64_t j = 0; j < N; j++) {
        double s = 0.0;
        for (int64_t i = 0; i < N; i++) s += fabs(A[i * N + j]);
        norm = fmax(norm, s);
    }
    if (!isfinite(norm)) return sl_err_set(err, SL_ENUMERIC, "matrix exponential of a non-finite matrix");
    int s = 0;
    if (norm > 0.5) s = (int)ceil(log2(norm / 0.5));
    const double scale = ldexp(1.0, -s);
    double *X = malloc((size_t)(4 * NN) * sizeof *X);
    lapack_int *piv = malloc((size_t)(N ? N : 1) * sizeof *piv);
    if (!X || !piv) {
        free(X);
        free(piv);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    double *P = X + NN, *Q = X + 2 * NN, *T = X + 3 * NN;
    for (int64_t i = 0; i < NN; i++) X[i] = A[i] * scale;
    /* Pade [6/6]: P = sum c_k X^k, Q = sum (-1)^k c_k X^k. */
    memset(P, 0, (size_t)NN * sizeof *P);
    memset(Q, 0, (size_t)NN * sizeof *Q);
    for (int64_t i = 0; i < N; i++) P[i * N + i] = Q[i * N + i] = 1.0;
    double c = 1.0;
    memcpy(T, X, (size_t)NN * sizeof *T);   /* T = X^k */
    const int q = 6;
    for (int k = 1; k <= q; k++) {
        c *= (double)(q - k + 1) / (double)(k * (2 * q - k + 1));
        const double sg = (k % 2) ? -1.0 : 1.0;
        for (int64_t i = 0; i < NN; i++) {
            P[i] += c * T[i];
            Q[i] += sg * c * T[i];
        }
        if (k < q) {
            sl_dgemm(0, 0, N, N, N, 1.0, T, N, X, N, 0.0, E, N);
            memcpy(T, E, (size_t)NN * sizeof *T);
        }
    }
    /* Q E = P. */
    memcpy(E, P, (size_t)NN * sizeof *E);
    int rc = SL_OK;
    lapack_int info = solve(N, N, Q, E, piv);
    if (info != 0) rc = sl_err_set(err, SL_ENUMERIC, "matrix exponential: Pade denominator is singular");
    for (int i = 0; i < s && !rc; i++) {
        sl_dgemm(0, 0, N, N, N, 1.0, E, N, E, N, 0.0, T, N);
        memcpy(E, T, (size_t)NN * sizeof *E);
    }
    free(X);
    free(piv);
    return rc;
}

/* ------------------------------------------------------------ discretisation */
int sl_discretize(sl_disc rule, int64_t N, int64_t M, const double *A, const double *B, double dt, double *Ab,
                  double *Bb, sl_err *err)
{
    if (!(dt > 0) || !isfinite(dt)) return sl_err_set(err, SL_EINVAL, "discretisation step must be positive (is %g)", dt);
    const int64_t NN = N * N;
    switch (rule) {
    case SL_DISC_EULER:
    case SL_DISC_EXP:
        if (Bb)
            for (int64_t i = 0; i < N * M; i++) Bb[i] = dt * B[i];
        if (!Ab) return SL_OK;
        if (rule == SL_DISC_EULER) {
            for (int64_t i = 0; i < NN; i++) Ab[i] = dt * A[i];
            for (int64_t i = 0; i < N; i++) Ab[i * N + i] += 1.0;
            return SL_OK;
        } else {
            double *X = malloc((size_t)(NN ? NN : 1) * sizeof *X);
            if (!X) return sl_err_set(err, SL_ENOMEM, "out of memory");
            for (int64_t i = 0; i < NN; i++) X[i] = dt * A[i];
            int rc = sl_expm(N, X, Ab, err);
            free(X);
            return rc;
        }
    case SL_DISC_BILINEAR: {
        /* (I - dt/2 A) [Ab | Bb] = [I + dt/2 A | dt B] */
        const int64_t W = N + M;
        double *L = malloc((size_t)(NN + N * W + 1) * sizeof *L), *R = L + NN;
        lapack_int *piv = malloc((size_t)(N ? N : 1) * sizeof *piv);
        if (!L || !piv) { free(L); free(piv); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        for (int64_t i = 0; i < N; i++) {
            for (int64_t j = 0; j < N; j++) {
                L[i * N + j] = (i == j ? 1.0 : 0.0) - 0.5 * dt * A[i * N + j];
                R[i * W + j] = (i == j ? 1.0 : 0.0) + 0.5 * dt * A[i * N + j];
            }
            for (int64_t j = 0; j < M; j++) R[i * W + N + j] = dt * B[i * M + j];
        }
        lapack_int info = solve(N, W, L, R, piv);
        int rc = SL_OK;
        if (info != 0) {
            rc = sl_err_set(err, SL_ENUMERIC, "bilinear discretisation: I - dt/2 A is singular (dt = %g)", dt);
        } else {
            for (int64_t i = 0; i < N; i++) {
                if (Ab) memcpy(Ab + i * N, R + i * W, (size_t)N * sizeof *Ab);
                if (Bb) memcpy(Bb + i * M, R + i * W + N, (size_t)M * sizeof *Bb);
            }
        }
        free(L);
        free(piv);
        return rc;
    }
    case SL_DISC_ZOH: {
        /* exp(dt [[A, B], [0, 0]]) = [[Ab, Bb], [0, I]] */
        const int64_t W = N + M;
        double *X = calloc((size_t)(2 * W * W), sizeof *X), *E = X + W * W;
        if (!X) return sl_err_set(err, SL_ENOMEM, "out of memory");
        for (int64_t i = 0; i < N; i++) {
            for (int64_t j = 0; j < N; j++) X[i * W + j] = dt * A[i * N + j];
            for (int64_t j = 0; j < M; j++) X[i * W + N + j] = dt * B[i * M + j];
        }
        int rc = sl_expm(W, X, E, err);
        if (!rc)
            for (int64_t i = 0; i < N; i++) {
                if (Ab) memcpy(Ab + i * N, E + i * W, (size_t)N * sizeof *Ab);
                if (Bb) memcpy(Bb + i * M, E + i * W + N, (size_t)M * sizeof *Bb);
            }
        /* The augmented matrix is not triangular even when A is; take
        ** exp(dt A) on its own then, so it stays exactly triangular. */
        if (!rc && Ab && triangle(A, N)) {
            for (int64_t i = 0; i < N * N; i++) X[i] = dt * A[i];
            rc = sl_expm(N, X, Ab, err);
        }
        free(X);
        return rc;
    }
    default:
        return sl_err_set(err, SL_EINVAL, "no discretisation rule given");
    }
}

void sl_discretize_diag(sl_disc rule, double complex a, double complex b, double dt, double complex *ab,
                        double complex *bb)
{
    double complex x = dt * a;
    switch (rule) {
    case SL_DISC_BILINEAR:
        *ab = (1.0 + 0.5 * x) / (1.0 - 0.5 * x);
        *bb = dt * b / (1.0 - 0.5 * x);
        break;
    case SL_DISC_ZOH:
        *ab = cexp(x);
        /* (exp(x) - 1) / a = dt (exp(x) - 1) / x, with exp(x) - 1 formed without
        ** cancellation: expm1(re) cos(im) - 2 sin^2(im/2) + i exp(re) sin(im). */
        if (cabs(x) < 1e-12) {
            *bb = dt * b * (1.0 + 0.5 * x);
        } else {
            const double xr = creal(x), xi = cimag(x), sh = sin(0.5 * xi);
            const double complex em1 = (expm1(xr) * cos(xi) - 2.0 * sh * sh) + I * (exp(xr) * sin(xi));
            *bb = dt * b * em1 / x;
        }
        break;
    case SL_DISC_EULER:
        *ab = 1.0 + x;
        *bb = dt * b;
        break;
    case SL_DISC_EXP:
    default:
        *ab = cexp(x);
        *bb = dt * b;
        break;
    }
}
