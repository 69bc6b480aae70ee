/*
** Backward passes of the state-space scans: see scan_backward.h. One source
** (scan_backward_impl.h) compiled for float and for double, so the training
** path and the reference the finite-difference tests check are the same
** algorithm.
*/
/* The float loops must vectorise: with the default -ftrapping-math GCC will not
** if-convert sl_expf_vec's clamps. Nothing here reads floating-point exception
** flags. Set before the includes so the inline sl_expf_vec of scan.h is
** compiled with the same options (as in scan.c). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "scan_backward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SL_SCAN_PAR_MIN 65536.0
/* Workspace elements per sequence of the selective scan's backward (see the impl). */
#define SB_SSCAN_WS_PER(C, N) (3 * (C) * (N) + 2 * (C) + 2 * (N))

size_t sl_selective_scan_backward_ws(int64_t C, int64_t N, int64_t nb)
{
    return (size_t)(nb * SB_SSCAN_WS_PER(C, N) + 1);
}

#define REAL float
#define SB(n) n##_f32
#define SB_EXP sl_expf_vec
#define SB_EXPS expf
#define SB_CDIAG sl_cdiag_f32
#define SB_SSCAN sl_sscan_bwd_f32
#include "scan_backward_impl.h"
#undef REAL
#undef SB
#undef SB_EXP
#undef SB_EXPS
#undef SB_CDIAG
#undef SB_SSCAN

#define REAL double
#define SB(n) n##_f64
#define SB_EXP exp
#define SB_EXPS exp
#define SB_CDIAG sl_cdiag_f64
#define SB_SSCAN sl_sscan_bwd_f64
#include "scan_backward_impl.h"
