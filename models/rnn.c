/*
** The rnn family: torch.nn.RNN with tanh or relu (multi-layer), and the leaky
** RNN with per-unit time constants tau of "Emergent mechanisms for long
** timescales depend on training curriculum...":
**
**     h_t = (1 - 1/tau) . h_{t-1} + (1/tau) . f(W_ih u_t + b_ih + W_hh h_{t-1} + b_hh)
**
** (config "leaky": true, tensor tau_l{k} [H], tau >= 1; tau = 1 is the plain RNN).
** Linear system at (h, u): with p the pre-activation and a = 1/tau,
**     A = diag(1 - a) + diag(a . f'(p)) W_hh,   B = diag(a . f'(p)) W_ih,
** C = I, D = 0. For relu, f'(p) = 1 where p > 0 and 0 elsewhere (PyTorch's
** convention at 0), and the linearisation is exact inside each linear region.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "torch_rnn.h"
#include "util.h"

static int is_relu(const sl_rnn_weights *w) { return w->cell == SL_CELL_RNN_RELU; }

static double unit_alpha(const sl_rnn_weights *w, int64_t j) { return w->tau ? 1.0 / (double)w->tau[j] : 1.0; }

static int rnn_step(const sl_layer *L, const double *carry, const double *u, double *next, double *y, sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    const int64_t H = w->H;
    double *g = malloc((size_t)(2 * H) * sizeof *g);
    if (!g) return sl_err_set(err, SL_ENOMEM, "out of memory");
    sl_torch_rnn_preact(w, carry, u, g, g + H);
    for (int64_t j = 0; j < H; j++) {
        double p = g[j] + g[H + j];
        double a = is_relu(w) ? (p > 0 ? p : 0.0) : tanh(p);
        double al = unit_alpha(w, j);
        double hn = (1.0 - al) * carry[j] + al * a;
        if (next) next[j] = hn;
        if (y) y[j] = hn;
    }
    free(g);
    return SL_OK;
}

static int rnn_linsys(const sl_layer *L, const double *carry, const double *u, unsigned what, sl_linsys *ls,
                      sl_err *err)
{
    const sl_rnn_weights *w = L->impl;
    const int64_t H = w->H, in = w->in;
    int rc = sl_torch_rnn_linsys_io(L, u, what, ls, err);
    if (rc) return rc;
    double *g = malloc((size_t)(3 * H) * sizeof *g);
    if (!g) return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *d = g + 2 * H;
    sl_torch_rnn_preact(w, carry, u, g, g + H);
    for (int64_t j = 0; j < H; j++) {
        double p = g[j] + g[H + j];
        double fp = is_relu(w) ? (p > 0 ? 1.0 : 0.0) : 1.0 - tanh(p) * tanh(p);
        d[j] = unit_alpha(w, j) * fp;
    }
    if (what & SL_LS_A) {
        if (sl_op_dense(&ls->A, H, H)) {
            rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        } else {
            sl_torch_rnn_accum_gate(ls->A.a, H, 0, w->w_hh, H, H, 0, d);
            for (int64_t j = 0; j < H; j++) ls->A.a[j * H + j] += 1.0 - unit_alpha(w, j);
        }
    }
    if (!rc && (what & SL_LS_B)) {
        if (sl_op_dense(&ls->B, H, in)) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        else sl_torch_rnn_accum_gate(ls->B.a, in, 0, w->w_ih, in, H, 0, d);
    }
    free(g);
    return rc;
}

static const sl_layer_ops rnn_ops = {
    .forward = sl_torch_rnn_forward,
    .step = rnn_step,
    .linsys = rnn_linsys,
    .free = sl_torch_rnn_free,
    .backward = sl_torch_rnn_backward,
    .backward_f64 = sl_torch_rnn_backward_f64,
    .params_changed = sl_torch_rnn_params_changed,
};

static int rnn_detect(const sl_tensors *ts, json_t **config) { return sl_torch_rnn_detect(ts, 1, config); }

static int rnn_build(sl_model *m, sl_err *err)
{
    sl_torch_rnn s;
    const char *nl;
    int leaky, rc;
    if ((rc = sl_config_str(m->config, "nonlinearity", NULL, &nl, err))) return rc;
    if ((rc = sl_config_bool(m->config, "leaky", 0, &leaky, err))) return rc;
    if (!nl) {
        nl = "tanh";
        sl_model_note(m, "nonlinearity not given: tanh assumed (PyTorch's default); set seqlab.config to override");
    }
    if (strcmp(nl, "tanh") && strcmp(nl, "relu"))
        return sl_err_set(err, SL_EFORMAT, "config key \"nonlinearity\" must be \"tanh\" or \"relu\" (is \"%s\")", nl);
    const int relu = strcmp(nl, "relu") == 0;
    if ((rc = sl_torch_rnn_parse(m, 1, leaky, &s, err))) return rc;
    json_object_set_new(m->config, "nonlinearity", json_string(relu ? "relu" : "tanh"));
    if (leaky) json_object_set_new(m->config, "leaky", json_true());
    if ((rc = sl_torch_rnn_build_layers(m, &s, relu ? SL_CELL_RNN_RELU : SL_CELL_RNN_TANH, &rnn_ops, err))) return rc;
    m->summary = sl_strfmt("rnn (%s%s), %lld layer%s, input %lld, hidden %lld%s", relu ? "relu" : "tanh",
                           leaky ? ", leaky" : "", (long long)s.num_layers, s.num_layers == 1 ? "" : "s",
                           (long long)s.input_size, (long long)s.hidden_size, s.cell ? " (cell)" : "");
    return m->summary ? SL_OK : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int rnn_init(json_t *cfg, uint64_t seed, sl_tensors *ts, sl_err *err)
{
    int leaky, rc;
    const char *nl;
    if ((rc = sl_config_bool(cfg, "leaky", 0, &leaky, err))) return rc;
    if ((rc = sl_config_str(cfg, "nonlinearity", "tanh", &nl, err))) return rc;
    if (strcmp(nl, "tanh") && strcmp(nl, "relu"))
        return sl_err_set(err, SL_EINVAL, "nonlinearity must be tanh or relu (is \"%s\")", nl);
    json_object_set_new(cfg, "nonlinearity", json_string(nl));
    if (leaky) json_object_set_new(cfg, "leaky", json_true());
    else json_object_del(cfg, "leaky");
    return sl_torch_rnn_init(cfg, seed, ts, 1, leaky, err);
}

static const sl_config_key rnn_keys[] = {
    {"input_size", "int", "features per input step (required)"},
    {"hidden_size", "int", "hidden units H (required)"},
    {"num_layers", "int", "stacked layers (default 1)"},
    {"bias", "bool", "bias vectors b_ih, b_hh (default true)"},
    {"nonlinearity", "string", "tanh or relu (default tanh)"},
    {"leaky", "bool", "leaky RNN with per-unit time constants tau_l{k} (default false)"},
    {"tau", "float", "initial tau of every unit of a leaky RNN, >= 1 (default 1)"},
    {0, 0, 0},
};

const sl_family sl_family_rnn = {
    .name = "rnn",
    .summary = "Elman RNN (torch.nn.RNN, tanh or relu; leaky RNN with per-unit tau)",
    .detect = rnn_detect,
    .build = rnn_build,
    .init = rnn_init,
    .keys = rnn_keys,
};
