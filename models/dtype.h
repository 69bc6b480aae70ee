/*
** Tensor element types of the model file and their conversions.
**
** seqlab computes in float32 (forward passes) and double (analyses). F16 and
** BF16 are converted exactly to float on load (every half value is a float),
** and rounded to nearest-even when written; subnormals, infinities and NaN
** keep their meaning both ways.
*/
#ifndef SL_DTYPE_H
#define SL_DTYPE_H

#include <stdint.h>
#include <stddef.h>

typedef enum sl_dtype {
    SL_DT_F32 = 0,
    SL_DT_F64,
    SL_DT_F16,
    SL_DT_BF16,
    SL_DT_COUNT
} sl_dtype;

/* "F32", "F64", "F16", "BF16". */
const char *sl_dtype_name(sl_dtype dt);
/* Parse a safetensors dtype string; returns 0 and sets *dt, or -1 if unknown. */
int sl_dtype_parse(const char *s, sl_dtype *dt);
/* Bytes per element. */
size_t sl_dtype_size(sl_dtype dt);

float    sl_f16_to_f32(uint16_t h);
uint16_t sl_f32_to_f16(float f);
float    sl_bf16_to_f32(uint16_t h);
uint16_t sl_f32_to_bf16(float f);

/* Convert n little-endian elements of type dt at src (any alignment) to
** float at dst. F64 values are rounded to float. */
void sl_dtype_to_f32(sl_dtype dt, const void *src, float *dst, size_t n);
/* Convert n floats to n little-endian elements of type dt at dst (any alignment). */
void sl_dtype_from_f32(sl_dtype dt, const float *src, void *dst, size_t n);

#endif
