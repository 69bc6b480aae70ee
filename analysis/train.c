/*
** Training: see train.h.
**
** One training step is: a batch from the task (or the data file), the model's
** forward pass with its tape, the readout (one GEMM over all B*T rows), the
** masked loss and its gradient, the readout's backward (GEMMs), the model's
** backward (each family's BPTT), gradient noise, clipping, the learning rate
** of the step, AdamW, and the layers' params_changed hook. Buffers are kept in
** the trainer and grow to the largest batch, so a warm step allocates nothing
** but the forward kernel's own workspace.
**
** The double-precision path (sl_loss_grad_f64) repeats the readout and loss
** with plain loops over doubles; it exists for the gradient tests.
*/
#include "train.h"

#include <gsl/gsl_randist.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "safetensors.h"
#include "util.h"

static uint64_t mix_seed(uint64_t seed, uint64_t k)
{
    uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static gsl_rng *rng_new(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r) gsl_rng_set(r, (unsigned long)seed);
    return r;
}

/* ------------------------------------------------------------ readout */
#define ENC_W "encoder.weight"
#define ENC_B "encoder.bias"

static const char *ro_name(sl_readout_kind kind, int which)
{
    static const char *const lin[4] = { "readout.weight", "readout.bias", NULL, NULL };
    static const char *const mlp[4] = { "readout.0.weight", "readout.0.bias", "readout.2.weight", "readout.2.bias" };
    return kind == SL_READOUT_MLP ? mlp[which] : lin[which];
}

int sl_readout_init(sl_tensors *ts, sl_readout_kind kind, int64_t n_in, int64_t n_hidden, int64_t n_out, uint64_t seed,
                    sl_err *err)
{
    gsl_rng *r = rng_new(seed);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    const int nl = kind == SL_READOUT_MLP ? 2 : 1;
    int rc = SL_OK;
    for (int l = 0; l < nl && !rc; l++) {
        int64_t fi = l == 0 ? n_in : n_hidden, fo = (nl == 2 && l == 0) ? n_hidden : n_out;
        const double k = 1.0 / sqrt((double)fi);
        int64_t ws[2] = { fo, fi }, bs[1] = { fo };
        sl_tensor *t;
        if ((rc = sl_tensors_add(ts, ro_name(kind, 2 * l), 2, ws, NULL, &t, err))) break;
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(gsl_rng_uniform(r) * 2.0 * k - k);
        if ((rc = sl_tensors_add(ts, ro_name(kind, 2 * l + 1), 1, bs, NULL, &t, err))) break;
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(gsl_rng_uniform(r) * 2.0 * k - k);
    }
    gsl_rng_free(r);
    return rc;
}

int sl_readout_bind(sl_readout *r, sl_model *m, sl_readout_kind kind, int64_t K, int64_t C, sl_loss_kind loss,
                    sl_err *err)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->K = K;
    r->C = loss == SL_LOSS_MSE ? 1 : C;
    r->loss = loss;
    r->n_in = m->n_out;
    r->n_out = K * r->C;
    if (K < 1 || r->C < 1) return sl_err_set(err, SL_EINVAL, "readout needs at least one head and one class");
    if (loss == SL_LOSS_CE && C < 2) return sl_err_set(err, SL_EINVAL, "cross-entropy needs at least 2 classes");
    int rc;
    const sl_tensor *t[4] = { 0 };
    for (int i = 0; i < (kind == SL_READOUT_MLP ? 4 : 2); i++) {
        t[i] = sl_tensors_find(m->tensors, ro_name(kind, i));
        if (!t[i]) return sl_err_set(err, SL_EFORMAT, "model has no readout tensor %s", ro_name(kind, i));
    }
    r->n_hidden = kind == SL_READOUT_MLP && t[0]->ndim == 2 ? t[0]->shape[0] : 0;
    const int64_t fo1 = kind == SL_READOUT_MLP ? r->n_hidden : r->n_out;
    int64_t s0[2] = { fo1, r->n_in }, s1[1] = { fo1 }, s2[2] = { r->n_out, r->n_hidden }, s3[1] = { r->n_out };
    if ((rc = sl_tensor_expect(t[0], ro_name(kind, 0), 2, s0, err)) || (rc = sl_tensor_expect(t[1], ro_name(kind, 1), 1, s1, err)))
        return rc;
    if (kind == SL_READOUT_MLP &&
        ((rc = sl_tensor_expect(t[2], ro_name(kind, 2), 2, s2, err)) || (rc = sl_tensor_expect(t[3], ro_name(kind, 3), 1, s3, err))))
        return rc;
    r->w1 = t[0]->data;
    r->b1 = t[1]->data;
    r->w2 = t[2] ? t[2]->data : NULL;
    r->b2 = t[3] ? t[3]->data : NULL;
    for (int i = 0; i < 4; i++)
        if (t[i]) sl_model_set_role(m, t[i]->name, SL_ROLE_HEAD);
    /* The input projection, when the trainer gave the model one. */
    r->n_feat = m->n_in;
    const sl_tensor *ew = sl_tensors_find(m->tensors, ENC_W), *eb = sl_tensors_find(m->tensors, ENC_B);
    if (ew || eb) {
        if (!ew || !eb || ew->ndim != 2)
            return sl_err_set(err, SL_EFORMAT, "model has %s without %s (or a weight that is not a matrix)",
                              ew ? ENC_W : ENC_B, ew ? ENC_B : ENC_W);
        int64_t sw[2] = { m->n_in, ew->shape[1] }, sb[1] = { m->n_in };
        if ((rc = sl_tensor_expect(ew, ENC_W, 2, sw, err)) || (rc = sl_tensor_expect(eb, ENC_B, 1, sb, err))) return rc;
        r->n_feat = ew->shape[1];
        r->we = ew->data;
        r->be = eb->data;
        sl_model_set_role(m, ENC_W, SL_ROLE_EMBED);
        sl_model_set_role(m, ENC_B, SL_ROLE_EMBED);
    }
    return SL_OK;
}

int sl_encoder_init(sl_tensors *ts, int64_t n_feat, int64_t n_model, uint64_t seed, sl_err *err)
{
    if (n_feat < 1 || n_model < 1) return sl_err_set(err, SL_EINVAL, "input projection needs positive sizes");
    gsl_rng *r = rng_new(seed);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    const double k = 1.0 / sqrt((double)n_feat);
    int64_t ws[2] = { n_model, n_feat }, bs[1] = { n_model };
    sl_tensor *t;
    int rc = sl_tensors_add(ts, ENC_W, 2, ws, NULL, &t, err);
    if (!rc) {
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(gsl_rng_uniform(r) * 2.0 * k - k);
        rc = sl_tensors_add(ts, ENC_B, 1, bs, NULL, &t, err);
    }
    if (!rc)
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(gsl_rng_uniform(r) * 2.0 * k - k);
    gsl_rng_free(r);
    return rc;
}

static json_t *meta_json(const sl_model *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m->metadata, key));
    return s ? json_loads(s, 0, NULL) : NULL;
}

int sl_readout_from_model(sl_readout *r, sl_model *m, sl_err *err)
{
    json_t *tr = meta_json(m, "seqlab.train");
    if (!json_is_object(tr)) {
        json_decref(tr);
        return sl_err_set(err, SL_EFORMAT, "%s: no seqlab.train metadata (not a model seqlab train wrote)", m->path);
    }
    const char *ro = json_string_value(json_object_get(tr, "readout")), *lo = json_string_value(json_object_get(tr, "loss"));
    int64_t K = json_integer_value(json_object_get(tr, "heads")), C = json_integer_value(json_object_get(tr, "classes"));
    int rc;
    if (!ro || !lo || K < 1 || C < 1)
        rc = sl_err_set(err, SL_EFORMAT, "%s: seqlab.train lacks readout, loss, heads or classes", m->path);
    else
        rc = sl_readout_bind(r, m, !strcmp(ro, "mlp") ? SL_READOUT_MLP : SL_READOUT_LINEAR, K, C,
                             !strcmp(lo, "mse") ? SL_LOSS_MSE : SL_LOSS_CE, err);
    json_decref(tr);
    return rc;
}

/* The readout's products. Most tasks have a handful of outputs (2 classes),
** where BLAS spends its time packing: below SKINNY outputs they are plain
** loops over rows (dot products and axpys, vectorised), in a fixed order. */
#define SKINNY 8

/* The skinny loops are compiled for the wider vector units too (the build's
** baseline is SSE4.2); the BLAS path is OpenBLAS's own dispatch. */
#define RO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* out[R, no] = x[R, ni] W^T + b  (W [no, ni]). */
RO_CLONES static void linear_fwd(int64_t R, int64_t ni, int64_t no, const float *x, const float *W, const float *b, float *out)
{
    if (no <= SKINNY) {
#pragma omp parallel for if (R * ni * no >= (1 << 20)) schedule(static)
        for (int64_t i = 0; i < R; i++) {
            const float *xi = x + i * ni;
            for (int64_t o = 0; o < no; o++) {
                const float *wo = W + o * ni;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int64_t j = 0; j < ni; j++) s += xi[j] * wo[j];
                out[i * no + o] = s + b[o];
            }
        }
        return;
    }
    for (int64_t i = 0; i < R; i++) memcpy(out + i * no, b, (size_t)no * sizeof *out);
    sl_sgemm(0, 1, R, no, ni, 1.0f, x, ni, W, ni, 1.0f, out, no);
}

/* gW [no, ni] += d^T x, gb += column sums of d, dx [R, ni] = d W (each when not NULL). */
RO_CLONES static void linear_bwd(int64_t R, int64_t ni, int64_t no, const float *x, const float *W, const float *d, float *gW,
                       float *gb, float *dx)
{
    if (gb)
        for (int64_t i = 0; i < R; i++)
            for (int64_t o = 0; o < no; o++) gb[o] += d[i * no + o];
    if (no <= SKINNY) {
        if (gW)
            for (int64_t i = 0; i < R; i++)
                for (int64_t o = 0; o < no; o++) {
                    const float di = d[i * no + o], *xi = x + i * ni;
                    float *g = gW + o * ni;
#pragma omp simd
                    for (int64_t j = 0; j < ni; j++) g[j] += di * xi[j];
                }
        if (dx) {
#pragma omp parallel for if (R * ni * no >= (1 << 20)) schedule(static)
            for (int64_t i = 0; i < R; i++) {
                float *xo = dx + i * ni;
                memset(xo, 0, (size_t)ni * sizeof *xo);
                for (int64_t o = 0; o < no; o++) {
                    const float di = d[i * no + o], *wo = W + o * ni;
#pragma omp simd
                    for (int64_t j = 0; j < ni; j++) xo[j] += di * wo[j];
                }
            }
        }
        return;
    }
    if (gW) sl_sgemm(1, 0, no, ni, R, 1.0f, d, no, x, ni, 1.0f, gW, ni);
    if (dx) sl_sgemm(0, 0, R, ni, no, 1.0f, d, no, W, ni, 0.0f, dx, ni);
}

