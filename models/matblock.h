/*
** The transformer-style block shared by the matrix-state families
** (linear_attn, retnet, gla, delta_net, gated_delta_net, mlstm), as the
** flash-linear-attention (fla) models build it:
**
**     h = x + attn(attn_norm(x))        y = h + mlp(mlp_norm(h))
**     mlp(x) = down(silu(gate(x)) * up(x))        (fla's GatedMLP, SwiGLU)
**
** attn is the family's token mixer: projections (and short convolutions),
** a matrix state per head run by kernels/matstate.c, and an output norm /
** gate / projection. One layer of seqlab = one block. Tensors are named as in
** fla's checkpoints, under "model.layers.{i}.": attn_norm.weight,
** attn.{q,k,v,o}_proj.weight, mlp_norm.weight, mlp.{gate,up,down}_proj.weight,
** plus each family's own. model.embeddings.weight, model.norm.weight and
** lm_head.weight are kept (roles EMBED, CORE, HEAD) but the layer stack runs
** on features [B, T, hidden_size] and does not apply the final norm.
**
** Carry of a layer, per sequence:
**     [ S : heads x d_k x d_s | conv history : (conv_size-1) x channels | pos | m : heads ]
** S is the linear system's state (d_s = d_v; mLSTM keeps its normaliser n as
** an extra value column, d_s = d_v + 1); the rest is context: the short
** convolutions' last inputs, RetNet's position (for its rotary embedding;
** one float), mLSTM's max-stabiliser m. A zero carry is the start state.
**
** Linear system at a step (exact): u = the values (per head, d_s each),
** A_t = SL_OP_DLR over heads (d = gate, c w w^T = the delta rule's
** beta k k^T, scaled by the gate for gated DeltaNet), B_t = b_t (x) I
** (b_t = k_t, beta_t k_t, or mLSTM's i~_t k_t), C_t = scale q_t^T (x) I,
** D = 0. The system's output is the heads' attention output before the
** output norm / gate / projection (mLSTM: [h_num, q.n], before the division).
*/
#ifndef SL_MATBLOCK_H
#define SL_MATBLOCK_H

#include <jansson.h>
#include <stdint.h>

#include "layer.h"
#include "model.h"
#include "tensor.h"

typedef enum sl_mb_kind {
    SL_MB_LINEAR_ATTN = 0,
    SL_MB_RETNET,
    SL_MB_GLA,
    SL_MB_DELTA,
    SL_MB_GDN,
    SL_MB_MLSTM
} sl_mb_kind;

enum { SL_MB_ACT_NONE = 0, SL_MB_ACT_SILU, SL_MB_ACT_RELU, SL_MB_ACT_ELU1 };
enum { SL_MB_NORM_NONE = 0, SL_MB_NORM_L2, SL_MB_NORM_SUM, SL_MB_NORM_SUM_EPS };
enum { SL_MB_ONORM_NONE = 0, SL_MB_ONORM_RMS, SL_MB_ONORM_RMS_GATED, SL_MB_ONORM_GROUP };
enum { SL_MB_BETA_NONE = 0, SL_MB_BETA_SIGMOID, SL_MB_BETA_ONE };

/* One layer's parameters (pointers into the model's tensors). */
typedef struct sl_mb {
    sl_mb_kind kind;
    int64_t hid, H, dk, dv, inter;
    double  eps;                               /* norm_eps */
    const float *attn_norm, *mlp_norm, *w_gate, *w_up, *w_down;
    const float *wq, *wk, *wv, *wo, *wg;       /* wg: output gate (g_proj) or NULL */
    int64_t conv_k;                            /* 0: no short convolution */
    const float *conv_w[3], *conv_b[3];        /* q, k, v (mLSTM: [0] on x) */
    int     act[3];                            /* activation of q, k, v after the conv stage */
    int     fmap;                              /* feature map on q and k after that */
    int     q_norm, k_norm;
    int     rope;                              /* RetNet's rotary embedding */
    const float *gk0, *gk1, *gk1_b;            /* GLA: gk_proj.0 [r, hid], gk_proj.1 [H dk, r] (+ bias) */
    int64_t gk_rank;
    double  gk_normalizer, clamp_min;
    int     has_clamp;
    const float *wa, *A_log, *dt_bias;         /* gated DeltaNet's decay */
    int     beta_mode, neg_eig;
    const float *wb;                           /* b_proj */
    int     onorm;
    const float *onorm_w;                      /* may be NULL (no affine weight) */
    /* mLSTM */
    int64_t inner, blk;
    const float *up_w, *up_b, *gq_w, *gq_b, *gk_w, *gk_b, *gv_w, *gv_b, *ig_w, *ig_b, *fg_w, *fg_b, *skip,
                *down_w, *down_b;
} sl_mb;

