/*
** The vectorised FFT convolution (kernels/fftconv.c) as a template:
** fftconv.c includes this file once per instruction set inside a
** `#pragma GCC target` region, with VD (a vector of VW doubles), VW, SFX,
** VSPLAT, VFMA(a, b, c) = a b + c and VFMS(a, b, c) = a b - c defined. The
** design is at the top of fftconv.c.
**
** A work buffer holds n complex elements of VW lanes each: element p is the
** vector of real parts at buf + 2 VW p followed by the vector of imaginary
** parts. Lane l of a group's buffer is the complex sequence
** u[filter f0 + l] + i u[filter f0 + VW + l] (each filter reads its input
** channel f / group).
*/

typedef double SFX(fc_vdu) __attribute__((vector_size(VW * 8), aligned(8)));   /* unaligned access */

static inline VD SFX(fc_ldu)(const double *p) { return *(const SFX(fc_vdu) *)p; }
static inline void SFX(fc_stu)(double *p, VD v) { *(SFX(fc_vdu) *)p = v; }
static inline VD SFX(fc_ld)(const double *p) { return *(const VD *)p; }
static inline void SFX(fc_st)(double *p, VD v) { *(VD *)p = v; }

/* (xr, xi) * (wr, wi), the twiddle the same for every lane. */
#define FC_CMUL(xr, xi, wr, wi, outr, outi)                                                                          \
    do {                                                                                                             \
        const VD wr_ = VSPLAT(wr), wi_ = VSPLAT(wi);                                                                 \
        const VD r_ = VFMS((xr), wr_, (xi) * wi_), i_ = VFMA((xr), wi_, (xi) * wr_);                                 \
        (outr) = r_;                                                                                                 \
        (outi) = i_;                                                                                                 \
    } while (0)

/* The lanes of one group: the input column of each real and imaginary lane
** (-1: no filter there, the lane stays 0) and the output column. contig: the
** filters are 2 VW consecutive ones that each read their own column (group 1),
** so loads and stores are plain vector accesses. */
typedef struct SFX(fc_lanes) {
    int contig, skip;
    int64_t f0;
    int64_t in[2 * VW], out[2 * VW];
    VD dr, di;   /* skip weights of the lanes (skip: d given) */
} SFX(fc_lanes);

static void SFX(fc_lanes_init)(SFX(fc_lanes) * ln, int64_t n_filt, int64_t group, int64_t grp, const double *d)
{
    double dl[2 * VW];
    for (int l = 0; l < 2 * VW; l++) dl[l] = d && grp * 2 * VW + l < n_filt ? d[grp * 2 * VW + l] : 0.0;
    ln->skip = d != NULL;
    ln->dr = SFX(fc_ldu)(dl);
    ln->di = SFX(fc_ldu)(dl + VW);
    ln->f0 = grp * 2 * VW;
    ln->contig = group == 1 && ln->f0 + 2 * VW <= n_filt;
    for (int l = 0; l < 2 * VW; l++) {
        const int64_t f = ln->f0 + l;
        ln->out[l] = f < n_filt ? f : -1;
        ln->in[l] = f < n_filt ? f / group : -1;
    }
}

/* Row t of the input into lanes: re, im. */
static inline void SFX(fc_load)(const SFX(fc_lanes) * ln, const double *row, VD *re, VD *im)
{
    if (ln->contig) {
        *re = SFX(fc_ldu)(row + ln->f0);
        *im = SFX(fc_ldu)(row + ln->f0 + VW);
        return;
    }
    double t[2 * VW];
    for (int l = 0; l < 2 * VW; l++) t[l] = ln->in[l] >= 0 ? row[ln->in[l]] : 0.0;
    *re = SFX(fc_ldu)(t);
    *im = SFX(fc_ldu)(t + VW);
}

