/*
** The lstm family: torch.nn.LSTM (and LSTMCell), gate order i, f, g, o:
**
**     i, f, o = sigmoid(.), g = tanh(.)   of  W_ih u + b_ih + W_hh h + b_hh
**     c' = f . c + i . g,   h' = o . tanh(c')
**
** The state is [h; c], so A_t is the 2H x 2H Jacobian d[h'; c']/d[h; c]:
**     dc'/dh = sum_q diag(dc'/dp_q) W_hh[q],   dc'/dc = diag(f),
**     dh'/dh = sum_q diag(dh'/dp_q) W_hh[q],   dh'/dc = diag(o . (1 - tanh^2 c') . f),
** with dc'/dp = (g i(1-i), c f(1-f), i (1-g^2), 0) and
** dh'/dp = o (1 - tanh^2 c') dc'/dp + (0, 0, 0, tanh(c') o(1-o)); B_t the same
** with W_ih. C reads h, D = 0.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "torch_rnn.h"
#include "util.h"

/* Gate values and the derivative coefficients at (h, c, u). work: 12 H doubles.
** Fills hn, cn (next state) and, if coef, ch[4][H] = dh'/dp_q, cc[4][H] = dc'/dp_q. */
static void lstm_point(const sl_rnn_weights *w, const double *carry, const double *u, double *work, double *hn,
                       double *cn, double *ch, double *cc)
{
    const int64_t H = w->H;
    double *gx = work, *gh = work + 4 * H;
    sl_torch_rnn_preact(w, carry, u, gx, gh);
    const double *c = carry + H;
    for (int64_t j = 0; j < H; j++) {
        double i = 1.0 / (1.0 + exp(-(gx[j] + gh[j])));
        double f = 1.0 / (1.0 + exp(-(gx[H + j] + gh[H + j])));
        double g = tanh(gx[2 * H + j] + gh[2 * H + j]);
        double o = 1.0 / (1.0 + exp(-(gx[3 * H + j] + gh[3 * H + j])));
        double c2 = f * c[j] + i * g, tc = tanh(c2);
        hn[j] = o * tc;
        cn[j] = c2;
        if (!ch) continue;
        double dtc = 1.0 - tc * tc;
        cc[j] = g * i * (1.0 - i);
        cc[H + j] = c[j] * f * (1.0 - f);
        cc[2 * H + j] = i * (1.0 - g * g);
        cc[3 * H + j] = 0.0;
        for (int q = 0; q < 3; q++) ch[q * H + j] = o * dtc * cc[q * H + j];
        ch[3 * H + j] = tc * o * (1.0 - o);
        /* Reuse gx's slot for the dh'/dc diagonal and f for dc'/dc. */
        work[8 * H + j] = o * dtc * f;
        work[9 * H + j] = f;
    }
}

static int lstm_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    const int64_t H = w->H;
    double *work = malloc((size_t)(12 * H) * sizeof *work);
    if (!work) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *hn = work + 10 * H, *cn = work + 11 * H;
    lstm_point(w, carry, u, work, hn, cn, NULL, NULL);
    if (next) {
        memcpy(next, hn, (size_t)H * sizeof *next);
        memcpy(next + H, cn, (size_t)H * sizeof *next);
    }
    if (y) memcpy(y, hn, (size_t)H * sizeof *y);
    free(work);
    return SL_OK;
}

static int lstm_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                       sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    const int64_t H = w->H, in = w->in, n = 2 * H;
    int rc = sl_torch_rnn_linsys_io(L, u, what, ls, err);
    if (rc) return rc;
    double *work = malloc((size_t)(20 * H) * sizeof *work);
    if (!work) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *hn = work + 10 * H, *cn = work + 11 * H, *ch = work + 12 * H, *cc = work + 16 * H;
    lstm_point(w, carry, u, work, hn, cn, ch, cc);
    if (what & SL_LS_A) {
        if (sl_op_dense(&ls->A, n, n)) { free(work); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        for (int q = 0; q < 4; q++) {
            sl_torch_rnn_accum_gate(ls->A.a, n, 0, w->w_hh, H, H, q, ch + q * H);
            sl_torch_rnn_accum_gate(ls->A.a, n, H, w->w_hh, H, H, q, cc + q * H);
        }
        for (int64_t j = 0; j < H; j++) {
            ls->A.a[j * n + H + j] += work[8 * H + j];         /* dh'/dc */
            ls->A.a[(H + j) * n + H + j] += work[9 * H + j];   /* dc'/dc = f */
        }
    }
    if (what & SL_LS_B) {
        if (sl_op_dense(&ls->B, n, in)) { free(work); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
        for (int q = 0; q < 4; q++) {
            sl_torch_rnn_accum_gate(ls->B.a, in, 0, w->w_ih, in, H, q, ch + q * H);
            sl_torch_rnn_accum_gate(ls->B.a, in, H, w->w_ih, in, H, q, cc + q * H);
        }
    }
    free(work);
    return SL_OK;
}

static const sl_layer_ops lstm_ops = {
    .forward = sl_torch_rnn_forward,
    .step = lstm_step,
    .linsys = lstm_linsys,
    .free = sl_torch_rnn_free,
    .backward = sl_torch_rnn_backward,
    .backward_f64 = sl_torch_rnn_backward_f64,
    .params_changed = sl_torch_rnn_params_changed,
};

static int lstm_detect(const sl_tensors *ts, json_t **config) { return sl_torch_rnn_detect(ts, 4, config); }

static int lstm_build(sl_model *m, sl_err *err)
{
    sl_torch_rnn s;
    int rc = sl_torch_rnn_parse(m, 4, 0, &s, err);
    if (rc || (rc = sl_torch_rnn_build_layers(m, &s, SL_CELL_LSTM, &lstm_ops, err))) return rc;
    m->summary = sl_strfmt("lstm, %lld layer%s, input %lld, hidden %lld%s", (long long)s.num_layers,
                           s.num_layers == 1 ? "" : "s", (long long)s.input_size, (long long)s.hidden_size,
                           s.cell ? " (cell)" : "");
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int lstm_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    return sl_torch_rnn_init(cfg, seed, ts, 4, 0, err);
}

static const sl_config_key lstm_keys[] = {
    {"input_size", "int", "features per input step (required)"},
    {"hidden_size", "int", "hidden units H (required)"},
    {"num_layers", "int", "stacked layers (default 1)"},
    {"bias", "bool", "bias vectors b_ih, b_hh (default true)"},
    {0, 0, 0},
};

const sl_family sl_family_lstm = {
    .name = "lstm",
    .summary = "LSTM (torch.nn.LSTM / LSTMCell; gates i, f, g, o; state [h; c])",
    .detect = lstm_detect,
    .build = lstm_build,
    .init = lstm_init,
    .keys = lstm_keys,
};