/* z [R, n_out] from y [R, n_in] (hid [R, n_hidden] for the MLP). */
static void readout_forward_f32(const sl_readout *r, int64_t R, const float *y, float *hid, float *z)
{
    if (r->kind == SL_READOUT_MLP) {
        const int64_t Hd = r->n_hidden;
        linear_fwd(R, r->n_in, Hd, y, r->w1, r->b1, hid);
        for (int64_t i = 0; i < R * Hd; i++) hid[i] = hid[i] > 0.0f ? hid[i] : 0.0f;
        linear_fwd(R, Hd, r->n_out, hid, r->w2, r->b2, z);
    } else {
        linear_fwd(R, r->n_in, r->n_out, y, r->w1, r->b1, z);
    }
}

/* Gradients of the readout tensors (added to g) and dy = dL/dy [R, n_in]. */
static void readout_backward_f32(const sl_readout *r, const sl_grads *g, int64_t R, const float *y, const float *hid,
                                 const float *dz, float *dhid, float *dy)
{
    float *gw1 = sl_grads_f32(g, r->w1), *gb1 = sl_grads_f32(g, r->b1);
    if (r->kind == SL_READOUT_MLP) {
        const int64_t Hd = r->n_hidden;
        linear_bwd(R, Hd, r->n_out, hid, r->w2, dz, sl_grads_f32(g, r->w2), sl_grads_f32(g, r->b2), dhid);
        for (int64_t i = 0; i < R * Hd; i++)
            if (!(hid[i] > 0.0f)) dhid[i] = 0.0f;
        linear_bwd(R, r->n_in, Hd, y, r->w1, dhid, gw1, gb1, dy);
    } else {
        linear_bwd(R, r->n_in, r->n_out, y, r->w1, dz, gw1, gb1, dy);
    }
}

/* The input projection: x [R, n_model] from u [R, n_feat]; and its gradients from dx. */
static void encoder_forward_f32(const sl_readout *r, int64_t n_model, int64_t R, const float *u, float *x)
{
    linear_fwd(R, r->n_feat, n_model, u, r->we, r->be, x);
}

static void encoder_backward_f32(const sl_readout *r, const sl_grads *g, int64_t n_model, int64_t R, const float *u,
                                 const float *dx)
{
    linear_bwd(R, r->n_feat, n_model, u, r->we, dx, sl_grads_f32(g, r->we), sl_grads_f32(g, r->be), NULL);
}

/* ------------------------------------------------------------ loss */
/* Per (row, head): loss, whether correct; writes dz scaled by wgt when dz. */
static double entry_f32(const sl_readout *r, const float *z, float target, float *dz, double wgt, int *correct)
{
    const int64_t C = r->C;
    if (r->loss == SL_LOSS_MSE) {
        double d = (double)z[0] - (double)target;
        if (dz) dz[0] = (float)(2.0 * d * wgt);
        *correct = fabs(d) < 0.5;
        return d * d;
    }
    const int64_t tc = (int64_t)target;
    float mx = z[0];
    int64_t am = 0;
    for (int64_t c = 1; c < C; c++)
        if (z[c] > mx) { mx = z[c]; am = c; }
    /* e_c = exp(z_c - max) once each (1 at the max): softmax_c = e_c / se. */
    double se = 0, eb[16];
    for (int64_t c = 0; c < C; c++) {
        const double e = c == am ? 1.0 : exp((double)z[c] - (double)mx);
        if (c < 16) eb[c] = e;
        se += e;
    }
    double lse = (double)mx + log(se);
    if (dz)
        for (int64_t c = 0; c < C; c++) {
            const double e = c < 16 ? eb[c] : (c == am ? 1.0 : exp((double)z[c] - (double)mx));
            dz[c] = (float)((e / se - (c == tc ? 1.0 : 0.0)) * wgt);
        }
    *correct = am == tc;
    return lse - (double)z[tc < 0 || tc >= C ? 0 : tc];
}

/* Rows [i0, i1) of the loss: adds w * loss, w * correct and the per-head
** counts to the partial sums; writes dz (scaled by 1 / total weight) when dz. */
typedef struct loss_part {
    double loss, acc;
    double *head_acc, *head_n;   /* [min(K, SL_TRAIN_MAX_HEADS)] */
} loss_part;

static void loss_rows(const sl_readout *r, int64_t i0, int64_t i1, const float *z, const float *target,
                      const float *mask, float *dz, double inv, loss_part *p)
{
    const int64_t K = r->K, no = r->n_out;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t k = 0; k < K; k++) {
            const float w = mask[i * K + k];
            float *dzk = dz ? dz + i * no + k * r->C : NULL;
            if (!(w > 0.0f)) {
                if (dzk) memset(dzk, 0, (size_t)r->C * sizeof *dzk);
                continue;
            }
            int ok;
            p->loss += w * entry_f32(r, z + i * no + k * r->C, target[i * K + k], dzk, w * inv, &ok);
            p->acc += w * ok;
            if (k < SL_TRAIN_MAX_HEADS) { p->head_acc[k] += w * ok; p->head_n[k] += w; }
        }
}

/* The metrics from the summed rows: the last masked step of each sequence and
** head from z, the means. */
static void loss_finish(const sl_readout *r, int64_t B, int64_t T, const float *z, const float *target,
                        const float *mask, double wsum, sl_metrics *m)
{
    const int64_t K = r->K, no = r->n_out;
    const double inv = wsum > 0 ? 1.0 / wsum : 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = T - 1; t >= 0; t--) {
                const int64_t i = b * T + t;
                if (!(mask[i * K + k] > 0.0f)) continue;
                int ok;
                entry_f32(r, z + i * no + k * r->C, target[i * K + k], NULL, 0, &ok);
                m->last_acc += ok;
                m->last_n += 1;
                break;
            }
    m->n = wsum;
    m->loss *= inv;
    m->acc = wsum > 0 ? m->acc * inv : NAN;
    m->last_acc = m->last_n > 0 ? m->last_acc / m->last_n : NAN;
    for (int64_t k = 0; k < K && k < SL_TRAIN_MAX_HEADS; k++)
        m->head_acc[k] = m->head_n[k] > 0 ? m->head_acc[k] / m->head_n[k] : NAN;
}

void sl_loss_f32(const sl_readout *r, int64_t B, int64_t T, const float *z, const float *target, const float *mask,
                 float *dz, sl_metrics *m)
{
    const int64_t K = r->K, R = B * T;
    memset(m, 0, sizeof *m);
    m->K = K;
    double wsum = 0;
    for (int64_t i = 0; i < R * K; i++) wsum += mask[i];
    loss_part p = { 0, 0, m->head_acc, m->head_n };
    loss_rows(r, 0, R, z, target, mask, dz, wsum > 0 ? 1.0 / wsum : 0.0, &p);
    m->loss = p.loss;
    m->acc = p.acc;
    loss_finish(r, B, T, z, target, mask, wsum, m);
}

/* The linear readout with few outputs, its loss and its backward in one pass over the rows (the
** trainer's common case): each row's y is read once for z, the gradients of W and b and dy,
** instead of in three sweeps over B*T rows (y and dy are 2 MB each at H = 128, B = 64, T = 64:
** the sweeps were memory-bound). dy may be NULL: not formed (the model's backward takes dz and
** W instead, sl_model_backward_lowrank). Rows are split over nt <= 64 threads; each thread's
** partial sums of the W and b gradients (part: nt * RO_PART_STRIDE floats), of the per-head
** metrics (hpart: nt * RO_HPART_STRIDE doubles) and of the loss are added in thread order, so
** the result depends only on the inputs and the thread count. */
#define RO_PART_STRIDE(ni, no) (((no) * (ni) + (no) + 31) / 32 * 32)
#define RO_HPART_STRIDE(K) ((2 * SL_MIN((K), SL_TRAIN_MAX_HEADS) + 15) / 16 * 16)
RO_CLONES static void readout_loss_linear(const sl_readout *r, const sl_grads *g, int64_t B, int64_t T, const float *y,
                                          const float *target, const float *mask, float *z, float *dz, float *dy,
                                          float *part, double *hpart, int nt, sl_metrics *m)
{
    const int64_t K = r->K, R = B * T, ni = r->n_in, no = r->n_out, KH = SL_MIN(K, SL_TRAIN_MAX_HEADS);
    const float *W = r->w1, *bias = r->b1;
    float *gW = sl_grads_f32(g, W), *gb = sl_grads_f32(g, bias);
    const int64_t ps = RO_PART_STRIDE(ni, no), hs = RO_HPART_STRIDE(K);   /* own cache lines per thread */
    memset(m, 0, sizeof *m);
    m->K = K;
    double wsum = 0;
    for (int64_t i = 0; i < R * K; i++) wsum += mask[i];
    const double inv = wsum > 0 ? 1.0 / wsum : 0.0;
    double *hp = hpart, lp[64][2];
    nt = SL_MIN(nt, 64);
    const int par = nt > 1 && R * ni * no >= (1 << 18);
    if (!par) nt = 1;
#pragma omp parallel num_threads(nt) if (par)
    {
        const int th = omp_get_thread_num(), n = omp_get_num_threads();
        const int64_t i0 = R * th / n, i1 = R * (th + 1) / n;
        float *pw = part + th * ps, *pb = pw + no * ni;
        memset(pw, 0, (size_t)(no * ni + no) * sizeof *pw);
        memset(hp + th * hs, 0, (size_t)(2 * KH) * sizeof *hp);
        loss_part lpart = { 0, 0, hp + th * hs, hp + th * hs + KH };
        for (int64_t i = i0; i < i1; i++) {
            const float *yi = y + i * ni;
            float *zi = z + i * no, *di = dz + i * no, *dyi = dy ? dy + i * ni : NULL;
            for (int64_t o = 0; o < no; o++) {
                const float *wo = W + o * ni;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int64_t j = 0; j < ni; j++) s += yi[j] * wo[j];
                zi[o] = s + bias[o];
            }
            loss_rows(r, i, i + 1, z, target, mask, dz, inv, &lpart);
            if (dyi) memset(dyi, 0, (size_t)ni * sizeof *dyi);
            for (int64_t o = 0; o < no; o++) {
                const float d = di[o], *wo = W + o * ni;
                float *go = pw + o * ni;
                pb[o] += d;
                if (dyi) {
#pragma omp simd
                    for (int64_t j = 0; j < ni; j++) {
                        go[j] += d * yi[j];
                        dyi[j] += d * wo[j];
                    }
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < ni; j++) go[j] += d * yi[j];
                }
            }
        }
        lp[th][0] = lpart.loss;
        lp[th][1] = lpart.acc;
    }
    for (int th = 0; th < nt; th++) {
        const float *pw = part + th * ps, *pb = pw + no * ni;
        if (gW) for (int64_t e = 0; e < no * ni; e++) gW[e] += pw[e];
        if (gb) for (int64_t o = 0; o < no; o++) gb[o] += pb[o];
        m->loss += lp[th][0];
        m->acc += lp[th][1];
        for (int64_t k = 0; k < KH; k++) {
            m->head_acc[k] += hp[th * hs + k];
            m->head_n[k] += hp[th * hs + KH + k];
        }
    }
    loss_finish(r, B, T, z, target, mask, wsum, m);
}

