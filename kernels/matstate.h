/*
** Matrix-state scans: the one kernel behind every linear-attention family
** (linear_attn, retnet, gla, delta_net, gated_delta_net, mlstm).
**
** One head of one sequence keeps a state S in R^{dk x dv} (row-major) and runs
**
**   gated:  S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T
**   delta:  S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
**   output: o_t = scale * S_t^T q_t
**
** where g_t is a log decay that is absent (no decay: linear attention), one
** scalar per step (RetNet, mLSTM, gated DeltaNet) or one value per key
** dimension (GLA). The delta form takes a scalar gate only.
**
** Three implementations of the same function, which the tests hold equal:
**   sl_ms_recurrent  step by step, each step vectorised over dv;
**   sl_ms_chunked    chunkwise-parallel with chunk length C, as GEMMs over the
**                    chunk (sl_gemm_f32, one thread). Gated form: intra-chunk scores
**                    (Q K^T masked by the decay), inter-chunk through the
**                    state; vector gates use secondary chunking (sub-chunks
**                    of 16 rows, each against a reference point inside its
**                    own sub-chunk, so no exponent exceeds the decay of one
**                    sub-chunk; a sub-chunk whose decay spans more than e^60
**                    falls back to direct loops). Delta form: the WY / UT
**                    transform of Yang et al. 2024 ("Parallelizing Linear
**                    Transformers with the Delta Rule over Sequence Length"),
**                    with the gate folded in as in Gated DeltaNet:
**                    T = (I + tril(diag(beta) (Gamma . K K^T), -1))^-1 diag(beta),
**                    U = T V - T diag(gamma) K S_0, O = diag(gamma) Q S_0 +
**                    tril(Gamma . Q K^T) U, S_C = gamma_C S_0 + (Gamma_C K)^T U.
**                    T need not be a multiple of C. No allocation inside:
**                    the caller gives sl_ms_workspace(C, dk, dv) floats.
**   sl_ms_reference  the plain loops of the definition, double accumulation.
**
** Gates must be log decays <= 0 for the chunked form's numerical guarantees
** (all the families' gates are: logsigmoid, log(1 - 2^-k), -exp(.)softplus(.),
** and mLSTM's stabilised log forget gate).
*/
#ifndef SL_MATSTATE_H
#define SL_MATSTATE_H

#include <stdint.h>

/* One head of one sequence. Row t of each input is at base + t * ld. */
typedef struct sl_ms_seq {
    int64_t      T, dk, dv;
    const float *q, *k, *v;
    int64_t      ldq, ldk, ldv;
    const float *g;          /* log decay or NULL */
    int64_t      ldg, gdim;  /* gdim: 1 (scalar per step) or dk (per key dimension) */
    const float *beta;       /* delta rule when not NULL: beta_t at beta[t * ldb] */
    int64_t      ldb;
    float        scale;
    float       *o;          /* [T, dv] output rows at o + t * ldo */
    int64_t      ldo;
    float       *S;          /* [dk, dv] state: start in, final out */
} sl_ms_seq;

/* Floats of workspace sl_ms_chunked needs for chunk length C. */
int64_t sl_ms_workspace(int64_t C, int64_t dk, int64_t dv);

void sl_ms_recurrent(const sl_ms_seq *s, float *tmp /* dk + dv floats */);
void sl_ms_chunked(const sl_ms_seq *s, int64_t C, float *work);
void sl_ms_reference(const sl_ms_seq *s);

#endif
