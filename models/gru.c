/*
** The gru family: torch.nn.GRU (and GRUCell), gate order r, z, n:
**
**     r = sigmoid(W_ir u + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz u + b_iz + W_hz h + b_hz)
**     n = tanh(W_in u + b_in + r . (W_hn h + b_hn)),   h' = (1 - z) . n + z . h
**
** Linear system at (h, u), with hn = W_hn h + b_hn:
**     A = diag(z) + diag((h - n) z(1-z)) W_hz
**         + diag((1 - z)(1 - n^2)) [diag(hn r(1-r)) W_hr + diag(r) W_hn]
**     B = diag((h - n) z(1-z)) W_iz + diag((1 - z)(1 - n^2)) [diag(hn r(1-r)) W_ir + W_in]
** C = I, D = 0.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "torch_rnn.h"
#include "util.h"

/* Next state and, if coef, the per-gate coefficients for W_h* (ka) and
** W_i* (kb), 3H each, and z (diagonal of A). work: 6 H doubles. */
static void gru_point(const sl_rnn_weights *w, const double *h, const double *u, double *work, double *hn_out,
                      double *ka, double *kb, double *zdiag)
{
    const int64_t H = w->H;
    double *gx = work, *gh = work + 3 * H;
    sl_torch_rnn_preact(w, h, u, gx, gh);
    for (int64_t j = 0; j < H; j++) {
        double r = 1.0 / (1.0 + exp(-(gx[j] + gh[j])));
        double z = 1.0 / (1.0 + exp(-(gx[H + j] + gh[H + j])));
        double hn = gh[2 * H + j];
        double n = tanh(gx[2 * H + j] + r * hn);
        hn_out[j] = (1.0 - z) * n + z * h[j];
        if (!ka) continue;
        double dn = (1.0 - z) * (1.0 - n * n), dz = (h[j] - n) * z * (1.0 - z), dr = dn * hn * r * (1.0 - r);
        ka[j] = dr;
        ka[H + j] = dz;
        ka[2 * H + j] = dn * r;
        kb[j] = dr;
        kb[H + j] = dz;
        kb[2 * H + j] = dn;
        zdiag[j] = z;
    }
}

static int gru_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    const int64_t H = w->H;
    double *work = malloc((size_t)(7 * H) * sizeof *work);
    if (!work) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *hn = work + 6 * H;
    gru_point(w, carry, u, work, hn, NULL, NULL, NULL);
    if (next) memcpy(next, hn, (size_t)H * sizeof *next);
    if (y) memcpy(y, hn, (size_t)H * sizeof *y);
    free(work);
    return SL_OK;
}

static int gru_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                      sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    const int64_t H = w->H, in = w->in;
    int rc = sl_torch_rnn_linsys_io(L, u, what, ls, err);
    if (rc) return rc;
    double *work = malloc((size_t)(14 * H) * sizeof *work);
    if (!work) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *hn = work + 6 * H, *ka = work + 7 * H, *kb = work + 10 * H, *z = work + 13 * H;
    gru_point(w, carry, u, work, hn, ka, kb, z);
    if (what & SL_LS_A) {
        if (sl_op_dense(&ls->A, H, H)) { free(work); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        for (int q = 0; q < 3; q++) sl_torch_rnn_accum_gate(ls->A.a, H, 0, w->w_hh, H, H, q, ka + q * H);
        for (int64_t j = 0; j < H; j++) ls->A.a[j * H + j] += z[j];
    }
    if (what & SL_LS_B) {
        if (sl_op_dense(&ls->B, H, in)) { free(work); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        for (int q = 0; q < 3; q++) sl_torch_rnn_accum_gate(ls->B.a, in, 0, w->w_ih, in, H, q, kb + q * H);
    }
    free(work);
    return SL_OK;
}

static const sl_layer_ops gru_ops = {
    .forward = sl_torch_rnn_forward,
    .step = gru_step,
    .linsys = gru_linsys,
    .free = sl_torch_rnn_free,
    .backward = sl_torch_rnn_backward,
    .backward_f64 = sl_torch_rnn_backward_f64,
    .params_changed = sl_torch_rnn_params_changed,
};

static int gru_detect(const sl_tensors *ts, json_t **config) { return sl_torch_rnn_detect(ts, 3, config); }

static int gru_build(sl_model *m, sl_err *err)
{
    sl_torch_rnn s;
    int rc = sl_torch_rnn_parse(m, 3, 0, &s, err);
    if (rc || (rc = sl_torch_rnn_build_layers(m, &s, SL_CELL_GRU, &gru_ops, err))) return rc;
    m->summary = sl_strfmt("gru, %lld layer%s, input %lld, hidden %lld%s", (long long)s.num_layers,
                           s.num_layers == 1 ? "" : "s", (long long)s.input_size, (long long)s.hidden_size,
                           s.cell ? " (cell)" : "");
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int gru_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    return sl_torch_rnn_init(cfg, seed, ts, 3, 0, err);
}

static const sl_config_key gru_keys[] = {
    {"input_size", "int", "features per input step (required)"},
    {"hidden_size", "int", "hidden units H (required)"},
    {"num_layers", "int", "stacked layers (default 1)"},
    {"bias", "bool", "bias vectors b_ih, b_hh (default true)"},
    {0, 0, 0},
};

const sl_family sl_family_gru = {
    .name = "gru",
    .summary = "GRU (torch.nn.GRU / GRUCell; gates r, z, n)",
    .detect = gru_detect,
    .build = gru_build,
    .init = gru_init,
    .keys = gru_keys,
};