void sl_loss_f64(const sl_readout *r, int64_t B, int64_t T, const double *z, const float *target, const float *mask,
                 double *dz, double *loss_out)
{
    const int64_t K = r->K, R = B * T, no = r->n_out, C = r->C;
    double wsum = 0, loss = 0;
    for (int64_t i = 0; i < R * K; i++) wsum += mask[i];
    const double inv = wsum > 0 ? 1.0 / wsum : 0.0;
    for (int64_t i = 0; i < R; i++)
        for (int64_t k = 0; k < K; k++) {
            const double w = mask[i * K + k];
            const double *zk = z + i * no + k * C;
            double *dzk = dz ? dz + i * no + k * C : NULL;
            if (!(w > 0)) {
                if (dzk) memset(dzk, 0, (size_t)C * sizeof *dzk);
                continue;
            }
            if (r->loss == SL_LOSS_MSE) {
                double d = zk[0] - (double)target[i * K + k];
                loss += w * d * d;
                if (dzk) dzk[0] = 2.0 * d * w * inv;
                continue;
            }
            const int64_t tc = (int64_t)target[i * K + k];
            double mx = zk[0];
            for (int64_t c = 1; c < C; c++) mx = fmax(mx, zk[c]);
            double se = 0;
            for (int64_t c = 0; c < C; c++) se += exp(zk[c] - mx);
            double lse = mx + log(se);
            loss += w * (lse - zk[tc]);
            if (dzk)
                for (int64_t c = 0; c < C; c++) dzk[c] = (exp(zk[c] - lse) - (c == tc ? 1.0 : 0.0)) * w * inv;
        }
    *loss_out = loss * inv;
}

/* Readout, loss and their backward from the model's output y: the one-pass
** version for the linear readout with few outputs, else the three passes.
** Gradients are added to g; dy = dL/dy (NULL: not formed, for the one-pass
** version only, see readout_lowrank). *part, *hpart (nt_have threads) are
** the one-pass version's partial sums, grown here when there are more threads. */
static int readout_loss_grad(const sl_readout *r, const sl_grads *g, int64_t B, int64_t T, const float *y,
                             const float *target, const float *mask, float *z, float *dz, float *dy, float *hid,
                             float *dhid, float **part, double **hpart, int *nt_have, sl_metrics *m, sl_err *err)
{
    if (r->kind != SL_READOUT_LINEAR || r->n_out > SKINNY) {
        readout_forward_f32(r, B * T, y, hid, z);
        sl_loss_f32(r, B, T, z, target, mask, dz, m);
        readout_backward_f32(r, g, B * T, y, hid, dz, dhid, dy);
        return SL_OK;
    }
    const int nt = SL_MIN(sl_get_threads(), 64);
    if (*nt_have < nt) {
        free(*part);
        free(*hpart);
        *part = aligned_alloc(64, (size_t)(nt * RO_PART_STRIDE(r->n_in, r->n_out)) * sizeof(float));
        *hpart = aligned_alloc(64, (size_t)(nt * RO_HPART_STRIDE(r->K)) * sizeof(double));
        *nt_have = *part && *hpart ? nt : 0;
        if (!*nt_have) return sl_err_set(err, SL_ENOMEM, "out of memory for the readout");
    }
    readout_loss_linear(r, g, B, T, y, target, mask, z, dz, dy, *part, *hpart, nt, m);
    return SL_OK;
}

/* The one-pass readout leaves dy unformed: the model's backward takes dL/dy as
** dz W (sl_model_backward_lowrank), which the LSTM forms where it reads it
** instead of a [B, T, H] array written here and read back (lstm H = 128, B =
** 64, T = 64: 4 MB of traffic a step). */
static int readout_lowrank(const sl_readout *r)
{
    return r->kind == SL_READOUT_LINEAR && r->n_out <= SKINNY;
}

/* ------------------------------------------------------------ options */
static const sl_config_key train_keys[] = {
    {"steps", "int", "optimiser steps (default 1000)"},
    {"batch", "int", "sequences per step (default 32)"},
    {"lr", "float", "peak learning rate (default 1e-3)"},
    {"lr_min", "float", "learning rate at the last step of the cosine decay (default 0)"},
    {"warmup", "int", "steps of linear warm-up from 0 to lr (default 0)"},
    {"schedule", "string", "cosine (decay to lr-min after the warm-up) or constant (default cosine)"},
    {"beta1", "float", "AdamW beta1 (default 0.9)"},
    {"beta2", "float", "AdamW beta2 (default 0.999)"},
    {"eps", "float", "AdamW epsilon (default 1e-8)"},
    {"weight_decay", "float", "AdamW decoupled weight decay of weight matrices (default 0)"},
    {"clip", "float", "clip the global gradient norm to this; 0 = off (default 1)"},
    {"grad_noise", "float", "eta of annealed gradient noise, variance eta/(1+t)^gamma; 0 = off (default 0)"},
    {"noise_gamma", "float", "gamma of the gradient noise (default 0.55)"},
    {"curriculum", "string", "none, single (single-head) or multi (multi-head), for parity and dms (default none)"},
    {"n_start", "int", "curricula: first N (default 2)"},
    {"n_max", "int", "curricula: last N; multi-head readouts get n_max - n_start + 1 heads (default 32)"},
    {"threshold", "float", "curricula: accuracy that moves N on (default 0.98)"},
    {"eval_every", "int", "evaluate on fresh sequences every K steps; 0 = only at the end (default 100)"},
    {"eval_batch", "int", "sequences per evaluation (default 256)"},
    {"loss", "string", "ce (cross-entropy) or mse (default ce)"},
    {"readout", "string", "linear or mlp (one ReLU hidden layer) (default linear)"},
    {"readout_hidden", "int", "hidden units of the MLP readout (default 64)"},
    {0, 0, 0},
};

const sl_config_key *sl_train_keys(void) { return train_keys; }

