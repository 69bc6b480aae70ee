/*
** Backward passes of the block-structured families' building blocks (RMSNorm,
** causal depthwise conv1d): see nn.h. One source (nn_backward_impl.h) for
** float and double. Sums run over rows in order on one thread: they are a
** small part of a training step next to the GEMMs and the scan.
*/
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "nn.h"

#define REAL float
#define NB(n) n##_f32
#define NB_SQRT sqrtf
#include "nn_backward_impl.h"
#undef REAL
#undef NB
#undef NB_SQRT

#define REAL double
#define NB(n) n##_f64
#define NB_SQRT sqrt
#include "nn_backward_impl.h"
