/*
** Figures of training and evaluation runs, drawn from the curves a run
** stores, so `seqlab train` / `seqlab eval` and `seqlab plot RUN` (which
** re-renders from the run store) draw the same figure.
*/
#ifndef SL_TRAIN_PLOT_H
#define SL_TRAIN_PLOT_H

#include <stddef.h>

#include "err.h"
#include "plot.h"

/* A curve (x, y) of n points. */
typedef struct sl_curve {
    size_t n;
    const double *x, *y;
} sl_curve;

/* Training: loss against step (log y), accuracy against step (training batch
** and evaluation), and the curriculum's N against step when n_curve.n > 0.
** chance: the accuracy of guessing (drawn dashed; NaN: none). */
int sl_train_figure(sl_curve loss, sl_curve acc, sl_curve eval_acc, sl_curve n_curve, double chance, const char *title,
                    sl_figure **out, sl_err *err);

/* Length generalisation: accuracy (every masked step, and the last step of
** each sequence) against test length on a log axis; the training length as
** a dashed vertical line (NaN: none), chance as a dashed horizontal one. */
int sl_eval_figure(sl_curve acc, sl_curve acc_last, double train_length, double chance, const char *title,
                   sl_figure **out, sl_err *err);

#endif