int sl_train_opts_from_json(json_t *cfg, sl_train_opts *o, sl_err *err)
{
    memset(o, 0, sizeof *o);
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v) {
        int ok = !strcmp(k, "seed");
        for (const sl_config_key *q = train_keys; q->name && !ok; q++) ok = !strcmp(q->name, k);
        if (!ok) return sl_err_set(err, SL_EINVAL, "unknown training option \"%s\"", k);
    }
    int rc;
    int64_t seed;
    const char *sched, *cur, *loss, *ro;
    if ((rc = sl_config_int(cfg, "steps", 1000, &o->steps, err)) || (rc = sl_config_int(cfg, "batch", 32, &o->batch, err)) ||
        (rc = sl_config_int(cfg, "seed", 0, &seed, err)) || (rc = sl_config_double(cfg, "lr", 1e-3, &o->lr, err)) ||
        (rc = sl_config_double(cfg, "lr_min", 0.0, &o->lr_min, err)) || (rc = sl_config_int(cfg, "warmup", 0, &o->warmup, err)) ||
        (rc = sl_config_str(cfg, "schedule", "cosine", &sched, err)) ||
        (rc = sl_config_double(cfg, "beta1", 0.9, &o->beta1, err)) || (rc = sl_config_double(cfg, "beta2", 0.999, &o->beta2, err)) ||
        (rc = sl_config_double(cfg, "eps", 1e-8, &o->eps, err)) ||
        (rc = sl_config_double(cfg, "weight_decay", 0.0, &o->weight_decay, err)) ||
        (rc = sl_config_double(cfg, "clip", 1.0, &o->clip, err)) ||
        (rc = sl_config_double(cfg, "grad_noise", 0.0, &o->noise_eta, err)) ||
        (rc = sl_config_double(cfg, "noise_gamma", 0.55, &o->noise_gamma, err)) ||
        (rc = sl_config_str(cfg, "curriculum", "none", &cur, err)) || (rc = sl_config_int(cfg, "n_start", 2, &o->n_start, err)) ||
        (rc = sl_config_int(cfg, "n_max", 32, &o->n_max, err)) || (rc = sl_config_double(cfg, "threshold", 0.98, &o->threshold, err)) ||
        (rc = sl_config_int(cfg, "eval_every", 100, &o->eval_every, err)) ||
        (rc = sl_config_int(cfg, "eval_batch", 256, &o->eval_batch, err)) || (rc = sl_config_str(cfg, "loss", "ce", &loss, err)) ||
        (rc = sl_config_str(cfg, "readout", "linear", &ro, err)) ||
        (rc = sl_config_int(cfg, "readout_hidden", 64, &o->readout_hidden, err)))
        return rc;
    o->seed = (uint64_t)seed;
    if (o->steps < 1 || o->steps > (1LL << 40)) return sl_err_set(err, SL_EINVAL, "steps must be positive");
    if (o->batch < 1 || o->batch > (1 << 24)) return sl_err_set(err, SL_EINVAL, "batch must be 1..2^24");
    if (!(o->lr > 0) || !(o->lr_min >= 0) || o->lr_min > o->lr) return sl_err_set(err, SL_EINVAL, "need lr > 0 and 0 <= lr_min <= lr");
    if (o->warmup < 0) return sl_err_set(err, SL_EINVAL, "warmup must be >= 0");
    if (strcmp(sched, "cosine") && strcmp(sched, "constant"))
        return sl_err_set(err, SL_EINVAL, "schedule must be cosine or constant (is \"%s\")", sched);
    o->cosine = !strcmp(sched, "cosine");
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        return sl_err_set(err, SL_EINVAL, "need 0 <= beta1, beta2 < 1 and eps > 0");
    if (!(o->weight_decay >= 0) || !(o->clip >= 0) || !(o->noise_eta >= 0) || !(o->noise_gamma >= 0))
        return sl_err_set(err, SL_EINVAL, "weight_decay, clip, grad_noise and noise_gamma must be >= 0");
    if (!strcmp(cur, "none")) o->curriculum = SL_CURRICULUM_NONE;
    else if (!strcmp(cur, "single")) o->curriculum = SL_CURRICULUM_SINGLE;
    else if (!strcmp(cur, "multi")) o->curriculum = SL_CURRICULUM_MULTI;
    else return sl_err_set(err, SL_EINVAL, "curriculum must be none, single or multi (is \"%s\")", cur);
    if (o->curriculum && (o->n_start < 1 || o->n_max < o->n_start || o->n_max - o->n_start >= SL_TRAIN_MAX_HEADS))
        return sl_err_set(err, SL_EINVAL, "curricula need 1 <= n_start <= n_max < n_start + %d", SL_TRAIN_MAX_HEADS);
    if (!(o->threshold > 0 && o->threshold <= 1)) return sl_err_set(err, SL_EINVAL, "threshold must be in (0, 1]");
    if (o->eval_every < 0 || o->eval_batch < 1) return sl_err_set(err, SL_EINVAL, "need eval_every >= 0 and eval_batch >= 1");
    if (strcmp(loss, "ce") && strcmp(loss, "mse")) return sl_err_set(err, SL_EINVAL, "loss must be ce or mse (is \"%s\")", loss);
    o->loss = !strcmp(loss, "mse") ? SL_LOSS_MSE : SL_LOSS_CE;
    if (strcmp(ro, "linear") && strcmp(ro, "mlp")) return sl_err_set(err, SL_EINVAL, "readout must be linear or mlp (is \"%s\")", ro);
    o->readout = !strcmp(ro, "mlp") ? SL_READOUT_MLP : SL_READOUT_LINEAR;
    if (o->readout_hidden < 1) return sl_err_set(err, SL_EINVAL, "readout_hidden must be positive");
    /* Everything in effect goes back into cfg (seqlab.train, run params). */
    json_object_set_new(cfg, "steps", json_integer(o->steps));
    json_object_set_new(cfg, "batch", json_integer(o->batch));
    json_object_set_new(cfg, "seed", json_integer((json_int_t)seed));
    json_object_set_new(cfg, "lr", json_real(o->lr));
    json_object_set_new(cfg, "lr_min", json_real(o->lr_min));
    json_object_set_new(cfg, "warmup", json_integer(o->warmup));
    json_object_set_new(cfg, "schedule", json_string(o->cosine ? "cosine" : "constant"));
    json_object_set_new(cfg, "beta1", json_real(o->beta1));
    json_object_set_new(cfg, "beta2", json_real(o->beta2));
    json_object_set_new(cfg, "eps", json_real(o->eps));
    json_object_set_new(cfg, "weight_decay", json_real(o->weight_decay));
    json_object_set_new(cfg, "clip", json_real(o->clip));
    json_object_set_new(cfg, "grad_noise", json_real(o->noise_eta));
    json_object_set_new(cfg, "noise_gamma", json_real(o->noise_gamma));
    json_object_set_new(cfg, "curriculum", json_string(cur));
    if (o->curriculum) {
        json_object_set_new(cfg, "n_start", json_integer(o->n_start));
        json_object_set_new(cfg, "n_max", json_integer(o->n_max));
        json_object_set_new(cfg, "threshold", json_real(o->threshold));
    }
    json_object_set_new(cfg, "eval_every", json_integer(o->eval_every));
    json_object_set_new(cfg, "eval_batch", json_integer(o->eval_batch));
    json_object_set_new(cfg, "loss", json_string(loss));
    json_object_set_new(cfg, "readout", json_string(ro));
    if (o->readout == SL_READOUT_MLP) json_object_set_new(cfg, "readout_hidden", json_integer(o->readout_hidden));
    return SL_OK;
}

double sl_lr_at(const sl_train_opts *o, int64_t s)
{
    if (s < o->warmup) return o->lr * (double)(s + 1) / (double)o->warmup;
    if (!o->cosine) return o->lr;
    const int64_t span = o->steps - o->warmup;
    if (span <= 1) return o->lr;
    double p = (double)(s - o->warmup) / (double)(span - 1);
    if (p > 1) p = 1;
    return o->lr_min + (o->lr - o->lr_min) * 0.5 * (1.0 + cos(M_PI * p));
}

double sl_noise_sigma(const sl_train_opts *o, int64_t s)
{
    if (!(o->noise_eta > 0)) return 0.0;
    return sqrt(o->noise_eta / pow(1.0 + (double)s, o->noise_gamma));
}

/* ------------------------------------------------------------ AdamW */
int sl_adamw_init(sl_adamw *a, const sl_grads *g, sl_err *err)
{
    memset(a, 0, sizeof *a);
    a->n = g->n;
    a->m = calloc(g->n ? g->n : 1, sizeof *a->m);
    a->v = calloc(g->n ? g->n : 1, sizeof *a->v);
    if (!a->m || !a->v) { sl_adamw_free(a); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    for (size_t i = 0; i < g->n; i++) {
        if (!g->f32[i]) continue;
        size_t k = (size_t)g->params->t[i].numel + 1;
        a->m[i] = calloc(k, sizeof(float));
        a->v[i] = calloc(k, sizeof(float));
        if (!a->m[i] || !a->v[i]) { sl_adamw_free(a); return sl_err_set(err, SL_ENOMEM, "out of memory"); }
    }
    return SL_OK;
}

void sl_adamw_free(sl_adamw *a)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->m) free(a->m[i]);
        if (a->v) free(a->v[i]);
    }
    free(a->m);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* The update of elements [k0, k1) of one tensor, in double. The AVX-512
** version does the scalar loop's operations in the same order, each an IEEE
** operation (exactly rounded in every lane, no fused multiply-adds), so both
** give the same bits; it exists because libm's sqrt (errno) keeps the
** compiler from vectorising the loop. */
static void adamw_scalar(int64_t k0, int64_t k1, float *restrict p, float *restrict m, float *restrict v,
                         const float *restrict gr, double lr, double wd, double beta1, double beta2, double eps,
                         double bc1, double bc2)
{
    for (int64_t k = k0; k < k1; k++) {
        double pk = (double)p[k] * (1.0 - lr * wd);
        double mk = beta1 * (double)m[k] + (1.0 - beta1) * (double)gr[k];
        double vk = beta2 * (double)v[k] + (1.0 - beta2) * (double)gr[k] * (double)gr[k];
        m[k] = (float)mk;
        v[k] = (float)vk;
        pk -= lr * (mk / bc1) / (sqrt(vk / bc2) + eps);
        p[k] = (float)pk;
    }
}

__attribute__((target("avx512f"))) static void adamw_avx512(int64_t k0, int64_t k1, float *restrict p,
                                                             float *restrict m, float *restrict v,
                                                             const float *restrict gr, double lr, double wd,
                                                             double beta1, double beta2, double eps, double bc1,
                                                             double bc2)
{
    const __m512d cd = _mm512_set1_pd(1.0 - lr * wd), b1 = _mm512_set1_pd(beta1), c1 = _mm512_set1_pd(1.0 - beta1),
                  b2 = _mm512_set1_pd(beta2), c2 = _mm512_set1_pd(1.0 - beta2), vlr = _mm512_set1_pd(lr),
                  vbc1 = _mm512_set1_pd(bc1), vbc2 = _mm512_set1_pd(bc2), veps = _mm512_set1_pd(eps);
    int64_t k = k0;
    for (; k + 8 <= k1; k += 8) {
        const __m512d pk = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + k)), cd);
        const __m512d g = _mm512_cvtps_pd(_mm256_loadu_ps(gr + k));
        const __m512d mk = _mm512_add_pd(_mm512_mul_pd(b1, _mm512_cvtps_pd(_mm256_loadu_ps(m + k))), _mm512_mul_pd(c1, g));
        const __m512d vk = _mm512_add_pd(_mm512_mul_pd(b2, _mm512_cvtps_pd(_mm256_loadu_ps(v + k))),
                                         _mm512_mul_pd(_mm512_mul_pd(c2, g), g));
        _mm256_storeu_ps(m + k, _mm512_cvtpd_ps(mk));
        _mm256_storeu_ps(v + k, _mm512_cvtpd_ps(vk));
        const __m512d num = _mm512_mul_pd(vlr, _mm512_div_pd(mk, vbc1));
        const __m512d den = _mm512_add_pd(_mm512_sqrt_pd(_mm512_div_pd(vk, vbc2)), veps);
        _mm256_storeu_ps(p + k, _mm512_cvtpd_ps(_mm512_sub_pd(pk, _mm512_div_pd(num, den))));
    }
    adamw_scalar(k, k1, p, m, v, gr, lr, wd, beta1, beta2, eps, bc1, bc2);
}

static void adamw_range(int64_t k0, int64_t k1, float *p, float *m, float *v, const float *gr, double lr, double wd,
                        double beta1, double beta2, double eps, double bc1, double bc2)
{
    if (sl_kernels_isa() == SL_ISA_AVX512) adamw_avx512(k0, k1, p, m, v, gr, lr, wd, beta1, beta2, eps, bc1, bc2);
    else adamw_scalar(k0, k1, p, m, v, gr, lr, wd, beta1, beta2, eps, bc1, bc2);
}

static void adamw_tensor(int64_t n, float *p, float *m, float *v, const float *gr, double lr, double wd, double beta1,
                         double beta2, double eps, double bc1, double bc2)
{
#pragma omp parallel if (n >= 65536)
    {
        const int64_t th = omp_get_thread_num(), nt = omp_get_num_threads();
        adamw_range(n * th / nt, n * (th + 1) / nt, p, m, v, gr, lr, wd, beta1, beta2, eps, bc1, bc2);
    }
}

void sl_adamw_step(sl_adamw *a, sl_tensors *params, const sl_grads *g, double lr, double beta1, double beta2, double eps,
                   double weight_decay, const unsigned char *decay)
{
    a->t++;
    const double bc1 = 1.0 - pow(beta1, (double)a->t), bc2 = 1.0 - pow(beta2, (double)a->t);
    for (size_t i = 0; i < g->n; i++) {
        const float *gr = g->f32[i];
        if (!gr || !a->m[i]) continue;
        const double wd = decay && decay[i] ? weight_decay : 0.0;
        adamw_tensor(params->t[i].numel, params->t[i].data, a->m[i], a->v[i], gr, lr, wd, beta1, beta2, eps, bc1, bc2);
    }
}