/* Output row t into lanes (the lanes with no filter read 0). */
static inline void SFX(fc_load_out)(const SFX(fc_lanes) * ln, const double *row, VD *re, VD *im)
{
    if (ln->contig) {
        *re = SFX(fc_ldu)(row + ln->f0);
        *im = SFX(fc_ldu)(row + ln->f0 + VW);
        return;
    }
    double t[2 * VW];
    for (int l = 0; l < 2 * VW; l++) t[l] = ln->out[l] >= 0 ? row[ln->out[l]] : 0.0;
    *re = SFX(fc_ldu)(t);
    *im = SFX(fc_ldu)(t + VW);
}

/* Lanes into output row t (added when acc). */
static inline void SFX(fc_store)(const SFX(fc_lanes) * ln, double *row, VD re, VD im, int acc)
{
    if (ln->contig) {
        double *p = row + ln->f0;
        if (acc) {
            re += SFX(fc_ldu)(p);
            im += SFX(fc_ldu)(p + VW);
        }
        SFX(fc_stu)(p, re);
        SFX(fc_stu)(p + VW, im);
        return;
    }
    double t[2 * VW];
    SFX(fc_stu)(t, re);
    SFX(fc_stu)(t + VW, im);
    for (int l = 0; l < 2 * VW; l++)
        if (ln->out[l] >= 0) row[ln->out[l]] = acc ? row[ln->out[l]] + t[l] : t[l];
}

/* Butterfly j of the first DIF radix-4 stage of span n = 4q when a2 = a3 = 0:
** c0 = a0 + a1, c1 = (a0 - a1) w^2j, c2 = (a0 - i a1) w^j, c3 = (a0 + i a1) w^3j,
** stored at rows j, j + q, j + 2q, j + 3q of buf. */
static inline void SFX(fc_first_bfly)(double *buf, int64_t q, int64_t j, const double *tw, VD a0r, VD a0i, VD a1r,
                                      VD a1i)
{
    const double *w = tw + 6 * j;
    double *x0 = buf + 2 * VW * j, *x1 = x0 + 2 * VW * q, *x2 = x1 + 2 * VW * q, *x3 = x2 + 2 * VW * q;
    SFX(fc_st)(x0, a0r + a1r);
    SFX(fc_st)(x0 + VW, a0i + a1i);
    VD r, i;
    FC_CMUL(a0r - a1r, a0i - a1i, w[2], w[3], r, i);
    SFX(fc_st)(x1, r);
    SFX(fc_st)(x1 + VW, i);
    FC_CMUL(a0r + a1i, a0i - a1r, w[0], w[1], r, i);
    SFX(fc_st)(x2, r);
    SFX(fc_st)(x2 + VW, i);
    FC_CMUL(a0r - a1i, a0i + a1r, w[4], w[5], r, i);
    SFX(fc_st)(x3, r);
    SFX(fc_st)(x3 + VW, i);
}

/* ------------------------------------------------------------ forward (DIF) */
/* The first decimation-in-frequency radix-4 stage (span n, q = n / 4) fused
** with the load: the sequence is zero from T on and T <= n / 2, so a2 = a3 = 0;
** rows at or past T read as 0 too. Row t of the input is at src + t * ld. */
static void SFX(fc_dif_first)(double *buf, int64_t n, const double *tw, const SFX(fc_lanes) * ln, const double *src,
                              int64_t ld, int64_t T)
{
    const int64_t q = n / 4;
    const VD zero = VSPLAT(0.0);
    for (int64_t j = 0; j < q; j++) {
        VD a0r = zero, a0i = zero, a1r = zero, a1i = zero;
        if (j < T) SFX(fc_load)(ln, src + j * ld, &a0r, &a0i);
        if (j + q < T) SFX(fc_load)(ln, src + (j + q) * ld, &a1r, &a1i);
        SFX(fc_first_bfly)(buf, q, j, tw, a0r, a0i, a1r, a1i);
    }
}

