/*
** The body of the matrix-state scan backward, compiled twice by
** matstate_backward.c (see matstate_backward.h for the algorithm). Expects
**   REAL      float or double
**   MSB_SEQ   sl_ms_bwd or sl_ms_bwd_f64
**   MSB_EXP   the exponential
**   MSB_FN    the public function
*/

void MSB_FN(const MSB_SEQ *s, REAL *work)
{
    const int64_t dk = s->dk, dv = s->dv, n = dk * dv;
    REAL *D = work, *u = D + n, *du = u + dv, *Dv = du + dv, *a = Dv + dk;
    const REAL sc = s->scale;
    for (int64_t i = 0; i < n; i++) D[i] = 0;
    for (int64_t t = s->T - 1; t >= 0; t--) {
        const REAL *q = s->q + t * s->ldq, *k = s->k + t * s->ldk, *v = s->v + t * s->ldv;
        const REAL *St = s->S + t * s->ldS, *Sp = t ? s->S + (t - 1) * s->ldS : s->S0;
        const REAL *dO = s->dout + t * s->lddo;
        const REAL *g = s->g ? s->g + t * s->ldg : NULL;
        REAL *dq = s->dq + t * s->lddq, *dkt = s->dkk + t * s->lddk, *dvt = s->dvv + t * s->lddv;
        if (s->beta) {
            /* Delta rule, scalar gate a: P = a S_{t-1}, u = v - P^T k. */
            const REAL b = s->beta[t * s->ldb], at = g ? MSB_EXP(g[0]) : (REAL)1;
            for (int64_t p = 0; p < dv; p++) { u[p] = 0; du[p] = 0; }
            if (Sp)
                for (int64_t i = 0; i < dk; i++) {
                    const REAL ki = k[i], *Si = Sp + i * dv;
#pragma omp simd
                    for (int64_t p = 0; p < dv; p++) u[p] += ki * Si[p];
                }
#pragma omp simd
            for (int64_t p = 0; p < dv; p++) u[p] = v[p] - at * u[p];
            /* One pass over D: the output (D += scale q dO^T, dq = scale S_t dO),
            ** then du = D^T k (scaled by beta below) and Dv = D u with it. */
            REAL db = 0;
            for (int64_t i = 0; i < dk; i++) {
                const REAL qi = sc * q[i], ki = k[i], *Si = St + i * dv;
                REAL *Di = D + i * dv, acc = 0, dvu = 0;
#pragma omp simd reduction(+ : acc, dvu)
                for (int64_t p = 0; p < dv; p++) {
                    const REAL d = Di[p] + qi * dO[p];
                    Di[p] = d;
                    acc += Si[p] * dO[p];
                    du[p] += ki * d;
                    dvu += d * u[p];
                }
                dq[i] = sc * acc;
                Dv[i] = dvu;
                db += ki * dvu;
            }
            if (s->dbeta) s->dbeta[t * s->lddb] = db;
#pragma omp simd
            for (int64_t p = 0; p < dv; p++) {
                du[p] *= b;
                dvt[p] = du[p];
            }
            /* dk = beta D u - P du; dP = D - k du^T; dg = a <dP, S_{t-1}>; D <- a dP. */
            REAL dga = 0;
            for (int64_t i = 0; i < dk; i++) {
                const REAL ki = k[i];
                REAL *Di = D + i * dv, pdu = 0, acc = 0;
                if (Sp) {
                    const REAL *Si = Sp + i * dv;
#pragma omp simd reduction(+ : pdu, acc)
                    for (int64_t p = 0; p < dv; p++) {
                        pdu += Si[p] * du[p];
                        acc += (Di[p] - ki * du[p]) * Si[p];
                    }
                }
                dkt[i] = b * Dv[i] - at * pdu;
                dga += acc;
#pragma omp simd
                for (int64_t p = 0; p < dv; p++) Di[p] = at * (Di[p] - ki * du[p]);
            }
            if (g && s->dg) s->dg[t * s->lddg] = at * dga;
        } else {
            /* The output: D += scale q dO^T, dq = scale S_t dO. */
            for (int64_t i = 0; i < dk; i++) {
                const REAL qi = sc * q[i], *Si = St + i * dv;
                REAL *Di = D + i * dv, acc = 0;
#pragma omp simd reduction(+ : acc)
                for (int64_t p = 0; p < dv; p++) {
                    Di[p] += qi * dO[p];
                    acc += Si[p] * dO[p];
                }
                dq[i] = sc * acc;
            }
            /* Gated (or plain) outer-product update. */
            const int vec = g && s->gdim > 1;
            for (int64_t i = 0; i < dk; i++) a[i] = g ? MSB_EXP(g[vec ? i : 0]) : (REAL)1;
            for (int64_t p = 0; p < dv; p++) dvt[p] = 0;
            REAL dgs = 0;
            for (int64_t i = 0; i < dk; i++) {
                const REAL ki = k[i], ai = a[i];
                REAL *Di = D + i * dv, acc = 0, acc2 = 0;
#pragma omp simd reduction(+ : acc)
                for (int64_t p = 0; p < dv; p++) {
                    acc += Di[p] * v[p];
                    dvt[p] += ki * Di[p];
                }
                if (g && Sp) {
                    const REAL *Si = Sp + i * dv;
#pragma omp simd reduction(+ : acc2)
                    for (int64_t p = 0; p < dv; p++) acc2 += Di[p] * Si[p];
                }
                dkt[i] = acc;
                if (g && s->dg) {
                    if (vec) s->dg[t * s->lddg + i] = ai * acc2;
                    else dgs += ai * acc2;
                }
                if (g) {
#pragma omp simd
                    for (int64_t p = 0; p < dv; p++) Di[p] *= ai;
                }
            }
            if (g && s->dg && !vec) s->dg[t * s->lddg] = dgs;
        }
    }
    if (s->dS0)
        for (int64_t i = 0; i < n; i++) s->dS0[i] = D[i];
}
