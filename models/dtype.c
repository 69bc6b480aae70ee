/*
** Element types and conversions: see dtype.h. Everything goes through memcpy
** so tensor data may sit at any alignment in the mapped file (other writers
** produce unaligned files). The host is assumed little-endian (x86-64, arm64),
** as the safetensors format is.
*/
#include "dtype.h"

#include <math.h>
#include <string.h>

static const char *const dtype_names[SL_DT_COUNT] = { "F32", "F64", "F16", "BF16" };
static const size_t dtype_sizes[SL_DT_COUNT] = { 4, 8, 2, 2 };

const char *sl_dtype_name(sl_dtype dt)
{
    return (unsigned)dt < SL_DT_COUNT ? dtype_names[dt] : "?";
}

int sl_dtype_parse(const char *s, sl_dtype *dt)
{
    for (int i = 0; i < SL_DT_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) { *dt = (sl_dtype)i; return 0; }
    return -1;
}

size_t sl_dtype_size(sl_dtype dt) { return (unsigned)dt < SL_DT_COUNT ? dtype_sizes[dt] : 0; }

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

float sl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31)  /* inf, or NaN keeping its payload */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t sl_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)                       /* NaN: stay NaN, quiet */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* >= 65520 -> inf */
    if (ax < 0x38800000u) {                     /* below 2^-14: subnormal half */
        if (ax < 0x33000000u) return sign;      /* <= 2^-25 rounds to zero (tie to even) */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;              /* value * 2^24 = m >> shift */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t h = (ax >> 13) - (112u << 10), rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float sl_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t sl_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

void sl_dtype_to_f32(sl_dtype dt, const void *src, float *dst, size_t n)
{
    const unsigned char *p = src;
    switch (dt) {
    case SL_DT_F32: memcpy(dst, src, n * 4); break;
    case SL_DT_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); dst[i] = (float)d; }
        break;
    case SL_DT_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = sl_f16_to_f32(h); }
        break;
    case SL_DT_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = sl_bf16_to_f32(h); }
        break;
    default: break;
    }
}

void sl_dtype_from_f32(sl_dtype dt, const float *src, void *dst, size_t n)
{
    unsigned char *p = dst;
    switch (dt) {
    case SL_DT_F32: memcpy(dst, src, n * 4); break;
    case SL_DT_F64:
        for (size_t i = 0; i < n; i++) { double d = src[i]; memcpy(p + 8 * i, &d, 8); }
        break;
    case SL_DT_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h = sl_f32_to_f16(src[i]); memcpy(p + 2 * i, &h, 2); }
        break;
    case SL_DT_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h = sl_f32_to_bf16(src[i]); memcpy(p + 2 * i, &h, 2); }
        break;
    default: break;
    }
}