/* One radix-4 DIF stage of span L = 4q over the blocks of [base, base + len):
** x[j] = c0, x[j+q] = c1 w^2j, x[j+2q] = c2 w^j, x[j+3q] = c3 w^3j with
** c0 = (a0 + a2) + (a1 + a3), c1 = (a0 + a2) - (a1 + a3),
** c2 = (a0 - a2) - i (a1 - a3), c3 = (a0 - a2) + i (a1 - a3): two radix-2
** stages at once, so the output is in bit-reversed order. */
static void SFX(fc_dif4)(double *buf, int64_t base, int64_t len, int64_t L, const double *tw)
{
    const int64_t q = L / 4, s = 2 * VW * q;
    for (int64_t blk = base; blk < base + len; blk += L)
        for (int64_t j = 0; j < q; j++) {
            const double *w = tw + 6 * j;
            double *x0 = buf + 2 * VW * (blk + j), *x1 = x0 + s, *x2 = x1 + s, *x3 = x2 + s;
            const VD a0r = SFX(fc_ld)(x0), a0i = SFX(fc_ld)(x0 + VW), a1r = SFX(fc_ld)(x1), a1i = SFX(fc_ld)(x1 + VW);
            const VD a2r = SFX(fc_ld)(x2), a2i = SFX(fc_ld)(x2 + VW), a3r = SFX(fc_ld)(x3), a3i = SFX(fc_ld)(x3 + VW);
            const VD t0r = a0r + a2r, t0i = a0i + a2i, t1r = a0r - a2r, t1i = a0i - a2i;
            const VD t2r = a1r + a3r, t2i = a1i + a3i, t3r = a1r - a3r, t3i = a1i - a3i;
            SFX(fc_st)(x0, t0r + t2r);
            SFX(fc_st)(x0 + VW, t0i + t2i);
            VD r, i;
            if (j == 0) {
                SFX(fc_st)(x1, t0r - t2r);
                SFX(fc_st)(x1 + VW, t0i - t2i);
                SFX(fc_st)(x2, t1r + t3i);
                SFX(fc_st)(x2 + VW, t1i - t3r);
                SFX(fc_st)(x3, t1r - t3i);
                SFX(fc_st)(x3 + VW, t1i + t3r);
                continue;
            }
            FC_CMUL(t0r - t2r, t0i - t2i, w[2], w[3], r, i);
            SFX(fc_st)(x1, r);
            SFX(fc_st)(x1 + VW, i);
            FC_CMUL(t1r + t3i, t1i - t3r, w[0], w[1], r, i);
            SFX(fc_st)(x2, r);
            SFX(fc_st)(x2 + VW, i);
            FC_CMUL(t1r - t3i, t1i + t3r, w[4], w[5], r, i);
            SFX(fc_st)(x3, r);
            SFX(fc_st)(x3 + VW, i);
        }
}

/* Radix-2 stage of span 2 (no twiddles): the last DIF / first DIT stage when
** log2 n is odd. */
static void SFX(fc_rad2)(double *buf, int64_t base, int64_t len)
{
    for (int64_t p = base; p < base + len; p += 2) {
        double *x0 = buf + 2 * VW * p, *x1 = x0 + 2 * VW;
        const VD ar = SFX(fc_ld)(x0), ai = SFX(fc_ld)(x0 + VW), br = SFX(fc_ld)(x1), bi = SFX(fc_ld)(x1 + VW);
        SFX(fc_st)(x0, ar + br);
        SFX(fc_st)(x0 + VW, ai + bi);
        SFX(fc_st)(x1, ar - br);
        SFX(fc_st)(x1 + VW, ai - bi);
    }
}

/* The stages after the first, spans n/4 down to 2, are split in two: the
** breadth-first ones, while a block is larger than lblock elements (each a
** pass over the whole buffer), and the rest, block by block, so a block's
** later stages run in L1. fc_dif_breadth returns that block size (1 when
** nothing is left). */
static int64_t SFX(fc_dif_breadth)(const sl_fftconv *p, double *buf)
{
    const int64_t n = p->nfft, lb = p->lblock;
    int64_t L = n / 4;
    for (; L >= 4 && L > lb; L /= 4) SFX(fc_dif4)(buf, 0, n, L, p->tw + p->tw_off[sl_fc_log2(L)]);
    return L;
}

