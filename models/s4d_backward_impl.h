/*
** The S4D layer's backward pass, compiled twice by s4d.c (see the comment
** there): REAL, S4B(name), S4B_BWD, S4B_GRAD, S4B_CDIAG, S4B_ARR(s, name).
*/

static int S4B(s4d_backward)(const sl_layer *L, const S4B_BWD *b, sl_err *err)
{
    const s4d_layer *s = L->impl;
    const int64_t H = s->H, M = s->M, n = 2 * H * M, nc = L->n_carry, B = b->B, T = b->T;
    if (B == 0) return SL_OK;
    if (T == 0) {
        if (b->dcarry0) memset(b->dcarry0, 0, (size_t)(B * nc) * sizeof *b->dcarry0);
        return SL_OK;
    }
    const size_t need = (size_t)(3 * n + 1) * sizeof(REAL);
    REAL *own = NULL, *dlam = b->scratch ? sl_scratch_get(b->scratch, need) : (own = malloc(need));
    if (!dlam) return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
    REAL *dbb = dlam + n, *dcc = dbb + n;
    memset(dlam, 0, (size_t)(3 * n) * sizeof *dlam);
    REAL *gdt = S4B_GRAD(b->g, s->log_dt), *gar = S4B_GRAD(b->g, s->log_A_real), *gai = S4B_GRAD(b->g, s->A_imag),
         *gC = S4B_GRAD(b->g, s->Ct), *gD = S4B_GRAD(b->g, s->Dt), *gB = s->Bt ? S4B_GRAD(b->g, s->Bt) : NULL;
    const S4B_CDIAG k = { .H = H, .M = M, .lam = S4B_ARR(s, lam), .bb = S4B_ARR(s, bb), .cc = S4B_ARR(s, cc),
                          .d = S4B_ARR(s, D) };
    if (S4B(sl_cdiag_scan_backward)(&k, B, T, b->x, H, b->carry0, nc, b->states, nc, b->dy, H, b->dx, H, b->dcarry0, nc,
                                    dlam, dbb, dcc, gD)) {
        free(own);
        return sl_err_set(err, SL_ENOMEM, "out of memory for the backward pass");
    }
    for (int64_t h = 0; h < H; h++) {
        const double dt = s->dt[h];
        double sdt = 0;
        for (int64_t m = 0; m < M; m++) {
            const int64_t q = 2 * (h * M + m), j = h * M + m;
            if (gC) {
                gC[q] += 2 * dcc[q];
                gC[q + 1] += 2 * dcc[q + 1];
            }
            const double complex gl = (double)dlam[q] + I * (double)dlam[q + 1],
                                 gb = (double)dbb[q] + I * (double)dbb[q + 1];
            const double complex a = s->Ac[q] + I * s->Ac[q + 1], bc = s->Bc[q] + I * s->Bc[q + 1];
            const s4d_ddisc d = s4d_disc_derivs(s->disc, a, bc, dt);
            const double complex ga = conj(d.lam_a) * gl + conj(d.bb_a) * gb;
            sdt += creal(conj(d.lam_dt) * gl + conj(d.bb_dt) * gb);
            if (gar) gar[j] += (REAL)(creal(ga) * s->Ac[q]);   /* Re a = -exp(log_A_real) */
            if (gai) gai[j] += (REAL)cimag(ga);
            if (gB) {
                const double complex gbc = conj(d.bb_b) * gb;
                gB[q] += (REAL)creal(gbc);
                gB[q + 1] += (REAL)cimag(gbc);
            }
        }
        if (gdt) gdt[h] += (REAL)(sdt * dt);   /* dt = exp(log_dt) */
    }
    free(own);
    return SL_OK;
}
