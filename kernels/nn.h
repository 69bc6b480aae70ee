/*
** Building blocks shared by the block-structured families (Mamba, GLA,
** DeltaNet, ...): linear maps with PyTorch's [out, in] weight layout, RMSNorm,
** SiLU, softplus, log-sigmoid, L2 normalisation, causal depthwise
** convolution. Each comes in float over many rows (forward passes) and in
** double over one vector (the families' reference step, analyses); the weights
** are always the model's float tensors.
*/
#ifndef SL_NN_H
#define SL_NN_H

#include <math.h>
#include <stdint.h>

/* y[M, out] = x[M, in] W^T + b  (W [out, in] row-major, b [out] or NULL). */
void sl_linear_f32(int64_t M, int64_t in, int64_t out, const float *x, const float *W, const float *b, float *y);
/* y[out] = W x + b in double. */
void sl_linear_f64(int64_t in, int64_t out, const double *x, const float *W, const float *b, double *y);

/* RMSNorm over the last dimension d: y = x / sqrt(mean(x^2) + eps) * w (w may be NULL). */
void sl_rmsnorm_f32(int64_t M, int64_t d, const float *x, const float *w, float eps, float *y);
void sl_rmsnorm_f64(int64_t d, const double *x, const float *w, double eps, double *y);

/* Scalar activations in double (the float forms are the same expressions). */
static inline double sl_silu(double x) { return x / (1.0 + exp(-x)); }
static inline double sl_softplus(double x) { return x > 20.0 ? x : log1p(exp(x)); }   /* PyTorch's threshold 20 */
static inline double sl_logsigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static inline double sl_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline float sl_siluf(float x) { return x / (1.0f + expf(-x)); }
static inline float sl_softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static inline float sl_logsigmoidf(float x) { return x >= 0 ? -log1pf(expf(-x)) : x - log1pf(expf(x)); }

/* x /= max(||x||_2, eps) over groups of d (F.normalize). */
void sl_l2norm_f32(int64_t M, int64_t d, float *x, float eps);
void sl_l2norm_f64(int64_t d, double *x, double eps);

/* Causal depthwise conv1d over time, per channel c (PyTorch Conv1d with
** groups = channels, padding = k - 1, keeping the first T outputs):
**   y[b, t, c] = bias[c] + sum_{j<k} w[c, j] * x[b, t - (k - 1) + j, c]
** hist [B, k-1, C] holds the k-1 inputs before t = 0 (zeros at the start) and
** receives the last k-1 inputs on return (NULL: zeros, discarded).
** x, y [B, T, C]; w [C, k] (PyTorch's [C, 1, k]). */
void sl_causal_conv1d_f32(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, const float *w, const float *bias,
                          float *hist, float *y);
/* One step in double: hist [k-1, C] (oldest first) and x_t [C] -> y_t [C];
** hist_next (may alias nothing) receives the shifted history when not NULL. */
void sl_causal_conv1d_step_f64(int64_t C, int64_t k, const double *hist, const double *x, const float *w,
                               const float *bias, double *y, double *hist_next);

/* ------------------------------------------------------------ vectorised rows
** kernels/nn_vec.c: AVX-512 / AVX2 / SSE by sl_kernels_isa(), rows over
** OpenMP threads when many; each has a plain *_ref beside it (same contract). */
enum { SL_VACT_SILU = 0, SL_VACT_SIGMOID, SL_VACT_LOGSIG };

/* RMSNorm of M rows of nh groups of d (groups contiguous in a row):
** y[r, h, :] = x[r, h, :] / sqrt(mean(x^2) + eps) * w (w [d] or NULL), times
** silu(g[r, h, :]) when g is not NULL. Rows at x + r ldx, g + r ldg,
** y + r ldy; y may be x. */
void sl_rmsnorm_rows_f32(int64_t M, int64_t nh, int64_t d, const float *x, int64_t ldx, const float *w, float eps,
                         const float *g, int64_t ldg, float *y, int64_t ldy);
void sl_rmsnorm_rows_f32_ref(int64_t M, int64_t nh, int64_t d, const float *x, int64_t ldx, const float *w, float eps,
                             const float *g, int64_t ldg, float *y, int64_t ldy);
/* fla's l2norm in place: x[r, h, :] /= sqrt(sum x^2 + eps). */
void sl_l2norm_rows_f32(int64_t M, int64_t nh, int64_t d, float *x, int64_t ldx, float eps);
void sl_l2norm_rows_f32_ref(int64_t M, int64_t nh, int64_t d, float *x, int64_t ldx, float eps);
/* In place on M rows of n (rows x + r ldx): SL_VACT_SILU x sigmoid(x);
** SL_VACT_SIGMOID a sigmoid(x); SL_VACT_LOGSIG max(a logsigmoid(x), lo). */
void sl_act_rows_f32(int kind, int64_t M, int64_t n, float *x, int64_t ldx, float a, float lo);
void sl_act_rows_f32_ref(int kind, int64_t M, int64_t n, float *x, int64_t ldx, float a, float lo);
/* sl_causal_conv1d_f32 with row strides (x row (b, t) at x + (b T + t) ldx,
** y likewise with ldy; y must not overlap x), the weights taps-major, wt
** [k, C], and SiLU applied to the channels [silu0, silu1). */
void sl_conv1d_rows_f32(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, const float *wt,
                        const float *bias, float *hist, float *y, int64_t ldy, int64_t silu0, int64_t silu1);
void sl_conv1d_rows_f32_ref(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx, const float *wt,
                            const float *bias, float *hist, float *y, int64_t ldy, int64_t silu0, int64_t silu1);

/* ------------------------------------------------------------ backward (training)
** kernels/nn_backward.c, one source for float and double. Weights stay the
** model's float tensors in both; gradients of parameters are ADDED (NULL: not
** wanted), gradients of inputs are written. */

/* RMSNorm: dy [M, d] -> dx [M, d]; dw [d] += sum over rows of dy . x / rms. */
void sl_rmsnorm_backward_f32(int64_t M, int64_t d, const float *x, const float *w, float eps, const float *dy,
                             float *dx, float *dw);
void sl_rmsnorm_backward_f64(int64_t M, int64_t d, const double *x, const float *w, double eps, const double *dy,
                             double *dx, double *dw);

/* Causal depthwise conv1d (sl_causal_conv1d_f32's contract) with leading
** dimensions: x [B, T, ldx] and dy [B, T, lddy] (C channels each), hist
** [B, k-1, C] the history before t = 0 (NULL: zeros). Writes dx [B, T, lddx]
** and dhist [B, k-1, C] (NULL: not wanted); adds dw [C, k] and dbias [C]. */
void sl_causal_conv1d_backward_f32(int64_t B, int64_t T, int64_t C, int64_t k, const float *x, int64_t ldx,
                                   const float *w, const float *hist, const float *dy, int64_t lddy, float *dx,
                                   int64_t lddx, float *dw, float *dbias, float *dhist);
void sl_causal_conv1d_backward_f64(int64_t B, int64_t T, int64_t C, int64_t k, const double *x, int64_t ldx,
                                   const float *w, const double *hist, const double *dy, int64_t lddy, double *dx,
                                   int64_t lddx, double *dw, double *dbias, double *dhist);

#endif
