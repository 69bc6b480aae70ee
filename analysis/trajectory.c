/*
** Trajectories in double precision: see trajectory.h. Runs the reference
** step of every layer, so the points are exactly those of the linear systems
** the analyses compute (no float rounding between them).
*/
#include "trajectory.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void sl_traj_free(sl_traj *t)
{
    for (int l = 0; l < t->n_layers; l++) {
        if (t->carry) free(t->carry[l]);
        if (t->input) free(t->input[l]);
        if (t->unit_out) free(t->unit_out[l]);
    }
    free(t->carry);
    free(t->input);
    free(t->unit_out);
    free(t->steps);
    free(t->out);
    memset(t, 0, sizeof *t);
}

int sl_traj_run(const sl_model *m, const double *u, int64_t T, const unsigned char *keep, unsigned flags,
                sl_traj *t, sl_err *err)
{
    memset(t, 0, sizeof *t);
    const int L = m->n_layers;
    t->n_layers = L;
    t->T = T;
    int64_t nk = 0;
    for (int64_t s = 0; s < T; s++) nk += keep ? keep[s] != 0 : 1;
    t->n_kept = nk;
    t->steps = malloc((size_t)(nk ? nk : 1) * sizeof *t->steps);
    t->carry = calloc((size_t)L, sizeof *t->carry);
    t->input = calloc((size_t)L, sizeof *t->input);
    if (flags & SL_TRAJ_LAYER_OUTPUTS) t->unit_out = calloc((size_t)L, sizeof *t->unit_out);
    int64_t maxw = m->n_in, maxc = 1;
    for (int l = 0; l < L; l++) {
        maxw = SL_MAX(maxw, SL_MAX(m->layers[l]->n_in, m->layers[l]->n_out));
        maxc = SL_MAX(maxc, m->layers[l]->n_carry);
    }
    double **cur = calloc((size_t)L, sizeof *cur);
    double *next = malloc((size_t)maxc * sizeof *next), *x = malloc((size_t)maxw * sizeof *x),
           *y = malloc((size_t)maxw * sizeof *y);
    int rc = SL_OK;
    if (!t->steps || !t->carry || !t->input || !cur || !next || !x || !y ||
        ((flags & SL_TRAJ_LAYER_OUTPUTS) && !t->unit_out)) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < L && !rc; l++) {
        const sl_layer *Ly = m->layers[l];
        cur[l] = calloc((size_t)Ly->n_carry, sizeof **cur);
        t->carry[l] = malloc((size_t)(SL_MAX(nk, 1) * Ly->n_carry) * sizeof **t->carry);
        t->input[l] = malloc((size_t)(SL_MAX(nk, 1) * Ly->n_in) * sizeof **t->input);
        if (t->unit_out) t->unit_out[l] = malloc((size_t)(SL_MAX(T, 1) * Ly->n_out) * sizeof **t->unit_out);
        if (!cur[l] || !t->carry[l] || !t->input[l] || (t->unit_out && !t->unit_out[l]))
            rc = sl_err_set(err, SL_ENOMEM, "out of memory for the trajectory");
    }
    if (!rc && (flags & SL_TRAJ_OUTPUTS) &&
        !(t->out = malloc((size_t)(SL_MAX(T, 1) * m->n_out) * sizeof *t->out)))
        rc = sl_err_set(err, SL_ENOMEM, "out of memory for the trajectory");
    int64_t k = 0;
    for (int64_t s = 0; s < T && !rc; s++) {
        const int kept = keep ? keep[s] != 0 : 1;
        if (kept) t->steps[k] = s;
        memcpy(x, u + s * m->n_in, (size_t)m->n_in * sizeof *x);
        for (int l = 0; l < L && !rc; l++) {
            const sl_layer *Ly = m->layers[l];
            if (kept) {
                memcpy(t->carry[l] + k * Ly->n_carry, cur[l], (size_t)Ly->n_carry * sizeof *next);
                memcpy(t->input[l] + k * Ly->n_in, x, (size_t)Ly->n_in * sizeof *x);
            }
            if ((rc = sl_layer_step(Ly, cur[l], x, next, y, err))) break;
            memcpy(cur[l], next, (size_t)Ly->n_carry * sizeof *next);
            memcpy(x, y, (size_t)Ly->n_out * sizeof *x);
            if (t->unit_out) memcpy(t->unit_out[l] + s * Ly->n_out, y, (size_t)Ly->n_out * sizeof *y);
        }
        if (!rc && t->out) memcpy(t->out + s * m->n_out, x, (size_t)m->n_out * sizeof *x);
        k += kept;
    }
done:
    for (int l = 0; cur && l < L; l++) free(cur[l]);
    free(cur);
    free(next);
    free(x);
    free(y);
    if (rc) sl_traj_free(t);
    return rc;
}
