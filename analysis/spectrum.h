/*
** seqlab spectrum: eigenvalues of every layer's transition A_t at chosen points.
**
** Points: the origin (state 0, input 0; the default for nonlinear
** families), steps of a trajectory along a real input (reached with
** the double-precision reference step), N random inputs (each a short random
** prefix of `warmup` steps then one more step; features ~ N(0,
** input_scale^2), or embeddings of uniformly drawn tokens when the model has
** an embedding; reached with one batched float forward pass; the default
** for selective families, whose zero-input spectrum is degenerate), or "lti" for
** time-invariant families, whose
** spectrum needs no point and is reported both discrete (A) and continuous
** (A_ct) when the family keeps the continuous form.
**
** Rows come from sl_op_eig, so structure is used first and value-side repeats
** are one row with a multiplicity. The summary per layer counts with
** multiplicity: spectral radius, how many eigenvalues lie outside the unit
** circle, how many have a negative real part, and the min / median / max
** timescale tau = -1/ln|lambda| (in steps).
*/
#ifndef SL_SPECTRUM_H
#define SL_SPECTRUM_H

#include <stdint.h>

#include "err.h"
#include "model.h"

typedef enum sl_at { SL_AT_AUTO = 0, SL_AT_ORIGIN, SL_AT_TRAJECTORY, SL_AT_RANDOM, SL_AT_LTI } sl_at;

/* Special point indices (step and sample points are >= 0). */
#define SL_POINT_ORIGIN (-1)
#define SL_POINT_LTI    (-2)

typedef struct sl_spectrum_opts {
    int            layer;        /* -1: every layer */
    sl_at          at;
    const double  *input;        /* trajectory: [T, n_in] (one sequence) */
    int64_t        T;
    const unsigned char *steps;  /* trajectory: mask of T steps to report, NULL = every step */
    int64_t        samples;      /* random: number of samples */
    uint64_t       seed;
    int64_t        warmup;       /* random: steps of random input before the sampled step (0 allowed) */
    double         input_scale;  /* random: std of random features (default 1) */
    int            vectors;      /* also compute eigenvectors */
} sl_spectrum_opts;

typedef struct sl_spec_row {
    int      layer;
    int64_t  point;              /* step / sample index, or SL_POINT_* */
    int      continuous;         /* eigenvalue of the continuous-time A_ct */
    int64_t  index;              /* position within (layer, point, continuous) */
    double   re, im;
    int64_t  mult;               /* multiplicity */
    int64_t  block;              /* channel / head / block, -1 when not meaningful */
} sl_spec_row;

typedef struct sl_spec_summary {
    int      layer;
    const char *kind;            /* layer kind */
    int64_t  n_points;
    int64_t  n_eig;              /* per point, with multiplicity */
    double   radius;             /* max over points */
    double   radius_min, radius_median;  /* spread of the per-point radius */
    int64_t  n_outside;          /* |lambda| > 1, with multiplicity, summed over points */
    int64_t  n_negreal;          /* re < 0 */
    double   tau_min, tau_median, tau_max;   /* over |lambda| <= 1, with multiplicity */
    int      has_ct;             /* continuous-time eigenvalues reported too */
    double   ct_max_real;        /* max real part of the continuous eigenvalues */
    double  *point_radius;       /* [n_points] radius at each point */
    int64_t *point_index;        /* [n_points] the point of each */
} sl_spec_summary;

typedef struct sl_spectrum {
    sl_at            at;
    size_t           n_rows;
    sl_spec_row     *rows;
    int              n_layers;   /* summaries */
    sl_spec_summary *sum;
    int64_t          vec_dim;    /* eigenvectors per row when asked (vec_dim entries, complex) */
    double          *vr, *vi;
} sl_spectrum;

int  sl_spectrum_run(const sl_model *m, const sl_spectrum_opts *o, sl_spectrum *out, sl_err *err);
void sl_spectrum_free(sl_spectrum *s);

/* The point setting used when the options say SL_AT_AUTO: origin when any
** layer is nonlinear, lti when every layer is time-invariant, origin when
** every layer's A is the same at every point (SL_LAYER_A_CONST), else random. */
sl_at sl_spectrum_default_at(const sl_model *m);

/* tau = -1/ln|lambda| in steps: +inf for |lambda| = 1 (within 1e-12),
** negative for |lambda| > 1 (a growing mode), 0 for lambda = 0. */
double sl_timescale(double re, double im);

const char *sl_at_name(sl_at at);

#endif
