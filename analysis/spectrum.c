/*
** seqlab spectrum: see spectrum.h.
**
** Work per point and layer: one linear system (A only, plus A_ct for LTI
** families) and one structured eigen-decomposition. Random samples are
** independent and run in parallel over OpenMP threads; rows are merged in
** sample order so output does not depend on the thread count.
*/
#include "spectrum.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eig.h"
#include "trajectory.h"
#include "util.h"

double sl_timescale(double re, double im)
{
    double r = hypot(re, im);
    if (r == 0.0) return 0.0;
    if (fabs(r - 1.0) <= 1e-12) return INFINITY;
    return -1.0 / log(r);
}

const char *sl_at_name(sl_at at)
{
    switch (at) {
    case SL_AT_ORIGIN: return "origin";
    case SL_AT_TRAJECTORY: return "trajectory";
    case SL_AT_RANDOM: return "random";
    case SL_AT_LTI: return "lti";
    default: return "auto";
    }
}

sl_at sl_spectrum_default_at(const sl_model *m)
{
    int lti = m->n_layers > 0, a_const = lti;
    for (int l = 0; l < m->n_layers; l++) {
        const unsigned f = m->layers[l]->flags;
        /* Nonlinear layers: the origin (their Jacobian there). */
        if (!(f & SL_LAYER_LINEAR)) return SL_AT_ORIGIN;
        lti &= (f & SL_LAYER_LTI) != 0;
        a_const &= (f & (SL_LAYER_LTI | SL_LAYER_A_CONST)) != 0;
    }
    if (lti) return SL_AT_LTI;
    /* A the same everywhere (B, C input-dependent): one point is the whole
    ** spectrum, and random inputs would only repeat it. */
    if (a_const) return SL_AT_ORIGIN;
    /* Selective layers at zero input are degenerate (a DeltaNet key of 0 leaves
    ** every eigenvalue at 1): their spectrum is a distribution over inputs. */
    return SL_AT_RANDOM;
}

void sl_spectrum_free(sl_spectrum *s)
{
    for (int l = 0; l < s->n_layers; l++) {
        free(s->sum[l].point_radius);
        free(s->sum[l].point_index);
    }
    free(s->sum);
    free(s->rows);
    free(s->vr);
    free(s->vi);
    memset(s, 0, sizeof *s);
}

/* Rows of one (layer, point): a growable list local to a thread. */
typedef struct rowbuf {
    size_t n, cap;
    sl_spec_row *rows;
    int64_t dim;
    double *vr, *vi;
} rowbuf;

static int rowbuf_add_eig(rowbuf *b, int layer, int64_t point, int continuous, const sl_eig *e, sl_err *err)
{
    if (b->n + (size_t)e->n > b->cap) {
        size_t cap = SL_MAX(b->cap * 2, b->n + (size_t)e->n + 64);
        sl_spec_row *r = realloc(b->rows, cap * sizeof *r);
        if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
        b->rows = r;
        if (e->vr) {
            if (b->dim && b->dim != e->dim) return sl_err_set(err, SL_EINTERNAL, "eigenvector sizes differ");
            b->dim = e->dim;
            double *vr = realloc(b->vr, cap * (size_t)e->dim * sizeof *vr);
            if (!vr) return sl_err_set(err, SL_ENOMEM, "out of memory");
            b->vr = vr;
            double *vi = realloc(b->vi, cap * (size_t)e->dim * sizeof *vi);
            if (!vi) return sl_err_set(err, SL_ENOMEM, "out of memory");
            b->vi = vi;
        }
        b->cap = cap;
    }
    for (int64_t i = 0; i < e->n; i++) {
        b->rows[b->n] = (sl_spec_row){ layer, point, continuous, i, e->re[i], e->im[i], e->mult[i], e->block[i] };
        if (e->vr) {
            memcpy(b->vr + b->n * (size_t)e->dim, e->vr + i * e->dim, (size_t)e->dim * sizeof *b->vr);
            memcpy(b->vi + b->n * (size_t)e->dim, e->vi + i * e->dim, (size_t)e->dim * sizeof *b->vi);
        }
        b->n++;
    }
    return SL_OK;
}