/* Sum of squares in double with 8 partial sums (index mod 8), combined in a
** fixed order: vectorised, and the same bits on every ISA and thread count. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static double sumsq_f32(const float *restrict x, int64_t n)
{
    double p[8] = { 0 };
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
#pragma omp simd
        for (int j = 0; j < 8; j++) p[j] += (double)x[k + j] * (double)x[k + j];
    for (int j = 0; k < n; k++, j++) p[j] += (double)x[k] * (double)x[k];
    return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

double sl_grads_norm(const sl_grads *g)
{
    double s = 0;
    for (size_t i = 0; i < g->n; i++)
        if (g->f32[i]) s += sumsq_f32(g->f32[i], g->params->t[i].numel);
    return sqrt(s);
}

void sl_grads_scale(sl_grads *g, double s)
{
    for (size_t i = 0; i < g->n; i++) {
        if (!g->f32[i]) continue;
        float *x = g->f32[i];
        const int64_t n = g->params->t[i].numel;
#pragma omp simd
        for (int64_t k = 0; k < n; k++) x[k] = (float)((double)x[k] * s);
    }
}

/* ------------------------------------------------------------ datasets */
void sl_dataset_free(sl_dataset *d)
{
    free(d->u);
    free(d->target);
    free(d->mask);
    json_decref(d->task);
    memset(d, 0, sizeof *d);
}

int sl_dataset_load(const char *path, sl_dataset *d, sl_err *err)
{
    memset(d, 0, sizeof *d);
    sl_stfile *f;
    int rc = sl_stfile_open(path, &f, err);
    if (rc) return rc;
    const sl_st_entry *eu = sl_stfile_find(f, "u"), *et = sl_stfile_find(f, "target"), *em = sl_stfile_find(f, "mask");
    if (!eu || eu->ndim != 3) { rc = sl_err_set(err, SL_EFORMAT, "%s: a data file needs u [B, T, features]", path); goto done; }
    d->B = eu->shape[0];
    d->T = eu->shape[1];
    d->F = eu->shape[2];
    if (!d->B || !d->T || !d->F) { rc = sl_err_set(err, SL_EFORMAT, "%s: u is empty", path); goto done; }
    if (!et || (et->ndim != 2 && et->ndim != 3) || et->shape[0] != d->B || et->shape[1] != d->T || (et->ndim == 3 && !et->shape[2])) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: a data file needs target [B, T] or [B, T, heads] matching u [%lld, %lld, %lld]",
                        path, (long long)d->B, (long long)d->T, (long long)d->F);
        goto done;
    }
    d->K = et->ndim == 3 ? et->shape[2] : 1;
    if (em && (em->numel != et->numel || em->shape[0] != d->B || em->shape[1] != d->T)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: mask must have target's shape", path);
        goto done;
    }
    d->u = malloc((size_t)eu->numel * sizeof *d->u);
    d->target = malloc((size_t)et->numel * sizeof *d->target);
    d->mask = malloc((size_t)et->numel * sizeof *d->mask);
    if (!d->u || !d->target || !d->mask) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    sl_stfile_read_f32(f, eu, d->u);
    sl_stfile_read_f32(f, et, d->target);
    if (em) sl_stfile_read_f32(f, em, d->mask);
    else for (int64_t i = 0; i < et->numel; i++) d->mask[i] = 1.0f;
    double tmax = 0;
    for (int64_t i = 0; i < eu->numel; i++)
        if (!isfinite(d->u[i])) { rc = sl_err_set(err, SL_EFORMAT, "%s: u has a non-finite value", path); goto done; }
    for (int64_t i = 0; i < et->numel; i++) {
        if (!isfinite(d->target[i]) || !isfinite(d->mask[i])) { rc = sl_err_set(err, SL_EFORMAT, "%s: target or mask has a non-finite value", path); goto done; }
        if (d->mask[i] > 0 && d->target[i] > tmax) tmax = d->target[i];
    }
    const char *ts = sl_stfile_meta(f, "seqlab.task"), *cs = sl_stfile_meta(f, "seqlab.classes");
    if (ts) d->task = json_loads(ts, 0, NULL);
    d->C = cs ? atoll(cs) : 0;
    if (d->C <= 0) d->C = (int64_t)tmax + 1;
done:
    sl_stfile_close(f);
    if (rc) sl_dataset_free(d);
    return rc;
}

int sl_dataset_save(const char *path, const sl_batch *b, const json_t *task_config, int64_t classes, uint64_t seed,
                    sl_err *err)
{
    int64_t su[3] = { b->B, b->T, b->F }, st[3] = { b->B, b->T, b->K };
    const int tdim = b->K == 1 ? 2 : 3;
    sl_st_tensor ts[3] = {
        { "u", SL_DT_F32, 3, su, b->u },
        { "target", SL_DT_F32, tdim, st, b->target },
        { "mask", SL_DT_F32, tdim, st, b->mask },
    };
    json_t *meta = json_object();
    char *tc = task_config ? json_dumps(task_config, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (tc) json_object_set_new(meta, "seqlab.task", json_string(tc));
    free(tc);
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)classes);
    json_object_set_new(meta, "seqlab.classes", json_string(buf));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
    json_object_set_new(meta, "seqlab.seed", json_string(buf));
    int rc = sl_st_write(path, ts, 3, meta, err);
    json_decref(meta);
    return rc;
}

/* ------------------------------------------------------------ evaluation */
/* Combine b's metrics into a (weighted by their counts). */
static void metrics_merge(sl_metrics *a, const sl_metrics *b)
{
    const double n = a->n + b->n, ln = a->last_n + b->last_n;
    if (n > 0) {
        a->loss = (a->n * (a->n > 0 ? a->loss : 0) + b->n * (b->n > 0 ? b->loss : 0)) / n;
        a->acc = (a->n * (a->n > 0 ? a->acc : 0) + b->n * (b->n > 0 ? b->acc : 0)) / n;
    }
    if (ln > 0)
        a->last_acc = (a->last_n * (a->last_n > 0 ? a->last_acc : 0) + b->last_n * (b->last_n > 0 ? b->last_acc : 0)) / ln;
    for (int64_t k = 0; k < b->K && k < SL_TRAIN_MAX_HEADS; k++) {
        const double hn = a->head_n[k] + b->head_n[k];
        if (hn > 0)
            a->head_acc[k] = (a->head_n[k] * (a->head_n[k] > 0 ? a->head_acc[k] : 0) +
                              b->head_n[k] * (b->head_n[k] > 0 ? b->head_acc[k] : 0)) / hn;
        a->head_n[k] = hn;
    }
    a->n = n;
    a->last_n = ln;
    a->K = b->K;
}

int sl_eval_batch(const sl_model *m, const sl_readout *r, int64_t B, int64_t T, const float *u, const float *target,
                  const float *mask, sl_metrics *out, sl_err *err)
{
    /* Sequences at a time so that activations stay near 32 MB whatever T is. */
    const int64_t width = SL_MAX(SL_MAX(m->n_out, r->n_out), SL_MAX(r->n_hidden, 1));
    int64_t Bc = (int64_t)(8 << 20) / SL_MAX(1, T * width);
    Bc = SL_MAX(1, SL_MIN(Bc, B));
    const int64_t R = Bc * T, F = r->we ? r->n_feat : m->n_in;
    float *y = malloc((size_t)(R * m->n_out + 1) * sizeof *y), *z = malloc((size_t)(R * r->n_out + 1) * sizeof *z),
          *hid = r->kind == SL_READOUT_MLP ? malloc((size_t)(R * r->n_hidden + 1) * sizeof *hid) : NULL,
          *xe = r->we ? malloc((size_t)(R * m->n_in + 1) * sizeof *xe) : NULL;
    int rc = SL_OK;
    if (!y || !z || (r->kind == SL_READOUT_MLP && !hid) || (r->we && !xe))
        rc = sl_err_set(err, SL_ENOMEM, "out of memory for evaluation");
    memset(out, 0, sizeof *out);
    for (int64_t b0 = 0; b0 < B && !rc; b0 += Bc) {
        const int64_t nb = SL_MIN(Bc, B - b0);
        const float *ub = u + b0 * T * F;
        if (xe) encoder_forward_f32(r, m->n_in, nb * T, ub, xe);
        rc = sl_model_forward(m, nb, T, xe ? xe : ub, y, NULL, SL_ALGO_AUTO, err);
        if (rc) break;
        readout_forward_f32(r, nb * T, y, hid, z);
        sl_metrics part;
        sl_loss_f32(r, nb, T, z, target + b0 * T * r->K, mask + b0 * T * r->K, NULL, &part);
        if (b0 == 0) *out = part;
        else metrics_merge(out, &part);
    }
    free(y);
    free(z);
    free(hid);
    free(xe);
    return rc;
}

int sl_loss_grad_f32(const sl_model *m, const sl_readout *r, int64_t B, int64_t T, const float *u, const float *target,
                     const float *mask, const sl_grads *g, sl_metrics *out, sl_err *err)
{
    const int64_t R = B * T;
    sl_tape tp = { 0 };
    float *z = malloc((size_t)(R * r->n_out + 1) * sizeof *z), *dz = malloc((size_t)(R * r->n_out + 1) * sizeof *dz),
          *dy = malloc((size_t)(R * r->n_in + 1) * sizeof *dy),
          *hid = malloc((size_t)(R * SL_MAX(1, r->n_hidden) + 1) * sizeof *hid),
          *dhid = malloc((size_t)(R * SL_MAX(1, r->n_hidden) + 1) * sizeof *dhid),
          *xe = r->we ? malloc((size_t)(2 * R * m->n_in + 1) * sizeof *xe) : NULL, *dxe = xe ? xe + R * m->n_in : NULL;
    int rc = (!z || !dz || !dy || !hid || !dhid || (r->we && !xe)) ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
    if (!rc && xe) encoder_forward_f32(r, m->n_in, R, u, xe);
    if (!rc) rc = sl_model_forward_tape(m, B, T, xe ? xe : u, &tp, err);
    if (!rc) {
        const float *y = tp.act[m->n_layers];
        float *part = NULL;
        double *hpart = NULL;
        int pnt = 0;
        sl_grads_zero_f32((sl_grads *)g);
        const int lowrank = readout_lowrank(r);
        rc = readout_loss_grad(r, g, B, T, y, target, mask, z, dz, lowrank ? NULL : dy, hid, dhid, &part, &hpart,
                               &pnt, out, err);
        free(part);
        free(hpart);
        if (!rc) rc = lowrank ? sl_model_backward_lowrank(m, &tp, dz, r->w1, r->n_out, g, dxe, err)
                              : sl_model_backward(m, &tp, dy, g, dxe, err);
        if (!rc && xe) encoder_backward_f32(r, g, m->n_in, R, u, dxe);
    }
    sl_tape_free(&tp);
    free(z); free(dz); free(dy); free(hid); free(dhid); free(xe);
    return rc;
}

