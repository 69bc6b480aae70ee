/*
** Backward pass of the matrix-state scans: see matstate_backward.h. One
** source (matstate_backward_impl.h) compiled for float (the training path)
** and double (the reference the gradient tests check).
*/
#include "matstate_backward.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

int64_t sl_ms_backward_ws(int64_t dk, int64_t dv) { return dk * dv + 2 * dk + 2 * dv; }

#define REAL float
#define MSB_SEQ sl_ms_bwd
#define MSB_EXP expf
#define MSB_FN sl_ms_backward
#include "matstate_backward_impl.h"
#undef REAL
#undef MSB_SEQ
#undef MSB_EXP
#undef MSB_FN

#define REAL double
#define MSB_SEQ sl_ms_bwd_f64
#define MSB_EXP exp
#define MSB_FN sl_ms_backward_f64
#include "matstate_backward_impl.h"
