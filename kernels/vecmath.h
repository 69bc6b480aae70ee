/*
** Vectorised exp, tanh, sigmoid, log and log-sigmoid for the fused kernels.
**
** A template, not an ordinary header: kernels/rnn_fused.c (and gemm.c,
** nn_vec.c) include it once per
** instruction set, inside a `#pragma GCC target` region, after defining
**
**     VF, VI     GCC vector types of VW floats / VW int32 (same size)
**     VW         lanes (16 AVX-512, 8 AVX2, 4 SSE4.2)
**     VFMA(a, b, c)  a * b + c (fused where the ISA has FMA); VSPLAT(f) f in every lane
**     SFX(name)  the ISA suffix applied to a name (name##_avx512, ...)
**
** so the same source becomes zmm, ymm or xmm code selected at run time.
**
** The algorithms are Cephes' single-precision ones (S. Moshier), branch-free:
**
**   vexp(x)  x clamped to [-87.3, 88.0]; n = round(x / ln 2) by the 1.5 * 2^23
**            trick, r = x - n ln 2 in two parts (Cody-Waite), e^r by Cephes'
**            degree-7 polynomial, times 2^n built in the exponent bits. With
**            VM_AVX512 defined (the AVX-512 instances): min/max, vrndscaleps
**            and vscalefps do the clamp, the rounding and the 2^n in one
**            instruction each (LSTM forward at H = 128: 8% faster; the same
**            error bound). (Tried: 1/x by vrcp14ps and a Newton step instead of
**            the divisions: no faster.)
**   vtanh(x) sign(x) m / (m + 2), m = expm1(2|x|) from vexp's reduction and
**            polynomial kept as e^r - 1 (2^n (e^r - 1) + 2^n - 1), 2|x| clamped
**            to 20 (+-1 exactly in float). One branch: 42% faster than the
**            earlier two (x + x^3 P(x^2) below 0.625, 1 - 2 / (e^{2|x|} + 1)
**            above), for 1.36 ulp worst in the test's sweep instead of 1.13.
**   vsig(x)  1 / (1 + e^{-x}).
**   vlog(x)  x > 0 normal: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m by
**            Cephes' degree-9 polynomial in m - 1, plus e ln 2 in two parts.
**   vlogsig(x) log(sigmoid(x)) = min(x, 0) - log1p(e^{-|x|}), log1p(t) as
**            log(u) t / (u - 1) with u = 1 + t (t when u = 1), which keeps
**            the relative accuracy for small t.
** NaN in gives NaN out (vtanh, vsig; vexp clamps it; vlog, vlogsig: not
** for NaN or x <= 0 / infinite inputs).
**
** Error bound, measured against double-precision libm over a dense sweep in
** tests/test_kernels.c (every 2^-12 over [-20, 20] plus random points over
** [-100, 100], every ISA the machine has):
**   vexp:  relative error <= 3 ulp (2^-23 units) for x in [-87.3, 88];
**   vtanh: relative error <= 3 ulp everywhere;
**   vsig:  relative error <= 4 ulp for x >= -87; below that the result is < 2^-125
**          and its absolute error is below 1e-37;
**   vlog:  absolute error <= 2^-24 + 3 ulp of the result, for normal x > 0;
**   vlogsig: relative error <= 4 ulp for x in [-87, 16], absolute <= 1e-12 above.
** (The test asserts these; typical maxima are 1-2 ulp.)
*/

#define VM_SPLAT(c) ((VF)VSPLAT((float)(c)))

static inline VF SFX(vm_select)(VI m, VF a, VF b) { return (VF)(((VI)a & m) | ((VI)b & ~m)); }
static inline VF SFX(vm_min)(VF a, VF b) { return SFX(vm_select)(a < b, a, b); }
static inline VF SFX(vm_max)(VF a, VF b) { return SFX(vm_select)(a > b, a, b); }
static inline VF SFX(vm_abs)(VF a) { return (VF)((VI)a & ((VI){ 0 } + 0x7fffffff)); }

/* exp(x - n ln 2) - 1 for the integer n = round(x log2 e): ln 2 split in two
** for the reduction (Cody-Waite), then a degree-6 polynomial on [-ln2/2, ln2/2]
** (r + r^2 P(r), so the small results keep their relative accuracy). */
static inline __attribute__((always_inline)) VF SFX(vexpm1_reduced)(VF x, VF n)
{
    VF r = VFMA(n, VM_SPLAT(-0.693359375f), x);
    r = VFMA(n, VM_SPLAT(2.12194440e-4f), r);
    VF p = VM_SPLAT(1.9875691500e-4f);
    p = VFMA(p, r, VM_SPLAT(1.3981999507e-3f));
    p = VFMA(p, r, VM_SPLAT(8.3334519073e-3f));
    p = VFMA(p, r, VM_SPLAT(4.1665795894e-2f));
    p = VFMA(p, r, VM_SPLAT(1.6666665459e-1f));
    p = VFMA(p, r, VM_SPLAT(5.0000001201e-1f));
    return VFMA(p, r * r, r);
}

static inline __attribute__((always_inline)) VF SFX(vexp_reduced)(VF x, VF n)
{
    return SFX(vexpm1_reduced)(x, n) + VM_SPLAT(1.0f);
}

