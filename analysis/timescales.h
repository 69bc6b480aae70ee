/*
** seqlab timescales: how long each layer remembers.
**
** Three measures, after "Emergent mechanisms for long timescales depend on
** training curriculum and affect performance in memory tasks" (Khajehabdollahi
** et al., ICLR 2024):
**   mode timescales     tau = -1/ln|lambda| of the transition's eigenvalues
**                       (from sl_spectrum_run at the layer's default point);
**   single-unit         each output unit's own time constant (the leaky RNN's
**                       tau, or 1 for units without one);
**   network-mediated    each output unit's autocorrelation under a drive (the
**                       given input, or white noise N(0,1)) fitted with
**                       AC(k) = a exp(-k / tau) by nonlinear least squares
**                       (GSL multifit_nlinear, trust region), with the fit's R^2.
*/
#ifndef SL_TIMESCALES_H
#define SL_TIMESCALES_H

#include <stdint.h>

#include "err.h"
#include "model.h"

typedef struct sl_timescales_opts {
    int            layer;        /* -1: every layer */
    const float   *input;        /* drive [T, n_in], or NULL for white noise */
    int64_t        T;            /* steps of the drive (white noise: default 4096) */
    uint64_t       seed;
    int64_t        burn_in;      /* steps discarded before measuring (default min(T/10, 200)) */
    int64_t        max_lag;      /* lags fitted, 1..max_lag (default 100, at most T/4) */
} sl_timescales_opts;

typedef struct sl_unit_timescale {
    int     layer;
    int64_t unit;
    double  tau_single;          /* the unit's own time constant */
    double  tau_net;             /* fitted network-mediated timescale (steps); NAN when no fit */
    double  amplitude;           /* fitted a */
    double  r2;                  /* R^2 of the fit over the fitted lags */
    int64_t lags;                /* lags used in the fit */
    int     status;              /* 0 fitted; 1 constant activity; 2 no decay within the lags (none to fit,
                                    or a fitted tau above 5 x max_lag, kept in tau_net); 3 fit failed */
} sl_unit_timescale;

typedef struct sl_timescales {
    size_t             n_units;
    sl_unit_timescale *units;
    int64_t            max_lag;
    double            *acf;      /* [n_units, max_lag + 1] autocorrelation of each unit */
} sl_timescales;

int  sl_timescales_run(const sl_model *m, const sl_timescales_opts *o, sl_timescales *out, sl_err *err);
void sl_timescales_free(sl_timescales *t);

/* Fit AC(k) = a exp(-k/tau) to acf[1..K] (acf[0] = 1). Returns the status
** code above and fills tau, a, r2, lags_used. Exposed for tests. */
int sl_fit_exp_decay(const double *acf, int64_t K, double *tau, double *a, double *r2, int64_t *lags_used);

/* Normalised autocorrelation of x[T] at lags 0..K into acf (acf[0] = 1; all
** zeros and return 1 when x is constant). */
int sl_autocorr(const double *x, int64_t T, int64_t K, double *acf);

#endif