int sl_loss_grad_f64(const sl_model *m, const sl_readout *r, int64_t B, int64_t T, const float *u, const float *target,
                     const float *mask, const sl_grads *g, double *loss, sl_err *err)
{
    const int64_t R = B * T, ni = r->n_in, no = r->n_out, Hd = r->n_hidden;
    sl_tape_f64 tp = { 0 };
    const int64_t nin = m->n_in, F = r->we ? r->n_feat : nin;
    double *x = malloc((size_t)((r->we ? 2 : 1) * R * nin + 1) * sizeof *x), *z = calloc((size_t)(R * no + 1), sizeof *z),
           *dz = malloc((size_t)(R * no + 1) * sizeof *dz), *dy = calloc((size_t)(R * ni + 1), sizeof *dy),
           *hid = calloc((size_t)(R * Hd + 1), sizeof *hid), *dhid = calloc((size_t)(R * Hd + 1), sizeof *dhid);
    int rc = (!x || !z || !dz || !dy || !hid || !dhid) ? sl_err_set(err, SL_ENOMEM, "out of memory") : SL_OK;
    if (rc) goto done;
    if (r->we)   /* the input projection */
        for (int64_t i = 0; i < R; i++)
            for (int64_t o = 0; o < nin; o++) {
                double sx = r->be[o];
                for (int64_t f = 0; f < F; f++) sx += (double)r->we[o * F + f] * u[i * F + f];
                x[i * nin + o] = sx;
            }
    else
        for (int64_t i = 0; i < R * nin; i++) x[i] = u[i];
    if (g) sl_grads_zero_f64((sl_grads *)g);
    if ((rc = sl_model_forward_tape_f64(m, B, T, x, &tp, err))) goto done;
    const double *y = tp.act[m->n_layers];
    /* Readout. */
    const float *W1 = r->w1, *b1 = r->b1, *W2 = r->w2, *b2 = r->b2;
    const int mlp = r->kind == SL_READOUT_MLP;
    const int64_t o1 = mlp ? Hd : no;
    double *h1 = mlp ? hid : z;
    for (int64_t i = 0; i < R; i++)
        for (int64_t o = 0; o < o1; o++) {
            double s = b1[o];
            for (int64_t j = 0; j < ni; j++) s += (double)W1[o * ni + j] * y[i * ni + j];
            h1[i * o1 + o] = mlp ? fmax(s, 0.0) : s;
        }
    if (mlp)
        for (int64_t i = 0; i < R; i++)
            for (int64_t o = 0; o < no; o++) {
                double s = b2[o];
                for (int64_t j = 0; j < Hd; j++) s += (double)W2[o * Hd + j] * hid[i * Hd + j];
                z[i * no + o] = s;
            }
    sl_loss_f64(r, B, T, z, target, mask, dz, loss);
    if (!g) goto done;
    double *gw1 = sl_grads_f64(g, W1), *gb1 = sl_grads_f64(g, b1);
    const double *dh1 = dz;
    if (mlp) {
        double *gw2 = sl_grads_f64(g, W2), *gb2 = sl_grads_f64(g, b2);
        for (int64_t i = 0; i < R; i++)
            for (int64_t o = 0; o < no; o++) {
                const double d = dz[i * no + o];
                if (gb2) gb2[o] += d;
                for (int64_t j = 0; j < Hd; j++) {
                    if (gw2) gw2[o * Hd + j] += d * hid[i * Hd + j];
                    dhid[i * Hd + j] += d * (double)W2[o * Hd + j];
                }
            }
        for (int64_t i = 0; i < R * Hd; i++)
            if (!(hid[i] > 0)) dhid[i] = 0;
        dh1 = dhid;
    }
    for (int64_t i = 0; i < R; i++)
        for (int64_t o = 0; o < o1; o++) {
            const double d = dh1[i * o1 + o];
            if (gb1) gb1[o] += d;
            for (int64_t j = 0; j < ni; j++) {
                if (gw1) gw1[o * ni + j] += d * y[i * ni + j];
                dy[i * ni + j] += d * (double)W1[o * ni + j];
            }
        }
    double *dxe = r->we ? x + R * nin : NULL;
    rc = sl_model_backward_f64(m, &tp, dy, g, dxe, err);
    if (!rc && dxe) {
        double *gwe = sl_grads_f64(g, r->we), *gbe = sl_grads_f64(g, r->be);
        for (int64_t i = 0; i < R; i++)
            for (int64_t o = 0; o < nin; o++) {
                const double d = dxe[i * nin + o];
                if (gbe) gbe[o] += d;
                for (int64_t f = 0; gwe && f < F; f++) gwe[o * F + f] += d * u[i * F + f];
            }
    }
done:
    sl_tape_f64_free(&tp);
    free(x); free(z); free(dz); free(dy); free(hid); free(dhid);
    return rc;
}

/* ------------------------------------------------------------ trainer */
void sl_trainer_free(sl_trainer *tr)
{
    if (!tr) return;
    sl_model_free(tr->m);
    sl_grads_free(&tr->g);
    sl_adamw_free(&tr->opt);
    sl_tape_free(&tr->tape);
    sl_batch_free(&tr->batch);
    free(tr->decay);
    if (tr->rng_batch) gsl_rng_free(tr->rng_batch);
    if (tr->rng_eval) gsl_rng_free(tr->rng_eval);
    if (tr->rng_noise) gsl_rng_free(tr->rng_noise);
    free(tr->z); free(tr->dz); free(tr->dy); free(tr->hid); free(tr->dhid);
    free(tr->xe); free(tr->dxe);
    free(tr->ro_part); free(tr->ro_hpart);
    free(tr);
}

static int ends_with_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    if (n < s || strcmp(name + n - s, suffix)) return 0;
    return n == s || name[n - s - 1] == '.' || name[n - s - 1] == '_' || suffix[0] == '.' || suffix[0] == '_';
}

int sl_trainer_new(const sl_family *fam, json_t *cfg, sl_task *task, sl_dataset *data, const sl_train_opts *o,
                   const char *const *freeze, sl_trainer **out, sl_err *err)
{
    *out = NULL;
    if (!task == !data) return sl_err_set(err, SL_EINVAL, "training needs a task or a data file (one of them)");
    if (!fam->init) return sl_err_set(err, SL_EUNSUP, "family %s cannot be initialised", fam->name);
    sl_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return sl_err_set(err, SL_ENOMEM, "out of memory");
    tr->o = *o;
    tr->task = task;
    tr->data = data;
    int rc = SL_OK;
    json_t *c2 = NULL;
    sl_model *m1 = NULL;
    sl_tensors *ts = NULL;
    if (o->curriculum) {
        if (!task || (task->kind != SL_TASK_PARITY && task->kind != SL_TASK_DMS)) {
            rc = sl_err_set(err, SL_EINVAL, "curricula are defined for the parity and dms tasks");
            goto fail;
        }
        int64_t lo = o->n_start, hi = o->curriculum == SL_CURRICULUM_MULTI ? o->n_max : o->n_start;
        if ((rc = sl_task_set_n(task, lo, hi, o->n_start, err))) goto fail;
        tr->n_cur = o->n_start;
    }
    const int64_t F = task ? task->F : data->F, K = task ? task->K : data->K, C = task ? task->C : data->C;
    /* The family's own initialisation, with the task's input size. */
    c2 = json_deep_copy(cfg);
    ts = sl_tensors_new();
    if (!c2 || !ts) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto fail; }
    json_object_set_new(c2, "input_size", json_integer(F));
    if ((rc = fam->init(c2, o->seed, ts, err))) goto fail;
    rc = sl_model_from_tensors(ts, fam->name, c2, &m1, err);
    ts = NULL;
    if (rc) goto fail;
    if (!sl_model_trainable(m1)) {
        rc = sl_err_set(err, SL_EUNSUP, "family %s has no gradients yet (its layers lack a backward pass)", fam->name);
        goto fail;
    }
    /* The same tensors plus the readout, built again into the model we train. */
    ts = sl_tensors_new();
    if (!ts) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < m1->tensors->n && !rc; i++) {
        const sl_tensor *t = &m1->tensors->t[i];
        rc = sl_tensors_add(ts, t->name, t->ndim, t->shape, t->data, NULL, err);
    }
    const int64_t Cr = o->loss == SL_LOSS_MSE ? 1 : C;
    if (!rc) rc = sl_readout_init(ts, o->readout, m1->n_out, o->readout_hidden, K * Cr, mix_seed(o->seed, 1), err);
    /* A family sized by its own width (d_model) gets the trainer's input projection. */
    if (!rc && m1->n_in != F) {
        rc = sl_encoder_init(ts, F, m1->n_in, mix_seed(o->seed, 5), err);
        json_object_del(m1->config, "input_size");
    }
    if (rc) goto fail;
    rc = sl_model_from_tensors(ts, fam->name, m1->config, &tr->m, err);
    ts = NULL;
    if (rc) goto fail;
    if ((rc = sl_readout_bind(&tr->ro, tr->m, o->readout, K, C, o->loss, err))) goto fail;
    if ((rc = sl_grads_init(&tr->g, tr->m->tensors, 1, 0, err))) goto fail;
    tr->decay = calloc(tr->g.n + 1, 1);
    if (!tr->decay) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < tr->g.n; i++) {
        const sl_tensor *t = &tr->m->tensors->t[i];
        tr->decay[i] = t->ndim >= 2;
        for (const char *const *f = freeze; f && *f; f++)
            if (ends_with_suffix(t->name, *f)) sl_grads_freeze(&tr->g, i);
    }
    if ((rc = sl_adamw_init(&tr->opt, &tr->g, err))) goto fail;
    tr->rng_batch = rng_new(mix_seed(o->seed, 2));
    tr->rng_eval = rng_new(mix_seed(o->seed, 3));
    tr->rng_noise = rng_new(mix_seed(o->seed, 4));
    if (!tr->rng_batch || !tr->rng_eval || !tr->rng_noise) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto fail; }
    if ((rc = sl_model_params_changed(tr->m, err))) goto fail;
    sl_model_free(m1);
    json_decref(c2);
    *out = tr;
    return SL_OK;
