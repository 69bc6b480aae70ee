/*
** Tick positions and labels: see plot.h. Pure functions, no Cairo.
**
** Linear axes use Talbot, Lin and Hanrahan's extended Wilkinson algorithm
** ("An Extension of Wilkinson's Algorithm for Positioning Tick Labels on
** Axes", InfoVis 2010), following the reference R implementation
** (labeling::extended) in its search order and pruning so that it gives the
** same answers: a labelling is a step j*q*10^z (q from the nice list Q, j a
** skip factor) and a start, scored by
**     0.25 simplicity + 0.2 coverage + 0.5 density + 0.05 legibility,
** and the search over j, q, k (tick count) and z stops as soon as an upper
** bound of the score cannot beat the best found. Legibility is 1 here as in
** the reference; the axes code checks label overlap afterwards and asks for
** fewer ticks when labels collide.
**
** Log axes put majors at decades; labels are formatted by sl_ticks_format.
*/
#include "plot.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double Q[] = {1, 5, 2, 2.5, 4, 3};
#define NQ ((int)(sizeof Q / sizeof Q[0]))
static const double W[4] = {0.25, 0.2, 0.5, 0.05};
#define EPS (DBL_EPSILON * 100)

/* R's %% on doubles: the result has the sign of b. */
static double fmod_floor(double a, double b) { return a - floor(a / b) * b; }

static double simplicity(int qi, int j, double lmin, double lmax, double lstep)
{
    double r = fmod_floor(lmin, lstep);
    int v = (r < EPS || lstep - r < EPS) && lmin <= 0 && lmax >= 0;
    return 1.0 - (double)qi / (NQ - 1) - j + v;
}

static double simplicity_max(int qi, int j) { return 1.0 - (double)qi / (NQ - 1) - j + 1; }

static double coverage(double dmin, double dmax, double lmin, double lmax)
{
    double range = dmax - dmin;
    return 1.0 - 0.5 * ((dmax - lmax) * (dmax - lmax) + (dmin - lmin) * (dmin - lmin)) / ((0.1 * range) * (0.1 * range));
}

static double coverage_max(double dmin, double dmax, double span)
{
    double range = dmax - dmin;
    if (span <= range) return 1.0;
    double half = (span - range) / 2;
    return 1.0 - 0.5 * (2 * half * half) / ((0.1 * range) * (0.1 * range));
}

static double density(int k, double m, double dmin, double dmax, double lmin, double lmax)
{
    double r = (k - 1) / (lmax - lmin);
    double rt = (m - 1) / (fmax(lmax, dmax) - fmin(dmin, lmin));
    return 2.0 - fmax(r / rt, rt / r);
}

static double density_max(int k, double m) { return k >= m ? 2.0 - (k - 1) / (m - 1) : 1.0; }

/* The i-th tick of the labelling (start, j, q, z): lmin = start*q*10^z plus
** i steps of j*q*10^z, computed so that decimal steps come out as the
** nearest double (0.3, not 0.30000000000000004). */
static double tick_value(long long start, int i, int j, double q, int z)
{
    double num = ((double)start + (double)i * j) * q;
    if (z >= 0) return num * pow(10.0, z);
    return num / pow(10.0, -z);
}

int sl_ticks_extended(double dmin, double dmax, double m, int only_loose, double *out, int cap)
{
    if (!isfinite(dmin) || !isfinite(dmax) || !isfinite(m) || m < 2 || !out || cap < 2) return SL_EINVAL;
    if (dmin > dmax) { double t = dmin; dmin = dmax; dmax = t; }
    if (dmax - dmin < EPS) {
        int n = (int)m;
        if (n > cap) n = cap;
        for (int i = 0; i < n; i++) out[i] = dmin + (dmax - dmin) * i / (n - 1);
        return n;
    }

    double best_score = -2;
    int found = 0;
    long long best_start = 0;
    int best_j = 1, best_qi = 0, best_z = 0, best_k = 2;

    /* The bounds stop every loop long before these caps; they only guard
    ** against pathological floating point (ranges near DBL_MAX). */
    for (int j = 1; j < 1000; j++) {
        int stop_j = 0;
        for (int qi = 0; qi < NQ; qi++) {
            double q = Q[qi];
            double sm = simplicity_max(qi, j);
            if (W[0] * sm + W[1] + W[2] + W[3] < best_score) { stop_j = 1; break; }
            for (int k = 2; k < 10000; k++) {
                double dm = density_max(k, m);
                if (W[0] * sm + W[1] + W[2] * dm + W[3] < best_score) break;
                double delta = (dmax - dmin) / (k + 1) / j / q;
                int z = (int)ceil(log10(delta));
                for (int zi = 0; zi < 400; zi++, z++) {
                    double step = j * q * pow(10.0, z);
                    if (!isfinite(step)) break;
                    double cm = coverage_max(dmin, dmax, step * (k - 1));
                    if (W[0] * sm + W[1] * cm + W[2] * dm + W[3] < best_score) break;
                    double min_start = floor(dmax / step) * j - (double)(k - 1) * j;
                    double max_start = ceil(dmin / step) * j;
                    if (min_start > max_start) continue;
                    if (max_start - min_start > 1e6 || fabs(min_start) > 9e15) break;
                    for (long long start = (long long)min_start; start <= (long long)max_start; start++) {
                        double lmin = start * (step / j);
                        double lmax = lmin + step * (k - 1);
                        double s = simplicity(qi, j, lmin, lmax, step);
                        double c = coverage(dmin, dmax, lmin, lmax);
                        double g = density(k, m, dmin, dmax, lmin, lmax);
                        double score = W[0] * s + W[1] * c + W[2] * g + W[3] * 1.0;
                        if (score > best_score && (!only_loose || (lmin <= dmin && lmax >= dmax))) {
                            best_score = score;
                            found = 1;
                            best_start = start;
                            best_j = j;
                            best_qi = qi;
                            best_z = z;
                            best_k = k;
                        }
                    }
                }
            }
        }
        if (stop_j) break;
    }
    if (!found) return SL_EINVAL;
    if (best_k > cap) return SL_EINVAL;
    for (int i = 0; i < best_k; i++) out[i] = tick_value(best_start, i, best_j, Q[best_qi], best_z);
    return best_k;
}

