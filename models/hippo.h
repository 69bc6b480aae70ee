/*
** HiPPO transition matrices and the discretisation rules of the linear
** state-space families (lssl, s4d, lru, lmu, mamba).
**
** The matrices are those of the LSSL/S4 papers' reference code
** (state-spaces/s4, src/models/hippo/hippo.py, transition()):
**
**   LegS  A[n,k] = -sqrt(2n+1) sqrt(2k+1)  (n > k),  -(n+1)  (n = k),  0 (n < k)
**         B[n]   =  sqrt(2n+1)
**         lower triangular, eigenvalues -1, -2, ..., -N.
**   LegT  A[n,k] = -sqrt(2n+1) sqrt(2k+1) * (1 if n >= k else (-1)^(n-k))
**         B[n]   =  sqrt(2n+1)
**   LagT  A = I/2 - tril(ones),  B = ones        (beta = 1: no tilt)
**
** and the LMU's Legendre memory (Voelker, Kajic, Eliasmith 2019), window theta:
**
**   A[i,j] = (2i+1)/theta * (-1 if i < j else (-1)^(i-j+1))
**   B[i]   = (2i+1) (-1)^i / theta
**
** Discretisation of dx/dt = A x + B u with step dt (sl_disc, linsys.h):
**   bilinear  Ab = (I - dt/2 A)^-1 (I + dt/2 A),  Bb = (I - dt/2 A)^-1 dt B   (the LSSL default)
**   zoh       Ab = exp(dt A),  Bb = A^-1 (exp(dt A) - I) B, computed as the top
**             blocks of exp(dt [[A, B], [0, 0]]) so A need not be invertible
**   euler     Ab = I + dt A,   Bb = dt B
**   exp       Ab = exp(dt A),  Bb = dt B                                          (Mamba)
** Dense rules go through LAPACKE (a solve) and sl_expm (scaling and squaring
** with a [6/6] Pade approximant, ||A||_1 scaled below 1/2, which is accurate to
** double rounding); the diagonal (complex) forms used by S4D and LRU are the same
** formulas per entry.
*/
#ifndef SL_HIPPO_H
#define SL_HIPPO_H

#include <complex.h>
#include <stdint.h>

#include "err.h"
#include "linsys.h"

typedef enum sl_hippo_kind {
    SL_HIPPO_LEGS = 0,
    SL_HIPPO_LEGT,
    SL_HIPPO_LAGT,
    SL_HIPPO_LMU
} sl_hippo_kind;

/* A (N x N, row-major) and B (N) of the measure; theta is the LMU window
** (ignored by the others). */
int sl_hippo(sl_hippo_kind kind, int64_t N, double theta, double *A, double *B, sl_err *err);

/* "legs", "legt", "lagt", "lmu" -> kind; SL_EINVAL naming the choices otherwise. */
int sl_hippo_parse(const char *name, sl_hippo_kind *kind, sl_err *err);
const char *sl_hippo_name(sl_hippo_kind kind);

/* "bilinear", "zoh", "euler", "exp" -> rule (and back). */
int sl_disc_parse(const char *name, sl_disc *rule, sl_err *err);
const char *sl_disc_name(sl_disc rule);

/* Discretise (A [N x N], B [N x M], row-major) with step dt by rule into
** Ab [N x N] and Bb [N x M] (either may be NULL when not wanted; neither may
** alias A or B). SL_ENUMERIC when I - dt/2 A is singular. */
int sl_discretize(sl_disc rule, int64_t N, int64_t M, const double *A, const double *B, double dt, double *Ab,
                  double *Bb, sl_err *err);

/* The same for one complex diagonal entry a with input weight b. */
void sl_discretize_diag(sl_disc rule, double complex a, double complex b, double dt, double complex *ab,
                        double complex *bb);

/* E = exp(A) for a dense N x N row-major matrix (E may not alias A). */
int sl_expm(int64_t N, const double *A, double *E, sl_err *err);

#endif