fail:
    sl_tensors_free(ts);
    sl_model_free(m1);
    json_decref(c2);
    sl_trainer_free(tr);
    return rc;
}

static int ensure_rows(sl_trainer *tr, int64_t R, sl_err *err)
{
    if ((size_t)R <= tr->cap_rows) return SL_OK;
    const sl_readout *r = &tr->ro;
    free(tr->z); free(tr->dz); free(tr->dy); free(tr->hid); free(tr->dhid); free(tr->xe); free(tr->dxe);
    tr->xe = tr->dxe = NULL;
    if (r->we && (!(tr->xe = malloc((size_t)(R * tr->m->n_in) * sizeof(float))) ||
                  !(tr->dxe = malloc((size_t)(R * tr->m->n_in) * sizeof(float))))) {
        tr->cap_rows = 0;
        return sl_err_set(err, SL_ENOMEM, "out of memory for the training buffers");
    }
    tr->z = malloc((size_t)(R * r->n_out) * sizeof(float));
    tr->dz = malloc((size_t)(R * r->n_out) * sizeof(float));
    tr->dy = malloc((size_t)(R * r->n_in) * sizeof(float));
    tr->hid = malloc((size_t)(R * SL_MAX(1, r->n_hidden)) * sizeof(float));
    tr->dhid = malloc((size_t)(R * SL_MAX(1, r->n_hidden)) * sizeof(float));
    if (!tr->z || !tr->dz || !tr->dy || !tr->hid || !tr->dhid) {
        tr->cap_rows = 0;
        return sl_err_set(err, SL_ENOMEM, "out of memory for the training buffers");
    }
    tr->cap_rows = (size_t)R;
    return SL_OK;
}

/* A batch: from the task, or B sequences of the data file drawn with replacement. */
static int next_batch(sl_trainer *tr, gsl_rng *r, int64_t B, sl_batch *b, sl_err *err)
{
    if (tr->task) return sl_task_batch(tr->task, r, B, sl_task_length(tr->task), b, err);
    const sl_dataset *d = tr->data;
    const int64_t T = d->T, F = d->F, K = d->K;
    size_t nu = (size_t)(B * T * F), nt = (size_t)(B * T * K);
    if (nu > b->cap_u) { float *p = realloc(b->u, nu * sizeof *p); if (!p) return sl_err_set(err, SL_ENOMEM, "out of memory"); b->u = p; b->cap_u = nu; }
    if (nt > b->cap_tm) {
        float *p = realloc(b->target, nt * sizeof *p), *q = p ? realloc(b->mask, nt * sizeof *q) : NULL;
        if (p) b->target = p;
        if (q) b->mask = q;
        if (!p || !q) return sl_err_set(err, SL_ENOMEM, "out of memory");
        b->cap_tm = nt;
    }
    b->B = B; b->T = T; b->F = F; b->K = K;
    for (int64_t i = 0; i < B; i++) {
        int64_t s = (int64_t)gsl_rng_uniform_int(r, (unsigned long)d->B);
        memcpy(b->u + i * T * F, d->u + s * T * F, (size_t)(T * F) * sizeof(float));
        memcpy(b->target + i * T * K, d->target + s * T * K, (size_t)(T * K) * sizeof(float));
        memcpy(b->mask + i * T * K, d->mask + s * T * K, (size_t)(T * K) * sizeof(float));
    }
    return SL_OK;
}

static int evaluate(sl_trainer *tr, sl_metrics *out, sl_err *err)
{
    if (tr->task) {
        sl_batch eb = { 0 };
        int rc = sl_task_batch(tr->task, tr->rng_eval, tr->o.eval_batch, sl_task_length(tr->task), &eb, err);
        if (!rc) rc = sl_eval_batch(tr->m, &tr->ro, eb.B, eb.T, eb.u, eb.target, eb.mask, out, err);
        sl_batch_free(&eb);
        return rc;
    }
    const sl_dataset *d = tr->data;
    const int64_t B = SL_MIN(d->B, tr->o.eval_batch);
    return sl_eval_batch(tr->m, &tr->ro, B, d->T, d->u, d->target, d->mask, out, err);
}

static int curriculum_step(sl_trainer *tr, const sl_metrics *ev, sl_train_step_info *info, sl_err *err)
{
    const sl_train_opts *o = &tr->o;
    if (!o->curriculum || tr->n_cur >= o->n_max) return SL_OK;
    int grow;
    if (o->curriculum == SL_CURRICULUM_SINGLE) {
        grow = ev->head_acc[0] > o->threshold;
    } else {
        const int64_t newest = tr->n_cur - o->n_start;
        double s = 0;
        for (int64_t k = 0; k <= newest; k++) s += ev->head_acc[k];
        grow = s / (double)(newest + 1) > o->threshold && ev->head_acc[newest] > o->threshold;
    }
    if (!grow) return SL_OK;
    tr->n_cur++;
    int rc = o->curriculum == SL_CURRICULUM_SINGLE ? sl_task_set_n(tr->task, tr->n_cur, tr->n_cur, tr->n_cur, err)
                                                   : sl_task_set_n(tr->task, o->n_start, o->n_max, tr->n_cur, err);
    info->n_changed = 1;
    return rc;
}

int sl_trainer_step(sl_trainer *tr, sl_train_step_info *info, sl_err *err)
{
    memset(info, 0, sizeof *info);
    const sl_train_opts *o = &tr->o;
    const int64_t s = tr->step, B = o->batch;
    double tm = sl_now(), tn;
#define PHASE(field) (tn = sl_now(), info->field = tn - tm, tm = tn)
    int rc = next_batch(tr, tr->rng_batch, B, &tr->batch, err);
    if (rc) return rc;
    PHASE(t_batch);
    const int64_t T = tr->batch.T, R = B * T;
    if ((rc = ensure_rows(tr, R, err))) return rc;
    const float *xin = tr->batch.u;
    if (tr->ro.we) {
        encoder_forward_f32(&tr->ro, tr->m->n_in, R, tr->batch.u, tr->xe);
        xin = tr->xe;
    }
    if ((rc = sl_model_forward_tape(tr->m, B, T, xin, &tr->tape, err))) return rc;
    PHASE(t_forward);
    const float *y = tr->tape.act[tr->m->n_layers];
    sl_metrics mt;
    sl_grads_zero_f32(&tr->g);
    const int lowrank = readout_lowrank(&tr->ro);
    if ((rc = readout_loss_grad(&tr->ro, &tr->g, B, T, y, tr->batch.target, tr->batch.mask, tr->z, tr->dz,
                                lowrank ? NULL : tr->dy, tr->hid, tr->dhid, &tr->ro_part, &tr->ro_hpart, &tr->ro_nt,
                                &mt, err)))
        return rc;
    if (!isfinite(mt.loss)) return sl_err_set(err, SL_ENUMERIC, "step %lld: the loss is not finite (%g); lower --lr or clip",
                                              (long long)s + 1, mt.loss);
    PHASE(t_readout);
    if ((rc = lowrank ? sl_model_backward_lowrank(tr->m, &tr->tape, tr->dz, tr->ro.w1, tr->ro.n_out, &tr->g,
                                                  tr->ro.we ? tr->dxe : NULL, err)
                      : sl_model_backward(tr->m, &tr->tape, tr->dy, &tr->g, tr->ro.we ? tr->dxe : NULL, err)))
        return rc;
    if (tr->ro.we) encoder_backward_f32(&tr->ro, &tr->g, tr->m->n_in, R, tr->batch.u, tr->dxe);
    PHASE(t_backward);
    const double sigma = sl_noise_sigma(o, s);
    if (sigma > 0)
        for (size_t i = 0; i < tr->g.n; i++) {
            float *gr = tr->g.f32[i];
            for (int64_t k = 0; gr && k < tr->m->tensors->t[i].numel; k++)
                gr[k] += (float)gsl_ran_gaussian_ziggurat(tr->rng_noise, sigma);
        }
    const double norm = sl_grads_norm(&tr->g);
    if (!isfinite(norm)) return sl_err_set(err, SL_ENUMERIC, "step %lld: the gradient is not finite", (long long)s + 1);
    if (o->clip > 0 && norm > o->clip) sl_grads_scale(&tr->g, o->clip / (norm + 1e-6));
    const double lr = sl_lr_at(o, s);
    sl_adamw_step(&tr->opt, tr->m->tensors, &tr->g, lr, o->beta1, o->beta2, o->eps, o->weight_decay, tr->decay);
    if ((rc = sl_model_params_changed(tr->m, err))) return rc;
    PHASE(t_update);
#undef PHASE
    tr->step++;
    info->step = tr->step;
    info->loss = mt.loss;
    info->acc = mt.acc;
    info->lr = lr;
    info->grad_norm = norm;
    info->n = tr->n_cur;
    const int due = (o->eval_every > 0 && tr->step % o->eval_every == 0) || tr->step == o->steps;
    if (due) {
        if ((rc = evaluate(tr, &info->eval, err))) return rc;
        info->evaluated = 1;
        if ((rc = curriculum_step(tr, &info->eval, info, err))) return rc;
        info->n = tr->n_cur;
    }
    return SL_OK;
}

json_t *sl_trainer_metadata(const sl_trainer *tr, const json_t *train_cfg)
{
    json_t *meta = json_object(), *tc = json_deep_copy(train_cfg);
    if (!meta || !tc) { json_decref(meta); json_decref(tc); return NULL; }
    json_object_set_new(tc, "readout", json_string(tr->ro.kind == SL_READOUT_MLP ? "mlp" : "linear"));
    if (tr->ro.kind == SL_READOUT_MLP) json_object_set_new(tc, "readout_hidden", json_integer(tr->ro.n_hidden));
    json_object_set_new(tc, "heads", json_integer(tr->ro.K));
    json_object_set_new(tc, "classes", json_integer(tr->task ? tr->task->C : tr->data->C));
    json_object_set_new(tc, "loss", json_string(tr->ro.loss == SL_LOSS_MSE ? "mse" : "ce"));
    json_object_set_new(tc, "steps_done", json_integer(tr->step));
    if (tr->n_cur) json_object_set_new(tc, "n_reached", json_integer(tr->n_cur));
    char *s = json_dumps(tc, JSON_COMPACT | JSON_SORT_KEYS);
    if (s) json_object_set_new(meta, "seqlab.train", json_string(s));
    free(s);
    const json_t *task = tr->task ? tr->task->config : tr->data->task;
    if (task) {
        s = json_dumps(task, JSON_COMPACT | JSON_SORT_KEYS);
        if (s) json_object_set_new(meta, "seqlab.task", json_string(s));
        free(s);
    }
    json_decref(tc);
    return meta;
}