#ifdef VM_AVX512
/* AVX-512 has the pieces as single instructions: min/max (NaN in the second
** operand passes through), rounding (vrndscaleps) and the scaling by 2^n
** (vscalefps, which also saturates to 0 / inf where 2^n leaves the range). */
static inline __attribute__((always_inline)) VF SFX(vexp)(VF x)
{
    x = (VF)_mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.33654f), (__m512)x));
    const VF n = (VF)_mm512_roundscale_ps((__m512)(x * VM_SPLAT(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const VF p = SFX(vexp_reduced)(x, n);
    return (VF)_mm512_scalef_ps((__m512)p, (__m512)n);
}
#else
static inline __attribute__((always_inline)) VF SFX(vexp)(VF x)
{
    x = SFX(vm_min)(SFX(vm_max)(x, VM_SPLAT(-87.33654f)), VM_SPLAT(88.0f));
    /* n = round(x log2 e): adding 1.5 * 2^23 rounds to an integer in the low bits. */
    const VF magic = VM_SPLAT(12582912.0f);
    VF n = VFMA(x, VM_SPLAT(1.44269504088896341f), magic) - magic;
    const VF p = SFX(vexp_reduced)(x, n);
    VI e = (__builtin_convertvector(n, VI) + 127) << 23;
    return p * (VF)e;
}
#endif

/* tanh(|x|) = m / (m + 2) with m = expm1(2|x|) = 2^n (e^r - 1) + (2^n - 1): one
** reduction, no second branch for small |x| (e^r - 1 keeps its relative
** accuracy there), 2|x| clamped to 20 (tanh is 1 in float well before). */
static inline __attribute__((always_inline)) VF SFX(vtanh)(VF x)
{
    const VF a = SFX(vm_abs)(x);
#ifdef VM_AVX512
    /* min's second operand passes NaN through, and every later step keeps it */
    const VF y = (VF)_mm512_min_ps(_mm512_set1_ps(20.0f), (__m512)(a + a));
    const VF n = (VF)_mm512_roundscale_ps((__m512)(y * VM_SPLAT(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const VF tn = (VF)_mm512_scalef_ps(_mm512_set1_ps(1.0f), (__m512)n);
#else
    const VF y = SFX(vm_min)(a + a, VM_SPLAT(20.0f));
    const VF magic = VM_SPLAT(12582912.0f);
    const VF n = VFMA(y, VM_SPLAT(1.44269504088896341f), magic) - magic;
    const VF tn = (VF)((__builtin_convertvector(n, VI) + 127) << 23);
#endif
    const VF m = VFMA(tn, SFX(vexpm1_reduced)(y, n), tn - VM_SPLAT(1.0f));
    const VF t = (VF)((VI)(m / (m + VM_SPLAT(2.0f))) | ((VI)x & ((VI){ 0 } + (int32_t)0x80000000)));
#ifdef VM_AVX512
    return t;
#else
    return SFX(vm_select)(x != x, x, t);   /* x != x only for NaN, which passes through as NaN */
#endif
}

static inline __attribute__((always_inline)) VF SFX(vsig)(VF x)
{
    VF s = VM_SPLAT(1.0f) / (VM_SPLAT(1.0f) + SFX(vexp)(-x));
#ifdef VM_AVX512
    return s;   /* vexp's max/min pass NaN through (second operands) */
#else
    return SFX(vm_select)(x != x, x, s);
#endif
}

static inline __attribute__((always_inline)) VF SFX(vlog)(VF x)
{
    const VI xi = (VI)x;
    VI e = ((xi >> 23) & 0xff) - 126;                           /* x = m 2^e, m in [0.5, 1) */
    VF m = (VF)((xi & 0x007fffff) | 0x3f000000);
    const VI lo = m < VM_SPLAT(0.707106781186547524f);          /* -1 where m < sqrt(1/2) */
    e = e + lo;                                                  /* then m -> 2 m */
    m = m - VM_SPLAT(1.0f) + (VF)((VI)m & lo);
    const VF z = m * m, ef = __builtin_convertvector(e, VF);
    VF p = VM_SPLAT(7.0376836292e-2f);
    p = VFMA(p, m, VM_SPLAT(-1.1514610310e-1f));
    p = VFMA(p, m, VM_SPLAT(1.1676998740e-1f));
    p = VFMA(p, m, VM_SPLAT(-1.2420140846e-1f));
    p = VFMA(p, m, VM_SPLAT(1.4249322787e-1f));
    p = VFMA(p, m, VM_SPLAT(-1.6668057665e-1f));
    p = VFMA(p, m, VM_SPLAT(2.0000714765e-1f));
    p = VFMA(p, m, VM_SPLAT(-2.4999993993e-1f));
    p = VFMA(p, m, VM_SPLAT(3.3333331174e-1f));
    VF y = p * m * z;
    y = VFMA(ef, VM_SPLAT(-2.12194440e-4f), y);
    y = VFMA(z, VM_SPLAT(-0.5f), y);
    return VFMA(ef, VM_SPLAT(0.693359375f), m + y);
}

static inline __attribute__((always_inline)) VF SFX(vlogsig)(VF x)
{
    const VF t = SFX(vexp)(-SFX(vm_abs)(x)), u = VM_SPLAT(1.0f) + t;
    const VF d = u - VM_SPLAT(1.0f);
    /* d == 0 only when t < 2^-24: log1p(t) = t there */
    const VF l1p = SFX(vm_select)(d == VM_SPLAT(0.0f), t, SFX(vlog)(u) * (t / SFX(vm_select)(d == VM_SPLAT(0.0f), VM_SPLAT(1.0f), d)));
    return SFX(vm_min)(x, VM_SPLAT(0.0f)) - l1p;
}