/* The DIF stages of spans L, L/4, ... (then 2 when log2 L is odd) of the
** block [base, base + L). */
static void SFX(fc_dif_block)(const sl_fftconv *p, double *buf, int64_t base, int64_t L)
{
    int64_t l = L;
    for (; l >= 4; l /= 4) SFX(fc_dif4)(buf, base, L, l, p->tw + p->tw_off[sl_fc_log2(l)]);
    if (l == 2) SFX(fc_rad2)(buf, base, L);
}

static void SFX(fc_dif_rest)(const sl_fftconv *p, double *buf)
{
    const int64_t L = SFX(fc_dif_breadth)(p, buf);
    for (int64_t blk = 0; L >= 2 && blk < p->nfft; blk += L) SFX(fc_dif_block)(p, buf, blk, L);
}

/* ------------------------------------------------------------ inverse (DIT) */
/* One radix-4 DIT stage of span L = 4q (bit-reversed in, natural out), with
** the conjugate twiddles v = conj(w): t1 = a1 v^2j, t2 = a2 v^j, t3 = a3 v^3j,
** x[j] = a0 + t1 + (t2 + t3), x[j+2q] = a0 + t1 - (t2 + t3),
** x[j+q] = a0 - t1 + i (t2 - t3), x[j+3q] = a0 - t1 - i (t2 - t3). */
static void SFX(fc_dit4)(double *buf, int64_t base, int64_t len, int64_t L, const double *tw)
{
    const int64_t q = L / 4, s = 2 * VW * q;
    for (int64_t blk = base; blk < base + len; blk += L)
        for (int64_t j = 0; j < q; j++) {
            const double *w = tw + 6 * j;
            double *x0 = buf + 2 * VW * (blk + j), *x1 = x0 + s, *x2 = x1 + s, *x3 = x2 + s;
            const VD a0r = SFX(fc_ld)(x0), a0i = SFX(fc_ld)(x0 + VW);
            VD t1r = SFX(fc_ld)(x1), t1i = SFX(fc_ld)(x1 + VW), t2r = SFX(fc_ld)(x2), t2i = SFX(fc_ld)(x2 + VW);
            VD t3r = SFX(fc_ld)(x3), t3i = SFX(fc_ld)(x3 + VW);
            if (j != 0) {
                FC_CMUL(t1r, t1i, w[2], -w[3], t1r, t1i);
                FC_CMUL(t2r, t2i, w[0], -w[1], t2r, t2i);
                FC_CMUL(t3r, t3i, w[4], -w[5], t3r, t3i);
            }
            const VD b0r = a0r + t1r, b0i = a0i + t1i, b1r = a0r - t1r, b1i = a0i - t1i;
            const VD e2r = t2r + t3r, e2i = t2i + t3i, e3r = t2r - t3r, e3i = t2i - t3i;
            SFX(fc_st)(x0, b0r + e2r);
            SFX(fc_st)(x0 + VW, b0i + e2i);
            SFX(fc_st)(x2, b0r - e2r);
            SFX(fc_st)(x2 + VW, b0i - e2i);
            SFX(fc_st)(x1, b1r - e3i);
            SFX(fc_st)(x1 + VW, b1i + e3r);
            SFX(fc_st)(x3, b1r + e3i);
            SFX(fc_st)(x3 + VW, b1i - e3r);
        }
}

/* The mirror of fc_dif_block: spans 2 (when log2 L is odd), then 4 or 8 up to L. */
static void SFX(fc_dit_block)(const sl_fftconv *p, double *buf, int64_t base, int64_t L)
{
    int64_t l = L;
    while (l >= 4) l /= 4;
    if (l == 2) SFX(fc_rad2)(buf, base, L);
    for (l = l == 2 ? 8 : 4; l <= L; l *= 4) SFX(fc_dit4)(buf, base, L, l, p->tw + p->tw_off[sl_fc_log2(l)]);
}