static void rowbuf_free(rowbuf *b)
{
    free(b->rows);
    free(b->vr);
    free(b->vi);
    memset(b, 0, sizeof *b);
}

/* Eigenvalues of layer L at (carry, u): discrete always, continuous when the
** layer keeps A_ct and want_ct. */
static int point_eigs(const sl_layer *L, const double *carry, const double *u, int layer, int64_t point, int want_ct,
                      int vectors, rowbuf *b, sl_err *err)
{
    sl_linsys ls;
    sl_linsys_init(&ls);
    int rc = sl_layer_linsys(L, carry, u, SL_LS_A | (want_ct ? SL_LS_CT : 0), &ls, err);
    if (rc) return rc;
    sl_eig e;
    if (!(rc = sl_op_eig(&ls.A, vectors, &e, err))) {
        rc = rowbuf_add_eig(b, layer, point, 0, &e, err);
        sl_eig_free(&e);
    }
    if (!rc && want_ct && ls.has_ct && ls.A_ct.kind != SL_OP_NONE) {
        if (!(rc = sl_op_eig(&ls.A_ct, 0, &e, err))) {
            /* Continuous rows carry no vectors; keep the buffers aligned. */
            if (b->vr) {
                sl_eig e2 = e;
                e2.dim = b->dim;
                e2.vr = calloc((size_t)(e.n * b->dim + 1), sizeof *e2.vr);
                e2.vi = calloc((size_t)(e.n * b->dim + 1), sizeof *e2.vi);
                rc = (!e2.vr || !e2.vi) ? sl_err_set(err, SL_ENOMEM, "out of memory")
                                        : rowbuf_add_eig(b, layer, point, 1, &e2, err);
                free(e2.vr);
                free(e2.vi);
            } else {
                rc = rowbuf_add_eig(b, layer, point, 1, &e, err);
            }
            sl_eig_free(&e);
        }
    }
    sl_linsys_free(&ls);
    if (rc) sl_err_prefix(err, "layer %d", layer);
    return rc;
}

static int merge(sl_spectrum *s, rowbuf *b, sl_err *err)
{
    if (!b->n) return SL_OK;
    sl_spec_row *r = realloc(s->rows, (s->n_rows + b->n) * sizeof *r);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    s->rows = r;
    memcpy(s->rows + s->n_rows, b->rows, b->n * sizeof *r);
    if (b->vr) {
        s->vec_dim = b->dim;
        size_t tot = (s->n_rows + b->n) * (size_t)b->dim;
        double *vr = realloc(s->vr, tot * sizeof *vr), *vi;
        if (!vr) return sl_err_set(err, SL_ENOMEM, "out of memory");
        s->vr = vr;
        if (!(vi = realloc(s->vi, tot * sizeof *vi))) return sl_err_set(err, SL_ENOMEM, "out of memory");
        s->vi = vi;
        memcpy(s->vr + s->n_rows * (size_t)b->dim, b->vr, b->n * (size_t)b->dim * sizeof *vr);
        memcpy(s->vi + s->n_rows * (size_t)b->dim, b->vi, b->n * (size_t)b->dim * sizeof *vi);
    }
    s->n_rows += b->n;
    return SL_OK;
}

/* ------------------------------------------------------------ summaries */
typedef struct wv { double v; int64_t w; } wv;

static int cmp_wv(const void *a, const void *b)
{
    double x = ((const wv *)a)->v, y = ((const wv *)b)->v;
    return (x > y) - (x < y);
}

/* Weighted median of n values (weights >= 1); sorts v. */
static double wmedian(wv *v, size_t n)
{
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_wv);
    int64_t tot = 0, acc = 0;
    for (size_t i = 0; i < n; i++) tot += v[i].w;
    for (size_t i = 0; i < n; i++) {
        acc += v[i].w;
        if (2 * acc >= tot) return v[i].v;
    }
    return v[n - 1].v;
}