/* ------------------------------------------------------------ Heckbert */
static double nicenum(double x, int round_it)
{
    double e = floor(log10(x));
    double f = x / pow(10.0, e);
    double nf;
    if (round_it) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10.0, e);
}

int sl_ticks_heckbert(double dmin, double dmax, int m, double *out, int cap)
{
    if (!isfinite(dmin) || !isfinite(dmax) || m < 2 || !out || cap < 2 || !(dmax > dmin)) return SL_EINVAL;
    double range = nicenum(dmax - dmin, 0);
    double lstep = nicenum(range / (m - 1), 1);
    double a = floor(dmin / lstep), b = ceil(dmax / lstep);
    int n = (int)(b - a) + 1;
    if (n > cap || n < 2) return SL_EINVAL;
    /* lstep is 1, 2 or 5 times a power of ten: divide by 10^-e for small steps */
    double e = floor(log10(lstep));
    double mant = round(lstep / pow(10.0, e));
    for (int i = 0; i < n; i++) {
        double num = (a + i) * mant;
        out[i] = e >= 0 ? num * pow(10.0, e) : num / pow(10.0, -e);
    }
    return n;
}

/* ------------------------------------------------------------ labels */
static void clean_negative_zero(char *s)
{
    if (s[0] != '-') return;
    for (const char *p = s + 1; *p; p++)
        if (*p != '0' && *p != '.') return;
    memmove(s, s + 1, strlen(s));
}

int sl_ticks_format(sl_ticks *t)
{
    if (!t || t->n < 0 || t->n > SL_TICKS_MAX) return SL_EINVAL;
    t->exponent = 0;
    if (t->n == 0) return SL_OK;
    double maxabs = 0;
    for (int i = 0; i < t->n; i++) {
        if (!isfinite(t->v[i])) return SL_EINVAL;
        maxabs = fmax(maxabs, fabs(t->v[i]));
    }
    /* smallest spacing, to judge how exact a label must be */
    double spacing = INFINITY;
    for (int i = 1; i < t->n; i++) {
        double d = fabs(t->v[i] - t->v[i - 1]);
        if (d > 0) spacing = fmin(spacing, d);
    }
    if (!isfinite(spacing)) spacing = maxabs > 0 ? maxabs : 1;
    /* values that are zero up to rounding (1e-17 among steps of 0.1) are 0 */
    double u[SL_TICKS_MAX];
    for (int i = 0; i < t->n; i++) u[i] = fabs(t->v[i]) < 1e-9 * spacing ? 0.0 : t->v[i];

    if (maxabs > 0) {
        int oom = (int)floor(log10(maxabs) + 1e-12);
        if (oom >= 6 || oom <= -5) t->exponent = oom;
    }
    double scale = pow(10.0, t->exponent);
    for (int i = 0; i < t->n; i++) u[i] /= scale;
    spacing /= scale;

    for (int d = 0; d <= 17; d++) {
        int ok = 1;
        for (int i = 0; i < t->n && ok; i++) {
            snprintf(t->label[i], SL_TICK_LABEL_MAX, "%.*f", d, u[i]);
            clean_negative_zero(t->label[i]);
            double back = strtod(t->label[i], NULL);
            if (fabs(back - u[i]) > 1e-6 * spacing + 1e-12 * fabs(u[i])) ok = 0;
            for (int k = 0; k < i && ok; k++)
                if (strcmp(t->label[k], t->label[i]) == 0) ok = 0;
        }
        if (ok) return SL_OK;
    }
    /* no fixed-point form tells them apart: fall back on %g */
    for (int i = 0; i < t->n; i++) snprintf(t->label[i], SL_TICK_LABEL_MAX, "%.15g", u[i]);
    return SL_OK;
}