/* The mirror of fc_dif_breadth: spans 4 L up to n/4 over the whole buffer. */
static void SFX(fc_dit_breadth)(const sl_fftconv *p, double *buf, int64_t L)
{
    for (L *= 4; L <= p->nfft / 4; L *= 4) SFX(fc_dit4)(buf, 0, p->nfft, L, p->tw + p->tw_off[sl_fc_log2(L)]);
}

/* The last DIT stage (span n) fused with the store: only the outputs t < T
** (T <= n / 2, so x[j] and x[j+q] for j < q), written to dst + t * ld, plus
** the skip term d[f] u[t, f / group] (input rows src + t * lds) when
** ln->skip: y = (y +) conv + d u. Both input rows are read before either
** output row is written: in the layers u and y are one allocation, 2 MB apart
** at T = 4096, H = 64, and a load behind a store to the same address modulo
** 4 KB waits for it (4K aliasing; the first version, storing row j before
** loading row j + q, took 0.5 ms longer at that size). */
static void SFX(fc_dit_last)(const double *buf, int64_t n, const double *tw, const SFX(fc_lanes) * ln, double *dst,
                             int64_t ld, const double *src, int64_t lds, int64_t T, int acc)
{
    const int64_t q = n / 4, s = 2 * VW * q;
    const VD zero = VSPLAT(0.0), dr = ln->dr, di = ln->di;
    for (int64_t j = 0; j < q && j < T; j++) {
        const double *w = tw + 6 * j;
        const double *x0 = buf + 2 * VW * j, *x1 = x0 + s, *x2 = x1 + s, *x3 = x2 + s;
        const int two = j + q < T;
        VD u0r = zero, u0i = zero, u1r = zero, u1i = zero;
        if (ln->skip) {
            SFX(fc_load)(ln, src + j * lds, &u0r, &u0i);
            if (two) SFX(fc_load)(ln, src + (j + q) * lds, &u1r, &u1i);
        }
        const VD a0r = SFX(fc_ld)(x0), a0i = SFX(fc_ld)(x0 + VW);
        VD t1r, t1i, t2r, t2i, t3r, t3i;
        FC_CMUL(SFX(fc_ld)(x1), SFX(fc_ld)(x1 + VW), w[2], -w[3], t1r, t1i);
        FC_CMUL(SFX(fc_ld)(x2), SFX(fc_ld)(x2 + VW), w[0], -w[1], t2r, t2i);
        FC_CMUL(SFX(fc_ld)(x3), SFX(fc_ld)(x3 + VW), w[4], -w[5], t3r, t3i);
        const VD e2r = t2r + t3r, e2i = t2i + t3i, e3r = t2r - t3r, e3i = t2i - t3i;
        VD y0r = a0r + t1r + e2r, y0i = a0i + t1i + e2i, y1r = a0r - t1r - e3i, y1i = a0i - t1i + e3r;
        if (ln->skip && acc) {   /* (y + conv) + d u */
            VD r, i;
            SFX(fc_load_out)(ln, dst + j * ld, &r, &i);
            y0r += r;
            y0i += i;
            if (two) {
                SFX(fc_load_out)(ln, dst + (j + q) * ld, &r, &i);
                y1r += r;
                y1i += i;
            }
        }
        if (ln->skip) {
            y0r += dr * u0r;
            y0i += di * u0i;
            y1r += dr * u1r;
            y1i += di * u1i;
        }
        SFX(fc_store)(ln, dst + j * ld, y0r, y0i, acc && !ln->skip);
        if (two) SFX(fc_store)(ln, dst + (j + q) * ld, y1r, y1i, acc && !ln->skip);
    }
}