/* ------------------------------------------------------------ checkpoints */
#define OPT_M "optim.m."
#define OPT_V "optim.v."

/* The MT19937 state GSL keeps (mt19937.c's mt_state_t): 624 words and the
** position; restored states are checked against it before use. */
#define MT_N 624
typedef struct { unsigned long mt[MT_N]; int mti; } mt_state_layout;

static char *rng_hex(const gsl_rng *r)
{
    const size_t n = gsl_rng_size(r);
    const unsigned char *p = gsl_rng_state(r);
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) snprintf(s + 2 * i, 3, "%02x", p[i]);
    s[2 * n] = '\0';
    return s;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int rng_from_hex(gsl_rng *r, const json_t *v, const char *what, sl_err *err)
{
    const size_t n = gsl_rng_size(r);
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 2 * n || n != sizeof(mt_state_layout))
        return sl_err_set(err, SL_EFORMAT, "seqlab.train_state: %s is not a %zu-byte mt19937 state", what, n);
    unsigned char *buf = malloc(n);
    if (!buf) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) { free(buf); return sl_err_set(err, SL_EFORMAT, "seqlab.train_state: %s is not hex", what); }
        buf[i] = (unsigned char)(hi * 16 + lo);
    }
    mt_state_layout st;
    memcpy(&st, buf, sizeof st);
    if (st.mti < 0 || st.mti > MT_N) {
        free(buf);
        return sl_err_set(err, SL_EFORMAT, "seqlab.train_state: %s has position %d (outside 0..%d)", what, st.mti, MT_N);
    }
    memcpy(gsl_rng_state(r), buf, n);
    free(buf);
    return SL_OK;
}

int sl_trainer_save_checkpoint(const sl_trainer *tr, const char *path, const json_t *train_cfg,
                               const char *const *freeze, const char *data_path, sl_err *err)
{
    int rc = SL_OK;
    sl_tensors *ts = sl_tensors_new();
    json_t *meta = sl_trainer_metadata(tr, train_cfg), *st = json_object(), *fz = json_array();
    char *hx[3] = { rng_hex(tr->rng_batch), rng_hex(tr->rng_eval), rng_hex(tr->rng_noise) };
    char *cs = json_dumps(tr->m->config, JSON_COMPACT | JSON_SORT_KEYS), *ss = NULL;
    if (!ts || !meta || !st || !fz || !hx[0] || !hx[1] || !hx[2] || !cs) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    const sl_tensors *p = tr->m->tensors;
    for (size_t i = 0; i < p->n && !rc; i++)
        rc = sl_tensors_add(ts, p->t[i].name, p->t[i].ndim, p->t[i].shape, p->t[i].data, NULL, err);
    for (size_t i = 0; i < p->n && !rc; i++) {
        if (!tr->opt.m[i]) continue;
        char *nm = sl_strfmt(OPT_M "%s", p->t[i].name), *nv = sl_strfmt(OPT_V "%s", p->t[i].name);
        if (!nm || !nv) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        if (!rc) rc = sl_tensors_add(ts, nm, p->t[i].ndim, p->t[i].shape, tr->opt.m[i], NULL, err);
        if (!rc) rc = sl_tensors_add(ts, nv, p->t[i].ndim, p->t[i].shape, tr->opt.v[i], NULL, err);
        free(nm);
        free(nv);
    }
    if (rc) goto out;
    for (const char *const *f = freeze; f && *f; f++) json_array_append_new(fz, json_string(*f));
    json_object_set_new(st, "version", json_integer(1));
    json_object_set_new(st, "step", json_integer(tr->step));
    json_object_set_new(st, "adam_t", json_integer(tr->opt.t));
    json_object_set_new(st, "n_cur", json_integer(tr->n_cur));
    json_object_set_new(st, "rng", json_string(gsl_rng_name(tr->rng_batch)));
    json_object_set_new(st, "rng_batch", json_string(hx[0]));
    json_object_set_new(st, "rng_eval", json_string(hx[1]));
    json_object_set_new(st, "rng_noise", json_string(hx[2]));
    json_object_set(st, "freeze", fz);
    json_object_set_new(st, "data", data_path ? json_string(data_path) : json_null());
    ss = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    if (!ss) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto out; }
    json_object_set_new(meta, "seqlab.train_state", json_string(ss));
    json_object_set_new(meta, "seqlab.family", json_string(tr->m->fam->name));
    json_object_set_new(meta, "seqlab.config", json_string(cs));
    rc = sl_tensors_save(ts, path, meta, err);
out:
    for (int i = 0; i < 3; i++) free(hx[i]);
    free(cs);
    free(ss);
    json_decref(fz);
    json_decref(st);
    json_decref(meta);
    sl_tensors_free(ts);
    return rc;
}

int sl_checkpoint_state(const sl_model *ck, json_t **state, sl_err *err)
{
    *state = NULL;
    const char *s = json_string_value(json_object_get(ck->metadata, "seqlab.train_state"));
    if (!s)
        return sl_err_set(err, SL_EFORMAT,
                          "%s has no trainer state (seqlab.train_state): not a checkpoint of seqlab train "
                          "--checkpoint-every (a final model or an older checkpoint cannot be resumed)",
                          ck->path);
    json_error_t je;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return sl_err_set(err, SL_EFORMAT, "%s: seqlab.train_state is not a JSON object", ck->path);
    }
    if (json_integer_value(json_object_get(j, "version")) != 1 || !json_is_integer(json_object_get(j, "version"))) {
        json_decref(j);
        return sl_err_set(err, SL_EFORMAT, "%s: seqlab.train_state has an unknown version", ck->path);
    }
    *state = j;
    return SL_OK;
}

static int ck_tensor(const sl_model *ck, const char *name, const sl_tensor *like, const sl_tensor **out, sl_err *err)
{
    const sl_tensor *t = sl_tensors_find(ck->tensors, name);
    if (!t) return sl_err_set(err, SL_EFORMAT, "%s: checkpoint lacks tensor %s", ck->path, name);
    int rc = sl_tensor_expect(t, name, like->ndim, like->shape, err);
    if (rc) { sl_err_prefix(err, "%s", ck->path); return SL_EFORMAT; }
    *out = t;
    return SL_OK;
}

int sl_trainer_resume(sl_trainer *tr, const sl_model *ck, sl_err *err)
{
    json_t *st;
    int rc = sl_checkpoint_state(ck, &st, err);
    if (rc) return rc;
    const json_t *js = json_object_get(st, "step"), *ja = json_object_get(st, "adam_t"), *jn = json_object_get(st, "n_cur");
    const char *rn = json_string_value(json_object_get(st, "rng"));
    if (!json_is_integer(js) || !json_is_integer(ja) || !json_is_integer(jn) || !rn) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: seqlab.train_state lacks step, adam_t, n_cur or rng", ck->path);
        goto out;
    }
    const int64_t step = json_integer_value(js), adam_t = json_integer_value(ja), n_cur = json_integer_value(jn);
    if (strcmp(rn, gsl_rng_name(tr->rng_batch))) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: generator %s, expected %s", ck->path, rn, gsl_rng_name(tr->rng_batch));
        goto out;
    }
    if (step < 1 || adam_t < 0 || adam_t > step) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: seqlab.train_state has step %lld, adam_t %lld", ck->path, (long long)step,
                        (long long)adam_t);
        goto out;
    }
    if (step >= tr->o.steps) {
        rc = sl_err_set(err, SL_EINVAL, "%s is at step %lld: --steps must be larger (is %lld)", ck->path, (long long)step,
                        (long long)tr->o.steps);
        goto out;
    }
    const sl_train_opts *o = &tr->o;
    if (o->curriculum ? (n_cur < o->n_start || n_cur > o->n_max) : n_cur != 0) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: curriculum N %lld does not fit the options", ck->path, (long long)n_cur);
        goto out;
    }
    /* Every tensor of the checkpoint is the model's or a moment of a trained one. */
    const sl_tensors *p = tr->m->tensors;
    size_t expected = p->n;
    for (size_t i = 0; i < p->n; i++) expected += tr->opt.m[i] ? 2 : 0;
    if (ck->tensors->n != expected) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: %zu tensors, expected %zu (the model's and the moments of its trained "
                        "tensors; was it trained with other --freeze options?)", ck->path, ck->tensors->n, expected);
        goto out;
    }
    for (size_t i = 0; i < p->n && !rc; i++) {
        const sl_tensor *t;
        if ((rc = ck_tensor(ck, p->t[i].name, &p->t[i], &t, err))) break;
        memcpy(p->t[i].data, t->data, (size_t)t->numel * sizeof(float));
        if (!tr->opt.m[i]) continue;
        char *nm = sl_strfmt(OPT_M "%s", p->t[i].name), *nv = sl_strfmt(OPT_V "%s", p->t[i].name);
        const sl_tensor *tm = NULL, *tv = NULL;
        if (!nm || !nv) rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        if (!rc) rc = ck_tensor(ck, nm, &p->t[i], &tm, err);
        if (!rc) rc = ck_tensor(ck, nv, &p->t[i], &tv, err);
        if (!rc) {
            memcpy(tr->opt.m[i], tm->data, (size_t)tm->numel * sizeof(float));
            memcpy(tr->opt.v[i], tv->data, (size_t)tv->numel * sizeof(float));
        }
        free(nm);
        free(nv);
    }
    if (rc) goto out;
    if ((rc = rng_from_hex(tr->rng_batch, json_object_get(st, "rng_batch"), "rng_batch", err)) ||
        (rc = rng_from_hex(tr->rng_eval, json_object_get(st, "rng_eval"), "rng_eval", err)) ||
        (rc = rng_from_hex(tr->rng_noise, json_object_get(st, "rng_noise"), "rng_noise", err))) {
        sl_err_prefix(err, "%s", ck->path);
        goto out;
    }
    if (o->curriculum && n_cur != tr->n_cur) {
        tr->n_cur = n_cur;
        rc = o->curriculum == SL_CURRICULUM_SINGLE ? sl_task_set_n(tr->task, n_cur, n_cur, n_cur, err)
                                                   : sl_task_set_n(tr->task, o->n_start, o->n_max, n_cur, err);
        if (rc) goto out;
    }
    tr->step = step;
    tr->opt.t = adam_t;
    rc = sl_model_params_changed(tr->m, err);
out:
    json_decref(st);
    return rc;
}
