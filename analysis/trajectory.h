/*
** Trajectories in double precision: run a model's layers along one input
** sequence with each layer's reference step, keeping the points (carry before
** the step, layer input at the step) that analyses take linear systems at.
*/
#ifndef SL_TRAJECTORY_H
#define SL_TRAJECTORY_H

#include <stdint.h>

#include "err.h"
#include "model.h"

typedef struct sl_traj {
    int      n_layers;
    int64_t  T;
    int64_t  n_kept;         /* steps kept */
    int64_t *steps;          /* [n_kept] which steps, ascending */
    double **carry;          /* [layer][n_kept * n_carry]: the carry before each kept step */
    double **input;          /* [layer][n_kept * n_in]: the layer's input at each kept step */
    double  *out;            /* [T * n_out of the last layer] when outputs were asked, else NULL */
    double **unit_out;       /* [layer][T * n_out] every layer's output at every step when asked, else NULL */
} sl_traj;

enum { SL_TRAJ_OUTPUTS = 1u << 0, SL_TRAJ_LAYER_OUTPUTS = 1u << 1 };

/* Run m along u [T, m->n_in] from zero carries. keep: a mask of T bytes (1 =
** keep that step's point) or NULL for every step. flags: SL_TRAJ_*. */
int  sl_traj_run(const sl_model *m, const double *u, int64_t T, const unsigned char *keep, unsigned flags,
                 sl_traj *out, sl_err *err);
void sl_traj_free(sl_traj *t);

#endif