/* ------------------------------------------------------------ spectra */
/* The product with the kernels' spectra, in the bit-reversed order the DIF
** leaves: position p holds Z[rev p], and Z[n - rev p] sits at the mirror of p
** inside its block [2^m, 2^(m+1)). With Z the transform of ua + i ub,
**   W[k] = P[k] Z[k] + M[k] conj Z[n-k],  W[n-k] = conj P[k] Z[n-k] + conj M[k] conj Z[k]
** is the transform of ya + i yb (P, M from fc_spec, scaled by 1 / n). */
static inline void SFX(fc_pair)(double *xa, double *xb, const double *e)
{
    const VD zr = SFX(fc_ld)(xa), zi = SFX(fc_ld)(xa + VW), yr = SFX(fc_ld)(xb), yi = SFX(fc_ld)(xb + VW);
    const VD Pr = SFX(fc_ld)(e), Pi = SFX(fc_ld)(e + VW), Mr = SFX(fc_ld)(e + 2 * VW), Mi = SFX(fc_ld)(e + 3 * VW);
    const VD wr = VFMA(Pr, zr, VFMA(Mr, yr, VFMS(Mi, yi, Pi * zi)));
    const VD wi = VFMA(Pr, zi, VFMA(Pi, zr, VFMS(Mi, yr, Mr * yi)));
    const VD vr = VFMA(Pr, yr, VFMA(Pi, yi, VFMS(Mr, zr, Mi * zi)));
    const VD vi = VFMS(Pr, yi, VFMA(Pi, yr, VFMA(Mr, zi, Mi * zr)));
    SFX(fc_st)(xa, wr);
    SFX(fc_st)(xa + VW, wi);
    if (xb != xa) {
        SFX(fc_st)(xb, vr);
        SFX(fc_st)(xb + VW, vi);
    }
}

/* The pairs whose lower position a is in [lo, hi), a range inside one block
** [h, 2h) (h a power of two >= 2) and its lower half; the spectra of
** position a are entry a - h/2 + 1 (0 and 1 take entries 0 and 1). */
static void SFX(fc_pairs)(double *buf, const double *spec, int64_t h, int64_t lo, int64_t hi)
{
    const double *e = spec + (lo - h / 2 + 1) * 4 * VW;
    for (int64_t a = lo; a < hi; a++, e += 4 * VW) SFX(fc_pair)(buf + 2 * VW * a, buf + 2 * VW * (3 * h - 1 - a), e);
}

/* All pairs whose lower position is in the chunk [c, c + L) (L a power of
** two, c a multiple of L). */
static void SFX(fc_product_chunk)(double *buf, const double *spec, int64_t c, int64_t L)
{
    if (c == 0) {   /* 0 (k = 0) and 1 (k = n/2) are their own mirrors, then blocks [h, 2h) for h < L */
        SFX(fc_pair)(buf, buf, spec);
        if (L > 1) SFX(fc_pair)(buf + 2 * VW, buf + 2 * VW, spec + 4 * VW);
        for (int64_t h = 2; h < L; h *= 2) SFX(fc_pairs)(buf, spec, h, h, h + h / 2);
        return;
    }
    if (c == 1) {   /* L = 1 */
        SFX(fc_pair)(buf + 2 * VW, buf + 2 * VW, spec + 4 * VW);
        return;
    }
    int64_t h = 2;
    while (2 * h <= c) h *= 2;
    SFX(fc_pairs)(buf, spec, h, c, c == L ? c + L / 2 : c + L);   /* the chunk [L, 2L) is its own mirror */
}