/* Each label on its own, with the fewest decimals that give back its
** value (log axes, where labels are not evenly spaced: "0.3" "0.5" "1" "2"),
** with a common exponent for tiny or huge values as in sl_ticks_format. */
static void format_shortest(sl_ticks *t)
{
    double maxabs = 0;
    for (int i = 0; i < t->n; i++) maxabs = fmax(maxabs, fabs(t->v[i]));
    t->exponent = 0;
    if (maxabs > 0) {
        int oom = (int)floor(log10(maxabs) + 1e-12);
        if (oom >= 6 || oom <= -5) t->exponent = oom;
    }
    double scale = pow(10.0, t->exponent);
    for (int i = 0; i < t->n; i++) {
        double u = t->v[i] / scale;
        for (int d = 0; d <= 17; d++) {
            snprintf(t->label[i], SL_TICK_LABEL_MAX, "%.*f", d, u);
            if (fabs(strtod(t->label[i], NULL) - u) <= 1e-9 * fabs(u)) break;
        }
    }
}

/* ------------------------------------------------------------ log ticks */
static double pow10i(int e) { return e >= 0 ? pow(10.0, e) : 1.0 / pow(10.0, -e); }

static int floor_mod(int a, int b)
{
    int r = a % b;
    return r < 0 ? r + b : r;
}

int sl_ticks_log(double lo, double hi, int max_labels, sl_ticks *t)
{
    if (!t || !isfinite(lo) || !isfinite(hi) || !(lo > 0) || !(hi > lo)) return SL_EINVAL;
    memset(t, 0, sizeof *t);
    if (max_labels < 2) max_labels = 2;
    if (max_labels > SL_TICKS_MAX) max_labels = SL_TICKS_MAX;
    double llo = log10(lo), lhi = log10(hi);
    int e0 = (int)ceil(llo - 1e-9), e1 = (int)floor(lhi + 1e-9);
    int ndec = e1 - e0 + 1;

    if (ndec >= 2) {
        int k = (ndec + max_labels - 1) / max_labels;
        if (k < 1) k = 1;
        /* labelled decades at multiples of k (so 10^0 is one when in range),
        ** or from the first decade when that leaves fewer than two */
        int count = 0;
        for (int e = e0; e <= e1; e++) count += floor_mod(e, k) == 0;
        int phase = count >= 2 ? 0 : floor_mod(e0, k);
        for (int e = e0; e <= e1; e++) {
            if (floor_mod(e, k) == phase) {
                if (t->n < SL_TICKS_MAX) {
                    t->v[t->n] = pow10i(e);
                    snprintf(t->label[t->n], SL_TICK_LABEL_MAX, "10^{%d}", e);
                    t->n++;
                }
            } else if (t->nminor < SL_MINOR_MAX) {
                t->minor[t->nminor++] = pow10i(e);
            }
        }
        if (k == 1) {
            for (int e = e0 - 1; e <= e1; e++)
                for (int s = 2; s <= 9; s++) {
                    double v = s * pow10i(e);
                    if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12) && t->nminor < SL_MINOR_MAX)
                        t->minor[t->nminor++] = v;
                }
        }
        return SL_OK;
    }

    /* Less than two decades: label the multiples s x 10^e for the densest
    ** set of s that gives 2..max_labels labels, written plainly. */
    static const int sets[][10] = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 0}, {1, 2, 3, 5, 0}, {1, 2, 5, 0}, {1, 3, 0}, {1, 0}};
    int chosen = -1;
    for (int si = 0; si < (int)(sizeof sets / sizeof sets[0]); si++) {
        int count = 0;
        for (int e = e0 - 1; e <= e1; e++)
            for (int k = 0; sets[si][k]; k++) {
                double v = sets[si][k] * pow10i(e);
                count += v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12);
            }
        if (count >= 2 && count <= max_labels) { chosen = si; break; }
        if (count < 2) break;   /* sparser sets only have fewer */
    }
    if (chosen < 0) {
        /* not even two "nice" multiples inside: fall back on linear ticks */
        double tmp[SL_TICKS_MAX];
        int n = sl_ticks_extended(lo, hi, max_labels < 5 ? max_labels : 5, 0, tmp, SL_TICKS_MAX);
        if (n < 0) return n;
        for (int i = 0; i < n; i++)
            if (tmp[i] > 0 && tmp[i] >= lo * (1 - 1e-9) && tmp[i] <= hi * (1 + 1e-9)) t->v[t->n++] = tmp[i];
    } else {
        for (int e = e0 - 1; e <= e1; e++)
            for (int k = 0; sets[chosen][k]; k++) {
                double v = sets[chosen][k] * pow10i(e);
                if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12) && t->n < SL_TICKS_MAX) t->v[t->n++] = v;
            }
    }
    format_shortest(t);
    for (int e = e0 - 1; e <= e1; e++)
        for (int s = 1; s <= 9; s++) {
            double v = s * pow10i(e);
            if (v < lo * (1 - 1e-12) || v > hi * (1 + 1e-12)) continue;
            int dup = 0;
            for (int i = 0; i < t->n; i++) dup |= fabs(t->v[i] - v) <= 1e-9 * v;
            if (!dup && t->nminor < SL_MINOR_MAX) t->minor[t->nminor++] = v;
        }
    return SL_OK;
}
