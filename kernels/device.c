/*
** Compute devices: see device.h. The only place outside kernels/cuda/ that
** asks whether CUDA is there; everything else goes through sl_device_check.
*/
#include "device.h"

#include <string.h>

#ifdef SL_CUDA
#include "kernels/cuda/cuda.h"
#endif

const char *sl_device_name(int device)
{
    switch (device) {
    case SL_DEVICE_CPU: return "cpu";
    case SL_DEVICE_CUDA: return "cuda";
    default: return "?";
    }
}

int sl_device_parse(const char *s, int *device, sl_err *err)
{
    if (s && !strcmp(s, "cpu")) { *device = SL_DEVICE_CPU; return SL_OK; }
    if (s && !strcmp(s, "cuda")) { *device = SL_DEVICE_CUDA; return SL_OK; }
    return sl_err_set(err, SL_EINVAL, "unknown device \"%s\" (cpu, cuda)", s ? s : "");
}

int sl_device_built(int device)
{
    switch (device) {
    case SL_DEVICE_CPU: return 1;
#ifdef SL_CUDA
    case SL_DEVICE_CUDA: return 1;
#endif
    default: return 0;
    }
}

int sl_device_check(int device, sl_err *err)
{
    if (device == SL_DEVICE_CPU) return SL_OK;
    if (device != SL_DEVICE_CUDA) return sl_err_set(err, SL_EINVAL, "unknown device %d", device);
#ifdef SL_CUDA
    return sl_cuda_check(err);
#else
    return sl_err_set(err, SL_EUNSUP, "seqlab was built without CUDA (make CUDA=1)");
#endif
}