/* ------------------------------------------------------------ entry points */
/* Kernel spectra of lane group grp: transform ka + i kb (taps t < p->T of
** filters f0 + l and f0 + VW + l, rows of K), then
**   Ka = (Z[k] + conj Z[n-k]) / 2,  Kb = (Z[k] - conj Z[n-k]) / 2i,
**   P = (Ka + Kb) / 2n,  M = (Ka - Kb) / 2n,
** stored in fc_product's order. */
static void SFX(fc_spec)(const sl_fftconv *p, const double *K, int64_t ldk, int64_t grp, double *buf, double *spec)
{
    const int64_t n = p->nfft;
    SFX(fc_lanes) ln;
    SFX(fc_lanes_init)(&ln, p->n_filt, 1, grp, NULL);
    /* The taps of a filter are a row of K: read them as lanes through a
    ** transposed view (column f of "row" t is K[f * ldk + t]), in blocks. */
    const int64_t q = n / 4;
    const double *tw = p->tw + p->tw_off[sl_fc_log2(n)];
    for (int64_t j = 0; j < q; j++) {
        double a[2][2 * VW];
        for (int h = 0; h < 2; h++) {
            const int64_t t = j + h * q;
            for (int l = 0; l < 2 * VW; l++) a[h][l] = (t < p->T && ln.out[l] >= 0) ? K[ln.out[l] * ldk + t] : 0.0;
        }
        const VD a0r = SFX(fc_ldu)(a[0]), a0i = SFX(fc_ldu)(a[0] + VW), a1r = SFX(fc_ldu)(a[1]),
                 a1i = SFX(fc_ldu)(a[1] + VW);
        SFX(fc_first_bfly)(buf, q, j, tw, a0r, a0i, a1r, a1i);
    }
    SFX(fc_dif_rest)(p, buf);
    const double s = 0.25 / (double)n;
    double *e = spec;
    for (int64_t h = 1, a = 0; a < n; e += 4 * VW) {
        /* the same order as fc_product: 0, 1, then a in [h, 3h/2) for h = 2, 4, ... */
        const int64_t b = a < 2 ? a : 3 * h - 1 - a;
        const double *xa = buf + 2 * VW * a, *xb = buf + 2 * VW * b;
        for (int l = 0; l < VW; l++) {
            /* A = Z[k], B = conj Z[n-k]; P = ((A + B) - i (A - B)) / 4n, M = ((A + B) + i (A - B)) / 4n */
            const double Ar = xa[l], Ai = xa[VW + l], Br = xb[l], Bi = -xb[VW + l];
            const double Sr = Ar + Br, Si = Ai + Bi, Dr = Ar - Br, Di = Ai - Bi;
            e[l] = s * (Sr + Di);
            e[VW + l] = s * (Si - Dr);
            e[2 * VW + l] = s * (Sr - Di);
            e[3 * VW + l] = s * (Si + Dr);
        }
        if (a < 2) {
            a++;
            if (a == 2) h = 2;
        } else if (++a == h + h / 2) {
            h *= 2;
            a = h;
        }
    }
}

/* One (sequence, lane group) task: load and transform, multiply, transform
** back and store. The product pairs chunk [c, c + L) with its mirror chunk
** (the positions mirror inside blocks [h, 2h), and chunks of L elements map
** onto chunks), so the in-block stages of both chunks, the product and the
** inverse in-block stages run while the two chunks are in L1. */
static void SFX(fc_task)(const sl_fftconv *p, int64_t T, const double *u, int64_t ldu, double *y, int64_t ldy, int acc,
                         const double *d, int64_t grp, double *buf)
{
    const int64_t n = p->nfft;
    const double *spec = p->spec + grp * (n / 2 + 1) * 4 * VW;
    SFX(fc_lanes) ln;
    SFX(fc_lanes_init)(&ln, p->n_filt, p->group, grp, d);
    const double *tw = p->tw + p->tw_off[sl_fc_log2(n)];
    SFX(fc_dif_first)(buf, n, tw, &ln, u, ldu, T);
    const int64_t L = SFX(fc_dif_breadth)(p, buf);
    for (int64_t c = 0; c < n; c += L) {
        int64_t h = 1, m = c;   /* m: the mirror chunk of c */
        if (c >= 2 * L) {
            while (2 * h <= c) h *= 2;
            if (c >= h + h / 2) continue;   /* done with its lower partner */
            m = 3 * h - L - c;
        }
        if (L >= 2) {
            SFX(fc_dif_block)(p, buf, c, L);
            if (m != c) SFX(fc_dif_block)(p, buf, m, L);
        }
        SFX(fc_product_chunk)(buf, spec, c, L);
        if (L >= 2) {
            SFX(fc_dit_block)(p, buf, c, L);
            if (m != c) SFX(fc_dit_block)(p, buf, m, L);
        }
    }
    SFX(fc_dit_breadth)(p, buf, L);
    SFX(fc_dit_last)(buf, n, tw, &ln, y, ldy, u, ldu, T, acc);
}