static int summarise(const sl_model *m, sl_spectrum *s, const int *layers, int nl, sl_err *err)
{
    s->sum = calloc((size_t)nl, sizeof *s->sum);
    if (!s->sum) return sl_err_set(err, SL_ENOMEM, "out of memory");
    s->n_layers = nl;
    wv *taus = malloc((s->n_rows + 1) * sizeof *taus);
    if (!taus) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int k = 0; k < nl; k++) {
        sl_spec_summary *S = &s->sum[k];
        S->layer = layers[k];
        S->kind = m->layers[layers[k]]->kind;
        S->radius = 0;
        S->ct_max_real = -INFINITY;
        size_t nt = 0;
        /* Points in order of appearance. */
        int64_t np = 0, last = INT64_MIN;
        for (size_t i = 0; i < s->n_rows; i++) {
            const sl_spec_row *r = &s->rows[i];
            if (r->layer != S->layer || r->continuous) continue;
            if (r->point != last) { np++; last = r->point; }
        }
        S->n_points = np;
        S->point_radius = calloc((size_t)(np ? np : 1), sizeof *S->point_radius);
        S->point_index = calloc((size_t)(np ? np : 1), sizeof *S->point_index);
        if (!S->point_radius || !S->point_index) { free(taus); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        int64_t p = -1;
        last = INT64_MIN;
        for (size_t i = 0; i < s->n_rows; i++) {
            const sl_spec_row *r = &s->rows[i];
            if (r->layer != S->layer) continue;
            if (r->continuous) {
                S->has_ct = 1;
                S->ct_max_real = fmax(S->ct_max_real, r->re);
                continue;
            }
            if (r->point != last) { p++; last = r->point; S->point_index[p] = r->point; }
            double mod = hypot(r->re, r->im);
            S->point_radius[p] = fmax(S->point_radius[p], mod);
            S->radius = fmax(S->radius, mod);
            if (mod > 1.0 + 1e-12) S->n_outside += r->mult;
            if (r->re < 0) S->n_negreal += r->mult;
            if (p == 0) S->n_eig += r->mult;
            double tau = sl_timescale(r->re, r->im);
            if (tau >= 0) taus[nt++] = (wv){ tau, r->mult };
        }
        S->tau_min = INFINITY;
        S->tau_max = 0;
        for (size_t i = 0; i < nt; i++) {
            S->tau_min = fmin(S->tau_min, taus[i].v);
            S->tau_max = fmax(S->tau_max, taus[i].v);
        }
        if (!nt) S->tau_min = S->tau_max = NAN;
        S->tau_median = wmedian(taus, nt);
        /* Spread of the per-point radius. */
        wv *rs = malloc((size_t)(np ? np : 1) * sizeof *rs);
        if (!rs) { free(taus); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        S->radius_min = INFINITY;
        for (int64_t q = 0; q < np; q++) {
            rs[q] = (wv){ S->point_radius[q], 1 };
            S->radius_min = fmin(S->radius_min, S->point_radius[q]);
        }
        S->radius_median = wmedian(rs, (size_t)np);
        free(rs);
    }
    free(taus);
    return SL_OK;
}

/* ------------------------------------------------------------ points */
static int run_fixed(const sl_model *m, const sl_spectrum_opts *o, sl_at at, const int *layers, int nl, sl_spectrum *s,
                     sl_err *err)
{
    int rc = SL_OK;
    for (int k = 0; k < nl && !rc; k++) {
        const sl_layer *L = m->layers[layers[k]];
        double *carry = calloc((size_t)L->n_carry + 1, sizeof *carry), *u = calloc((size_t)L->n_in + 1, sizeof *u);
        rowbuf b = { 0 };
        if (!carry || !u) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        if (!rc) rc = point_eigs(L, carry, u, layers[k], at == SL_AT_LTI ? SL_POINT_LTI : SL_POINT_ORIGIN,
                                 at == SL_AT_LTI, o->vectors, &b, err);
        if (!rc) rc = merge(s, &b, err);
        rowbuf_free(&b);
        free(carry);
        free(u);
    }
    return rc;
}

static int run_trajectory(const sl_model *m, const sl_spectrum_opts *o, const int *layers, int nl, sl_spectrum *s,
                          sl_err *err)
{
    if (!o->input || o->T <= 0) return sl_err_set(err, SL_EINVAL, "--at trajectory needs an input sequence");
    sl_traj t;
    int rc = sl_traj_run(m, o->input, o->T, o->steps, 0, &t, err);
    if (rc) return rc;
    for (int64_t k = 0; k < t.n_kept && !rc; k++) {
        for (int q = 0; q < nl && !rc; q++) {
            const int l = layers[q];
            const sl_layer *L = m->layers[l];
            rowbuf b = { 0 };
            rc = point_eigs(L, t.carry[l] + k * L->n_carry, t.input[l] + k * L->n_in, l, t.steps[k], 0, o->vectors, &b,
                            err);
            if (!rc) rc = merge(s, &b, err);
            rowbuf_free(&b);
        }
    }
    sl_traj_free(&t);
    return rc;
}

/* The random points: N sequences of W + 1 steps (features ~ N(0, scale^2), or
** embeddings of uniformly drawn tokens), run through the float forward pass
** in one batch per layer: W steps that leave each layer's carry (the point's
** state), then one more step whose input is the point's input. The linear
** systems at these points are then taken in double, exactly; only the way
** there is float. Each sample draws from its own generator seeded by
** (seed, sample), so results do not depend on the thread count. */
static int random_points(const sl_model *m, const sl_spectrum_opts *o, int64_t N, int64_t W, double **carry,
                         double **input, sl_err *err)
{
    const int L = m->n_layers;
    const double scale = o->input_scale > 0 ? o->input_scale : 1.0;
    int64_t maxw = m->n_in;
    for (int l = 0; l < L; l++) maxw = SL_MAX(maxw, SL_MAX(m->layers[l]->n_in, m->layers[l]->n_out));
    const int64_t Wp = SL_MAX(W, 1);
    float *pre = malloc((size_t)(N * Wp * maxw) * sizeof *pre), *pre_out = malloc((size_t)(N * Wp * maxw) * sizeof *pre_out);
    float *last = malloc((size_t)(N * maxw) * sizeof *last), *last_out = malloc((size_t)(N * maxw) * sizeof *last_out);
    float *fc = NULL;
    int rc = (!pre || !pre_out || !last || !last_out) ? sl_err_set(err, SL_ENOMEM, "out of memory for the random points") : SL_OK;
    for (int64_t i = 0; i < N && !rc; i++) {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        if (!r) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
        gsl_rng_set(r, (unsigned long)(o->seed * 1000003u + (uint64_t)i + 1u));
        for (int64_t t = 0; t <= W; t++) {
            float *ut = t < W ? pre + (i * W + t) * m->n_in : last + i * m->n_in;
            if (m->embedding && m->embedding->ndim == 2 && m->embedding->shape[1] == m->n_in) {
                int64_t tok = (int64_t)gsl_rng_uniform_int(r, (unsigned long)m->embedding->shape[0]);
                memcpy(ut, m->embedding->data + tok * m->n_in, (size_t)m->n_in * sizeof *ut);
            } else {
                for (int64_t j = 0; j < m->n_in; j++) ut[j] = (float)gsl_ran_gaussian_ziggurat(r, scale);
            }
        }
        gsl_rng_free(r);
    }
    for (int l = 0; l < L && !rc; l++) {
        const sl_layer *Ly = m->layers[l];
        free(fc);
        if (!(fc = calloc((size_t)(N * Ly->n_carry), sizeof *fc))) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
        if (W > 0) {
            sl_fwd f = { .B = N, .T = W, .x = pre, .y = pre_out, .carry = fc };
            if ((rc = sl_layer_forward(Ly, &f, err))) break;
        }
        for (int64_t i = 0; i < N * Ly->n_carry; i++) carry[l][i] = fc[i];
        for (int64_t i = 0; i < N * Ly->n_in; i++) input[l][i] = last[i];
        sl_fwd g = { .B = N, .T = 1, .x = last, .y = last_out, .carry = fc };
        if ((rc = sl_layer_forward(Ly, &g, err))) break;
        float *t1 = pre; pre = pre_out; pre_out = t1;
        float *t2 = last; last = last_out; last_out = t2;
    }
    free(fc);
    free(pre); free(pre_out); free(last); free(last_out);
    return rc;
}

static int run_random(const sl_model *m, const sl_spectrum_opts *o, const int *layers, int nl, sl_spectrum *s,
                      sl_err *err)
{
    const int64_t N = o->samples > 0 ? o->samples : 64, W = o->warmup >= 0 ? o->warmup : 16;
    const int L = m->n_layers;
    double **carry = calloc((size_t)L, sizeof *carry), **input = calloc((size_t)L, sizeof *input);
    rowbuf *bufs = calloc((size_t)N, sizeof *bufs);
    int *rcs = calloc((size_t)N, sizeof *rcs);
    sl_err *errs = calloc((size_t)N, sizeof *errs);
    int rc = (!carry || !input || !bufs || !rcs || !errs) ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
    for (int l = 0; l < L && !rc; l++) {
        carry[l] = malloc((size_t)(N * m->layers[l]->n_carry) * sizeof **carry);
        input[l] = malloc((size_t)(N * m->layers[l]->n_in) * sizeof **input);
        if (!carry[l] || !input[l]) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    if (!rc) rc = random_points(m, o, N, W, carry, input, err);
    if (!rc) {
#pragma omp parallel for schedule(dynamic)
        for (int64_t i = 0; i < N; i++)
            for (int q = 0; q < nl && !rcs[i]; q++) {
                const int l = layers[q];
                const sl_layer *Ly = m->layers[l];
                rcs[i] = point_eigs(Ly, carry[l] + i * Ly->n_carry, input[l] + i * Ly->n_in, l, i, 0, o->vectors,
                                    &bufs[i], &errs[i]);
            }
        for (int64_t i = 0; i < N; i++) {
            if (!rc && rcs[i]) {
                rc = rcs[i];
                if (err) *err = errs[i];
            }
            if (!rc) rc = merge(s, &bufs[i], err);
        }
    }
    for (int64_t i = 0; bufs && i < N; i++) rowbuf_free(&bufs[i]);
    for (int l = 0; l < L; l++) {
        if (carry) free(carry[l]);
        if (input) free(input[l]);
    }
    free(carry);
    free(input);
    free(bufs);
    free(rcs);
    free(errs);
    return rc;
}

int sl_spectrum_run(const sl_model *m, const sl_spectrum_opts *o, sl_spectrum *s, sl_err *err)
{
    memset(s, 0, sizeof *s);
    if (m->n_layers == 0) return sl_err_set(err, SL_EUNSUP, "the model has no layers");
    if (o->layer >= m->n_layers || o->layer < -1)
        return sl_err_set(err, SL_EINVAL, "no layer %d (the model has %d layer%s, 0..%d)", o->layer, m->n_layers,
                          m->n_layers == 1 ? "" : "s", m->n_layers - 1);
    int *layers = malloc((size_t)m->n_layers * sizeof *layers), nl = 0;
    if (!layers) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int l = 0; l < m->n_layers; l++)
        if (o->layer < 0 || o->layer == l) layers[nl++] = l;
    sl_at at = o->at == SL_AT_AUTO ? sl_spectrum_default_at(m) : o->at;
    if (at == SL_AT_LTI)
        for (int k = 0; k < nl; k++)
            if (!(m->layers[layers[k]]->flags & SL_LAYER_LTI)) {
                int l = layers[k];
                free(layers);
                return sl_err_set(err, SL_EINVAL, "--at lti: layer %d (%s) is not time-invariant; use --at origin, "
                                  "trajectory or random", l, m->layers[l]->kind);
            }
    s->at = at;
    int rc;
    switch (at) {
    case SL_AT_TRAJECTORY: rc = run_trajectory(m, o, layers, nl, s, err); break;
    case SL_AT_RANDOM: rc = run_random(m, o, layers, nl, s, err); break;
    default: rc = run_fixed(m, o, at, layers, nl, s, err); break;
    }
    if (!rc) rc = summarise(m, s, layers, nl, err);
    free(layers);
    if (rc) sl_spectrum_free(s);
    return rc;
}