/* Tensor "model.layers.{l}.<what>" checked against shape (NULL when optional
** and absent); marks it core. Returns SL_OK or an error naming the tensor. */
int sl_mb_tensor(sl_model *m, int l, const char *what, int ndim, const int64_t *shape, int optional,
                 const float **out, sl_err *err);

/* The MLP intermediate size: from the tensors when present, else fla's rule
** (intermediate_size, or hidden_ratio (default 4) * hidden * 2/3 rounded up
** to a multiple of 256). */
int64_t sl_mb_intermediate(const json_t *cfg, int64_t hid, sl_err *err, int *rc);

/* The block parts every family has (norms, MLP, o_proj with in = H dv);
** fills mb->attn_norm, mlp_norm, w_gate, w_up, w_down, wo, inter, eps. */
int sl_mb_bind_block(sl_model *m, int l, sl_mb *mb, sl_err *err);

/* Build the layers of m from per-layer parameters mb[n_layers] (copied) and
** mark the embedding / head / final norm tensors. summary is taken over. */
int sl_mb_build_layers(sl_model *m, const char *kind, const sl_mb *mb, int n_layers, char *summary, sl_err *err);

/* The heads' attention output of a layer for one sequence x [T, hid] from a
** zero carry, as the forward pass computes it (float, algo as sl_fwd): o
** [T, H, d_s], before the output norm. For tests of the implicit attention. */
int sl_mb_attention(const sl_layer *L, int64_t T, const float *x, float *o, int algo, int64_t chunk, sl_err *err);

/* The layer's parameters (L must be a matrix-state block). */
const sl_mb *sl_mb_of(const sl_layer *L);

/* ------------------------------------------------------------ init helpers */
/* Add tensor name filled with N(0, std^2) (std 0 = zeros, std < 0 = ones). */
int sl_mb_init_tensor(sl_tensors *ts, void *rng, const char *name, int ndim, const int64_t *shape, double std,
                      sl_err *err);
/* Add the block tensors of layer l (norms, MLP, o_proj [hid, vdim]). */
int sl_mb_init_block(sl_tensors *ts, void *rng, int l, int64_t hid, int64_t inter, int64_t vdim, double std,
                     sl_err *err);
/* Embeddings, final norm and lm_head when vocab > 0. */
int sl_mb_init_model(sl_tensors *ts, void *rng, int64_t vocab, int64_t hid, double std, sl_err *err);
/* A GSL MT19937 seeded with seed (free with sl_mb_rng_free). */
void *sl_mb_rng_new(uint64_t seed);
void  sl_mb_rng_free(void *rng);
double sl_mb_rng_uniform(void *rng);


/* ------------------------------------------------------------ config */
typedef struct sl_mb_common {
    int64_t hid, H, L;
    double  eps, std;
} sl_mb_common;

/* hidden_size (default: from attn_norm's shape), num_heads (default
** dflt_heads), num_hidden_layers (default: the layers present), norm_eps;
** refuses fla's hybrid "attn" layers. Writes the values back into m->config. */
int sl_mb_common_config(sl_model *m, int64_t dflt_heads, double dflt_eps, sl_mb_common *c, sl_err *err);
/* Activation / norm names of fla's configs to SL_MB_* (-1 when unknown). */
int sl_mb_act_by_name(const char *s);
/* The conv weight [C, 1, k] and optional bias [C] of "attn.<which>_conv1d". */
int sl_mb_conv(sl_model *m, int l, const char *which, int64_t C, int64_t k, const float **w, const float **b,
               sl_err *err);
/* Init: defaults shared by seqlab init (hidden_size required, num_heads,
** num_hidden_layers 1, initializer_range 0.02); fills cfg. */
int sl_mb_init_common(json_t *cfg, int64_t dflt_heads, double dflt_eps, sl_mb_common *c, sl_err *err);
/* q_proj [H dk, hid], k_proj [H dk, hid], v_proj [H dv, hid] and, when
** conv_k > 0, their short convolutions; sets p->conv_k. */
int sl_mb_bind_qkv(sl_model *m, int l, sl_mb *p, int64_t conv_k, sl_err *err);
/* The same tensors for seqlab init. */
int sl_mb_init_qkv(sl_tensors *ts, void *rng, int l, int64_t hid, int64_t kd, int64_t vd, int64_t conv_k, double std,
                   sl_err *err);
/* A one-line summary "<kind>, L layers, hidden h, H heads of d_k .., d_v ..<extra>". */
char *sl_mb_summary(const char *kind, const sl_mb_common *c, int64_t dk, int64_t dv, const char *extra);

#endif
