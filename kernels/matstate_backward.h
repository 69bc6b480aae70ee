/*
** Backward pass of the matrix-state scans (kernels/matstate.h): the gradients
** of one head of one sequence with respect to q, k, v, the gate and beta, and
** the start state, from the gradient of the outputs and the states the
** forward pass kept after every step.
**
** The forms are those of sl_ms_recurrent (a = exp(g), per step; the gate is
** absent, one scalar, or one value per key dimension; the delta rule takes a
** scalar gate only):
**
**   gated:  S_t = diag(a_t) S_{t-1} + k_t v_t^T
**   delta:  S_t = P + beta_t k_t u_t^T,  P = a_t S_{t-1},  u_t = v_t - P^T k_t
**   output: o_t = scale S_t^T q_t
**
** Reverse time, with D = dL/dS_t (zero after the last step: the loss reads
** the outputs only) and dO_t = dL/do_t:
**
**   D      += scale q_t dO_t^T           dq_t = scale S_t dO_t
**   gated:  dk_t = D v_t,  dv_t = D^T k_t,  dg_t[i] = a_t[i] sum_j D_ij S_{t-1,ij}
**           D <- diag(a_t) D
**   delta:  du = beta_t D^T k_t,  dv_t = du,  dbeta_t = k_t^T D u_t,
**           dk_t = beta_t D u_t - P du,  dP = D - k_t du^T,
**           dg_t = a_t <dP, S_{t-1}>,  D <- a_t dP
**
** S_{t-1} is the kept state of the previous step (or S_0), so nothing is
** recomputed and the pass is O(T dk dv) like the forward's recurrent form.
** The double version is the same source (matstate_backward_impl.h) and is the
** reference the finite-difference tests check.
*/
#ifndef SL_MATSTATE_BACKWARD_H
#define SL_MATSTATE_BACKWARD_H

#include <stdint.h>

/* One head of one sequence. Row t of each array is at base + t * ld; the
** outputs (dq, dk, dv, dg, dbeta) are overwritten. */
typedef struct sl_ms_bwd {
    int64_t      T, dk, dv;
    const float *q, *k, *v;
    int64_t      ldq, ldk, ldv;
    const float *g;            /* log decay or NULL */
    int64_t      ldg, gdim;    /* gdim 1 (scalar) or dk */
    const float *beta;         /* delta rule when not NULL */
    int64_t      ldb;
    float        scale;
    const float *S0;           /* [dk, dv] start state, NULL = zeros */
    const float *S;            /* state after step t at S + t * ldS, [dk, dv] row-major */
    int64_t      ldS;
    const float *dout;         /* dL/do_t [dv] */
    int64_t      lddo;
    float       *dq, *dkk, *dvv;
    int64_t      lddq, lddk, lddv;
    float       *dg;           /* gdim values per step, or NULL (not wanted; needs g) */
    int64_t      lddg;
    float       *dbeta;        /* with beta, or NULL */
    int64_t      lddb;
    float       *dS0;          /* [dk, dv] dL/dS_0 written, or NULL */
} sl_ms_bwd;

typedef struct sl_ms_bwd_f64 {
    int64_t       T, dk, dv;
    const double *q, *k, *v;
    int64_t       ldq, ldk, ldv;
    const double *g;
    int64_t       ldg, gdim;
    const double *beta;
    int64_t       ldb;
    double        scale;
    const double *S0;
    const double *S;
    int64_t       ldS;
    const double *dout;
    int64_t       lddo;
    double       *dq, *dkk, *dvv;
    int64_t       lddq, lddk, lddv;
    double       *dg;
    int64_t       lddg;
    double       *dbeta;
    int64_t       lddb;
    double       *dS0;
} sl_ms_bwd_f64;

/* Workspace (elements) the backward needs: dk dv + 2 dk + 2 dv. */
int64_t sl_ms_backward_ws(int64_t dk, int64_t dv);

void sl_ms_backward(const sl_ms_bwd *s, float *work);
void sl_ms_backward_f64(const sl_ms_bwd_f64 *s, double *work);

#endif
