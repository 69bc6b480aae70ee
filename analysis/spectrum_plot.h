/*
** The spectrum figure, drawn from eigenvalue rows alone so that `seqlab
** spectrum` and `seqlab plot RUN` (re-rendering a stored run) make the same
** figure: one complex-plane panel per layer with equal aspect, the dashed unit
** circle and the spectral radius noted; a panel per layer for the
** continuous-time eigenvalues (with the imaginary axis) where the family keeps
** them. Points are coloured by layer, or by local density when a panel has
** many of them (random samples, long trajectories).
*/
#ifndef SL_SPECTRUM_PLOT_H
#define SL_SPECTRUM_PLOT_H

#include <stddef.h>

#include "err.h"
#include "plot.h"
#include "spectrum.h"

/* Build the figure (the caller saves and frees it). titles: the panel title
** of each layer 0..n_layers-1 ("layer 0 (lstm)"; continuous-time panels add
** ", continuous time"), or NULL for "layer l". */
int sl_spectrum_figure(const sl_spec_row *rows, size_t n, int n_layers, const char *const *titles, const char *title,
                       sl_figure **out, sl_err *err);

/* Timescale histogram figure: one panel per entry (a layer, or whatever the
** caller compares) with log-x histograms of the mode timescales, the
** single-unit and the network-mediated timescales (values <= 0 or non-finite
** are left out). titles: each panel's title. */
int sl_timescales_figure(int n_panels, const char *const *titles, const double *const *mode, const size_t *n_mode,
                         const double *const *single, const size_t *n_single, const double *const *net,
                         const size_t *n_net, const char *title, sl_figure **out, sl_err *err);

#endif
