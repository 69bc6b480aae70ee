/*
** PyTorch's recurrent-module naming, shared by the rnn, lstm and gru families.
**
** torch.nn.RNN/LSTM/GRU state dicts name their tensors weight_ih_l{k},
** weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}; the single-layer cells
** (RNNCell, LSTMCell, GRUCell) drop the _l{k}. Either may sit under any module
** prefix ("lstm.", "encoder.rnn.", "lstm_cell."). The gate multiple g of
** weight_hh ([g*H, H]) tells the family: 1 rnn, 3 gru, 4 lstm.
**
** The config keys are the constructor's (input_size, hidden_size, num_layers,
** bias, nonlinearity) plus two of seqlab's own that say where the tensors are:
** "tensor_prefix" (default "") and "cell" (true for the cell naming).
*/
#ifndef SL_TORCH_RNN_H
#define SL_TORCH_RNN_H

#include <jansson.h>

#include "kernels.h"
#include "model.h"
#include "tensor.h"

#define SL_TORCH_RNN_MAX_LAYERS 64

typedef struct sl_torch_rnn {
    int64_t input_size, hidden_size, num_layers;
    int     bias;
    int     gate_mult;                 /* 1, 3, 4 */
    int     cell;
    const char *prefix;                /* borrowed from the config */
    /* per layer: weight_ih [g*H, in], weight_hh [g*H, H], bias_ih, bias_hh [g*H] (NULL without bias),
    ** tau [H] (leaky rnn only, else NULL) */
    const sl_tensor *w_ih[SL_TORCH_RNN_MAX_LAYERS], *w_hh[SL_TORCH_RNN_MAX_LAYERS];
    const sl_tensor *b_ih[SL_TORCH_RNN_MAX_LAYERS], *b_hh[SL_TORCH_RNN_MAX_LAYERS];
    const sl_tensor *tau[SL_TORCH_RNN_MAX_LAYERS];
} sl_torch_rnn;

/* detect() for a family with gate multiple g: 1 when exactly one module in ts
** has PyTorch recurrent names with that multiple; *config gets what was
** inferred (sizes, layers, bias, prefix, cell). */
int sl_torch_rnn_detect(const sl_tensors *ts, int gate_mult, json_t **config);

/* Validate m->config against m->tensors for gate multiple g, fill missing
** config keys from the tensors, mark the tensors as core, and fill spec.
** leaky: also require tau_l{k} [H] (rnn with "leaky": true). */
int sl_torch_rnn_parse(sl_model *m, int gate_mult, int leaky, sl_torch_rnn *spec, sl_err *err);

/* Build the layers of m from spec: each layer's forward pass runs the shared
** gated driver (kernels/recurrent.c); ops supplies the family's step and
** linsys. The layer impl is an sl_rnn_weights pointing into m's tensors,
** with the weights packed once for the fused forward kernels (w->packed,
** owned by the layer, freed by sl_torch_rnn_free). */
int sl_torch_rnn_build_layers(sl_model *m, const sl_torch_rnn *spec, sl_cell_kind cell, const sl_layer_ops *ops,
                              sl_err *err);

/* The forward op shared by the three families (reference or optimised). */
int sl_torch_rnn_forward(const sl_layer *L, const sl_fwd *f, sl_err *err);
void sl_torch_rnn_free(sl_layer *L);

/* Training ops shared by the three families (models/grad.h): BPTT in float
** and double through kernels/rnn_backward.c, and params_changed, which keeps
** the leaky RNN's tau >= 1 (clamped after each update: projected gradient
** descent) and refreshes the cached 1/tau the forward kernel uses. */
int sl_torch_rnn_backward(const sl_layer *L, const sl_bwd *b, sl_err *err);
int sl_torch_rnn_backward_f64(const sl_layer *L, const sl_bwd_f64 *b, sl_err *err);
int sl_torch_rnn_params_changed(sl_layer *L, sl_err *err);

/* PyTorch's initialisation for seqlab init: every weight and bias uniform in
** [-1/sqrt(H), 1/sqrt(H)] (GSL's MT19937 seeded with seed), in state-dict
** order; leaky RNN adds tau_l{k} filled with the config's "tau" (default 1).
** Fills defaults into cfg (num_layers 1, bias true). */
int sl_torch_rnn_init(json_t *cfg, uint64_t seed, sl_tensors *ts, int gate_mult, int leaky, sl_err *err);

/* Pre-activations in double: gx = W_ih u + b_ih, gh = W_hh h + b_hh (each G*H). */
void sl_torch_rnn_preact(const sl_rnn_weights *w, const double *h, const double *u, double *gx, double *gh);

/* out[i, j] = scale[i] * W[i, j] for a rows x cols float matrix, into a double
** matrix with leading dimension ldo; returns out. */
double *sl_torch_rnn_rowscale(const float *W, int64_t rows, int64_t cols, const double *scale, double *out, int64_t ldo);

/* M[row_off + j, :] += coef[j] * W[gate*H + j, :] for j < H (W float, cols wide). */
void sl_torch_rnn_accum_gate(double *M, int64_t ldm, int64_t row_off, const float *W, int64_t cols, int64_t H,
                             int gate, const double *coef);

/* The parts of the linear system the three families share: sizes, C (reads
** h), D (zero), u (a copy of the input). */
int sl_torch_rnn_linsys_io(const sl_layer *L, const double *u, unsigned what, sl_linsys *ls, sl_err *err);

/* Name of tensor "what" (weight_ih, ...) of layer l under spec's naming, into buf. */
const char *sl_torch_rnn_name(const char *prefix, int cell, const char *what, int64_t layer, char *buf, size_t n);

#endif
